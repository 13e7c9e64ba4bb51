// Atomic access to integers that live in shared memory, and the encoding of slot states.
//
// Segment memory is not a C++ object of any one process, so its fields are plain integers
// reached through std::atomic_ref: atom(field) for any access, atom_load(field, order) for a
// load through a const path. Both live in <shmbus/detail/shared_word.hpp>, included here,
// because the inline data path of the public header uses them too. Every call site names the
// ordering it needs and says whom it pairs with; the helpers only shorten the spelling.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/detail/shared_word.hpp>

#include <atomic>
#include <cstdint>

namespace shmbus::detail {

/// Hint to the CPU that this is a spin-wait loop (frees the sibling hyperthread).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// Asks the CPU to fetch the cache line holding `p` for writing, ahead of the stores that will
/// need it; nothing is read or written, and an address never faults. An asm statement: the
/// compiler takes __builtin_prefetch() to have no effect and may drop it.
inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
    asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__aarch64__)
    asm volatile("prfm pstl1keep, %0" : : "Q"(*static_cast<const char*>(p)));
#else
    (void)p;
#endif
}

// A claim state packs, into one 64-bit word, the position it refers to (modulo 2^48:
// positions are only ever compared for distance within a few laps), what is happening to
// the slot, and who is doing it:
//
//   bits 63..16  position (mod 2^48)
//   bits 15..14  SlotPhase
//   bits 13..0   owner tag: endpoint index + 1, or kOwnerAbandoned / kOwnerRedeliver /
//                kOwnerGap
//
// The owner tag is what lets a third party find, after a process died, exactly the slots
// that process held: the claim and its ownership are one compare-and-swap.
//
// The SPSC ring (<shmbus/detail/spsc_ring.hpp>), whose inline half is compiled into
// applications, spells its states from DataPort fields that open_endpoint() fills from
// make_state() (and checks at compile time): the encoding is changed here and nowhere else.
enum class SlotPhase : std::uint64_t {
    free = 0,      // position may be claimed by a writer
    reserved = 1,  // a writer (owner) is filling it
    committed = 2, // readable; owner 0, kOwnerAbandoned for a slot never filled, or
                   // kOwnerGap for a recorded gap (broadcast; the length is its count)
    reading = 3,   // queue: a consumer (owner) has taken it
};

inline constexpr std::uint64_t kPositionBits = 48;
inline constexpr std::uint32_t kStateShift = 16;
inline constexpr std::uint64_t kPositionMask = (std::uint64_t{1} << kPositionBits) - 1;
inline constexpr std::uint32_t kOwnerMask = 0x3FFF;
inline constexpr std::uint32_t kOwnerAbandoned = 0x3FFF;
inline constexpr std::uint32_t kOwnerRedeliver = 0x3FFE;
/// Broadcast: a committed slot that stands for messages lost upstream of its publisher (a
/// bridge's cut link); its length word holds how many. Publisher::record_gap() writes it,
/// subscribers count it as lost. Above any endpoint tag (kMaxEndpoints + 1).
inline constexpr std::uint32_t kOwnerGap = 0x3FFD;
static_assert(kOwnerGap > shmbus::kMaxEndpoints + 1);

inline constexpr std::uint64_t make_state(std::uint64_t pos, SlotPhase phase,
                                          std::uint32_t owner = 0) noexcept {
    return ((pos & kPositionMask) << kStateShift) | (static_cast<std::uint64_t>(phase) << 14) |
           (owner & kOwnerMask);
}
inline constexpr std::uint64_t state_pos(std::uint64_t s) noexcept {
    return s >> kStateShift;
}
inline constexpr SlotPhase state_phase(std::uint64_t s) noexcept {
    return static_cast<SlotPhase>((s >> 14) & 3);
}
inline constexpr std::uint32_t state_owner(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>(s & kOwnerMask);
}
/// Signed distance from position `pos` (full 64-bit) to the state's position, mod 2^48.
inline constexpr std::int64_t state_distance(std::uint64_t s, std::uint64_t pos) noexcept {
    const std::uint64_t d = (state_pos(s) - (pos & kPositionMask)) & kPositionMask;
    // Sign-extend the 48-bit difference.
    return static_cast<std::int64_t>(d << 16) >> 16;
}

/// Moves a claimed algorithm's shared index (an MPMC queue's or a broadcast channel's `head`,
/// an MPMC queue's dequeue position) forward to `target`, from `seen`, the value the caller
/// last read, unless someone moved it that far already. The index only says where to look
/// next: a slot is owned by the CAS on its state, made before, so a publisher advances head
/// once for a whole batch of claims, and whoever finds an index behind a claimed slot
/// passes over it. release: pairs with the acquire loads of the index, so that whoever reads
/// the new value sees the claims before it.
inline void advance_index(std::uint64_t& index, std::uint64_t seen, std::uint64_t target) noexcept {
    while (seen < target &&
           !atom(index).compare_exchange_weak(seen, target, std::memory_order_release,
                                              std::memory_order_relaxed)) {
    }
}

} // namespace shmbus::detail
