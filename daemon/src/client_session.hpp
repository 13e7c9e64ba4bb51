// ClientSession: the daemon's side of one control connection.
//
// Turns each message a client sends into exactly one reply (its typed reply, Ok, or
// ErrorReply{Errc, readable message}) and the descriptors to pass beside it. It does no I/O:
// the event loop reads the datagram (protocol/seqpacket), hands the decoded message and its
// descriptors to handle(), or a refused datagram to refused(), and sends back what they
// return. So every request path is testable without sockets.
//
// Owns: nothing of the OS. Refers to the ClientRecord of its connection (by id) and to the
// DaemonState, both of which outlive it.
//
// Protocol rules enforced here:
//  - Hello comes first; another major protocol version is refused with version_mismatch
//    naming both, and the connection is closed after the reply;
//  - a refused datagram (malformed, oversized, wrong descriptors: seqpacket.hpp says which
//    and whether the connection ends) gets ErrorReply naming what was wrong;
//  - replies never leave a request unanswered: every path ends in a Reply.
//
// Access: Open checks the channel's ACL for the role against the kernel's credentials;
// Reload needs an admin. What a client is shown depends on who it is: an admin sees every
// channel and every client; anyone else only the channels it may open, the pids and names
// of its own uid's clients, and its own uid's clients in ListClients (docs/operations.md).
//
// Quotas: Open counts the client's endpoints against limits.per_client.max_open_channels and
// its uid's against limits.per_uid.max_open_channels (admins are not counted); Create's are
// checked by DaemonState::create_dynamic(). A refusal for a limit is answered naming the
// limit's key and logged through the RefusalLog, at most one line per uid per interval.
//
// Thread: the event loop's thread.
#pragma once

#include "daemon_state.hpp"
#include "refusal_log.hpp"

#include <protocol/seqpacket.hpp>
#include <protocol/wire.hpp>
#include <shmbus/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shmbus::daemon {

/// What to send back for one datagram.
struct Reply {
    std::vector<std::byte> bytes; ///< an encoded message; empty: send nothing
    std::vector<UniqueFd> fds;    ///< to pass beside it (SCM_RIGHTS)
    bool disconnect{false};       ///< close the connection once `bytes` is sent
};

class ClientSession {
public:
    /// `refusals` logs the quota refusals of this session; it outlives the session.
    ClientSession(DaemonState& state, RefusalLog& refusals, std::uint64_t client_id) noexcept
        : state_{state}, refusals_{refusals}, client_id_{client_id} {}

    [[nodiscard]] std::uint64_t client_id() const noexcept { return client_id_; }
    /// Whether the client has completed hello.
    [[nodiscard]] bool greeted() const noexcept { return greeted_; }

    /// Handles one message. Its descriptors (as many as its type carries) are taken over:
    /// closed unless a ReclaimOffer keeps them.
    [[nodiscard]] Reply handle(proto::Received received);

    /// The reply to a datagram that was refused before it could be handled; disconnects
    /// when the refusal ends the connection or the client speaks another protocol.
    [[nodiscard]] Reply refused(const proto::Refusal& refusal);

private:
    DaemonState& state_;
    RefusalLog& refusals_;
    std::uint64_t client_id_;
    bool greeted_{false};

    [[nodiscard]] ClientRecord& client();
    [[nodiscard]] Reply reply(std::uint32_t request_id, proto::Body body,
                              std::vector<UniqueFd> fds = {});
    [[nodiscard]] Reply error(std::uint32_t request_id, Errc code, std::string message);
    [[nodiscard]] Reply error(std::uint32_t request_id, const Error& e);
    /// error() for a request refused by a limit, logged through refusals_.
    [[nodiscard]] Reply over_limit(std::uint32_t request_id, const Error& e);
    /// Whether this client is an admin (root, the daemon's user, daemon.admin).
    [[nodiscard]] bool admin();

    [[nodiscard]] Reply on_hello(std::uint32_t id, const proto::Hello& m);
    [[nodiscard]] Reply on_open(std::uint32_t id, const proto::Open& m);
    [[nodiscard]] Reply on_close(std::uint32_t id, const proto::Close& m);
    [[nodiscard]] Reply on_create(std::uint32_t id, const proto::Create& m);
    [[nodiscard]] Reply on_list_channels(std::uint32_t id);
    [[nodiscard]] Reply on_channel_info(std::uint32_t id, const proto::ChannelInfoRequest& m);
    [[nodiscard]] Reply on_list_clients(std::uint32_t id);
    [[nodiscard]] Reply on_status(std::uint32_t id);
    /// Every bridge's status (BridgeRunner::status(), which takes each runner's lock only
    /// for a copy: the loop never waits for a bridge's data path).
    [[nodiscard]] Reply on_list_bridges(std::uint32_t id);
    [[nodiscard]] Reply on_reload(std::uint32_t id);
    [[nodiscard]] Reply on_reclaim_offer(std::uint32_t id, const proto::ReclaimOffer& m,
                                         std::vector<UniqueFd> fds);
};

/// The summary of one registered channel, as ListChannels reports it.
[[nodiscard]] ChannelSummary summarize(const RegisteredChannel& channel);

} // namespace shmbus::daemon
