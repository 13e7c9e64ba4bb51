// The libuv loop of shmbusd. See event_loop.hpp for what it owns and its stop sequence.
//
// Handle lifetimes: the loop, the listener poll, the signals and the watchdog timer are
// members of Impl, which outlives uv_loop_close(). Each Connection is heap-allocated, and
// deleted only in the close callback of its poll handle — never while libuv may still touch
// it; its descriptor is closed by the Connection's destructor, after the poll stopped.
#include "event_loop.hpp"

#include "client_session.hpp"
#include "logging.hpp"

#include <uv.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <string>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmbus::daemon {

namespace {

constexpr int kListenBacklog = 128;
constexpr int kMaxFdsPerMessage = 16; // more than a peer may send: anything beyond is an error
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
    /// Connections whose replies wait for this iteration's state-file write (by id: one may
    /// close meanwhile).
    std::vector<std::uint64_t> flush_after_write;
    UniqueFd listen_fd;
    bool activated{false};
    bool created_socket_file{false};
    dev_t socket_dev{0};
    ino_t socket_ino{0};
    bool stopping{false};
    std::map<std::uint64_t, Connection*> connections;
    std::vector<std::byte> recv_buffer = std::vector<std::byte>(proto::kMaxMessageBytes);

    explicit Impl(DaemonState& s) : state{s} {}

    Result<void> bind_socket();
    void on_listener_readable();
    void accept_one(int fd);
    void on_signals_readable();
    [[nodiscard]] bool may_read(const Connection& c) const;
    void note_stall(Connection& c);
    void start_poll(uv_poll_t& handle);
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
        : fd{std::move(f)}, owner{o}, session{o->state, id} {
        poll.data = this;
    }
};

Result<void> EventLoop::Impl::bind_socket() {
    const std::string path = state.paths().socket.native();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        return make_error(Errc::invalid_argument, "socket path '" + path + "' is too long");
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (!fd) {
        return make_error(Errc::system_error, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
    }
    auto* sa = reinterpret_cast<const sockaddr*>(&addr);
    if (::bind(fd.get(), sa, sizeof addr) != 0) {
        if (errno != EADDRINUSE) {
            return make_error(Errc::system_error, "cannot bind '" + path + "'", errno);
        }
        // A file is there. Only a socket nobody listens on may be replaced.
        UniqueFd probe{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
        const int rc = ::connect(probe.get(), sa, sizeof addr);
        const int err = errno;
        if (rc == 0) {
            return make_error(Errc::already_exists,
                              "another daemon is listening on '" + path + "'");
        }
        if (err != ECONNREFUSED) {
            return make_error(Errc::system_error, "'" + path + "' exists and is not a stale socket",
                              err);
        }
        log_info("removing stale socket '" + path + "' (nobody listens on it)");
        ::unlink(path.c_str());
        if (::bind(fd.get(), sa, sizeof addr) != 0) {
            return make_error(Errc::system_error, "cannot bind '" + path + "'", errno);
        }
    }
    created_socket_file = true;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        socket_dev = st.st_dev;
        socket_ino = st.st_ino;
    }
    if (::chmod(path.c_str(), 0666) != 0) {
        return make_error(Errc::system_error, "chmod '" + path + "'", errno);
    }
    if (::listen(fd.get(), kListenBacklog) != 0) {
        return make_error(Errc::system_error, "listen on '" + path + "'", errno);
    }
    listen_fd = std::move(fd);
    return ok();
}

void EventLoop::Impl::on_listener_readable() {
    for (int i = 0; i < kAcceptsPerWakeup && !stopping; ++i) {
        const int fd = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
        log_warning("refused a connection from " + describe(*creds) + ": " +
                        record.error().message(),
                    client_fields(creds->pid, creds->uid, {}));
        auto bytes = proto::encode(
            proto::Message{0, proto::ErrorReply{record.error().code, record.error().detail}});
        if (bytes) {
            (void)::send(fd.get(), bytes->data(), bytes->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        return;
    }
    const std::uint64_t id = (*record)->id;
    // Replies go out in one datagram; make sure the largest fits the send buffer.
    const int sndbuf = static_cast<int>(2 * proto::kMaxMessageBytes);
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    auto* c = new Connection(this, std::move(fd), id);
    if (int rc = uv_poll_init(&loop, &c->poll, c->fd.get()); rc != 0) {
        log_error("uv_poll_init for " + describe(**record) + ": " + uv_message(rc));
        state.forget_client(id);
        delete c; // never initialised: libuv does not know it
        return;
    }
    connections.emplace(id, c);
    log_debug("accepted " + describe(**record));
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
    c.poll_events = events;
    uv_poll_start(&c.poll, events, [](uv_poll_t* handle, int status, int ev) {
        auto* conn = static_cast<Connection*>(handle->data);
        conn->owner->on_connection_event(*conn, status, ev);
    });
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
        iovec iov{recv_buffer.data(), recv_buffer.size()};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(c.fd.get(), &msg, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return;
            }
            close_connection(c, true);
            return;
        }
        std::vector<UniqueFd> fds;
        for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                const std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (std::size_t k = 0; k < count; ++k) {
                    int fd = -1;
                    std::memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof fd);
                    fds.emplace_back(fd);
                }
            }
        }
        if (n == 0 && fds.empty()) {
            close_connection(c, true); // orderly shutdown by the peer
            return;
        }
        Reply reply;
        if ((msg.msg_flags & MSG_CTRUNC) != 0) {
            ClientRecord* r = state.find_client(c.session.client_id());
            log_warning((r != nullptr ? describe(*r) : std::string{"a client"}) +
                        " passed more descriptors than any message carries; disconnected");
            close_connection(c, true);
            return;
        }
        if ((msg.msg_flags & MSG_TRUNC) != 0 || static_cast<std::size_t>(n) > recv_buffer.size()) {
            reply = c.session.oversized(static_cast<std::size_t>(n));
            reply.disconnect = reply.disconnect || !fds.empty();
        } else {
            reply =
                c.session.handle({recv_buffer.data(), static_cast<std::size_t>(n)}, std::move(fds));
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
        iovec iov{r.bytes.data(), r.bytes.size()};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
        if (!r.fds.empty()) {
            const std::size_t bytes = sizeof(int) * r.fds.size();
            msg.msg_control = control;
            msg.msg_controllen = CMSG_SPACE(bytes);
            cmsghdr* cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(bytes);
            for (std::size_t k = 0; k < r.fds.size(); ++k) {
                const int fd = r.fds[k].get();
                std::memcpy(CMSG_DATA(cm) + k * sizeof(int), &fd, sizeof fd);
            }
        }
        const ssize_t n = ::sendmsg(c.fd.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
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
    connections.erase(id);
    if (reclaim) {
        state.remove_client(id);
    } else {
        state.forget_client(id);
    }
    uv_poll_stop(&c.poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&c.poll),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    if (!stopping) {
        notify_status_line();
    }
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
    auto close_handle = [](auto* h) {
        if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(h))) {
            uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
        }
    };
    uv_poll_stop(&listener);
    close_handle(&listener);
    uv_poll_stop(&signals);
    close_handle(&signals);
    if (watchdog_started) {
        uv_timer_stop(&watchdog);
        close_handle(&watchdog);
    }
    if (grace_running) {
        uv_timer_stop(&grace);
        close_handle(&grace);
        grace_running = false;
    }
    state.flush_state();
    status_pending = false;
    uv_check_stop(&after_iteration);
    close_handle(&after_iteration);
    uv_timer_stop(&status_timer);
    close_handle(&status_timer);
    if (created_socket_file) {
        // Remove the file only if it is still the socket we bound (not a successor's).
        const std::string path = state.paths().socket.native();
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && st.st_dev == socket_dev && st.st_ino == socket_ino) {
            ::unlink(path.c_str());
        }
    }
}

// The check handle runs after this iteration's I/O callbacks: every request of the burst
// has been handled, so the state file is written and STATUS= sent once for all of them.
void EventLoop::Impl::schedule_after_iteration() {
    if (stopping || uv_is_active(reinterpret_cast<uv_handle_t*>(&after_iteration)) != 0) {
        return;
    }
    uv_check_start(&after_iteration,
                   [](uv_check_t* h) { static_cast<Impl*>(h->data)->run_after_iteration(); });
}

void EventLoop::Impl::run_after_iteration() {
    uv_check_stop(&after_iteration);
    state.flush_state();
    std::vector<std::uint64_t> waiting;
    waiting.swap(flush_after_write);
    for (const std::uint64_t id : waiting) {
        if (auto it = connections.find(id); it != connections.end() && !it->second->closing) {
            flush(*it->second);
        }
    }
    if (!status_pending || uv_is_active(reinterpret_cast<uv_handle_t*>(&status_timer)) != 0) {
        return;
    }
    const std::uint64_t now = uv_now(&loop);
    if (last_status.empty() || now - last_status_ms >= kStatusIntervalMs) {
        send_status_line();
        return;
    }
    uv_timer_start(
        &status_timer,
        [](uv_timer_t* h) {
            auto* s = static_cast<Impl*>(h->data);
            if (!s->stopping && s->status_pending) {
                s->send_status_line();
            }
        },
        kStatusIntervalMs - (now - last_status_ms), 0);
}

void EventLoop::Impl::start_poll(uv_poll_t& handle) {
    // The listening socket and the signal descriptor: readable is all they report.
    uv_poll_start(&handle, UV_READABLE, [](uv_poll_t* h, int status, int) {
        auto* s = static_cast<Impl*>(h->data);
        const bool listener = h == &s->listener;
        if (status < 0) {
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

EventLoop::EventLoop(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}

EventLoop::~EventLoop() = default;

bool EventLoop::socket_activated() const noexcept {
    return impl_->activated;
}

Result<std::unique_ptr<EventLoop>> EventLoop::open(DaemonState& state,
                                                   std::vector<PassedFd>& passed) {
    auto impl = std::make_unique<Impl>(state);
    for (auto& p : passed) {
        if (p.fd && is_listening_seqpacket(p.fd.get())) {
            impl->listen_fd = std::move(p.fd);
            impl->activated = true;
            log_info("using the listening socket passed by the service manager ('" + p.name + "')");
            break;
        }
    }
    if (!impl->activated) {
        if (auto bound = impl->bind_socket(); !bound) {
            return bound.take_error();
        }
    }
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
    // A passed socket may be blocking; the loop needs it not to be.
    (void)::fcntl(impl->listen_fd.get(), F_SETFL,
                  ::fcntl(impl->listen_fd.get(), F_GETFL) | O_NONBLOCK);

    if (int rc = uv_loop_init(&impl->loop); rc != 0) {
        return make_error(Errc::system_error, "uv_loop_init: " + uv_message(rc));
    }
    Impl* self = impl.get();
    impl->loop.data = self;
    // From here on every handle is initialised before anything can fail, so that a failure
    // is never left with half the handles unknown to stop().
    uv_poll_init(&impl->loop, &impl->listener, impl->listen_fd.get());
    uv_poll_init(&impl->loop, &impl->signals, impl->signal_fd.get());
    uv_check_init(&impl->loop, &impl->after_iteration);
    impl->after_iteration.data = self;
    uv_timer_init(&impl->loop, &impl->status_timer);
    impl->status_timer.data = self;
    impl->listener.data = self;
    impl->signals.data = self;
    impl->start_poll(impl->listener);
    impl->start_poll(impl->signals);
    if (auto interval = watchdog_interval()) {
        const auto half_ms = static_cast<std::uint64_t>(interval->count() / 2000);
        uv_timer_init(&impl->loop, &impl->watchdog);
        impl->watchdog.data = self;
        uv_timer_start(
            &impl->watchdog, [](uv_timer_t*) { notify_watchdog(); }, half_ms == 0 ? 1 : half_ms,
            half_ms == 0 ? 1 : half_ms);
        impl->watchdog_started = true;
        log_debug("watchdog: pinging every " + std::to_string(half_ms) + " ms");
    }
    if (state.in_grace()) {
        // One shot: the restart's grace period for clients to offer their endpoints back.
        uv_timer_init(&impl->loop, &impl->grace);
        impl->grace.data = self;
        impl->grace_running = true;
        uv_timer_start(
            &impl->grace,
            [](uv_timer_t* h) {
                auto* s = static_cast<Impl*>(h->data);
                s->state.end_grace();
                s->grace_running = false;
                uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
            },
            static_cast<std::uint64_t>(kRestartGrace.count()), 0);
    }
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
    uv_run(&impl_->loop, UV_RUN_DEFAULT);
    impl_->state.on_change = nullptr;
    impl_->state.on_state_dirty = nullptr;
    impl_->state.flush_state();
    const int rc = uv_loop_close(&impl_->loop);
    impl_->listen_fd.reset();
    if (rc != 0) {
        uv_walk(
            &impl_->loop,
            [](uv_handle_t* h, void*) {
                log_error(std::string{"handle still open at exit: "} +
                          uv_handle_type_name(uv_handle_get_type(h)));
            },
            nullptr);
        return make_error(Errc::system_error, "uv_loop_close: " + uv_message(rc));
    }
    return ok();
}

void EventLoop::stop() {
    impl_->stop();
}

void EventLoop::reload() {
    impl_->reload();
}

} // namespace shmbus::daemon
