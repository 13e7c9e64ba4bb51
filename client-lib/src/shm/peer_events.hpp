// The peer-event ring of a channel's control region (layout.hpp, EventRing): how the daemon
// writes an event and how an endpoint reads the ring from a cursor of its own.
//
// One writer: the ChannelSupervisor the daemon holds for the channel, from the daemon's loop
// thread, when it hands out, takes back or reclaims a table entry — never on the data path.
// Any number of readers, each with a private cursor (EventCursor, in its own memory), so a
// reader writes nothing to shared memory and costs the writer nothing.
//
// Each record is a seqlock: `stamp` is 2n+1 while event n is written into it and 2n+2 once it
// is complete; `head` (events written so far) is stored after the record. A reader that falls
// more than a ring behind, or finds a record rewritten while it read it, counts the events
// it missed and reports them as one events_lost event, never a torn record.
//
// Trust: the ring is in memory every participant can write. A reader checks each record's
// stamp, kind, role and index against what it expects before it hands the record out; a
// record that fails is counted as lost. A head that went backwards resets the cursor.
//
// Waking: an endpoint that waits for events sleeps on the ring's own futex word (`wake_seq`,
// with the waiter count `waiters`, wake_sleepers()'s handshake); post_event() also wakes the
// channel's data and space sleepers, so that a wait for "messages or events" (a subscriber's
// wait handle, docs/events-and-waiting.md) needs one futex only.
#pragma once

#include "shm/endpoint_table.hpp"
#include "shm/layout.hpp"

#include <shmbus/events.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace shmbus::detail {

/// The futex of the event ring, for wait_until() and wake_sleepers().
inline WaitChannel event_wait(EventRing* ring) noexcept {
    return {&ring->wake_seq, &ring->waiters, &ring->waits, &ring->wakes};
}

/// Appends one event to `ch`'s ring and wakes whoever waits for events, data or room. The
/// caller is the ring's one writer (the channel's supervisor).
void post_event(const AttachedChannel& ch, EventKind kind, Role role, std::uint32_t index,
                std::uint32_t pid) noexcept;

/// Events written so far (the ring's head). acquire: pairs with post_event()'s release.
[[nodiscard]] std::uint64_t event_head(const EventRing& ring) noexcept;

/// One reader's position in the ring.
struct EventCursor {
    std::uint64_t next{0}; ///< the number of the next event to read
    std::uint64_t lost{0}; ///< events missed and not yet reported
    /// An rpc caller's server_gone that did not fit in the last read; reported first.
    std::optional<PeerEvent> carried;

    /// Starts at the newest event: events written before are not this reader's.
    void start_at_head(const EventRing& ring) noexcept { next = event_head(ring); }
    /// Whether an event may be waiting (the ring's head is not at the cursor).
    [[nodiscard]] bool pending(const EventRing& ring) const noexcept {
        return event_head(ring) != next || lost != 0 || carried.has_value();
    }
    /// Reads up to `out.size()` events into `out`, skipping those about the endpoint
    /// (`self_role`, `self_index`) itself. Missed events come first, as one events_lost. An
    /// rpc caller (`self_role` publisher on an rpc channel) gets a server_gone after each
    /// server's detached or died. Returns how many were written to `out`.
    std::size_t read(const AttachedChannel& ch, std::span<PeerEvent> out, Role self_role,
                     std::uint32_t self_index) noexcept;
};

} // namespace shmbus::detail
