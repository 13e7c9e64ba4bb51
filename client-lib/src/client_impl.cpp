// Client::Impl: requests, reconnects and the endpoint records of one control connection.
// See client_impl.hpp for the locks, the lifetime and the failure policy.
#include "client_impl.hpp"

#include "assert.hpp"
#include "endpoint_hooks.hpp"
#include "protocol/seqpacket.hpp"

#include <shmbus/version.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <fcntl.h>
#include <span>
#include <thread>
#include <type_traits>
#include <unistd.h>

namespace shmbus {

using namespace std::chrono_literals;
using detail::Backoff;
using detail::connect_socket;
using detail::format_ms;
using detail::is_permanent;
using detail::kMaxBackoff;
using detail::kMaxWaitBackoff;
using detail::OpenEndpoint;
using detail::prefixed;
using detail::quoted;

Client::Impl::~Impl() {
    if (watched) {
        detail::watcher_forget(this);
    }
}

Result<void> Client::Impl::usable() const {
    const pid_t me = ::getpid();
    if (me == owner_pid) {
        return ok();
    }
    return make_error(Errc::closed, "this Client was connected to shmbusd at " + socket_path +
                                        " by process " + std::to_string(owner_pid) + "; process " +
                                        std::to_string(me) +
                                        " inherited it through fork() and cannot use it: "
                                        "connect a Client of its own");
}

void Client::Impl::queue_line(std::string line) {
    unsaid.push_back(std::move(line));
}

void Client::Impl::say_queued() noexcept {
    std::vector<std::string> lines;
    std::optional<detail::OfferOutcome> reconnected;
    {
        const std::lock_guard lock{mutex};
        lines.swap(unsaid);
        reconnected = std::exchange(unreported_reconnect, std::nullopt);
    }
    for (const std::string& line : lines) {
        log(line);
    }
    if (!reconnected) {
        return;
    }
    try {
        const auto endpoints_word = [](std::uint32_t n) {
            return std::to_string(n) + (n == 1 ? " endpoint" : " endpoints");
        };
        log("reconnected to shmbusd at " + socket_path + " as client " +
            std::to_string(client_id.load(std::memory_order_relaxed)) + ": " +
            endpoints_word(reconnected->taken_back) + " taken back, " +
            std::to_string(reconnected->refused) + " refused");
    } catch (const std::bad_alloc&) {
        // The line is lost, nothing else: the connection is back either way.
    }
}

namespace {
/// The shared owner of the application's handles on one Impl (Client::Impl::make_handle()).
struct ApplicationHandles {
    std::shared_ptr<Client::Impl> impl;
    ApplicationHandles(const ApplicationHandles&) = delete;
    ApplicationHandles& operator=(const ApplicationHandles&) = delete;
    explicit ApplicationHandles(std::shared_ptr<Client::Impl> i) noexcept : impl{std::move(i)} {}
    ~ApplicationHandles() { impl->close_log(); }
};
} // namespace

std::shared_ptr<Client::Impl> Client::Impl::make_handle(std::shared_ptr<Impl> impl) {
    Impl* raw = impl.get();
    auto owner = std::make_shared<ApplicationHandles>(std::move(impl));
    std::shared_ptr<Impl> handle{owner, raw}; // aliasing: owns `owner`, points at the Impl
    raw->handles = handle;
    return handle;
}

void Client::Impl::close_log() noexcept {
    std::function<void(std::string_view)> sink;
    {
        const std::lock_guard lock{sink_mutex_};
        sink_closed_ = true;
        sink.swap(log_sink);
    }
    // `sink` goes here, with what the application captured in it, outside the lock.
}

void Client::Impl::log(const std::string& line) const noexcept {
    try {
        const std::lock_guard lock{sink_mutex_};
        if (sink_closed_) {
            return; // nobody holds this connection any more: see close_log()
        }
        if (log_sink) {
            log_sink(line);
        } else {
            std::fprintf(stderr, "shmbus: %s\n", line.c_str());
        }
    } catch (...) {
        // A throwing sink must not take the Client down; the line is lost, nothing else.
    }
}

void Client::Impl::set_socket(detail::ControlFd fd) {
    {
        const std::lock_guard lock{mutex};
        sock = std::move(fd);
        ++sock_generation;
    }
    poke();
}

void Client::Impl::poke() const noexcept {
    if (watched) {
        detail::watcher_poke();
    }
}

void Client::Impl::restore(detail::WatchState& st) {
    Result<void> back = make_error(Errc::closed);
    {
        const std::lock_guard requests{request_mutex};
        {
            const std::lock_guard lock{mutex};
            if (st.seen != sock_generation && sock) {
                st.retrying = false; // a request restored it meanwhile
                return;
            }
        }
        if (!st.lost) {
            st.lost = true;
            const std::lock_guard lock{mutex};
            queue_line("lost the connection to shmbusd at " + socket_path +
                       "; reconnecting in the background (channels keep working)");
        }
        back = reconnect_once(Clock::now() + timeout);
    }
    say_queued();
    if (back) {
        restored(st);
        return;
    }
    if (is_permanent(back.code()) && back.error().message() != st.last_failure) {
        st.last_failure = back.error().message();
        log("cannot reconnect to shmbusd at " + socket_path + ": " + st.last_failure +
            " (still trying)");
    }
    st.retry_at = Clock::now() + st.backoff.next(kMaxBackoff);
}

void Client::Impl::restored(detail::WatchState& st) {
    st.lost = false;
    st.last_failure.clear();
    st.backoff.reset();
    st.retrying = false;
}

void Client::Impl::refresh(detail::WatchState& st) {
    {
        const std::lock_guard lock{mutex};
        if (st.mine && st.seen == sock_generation) {
            return;
        }
        st.seen = sock_generation;
        st.mine = detail::ControlFd::duplicate(sock);
        if (!st.mine) {
            if (!st.retrying) {
                st.retrying = true; // no socket: restore it
                st.retry_at = Clock::now();
            }
            return;
        }
        if (!st.retrying) {
            return;
        }
    }
    // A socket newer than the one that hung up: a request has connected again meanwhile.
    // Restoring now would replace that connection, and the daemon would reclaim the
    // endpoints it had just offered back.
    restored(st);
}

std::uint32_t Client::Impl::new_request_id() noexcept {
    std::uint32_t id = next_request.fetch_add(1, std::memory_order_relaxed);
    if (id == 0) { // 0 means "no particular request" in a daemon's error: never use it
        id = next_request.fetch_add(1, std::memory_order_relaxed);
    }
    return id;
}

/// Sends `body` as a new request; for a ReclaimOffer, with the descriptors of the
/// endpoint `reclaim_key`. Returns the request id. Errc::closed when not connected.
Result<std::uint32_t> Client::Impl::send(const proto::Body& body, std::string_view what,
                                         std::uint64_t reclaim_key) {
    const std::lock_guard lock{mutex};
    if (!sock) {
        return make_error(Errc::closed, "not connected");
    }
    std::array<int, 2> fds{-1, -1};
    std::span<const int> pass;
    if (reclaim_key != 0) {
        const auto it = std::find_if(endpoints.begin(), endpoints.end(),
                                     [&](const OpenEndpoint& e) { return e.key == reclaim_key; });
        if (it == endpoints.end()) {
            return make_error(Errc::not_found, "the endpoint was closed meanwhile");
        }
        fds = {it->files.control.get(), it->files.payload.get()};
        pass = fds;
    }
    const std::uint32_t id = new_request_id();
    auto sent = proto::send_message(sock.get(), proto::Message{id, body}, pass);
    if (!sent) {
        if (sent.code() == Errc::would_block) {
            return make_error(Errc::timed_out, "shmbusd at " + socket_path + " did not take the " +
                                                   std::string{what} + " request within " +
                                                   std::to_string(timeout.count()) + " ms");
        }
        return sent.take_error();
    }
    return id;
}

/// Waits for the reply to request `id`. An ErrorReply becomes its Error.
Result<proto::Received> Client::Impl::await(std::uint32_t id, std::string_view what,
                                            Clock::time_point deadline) {
    for (;;) {
        auto got = proto::receive_message(sock.get(), deadline);
        if (!got) {
            if (got.code() == Errc::timed_out) {
                return make_error(Errc::timed_out,
                                  "shmbusd at " + socket_path + " did not answer " + quoted(what) +
                                      " within " + std::to_string(timeout.count()) + " ms");
            }
            if (got.code() == Errc::closed) {
                return got.take_error();
            }
            return prefixed(got.take_error(), "shmbusd at " + socket_path + ": ");
        }
        const std::uint32_t got_id = got->message.request_id;
        const auto* error = std::get_if<proto::ErrorReply>(&got->message.body);
        if (got_id == id || (got_id == 0 && error != nullptr)) {
            if (error != nullptr) {
                return proto::to_error(*error);
            }
            return std::move(*got);
        }
        // A reply to a Close, or to a request that timed out earlier: not ours.
    }
}

/// One request and its reply on the current connection, without reconnecting.
Result<proto::Received> Client::Impl::exchange(const proto::Body& body, std::string_view what,
                                               Clock::time_point deadline) {
    auto id = send(body, what);
    if (!id) {
        return id.take_error();
    }
    return await(*id, what, deadline);
}

Result<proto::Received> Client::Impl::call(const proto::Body& body, std::string_view what) {
    const auto deadline = Clock::now() + timeout;
    // A daemon may answer an open or create of a channel it is still taking back from the
    // clients of its previous run with would_block (earlier ones did): the channel is there in
    // a moment, so ask again rather than hand the application a would_block it cannot act on.
    const bool may_wait_for_channel =
        std::holds_alternative<proto::Open>(body) || std::holds_alternative<proto::Create>(body);
    Backoff backoff{detail::kMaxRetryBackoff};
    std::optional<std::string> waiting_for; // the daemon's last would_block: why we ask again
    auto still_waiting = [&] {
        return make_error(Errc::timed_out, "shmbusd at " + socket_path + " still answered " +
                                               quoted(what) + " with would_block after " +
                                               format_ms(timeout) + ": " + *waiting_for);
    };
    for (;;) {
        auto r = call_once(body, what, deadline);
        if (!may_wait_for_channel) {
            return r;
        }
        if (r.code() == Errc::timed_out && waiting_for) {
            return still_waiting(); // the last attempt ran out of time: say why we waited
        }
        if (r.code() != Errc::would_block) {
            return r;
        }
        waiting_for = r.error().detail;
        // A pause that would reach the deadline leaves no time to ask again: give up now.
        const auto left = deadline - Clock::now();
        const auto pause = backoff.next(left);
        if (pause >= left) {
            return still_waiting();
        }
        std::this_thread::sleep_for(pause);
    }
}

/// One request and its reply, reconnecting once if the connection turns out to be closed.
Result<proto::Received> Client::Impl::call_once(const proto::Body& body, std::string_view what,
                                                Clock::time_point deadline) {
    const std::lock_guard requests{request_mutex};
    auto r = exchange(body, what, deadline);
    if (r || r.code() != Errc::closed) {
        return r;
    }
    if (auto back = reconnect(deadline); !back) {
        return back.take_error();
    }
    return exchange(body, what, deadline);
}

/// The daemon's error still queued on a connection it closed, if there is one.
std::optional<Error> Client::Impl::refusal_after_close() {
    int fd = -1;
    {
        const std::lock_guard lock{mutex};
        fd = sock.get();
    }
    if (fd < 0) {
        return std::nullopt;
    }
    auto got = proto::receive_message(fd, Clock::now());
    if (!got) {
        return std::nullopt;
    }
    if (const auto* error = std::get_if<proto::ErrorReply>(&got->message.body)) {
        return proto::to_error(*error);
    }
    return std::nullopt;
}

Result<void> Client::Impl::handshake(Clock::time_point deadline) {
    const proto::Hello hello{proto::kProtocolMajor, proto::kProtocolMinor, kLayoutVersion,
                             client_name};
    auto r = exchange(hello, "hello", deadline);
    if (!r && r.code() == Errc::closed) {
        // A daemon that refuses the connection (limits.max_clients) says why and closes
        // without reading our hello: the send then fails with EPIPE, or the receive with
        // ECONNRESET, while its error is still queued for us. Read it.
        if (auto refusal = refusal_after_close(); refusal) {
            return *refusal;
        }
    }
    if (!r) {
        Error e = r.take_error();
        if (e.code == Errc::version_mismatch && e.detail.rfind("shmbusd at ", 0) != 0) {
            return prefixed(std::move(e), "shmbusd at " + socket_path + ": ");
        }
        return e;
    }
    const auto* reply = std::get_if<proto::HelloReply>(&r->message.body);
    if (reply == nullptr) {
        return unexpected("hello", r->message);
    }
    if (reply->major != proto::kProtocolMajor) {
        return make_error(Errc::version_mismatch,
                          "shmbusd at " + socket_path + " speaks control protocol " +
                              std::to_string(reply->major) + "." + std::to_string(reply->minor) +
                              ", this library " + std::to_string(proto::kProtocolMajor) + "." +
                              std::to_string(proto::kProtocolMinor));
    }
    if (reply->layout_version != kLayoutVersion) {
        return make_error(Errc::version_mismatch,
                          "shmbusd at " + socket_path + " uses shared-memory layout " +
                              std::to_string(reply->layout_version) + ", this library " +
                              std::to_string(kLayoutVersion));
    }
    client_id.store(reply->client_id, std::memory_order_relaxed);
    return ok();
}

/// One attempt to connect again: connect, hello, offer back every live endpoint. The
/// caller holds request_mutex.
Result<void> Client::Impl::reconnect_once(Clock::time_point deadline) {
    set_socket(detail::ControlFd{});
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    auto fd = connect_socket(socket_path, std::max(left, 1ms));
    if (!fd) {
        return fd.take_error();
    }
    set_socket(std::move(*fd));
    if (auto greeted = handshake(deadline); !greeted) {
        set_socket(detail::ControlFd{});
        return greeted;
    }
    const detail::OfferOutcome outcome = offer_endpoints(deadline);
    const std::lock_guard lock{mutex};
    unreported_reconnect = outcome;
    return ok();
}

/// Connects again after the daemon went away, within `deadline`, backing off between
/// attempts. The caller holds request_mutex.
Result<void> Client::Impl::reconnect(Clock::time_point deadline) {
    Backoff backoff{kMaxBackoff};
    for (;;) {
        auto back = reconnect_once(deadline);
        if (back) {
            return back;
        }
        Error last = back.take_error();
        if (is_permanent(last.code)) {
            return last;
        }
        const auto now = Clock::now();
        if (now >= deadline) {
            return make_error(Errc::closed, "the connection to shmbusd at " + socket_path +
                                                " was lost and could not be restored within " +
                                                std::to_string(timeout.count()) +
                                                " ms (last attempt: " + last.message() + ")");
        }
        std::this_thread::sleep_for(backoff.next(deadline - now));
    }
}

Result<detail::ControlFd> Client::Impl::first_connect(std::chrono::milliseconds wait) {
    auto fd = connect_socket(socket_path, timeout);
    if (fd || fd.code() != Errc::not_found || wait <= 0ms) {
        return fd;
    }
    const bool forever = wait >= std::chrono::hours{24 * 365};
    const auto deadline = forever ? Clock::time_point::max() : Clock::now() + wait;
    log("waiting " + (forever ? std::string{"for ever"} : "up to " + format_ms(wait)) +
        " for shmbusd to listen on " + socket_path);
    Backoff backoff{kMaxWaitBackoff};
    for (;;) {
        const auto now = Clock::now();
        if (now >= deadline) {
            return make_error(Errc::not_found, "no shmbusd listened on " + socket_path +
                                                   " within " + format_ms(wait) +
                                                   " (is it running?)");
        }
        std::this_thread::sleep_for(backoff.next(deadline - now));
        fd = connect_socket(socket_path, timeout);
        if (fd || fd.code() != Errc::not_found) {
            return fd;
        }
    }
}

/// Offers the descriptors of every live endpoint to a (restarted) daemon, which takes back
/// those it recognises. A refused endpoint is no longer the daemon's: its record goes (it is
/// not offered again, and its Close would name an entry the daemon does not know) and the
/// refusal is queued for the log. The caller holds request_mutex.
detail::OfferOutcome Client::Impl::offer_endpoints(Clock::time_point deadline) {
    detail::OfferOutcome outcome;
    std::vector<std::uint64_t> keys;
    {
        const std::lock_guard lock{mutex};
        for (const OpenEndpoint& e : endpoints) {
            keys.push_back(e.key);
        }
    }
    for (const std::uint64_t key : keys) {
        proto::ReclaimOffer offer;
        {
            const std::lock_guard lock{mutex};
            const auto it = std::find_if(endpoints.begin(), endpoints.end(),
                                         [&](const OpenEndpoint& e) { return e.key == key; });
            if (it == endpoints.end()) {
                continue;
            }
            offer = proto::ReclaimOffer{it->channel, it->creation_id, it->role, it->endpoint_index};
        }
        auto id = send(offer, "reclaim_offer", key);
        if (!id) {
            if (id.code() == Errc::not_found) {
                continue; // closed meanwhile
            }
            return outcome;
        }
        auto r = await(*id, "reclaim_offer", deadline);
        if (r) {
            ++outcome.taken_back;
            continue;
        }
        if (r.code() == Errc::closed) {
            return outcome; // the connection went: offered again with the next one
        }
        if (r.code() == Errc::timed_out) {
            continue; // no answer is no refusal
        }
        ++outcome.refused;
        const std::string why = "shmbusd at " + socket_path + " refused to take back the " +
                                std::string{to_string(offer.role)} + " (endpoint " +
                                std::to_string(offer.endpoint_index) + ") of channel " +
                                quoted(offer.channel) + ": " + r.error().message() +
                                "; the daemon no longer serves this endpoint: open the "
                                "channel again";
        std::shared_ptr<detail::EndpointLink> link;
        {
            const std::lock_guard lock{mutex};
            const auto it = std::find_if(endpoints.begin(), endpoints.end(),
                                         [&](const OpenEndpoint& e) { return e.key == key; });
            if (it != endpoints.end()) {
                link = std::move(it->link);
                endpoints.erase(it);
            }
            queue_line(why);
        }
        if (link) {
            detail::refuse_endpoint(*link, why); // takes the endpoint's lock: ours are free
        }
    }
    return outcome;
}

/// Fire-and-forget Close for `key`, from an endpoint's detach hook (any thread). May be
/// the last use of this Impl: the hook's reference goes right after.
void Client::Impl::endpoint_detached(std::uint64_t key) noexcept {
    try {
        const std::lock_guard lock{mutex};
        const auto it = std::find_if(endpoints.begin(), endpoints.end(),
                                     [&](const OpenEndpoint& e) { return e.key == key; });
        if (it == endpoints.end()) {
            return;
        }
        const proto::Close close{it->channel, it->role, it->endpoint_index};
        endpoints.erase(it);
        if (sock) {
            // Its reply is discarded by whichever request reads it. If the connection is
            // down, the daemon reclaims the entry with the rest of the old connection.
            (void)proto::send_message(sock.get(), proto::Message{new_request_id(), close});
        }
    } catch (const std::bad_alloc&) {
        // In a destructor: nothing to report to. The daemon reclaims the entry when this
        // connection ends.
    }
}

/// Tells the daemon at once that an endpoint it assigned will not be used after all.
void Client::Impl::release_assigned(const std::string& channel, Role role, std::uint32_t index) {
    const std::lock_guard lock{mutex};
    if (sock) {
        (void)proto::send_message(
            sock.get(), proto::Message{new_request_id(), proto::Close{channel, role, index}});
    }
}

Error Client::Impl::unexpected(std::string_view what, const proto::Message& got) const {
    return make_error(Errc::protocol_error,
                      "shmbusd at " + socket_path + " answered " + quoted(what) + " with " +
                          std::string{proto::msg_type_name(proto::type_of(got.body))});
}

template <typename Endpoint>
Result<Endpoint> Client::Impl::open(std::string_view channel, Role role,
                                    const EndpointOptions& options) {
    std::vector<UniqueFd> fds;
    auto reply = request<proto::OpenReply>(
        proto::Open{std::string{channel}, role, static_cast<std::uint32_t>(options.wait)}, "open",
        std::identity{}, &fds);
    if (!reply) {
        return reply.take_error();
    }
    const std::uint32_t index = reply->endpoint_index;
    if (index > static_cast<std::uint32_t>(INT32_MAX)) {
        release_assigned(std::string{channel}, role, index);
        return make_error(Errc::protocol_error,
                          "shmbusd assigned endpoint index " + std::to_string(index));
    }
    if (fds.size() != 2) {
        release_assigned(std::string{channel}, role, index);
        return make_error(Errc::protocol_error, "shmbusd answered 'open' with " +
                                                    std::to_string(fds.size()) +
                                                    " descriptors instead of 2");
    }
    ChannelFiles files{std::move(fds[0]), std::move(fds[1])};
    auto keep = files.duplicate();
    if (!keep) {
        release_assigned(std::string{channel}, role, index);
        return keep.take_error();
    }
    EndpointOptions assigned = options;
    assigned.endpoint_index = static_cast<std::int32_t>(index);
    auto endpoint = [&] {
        // The shared-state kinds have one class for both roles.
        if constexpr (std::is_same_v<Endpoint, Blackboard> || std::is_same_v<Endpoint, Counters> ||
                      std::is_same_v<Endpoint, Pool>) {
            return Endpoint::attach(std::move(files), role, assigned);
        } else {
            return Endpoint::attach(std::move(files), assigned);
        }
    }();
    if (!endpoint) {
        release_assigned(std::string{channel}, role, index);
        return endpoint.take_error();
    }
    std::uint64_t key = 0;
    // Publishers and subscribers learn of a refused offer through their link (Errc::closed from
    // then on); the shared-state kinds keep working on the segment they mapped and only lose
    // their record, as the log line says.
    std::shared_ptr<detail::EndpointLink> link;
    if constexpr (std::is_same_v<Endpoint, Publisher> || std::is_same_v<Endpoint, Subscriber>) {
        link = detail::EndpointHooks::link(*endpoint);
    }
    {
        const std::lock_guard lock{mutex};
        key = next_key++;
        endpoints.push_back(OpenEndpoint{key, std::string{channel}, role,
                                         endpoint->endpoint_index(), endpoint->info().creation_id,
                                         std::move(*keep), std::move(link)});
    }
    // Strong, and one of the application's handles: the connection and its log sink must
    // outlive the endpoint (see the top of client_impl.hpp). The Client calling us holds
    // one, so there is a shared owner to share.
    std::shared_ptr<Impl> self = handles.lock();
    SHMBUS_ASSERT(self != nullptr, "open() is called through a Client, which holds a handle");
    detail::EndpointHooks::set_on_detach(
        *endpoint, [self = std::move(self), key]() noexcept { self->endpoint_detached(key); });
    return endpoint;
}

template Result<Publisher> Client::Impl::open<Publisher>(std::string_view, Role,
                                                         const EndpointOptions&);
template Result<Subscriber> Client::Impl::open<Subscriber>(std::string_view, Role,
                                                           const EndpointOptions&);
template Result<Server> Client::Impl::open<Server>(std::string_view, Role, const EndpointOptions&);
template Result<Caller> Client::Impl::open<Caller>(std::string_view, Role, const EndpointOptions&);
template Result<Blackboard> Client::Impl::open<Blackboard>(std::string_view, Role,
                                                           const EndpointOptions&);
template Result<Pool> Client::Impl::open<Pool>(std::string_view, Role, const EndpointOptions&);
template Result<Counters> Client::Impl::open<Counters>(std::string_view, Role,
                                                       const EndpointOptions&);

} // namespace shmbus
