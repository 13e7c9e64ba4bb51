// The reconnect watcher thread. See client_watcher.hpp for what it owns and when it runs.
//
// One thread for every Client of the process, not one per connection: a connection costs no
// thread start and stop, and an idle process one thread asleep in poll().
#include "client_watcher.hpp"

#include "client_impl.hpp"

#include <atomic>
#include <cerrno>
#include <list>
#include <mutex>
#include <new>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

namespace shmbus::detail {

namespace {

class Watcher {
public:
    static Watcher* current() noexcept {
        // acquire: pairs with get_or_start()'s acq_rel CAS, which publishes the Watcher's
        // members (its wake descriptor) before the pointer.
        return instance.load(std::memory_order_acquire);
    }

    static Result<Watcher*> get_or_start() {
        if (Watcher* w = current()) {
            return w;
        }
        static std::once_flag atfork;
        std::call_once(atfork, [] {
            // relaxed: the child of fork() runs one thread, and the parent's watcher thread
            // is not in it; the child's next connection starts a watcher of its own.
            (void)::pthread_atfork(nullptr, nullptr,
                                   [] { instance.store(nullptr, std::memory_order_relaxed); });
        });
        auto made = std::make_unique<Watcher>();
        made->wake_ = UniqueFd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
        if (!made->wake_) {
            return make_error(Errc::system_error, "eventfd for the reconnect thread", errno);
        }
        Watcher* expected = nullptr;
        // acq_rel: publishes the Watcher's members to current()'s acquire load.
        if (!instance.compare_exchange_strong(expected, made.get(), std::memory_order_acq_rel)) {
            return expected; // another thread started one first
        }
        Watcher* w = made.release(); // lives as long as the process: never joined
        try {
            std::thread{[w] { w->run(); }}.detach();
        } catch (const std::system_error& e) {
            // The next connection tries again; w stays allocated, as another thread may
            // have registered with it meanwhile.
            // release: pairs with current()'s acquire like the CAS above; it publishes
            // nothing but the empty slot, which the next get_or_start() fills again.
            instance.store(nullptr, std::memory_order_release);
            return make_error(Errc::system_error, "starting the reconnect thread",
                              e.code().value());
        }
        return w;
    }

    void add(const std::shared_ptr<Client::Impl>& impl) {
        {
            const std::lock_guard lock{mutex_};
            entries_.push_back(Entry{impl.get(), impl, {}, false});
        }
        poke();
    }

    void forget(const Client::Impl* impl) noexcept {
        {
            const std::lock_guard lock{mutex_};
            for (auto& e : entries_) {
                if (e.key == impl && !e.forgotten) {
                    e.forgotten = true;
                    break;
                }
            }
        }
        poke();
    }

    void poke() const noexcept {
        const std::uint64_t one = 1;
        (void)!::write(wake_.get(), &one, sizeof one);
    }

private:
    struct Entry {
        const Client::Impl* key;
        std::weak_ptr<Client::Impl> impl;
        WatchState st;
        bool forgotten;
    };
    static inline std::atomic<Watcher*> instance{nullptr};
    std::mutex mutex_;
    std::list<Entry> entries_; // guarded by mutex_; erased by run() only
    UniqueFd wake_;

    void run() noexcept {
        std::vector<Entry*> live;
        std::vector<pollfd> fds;
        std::vector<Entry*> polled;
        for (;;) {
            try {
                step(live, fds, polled);
            } catch (const std::bad_alloc&) {
                // Out of memory: try again after a pause rather than end the thread.
                pollfd p{wake_.get(), POLLIN, 0};
                (void)::poll(&p, 1, static_cast<int>(kMaxBackoff.count()));
            }
        }
    }

    void step(std::vector<Entry*>& live, std::vector<pollfd>& fds, std::vector<Entry*>& polled) {
        live.clear();
        {
            const std::lock_guard lock{mutex_};
            entries_.remove_if([](const Entry& e) { return e.forgotten; });
            for (auto& e : entries_) {
                live.push_back(&e);
            }
        }
        fds.assign(1, pollfd{wake_.get(), POLLIN, 0});
        polled.clear();
        auto now = Clock::now();
        Clock::time_point next = Clock::time_point::max();
        for (Entry* e : live) {
            if (auto impl = e->impl.lock()) {
                impl->refresh(e->st);
            }
            if (e->st.retrying) {
                next = std::min(next, e->st.retry_at);
            } else if (e->st.mine) {
                fds.push_back(pollfd{e->st.mine.get(), POLLRDHUP, 0});
                polled.push_back(e);
            }
        }
        int timeout_ms = -1;
        if (next != Clock::time_point::max()) {
            timeout_ms =
                next <= now ? 0
                            : static_cast<int>(
                                  std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
        }
        const int n = ::poll(fds.data(), fds.size(), timeout_ms);
        if ((fds[0].revents & POLLIN) != 0) {
            std::uint64_t count = 0;
            (void)!::read(wake_.get(), &count, sizeof count);
        }
        if (n > 0) {
            for (std::size_t i = 0; i < polled.size(); ++i) {
                if ((fds[i + 1].revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0) {
                    Entry* e = polled[i];
                    e->st.mine.reset();
                    e->st.retrying = true;
                    e->st.retry_at = Clock::now();
                }
            }
        }
        now = Clock::now();
        for (Entry* e : live) {
            if (!e->st.retrying || e->st.retry_at > now) {
                continue;
            }
            // A forgotten entry's Impl is being destroyed: lock() gives nothing.
            if (auto impl = e->impl.lock()) {
                impl->restore(e->st);
            }
            // The last reference may have gone here: ~Impl() then marks e forgotten.
        }
    }
};

} // namespace

Result<void> watcher_add(const std::shared_ptr<Client::Impl>& impl) {
    auto w = Watcher::get_or_start();
    if (!w) {
        return w.take_error();
    }
    impl->watched = true;
    (*w)->add(impl);
    return ok();
}

void watcher_forget(const Client::Impl* impl) noexcept {
    if (Watcher* w = Watcher::current()) {
        w->forget(impl);
    }
}

void watcher_poke() noexcept {
    if (Watcher* w = Watcher::current()) {
        w->poke();
    }
}

} // namespace shmbus::detail
