// Request/response over an `rpc` channel: Servers take requests, Callers get the replies.
//
// Every caller has its own call slots (the channel's depth of them): a request is written
// into one, in place, and its reply comes back into the same slot, so a reply can only reach
// the caller that asked, matched by the call's correlation id. Several servers share the
// requests of every caller; each request is taken by exactly one server (one
// compare-and-swap on the slot's claim word). Nothing on the data path makes a system call
// unless a side has to sleep or wake a sleeper, and nothing read from the shared memory is
// trusted: every index, length and id is checked before use.
//
// Failure is explicit: when a server dies, every call it had taken fails with Errc::closed
// (the daemon's reclaim, as soon as the server's connection closes) and the calls it had not
// taken stay for the other servers; a call made while no server is attached fails at once
// with Errc::not_found unless the caller asked to wait; a reply to a call whose caller timed
// out or died is dropped and counted (the channel's late replies).
//
// Thread-safety: one endpoint is used by one thread at a time; several servers and callers
// of one channel, in one or several processes, run concurrently within the channel's
// max_servers / max_callers.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>
#include <shmbus/events.hpp>
#include <shmbus/export.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace shmbus {

/// One request taken by a Server, read in place. Its data stays valid until the server
/// responds to it (or is destroyed); the handle is a plain value the server passes back to
/// respond() / reserve_reply() / commit_reply().
struct Request {
    std::span<const std::byte> data;
    std::uint64_t id{0};     ///< the call's correlation id (unique per caller)
    std::uint32_t caller{0}; ///< the caller's entry in the channel's caller table
    std::uint32_t slot{0};   ///< the call slot of that caller
};

/// Requests taken by one Server::receive(): valid until the next receive() on that server.
class RequestBatch {
public:
    RequestBatch() = default;
    [[nodiscard]] std::size_t size() const noexcept { return requests_.size(); }
    [[nodiscard]] const Request& operator[](std::size_t i) const noexcept { return requests_[i]; }
    [[nodiscard]] auto begin() const noexcept { return requests_.begin(); }
    [[nodiscard]] auto end() const noexcept { return requests_.end(); }

private:
    friend class Server;
    explicit RequestBatch(std::span<const Request> r) noexcept : requests_{r} {}
    std::span<const Request> requests_;
};

/// Serves the requests of an rpc channel.
class SHMBUS_EXPORT Server {
public:
    /// Attaches to the rpc channel in `files` and takes an entry of its server table.
    /// Errc::invalid_argument if the channel is not of kind rpc, Errc::limit_reached when
    /// max_servers are attached, Errc::corrupted / Errc::version_mismatch when the segment
    /// fails validation.
    [[nodiscard]] static Result<Server> attach(ChannelFiles files,
                                               const EndpointOptions& options = {}) noexcept;

    Server(Server&&) noexcept;
    Server& operator=(Server&&) noexcept;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    /// Leaves the server table. Every call taken and not answered fails at its caller with
    /// Errc::closed.
    ~Server();

    /// Takes up to `max_count` requests (at least one), from every caller in turn.
    /// Errc::would_block when none is waiting. A request whose length fails validation is
    /// failed back to its caller (Errc::closed there), counted as corrupted and reported
    /// here as Errc::corrupted once. The returned batch is valid until the next call.
    [[nodiscard]] Result<RequestBatch> try_receive(std::size_t max_count = 1) noexcept;
    /// As try_receive(), waiting up to `timeout` (as the endpoint's WaitMode says);
    /// Errc::timed_out then.
    [[nodiscard]] Result<RequestBatch> receive(std::size_t max_count,
                                               std::chrono::nanoseconds timeout) noexcept;

    /// Copies `reply` into the call's reply slot and hands it to the caller.
    /// Errc::message_too_large (naming both sizes; the call stays taken) when it does not
    /// fit. Errc::lost when the caller gave up on the call (timed out or died) in the
    /// meantime: the reply is dropped and counted, and the slot returned to its caller.
    /// Errc::invalid_argument for a request this server does not hold.
    [[nodiscard]] Result<void> respond(const Request& request,
                                       std::span<const std::byte> reply) noexcept;
    /// The call's reply slot, to write the reply in place (zero-copy), then commit_reply().
    /// Errc::invalid_argument for a request this server does not hold.
    [[nodiscard]] Result<std::span<std::byte>> reserve_reply(const Request& request) noexcept;
    /// Hands the `length` bytes written into reserve_reply()'s slot to the caller. Errors as
    /// respond().
    [[nodiscard]] Result<void> commit_reply(const Request& request, std::uint64_t length) noexcept;

    /// Reads up to `out.size()` peer events into `out` and returns how many (0 when none
    /// waits, or when the server did not ask for them with EndpointOptions::peer_events):
    /// callers (Role::publisher) and the other servers (Role::subscriber) attached, detached
    /// or died. No system call; re-arms the wait handle when it returns fewer than
    /// `out.size()`.
    [[nodiscard]] std::size_t events(std::span<PeerEvent> out) noexcept;
    /// A descriptor that becomes readable when this server has something to do: a request
    /// to take, or peer events when asked for. It stays readable until a call finds nothing
    /// left to do (a receive that would block, an events() that runs out), so drain the
    /// server on each wake-up. For epoll, poll, select, libuv's uv_poll, asio, Qt. Owned by
    /// the server (do not close it); the first call starts a relay thread
    /// (docs/events-and-waiting.md). Errc::system_error if it cannot.
    [[nodiscard]] Result<int> wait_handle() noexcept;

    /// The channel this server serves.
    [[nodiscard]] const ChannelInfo& info() const noexcept;
    /// This server's entry in the channel's server table.
    [[nodiscard]] std::uint32_t endpoint_index() const noexcept;

    struct Impl;

private:
    friend struct detail::EndpointHooks;
    explicit Server(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

/// A call in flight, as send_request() returned it.
struct Ticket {
    std::uint64_t id{0};   ///< the call's correlation id
    std::uint32_t slot{0}; ///< its call slot
};

/// A reply, copied out of its slot.
struct Reply {
    std::vector<std::byte> data;
    std::uint64_t id{0}; ///< correlation id of the call it answers
};

/// Calls the servers of an rpc channel.
class SHMBUS_EXPORT Caller {
public:
    /// Attaches to the rpc channel in `files` and takes an entry of its caller table.
    /// Errors as Server::attach(), with max_callers.
    [[nodiscard]] static Result<Caller> attach(ChannelFiles files,
                                               const EndpointOptions& options = {}) noexcept;

    Caller(Caller&&) noexcept;
    Caller& operator=(Caller&&) noexcept;
    Caller(const Caller&) = delete;
    Caller& operator=(const Caller&) = delete;
    /// Leaves the caller table; calls still in flight are given up (their replies are
    /// dropped and counted when they come).
    ~Caller();

    /// Whether a call made while no server is attached waits for one (until its timeout)
    /// instead of failing at once with Errc::not_found. Off by default.
    void set_wait_for_server(bool wait) noexcept;

    /// Sends `request` and waits up to `timeout` for its reply. Errc::not_found when no server
    /// is attached (see set_wait_for_server()), or when the last one left before taking the
    /// call; Errc::closed when the server that took the call died; Errc::timed_out (the call
    /// is given up: withdrawn if no server took it yet, its reply dropped otherwise);
    /// Errc::message_too_large naming both sizes; Errc::would_block when all of this caller's
    /// call slots are in use (depth calls in flight, or given up and not yet answered).
    [[nodiscard]] Result<Reply> call(std::span<const std::byte> request,
                                     std::chrono::nanoseconds timeout) noexcept;
    /// As call(), copying the reply into `reply` (no allocation): returns its length.
    /// Errc::message_too_large if `reply` is too small (the reply is then lost).
    [[nodiscard]] Result<std::size_t> call(std::span<const std::byte> request,
                                           std::span<std::byte> reply,
                                           std::chrono::nanoseconds timeout) noexcept;

    /// Sends `request` without waiting: the reply is collected with poll() or
    /// receive_reply(). Errors as call(), without timed_out.
    [[nodiscard]] Result<Ticket> send_request(std::span<const std::byte> request) noexcept;
    /// The reply to `ticket` if it has come (Errc::would_block if not yet), or the call's
    /// failure (Errc::closed, Errc::not_found as call()). Once a reply or failure is
    /// returned the ticket is spent: Errc::invalid_argument for a ticket not in flight.
    [[nodiscard]] Result<Reply> poll(const Ticket& ticket) noexcept;
    /// As poll(), copying the reply into `reply` (no allocation): returns its length.
    /// Errc::message_too_large if `reply` is too small (the reply is then lost, the ticket
    /// spent).
    [[nodiscard]] Result<std::size_t> poll(const Ticket& ticket,
                                           std::span<std::byte> reply) noexcept;
    /// As poll(), waiting up to `timeout`; on Errc::timed_out the call is given up as in call().
    [[nodiscard]] Result<Reply> receive_reply(const Ticket& ticket,
                                              std::chrono::nanoseconds timeout) noexcept;
    /// As receive_reply(), copying the reply into `reply` (no allocation): returns its
    /// length. Errc::message_too_large as poll().
    [[nodiscard]] Result<std::size_t> receive_reply(const Ticket& ticket,
                                                    std::span<std::byte> reply,
                                                    std::chrono::nanoseconds timeout) noexcept;
    /// Gives a call up: withdrawn if no server took it yet, its reply dropped when it comes.
    /// Errc::invalid_argument for a ticket not in flight.
    [[nodiscard]] Result<void> cancel(const Ticket& ticket) noexcept;
    /// Calls of this caller sent and not yet collected or given up.
    [[nodiscard]] std::size_t in_flight() const noexcept;

    /// Reads up to `out.size()` peer events into `out` and returns how many (0 when none
    /// waits, or when the caller did not ask for them with EndpointOptions::peer_events):
    /// servers (Role::subscriber) and the other callers (Role::publisher) attached, detached
    /// or died, and after each server's detached or died a server_gone for it. No system
    /// call; re-arms the wait handle when it returns fewer than `out.size()`.
    [[nodiscard]] std::size_t events(std::span<PeerEvent> out) noexcept;
    /// A descriptor that becomes readable when this caller has something to do: the reply
    /// or the failure of a call in flight to collect (with poll()), a call that fails for
    /// want of a server, or peer events when asked for. Every poll() re-arms it (it becomes
    /// readable again at once if more is to collect), and so does an events() that runs
    /// out: poll the tickets in flight and read the events on each wake-up. For epoll, poll, select, libuv's
    /// uv_poll, asio, Qt. Owned by the caller (do not close it); the first call starts a
    /// relay thread (docs/events-and-waiting.md). Errc::system_error if it cannot.
    [[nodiscard]] Result<int> wait_handle() noexcept;

    /// The channel this caller calls.
    [[nodiscard]] const ChannelInfo& info() const noexcept;
    /// This caller's entry in the channel's caller table.
    [[nodiscard]] std::uint32_t endpoint_index() const noexcept;

    struct Impl;

private:
    friend struct detail::EndpointHooks;
    explicit Caller(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

} // namespace shmbus
