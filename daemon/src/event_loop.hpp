// The event loop: libuv, the control socket, signals, and one poll per client connection.
//
// Owns (every handle embedded here or in a Connection; each is uv_close()d before its
// memory is freed, and stop() leads to uv_loop_close() == 0):
//  - the listening SOCK_SEQPACKET socket (ListeningSocket: passed by socket activation, or
//    bound at the configured path without robbing a running daemon of its socket);
//  - SIGHUP (reload), SIGTERM and SIGINT (graceful stop): blocked, and read from a signalfd
//    the loop polls (handled on the loop, never in an asynchronous handler);
//  - timers that run only while they have something to do, so that an idle daemon sleeps in
//    epoll: the watchdog (when systemd set WATCHDOG_USEC), the restart's grace period, the
//    next STATUS= of a burst, the hello timeout (while a connection has not said hello
//    within limits.hello_timeout, it is told timed_out and closed) and the summary of
//    refusals counted by the RefusalLog (one warning line per uid per interval);
//  - a check handle that writes the state file once per loop iteration, after the requests
//    of that iteration were handled, and only when one of them changed it (started on
//    demand, so an idle daemon has nothing to run);
//  - one Connection per accepted client: its descriptor, its uv_poll, its ClientSession and
//    the replies not yet sent. Memory is freed in the poll's close callback. A connection
//    is refused (told why, naming the limit, then closed) beyond limits.max_clients, the
//    share of it left by limits.admin_reserve to anyone but root and the admins, or its
//    uid's limits.per_uid.max_connections (uid_quota.hpp).
//
// Liveness: a connection that reports EOF, hang-up or an error is closed at once and
// DaemonState::remove_client() reclaims every endpoint the client held — within one loop
// iteration of the kernel noticing the peer is gone, far inside the 50 ms budget.
//
// Back-pressure: while a connection has replies the kernel would not take, the daemon stops
// reading its requests; a client that does not read its replies stalls only itself.
//
// Graceful stop: STOPPING=1, every connection closed without reclaiming (the clients keep
// their endpoints across a daemon restart), every handle closed, the socket file removed if
// this process created it (and it is still ours: same inode), then uv_loop_close().
//
// Thread: runs on the thread that calls run(); nothing here is thread-safe.
#pragma once

#include "daemon_state.hpp"
#include "systemd_notify.hpp"

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <memory>
#include <vector>

namespace shmbus::daemon {

class EventLoop {
public:
    /// Sets up the loop and the listening socket: the first listening SOCK_SEQPACKET socket
    /// among `passed` (socket activation) or a socket bound at state.paths().socket. Errors
    /// name the path and the system call.
    [[nodiscard]] static Result<std::unique_ptr<EventLoop>> open(DaemonState& state,
                                                                 std::vector<PassedFd>& passed);
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    /// Runs until a graceful stop. Errc::system_error if the loop did not close clean.
    [[nodiscard]] Result<void> run();
    /// Begins a graceful stop (as SIGTERM does).
    void stop();
    /// Reloads the configuration (as SIGHUP does), with the systemd notifications.
    void reload();

    /// Whether the socket came from the service manager.
    [[nodiscard]] bool socket_activated() const noexcept;

    struct Impl;

private:
    explicit EventLoop(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

} // namespace shmbus::daemon
