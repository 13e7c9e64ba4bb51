// The shared-memory layout of a channel: an ABI between processes, so every struct here is
// standard-layout, made of fixed-width integers, addressed by offsets, and checked below.
//
// A channel is two memfds (see docs/memory-layout.md for the drawing):
//
//   control region (writable by every participant, trusted by none)
//     RegionHeader                      written once by the creator
//     ControlBlock                      reader cursor, futex words, slow-path counters
//     EndpointRecord[max_publishers]    publisher table
//     EndpointRecord[max_subscribers]   subscriber table
//     uint64_t cell[slot_count]         MPMC queue only: per-slot claim state
//     rpc only, instead of the cells (publishers are callers, subscribers servers):
//     RpcCallerBlock[max_publishers]    per caller: reply futex, doorbell, counters
//     uint64_t call_state[max_publishers][slot_count]   one claim word per call slot
//     Reply[max_publishers][slot_count] SlotHeader + reply_slot_size bytes, `reply_stride` apart
//     pool only, instead of the cells (shm/pool_blocks.hpp):
//     PoolControl                       free-list head, counters
//     uint64_t block_state[slot_count]  generation, references in transit, holders
//     uint32_t block_next[slot_count]   the free list's links
//     EventRing                         peer events, written by the daemon only
//
//   payload region (writable by publishers only; readers map it PROT_READ)
//     RegionHeader                      written once by the creator
//     PayloadBlock                      publish/claim index
//     Slot[slot_count]                  SlotHeader + slot_size bytes, `stride` apart
//                                       (rpc: [max_publishers][slot_count], the requests)
//                                       (pool: slot_size bytes each, no header, from the
//                                       first page boundary, `stride` apart)
//
// Atomic fields are plain integers accessed through std::atomic_ref (see atomics.hpp): the
// memory belongs to the kernel object, not to any one process's C++ object model.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/version.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmbus::detail {

inline constexpr std::size_t kCacheLine = 64;
/// The page size the layout rounds regions to (the memfd's own is this or a multiple).
inline constexpr std::uint64_t kPageSize = 4096;

inline constexpr std::uint64_t kControlMagic = 0x4C5254435355424DULL; // "MBUSCTRL"
inline constexpr std::uint64_t kPayloadMagic = 0x444159505355424DULL; // "MBUSPYAD"

enum class RegionType : std::uint32_t { control = 1, payload = 2 };

/// First bytes of both regions. Written by the creator before sealing; read-only after.
/// A reader validates every field and then works from its own copy, never re-reading it.
struct RegionHeader {
    std::uint64_t magic;
    std::uint32_t layout_version;
    std::uint32_t region_type; // RegionType
    std::uint32_t kind;        // ChannelKind
    std::uint32_t overflow;    // Overflow
    std::uint32_t max_publishers;
    std::uint32_t max_subscribers;
    std::uint64_t slot_size;
    std::uint64_t slot_count;
    std::uint64_t slot_stride;
    std::uint64_t control_bytes;
    std::uint64_t payload_bytes;
    std::uint64_t creation_id;
    char name[kMaxNameLength + 1]; // NUL-terminated
    std::uint64_t reply_slot_size; // rpc only (0 otherwise): largest reply
    std::uint8_t reserved[256 - 80 - (kMaxNameLength + 1) - 8];
};
static_assert(std::is_standard_layout_v<RegionHeader>);
static_assert(sizeof(RegionHeader) == 256);
static_assert(offsetof(RegionHeader, name) == 80);
static_assert(offsetof(RegionHeader, reply_slot_size) == 144);

/// Control-region state after the header. Each group sits on its own cache line so that
/// writers of one group never invalidate the lines another party polls.
struct ControlBlock {
    // Written by consumers on every release: SPSC tail / MPMC dequeue position.
    alignas(kCacheLine) std::uint64_t consumer_pos;
    // Readers sleep on data_seq; writers bump it and wake when data_waiters != 0. Writers
    // look at data_waiters only while data_sleepers, the readers that announced they may
    // sleep, is not 0 (shm/sleep_announcement.hpp).
    alignas(kCacheLine) std::uint32_t data_seq;
    std::uint32_t data_waiters;
    std::uint32_t data_sleepers;
    // Writers (block policy) sleep on space_seq; readers wake them, as above.
    alignas(kCacheLine) std::uint32_t space_seq;
    std::uint32_t space_waiters;
    std::uint32_t space_sleepers;
    // Slow-path counters: changed only on rare events, read by tools.
    alignas(kCacheLine) std::uint64_t abandoned;
    std::uint64_t redelivered;
    std::uint64_t corrupted;
    std::uint64_t redeliver_pending; // MPMC: cells waiting to be taken again
    std::uint64_t high_water;
    std::uint64_t dropped; // broadcast drop: messages lost, summed over subscribers
    alignas(kCacheLine) std::uint64_t data_waits;
    std::uint64_t data_wakes;
    alignas(kCacheLine) std::uint64_t space_waits;
    std::uint64_t space_wakes;
};
static_assert(std::is_standard_layout_v<ControlBlock>);
static_assert(sizeof(ControlBlock) % kCacheLine == 0);
static_assert(offsetof(ControlBlock, data_seq) - offsetof(ControlBlock, consumer_pos) >=
              kCacheLine);
static_assert(offsetof(ControlBlock, space_seq) - offsetof(ControlBlock, data_seq) >= kCacheLine);
// A waker reads the sleepers' count on the line of the waiter count it may then update.
static_assert(offsetof(ControlBlock, data_sleepers) / kCacheLine ==
              offsetof(ControlBlock, data_waiters) / kCacheLine);
static_assert(offsetof(ControlBlock, space_sleepers) / kCacheLine ==
              offsetof(ControlBlock, space_waiters) / kCacheLine);

enum class EndpointState : std::uint32_t { free = 0, active = 1, reclaiming = 2 };

/// One entry of the publisher or subscriber table, one cache line each.
struct EndpointRecord {
    std::uint32_t state; // EndpointState
    std::uint32_t pid;   // informational: pids are reused, never decide on them
    std::uint32_t wait_mode;
    std::uint32_t generation; // bumped on every attach
    std::uint64_t cursor;     // broadcast subscriber: next position to read
    std::uint64_t lost;       // broadcast subscriber: messages lost in all
    std::uint32_t sleeps;     // 1: counted in data_sleepers (subscriber) or space_sleepers
    std::uint8_t reserved[kCacheLine - 36];
};
static_assert(std::is_standard_layout_v<EndpointRecord>);
static_assert(sizeof(EndpointRecord) == kCacheLine);
static_assert(offsetof(EndpointRecord, sleeps) == 32);

/// One peer event (docs/memory-layout.md, "Peer events"). `stamp` is the seqlock of the
/// record: 2n+1 while event n is being written into it, 2n+2 once it is complete.
struct EventRecord {
    std::uint64_t stamp;
    std::uint32_t kind; // EventKind
    std::uint32_t role; // Role of the endpoint the event is about
    std::uint32_t endpoint_index;
    std::uint32_t pid; // informational, as the daemon saw it
    std::uint64_t reserved;
};
static_assert(std::is_standard_layout_v<EventRecord>);
static_assert(sizeof(EventRecord) == 32);

inline constexpr std::uint64_t kEventRecords = 64; // a power of two

/// The peer-event ring at the end of the control region. One writer: the daemon (its
/// ChannelSupervisor), on attach, detach and reclaim, never on the data path. Each endpoint
/// reads it from a cursor of its own, in its own memory.
struct EventRing {
    alignas(kCacheLine) std::uint64_t head; // events written so far
    // Waiters for events alone sleep on wake_seq (peer_events.hpp); statistics beside it.
    std::uint32_t wake_seq;
    std::uint32_t waiters;
    std::uint64_t waits;
    std::uint64_t wakes;
    std::uint8_t pad[kCacheLine - 32];
    EventRecord records[kEventRecords];
};
static_assert(std::is_standard_layout_v<EventRing>);
static_assert(sizeof(EventRing) % kCacheLine == 0);
static_assert(offsetof(EventRing, records) == kCacheLine);

/// Payload-region state after the header: written by publishers only.
struct PayloadBlock {
    // SPSC: publish index. MPMC and broadcast: next position to claim.
    alignas(kCacheLine) std::uint64_t head;
    std::uint8_t pad[kCacheLine - 8];
};
static_assert(sizeof(PayloadBlock) == kCacheLine);

/// Start of every slot. `state` is used by broadcast channels (claim/commit marker and
/// seqlock); queues keep their claim state in the control region's cells instead.
struct SlotHeader {
    std::uint64_t length;
    std::uint64_t state;
};
static_assert(std::is_standard_layout_v<SlotHeader>);
static_assert(sizeof(SlotHeader) == 16);

/// rpc: one caller's shared state, one cache line, in the control region. The caller writes
/// `calls` (its doorbell: servers scan a caller whose count moved) and `replies`; servers and
/// the daemon write `reply_seq`, `late_replies` and `failed`. Every field is a hint or a
/// statistic: nothing indexes memory by it.
struct RpcCallerBlock {
    std::uint64_t reserved;  // 0; unused
    std::uint32_t reply_seq; // the caller sleeps on it; servers bump it and wake
    std::uint32_t reply_waiters;
    std::uint64_t calls;        // requests posted: the doorbell, written by the caller only
    std::uint64_t replies;      // replies received
    std::uint64_t failed;       // calls failed because their server died (Errc::closed)
    std::uint64_t late_replies; // replies dropped: their caller had timed out or died
    std::uint64_t reply_waits;  // times the caller slept
    std::uint64_t reply_wakes;  // times a server had to wake it
};
static_assert(std::is_standard_layout_v<RpcCallerBlock>);
static_assert(sizeof(RpcCallerBlock) == kCacheLine);

/// pool: the shared state of the free list and the pool's counters, in the control region.
/// Every participant writes it; nothing indexes memory by a value read from it unchecked.
struct PoolControl {
    // The free list's head word (shm/pool_blocks.hpp has its encoding). Its own line: every
    // acquire and every last release changes it.
    alignas(kCacheLine) std::uint64_t head;
    std::uint8_t head_pad[kCacheLine - 8];
    // Statistics, written with relaxed read-modify-writes beside the operations they count.
    alignas(kCacheLine) std::uint64_t acquired; // blocks taken from the free list
    std::uint64_t returned;                     // blocks given back to the free list
    std::uint64_t handed_on;                    // references put into handles
    std::uint64_t adopted;                      // references taken out of handles
    std::uint64_t dropped;                      // references in handles given back unread
    std::uint64_t reclaimed;                    // references of dead endpoints given back
    std::uint64_t exhausted;                    // acquires that found no free block
    std::uint64_t high_water;                   // most blocks out of the free list at once
};
static_assert(std::is_standard_layout_v<PoolControl>);
static_assert(sizeof(PoolControl) == 2 * kCacheLine);
static_assert(offsetof(PoolControl, acquired) - offsetof(PoolControl, head) >= kCacheLine);

inline constexpr std::uint32_t kSlotLengthOffset = offsetof(SlotHeader, length);
inline constexpr std::uint32_t kSlotStateOffset = offsetof(SlotHeader, state);
inline constexpr std::uint32_t kSlotDataOffset = sizeof(SlotHeader);

static_assert(std::atomic<std::uint64_t>::is_always_lock_free); // shared across processes
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint64_t>::required_alignment == alignof(std::uint64_t));

/// Where everything is, computed from the geometry alone (never read from the segment).
struct Geometry {
    std::uint64_t slot_size;
    std::uint64_t slot_count;
    std::uint64_t stride;
    std::uint32_t max_publishers;
    std::uint32_t max_subscribers;
    bool has_cells;
    bool rpc{false};
    std::uint64_t reply_slot_size{0}; // rpc only
    std::uint64_t reply_stride{0};    // rpc only
    bool pool{false};

    std::uint64_t control_block_offset() const { return sizeof(RegionHeader); }
    std::uint64_t publishers_offset() const {
        return control_block_offset() + sizeof(ControlBlock);
    }
    std::uint64_t subscribers_offset() const {
        return publishers_offset() + std::uint64_t{max_publishers} * sizeof(EndpointRecord);
    }
    std::uint64_t cells_offset() const {
        return subscribers_offset() + std::uint64_t{max_subscribers} * sizeof(EndpointRecord);
    }
    // rpc: callers are the publisher table, so there is one call slot per caller and depth.
    std::uint64_t call_slots() const {
        return rpc ? std::uint64_t{max_publishers} * slot_count : 0;
    }
    std::uint64_t rpc_callers_offset() const { return cells_offset(); }
    std::uint64_t rpc_states_offset() const {
        return rpc_callers_offset() + std::uint64_t{max_publishers} * sizeof(RpcCallerBlock);
    }
    std::uint64_t rpc_replies_offset() const {
        return round_up(rpc_states_offset() + call_slots() * 8, kCacheLine);
    }
    // pool: the free list and counters, one state word and one link per block.
    std::uint64_t pool_control_offset() const { return round_up(cells_offset(), kCacheLine); }
    std::uint64_t block_states_offset() const {
        return pool_control_offset() + sizeof(PoolControl);
    }
    std::uint64_t block_next_offset() const { return block_states_offset() + slot_count * 8; }
    // The event ring ends the control region of every kind: after the queue's cells, after
    // an rpc channel's replies, or after a pool's links.
    std::uint64_t events_offset() const {
        if (rpc) {
            return round_up(rpc_replies_offset() + call_slots() * reply_stride, kCacheLine);
        }
        if (pool) {
            return round_up(block_next_offset() + slot_count * 4, kCacheLine);
        }
        return round_up(cells_offset() + (has_cells ? slot_count * 8 : 0), kCacheLine);
    }
    std::uint64_t control_bytes() const {
        return round_up(events_offset() + sizeof(EventRing), kPageSize);
    }
    std::uint64_t payload_block_offset() const { return sizeof(RegionHeader); }
    // A pool's blocks start on a page, so that each block of a page-multiple size is whole
    // pages (what a device or O_DIRECT wants of a frame buffer).
    std::uint64_t slots_offset() const {
        const std::uint64_t after_block = payload_block_offset() + sizeof(PayloadBlock);
        return pool ? round_up(after_block, kPageSize) : after_block;
    }
    std::uint64_t payload_bytes() const {
        return round_up(slots_offset() + (rpc ? call_slots() : slot_count) * stride, kPageSize);
    }

    static std::uint64_t round_up(std::uint64_t v, std::uint64_t to) {
        return (v + to - 1) / to * to;
    }
    static std::uint64_t stride_for(std::uint64_t slot_size) {
        return round_up(sizeof(SlotHeader) + slot_size, kCacheLine);
    }
    /// A pool block has no header: cache lines apart, or whole pages from a page up.
    static std::uint64_t pool_stride_for(std::uint64_t block_size) {
        return round_up(block_size, block_size >= kPageSize ? kPageSize : kCacheLine);
    }
};

/// Whether a queue of this shape runs the single-producer single-consumer algorithm.
inline bool is_spsc(ChannelKind kind, std::uint32_t max_publishers, std::uint32_t max_subscribers) {
    return kind == ChannelKind::queue && max_publishers == 1 && max_subscribers == 1;
}

} // namespace shmbus::detail
