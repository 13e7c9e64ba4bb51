// The publisher and subscriber tables in the control region, waiting and waking, and the
// reclaim of what a dead endpoint held. Shared by Publisher, Subscriber and
// ChannelSupervisor so that there is one implementation of each rule.
//
// Failure policy: the tables are in memory every participant can write. Nothing read from
// them is trusted beyond its bounds; a garbage entry can at worst make a channel misbehave,
// never make this process fault.
#pragma once

#include "endpoint_hooks.hpp"
#include "shm/atomics.hpp"
#include "shm/futex.hpp"
#include "shm/segment.hpp"
#include "shm/sleep_announcement.hpp"

#include <shmbus/detail/seqlock.hpp>

#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <sys/types.h>

namespace shmbus::detail {

/// Takes an entry of `table` (size `count`): `wanted` if >= 0, else the first free one.
/// Returns its index. Errc::limit_reached when all are taken.
Result<std::uint32_t> claim_endpoint(EndpointRecord* table, std::uint32_t count,
                                     std::int32_t wanted, WaitMode mode, const char* what,
                                     const std::string& channel) noexcept;
/// Errc::invalid_argument with `what`: a call the API does not allow (outstanding batch,
/// zero count). Out of line, so that building the message costs the data path nothing.
[[gnu::cold, gnu::noinline]] Error misuse(const char* what);

/// Errc::invalid_argument: a Publisher or Subscriber asked of a blackboard, counters or pool
/// channel, naming the class that opens it.
[[gnu::cold]] Error wrong_kind_for_ring(const ChannelInfo& info);

/// Marks entry `index` free again.
void release_endpoint(EndpointRecord& record) noexcept;

/// The data-path algorithm a channel's shape selects (publisher.cpp, subscriber.cpp).
enum class Algorithm { spsc, mpmc, broadcast };

/// What every endpoint holds, whichever side it is: its mapping, its table entry and the
/// constants derived from the channel. Publisher::Impl and Subscriber::Impl extend it.
struct EndpointCore {
    AttachedChannel ch;
    EndpointOptions options;
    Algorithm algo{Algorithm::spsc};
    std::uint32_t index{0};
    std::uint32_t owner{0};
    std::uint64_t cap{0};
    bool drop{false};
    pid_t attached_by{0}; // a copy inherited through fork() must not detach the original
    // The slot geometry and the batch bookkeeping the header's inline path shares with us.
    DataPort port;
    // This endpoint's announcement that it may sleep (subscriber: on data_seq; publisher:
    // on space_seq), made by its first sleep (sleep_announcement.hpp).
    mutable SleepAnnouncement sleep; // internally synchronized; made from const paths too
    // Run after the entry is released: how the Client tells the daemon (endpoint_hooks.hpp).
    std::function<void()> on_detach;
    // How the Client reaches us from another thread (endpoint_hooks.hpp); empty for an
    // endpoint attached without a Client.
    std::shared_ptr<EndpointLink> link;
    // Set once, by refuse_endpoint() on any thread, when a restarted daemon refused to take
    // this endpoint back; cleared never. Its release store publishes refused_why (written
    // before it, never after) and the cleared port.spsc to the acquire loads in refused().
    std::atomic<bool> refused_flag{false};
    std::string refused_why;

    EndpointCore() = default;
    EndpointCore(const EndpointCore&) = delete;
    EndpointCore& operator=(const EndpointCore&) = delete;
    /// Cuts the link before anything is unmapped, so that a refusal arriving now finds no
    /// endpoint.
    ~EndpointCore();

    /// Whether the daemon refused this endpoint: every call then answers refusal(). One
    /// load; the inline path never calls it (a refusal clears port.spsc, which sends every
    /// call here).
    [[nodiscard]] bool refused() const noexcept {
        // acquire: pairs with refuse_endpoint()'s release store; refused_why is then complete.
        return refused_flag.load(std::memory_order_acquire);
    }
    /// Errc::closed with why the daemon refused this endpoint. Call after refused().
    [[gnu::cold, gnu::noinline]] Error refusal() const;

    /// Counts a corruption of this channel and returns Errc::corrupted naming the channel
    /// and `what`. Out of line: only the error paths of the data path call it.
    [[gnu::cold, gnu::noinline]] Error corrupted(const std::string& what) const;
};

/// The link to `core` (endpoint_hooks.hpp), made on first use; on the endpoint's own thread.
/// Throws std::bad_alloc.
std::shared_ptr<EndpointLink> link_of(EndpointCore& core);

/// Maps `files` (payload writable for publishers, read-only for subscribers), takes an entry
/// of `role`'s table and fills `core`. On error `core` is left empty (ch.control == nullptr).
Result<void> open_endpoint(EndpointCore& core, const ChannelFiles& files, Role role,
                           const EndpointOptions& options) noexcept;

/// Maps `files` for `role`, refuses a channel of the other family (`rpc` says which one the
/// endpoint is), takes an entry of `role`'s table and fills the common fields of `core`.
/// On error `core` is left empty.
Result<void> attach_entry(EndpointCore& core, const ChannelFiles& files, Role role,
                          const EndpointOptions& options, bool rpc) noexcept;

/// Owner tag of a publisher / subscriber entry in claim states.
inline std::uint32_t owner_tag(std::uint32_t index) noexcept {
    return index + 1;
}

/// A futex word with its waiter count and statistics counters.
struct WaitChannel {
    std::uint32_t* seq;
    std::uint32_t* waiters;
    std::uint64_t* waits;
    std::uint64_t* wakes;
    /// Wakers: skip the handshake while this reads 0 (a ring channel's count of endpoints
    /// that announced they may sleep, or skip_word()'s constant); null: never skip.
    const std::uint32_t* sleepers{nullptr};
    /// Sleepers: the endpoint's announcement, made before its first sleep; null for a
    /// futex whose wakers never skip.
    SleepAnnouncement* announcement{nullptr};
};

inline WaitChannel data_wait(ControlBlock* c) noexcept {
    return {&c->data_seq, &c->data_waiters, &c->data_waits, &c->data_wakes};
}
inline WaitChannel space_wait(ControlBlock* c) noexcept {
    return {&c->space_seq, &c->space_waiters, &c->space_waits, &c->space_wakes};
}

/// The futex a ring endpoint sleeps on (a subscriber's data_seq, a publisher's space_seq),
/// with its announcement: for the endpoint's own wait_until() and its wait relay.
inline WaitChannel own_wait(const EndpointCore& core, Role self) noexcept {
    WaitChannel w =
        self == Role::subscriber ? data_wait(core.ch.control) : space_wait(core.ch.control);
    w.announcement = &core.sleep;
    return w;
}

/// The futex of the other side of a ring endpoint (the readers' data_seq for a publisher,
/// the writers' space_seq for a subscriber), which its wakes skip while nobody there may
/// sleep: DataPort::peer_sleepers, set at attach.
inline WaitChannel peer_wait(const EndpointCore& core, Role self) noexcept {
    WaitChannel w =
        self == Role::publisher ? data_wait(core.ch.control) : space_wait(core.ch.control);
    w.sleepers = core.port.peer_sleepers;
    return w;
}

/// Wakes the sleepers of `w`, if any. Call after the store that made the new state visible.
///
/// The sleeper handshake, the one comment every waiter-count site points at (DataPort's
/// [sleep] too). The waker stores the new state, then reads the waiter count with a
/// read-modify-write (fetch_add(0), acq_rel); the sleeper in wait_until() increments the
/// count (acq_rel), then re-checks its condition. The RMWs of one word are totally ordered
/// (its modification order), and each reads the value the one before wrote. If the waker's
/// comes first, it heads a release sequence that the sleeper's RMW reads from, so the
/// sleeper's RMW synchronizes with it and the re-check (acquire loads, or even relaxed ones)
/// sees the new state: it does not sleep. If the sleeper's comes first, the waker reads a
/// count above zero and wakes it. Either way no wake-up is lost, without a fence and without
/// seq_cst; the futex word `seq`, read before the increment, covers a wake-up that comes
/// between the re-check and FUTEX_WAIT.
///
/// On a ring channel the waker first reads the count of endpoints that announced they may
/// sleep (`w.sleepers`), and takes the handshake only when it is not 0; each sleeper
/// announces itself before its first sleep in a way no waker can miss
/// (sleep_announcement.hpp).
inline void wake_sleepers(const WaitChannel& w) noexcept {
    if (w.sleepers != nullptr) {
        // Keeps the caller's store before the load below in our code (no fence: see
        // sleep_announcement.hpp); relaxed: 0 means that nobody can be asleep.
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (atom_load(*w.sleepers, std::memory_order_relaxed) == 0) {
            return;
        }
    }
    if (atom(*w.waiters).fetch_add(0, std::memory_order_acq_rel) != 0) {
        // release: pairs with the acquire load of `seq` in wait_until().
        atom(*w.seq).fetch_add(1, std::memory_order_release);
        futex_wake_all(w.seq);
        // relaxed: a statistic.
        atom(*w.wakes).fetch_add(1, std::memory_order_relaxed);
    }
}

/// A deadline on the steady clock; `forever` for blocking calls without limit.
struct Deadline {
    std::chrono::steady_clock::time_point at;
    bool forever;
    static Deadline after(std::chrono::nanoseconds timeout) noexcept {
        // Anything beyond ~100 years is "no limit" (and would overflow time_point).
        if (timeout > std::chrono::hours(24 * 365 * 100)) {
            return {{}, true};
        }
        return {std::chrono::steady_clock::now() + timeout, false};
    }
    [[nodiscard]] std::chrono::nanoseconds remaining() const noexcept {
        if (forever) {
            return std::chrono::nanoseconds(-1);
        }
        return std::max(std::chrono::nanoseconds(0), at - std::chrono::steady_clock::now());
    }
    [[nodiscard]] bool passed() const noexcept {
        return !forever && std::chrono::steady_clock::now() >= at;
    }
};

inline constexpr std::uint32_t kDefaultSpins = 4096;
inline constexpr std::uint32_t kSpinsPerYield = 256; // adaptive: a yield between such rounds
inline constexpr int kYields = 8;

/// Waits until `ready()` (a cheap, side-effect-free check; acquire loads suffice, see
/// wake_sleepers()) returns true, the way `mode` says. Returns false when the deadline passed
/// first.
template <typename Ready>
bool wait_until(Ready&& ready, const WaitChannel& w, WaitMode mode, std::uint32_t spins,
                const Deadline& deadline) noexcept {
    if (mode != WaitMode::blocking) {
        const std::uint32_t limit = spins == 0 ? kDefaultSpins : spins;
        for (std::uint32_t i = 1;; ++i) {
            if (ready()) {
                return true;
            }
            if (mode == WaitMode::adaptive && i >= limit) {
                break;
            }
            if ((i & (kSpinsPerYield - 1)) == 0) {
                if (deadline.passed()) {
                    return false;
                }
                if (mode == WaitMode::adaptive) {
                    // With more processes than cores, the one we wait for may be queued behind
                    // us on this core: let it run (a cheap system call when nothing waits).
                    sched_yield();
                }
            }
            cpu_relax();
        }
        for (int i = 0; i < kYields; ++i) {
            if (ready()) {
                return true;
            }
            sched_yield();
        }
    }
    for (;;) {
        // A ring endpoint announces that it may sleep before its first look below; when that
        // cannot be made certain, its every sleep is bounded (sleep_announcement.hpp).
        const bool certain = w.announcement == nullptr || w.announcement->make();
        // acquire: pairs with wake_sleepers()'s bump; FUTEX_WAIT returns at once if it moved.
        const std::uint32_t seq = atom(*w.seq).load(std::memory_order_acquire);
        // Announce the sleep before the last check: the handshake at wake_sleepers().
        atom(*w.waiters).fetch_add(1, std::memory_order_acq_rel);
        if (ready()) {
            // relaxed: leaving; an RMW, so it continues the count's release sequence.
            atom(*w.waiters).fetch_sub(1, std::memory_order_relaxed);
            return true;
        }
        const auto remaining = deadline.remaining();
        if (remaining.count() == 0) {
            atom(*w.waiters).fetch_sub(1, std::memory_order_relaxed); // leaving, as above
            return false;
        }
        atom(*w.waits).fetch_add(1, std::memory_order_relaxed); // a statistic
        futex_wait(w.seq, seq,
                   certain || (remaining.count() >= 0 && remaining < kFallbackSleep)
                       ? remaining
                       : std::chrono::nanoseconds{kFallbackSleep});
        // relaxed: leaving, as above.
        atom(*w.waiters).fetch_sub(1, std::memory_order_relaxed);
        if (ready()) {
            return true;
        }
        if (deadline.passed()) {
            return false;
        }
    }
}

/// Rewrites every claim state `from(state)` selects; `words(i)` yields the i-th state word.
template <typename Words, typename Select>
std::uint64_t rewrite_states(std::uint64_t slot_count, Words&& words, Select&& select) noexcept {
    std::uint64_t n = 0;
    for (std::uint64_t i = 0; i < slot_count; ++i) {
        std::uint64_t& w = words(i);
        // acquire: pairs with the owner's release of its claim (the slot as it left it); the
        // load only selects, the CAS below decides.
        std::uint64_t s = atom(w).load(std::memory_order_acquire);
        std::uint64_t replacement = 0;
        while (select(s, replacement)) {
            // acq_rel: the release half pairs with the readers' acquire load of the state
            // (they pass over an abandoned slot, or take a returned message); the acquire
            // half with the owner's last store of it.
            if (atom(w).compare_exchange_weak(s, replacement, std::memory_order_acq_rel)) {
                ++n;
                break;
            }
        }
    }
    return n;
}

/// Publishes as abandoned every slot `owner` reserved and never committed. Returns how many.
std::uint64_t abandon_reserved(const AttachedChannel& ch, std::uint32_t owner) noexcept;
/// Queue with cells: returns every cell `owner` took and never released to the other
/// consumers. Returns how many.
std::uint64_t redeliver_taken(const AttachedChannel& ch, std::uint32_t owner) noexcept;

} // namespace shmbus::detail
