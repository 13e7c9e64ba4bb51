// The libuv loop of shmbusd. See event_loop.hpp for what it owns and its stop sequence.
//
// Handle lifetimes: the loop, the listener poll, the signals and the timers are members of
// Impl, which outlives uv_loop_close(). Each Connection is heap-allocated, and deleted only in
// the close callback of its poll handle — never while libuv may still touch it; its
// descriptor is closed by the Connection's destructor, after the poll stopped.
//
// libuv calls (uv_callback.hpp): every return code is checked; a failure is logged naming the
// call, and ends what depended on it (a connection whose poll cannot start is closed; a
// handle that cannot be set up at start fails open(), which closes what it had set up). Every
// callback handed to libuv is a static noexcept trampoline (the *_cb functions below) that
// runs its handler through guarded(): no exception unwinds through libuv's C frames. After one
// escaped a connection's handler, that connection is closed; the loop goes on.
//
// Datagrams are read and sent by protocol/seqpacket, which also decides which refused
// datagrams end a connection; this file only acts on its answers.
#include "event_loop.hpp"

#include "client_session.hpp"
#include "listening_socket.hpp"
#include "logging.hpp"
#include "refusal_log.hpp"
#include "uv_callback.hpp"

#include <protocol/seqpacket.hpp>

#include <uv.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>
#include <variant>

namespace shmbus::daemon {

namespace {

constexpr int kMessagesPerWakeup = 32;
constexpr int kAcceptsPerWakeup = 64;
/// How long endpoints of the previous run wait for their clients to claim them.
constexpr std::chrono::milliseconds kRestartGrace{2000};
/// STATUS= at most this often: a burst of connections then costs the service manager one
/// datagram a second, not two per connection.
constexpr std::uint64_t kStatusIntervalMs = 1000;

std::string uv_message(int rc) {
    return uv_strerror(rc);
}

} // namespace

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
    /// first; hello_timer runs while any is left, due when the oldest's time is up.
    std::deque<std::pair<std::uint64_t, std::uint64_t>> awaiting_hello;
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
    bool stalled{false}; // reading stopped: limits.per_client.max_inflight_requests replies wait
    int poll_events{0};  // what uv_poll_start was last asked for

    Connection(EventLoop::Impl* o, UniqueFd f, std::uint64_t id)
        : fd{std::move(f)}, owner{o}, session{o->state, o->refusals, id} {
        poll.data = this;
    }
};

void EventLoop::Impl::on_listener_readable() {
    for (int i = 0; i < kAcceptsPerWakeup && !stopping; ++i) {
        const int fd = ::accept4(listening.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED) {
                log_error(std::string{"accept: "} + std::strerror(errno));
            }
            return;
        }
        accept_one(fd);
    }
}

void EventLoop::Impl::accept_one(int raw_fd) {
    UniqueFd fd{raw_fd};
    auto creds = peer_credentials(fd.get());
    if (!creds) {
        log_warning("refused a connection: " + creds.error().message());
        return;
    }
    auto record = state.add_client(*creds);
    if (!record) {
        refusals.warn(creds->uid,
                      "refused a connection from " + describe(*creds) + ": " +
                          record.error().message(),
                      client_fields(creds->pid, creds->uid, {}));
        // The socket does not block: an answer that does not fit is dropped with the socket.
        (void)proto::send_message(
            fd.get(),
            proto::Message{0, proto::ErrorReply{record.error().code, record.error().detail}});
        return;
    }
    const std::uint64_t id = (*record)->id;
    // Replies go out in one datagram; make sure the largest fits the send buffer.
    const int sndbuf = static_cast<int>(2 * proto::kMaxMessageBytes);
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    auto* c = new Connection(this, std::move(fd), id);
    if (!uv_ok(uv_poll_init(&loop, &c->poll, c->fd.get()),
               "uv_poll_init for " + describe(**record))) {
        state.forget_client(id);
        delete c; // never initialised: libuv does not know it
        return;
    }
    connections.emplace(id, c);
    log_debug("accepted " + describe(**record));
    awaiting_hello.emplace_back(uv_now(&loop), id);
    if (uv_is_active(as_handle(&hello_timer)) == 0) {
        schedule_hello_timeout();
    }
    update_poll(*c);
    notify_status_line();
}

bool EventLoop::Impl::may_read(const Connection& c) const {
    // Nothing after the reply that ends the connection; otherwise up to
    // max_inflight_requests replies may wait for room in the client's socket.
    return !c.disconnect_after_flush &&
           c.outgoing.size() < state.config().limits.per_client.max_inflight_requests;
}

void EventLoop::Impl::note_stall(Connection& c) {
    const bool stalled = !c.disconnect_after_flush && !may_read(c);
    if (stalled == c.stalled || (!stalled && !c.outgoing.empty())) {
        return; // no change, or some of the held replies are still unread
    }
    c.stalled = stalled;
    ClientRecord* r = state.find_client(c.session.client_id());
    if (r == nullptr) {
        return;
    }
    if (!stalled) {
        log_info(describe(*r) + " read its replies; reading its requests again");
        return;
    }
    log_warning(describe(*r) + " has " + std::to_string(c.outgoing.size()) +
                    " replies it does not read (limits.per_client.max_inflight_requests is " +
                    std::to_string(state.config().limits.per_client.max_inflight_requests) +
                    "); its further requests wait until it reads them",
                client_fields(r->credentials.pid, r->credentials.uid, r->name));
}

void EventLoop::Impl::update_poll(Connection& c) {
    // Replies the kernel would not take wait here, up to max_inflight_requests of them; the
    // client's requests are read meanwhile. Beyond that, wait only for room to send them and
    // read nothing more: back-pressure, which stalls that client and nobody else.
    note_stall(c);
    int events = UV_DISCONNECT;
    if (!c.outgoing.empty()) {
        events |= UV_WRITABLE;
    }
    if (may_read(c)) {
        events |= UV_READABLE;
    }
    if (events == c.poll_events) {
        return; // restarting the same watch would cost an epoll_ctl every iteration
    }
    if (const int rc = uv_poll_start(&c.poll, events, connection_cb); rc != 0) {
        // Without its watch the connection would never be heard again: end it.
        if (ClientRecord* r = state.find_client(c.session.client_id())) {
            log_error("uv_poll_start for " + describe(*r) + ": " + uv_message(rc) +
                      "; closing the connection");
        }
        close_connection(c, true);
        return;
    }
    c.poll_events = events;
}

void EventLoop::Impl::on_connection_event(Connection& c, int status, int events) {
    if (c.closing) {
        return;
    }
    if (status < 0) {
        // libuv reports EPOLLERR as UV_EBADF: for a Unix socket, the peer went away with a
        // reply unread (ECONNRESET). Either way the client is gone.
        if (ClientRecord* r = state.find_client(c.session.client_id())) {
            log_debug(describe(*r) + ": connection lost (" + uv_message(status) + ")");
        }
        close_connection(c, true);
        return;
    }
    if ((events & UV_WRITABLE) != 0) {
        flush(c);
        if (c.closing) {
            return;
        }
    }
    if ((events & (UV_READABLE | UV_DISCONNECT)) != 0 && may_read(c)) {
        read_requests(c);
    } else if ((events & UV_DISCONNECT) != 0) {
        close_connection(c, true);
    }
}

void EventLoop::Impl::read_requests(Connection& c) {
    for (int i = 0; i < kMessagesPerWakeup && !c.closing && may_read(c); ++i) {
        proto::Incoming in = proto::read_message(c.fd.get(), recv_buffer);
        Reply reply;
        if (auto* received = std::get_if<proto::Received>(&in)) {
            reply = c.session.handle(std::move(*received));
        } else if (const auto* refusal = std::get_if<proto::Refusal>(&in)) {
            reply = c.session.refused(*refusal);
        } else {
            const Error& e = std::get<Error>(in);
            if (e.code == Errc::would_block) {
                return;
            }
            if (e.code != Errc::closed) {
                if (ClientRecord* r = state.find_client(c.session.client_id())) {
                    log_debug(describe(*r) + ": " + e.message());
                }
            }
            close_connection(c, true); // the peer closed, or the socket failed
            return;
        }
        c.disconnect_after_flush = c.disconnect_after_flush || reply.disconnect;
        if (!reply.bytes.empty()) {
            c.outgoing.push_back(std::move(reply));
        }
        if (state.state_write_pending()) {
            // Group commit: a reply that changed the state file leaves only once the file
            // is written, after this iteration's requests, so that a daemon killed right
            // after an open still has its record. The connection reads no more meanwhile.
            flush_after_write.push_back(c.session.client_id());
            return;
        }
        flush(c);
    }
}

void EventLoop::Impl::flush(Connection& c) {
    while (!c.outgoing.empty()) {
        Reply& r = c.outgoing.front();
        std::array<int, proto::kMaxFds> fds{};
        const std::size_t n = std::min(r.fds.size(), fds.size());
        for (std::size_t k = 0; k < n; ++k) {
            fds[k] = r.fds[k].get();
        }
        auto sent = proto::send_datagram(c.fd.get(), r.bytes, std::span{fds}.first(n));
        if (!sent) {
            if (sent.code() == Errc::would_block) {
                update_poll(c);
                return;
            }
            close_connection(c, true);
            return;
        }
        c.outgoing.pop_front(); // our copies of the passed descriptors close here
    }
    if (c.disconnect_after_flush) {
        close_connection(c, true);
        return;
    }
    update_poll(c);
}

void EventLoop::Impl::close_connection(Connection& c, bool reclaim) {
    if (c.closing) {
        return;
    }
    c.closing = true;
    const std::uint64_t id = c.session.client_id();
    // libuv's part first: whatever happens below, the handle is closed and the Connection
    // freed in its close callback.
    connections.erase(id);
    (void)uv_ok(uv_poll_stop(&c.poll), "uv_poll_stop");
    uv_close(as_handle(&c.poll), connection_closed_cb);
    if (reclaim) {
        state.remove_client(id);
    } else {
        state.forget_client(id);
    }
    if (!stopping) {
        notify_status_line();
    }
}

void EventLoop::Impl::schedule_hello_timeout() {
    // Connections that said hello, or are gone, wait for nothing.
    while (!awaiting_hello.empty()) {
        auto it = connections.find(awaiting_hello.front().second);
        if (it != connections.end() && !it->second->closing && !it->second->session.greeted()) {
            break;
        }
        awaiting_hello.pop_front();
    }
    if (stopping || awaiting_hello.empty()) {
        return;
    }
    const auto timeout = static_cast<std::uint64_t>(state.config().limits.hello_timeout.count());
    const std::uint64_t due = awaiting_hello.front().first + timeout;
    const std::uint64_t now = uv_now(&loop);
    (void)uv_ok(uv_timer_start(&hello_timer, hello_timer_cb, due > now ? due - now : 0, 0),
                "uv_timer_start (hello timeout)");
}

void EventLoop::Impl::on_hello_timer() {
    const auto timeout = state.config().limits.hello_timeout;
    const std::uint64_t now = uv_now(&loop);
    while (!awaiting_hello.empty() && !stopping) {
        const auto [accepted_ms, id] = awaiting_hello.front();
        auto it = connections.find(id);
        if (it == connections.end() || it->second->closing || it->second->session.greeted()) {
            awaiting_hello.pop_front();
            continue;
        }
        if (accepted_ms + static_cast<std::uint64_t>(timeout.count()) > now) {
            break;
        }
        awaiting_hello.pop_front();
        Connection& c = *it->second;
        const std::string limit =
            "limits.hello_timeout (" + std::to_string(timeout.count()) + " ms)";
        if (const ClientRecord* r = state.find_client(id)) {
            refusals.warn(r->credentials.uid,
                          "closed the connection of " + describe(*r) + ": no hello within " + limit,
                          client_fields(r->credentials.pid, r->credentials.uid, r->name));
        }
        // The socket does not block: the answer goes now or not at all, and the connection
        // is closed either way (a client that never reads gets nothing more from us).
        (void)proto::send_message(
            c.fd.get(),
            proto::Message{
                0, proto::ErrorReply{Errc::timed_out, "no hello within " + limit +
                                                          "; the daemon closed the connection"}});
        close_connection(c, true);
    }
    schedule_hello_timeout();
}

void EventLoop::Impl::schedule_refusal_summary() {
    const auto next = refusals.next_due();
    if (stopping || !next) {
        return;
    }
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(*next - std::chrono::steady_clock::now());
    (void)uv_ok(uv_timer_start(&refusal_timer, refusal_timer_cb,
                               left.count() > 0 ? static_cast<std::uint64_t>(left.count()) : 0, 0),
                "uv_timer_start (refusal summary)");
}

void EventLoop::Impl::stop() {
    if (stopping) {
        return;
    }
    stopping = true;
    notify_stopping();
    log_info("stopping: " + state.status_line());
    while (!connections.empty()) {
        close_connection(*connections.begin()->second, false);
    }
    awaiting_hello.clear();
    refusals.on_counted = nullptr;
    refusals.flush_due(true); // what was counted is reported, not lost with the process
    auto close_handle = [](auto* h) {
        if (uv_is_closing(as_handle(h)) == 0) {
            uv_close(as_handle(h), nullptr);
        }
    };
    (void)uv_ok(uv_poll_stop(&listener), "uv_poll_stop (listening socket)");
    close_handle(&listener);
    (void)uv_ok(uv_poll_stop(&signals), "uv_poll_stop (signals)");
    close_handle(&signals);
    if (watchdog_started) {
        (void)uv_ok(uv_timer_stop(&watchdog), "uv_timer_stop (watchdog)");
        close_handle(&watchdog);
    }
    if (grace_running) {
        (void)uv_ok(uv_timer_stop(&grace), "uv_timer_stop (grace period)");
        close_handle(&grace);
        grace_running = false;
    }
    state.flush_state();
    status_pending = false;
    (void)uv_ok(uv_check_stop(&after_iteration), "uv_check_stop");
    close_handle(&after_iteration);
    for (uv_timer_t* t : {&status_timer, &hello_timer, &refusal_timer}) {
        (void)uv_ok(uv_timer_stop(t), "uv_timer_stop");
        close_handle(t);
    }
    listening.remove_file();
}

// The check handle runs after this iteration's I/O callbacks: every request of the burst
// has been handled, so the state file is written and STATUS= sent once for all of them.
void EventLoop::Impl::schedule_after_iteration() {
    if (stopping || uv_is_active(as_handle(&after_iteration)) != 0) {
        return;
    }
    (void)uv_ok(uv_check_start(&after_iteration, after_iteration_cb), "uv_check_start");
}

void EventLoop::Impl::run_after_iteration() {
    (void)uv_ok(uv_check_stop(&after_iteration), "uv_check_stop");
    state.flush_state();
    std::vector<std::uint64_t> waiting;
    waiting.swap(flush_after_write);
    for (const std::uint64_t id : waiting) {
        if (auto it = connections.find(id); it != connections.end() && !it->second->closing) {
            flush(*it->second);
        }
    }
    if (!status_pending || uv_is_active(as_handle(&status_timer)) != 0) {
        return;
    }
    const std::uint64_t now = uv_now(&loop);
    if (last_status.empty() || now - last_status_ms >= kStatusIntervalMs) {
        send_status_line();
        return;
    }
    if (!uv_ok(uv_timer_start(&status_timer, status_timer_cb,
                              kStatusIntervalMs - (now - last_status_ms), 0),
               "uv_timer_start (STATUS=)")) {
        send_status_line(); // early rather than never
    }
}

void EventLoop::Impl::on_status_timer() {
    if (!stopping && status_pending) {
        send_status_line();
    }
}

void EventLoop::Impl::on_signals_readable() {
    signalfd_siginfo info{};
    while (!stopping && ::read(signal_fd.get(), &info, sizeof info) == sizeof info) {
        const auto signum = static_cast<int>(info.ssi_signo);
        if (signum == SIGHUP) {
            log_info("SIGHUP: reloading the configuration");
            reload();
        } else {
            log_info(std::string{"received "} + (signum == SIGTERM ? "SIGTERM" : "SIGINT") +
                     " from pid " + std::to_string(info.ssi_pid));
            stop();
        }
    }
}

void EventLoop::Impl::send_status_line() {
    status_pending = false;
    std::string line = state.status_line();
    if (line != last_status) {
        notify_status(line);
        last_status = std::move(line);
        last_status_ms = uv_now(&loop);
    }
}

void EventLoop::Impl::reload() {
    notify_reloading();
    // Both outcomes are logged line by line by DaemonState::reload().
    (void)state.reload();
    notify_ready();
    notify_status_line();
}

void EventLoop::Impl::on_grace_timer() {
    grace_running = false;
    uv_close(as_handle(&grace), nullptr);
    state.end_grace();
}

// ---- the callbacks handed to libuv ----

void EventLoop::Impl::listener_cb(uv_poll_t* h, int status, int) noexcept {
    auto* s = static_cast<Impl*>(h->data);
    const bool listener = h == &s->listener;
    (void)guarded(listener ? "the listening socket" : "the signal descriptor", [&] {
        if (status < 0) {
            // Both report only readable; an error here is the kernel's, not a peer's.
            log_error(std::string{listener ? "listening socket" : "signal descriptor"} + ": " +
                      uv_message(status));
            return;
        }
        if (listener) {
            s->on_listener_readable();
        } else {
            s->on_signals_readable();
        }
    });
}

void EventLoop::Impl::connection_cb(uv_poll_t* h, int status, int events) noexcept {
    auto* c = static_cast<Connection*>(h->data);
    if (guarded("a client connection",
                [&] { c->owner->on_connection_event(*c, status, events); })) {
        return;
    }
    // What the handler left half done is that client's: end its connection, reclaiming.
    (void)guarded("closing a client connection", [&] { c->owner->close_connection(*c, true); });
}

void EventLoop::Impl::connection_closed_cb(uv_handle_t* h) noexcept {
    delete static_cast<Connection*>(h->data);
}

void EventLoop::Impl::after_iteration_cb(uv_check_t* h) noexcept {
    (void)guarded("the end of a loop iteration",
                  [&] { static_cast<Impl*>(h->data)->run_after_iteration(); });
}

void EventLoop::Impl::status_timer_cb(uv_timer_t* h) noexcept {
    (void)guarded("the STATUS= timer", [&] { static_cast<Impl*>(h->data)->on_status_timer(); });
}

void EventLoop::Impl::watchdog_cb(uv_timer_t*) noexcept {
    (void)guarded("the watchdog timer", [] { notify_watchdog(); });
}

void EventLoop::Impl::grace_cb(uv_timer_t* h) noexcept {
    (void)guarded("the grace period's timer",
                  [&] { static_cast<Impl*>(h->data)->on_grace_timer(); });
}

void EventLoop::Impl::hello_timer_cb(uv_timer_t* h) noexcept {
    (void)guarded("the hello timeout", [&] { static_cast<Impl*>(h->data)->on_hello_timer(); });
}

void EventLoop::Impl::refusal_timer_cb(uv_timer_t* h) noexcept {
    (void)guarded("the refusal summary timer", [&] {
        auto* s = static_cast<Impl*>(h->data);
        s->refusals.flush_due();
        s->schedule_refusal_summary();
    });
}

void EventLoop::Impl::log_open_handle_cb(uv_handle_t* h, void*) noexcept {
    (void)guarded("listing open handles", [&] {
        log_error(std::string{"handle still open at exit: "} +
                  uv_handle_type_name(uv_handle_get_type(h)));
    });
}

Result<void> EventLoop::Impl::start_handles() {
    if (!uv_ok(uv_loop_init(&loop), "uv_loop_init")) {
        return make_error(Errc::system_error, "uv_loop_init failed (logged)");
    }
    loop_open = true;
    loop.data = this;
    // Every handle is initialised before any watch starts, so that a failure leaves only
    // handles that ~Impl() closes.
    struct Init {
        int rc;
        const char* what;
    };
    const Init inits[] = {
        {uv_poll_init(&loop, &listener, listening.fd()), "uv_poll_init (listening socket)"},
        {uv_poll_init(&loop, &signals, signal_fd.get()), "uv_poll_init (signals)"},
        {uv_check_init(&loop, &after_iteration), "uv_check_init"},
        {uv_timer_init(&loop, &status_timer), "uv_timer_init (STATUS=)"},
        {uv_timer_init(&loop, &hello_timer), "uv_timer_init (hello timeout)"},
        {uv_timer_init(&loop, &refusal_timer), "uv_timer_init (refusal summary)"},
    };
    for (const Init& i : inits) {
        if (i.rc != 0) {
            return make_error(Errc::system_error, std::string{i.what} + ": " + uv_message(i.rc));
        }
    }
    for (uv_handle_t* h :
         {as_handle(&listener), as_handle(&signals), as_handle(&after_iteration),
          as_handle(&status_timer), as_handle(&hello_timer), as_handle(&refusal_timer)}) {
        h->data = this;
    }
    if (const int rc = uv_poll_start(&listener, UV_READABLE, listener_cb); rc != 0) {
        return make_error(Errc::system_error,
                          "uv_poll_start (listening socket): " + uv_message(rc));
    }
    if (const int rc = uv_poll_start(&signals, UV_READABLE, listener_cb); rc != 0) {
        return make_error(Errc::system_error, "uv_poll_start (signals): " + uv_message(rc));
    }
    if (auto interval = watchdog_interval()) {
        const auto half_ms = static_cast<std::uint64_t>(interval->count() / 2000);
        const std::uint64_t every = half_ms == 0 ? 1 : half_ms;
        if (const int rc = uv_timer_init(&loop, &watchdog); rc != 0) {
            return make_error(Errc::system_error, "uv_timer_init (watchdog): " + uv_message(rc));
        }
        watchdog.data = this;
        watchdog_started = true;
        if (const int rc = uv_timer_start(&watchdog, watchdog_cb, every, every); rc != 0) {
            return make_error(Errc::system_error, "uv_timer_start (watchdog): " + uv_message(rc));
        }
        log_debug("watchdog: pinging every " + std::to_string(every) + " ms");
    }
    if (state.in_grace()) {
        // One shot: the restart's grace period for clients to offer their endpoints back.
        if (const int rc = uv_timer_init(&loop, &grace); rc != 0) {
            return make_error(Errc::system_error,
                              "uv_timer_init (grace period): " + uv_message(rc));
        }
        grace.data = this;
        grace_running = true;
        if (const int rc = uv_timer_start(&grace, grace_cb,
                                          static_cast<std::uint64_t>(kRestartGrace.count()), 0);
            rc != 0) {
            return make_error(Errc::system_error,
                              "uv_timer_start (grace period): " + uv_message(rc));
        }
    }
    refusals.on_counted = [this] {
        if (uv_is_active(as_handle(&refusal_timer)) == 0) {
            schedule_refusal_summary();
        }
    };
    return ok();
}

EventLoop::Impl::~Impl() {
    if (!loop_open) {
        return;
    }
    // open() failed after uv_loop_init(): no connection exists yet, and no handle has a
    // close callback that needs this object beyond the loop run below.
    refusals.on_counted = nullptr;
    uv_walk(
        &loop,
        [](uv_handle_t* h, void*) noexcept {
            if (uv_is_closing(h) == 0) {
                uv_close(h, nullptr);
            }
        },
        nullptr);
    (void)uv_run(&loop, UV_RUN_DEFAULT); // runs the close callbacks
    if (const int rc = uv_loop_close(&loop); rc != 0) {
        report_escape("closing a loop that did not start", uv_strerror(rc));
    }
}

EventLoop::EventLoop(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}

EventLoop::~EventLoop() = default;

bool EventLoop::socket_activated() const noexcept {
    return impl_->listening.activated();
}

Result<std::unique_ptr<EventLoop>> EventLoop::open(DaemonState& state,
                                                   std::vector<PassedFd>& passed) {
    auto listening = ListeningSocket::open(state.paths().socket, passed);
    if (!listening) {
        return listening.take_error();
    }
    auto impl = std::make_unique<Impl>(state, std::move(*listening));
    // The signals are blocked and read from a descriptor the loop polls, so their handling
    // runs on the loop like any other event: no asynchronous handler, no window in which one
    // is lost. They stay blocked until the process exits (a second SIGTERM during the stop
    // is read by nobody and harmless). The daemon starts no thread, so the mask of this one
    // is the process's.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (int rc = ::pthread_sigmask(SIG_BLOCK, &mask, nullptr); rc != 0) {
        return make_error(Errc::system_error, std::string{"pthread_sigmask: "} + std::strerror(rc));
    }
    impl->signal_fd.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!impl->signal_fd) {
        return make_error(Errc::system_error, std::string{"signalfd: "} + std::strerror(errno));
    }
    if (auto started = impl->start_handles(); !started) {
        return started.take_error(); // ~Impl() closes what was set up
    }
    Impl* self = impl.get();
    state.on_change = [self] {
        if (!self->stopping) {
            self->notify_status_line();
        }
    };
    state.on_state_dirty = [self] {
        if (self->stopping) {
            self->state.flush_state();
            return;
        }
        self->schedule_after_iteration();
    };
    return std::unique_ptr<EventLoop>(new EventLoop(std::move(impl)));
}

Result<void> EventLoop::run() {
    // uv_run()'s result says only whether handles were still active when it returned: with
    // UV_RUN_DEFAULT it returns once none is, and uv_loop_close() below tells the rest.
    (void)uv_run(&impl_->loop, UV_RUN_DEFAULT);
    impl_->state.on_change = nullptr;
    impl_->state.on_state_dirty = nullptr;
    impl_->state.flush_state();
    const int rc = uv_loop_close(&impl_->loop);
    impl_->listening.close();
    if (rc != 0) {
        uv_walk(&impl_->loop, Impl::log_open_handle_cb, nullptr);
        return make_error(Errc::system_error, "uv_loop_close: " + uv_message(rc));
    }
    impl_->loop_open = false;
    return ok();
}

void EventLoop::stop() {
    impl_->stop();
}

void EventLoop::reload() {
    impl_->reload();
}

} // namespace shmbus::daemon
