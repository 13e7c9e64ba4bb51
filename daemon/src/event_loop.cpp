// The libuv loop of shmbusd: its own handles (the listening socket, the signals, the timers),
// setup and the stop sequence. See event_loop.hpp for what it owns, event_loop_impl.hpp for
// the handles' lifetimes and the rules for libuv calls and callbacks; the client connections
// are in client_connections.cpp.
#include "event_loop_impl.hpp"

#include "logging.hpp"
#include "uv_callback.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <sys/signalfd.h>
#include <unistd.h>
#include <utility>

namespace shmbus::daemon {

namespace {

/// How long endpoints of the previous run wait for their clients to claim them.
constexpr std::chrono::milliseconds kRestartGrace{2000};
/// STATUS= at most this often: a burst of connections then costs the service manager one
/// datagram a second, not two per connection.
constexpr std::uint64_t kStatusIntervalMs = 1000;

} // namespace

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
