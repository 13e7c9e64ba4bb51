// What Publisher and Subscriber share for peer events and wait handles: the endpoint's event
// cursor, its wait relay, and the rule of when the handle is re-armed. One home for both sides
// (and, later, for any other endpoint kind that offers a wait handle).
//
// The rule (docs/events-and-waiting.md): the handle becomes readable when the endpoint has
// something to do, and the library re-arms it when a call finds nothing left to do — a
// receive or reserve that would block, an events() that returns fewer events than it had
// room for. Re-arming costs no system call unless the handle had fired.
//
// Thread-safety: as the endpoint's, one thread at a time; the relay's condition runs on the
// relay thread and sees only the Watch it is given and shared memory.
#pragma once

#include "shm/peer_events.hpp"
#include "wait_relay.hpp"

#include <shmbus/events.hpp>

#include <cstdint>
#include <memory>
#include <span>

namespace shmbus::detail {

struct EndpointWaiting {
    EventCursor cursor;               ///< peer events: the next to read
    std::uint64_t lapped_reported{0}; ///< subscriber: the lost count last reported as lapped
    std::unique_ptr<WaitRelay> relay; ///< made by the first wait_handle()

    /// Starts reading events at the ring's head (called at attach).
    void start(const EndpointCore& core) noexcept { cursor.start_at_head(*core.ch.events); }

    /// Reads the endpoint's events into `out`: a lapped event first when `lost_total` grew
    /// since the last call (subscribers; publishers pass 0), then the ring's. Nothing when the
    /// endpoint did not ask for events. Re-arms the handle when the events ran out.
    std::size_t read(const EndpointCore& core, Role self, std::uint64_t lost_total,
                     std::span<PeerEvent> out, const Watch& now) noexcept;

    /// Whether events wait, for the endpoint's Watch (`local_events`).
    [[nodiscard]] bool local_pending(std::uint64_t lost_total) const noexcept {
        return lost_total != lapped_reported || cursor.lost != 0;
    }

    /// The handle's descriptor; starts the relay on the first call, watching `first`.
    Result<int> handle(WaitRelay::Ready ready, const Watch& first) noexcept;

    /// The endpoint found nothing left to do: re-arm the handle, if there is one. The caller
    /// builds `now` only when there is (a Watch may cost a scan of the tables).
    void rearm(const Watch& now) noexcept {
        if (relay) {
            relay->rearm(now);
        }
    }
};

/// Whether the event ring holds an event past `w.events`, or the endpoint noticed one itself.
[[nodiscard]] inline bool events_ready(const AttachedChannel& ch, const Watch& w) noexcept {
    return w.want_events && (w.local_events || event_head(*ch.events) != w.events);
}

} // namespace shmbus::detail
