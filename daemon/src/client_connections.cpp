// The client connections of shmbusd's loop: accepting (and refusing, naming the limit),
// reading requests and sending replies through protocol/seqpacket, back-pressure, closing and
// reclaiming, and the hello timeout. The state they use is in event_loop_impl.hpp, which says
// how handles live and die.
//
// Datagrams are read and sent by protocol/seqpacket, which also decides which refused
// datagrams end a connection; this file only acts on its answers.
#include "event_loop_impl.hpp"

#include "logging.hpp"
#include "uv_callback.hpp"

#include <protocol/seqpacket.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <sys/socket.h>
#include <variant>

namespace shmbus::daemon {

namespace {

constexpr int kMessagesPerWakeup = 32;
constexpr int kAcceptsPerWakeup = 64;

} // namespace

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
    auto owned = std::make_unique<Connection>(this, std::move(fd), id);
    if (!uv_ok(uv_poll_init(&loop, &owned->poll, owned->fd.get()),
               "uv_poll_init for " + describe(**record))) {
        state.forget_client(id);
        return; // never initialised: libuv does not know it, `owned` frees it
    }
    // From here on libuv knows the handle: the Connection is freed in its close callback.
    Connection* c = owned.release();
    connections.emplace(id, c);
    log_debug("accepted " + describe(**record));
    awaiting_hello.emplace_back(uv_now(&loop), id);
    ++ungreeted;
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
            if (c.awaiting_hello && c.session.greeted()) {
                hello_done(c);
            }
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
    if (c.awaiting_hello) {
        hello_done(c);
    }
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

void EventLoop::Impl::hello_done(Connection& c) {
    c.awaiting_hello = false;
    if (--ungreeted == 0) {
        awaiting_hello.clear();
        (void)uv_ok(uv_timer_stop(&hello_timer), "uv_timer_stop (hello timeout)");
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

} // namespace shmbus::daemon
