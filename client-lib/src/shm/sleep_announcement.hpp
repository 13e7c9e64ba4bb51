// Sleep announcements: how a waker of a ring channel skips its full fence while nobody can
// be asleep, without ever missing a sleeper.
//
// The handshake at wake_sleepers() (endpoint_table.hpp) costs the waker a read-modify-write
// of the sleepers' waiter count after every commit and release: a full fence on x86 and
// ARM, which drains the store buffer and so makes a publisher wait, at every message, for
// the cache lines of the slot it just wrote. Most endpoints never sleep (spin mode, or an
// adaptive reader that keeps up), so ring channels carry, beside each waiter count, the
// number of endpoints of that side that have announced that they may sleep
// (ControlBlock::data_sleepers, space_sleepers). A waker reads it with a plain load after
// its store, and skips the handshake while it reads 0.
//
// The race this opens: a waker's load of the count may be satisfied before its store of the
// new state is visible (store-load reordering), so an endpoint that announces itself and then
// checks the ring could miss the new state while the waker misses the announcement. The
// announcing endpoint closes it, once per endpoint and before its first sleep, with
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) after its increment: every running thread of
// every process registered for it executes a full barrier before the call returns, so any
// waker's store that precedes that barrier is visible to the endpoint's re-check, and any
// waker's load that follows it sees the count above 0 and takes the handshake. A waker's
// store and load are kept in program order by a compiler barrier (std::atomic_signal_fence),
// which the membarrier turns into a full one at the moment it matters. This is the
// asymmetric-fence idea with its cost moved from every sleep to the first one.
//
// Who may skip: only a process registered for expedited barriers
// (MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, once per process, at its first ring attach;
// again in a child of fork()). A process that cannot register (no membarrier: an old kernel,
// a seccomp filter) never skips: its wakers read a constant 1 instead of the count
// (skip_word()). An announcing endpoint whose expedited barrier fails falls back to
// MEMBARRIER_CMD_GLOBAL (every thread of every process, milliseconds), and if that fails too
// (a seccomp filter on the sleeper's process alone), bounds every sleep of the endpoint to
// kFallbackSleep: nothing then orders a racing waker's store before the endpoint's re-check,
// but the store becomes visible in finite time ([intro.progress]), and the endpoint looks
// again at every kFallbackSleep, so a wake-up it might have missed is late by that much at
// most, never lost.
//
// Once made, an announcement stays until the endpoint detaches (or is reclaimed as dead),
// which withdraw() undoes; the endpoint's table entry says whether it announced
// (EndpointRecord::sleeps), so that a supervisor reclaiming a dead endpoint can withdraw for
// it. A count above its truth (a process that died between increment and mark, a hostile
// one) only makes wakers take the handshake; the count is a hint in memory every participant
// can write, never an index.
//
// Thread-safety: an endpoint's announcement may be made from its own thread and its wait
// relay's thread at once; a mutex orders them.
#pragma once

#include "shm/layout.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace shmbus::detail {

/// How long the first sleep after an announcement lasts at most when no membarrier could
/// make it certain.
inline constexpr std::chrono::milliseconds kFallbackSleep{1};

/// Whether this process's wakers may skip the handshake: it is registered for expedited
/// membarriers. Registers on the first call in each process (a child of fork() registers
/// again). Thread-safe.
[[nodiscard]] bool wakers_may_skip() noexcept;

/// The word a waker of this process reads before the handshake: `count` when it may skip,
/// else a constant 1 (never skip).
[[nodiscard]] const std::uint32_t* skip_word(const std::uint32_t* count) noexcept;

/// One endpoint's announcement that it may sleep on one side's futex.
class SleepAnnouncement {
public:
    SleepAnnouncement() = default;
    SleepAnnouncement(const SleepAnnouncement&) = delete;
    SleepAnnouncement& operator=(const SleepAnnouncement&) = delete;

    /// Where the announcement goes: the side's count and this endpoint's table entry. Set at
    /// attach, before any sleep.
    void bind(std::uint32_t* count, EndpointRecord* record) noexcept {
        count_ = count;
        record_ = record;
    }

    /// Announces the endpoint, if it has not done so yet, and returns once no waker can miss
    /// it. False when that could not be made certain (no membarrier): the caller then bounds
    /// every sleep by kFallbackSleep.
    [[nodiscard]] bool make() noexcept;

    /// Whether make() has announced this endpoint.
    [[nodiscard]] bool made() const noexcept { return made_.load(std::memory_order_acquire); }

private:
    std::mutex mutex_;
    std::atomic<bool> made_{false}; // set (release) by make() under mutex_ once announced
    bool certain_{false};           // written under mutex_ before made_; read after it
    std::uint32_t* count_{nullptr};
    EndpointRecord* record_{nullptr};
};

/// Undoes the announcement of the endpoint of `record`, if it made one, in `count`: at its
/// detach, or for it when it is reclaimed as dead. Safe to call twice or concurrently: one
/// call decrements.
void withdraw_sleeper(std::uint32_t& count, EndpointRecord& record) noexcept;

} // namespace shmbus::detail
