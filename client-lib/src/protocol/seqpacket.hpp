// One control message per datagram over a Unix SOCK_SEQPACKET socket, with its descriptors
// beside it as SCM_RIGHTS ancillary data. Shared by libshmbus (Client) and shmbusd.
//
// Descriptor rules, enforced in both directions: open_reply and reclaim_offer carry exactly
// two descriptors, [control, payload]; every other message carries none. A receiver takes
// ownership of every descriptor the kernel installs (MSG_CMSG_CLOEXEC, so none leaks into
// an exec'd child) before looking at anything else, and closes them all when the datagram
// is refused, so a misbehaving peer can never make us leak descriptors. Refused: a datagram
// truncated by our buffer (MSG_TRUNC: larger than kMaxMessageBytes), ancillary data
// truncated (MSG_CTRUNC: more descriptors than we have room for; the kernel drops the
// excess), a wrong number of descriptors for the type, and anything decode() refuses.
//
// Blocking: receive_message() waits with poll() up to a deadline and then reads with
// MSG_DONTWAIT, so it never blocks past the deadline on either a blocking or a non-blocking
// socket. send_message() blocks like the socket does (bounded by SO_SNDTIMEO if set) and
// never raises SIGPIPE (MSG_NOSIGNAL).
//
// Thread-safety: the functions keep no state; a datagram is sent and received whole, so two
// threads may send on one socket at once. Nothing throws: allocation failure is no_memory.
#pragma once

#include "protocol/wire.hpp"

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <vector>

namespace shmbus::proto {

/// Descriptors a message of `type` carries: 2 ([control, payload]) for open_reply and
/// reclaim_offer, 0 for every other type.
[[nodiscard]] std::size_t descriptors_for(MsgType type) noexcept;

/// Asks for SO_SNDBUF and SO_RCVBUF of at least 2 * kMaxMessageBytes on `fd`, so that two
/// maximal messages can be in flight. Errc::system_error if setsockopt() fails,
/// Errc::limit_reached (naming net.core.wmem_max) if the kernel grants a send buffer too
/// small for even one maximal message. `fd` is not consumed.
[[nodiscard]] Result<void> size_socket_buffers(int fd) noexcept;

/// Encodes `message` and sends it on `fd` as one datagram, with `fds` as SCM_RIGHTS (the
/// descriptors are duplicated into the peer; the caller keeps its own: NOT consumed).
/// Errors: Errc::invalid_argument if encode() refuses the message or `fds` does not match
/// descriptors_for() its type; Errc::closed (with sys_errno) when the peer has gone (EPIPE,
/// ECONNRESET, ENOTCONN); Errc::would_block when a non-blocking socket is full or
/// SO_SNDTIMEO expired; Errc::system_error otherwise.
[[nodiscard]] Result<void> send_message(int fd, const Message& message,
                                        std::span<const int> fds = {}) noexcept;

/// One received message and the descriptors that came with it (now owned by the caller).
struct Received {
    Message message;
    std::vector<UniqueFd> fds; ///< exactly descriptors_for(type_of(message.body)) entries
};

/// Waits until `deadline` for one datagram on `fd` and decodes it; a deadline already
/// passed checks once without waiting. Errors: Errc::timed_out when nothing arrived in
/// time; Errc::closed when the peer closed the connection; Errc::protocol_error (every
/// received descriptor closed) for a truncated, malformed or wrongly-equipped datagram;
/// Errc::version_mismatch from decode(); Errc::system_error for other socket errors.
/// `fd` is not consumed.
[[nodiscard]] Result<Received>
receive_message(int fd, std::chrono::steady_clock::time_point deadline) noexcept;

} // namespace shmbus::proto
