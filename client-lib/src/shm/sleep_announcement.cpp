// Sleep announcements. See sleep_announcement.hpp for the protocol and why it holds.
#include "shm/sleep_announcement.hpp"

#include "shm/atomics.hpp"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace shmbus::detail {

namespace {

// Whether this process registered for expedited membarriers: 0 not asked yet (in this
// process: a child of fork() starts over, see forget_in_child()), 1 registered, 2 not.
std::atomic<int> g_registration{0};

// What a waker of a process that may not skip reads instead of the count.
constexpr std::uint32_t kNeverSkip = 1;

long membarrier(int command) noexcept {
    return ::syscall(SYS_membarrier, command, 0U, 0);
}

// A child of fork() is a new process to the kernel, not registered: it asks again.
void forget_in_child() noexcept {
    g_registration.store(0, std::memory_order_relaxed);
}

} // namespace

bool wakers_may_skip() noexcept {
    // acquire: pairs with the release below; nothing else rides on it but the answer.
    const int known = g_registration.load(std::memory_order_acquire);
    if (known != 0) {
        return known == 1;
    }
    // Once per process lifetime, inherited by children: without it a child would keep the
    // parent's answer although it is not registered, so a failure means "never skip".
    static const bool resets_in_children = ::pthread_atfork(nullptr, nullptr, forget_in_child) == 0;
    // Registering twice is harmless, so two threads asking at once both may.
    const bool registered =
        resets_in_children && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
    g_registration.store(registered ? 1 : 2, std::memory_order_release);
    return registered;
}

const std::uint32_t* skip_word(const std::uint32_t* count) noexcept {
    return wakers_may_skip() ? count : &kNeverSkip;
}

bool SleepAnnouncement::make() noexcept {
    // acquire: pairs with the release store below; certain_ is then set.
    if (!made_.load(std::memory_order_acquire)) {
        const std::lock_guard lock{mutex_};
        if (!made_.load(std::memory_order_relaxed)) { // under the mutex: ours to set
            // seq_cst: the increment is a full barrier itself, complete before the
            // membarrier below starts; its effect on wakers is the membarrier's doing.
            atom(*count_).fetch_add(1, std::memory_order_seq_cst);
            // relaxed: read only by a later withdraw_sleeper() (ours, or a supervisor's
            // after our death), which exchanges it.
            atom(record_->sleeps).store(1, std::memory_order_relaxed);
            certain_ = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 ||
                       membarrier(MEMBARRIER_CMD_GLOBAL) == 0;
            made_.store(true, std::memory_order_release);
        }
    }
    return certain_;
}

void withdraw_sleeper(std::uint32_t& count, EndpointRecord& record) noexcept {
    // acq_rel exchange: pairs with a concurrent caller's exchange (the endpoint's detach
    // against a supervisor's reclaim); its atomicity makes exactly one of them see the 1 that
    // make() stored, and decrement.
    if (atom(record.sleeps).exchange(0, std::memory_order_acq_rel) == 1) {
        // release, though no load pairs with it: wakers read the count relaxed, as a hint. The
        // endpoint no longer sleeps (it is detaching, or dead), so a waker that reads 0 from
        // here on may skip.
        atom(count).fetch_sub(1, std::memory_order_release);
    }
}

} // namespace shmbus::detail
