// EventLoop::Impl and Connection: the event loop's state, shared by its two units —
// event_loop.cpp (the loop's own handles: listener, signals, timers, setup and stop) and
// client_connections.cpp (each client connection: accept, read, reply, close, the hello
// timeout). Private to those two files; see event_loop.hpp for what the loop owns.
//
// Handle lifetimes: the loop, the listener poll, the signals and the timers are members of
// Impl, which outlives uv_loop_close(). Each Connection is heap-allocated, and deleted only in
// the close callback of its poll handle — never while libuv may still touch it; its
// descriptor is closed by the Connection's destructor, after the poll stopped.
//
// libuv calls (uv_callback.hpp): every return code is checked; a failure is logged naming the
// call, and ends what depended on it (a connection whose poll cannot start is closed; a
// handle that cannot be set up at start fails open(), which closes what it had set up). Every
// callback handed to libuv is a static noexcept trampoline (the *_cb functions) that runs its
// handler through guarded(): no exception unwinds through libuv's C frames. After one escaped
// a connection's handler, that connection is closed; the loop goes on.
//
// Thread: the loop's.
#pragma once

#include "client_session.hpp"
#include "event_loop.hpp"
#include "listening_socket.hpp"
#include "refusal_log.hpp"

#include <protocol/wire.hpp>

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace shmbus::daemon {

struct Connection;

struct EventLoop::Impl {
    DaemonState& state;
    uv_loop_t loop{};
    bool loop_open{false}; // uv_loop_init() succeeded and uv_loop_close() has not
    uv_poll_t listener{};
    UniqueFd signal_fd; // SIGHUP, SIGTERM, SIGINT, blocked and read here (signalfd)
    uv_poll_t signals{};
    uv_timer_t watchdog{};
    bool watchdog_started{false};
    uv_timer_t grace{};
    bool grace_running{false};
    uv_check_t after_iteration{}; // active while a state write or STATUS= is pending
    bool status_pending{false};
    std::string last_status;         // the STATUS= text last sent
    uv_timer_t status_timer{};       // active while a STATUS= waits for kStatusIntervalMs to pass
    std::uint64_t last_status_ms{0}; // when last_status was sent
    /// Connections that have not completed hello, by accept time (uv_now) and id, oldest
    /// first; hello_timer runs while any is left, due when the oldest's time is up. Entries
    /// of connections that have greeted or gone are dropped lazily, but once none is left
    /// waiting (`ungreeted` is 0) the queue is cleared and the timer stopped at once, so that
    /// a daemon whose clients have all said hello runs no timer.
    std::deque<std::pair<std::uint64_t, std::uint64_t>> awaiting_hello;
    std::size_t ungreeted{0};
    uv_timer_t hello_timer{};
    /// Warnings about refusals, one line per uid per interval; refusal_timer runs while it
    /// has refusals counted and not yet reported.
    RefusalLog refusals;
    uv_timer_t refusal_timer{};
    /// Connections whose replies wait for this iteration's state-file write (by id: one may
    /// close meanwhile).
    std::vector<std::uint64_t> flush_after_write;
    ListeningSocket listening;
    bool stopping{false};
    std::map<std::uint64_t, Connection*> connections;
    std::vector<std::byte> recv_buffer = std::vector<std::byte>(proto::kMaxMessageBytes);

    Impl(DaemonState& s, ListeningSocket l) : state{s}, listening{std::move(l)} {}
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    /// A loop that open() could not finish, or whose run() never ran: its handles closed and
    /// the loop too, so that libuv holds nothing of this object.
    ~Impl();

    /// Initialises the handles and starts the loop's watches (open()'s libuv part).
    Result<void> start_handles();
    void on_listener_readable();
    void accept_one(int fd);
    void on_signals_readable();
    [[nodiscard]] bool may_read(const Connection& c) const;
    void note_stall(Connection& c);
    void on_connection_event(Connection& c, int status, int events);
    void read_requests(Connection& c);
    void flush(Connection& c);
    void close_connection(Connection& c, bool reclaim);
    void update_poll(Connection& c);
    void stop();
    void reload();
    /// STATUS= only when its text changed, and at most once every kStatusIntervalMs (the
    /// first change after a quiet second goes at once): an open cycle changes the counts
    /// several times, and each datagram wakes the service manager.
    void notify_status_line() {
        status_pending = true;
        schedule_after_iteration();
    }
    void schedule_after_iteration();
    void run_after_iteration();
    void send_status_line();
    void on_status_timer();
    /// `c` has said hello, or goes before it did: one fewer to wait for.
    void hello_done(Connection& c);
    /// (Re)starts hello_timer for the oldest connection still waiting for its hello.
    void schedule_hello_timeout();
    void on_hello_timer();
    /// (Re)starts refusal_timer for the next summary of counted refusals.
    void schedule_refusal_summary();
    void on_grace_timer();

    // The callbacks handed to libuv: noexcept trampolines to the handlers above.
    static void listener_cb(uv_poll_t* h, int status, int events) noexcept;
    static void connection_cb(uv_poll_t* h, int status, int events) noexcept;
    static void connection_closed_cb(uv_handle_t* h) noexcept;
    static void after_iteration_cb(uv_check_t* h) noexcept;
    static void status_timer_cb(uv_timer_t* h) noexcept;
    static void watchdog_cb(uv_timer_t* h) noexcept;
    static void grace_cb(uv_timer_t* h) noexcept;
    static void hello_timer_cb(uv_timer_t* h) noexcept;
    static void refusal_timer_cb(uv_timer_t* h) noexcept;
    static void log_open_handle_cb(uv_handle_t* h, void* arg) noexcept;
};

struct Connection {
    uv_poll_t poll{};
    UniqueFd fd;
    EventLoop::Impl* owner{nullptr};
    ClientSession session;
    std::deque<Reply> outgoing;
    bool closing{false};
    bool disconnect_after_flush{false};
    bool awaiting_hello{true}; // counted in EventLoop::Impl::ungreeted
    bool stalled{false}; // reading stopped: limits.per_client.max_inflight_requests replies wait
    int poll_events{0};  // what uv_poll_start was last asked for

    Connection(EventLoop::Impl* o, UniqueFd f, std::uint64_t id)
        : fd{std::move(f)}, owner{o}, session{o->state, o->refusals, id} {
        poll.data = this;
    }
};

} // namespace shmbus::daemon
