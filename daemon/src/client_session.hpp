// ClientSession: the daemon's side of one control connection.
//
// Turns each datagram a client sends into exactly one reply (its typed reply, Ok, or
// ErrorReply{Errc, readable message}) and the descriptors to pass beside it. It does no I/O:
// the event loop receives the datagram, hands it here with any descriptors that came with it,
// and sends back what handle() returns. So every request path is testable without sockets.
//
// Owns: nothing of the OS. Refers to the ClientRecord of its connection (by id) and to the
// DaemonState, both of which outlive it.
//
// Protocol rules enforced here:
//  - Hello comes first; another major protocol version is refused with version_mismatch
//    naming both, and the connection is closed after the reply;
//  - a datagram that fails to decode gets ErrorReply(protocol_error) naming what was wrong;
//  - descriptors are accepted only beside a ReclaimOffer; with any other message they are
//    closed and the client is disconnected;
//  - replies never leave a request unanswered: every path ends in a Reply.
//
// Access: Open checks the channel's ACL for the role against the kernel's credentials;
// Reload needs an admin; ListClients shows an admin every client and others their own uid's.
//
// Thread: the event loop's thread.
#pragma once

#include "daemon_state.hpp"

#include <protocol/wire.hpp>
#include <shmbus/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
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
    ClientSession(DaemonState& state, std::uint64_t client_id) noexcept
        : state_{state}, client_id_{client_id} {}

    [[nodiscard]] std::uint64_t client_id() const noexcept { return client_id_; }

    /// Handles one datagram. `fds` are the descriptors that came with it (taken over: closed
    /// unless a ReclaimOffer keeps them).
    [[nodiscard]] Reply handle(std::span<const std::byte> datagram, std::vector<UniqueFd> fds);

    /// The reply to a datagram that was larger than the protocol allows (cut by the kernel).
    [[nodiscard]] Reply oversized(std::size_t bytes_received);

private:
    DaemonState& state_;
    std::uint64_t client_id_;
    bool greeted_{false};

    [[nodiscard]] ClientRecord& client();
    [[nodiscard]] Reply reply(std::uint32_t request_id, proto::Body body,
                              std::vector<UniqueFd> fds = {});
    [[nodiscard]] Reply error(std::uint32_t request_id, Errc code, std::string message);
    [[nodiscard]] Reply error(std::uint32_t request_id, const Error& e);

    [[nodiscard]] Reply on_hello(std::uint32_t id, const proto::Hello& m);
    [[nodiscard]] Reply on_open(std::uint32_t id, const proto::Open& m);
    [[nodiscard]] Reply on_close(std::uint32_t id, const proto::Close& m);
    [[nodiscard]] Reply on_create(std::uint32_t id, const proto::Create& m);
    [[nodiscard]] Reply on_list_channels(std::uint32_t id);
    [[nodiscard]] Reply on_channel_info(std::uint32_t id, const proto::ChannelInfoRequest& m);
    [[nodiscard]] Reply on_list_clients(std::uint32_t id);
    [[nodiscard]] Reply on_status(std::uint32_t id);
    [[nodiscard]] Reply on_reload(std::uint32_t id);
    [[nodiscard]] Reply on_reclaim_offer(std::uint32_t id, const proto::ReclaimOffer& m,
                                         std::vector<UniqueFd> fds);
};

/// The summary of one registered channel, as ListChannels reports it.
[[nodiscard]] ChannelSummary summarize(const RegisteredChannel& channel);

} // namespace shmbus::daemon
