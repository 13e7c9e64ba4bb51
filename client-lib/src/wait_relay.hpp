// WaitRelay: the descriptor behind an endpoint's wait_handle() (docs/events-and-waiting.md).
//
// The problem: the writer that makes an endpoint's wait over runs in another process, and the
// data path must stay free of system calls while nobody waits. The futexes in the segment
// already give that: a writer wakes only when the sleepers' count (data_waiters,
// space_waiters, the event ring's waiters) is not zero, wake_sleepers()'s rule. A futex is
// not a descriptor, though, and none can be made from it. So a relay thread of the
// endpoint's process sleeps on the futex for the application, and makes the application's
// descriptor (an eventfd, EFD_NONBLOCK) readable when the endpoint has something to do.
//
// Why not an eventfd that the writer writes itself: the writer would need a descriptor of
// every armed peer's eventfd, which only the daemon could hand out (SCM_RIGHTS) — to every
// peer, whenever an endpoint arms, over a control protocol that has no messages from daemon
// to client — and the data path would depend on the daemon to learn about a new waiter. The
// relay keeps the writer's rule exactly as it is (no change to the data path, nothing new in
// shared memory) and works without the daemon, across a daemon restart and across
// namespaces. Its price is one thread per handle, asleep while the endpoint is idle.
//
// States (`state_`, a futex word private to the process):
//   watching — the relay waits, on the futex `watch.channel`, until `ready(watch)` holds;
//              then it goes to `firing`, writes the eventfd (a rearm() that comes now
//              waits for the write) and goes to
//   fired    — the descriptor is readable; the relay sleeps on `state_` until the endpoint
//              calls rearm(), which reads the eventfd empty, gives a new watch and sets
//              watching again (two system calls after a fire);
//   restart  — rearm() found the relay watching for something else than the endpoint now
//              wants (a publisher whose ring just filled wants room too): it gave the new
//              watch and woke the relay, which picks it up without writing the eventfd;
//   stopping — the destructor asked the relay to end.
// A rearm() while the relay already watches for the same thing costs nothing: a position
// the relay holds that is older than the endpoint's only makes the relay fire once too
// early (the slot at an older position is no longer empty), never too late. The watch
// passes between the threads under `watch_mutex_`, taken only on those state changes. A
// watch without a futex watches nothing: the relay sleeps until a rearm() gives it another.
//
// Threads: rearm() and fd() on the endpoint's thread; `ready` on the relay thread, so it
// must read only shared memory (through atomics) and the watch it is given — never the
// endpoint's private state, which its owner changes meanwhile.
//
// Any endpoint kind can offer a handle this way: it gives the relay its condition and, at
// each rearm(), the futex to sleep on and what it has seen so far (an rpc Caller: the reply
// ring's data futex and its position; a Server: the request ring's). rpc endpoints do so:
// a Server watches the control block's data futex for requested claim words, a Caller its
// reply futex for stamped outcomes (rpc_caller.cpp).
#pragma once

#include "shm/endpoint_table.hpp"

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <sys/types.h>
#include <thread>

namespace shmbus::detail {

/// What the relay watches, as the endpoint saw it when it found nothing left to do.
struct Watch {
    WaitChannel channel{};    ///< the futex to sleep on; channel.seq null: watch nothing
    std::uint64_t pos{0};     ///< the endpoint's position (next to read or write)
    std::uint64_t events{0};  ///< the endpoint's event cursor
    bool want_room{false};    ///< publisher: the ring was full
    bool want_events{false};  ///< the endpoint asked for peer events
    bool local_events{false}; ///< an event the endpoint noticed itself is unread
    /// rpc caller: a call no server can take is something to do (it fails with not_found);
    /// false when the caller waits for a server.
    bool unserved_fails{false};
};

class WaitRelay {
public:
    using Ready = std::function<bool(const Watch&)>;

    /// Creates the eventfd and starts the relay, watching `first`. Errc::system_error when
    /// the eventfd or the thread cannot be made.
    [[nodiscard]] static Result<std::unique_ptr<WaitRelay>> start(Ready ready,
                                                                  const Watch& first) noexcept;
    WaitRelay(const WaitRelay&) = delete;
    WaitRelay& operator=(const WaitRelay&) = delete;
    /// Stops the relay and joins it; closes the descriptor. In a child of fork(), which has
    /// no relay thread, only closes the descriptor.
    ~WaitRelay();

    /// The descriptor the application polls. Owned by the relay.
    [[nodiscard]] int fd() const noexcept { return efd_.get(); }
    /// The endpoint found nothing left to do: if the relay fired, empties the descriptor and
    /// watches `now`. No system call when it had not fired.
    void rearm(const Watch& now) noexcept;

private:
    WaitRelay(Ready ready, const Watch& first, UniqueFd efd) noexcept;
    void run() noexcept;

    Ready ready_;
    std::mutex watch_mutex_;
    Watch watch_; // guarded by watch_mutex_: what the relay is to watch
    Watch armed_; // the endpoint's thread only: the watch it gave last
    UniqueFd efd_;
    std::uint32_t state_;
    pid_t started_by_{0}; // a copy inherited through fork() has no thread to stop
    std::unique_ptr<std::thread> thread_;
};

} // namespace shmbus::detail
