// ChannelSupervisor: the third party that watches a channel and cleans up after endpoints
// whose process died. The daemon holds one per channel; tests and tools may too.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>
#include <shmbus/events.hpp>
#include <shmbus/export.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace shmbus {

/// Counters of one channel, read from its control region without disturbing writers.
/// rpc and pool channels report their own counters in these fields (docs/memory-layout.md).
struct ChannelStats {
    std::uint64_t published{0};   ///< messages committed (including abandoned slots)
    std::uint64_t consumed{0};    ///< queue: messages taken by consumers
    std::uint64_t dropped{0};     ///< broadcast drop: messages lost, summed over subscribers
    std::uint64_t abandoned{0};   ///< slots reserved by a writer that died or gave them back
    std::uint64_t redelivered{0}; ///< queue: messages returned from a dead consumer
    std::uint64_t corrupted{0};   ///< messages that failed validation and were skipped
    std::uint64_t data_waits{0};  ///< times a reader went to sleep on the futex
    std::uint64_t data_wakes{0};  ///< times a writer had to wake sleeping readers
    std::uint64_t space_waits{0}; ///< times a writer slept on a full ring
    std::uint64_t space_wakes{0}; ///< times a reader had to wake sleeping writers
    std::uint64_t depth{0};       ///< messages currently in the ring (slowest reader)
    std::uint64_t high_water{0};  ///< largest depth seen by writers
    std::uint32_t publishers{0};  ///< attached publishers
    std::uint32_t subscribers{0}; ///< attached subscribers
};

/// One entry of a channel's endpoint table.
struct EndpointEntry {
    Role role{Role::publisher};
    std::uint32_t index{0};
    std::uint32_t pid{0};    ///< as the endpoint reported it (informational only)
    std::uint64_t cursor{0}; ///< broadcast subscriber: next sequence to read
    std::uint64_t lost{0};   ///< broadcast subscriber: messages lost
    std::uint64_t held{0};   ///< pool: blocks this endpoint holds a reference to
};

/// What a reclaim found and repaired.
struct ReclaimReport {
    /// Reserved, never committed: now skipped by readers. Blackboard: elements the writer was
    /// writing, now marked torn. Counters: cells it was naming, now free again. Pool: blocks
    /// it held a reference to, now given back (to the free list, if it was the last).
    std::uint64_t abandoned_slots{0};
    std::uint64_t redelivered_slots{0}; ///< queue: taken, never released: back for others
    bool detached{false};               ///< the table entry was freed
};

/// Watches one channel and reclaims what dead endpoints held. Needs writable descriptors.
class SHMBUS_EXPORT ChannelSupervisor {
public:
    /// Maps and verifies the channel in `files`. Errc::corrupted / version_mismatch if its
    /// headers fail validation, Errc::permission_denied for a read-only payload.
    [[nodiscard]] static Result<ChannelSupervisor> attach(ChannelFiles files) noexcept;

    ChannelSupervisor(ChannelSupervisor&&) noexcept;
    ChannelSupervisor& operator=(ChannelSupervisor&&) noexcept;
    ChannelSupervisor(const ChannelSupervisor&) = delete;
    ChannelSupervisor& operator=(const ChannelSupervisor&) = delete;
    ~ChannelSupervisor();

    [[nodiscard]] const ChannelInfo& info() const noexcept;
    /// Current counters. Thread-safe; reads only.
    [[nodiscard]] ChannelStats stats() const noexcept;
    /// Attached endpoints. Thread-safe; reads only.
    [[nodiscard]] std::vector<EndpointEntry> endpoints() const;

    /// Reclaims publisher `index`, whose process is gone: every slot it reserved but never
    /// committed is published as abandoned, so readers pass over it instead of waiting, and
    /// its entry is freed. Call only once the owner is known dead. Errc::not_found if the
    /// entry is not in use, Errc::invalid_argument if `index` is out of range.
    [[nodiscard]] Result<ReclaimReport> reclaim_publisher(std::uint32_t index) noexcept;
    /// Reclaims subscriber `index`, whose process is gone: its cursor is detached, so
    /// block-policy publishers no longer wait for it; on a queue, messages it took but never
    /// released are returned to the other consumers. Then its entry is freed.
    [[nodiscard]] Result<ReclaimReport> reclaim_subscriber(std::uint32_t index) noexcept;
    /// (Both reclaims tell the channel's endpoints with a `died` peer event.)

    /// Tells the channel's endpoints that `role` entry `index` (of process `pid`) attached
    /// or detached: EventKind::attached or EventKind::detached, written into the channel's
    /// event ring. The caller must be the ring's one writer (the daemon, for a channel it
    /// serves). Errc::invalid_argument for another kind or an index beyond the table.
    [[nodiscard]] Result<void> post_event(EventKind kind, Role role, std::uint32_t index,
                                          std::uint32_t pid) noexcept;

    struct Impl;

private:
    explicit ChannelSupervisor(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

/// Reads the counters of the channel in `files` (read-only mappings suffice), for tools.
[[nodiscard]] SHMBUS_EXPORT Result<ChannelStats> read_stats(const ChannelFiles& files) noexcept;

} // namespace shmbus
