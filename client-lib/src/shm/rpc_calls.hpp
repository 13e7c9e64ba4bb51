// The call slots of an rpc channel: how a call's claim word is spelled, where its request
// and reply live, and the repairs a departing endpoint needs. Shared by Server, Caller and
// ChannelSupervisor (the daemon's reclaim), so that each rule has one home.
//
// Each caller owns `depth` call slots. Slot (c, k) has a claim word in the control region,
// a request slot in the payload (written by caller c only; servers map the payload
// read-only) and a reply slot in the control region (written by the server holding the
// call). A call moves through the claim word like this, every step one compare-and-swap or
// a store by the word's sole owner at that point:
//
//   free --caller--> requested(id) --server s--> taken(id, s) --s--> replied(id) --caller--> free
//                        |                          |   \--reclaim of s--> failed(id) --caller-->
//                        free |                          \--caller gives up--> cancelled(id, s)
//                        \--caller gives up--> free              s responds, or reclaim of s -->
//                        free
//
// Ownership is in the word (the server's owner tag), so that a third party can repair
// exactly what a dead endpoint held: a dead server's taken calls fail, a dead caller's
// calls are withdrawn or cancelled. The correlation id makes a stale handle harmless: a
// server answers only a word that still says taken(id, itself).
//
// The outcome stamp: whoever moves a word to replied(id) or failed(id) — the server that
// answers, or the repair of a dead server — then stores that same value into the reply
// slot's `state` word. The caller polls the stamp, not the claim word: the claim word's line
// stays with the server that holds the call, which writes it twice (taken, then replied), so
// a caller spinning on it would pull it away in between and cost the reply one more
// transfer between the cores. The claim word stays the authority: a stamp is written only
// after the word holds that value, and the caller reads the word itself when no server is
// attached, when it gives a call up, and to report damage. A finisher that dies between its
// CAS and its stamp is covered by the repair (fail_taken_calls() stamps every finished call).
//
// Memory ordering, the pairs every site refers to:
//   [request] the caller's release store of requested(id), after writing the request ->
//             the server's acq_rel CAS to taken: the server reads the request after it.
//   [reply]   the server's release CAS to replied(id) or failed(id), after writing the reply
//             -> the caller's acquire load of the word: it reads the reply after it.
//   [outcome] the finisher's release store of the stamp, after its CAS -> the caller's
//             acquire load of the stamp: it reads the reply (and may free the slot) after it.
//   [reuse]   the server's release CAS of cancelled -> free (its reads of the request done)
//             and the caller's own release store of free -> the caller's acquire load when
//             it picks a free slot to write into.
#pragma once

#include "shm/atomics.hpp"
#include "shm/endpoint_table.hpp"
#include "shm/segment.hpp"

#include <cstdint>

namespace shmbus::detail {

enum class CallPhase : std::uint32_t {
    free = 0,
    requested = 1, // posted by the caller, not yet taken
    taken = 2,     // a server (owner) is serving it
    replied = 3,   // the reply is in the reply slot
    failed = 4,    // the server died holding it: Errc::closed at the caller
    cancelled = 5, // the caller gave up while a server (owner) held it
};

// bits 63..24 correlation id (40 bits), bits 23..16 phase, bits 13..0 server owner tag.
inline constexpr std::uint32_t kCallIdShift = 24;
inline constexpr std::uint64_t kCallIdMask = (std::uint64_t{1} << 40) - 1;

inline constexpr std::uint64_t make_call(std::uint64_t id, CallPhase phase,
                                         std::uint32_t owner = 0) noexcept {
    return ((id & kCallIdMask) << kCallIdShift) | (static_cast<std::uint64_t>(phase) << 16) |
           (owner & kOwnerMask);
}
inline constexpr std::uint64_t call_id(std::uint64_t s) noexcept {
    return s >> kCallIdShift;
}
/// The phase; a value outside CallPhase (a damaged word) comes back as itself, which no
/// switch of ours accepts.
inline constexpr CallPhase call_phase(std::uint64_t s) noexcept {
    return static_cast<CallPhase>((s >> 16) & 0xFF);
}
inline constexpr std::uint32_t call_owner(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>(s & kOwnerMask);
}

/// Where one call slot's parts are. `caller` < max_publishers and `slot` < slot_count are
/// the caller's duty: both come from our own bookkeeping or a bounds check.
struct CallSlot {
    std::uint64_t* state;
    SlotHeader* request; // payload: length, then slot_size bytes
    SlotHeader* reply;   // control: length, then reply_slot_size bytes
};
inline CallSlot call_slot(const AttachedChannel& ch, std::uint32_t caller,
                          std::uint32_t slot) noexcept {
    const std::uint64_t i = std::uint64_t{caller} * ch.geo.slot_count + slot;
    return {&ch.call_states[i], reinterpret_cast<SlotHeader*>(ch.slots + i * ch.geo.stride),
            reinterpret_cast<SlotHeader*>(ch.replies + i * ch.geo.reply_stride)};
}

/// Mirrors `word` (replied(id) or failed(id), which the claim word of `s` now holds) into
/// the slot's outcome stamp ([outcome]).
inline void stamp_outcome(const CallSlot& s, std::uint64_t word) noexcept {
    // release: [outcome]; the reply, its length and the claim word's value happen-before the
    // caller's acquire load of the stamp.
    atom(s.reply->state).store(word, std::memory_order_release);
}

/// Caller `caller`'s reply futex: it sleeps there for replies, servers wake it.
inline WaitChannel reply_wait(const AttachedChannel& ch, std::uint32_t caller) noexcept {
    RpcCallerBlock& b = ch.rpc_callers[caller];
    return {&b.reply_seq, &b.reply_waiters, &b.reply_waits, &b.reply_wakes};
}

/// A caller gives up all its calls (its destructor, or the daemon's reclaim of a dead
/// caller): requested -> free (withdrawn), taken -> cancelled (the server's reply will be
/// dropped and counted), replied / failed -> free. Returns how many calls were in flight.
std::uint64_t abandon_calls(const AttachedChannel& ch, std::uint32_t caller) noexcept;
/// A server's taken calls fail (its destructor, or the daemon's reclaim of a dead server):
/// taken(id, owner) -> failed(id), cancelled(id, owner) -> free; stamps every finished call
/// whose stamp is missing; wakes the callers. Returns how many calls failed.
std::uint64_t fail_taken_calls(const AttachedChannel& ch, std::uint32_t owner) noexcept;
/// Whether caller `caller` has an outcome to collect: a claim word replied or failed whose
/// stamp says the same (what the caller's poll looks at). For a caller's wait relay.
bool outcome_stamped(const AttachedChannel& ch, std::uint32_t caller) noexcept;
/// Whether caller `caller` has a call that no server took yet.
bool call_requested(const AttachedChannel& ch, std::uint32_t caller) noexcept;
/// Whether any caller has a call that no server took yet. For a server's wait relay.
bool any_call_requested(const AttachedChannel& ch) noexcept;
/// Wakes every caller that sleeps for a reply (a server left: a call nobody can take now
/// must fail with not_found).
void wake_all_callers(const AttachedChannel& ch) noexcept;
/// Calls in flight on the whole channel (words not free), for statistics.
std::uint64_t calls_in_flight(const AttachedChannel& ch) noexcept;

} // namespace shmbus::detail
