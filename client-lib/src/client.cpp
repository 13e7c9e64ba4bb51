// Client: one control connection to shmbusd (docs/protocol.md).
//
// Owns: the control socket, a duplicate of the descriptors of every endpoint it opened that
// is still alive, so that it can offer them back to a daemon that restarted without
// systemd's descriptor store (ReclaimOffer). One watcher thread per process (class Watcher)
// restores lost connections for every Client that asked for it. The endpoints themselves are owned
// by the caller and may outlive the Client; each carries a detach hook (endpoint_hooks.hpp) that
// sends Close when the endpoint goes.
//
// Lifetime: the hooks hold the Impl *strongly*, so the connection lasts until the Client
// and every endpoint it opened are gone. It must: shmbusd reclaims everything a connection
// held when it closes (DESIGN.md, Liveness), and reclaiming an endpoint that is still in use
// would hand its table entry to someone else. The watcher holds a weak reference, made
// strong only while it restores the connection; the Impl's destructor unregisters it.
//
// Threads: the Client is used by one thread at a time (client.hpp), but endpoints are
// destroyed on any thread, so their hooks send Close concurrently with requests, and the
// watcher reconnects concurrently with both. Two locks, always taken in this order:
//  - `request_mutex` makes a request (send, await its reply, maybe reconnect) and a
//    watcher's reconnect attempt exclusive: only its holder receives on the socket or
//    replaces it;
//  - `mutex` guards the socket descriptor (its replacement and every send), its generation
//    and the endpoint records. It is held only for a send or a bookkeeping step, never while
//    waiting, so an endpoint's destructor never waits on a request.
//
// Requests: one outstanding at a time, with increasing ids; the reply is the message with
// the same id. Anything else that arrives meanwhile is discarded: replies to requests that
// timed out, and the replies to Close, which is sent fire-and-forget. An `error` with id 0 is
// the daemon refusing a datagram it could not decode, and answers the current request.
//
// Failure policy: the watcher polls a duplicate of the socket for hang-up only (never for
// input, which is the requester's), so it learns of a daemon's death within one wake-up.
// It then reconnects with backoff (10 ms doubling to 1 s, for as long as the Client lives),
// says hello again and offers back every live endpoint; one log line when the connection is
// lost, one when it is back. A request that finds the connection closed does the same within
// its own timeout and retries once. The data path never depends on any of this. Nothing
// throws out of the Client: allocation failure becomes Errc::no_memory.
#include <shmbus/client.hpp>
#include <shmbus/version.hpp>

#include "endpoint_hooks.hpp"
#include "protocol/seqpacket.hpp"
#include "protocol/wire.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <list>
#include <mutex>
#include <new>
#include <optional>
#include <poll.h>
#include <pthread.h>
#include <span>
#include <string>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

namespace shmbus {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kFirstBackoff = 10ms;
constexpr std::chrono::milliseconds kMaxBackoff = 1s;
/// While connect() waits for a daemon to appear: a new daemon is found within this.
constexpr std::chrono::milliseconds kMaxWaitBackoff = 250ms;
constexpr const char* kSystemSocket = "/run/shmbusd/shmbusd.sock";

Error out_of_memory() {
    return make_error(Errc::no_memory, "out of memory");
}

Error moved_from() {
    return make_error(Errc::closed, "this Client was moved from");
}

/// The waits between connection attempts: 10 ms, doubling up to `max`.
class Backoff {
public:
    explicit Backoff(std::chrono::milliseconds max) noexcept : max_{max} {}
    /// The next wait, never longer than `left`.
    [[nodiscard]] Clock::duration next(Clock::duration left) noexcept {
        const Clock::duration d = std::min<Clock::duration>(step_, left);
        step_ = std::min(step_ * 2, max_);
        return d;
    }
    void reset() noexcept { step_ = kFirstBackoff; }

private:
    std::chrono::milliseconds step_{kFirstBackoff};
    std::chrono::milliseconds max_;
};

/// "250 ms", "5 s".
std::string format_ms(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) {
        return std::to_string(d.count() / 1000) + " s";
    }
    return std::to_string(d.count()) + " ms";
}

std::string quoted(std::string_view s) {
    return "'" + std::string{s} + "'";
}

/// The same error with `prefix` in front of its detail.
Error prefixed(Error e, const std::string& prefix) {
    e.detail = prefix + e.detail;
    return e;
}

/// A connected control socket to `path`. SO_SNDTIMEO = `timeout` bounds both connect() on a
/// full listen backlog (AF_UNIX waits for room) and every later send to a daemon that has
/// stopped reading.
Result<UniqueFd> connect_socket(const std::string& path, std::chrono::milliseconds timeout) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        return make_error(Errc::invalid_argument, "socket path " + quoted(path) + " must be 1 to " +
                                                      std::to_string(sizeof(addr.sun_path) - 1) +
                                                      " bytes long");
    }
    path.copy(addr.sun_path, path.size());
    UniqueFd fd{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
    if (!fd) {
        return make_error(Errc::system_error, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
    }
    if (auto sized = proto::size_socket_buffers(fd.get()); !sized) {
        return sized.take_error();
    }
    const auto ms = std::max<std::chrono::milliseconds::rep>(timeout.count(), 1);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        return make_error(Errc::system_error, "setting SO_SNDTIMEO", errno);
    }
    int rc = 0;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        const int err = errno;
        switch (err) {
        case ENOENT:
        case ECONNREFUSED:
        case ENOTDIR:
            return make_error(Errc::not_found,
                              "no shmbusd is listening on " + path + " (is it running?)", err);
        case EACCES:
        case EPERM:
            return make_error(Errc::permission_denied,
                              "this user may not connect to shmbusd's socket " + path, err);
        case EAGAIN:
            return make_error(Errc::timed_out,
                              "shmbusd at " + path + " did not accept the connection within " +
                                  std::to_string(ms) + " ms",
                              err);
        default:
            return make_error(Errc::system_error, "connecting to " + path, err);
        }
    }
    return fd;
}

/// Conditions a reconnect cannot outwait.
bool is_permanent(Errc code) noexcept {
    return code == Errc::version_mismatch || code == Errc::permission_denied ||
           code == Errc::invalid_argument || code == Errc::protocol_error ||
           code == Errc::no_memory;
}

/// One endpoint this Client opened and that is still alive.
struct OpenEndpoint {
    std::uint64_t key{0}; ///< unique within the Client; what the detach hook refers to
    std::string channel;
    Role role{Role::subscriber};
    std::uint32_t endpoint_index{0};
    std::uint64_t creation_id{0};
    ChannelFiles files; ///< duplicates, offered back to a restarted daemon
};

} // namespace

std::string default_socket_path() {
    if (const char* s = std::getenv("SHMBUS_SOCKET"); s != nullptr && *s != '\0') {
        return s;
    }
    if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x == '/') {
        std::string user = std::string{x} + "/shmbus/shmbusd.sock";
        struct stat st {};
        if (::stat(user.c_str(), &st) == 0) {
            return user;
        }
    }
    return kSystemSocket;
}

namespace {

/// The watcher thread's view of one connection; touched by that thread only.
struct WatchState {
    std::uint64_t seen{0}; // the socket generation `mine` duplicates
    UniqueFd mine;         // polled for hang-up
    Backoff backoff{kMaxBackoff};
    bool lost{false};
    bool retrying{false}; // the connection is gone: restore it at retry_at
    Clock::time_point retry_at{};
    std::string last_failure;
};

/// The watcher thread (see the top of this file): started with the first connection that
/// wants it, then shared by every connection of the process.
Result<void> watcher_add(const std::shared_ptr<Client::Impl>& impl);
/// The Impl is going away: the watcher never touches it after this returns.
void watcher_forget(const Client::Impl* impl) noexcept;
/// A socket changed: the watcher looks at every connection again.
void watcher_poke() noexcept;

} // namespace

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
    std::string socket_path;
    std::string client_name;
    std::chrono::milliseconds timeout{5000};
    std::function<void(std::string_view)> log_sink;
    // Written by whoever holds request_mutex; read by client_id() on the Client's thread.
    std::atomic<std::uint64_t> client_id{0};

    std::mutex request_mutex;
    std::mutex mutex;
    UniqueFd sock;                       // guarded by mutex; replaced under request_mutex too
    std::uint64_t sock_generation{0};    // guarded by mutex; bumped whenever sock changes
    std::vector<OpenEndpoint> endpoints; // guarded by mutex
    std::uint64_t next_key{1};           // guarded by mutex
    std::atomic<std::uint32_t> next_request{1};

    bool watched{false}; // registered with the process's watcher thread

    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        if (watched) {
            watcher_forget(this);
        }
    }

    void log(const std::string& line) const noexcept {
        try {
            if (log_sink) {
                log_sink(line);
            } else {
                std::fprintf(stderr, "shmbus: %s\n", line.c_str());
            }
        } catch (...) {
            // A throwing sink must not take the Client down; the line is lost, nothing else.
        }
    }

    /// Replaces the socket (empty: disconnected) and tells the watcher.
    void set_socket(UniqueFd fd) {
        {
            const std::lock_guard lock{mutex};
            sock = std::move(fd);
            ++sock_generation;
        }
        poke();
    }

    void poke() const noexcept {
        if (watched) {
            watcher_poke();
        }
    }

    /// One step of the watcher thread for this connection, whose socket of generation
    /// `st.seen` hung up (or there was none): connect again, or say when to try next.
    void restore(WatchState& st) {
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
                log("lost the connection to shmbusd at " + socket_path +
                    "; reconnecting in the background (channels keep working)");
            }
            back = reconnect_once(Clock::now() + timeout);
        }
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

    /// The connection is back (restored by the watcher or by a request): the next loss is
    /// reported and retried afresh.
    void restored(WatchState& st) {
        if (st.lost) {
            log("reconnected to shmbusd at " + socket_path + " as client " +
                std::to_string(client_id.load(std::memory_order_relaxed)));
        }
        st.lost = false;
        st.last_failure.clear();
        st.backoff.reset();
        st.retrying = false;
    }

    /// A duplicate of the current socket for the watcher to poll, when it is not the one of
    /// generation `st.seen` any more.
    void refresh(WatchState& st) {
        {
            const std::lock_guard lock{mutex};
            if (st.mine && st.seen == sock_generation) {
                return;
            }
            st.seen = sock_generation;
            st.mine = sock ? UniqueFd{::fcntl(sock.get(), F_DUPFD_CLOEXEC, 0)} : UniqueFd{};
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

    std::uint32_t new_request_id() noexcept {
        std::uint32_t id = next_request.fetch_add(1, std::memory_order_relaxed);
        if (id == 0) { // 0 means "no particular request" in a daemon's error: never use it
            id = next_request.fetch_add(1, std::memory_order_relaxed);
        }
        return id;
    }

    /// Sends `body` as a new request; for a ReclaimOffer, with the descriptors of the
    /// endpoint `reclaim_key`. Returns the request id. Errc::closed when not connected.
    Result<std::uint32_t> send(const proto::Body& body, std::string_view what,
                               std::uint64_t reclaim_key = 0) {
        const std::lock_guard lock{mutex};
        if (!sock) {
            return make_error(Errc::closed, "not connected");
        }
        std::array<int, 2> fds{-1, -1};
        std::span<const int> pass;
        if (reclaim_key != 0) {
            const auto it =
                std::find_if(endpoints.begin(), endpoints.end(),
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
                return make_error(Errc::timed_out, "shmbusd at " + socket_path +
                                                       " did not take the " + std::string{what} +
                                                       " request within " +
                                                       std::to_string(timeout.count()) + " ms");
            }
            return sent.take_error();
        }
        return id;
    }

    /// Waits for the reply to request `id`. An ErrorReply becomes its Error.
    Result<proto::Received> await(std::uint32_t id, std::string_view what,
                                  Clock::time_point deadline) {
        for (;;) {
            auto got = proto::receive_message(sock.get(), deadline);
            if (!got) {
                if (got.code() == Errc::timed_out) {
                    return make_error(Errc::timed_out, "shmbusd at " + socket_path +
                                                           " did not answer " + quoted(what) +
                                                           " within " +
                                                           std::to_string(timeout.count()) + " ms");
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
    Result<proto::Received> exchange(const proto::Body& body, std::string_view what,
                                     Clock::time_point deadline) {
        auto id = send(body, what);
        if (!id) {
            return id.take_error();
        }
        return await(*id, what, deadline);
    }

    /// A request: reconnects once if the connection turns out to be closed, then retries.
    Result<proto::Received> call(const proto::Body& body, std::string_view what) {
        const std::lock_guard requests{request_mutex};
        const auto deadline = Clock::now() + timeout;
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
    std::optional<Error> refusal_after_close() {
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

    /// Hello on a fresh connection: checks both versions and learns our client id.
    Result<void> handshake(Clock::time_point deadline) {
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
                                  std::to_string(reply->major) + "." +
                                  std::to_string(reply->minor) + ", this library " +
                                  std::to_string(proto::kProtocolMajor) + "." +
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
    Result<void> reconnect_once(Clock::time_point deadline) {
        set_socket(UniqueFd{});
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        auto fd = connect_socket(socket_path, std::max(left, 1ms));
        if (!fd) {
            return fd.take_error();
        }
        set_socket(std::move(*fd));
        if (auto greeted = handshake(deadline); !greeted) {
            set_socket(UniqueFd{});
            return greeted;
        }
        offer_endpoints(deadline);
        return ok();
    }

    /// Connects again after the daemon went away, within `deadline`, backing off between
    /// attempts. The caller holds request_mutex.
    Result<void> reconnect(Clock::time_point deadline) {
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

    /// The first connection: waits up to `wait` for a daemon to listen, saying so once.
    Result<UniqueFd> first_connect(std::chrono::milliseconds wait) {
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

    /// Offers the descriptors of every live endpoint to a (restarted) daemon. The daemon
    /// takes back those it recognises; a refusal changes nothing for the endpoint, whose
    /// messages flow through shared memory either way.
    void offer_endpoints(Clock::time_point deadline) {
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
                offer =
                    proto::ReclaimOffer{it->channel, it->creation_id, it->role, it->endpoint_index};
            }
            auto id = send(offer, "reclaim_offer", key);
            if (!id) {
                if (id.code() == Errc::not_found) {
                    continue; // closed meanwhile
                }
                return;
            }
            if (auto r = await(*id, "reclaim_offer", deadline); !r && r.code() == Errc::closed) {
                return;
            }
        }
    }

    /// Fire-and-forget Close for `key`, from an endpoint's detach hook (any thread). May be
    /// the last use of this Impl: the hook's reference goes right after.
    void endpoint_detached(std::uint64_t key) noexcept {
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
    void release_assigned(const std::string& channel, Role role, std::uint32_t index) {
        const std::lock_guard lock{mutex};
        if (sock) {
            (void)proto::send_message(
                sock.get(), proto::Message{new_request_id(), proto::Close{channel, role, index}});
        }
    }

    Result<void> create(const proto::Create& m) {
        auto r = call(m, "create");
        if (!r) {
            return r.take_error();
        }
        if (!std::holds_alternative<proto::Ok>(r->message.body)) {
            return unexpected("create", r->message);
        }
        return ok();
    }

    Error unexpected(std::string_view what, const proto::Message& got) const {
        return make_error(Errc::protocol_error,
                          "shmbusd at " + socket_path + " answered " + quoted(what) + " with " +
                              std::string{proto::msg_type_name(proto::type_of(got.body))});
    }

    template <typename Endpoint>
    Result<Endpoint> open(std::string_view channel, Role role, const EndpointOptions& options) {
        auto r =
            call(proto::Open{std::string{channel}, role, static_cast<std::uint32_t>(options.wait)},
                 "open");
        if (!r) {
            return r.take_error();
        }
        const auto* reply = std::get_if<proto::OpenReply>(&r->message.body);
        if (reply == nullptr) {
            return unexpected("open", r->message);
        }
        const std::uint32_t index = reply->endpoint_index;
        if (index > static_cast<std::uint32_t>(INT32_MAX)) {
            release_assigned(std::string{channel}, role, index);
            return make_error(Errc::protocol_error,
                              "shmbusd assigned endpoint index " + std::to_string(index));
        }
        ChannelFiles files{std::move(r->fds[0]), std::move(r->fds[1])};
        auto keep = files.duplicate();
        if (!keep) {
            release_assigned(std::string{channel}, role, index);
            return keep.take_error();
        }
        EndpointOptions assigned = options;
        assigned.endpoint_index = static_cast<std::int32_t>(index);
        auto endpoint = Endpoint::attach(std::move(files), assigned);
        if (!endpoint) {
            release_assigned(std::string{channel}, role, index);
            return endpoint.take_error();
        }
        std::uint64_t key = 0;
        {
            const std::lock_guard lock{mutex};
            key = next_key++;
            endpoints.push_back(OpenEndpoint{key, std::string{channel}, role,
                                             endpoint->endpoint_index(),
                                             endpoint->info().creation_id, std::move(*keep)});
        }
        // Strong: the connection must outlive the endpoint (see the top of this file).
        detail::EndpointHooks::set_on_detach(
            *endpoint,
            [self = shared_from_this(), key]() noexcept { self->endpoint_detached(key); });
        return endpoint;
    }
};

namespace {

// One thread for every Client of the process, not one per connection: a connection costs
// no thread start and stop, and an idle process one thread asleep in poll().
//
// Entries are added by connect() and marked forgotten by ~Impl(), under `mutex`; only the
// thread erases them (closing its duplicate socket only once it no longer polls it). It
// holds an Impl strongly only while restoring it, so ~Impl() may run on this thread, after
// the step, when the Client and its endpoints were dropped meanwhile. A fork() child gets
// a watcher of its own with its first connection (the parent's thread is not in it).
class Watcher {
public:
    static Watcher* current() noexcept { return instance.load(std::memory_order_acquire); }

    static Result<Watcher*> get_or_start() {
        if (Watcher* w = current()) {
            return w;
        }
        static std::once_flag atfork;
        std::call_once(atfork, [] {
            (void)::pthread_atfork(nullptr, nullptr,
                                   [] { instance.store(nullptr, std::memory_order_relaxed); });
        });
        auto made = std::make_unique<Watcher>();
        made->wake_ = UniqueFd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
        if (!made->wake_) {
            return make_error(Errc::system_error, "eventfd for the reconnect thread", errno);
        }
        Watcher* expected = nullptr;
        if (!instance.compare_exchange_strong(expected, made.get(), std::memory_order_acq_rel)) {
            return expected; // another thread started one first
        }
        Watcher* w = made.release(); // lives as long as the process: never joined
        try {
            std::thread{[w] { w->run(); }}.detach();
        } catch (const std::system_error& e) {
            // The next connection tries again; w stays allocated, as another thread may
            // have registered with it meanwhile.
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

} // namespace

Client::Client(std::shared_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(const ClientOptions& options) noexcept {
    try {
        if (options.request_timeout <= std::chrono::milliseconds::zero()) {
            return make_error(Errc::invalid_argument, "request_timeout must be positive");
        }
        auto impl = std::make_shared<Impl>();
        impl->socket_path =
            options.socket_path.empty() ? default_socket_path() : options.socket_path;
        impl->client_name =
            options.client_name.empty() ? program_invocation_short_name : options.client_name;
        impl->timeout = options.request_timeout;
        impl->log_sink = options.log;
        auto fd = impl->first_connect(options.wait_for_daemon);
        if (!fd) {
            return fd.take_error();
        }
        impl->set_socket(std::move(*fd));
        const auto deadline = Clock::now() + impl->timeout;
        if (auto greeted = impl->handshake(deadline); !greeted) {
            return greeted.take_error();
        }
        if (options.reconnect_in_background) {
            if (auto started = watcher_add(impl); !started) {
                return started.take_error();
            }
        }
        return Client{std::move(impl)};
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<Publisher> Client::open_publisher(std::string_view channel,
                                         const EndpointOptions& options) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        return impl_->open<Publisher>(channel, Role::publisher, options);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<Subscriber> Client::open_subscriber(std::string_view channel,
                                           const EndpointOptions& options) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        return impl_->open<Subscriber>(channel, Role::subscriber, options);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<void> Client::create_channel(const ChannelSpec& spec) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        return impl_->create(proto::Create{spec, proto::kAllSpecFields});
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<void> Client::create_channel(const ChannelRequest& request) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        proto::Create m;
        m.spec.name = request.name;
        m.given = 0;
        // A field left out travels with its bit clear (a number also as 0, which is how a
        // 1.0 daemon knows it is left out); the daemon fills it in.
        auto take = [&](const auto& field, auto& into, std::uint32_t bit) {
            if (field) {
                into = *field;
                m.given |= bit;
            } else if constexpr (std::is_integral_v<std::remove_reference_t<decltype(into)>>) {
                into = 0;
            }
        };
        take(request.kind, m.spec.kind, proto::kSpecKind);
        take(request.slot_size, m.spec.slot_size, proto::kSpecSlotSize);
        take(request.slot_count, m.spec.slot_count, proto::kSpecSlotCount);
        take(request.overflow, m.spec.overflow, proto::kSpecOverflow);
        take(request.max_publishers, m.spec.max_publishers, proto::kSpecMaxPublishers);
        take(request.max_subscribers, m.spec.max_subscribers, proto::kSpecMaxSubscribers);
        return impl_->create(m);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<std::vector<ChannelSummary>> Client::list_channels() noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        auto r = impl_->call(proto::ListChannels{}, "list_channels");
        if (!r) {
            return r.take_error();
        }
        auto* reply = std::get_if<proto::ChannelList>(&r->message.body);
        if (reply == nullptr) {
            return impl_->unexpected("list_channels", r->message);
        }
        return std::move(reply->channels);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<ChannelDetail> Client::channel_info(std::string_view channel) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        auto r = impl_->call(proto::ChannelInfoRequest{std::string{channel}}, "channel_info");
        if (!r) {
            return r.take_error();
        }
        auto* reply = std::get_if<ChannelDetail>(&r->message.body);
        if (reply == nullptr) {
            return impl_->unexpected("channel_info", r->message);
        }
        return std::move(*reply);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<std::vector<ClientSummary>> Client::list_clients() noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        auto r = impl_->call(proto::ListClients{}, "list_clients");
        if (!r) {
            return r.take_error();
        }
        auto* reply = std::get_if<proto::ClientList>(&r->message.body);
        if (reply == nullptr) {
            return impl_->unexpected("list_clients", r->message);
        }
        return std::move(reply->clients);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<DaemonStatus> Client::status() noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        auto r = impl_->call(proto::Status{}, "status");
        if (!r) {
            return r.take_error();
        }
        auto* reply = std::get_if<proto::StatusReply>(&r->message.body);
        if (reply == nullptr) {
            return impl_->unexpected("status", r->message);
        }
        return std::move(*reply);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<std::string> Client::reload() noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        auto r = impl_->call(proto::Reload{}, "reload");
        if (!r) {
            return r.take_error();
        }
        auto* reply = std::get_if<proto::Ok>(&r->message.body);
        if (reply == nullptr) {
            return impl_->unexpected("reload", r->message);
        }
        return std::move(reply->message);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<std::chrono::nanoseconds> Client::ping() noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        static std::atomic<std::uint64_t> tokens{1};
        const std::uint64_t token = tokens.fetch_add(1, std::memory_order_relaxed);
        const auto start = Clock::now();
        auto r = impl_->call(proto::Ping{token}, "ping");
        const auto elapsed = Clock::now() - start;
        if (!r) {
            return r.take_error();
        }
        const auto* reply = std::get_if<proto::Pong>(&r->message.body);
        if (reply == nullptr) {
            return impl_->unexpected("ping", r->message);
        }
        if (reply->token != token) {
            return make_error(Errc::protocol_error, "shmbusd answered ping " +
                                                        std::to_string(token) + " with pong " +
                                                        std::to_string(reply->token));
        }
        return std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

const std::string& Client::socket_path() const noexcept {
    static const std::string none; // a moved-from Client's
    return impl_ ? impl_->socket_path : none;
}

std::uint64_t Client::client_id() const noexcept {
    return impl_ ? impl_->client_id.load(std::memory_order_relaxed) : 0;
}

} // namespace shmbus
