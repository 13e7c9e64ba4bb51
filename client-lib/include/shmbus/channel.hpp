// Channels: creating their shared memory, and what describes them.
//
// A channel is two sealed memory files (memfd): the *payload* (message slots and the
// writers' publish index), writable only by writers, and the *control* region (reader
// cursors, slot claim states, waiter counts, counters), writable by every participant.
// Readers receive a read-only payload descriptor. See docs/memory-layout.md.
//
// The daemon creates channels and passes their descriptors to clients; without a daemon,
// a process may create a channel itself and hand the descriptors on (fork, SCM_RIGHTS).
#pragma once

#include <shmbus/error.hpp>
#include <shmbus/export.hpp>
#include <shmbus/unique_fd.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace shmbus {

/// How messages are delivered.
enum class ChannelKind : std::uint32_t {
    queue = 1,     ///< every message is taken by exactly one reader (work queue)
    broadcast = 2, ///< every reader (subscriber) sees every message, each with its own cursor
    // 3 is not assigned.
    blackboard = 4, ///< shared state: slot_count elements of slot_size bytes (blackboard.hpp)
    counters = 5,   ///< named 64-bit atomic cells, created on first use (counters.hpp)
    rpc = 6,        ///< request/response: each call is served by one server, answered to its caller
    pool = 7,       ///< slot_count blocks of slot_size bytes, passed between processes by handle
};

/// Whether `kind` moves messages through a ring (queue, broadcast) rather than holding
/// shared state in place (blackboard, counters, pool) or carrying calls (rpc).
[[nodiscard]] constexpr bool is_ring_kind(ChannelKind kind) noexcept {
    return kind == ChannelKind::queue || kind == ChannelKind::broadcast;
}

/// What a broadcast writer does when the slowest subscriber is a whole ring behind.
enum class Overflow : std::uint32_t {
    block = 0, ///< wait for the slowest subscriber: lossless
    drop = 1,  ///< overwrite; a lagging subscriber is told exactly how many messages it lost
};

/// Which side of a channel an endpoint is. On a queue a publisher is a producer and a
/// subscriber is a consumer; on a blackboard, counters or pool channel a publisher is a writer
/// and a subscriber a reader (its payload is mapped read-only).
enum class Role : std::uint32_t {
    publisher = 1,
    subscriber = 2,
};

[[nodiscard]] SHMBUS_EXPORT std::string_view to_string(ChannelKind kind) noexcept;
[[nodiscard]] SHMBUS_EXPORT std::string_view to_string(Overflow overflow) noexcept;
[[nodiscard]] SHMBUS_EXPORT std::string_view to_string(Role role) noexcept;

/// Largest message slot a channel may have (1 GiB); sizes are 64-bit throughout.
inline constexpr std::uint64_t kMaxSlotSize = std::uint64_t{1} << 30;
/// Largest number of slots in a ring.
inline constexpr std::uint64_t kMaxSlotCount = std::uint64_t{1} << 24;
/// Most publishers or subscribers one channel can have.
inline constexpr std::uint32_t kMaxEndpoints = 1024;
/// Longest channel name, in bytes.
inline constexpr std::size_t kMaxNameLength = 63;
/// The slot size of every counters channel: one cell's name (47 bytes and a NUL).
inline constexpr std::uint64_t kCounterSlotSize = 48;
/// Most endpoints (publishers and subscribers together) one pool channel can have: each has
/// a bit in every block's state word (docs/memory-layout.md).
inline constexpr std::uint32_t kMaxPoolEndpoints = 24;
/// Default ceiling on the memory one channel may reserve (both regions): 1 GiB.
inline constexpr std::uint64_t kDefaultMaxChannelBytes = std::uint64_t{1} << 30;

/// What a channel is made of. Validated by create_channel().
struct ChannelSpec {
    std::string name; ///< 1..63 bytes of [A-Za-z0-9_.:/-]
    ChannelKind kind{ChannelKind::queue};
    /// Largest message, in bytes (>= 1). Blackboard: the element size. Counters: must be
    /// kCounterSlotSize. Pool: the block size.
    std::uint64_t slot_size{1024};
    /// Ring depth: a power of two, >= 2. Blackboard: the number of elements (any, >= 1).
    /// Counters: the number of cells (any, >= 1). Pool: the number of blocks (any, >= 1).
    std::uint64_t slot_count{1024};
    Overflow overflow{Overflow::block}; ///< broadcast only; a queue always blocks
    /// 1 selects the single-producer algorithms. Pool: the writers, which may acquire blocks;
    /// with max_subscribers at most kMaxPoolEndpoints.
    std::uint32_t max_publishers{1};
    std::uint32_t max_subscribers{1}; ///< on a queue, 1 with 1 publisher selects SPSC
    /// rpc only: largest reply, in bytes; 0 means the same as slot_size. On an rpc channel
    /// slot_size is the largest request, slot_count the calls each caller may have in
    /// flight (depth), max_publishers the callers and max_subscribers the servers.
    std::uint64_t reply_slot_size{0};
};

/// A channel's identity and geometry, as verified from its segment headers.
struct ChannelInfo {
    std::string name;
    ChannelKind kind{ChannelKind::queue};
    Overflow overflow{Overflow::block};
    std::uint64_t slot_size{0};
    std::uint64_t slot_count{0};
    std::uint32_t max_publishers{0};
    std::uint32_t max_subscribers{0};
    std::uint64_t creation_id{0};     ///< random, identical in both regions of one channel
    std::uint64_t control_bytes{0};   ///< size of the control region
    std::uint64_t payload_bytes{0};   ///< size of the payload region
    std::uint64_t reply_slot_size{0}; ///< rpc: largest reply (0 for the other kinds)
};

/// The descriptors of one channel. Writers hold a writable payload descriptor, readers a
/// read-only one; both hold the control descriptor. Move-only; closes on destruction.
struct SHMBUS_EXPORT ChannelFiles {
    UniqueFd control;
    UniqueFd payload;

    /// Duplicates these descriptors for an endpoint of `role`: the payload descriptor is
    /// reopened read-only for Role::subscriber. Errc::system_error if the kernel refuses
    /// (EMFILE, ...), Errc::permission_denied if a writable copy is asked of a read-only
    /// payload. Thread-safe.
    [[nodiscard]] Result<ChannelFiles> duplicate_for(Role role) const noexcept;
    /// Duplicates both descriptors as they are (same access mode), close-on-exec.
    /// Errc::system_error if the kernel refuses. Thread-safe.
    [[nodiscard]] Result<ChannelFiles> duplicate() const noexcept;
};

/// Creates a channel: validates `spec`, creates the two memfds, reserves their memory up
/// front (so that a memory limit is an error now, never a SIGBUS later), writes and checks
/// the headers, and seals the sizes (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL). Returns
/// writable descriptors. Errors: Errc::invalid_argument naming the bad field,
/// Errc::limit_reached when the channel would need more than `max_bytes`, Errc::no_memory
/// (with the bytes needed) when the kernel cannot reserve it. Thread-safe.
[[nodiscard]] SHMBUS_EXPORT Result<ChannelFiles>
create_channel(const ChannelSpec& spec, std::uint64_t max_bytes = kDefaultMaxChannelBytes) noexcept;

/// Bytes a channel of `spec` occupies (control + payload), or an Error if `spec` is invalid.
[[nodiscard]] SHMBUS_EXPORT Result<std::uint64_t> channel_bytes(const ChannelSpec& spec) noexcept;

/// Maps the headers of `files` read-only and verifies them (magic, version, sizes, that both
/// regions belong to one channel). Errc::corrupted or Errc::version_mismatch naming the
/// field otherwise. Does not modify anything. Thread-safe.
[[nodiscard]] SHMBUS_EXPORT Result<ChannelInfo> inspect_channel(const ChannelFiles& files) noexcept;

} // namespace shmbus
