// Client::Impl: one control connection to shmbusd and what it must remember across a daemon
// restart (docs/protocol.md).
//
// Owns: the control socket (a ControlFd, client_connection.hpp) and a duplicate of the
// descriptors of every endpoint it opened that is still alive, so that it can offer them back
// to a daemon that restarted without systemd's descriptor store (ReclaimOffer). The endpoints
// themselves are owned by the caller and may outlive the Client; each carries a detach hook
// (endpoint_hooks.hpp) that sends Close when the endpoint goes.
//
// Lifetime: the hooks hold the Impl *strongly*, so the connection lasts until the Client and
// every endpoint it opened are gone. It must: shmbusd reclaims everything a connection held
// when it closes (DESIGN.md, Liveness), and reclaiming an endpoint that is still in use would
// hand its table entry to someone else. The reconnect watcher (client_watcher.hpp) holds a
// weak reference, made strong only while it restores the connection; ~Impl() unregisters it.
// The application's references (the Client and the hooks) are handles (make_handle()):
// aliases of one shared owner, so that the Impl knows when the last of them goes even while
// the watcher still holds it for a restore step it had begun. The log sink is closed then
// (close_log()): the application's log function is never called once its Client and every
// endpoint are gone, and the lines of that last step are dropped, since they speak of a
// connection nobody holds.
// The connection belongs to the process that opened it: in a fork()ed child its socket is
// already dead (client_connection.hpp) and every request is refused with Errc::closed.
//
// Threads: the Client is used by one thread at a time (client.hpp), but endpoints are
// destroyed on any thread, so their hooks send Close concurrently with requests, and the
// watcher reconnects concurrently with both. Two locks, always taken in this order:
//  - `request_mutex` makes a request (send, await its reply, maybe reconnect) and a
//    watcher's reconnect attempt exclusive: only its holder receives on the socket or
//    replaces it;
//  - `mutex` guards the socket descriptor (its replacement and every send), its generation,
//    the endpoint records and what is still to be logged. It is held only for a send or a
//    bookkeeping step, never while waiting, so an endpoint's destructor never waits on a
//    request.
// The log sink is called with neither held: lines are queued and said once both are gone.
//
// Requests: one outstanding at a time, with increasing ids; the reply is the message with the
// same id. Anything else that arrives meanwhile is discarded: replies to requests that timed
// out, and the replies to Close, which is sent fire-and-forget. An `error` with id 0 is the
// daemon refusing a datagram it could not decode, and answers the current request. An open or
// create that the daemon answers with would_block (a channel it is still taking back after a
// restart) is asked again with backoff until the request's timeout, and never handed to the
// application as would_block: Errc::timed_out then, with the daemon's reason.
//
// Failure policy: a request that finds the connection closed reconnects within its own
// timeout and retries once. A reconnect says hello again and offers back every live
// endpoint; an offer the daemon refuses is logged (channel, role, why), the endpoint's
// record dropped, since the daemon no longer knows it, and the endpoint itself told
// (endpoint_hooks.hpp: every later call on it returns Errc::closed saying why, rather than
// work on a segment nobody serves). One log line when the watcher finds the
// connection lost, and one for every reconnect, whoever made it, counting the endpoints taken
// back and refused. The data path never depends on any of this. Nothing throws out of the Client
// but std::bad_alloc, which client.cpp turns into Errc::no_memory.
#pragma once

#include "client_connection.hpp"
#include "client_watcher.hpp"
#include "endpoint_hooks.hpp"
#include "protocol/seqpacket.hpp"
#include "protocol/wire.hpp"

#include <shmbus/client.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace shmbus {

namespace detail {

/// One endpoint this Client opened and that is still alive.
struct OpenEndpoint {
    std::uint64_t key{0}; ///< unique within the Client; what the detach hook refers to
    std::string channel;
    Role role{Role::subscriber};
    std::uint32_t endpoint_index{0};
    std::uint64_t creation_id{0};
    ChannelFiles files;                 ///< duplicates, offered back to a restarted daemon
    std::shared_ptr<EndpointLink> link; ///< to tell the endpoint when the daemon refuses it
};

/// What a reconnect's offers came to.
struct OfferOutcome {
    std::uint32_t taken_back{0};
    std::uint32_t refused{0};
};

} // namespace detail

struct Client::Impl {
    using Clock = detail::Clock;

    std::string socket_path;
    std::string client_name;
    std::chrono::milliseconds timeout{5000};
    std::function<void(std::string_view)> log_sink;
    pid_t owner_pid{0}; // the process that connected; a fork()ed child may not use this
    // Written by whoever holds request_mutex; read by client_id() on the Client's thread.
    std::atomic<std::uint64_t> client_id{0};

    std::mutex request_mutex;
    std::mutex mutex;
    detail::ControlFd sock;           // guarded by mutex; replaced under request_mutex too
    std::uint64_t sock_generation{0}; // guarded by mutex; bumped whenever sock changes
    std::vector<detail::OpenEndpoint> endpoints; // guarded by mutex
    std::uint64_t next_key{1};                   // guarded by mutex
    std::vector<std::string> unsaid;             // guarded by mutex: lines for the log sink
    // Guarded by mutex: the last reconnect's offers, until its "reconnected" line is said.
    std::optional<detail::OfferOutcome> unreported_reconnect;
    std::atomic<std::uint32_t> next_request{1};

    bool watched{false}; // registered with the process's watcher thread
    // The shared owner of the application's handles (make_handle()); read by open(), on the
    // Client's thread, to hand an endpoint's hook a handle of its own.
    std::weak_ptr<Impl> handles;

    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl();

    /// Errc::closed when called in another process than the one that connected (a fork()).
    [[nodiscard]] Result<void> usable() const;

    // ---- requests (the Client's thread) ----

    /// One request whose answer must be a `Reply`: `project` applied to it (the whole reply
    /// by default), the daemon's error, or Errc::protocol_error naming what came instead.
    /// Descriptors passed with the reply go to `fds` when given.
    template <typename Reply, typename Project = std::identity>
    auto request(const proto::Body& body, std::string_view what, Project project = {},
                 std::vector<UniqueFd>* fds = nullptr)
        -> Result<std::remove_cvref_t<std::invoke_result_t<Project, Reply&&>>> {
        auto r = call(body, what);
        if (!r) {
            return r.take_error();
        }
        auto* reply = std::get_if<Reply>(&r->message.body);
        if (reply == nullptr) {
            return unexpected(what, r->message);
        }
        if (fds != nullptr) {
            *fds = std::move(r->fds);
        }
        return std::invoke(project, std::move(*reply));
    }

    /// Opens `channel` as `role` and attaches the endpoint the daemon assigned.
    template <typename Endpoint>
    Result<Endpoint> open(std::string_view channel, Role role, const EndpointOptions& options);

    /// A request: reconnects once if the connection turns out to be closed, then retries;
    /// an open or create answered with would_block is asked again until the timeout.
    Result<proto::Received> call(const proto::Body& body, std::string_view what);

    /// Hello on a fresh connection: checks both versions and learns our client id.
    Result<void> handshake(Clock::time_point deadline);
    /// The first connection: waits up to `wait` for a daemon to listen, saying so once.
    Result<detail::ControlFd> first_connect(std::chrono::milliseconds wait);
    /// Replaces the socket (empty: disconnected) and tells the watcher.
    void set_socket(detail::ControlFd fd);

    Error unexpected(std::string_view what, const proto::Message& got) const;

    // ---- the reconnect watcher's side (client_watcher.cpp) ----

    /// One step of the watcher thread for this connection, whose socket of generation
    /// `st.seen` hung up (or there was none): connect again, or say when to try next.
    void restore(detail::WatchState& st);
    /// A duplicate of the current socket for the watcher to poll, when it is not the one of
    /// generation `st.seen` any more.
    void refresh(detail::WatchState& st);

    /// Says every queued line, then the "reconnected" line of the last reconnect if nobody
    /// has said it yet. Call with neither lock held.
    void say_queued() noexcept;

    /// The application's first handle on `impl` (the Client's): an alias of a shared owner
    /// whose end, when the last handle goes, calls close_log(). Throws std::bad_alloc.
    static std::shared_ptr<Impl> make_handle(std::shared_ptr<Impl> impl);
    /// The last of the application's handles has gone: log_sink is never called once this
    /// returns (it waits for a call in progress on another thread) and is destroyed here;
    /// later lines are dropped.
    void close_log() noexcept;

private:
    // Held while log_sink runs, so that close_log() can wait for it; recursive, so that a
    // sink that drops the application's last handle itself cannot deadlock on it.
    mutable std::recursive_mutex sink_mutex_;
    bool sink_closed_{false}; // guarded by sink_mutex_
    void log(const std::string& line) const noexcept;
    /// Queues `line` for say_queued(); the caller holds `mutex`.
    void queue_line(std::string line);
    void poke() const noexcept;
    /// The connection is back (restored by the watcher or by a request): the next loss is
    /// reported and retried afresh.
    void restored(detail::WatchState& st);
    std::uint32_t new_request_id() noexcept;
    Result<std::uint32_t> send(const proto::Body& body, std::string_view what,
                               std::uint64_t reclaim_key = 0);
    Result<proto::Received> await(std::uint32_t id, std::string_view what,
                                  Clock::time_point deadline);
    Result<proto::Received> exchange(const proto::Body& body, std::string_view what,
                                     Clock::time_point deadline);
    Result<proto::Received> call_once(const proto::Body& body, std::string_view what,
                                      Clock::time_point deadline);
    std::optional<Error> refusal_after_close();
    Result<void> reconnect_once(Clock::time_point deadline);
    Result<void> reconnect(Clock::time_point deadline);
    detail::OfferOutcome offer_endpoints(Clock::time_point deadline);
    void endpoint_detached(std::uint64_t key) noexcept;
    void release_assigned(const std::string& channel, Role role, std::uint32_t index);
};

} // namespace shmbus
