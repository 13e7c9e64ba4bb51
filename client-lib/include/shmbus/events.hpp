// Peer events: what an endpoint learns about the other endpoints of its channel, and about
// itself, besides messages.
//
// The daemon writes attach, detach and death events into a small ring in the channel's
// control region when it hands out, takes back or reclaims a table entry; an endpoint reads
// them with events() from a cursor of its own, with no system call (docs/events-and-waiting.md).
// Events an endpoint notices by itself (a broadcast drop subscriber lapped by the writers)
// are reported by the same call. Everything read from shared memory is checked: a record
// that fails its check is skipped and counted as lost, never handed out.
//
// The list of kinds is open: a library may report kinds this header does not know yet, so
// a switch over EventKind needs a default branch.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/export.hpp>

#include <cstdint>
#include <string_view>

namespace shmbus {

/// What happened. Values are stable: they are stored in shared memory and in the C ABI.
enum class EventKind : std::uint32_t {
    attached = 1,    ///< a peer endpoint (`role`, `endpoint_index`) joined the channel
    detached = 2,    ///< a peer endpoint left the channel cleanly
    died = 3,        ///< a peer endpoint's process ended without detaching; it was reclaimed
    lapped = 4,      ///< broadcast drop: this subscriber was overrun; `count` messages are lost
    events_lost = 5, ///< `count` events were overwritten before this endpoint read them
    /// rpc callers only: a server (`role` subscriber, `endpoint_index`, `pid`) is gone. It
    /// follows that server's `detached` or `died` event, with the same `sequence`: the one
    /// kind a caller that only cares whether its servers are there needs to handle.
    server_gone = 6,
};

/// "attached", "detached", ...; "unknown" for a kind this library does not know.
[[nodiscard]] SHMBUS_EXPORT std::string_view to_string(EventKind kind) noexcept;

/// One event, in the order the daemon wrote it (lapped and events_lost come first, in the
/// batch that noticed them). On an rpc channel the publishers are the callers and the
/// subscribers the servers.
struct PeerEvent {
    EventKind kind{EventKind::attached};
    Role role{Role::publisher};      ///< attached/detached/died/server_gone: the peer's side
    std::uint32_t endpoint_index{0}; ///< attached/detached/died/server_gone: its table entry
    std::uint32_t pid{0};            ///< the same events: its process, as the daemon saw it
    std::uint64_t count{0};          ///< lapped: messages lost; events_lost: events missed
    std::uint64_t sequence{0};       ///< the event's number on the channel (0 for local ones)
};

} // namespace shmbus
