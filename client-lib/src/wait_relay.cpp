// The wait relay. See wait_relay.hpp for the design and its states.
#include "wait_relay.hpp"

#include "shm/futex.hpp"

#include <cerrno>
#include <climits>
#include <csignal>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

namespace shmbus::detail {

namespace {
constexpr std::uint32_t kWatching = 0;
constexpr std::uint32_t kFired = 1;
constexpr std::uint32_t kRestart = 2;
constexpr std::uint32_t kStopping = 3;
constexpr std::uint32_t kFiring = 4;

/// Whether a relay watching `a` waits for the same thing as one watching `b`.
bool same_target(const Watch& a, const Watch& b) noexcept {
    return a.channel.seq == b.channel.seq && a.want_room == b.want_room &&
           a.want_events == b.want_events && a.local_events == b.local_events &&
           a.unserved_fails == b.unserved_fails;
}

/// Moves the futex word of `w` on and wakes its sleepers, so that a relay asleep there looks
/// at its state again. The other sleepers wake too, find nothing changed and sleep again.
void nudge(const Watch& w) noexcept {
    if (w.channel.seq != nullptr) {
        // release: pairs with the acquire load of the word in wait_until().
        atom(*w.channel.seq).fetch_add(1, std::memory_order_release);
        futex_wake_all(w.channel.seq);
    }
}
} // namespace

WaitRelay::WaitRelay(Ready ready, const Watch& first, UniqueFd efd) noexcept
    : ready_{std::move(ready)}, watch_{first}, armed_{first}, efd_{std::move(efd)},
      state_{kWatching} {}

Result<std::unique_ptr<WaitRelay>> WaitRelay::start(Ready ready, const Watch& first) noexcept {
    UniqueFd efd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    if (!efd) {
        return make_error(Errc::system_error, "eventfd for a wait handle", errno);
    }
    std::unique_ptr<WaitRelay> relay;
    try {
        relay.reset(new WaitRelay(std::move(ready), first, std::move(efd)));
        // The relay takes none of the application's signals: block them all while it starts
        // (it inherits the mask), then restore ours.
        sigset_t all;
        sigset_t old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        try {
            relay->thread_ = std::make_unique<std::thread>([r = relay.get()] { r->run(); });
            relay->started_by_ = ::getpid();
        } catch (...) {
            pthread_sigmask(SIG_SETMASK, &old, nullptr);
            throw;
        }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    } catch (const std::system_error& e) {
        return make_error(Errc::system_error, "starting the thread of a wait handle",
                          e.code().value());
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "allocating a wait handle");
    }
    return relay;
}

WaitRelay::~WaitRelay() {
    if (!thread_) {
        return;
    }
    if (::getpid() != started_by_) {
        // Inherited through fork(): the thread stayed in the parent. Its std::thread is left
        // alone (destroying or joining it here would act on the parent's thread id).
        (void)thread_.release();
        return;
    }
    // release: nothing to publish; the relay's acquire loads of the state see it. An
    // exchange, so that the relay's CAS out of `firing` fails and it sees the stop.
    atom(state_).exchange(kStopping, std::memory_order_release);
    futex_wake_all(&state_);
    nudge(armed_); // it may sleep on the segment's futex
    thread_->join();
}

void WaitRelay::rearm(const Watch& now) noexcept {
    // acquire: pairs with run()'s release CAS to `fired`.
    std::uint32_t s = atom(state_).load(std::memory_order_acquire);
    while (s == kFiring) {
        // The relay is writing its token (one write()): let it finish, then read it.
        sched_yield();
        s = atom(state_).load(std::memory_order_acquire); // acquire: as above
    }
    if (s == kFired) {
        std::uint64_t drained = 0;
        // Empty the counter. EAGAIN (already empty) is fine; nothing else fails on an eventfd.
        (void)!::read(efd_.get(), &drained, sizeof drained);
    } else if (s != kWatching || same_target(armed_, now)) {
        return; // armed already for what we want (or restarting to it, or stopping)
    }
    {
        const std::lock_guard lock{watch_mutex_};
        watch_ = now;
    }
    const Watch before = armed_;
    armed_ = now;
    std::uint32_t expected = s;
    // release: pairs with run()'s acquire loads of the state (the watch itself passes under
    // the mutex).
    if (!atom(state_).compare_exchange_strong(expected, s == kFired ? kWatching : kRestart,
                                              std::memory_order_release,
                                              std::memory_order_relaxed)) {
        // The relay fired meanwhile (watching -> fired): its descriptor is readable, and the
        // next rearm() re-arms it with what we stored.
        return;
    }
    futex_wake_all(&state_);
    if (s == kWatching) {
        nudge(before); // asleep on the futex of the old watch
    }
}

void WaitRelay::run() noexcept {
    const Deadline forever = Deadline::after(std::chrono::nanoseconds::max());
    // acquire, every load of the state: pairs with rearm()'s and the destructor's stores.
    const auto state = [this] { return atom(state_).load(std::memory_order_acquire); };
    for (;;) {
        std::uint32_t s = state();
        if (s == kStopping) {
            return;
        }
        if (s == kRestart) {
            std::uint32_t expected = kRestart;
            // acquire: pairs with rearm()'s release CAS to `restart`, as state() does (the
            // watch itself is read under the mutex next). relaxed on failure: the destructor
            // or another rearm() moved the state on, and the loop reads it again.
            atom(state_).compare_exchange_strong(expected, kWatching, std::memory_order_acquire,
                                                 std::memory_order_relaxed);
            continue;
        }
        if (s == kFired) {
            futex_wait(&state_, kFired, std::chrono::nanoseconds(-1));
            continue;
        }
        Watch w;
        {
            const std::lock_guard lock{watch_mutex_};
            w = watch_;
        }
        if (w.channel.seq == nullptr) {
            futex_wait(&state_, kWatching, std::chrono::nanoseconds(-1));
            continue;
        }
        (void)wait_until([&] { return state() != kWatching || ready_(w); }, w.channel,
                         WaitMode::blocking, 0, forever);
        std::uint32_t expected = kWatching;
        // relaxed: `firing` only holds rearm() off while the token goes in.
        if (!atom(state_).compare_exchange_strong(expected, kFiring, std::memory_order_relaxed)) {
            continue; // restart or stop meanwhile: no token
        }
        const std::uint64_t one = 1;
        (void)!::write(efd_.get(), &one, sizeof one);
        expected = kFiring;
        // release: the token and our reads of the segment happen-before the endpoint's
        // re-arm. Fails only when the destructor stops us meanwhile.
        atom(state_).compare_exchange_strong(expected, kFired, std::memory_order_release,
                                             std::memory_order_relaxed);
    }
}

} // namespace shmbus::detail
