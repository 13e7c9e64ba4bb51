// Pool blocks: the free list and the per-block state words of a pool channel, and every
// transition of a block's references. Shared by Pool (the data path), ChannelSupervisor (the
// daemon's reclaim of a dead endpoint and the statistics) and channel creation, so that each
// rule has one home.
//
// A block's references. Each block has one 64-bit state word in the control region:
//
//   bits 63..32  generation: bumped every time the block goes back to the free list
//   bits 31..24  references in transit: handed on in handles, not yet adopted (0..255)
//   bits 23..0   holders: bit k set = holder slot k holds one reference
//
// A holder slot is an endpoint's table entry: publisher p is slot p, subscriber s is slot
// max_publishers + s (so a pool has at most kMaxPoolEndpoints endpoints). The low 32 bits are
// zero exactly when the block is free. Every change of a reference is one compare-and-swap
// of this word, which names who holds what: after an endpoint died, a third party (the
// daemon's supervisor) finds exactly the references it held, in the word itself.
//
//   free(g) --take by k--> {k} --share/hand on--> transit t, holders H --adopt by j--> ...
//   ... --release by the last holder k--> give: free(g + 1), back on the free list
//
// The free list is a stack of block indices linked through block_next[], with its head word
// in PoolControl:
//
//   bits 63..32  tag: bumped on every change of the head (ABA: a stale compare fails)
//   bits 31..27  holder slot of the operation in progress
//   bits 26..25  operation in progress: none, taking (a pop), giving (a push)
//   bits 24..0   index of the top block, or kNoBlock when the list is empty
//
// Taking and giving are two steps each, a change of the head and a change of the block's
// state word. So that a process killed between the two (or merely descheduled) neither
// leaks the block nor stops the others, the first step announces the whole operation in the
// head word (which block, taken or given by which holder slot), and anyone who finds an
// announced operation completes it before doing its own: the state word's change is
// idempotent (free -> held by k, or held by k alone -> free of the next generation), then the
// head moves on. A supervisor reclaiming a dead holder completes its announced operation the
// same way, then releases every reference the holder's bit shows. Both operations are O(1)
// and lock-free: nobody waits for anybody, a stalled thread's operation is finished by the
// next one to come.
//
// Memory ordering. Every change of a state word and of the head word is a read-modify-write
// (acq_rel), so each word's changes form one release sequence:
//   [data]   a holder's accesses to the block's bytes happen before its CAS that hands on,
//            shares or releases a reference; whoever takes a reference next (adopt, take)
//            acquires that word first, and sees them.
//   [link]   a giver's store of block_next[i] happens before its announcing CAS of the head;
//            whoever completes the pop of i later acquired the head first, and reads it.
//   [help]   a completion's CAS of the state word happens before its CAS of the head; a
//            thread that sees the head moved on (acquire) sees the state word changed.
//
// Untrusted memory. The head, the links and the state words are writable by every process
// of the channel. Every index is checked against the geometry before it addresses anything;
// a state word that does not fit the operation (a block on the free list that is in use, a
// block given back that others still reference) is reported as corruption, the block is
// taken off the free list, and the caller gets Errc::corrupted naming it. Every loop is
// bounded (kPoolAttempts): a word that never settles is Errc::would_block, not a hang.
#pragma once

#include "shm/atomics.hpp"
#include "shm/segment.hpp"

#include <cstdint>
#include <vector>

namespace shmbus::detail {

inline constexpr std::uint32_t kTransitShift = 24;
inline constexpr std::uint64_t kTransitOne = std::uint64_t{1} << kTransitShift;
inline constexpr std::uint32_t kMaxTransit = 255;
inline constexpr std::uint64_t kHoldersMask = (std::uint64_t{1} << kTransitShift) - 1;
inline constexpr std::uint64_t kReferencesMask = 0xFFFF'FFFFULL;
static_assert(kMaxPoolEndpoints == kTransitShift, "one holder bit per pool endpoint");

inline constexpr std::uint32_t block_generation(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>(s >> 32);
}
inline constexpr std::uint32_t block_transit(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>((s >> kTransitShift) & 0xFF);
}
inline constexpr std::uint32_t block_holders(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>(s & kHoldersMask);
}
inline constexpr bool block_is_free(std::uint64_t s) noexcept {
    return (s & kReferencesMask) == 0;
}
inline constexpr std::uint64_t holder_bit(std::uint32_t slot) noexcept {
    return std::uint64_t{1} << slot;
}
/// The state word of a block of generation `g` with no reference: free.
inline constexpr std::uint64_t free_block(std::uint32_t g) noexcept {
    return std::uint64_t{g} << 32;
}

enum class PoolOp : std::uint32_t { none = 0, taking = 1, giving = 2 };

inline constexpr std::uint32_t kNoBlock = (1u << 25) - 1;
static_assert(kMaxSlotCount < kNoBlock, "every block index fits the head word");

inline constexpr std::uint64_t make_head(std::uint32_t index, PoolOp op, std::uint32_t slot,
                                         std::uint32_t tag) noexcept {
    return (std::uint64_t{tag} << 32) | (std::uint64_t{slot & 31} << 27) |
           (static_cast<std::uint64_t>(op) << 25) | (index & kNoBlock);
}
inline constexpr std::uint32_t head_index(std::uint64_t h) noexcept {
    return static_cast<std::uint32_t>(h & kNoBlock);
}
inline constexpr PoolOp head_op(std::uint64_t h) noexcept {
    return static_cast<PoolOp>((h >> 25) & 3);
}
inline constexpr std::uint32_t head_slot(std::uint64_t h) noexcept {
    return static_cast<std::uint32_t>((h >> 27) & 31);
}
inline constexpr std::uint32_t head_tag(std::uint64_t h) noexcept {
    return static_cast<std::uint32_t>(h >> 32);
}

/// How many times a pool operation tries again when other processes keep changing the word
/// it needs, before it gives up with Errc::would_block.
inline constexpr std::uint32_t kPoolAttempts = 1u << 16;

/// The holder slot of the endpoint at `index` of `role`'s table.
inline std::uint32_t holder_slot(const Geometry& g, Role role, std::uint32_t index) noexcept {
    return role == Role::publisher ? index : g.max_publishers + index;
}

/// What a pool operation found. Everything but `ok` becomes an Error in pool.cpp.
enum class PoolStatus {
    ok,
    empty,        // take: no free block
    stale,        // the block's generation is not the handle's: it was given back and reused
    no_reference, // adopt, drop: the handle's references are all taken; release: not held
    held_already, // adopt: this holder holds the block already
    too_many,     // share: kMaxTransit references in transit
    corrupted,    // a word that fits no transition: `PoolFault` says which
    contended,    // kPoolAttempts changes by others in a row
};

/// What was wrong, for the message of a `corrupted` status.
struct PoolFault {
    const char* what{nullptr}; // a sentence fragment, static
    std::uint64_t block{0};
    std::uint64_t word{0};
};

/// Puts every block on the free list, 0 first. Creation only, before anyone attaches.
void init_pool_free_list(const AttachedChannel& ch) noexcept;

/// Takes a free block for holder `slot`: its index and generation on `ok`.
PoolStatus take_block(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t& index,
                      std::uint32_t& generation, PoolFault& fault) noexcept;
/// Gives up holder `slot`'s reference to block `index` of `generation`; the last reference
/// gives the block back to the free list.
PoolStatus release_reference(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                             std::uint32_t generation, PoolFault& fault) noexcept;
/// Puts `copies` references to a block `slot` holds in transit; `keep`: slot keeps its own
/// (share), else gives it up in the same step (hand on).
PoolStatus add_transit(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                       std::uint32_t generation, std::uint32_t copies, bool keep,
                       PoolFault& fault) noexcept;
/// Turns one reference in transit into holder `slot`'s.
PoolStatus adopt_reference(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                           std::uint32_t generation, PoolFault& fault) noexcept;
/// Gives back one reference in transit without holding it (freeing the block if it was the
/// last reference).
PoolStatus drop_reference(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                          std::uint32_t generation, PoolFault& fault) noexcept;

/// Releases every reference holder `slot` holds, after completing an operation it left
/// announced in the head. Call once that holder is known dead. Returns how many.
std::uint64_t reclaim_holder(const AttachedChannel& ch, std::uint32_t slot) noexcept;

/// What the block states say now, for tools.
struct PoolUsage {
    std::uint64_t in_use{0};         // blocks not free
    std::uint64_t in_transit{0};     // references in handles
    std::vector<std::uint64_t> held; // per holder slot: blocks it holds
};
/// Reads every block state (relaxed: a snapshot for tools). Throws std::bad_alloc.
PoolUsage pool_usage(const AttachedChannel& ch);

} // namespace shmbus::detail
