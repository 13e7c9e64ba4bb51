// The state words of the shared-state kinds: blackboard elements and counter cells. One
// home for their encoding, read by the data path (blackboard.cpp, counters.cpp) and by the
// supervisor's reclaim of a dead writer (supervisor.cpp).
//
// Both kinds reuse the ring kinds' geometry: element / cell `i` is the slot at
// `slots + i * stride`, starting with a SlotHeader whose `state` word is described here and
// whose `length` word is the counter's value (counters) or unused (blackboard). Both live in
// the payload region, which only writers map writable: a reader can never change them.
//
// Blackboard element state (64 bits):
//   bits 63..32  version: completed writes of this element, mod 2^32
//   bits 31..0   0 = stable; kElementTorn = its writer died mid-update (contents unknown);
//                1..kMaxEndpoints = locked by the writer whose owner tag this is
// Taking the lock and naming the owner is one compare-and-swap, so a supervisor that knows
// a writer is dead finds exactly the elements it held. Any other low word is corruption.
//
// Counter cell state (64 bits): 0 = free; kCellNaming | owner tag = a writer is writing the
// name; kCellReady = named, the name never changes again. Anything else is corruption.
#pragma once

#include "shm/endpoint_table.hpp"
#include "shm/segment.hpp"

#include <cstdint>

namespace shmbus::detail {

inline constexpr std::uint64_t kElementTorn = 0xFFFF'FFFFULL;
inline constexpr std::uint64_t kElementVersionOne = std::uint64_t{1} << 32;

inline constexpr std::uint64_t element_lock_word(std::uint64_t word) noexcept {
    return word & 0xFFFF'FFFFULL;
}
inline constexpr std::uint64_t element_version(std::uint64_t word) noexcept {
    return word >> 32;
}
/// Whether `low` (element_lock_word) names a writer of a table of `max_writers`.
inline constexpr bool element_locked_by_writer(std::uint64_t low,
                                               std::uint32_t max_writers) noexcept {
    return low >= 1 && low <= max_writers;
}

inline constexpr std::uint64_t kCellFree = 0;
inline constexpr std::uint64_t kCellNaming = std::uint64_t{1} << 32;
inline constexpr std::uint64_t kCellReady = std::uint64_t{2} << 32;

/// What a Blackboard or Counters endpoint holds: one class for both roles. The destructor
/// leaves the role's table and runs the Client's detach hook, in the attaching process only.
struct StateEndpointCore : EndpointCore {
    Role role{Role::subscriber};

    StateEndpointCore() = default;
    StateEndpointCore(const StateEndpointCore&) = delete;
    StateEndpointCore& operator=(const StateEndpointCore&) = delete;
    ~StateEndpointCore();
};

/// open_endpoint() for `role`, then checks that the channel is of `kind`
/// (Errc::invalid_argument naming both kinds otherwise; the entry is released again).
Result<void> open_state_endpoint(StateEndpointCore& core, const ChannelFiles& files, Role role,
                                 const EndpointOptions& options, ChannelKind kind) noexcept;

/// Marks torn every element the writer with `owner` tag holds locked; returns how many.
/// Called once that writer is known dead.
std::uint64_t tear_locked_elements(const AttachedChannel& ch, std::uint32_t owner) noexcept;
/// Frees every counter cell the writer with `owner` tag was naming; returns how many.
/// Called once that writer is known dead.
std::uint64_t free_unnamed_cells(const AttachedChannel& ch, std::uint32_t owner) noexcept;

} // namespace shmbus::detail
