// Repairs of an rpc channel's call slots when an endpoint leaves or dies (see rpc_calls.hpp).
//
// Run by the departing endpoint itself (destructor) or by a third party once the owner is
// known dead (ChannelSupervisor, in the daemon). Every word is read as untrusted: a phase
// outside CallPhase is left alone, and each rewrite is a CAS from the exact value read, so
// a concurrent server or caller and this repair never both win.
#include "shm/rpc_calls.hpp"

namespace shmbus::detail {

namespace {

/// Rewrites the words of caller `c`'s call slots that `select` picks; returns how many.
/// The orderings of rewrite_states() are those of rpc_calls.hpp: its acquire load and CAS
/// pair with the last owner's release ([request], [reply]) and the next owner's acquire
/// ([reply], [reuse]).
template <typename Select>
std::uint64_t rewrite_calls(const AttachedChannel& ch, std::uint32_t c, Select&& select) noexcept {
    return rewrite_states(
        ch.geo.slot_count,
        [&](std::uint64_t k) -> std::uint64_t& {
            return *call_slot(ch, c, static_cast<std::uint32_t>(k)).state;
        },
        select);
}

/// Stamps every call of caller `c` that is finished (replied or failed) and whose stamp
/// says otherwise: the calls failed just now, and any whose finisher died between its CAS
/// and its stamp. A CAS from the stamp read, so that a newer stamp (the slot reused and
/// answered meanwhile) is never overwritten by an older one.
void restamp_finished(const AttachedChannel& ch, std::uint32_t c) noexcept {
    for (std::uint32_t k = 0; k < ch.geo.slot_count; ++k) {
        const CallSlot s = call_slot(ch, c, k);
        // acquire: pairs with the finisher's release CAS ([reply]): the value we mirror is
        // the word's, with what it publishes.
        const std::uint64_t w = atom(*s.state).load(std::memory_order_acquire);
        if (call_phase(w) != CallPhase::replied && call_phase(w) != CallPhase::failed) {
            continue;
        }
        // relaxed: only selects; the CAS decides.
        std::uint64_t stamp = atom(s.reply->state).load(std::memory_order_relaxed);
        if (stamp != w) {
            // release: [outcome], as stamp_outcome().
            (void)atom(s.reply->state)
                .compare_exchange_strong(stamp, w, std::memory_order_release,
                                         std::memory_order_relaxed);
        }
    }
}

} // namespace

std::uint64_t abandon_calls(const AttachedChannel& ch, std::uint32_t caller) noexcept {
    if (ch.call_states == nullptr || caller >= ch.geo.max_publishers) {
        return 0;
    }
    const std::uint64_t n = rewrite_calls(ch, caller, [](std::uint64_t s, std::uint64_t& out) {
        switch (call_phase(s)) {
        case CallPhase::requested:
        case CallPhase::replied:
        case CallPhase::failed:
            out = make_call(call_id(s), CallPhase::free);
            return true;
        case CallPhase::taken:
            out = make_call(call_id(s), CallPhase::cancelled, call_owner(s));
            return true;
        default:
            return false;
        }
    });
    return n;
}

std::uint64_t fail_taken_calls(const AttachedChannel& ch, std::uint32_t owner) noexcept {
    if (ch.call_states == nullptr) {
        return 0;
    }
    std::uint64_t failed = 0;
    for (std::uint32_t c = 0; c < ch.geo.max_publishers; ++c) {
        const std::uint64_t n = rewrite_calls(ch, c, [owner](std::uint64_t s, std::uint64_t& out) {
            out = make_call(call_id(s), CallPhase::failed);
            return call_owner(s) == owner && call_phase(s) == CallPhase::taken;
        });
        // Calls their callers gave up while this server held them: nobody answers them now.
        (void)rewrite_calls(ch, c, [owner](std::uint64_t s, std::uint64_t& out) {
            out = make_call(call_id(s), CallPhase::free);
            return call_owner(s) == owner && call_phase(s) == CallPhase::cancelled;
        });
        restamp_finished(ch, c);
        if (n != 0) {
            // relaxed: a statistic.
            atom(ch.rpc_callers[c].failed).fetch_add(n, std::memory_order_relaxed);
            failed += n;
            wake_sleepers(reply_wait(ch, c));
        }
    }
    return failed;
}

bool outcome_stamped(const AttachedChannel& ch, std::uint32_t caller) noexcept {
    for (std::uint32_t k = 0; caller < ch.geo.max_publishers && k < ch.geo.slot_count; ++k) {
        const CallSlot s = call_slot(ch, caller, k);
        // acquire, both: [reply] and [outcome]; the caller's own poll reads the reply after.
        const std::uint64_t w = atom_load(*s.state, std::memory_order_acquire);
        const CallPhase p = call_phase(w);
        if ((p == CallPhase::replied || p == CallPhase::failed) &&
            atom_load(s.reply->state, std::memory_order_acquire) == w) {
            return true;
        }
    }
    return false;
}

bool call_requested(const AttachedChannel& ch, std::uint32_t caller) noexcept {
    for (std::uint32_t k = 0; caller < ch.geo.max_publishers && k < ch.geo.slot_count; ++k) {
        // relaxed: only decides whether to wake someone, who then CASes the word.
        if (call_phase(atom_load(*call_slot(ch, caller, k).state, std::memory_order_relaxed)) ==
            CallPhase::requested) {
            return true;
        }
    }
    return false;
}

bool any_call_requested(const AttachedChannel& ch) noexcept {
    for (std::uint32_t c = 0; ch.call_states != nullptr && c < ch.geo.max_publishers; ++c) {
        if (call_requested(ch, c)) {
            return true;
        }
    }
    return false;
}

void wake_all_callers(const AttachedChannel& ch) noexcept {
    for (std::uint32_t c = 0; ch.rpc_callers != nullptr && c < ch.geo.max_publishers; ++c) {
        wake_sleepers(reply_wait(ch, c));
    }
}

std::uint64_t calls_in_flight(const AttachedChannel& ch) noexcept {
    std::uint64_t n = 0;
    for (std::uint64_t i = 0; ch.call_states != nullptr && i < ch.geo.call_slots(); ++i) {
        // relaxed: a statistic; nothing is read on the strength of it.
        const CallPhase p = call_phase(atom_load(ch.call_states[i], std::memory_order_relaxed));
        n += p == CallPhase::requested || p == CallPhase::taken ? 1 : 0;
    }
    return n;
}

} // namespace shmbus::detail
