// Datagrams with descriptors over Unix sockets, and the control protocol's messages on top of
// them: one message per datagram over a SOCK_SEQPACKET socket, its descriptors beside it as
// SCM_RIGHTS ancillary data. The one place that calls sendmsg()/recvmsg() with descriptors:
// libshmbus (Client), shmbusd's event loop and the tests' stand-ins for systemd all use it.
//
// Two layers:
//  - datagrams (send_datagram, read_datagram): bytes and descriptors, no protocol. A reader
//    takes ownership of every descriptor the kernel installs (MSG_CMSG_CLOEXEC, so none leaks
//    into an exec'd child) before looking at anything else, and learns whether the datagram
//    was cut (larger than its buffer) or came with more descriptors than it had room for;
//  - messages (send_message, read_message, receive_message): a datagram decoded, and the
//    descriptor rule checked. open_reply and reclaim_offer carry exactly two descriptors,
//    [control, payload]; every other message carries none.
//
// A datagram that arrives and is refused is a Refusal, which says why (Fault) — a receiver
// that answers its peer (shmbusd) needs to tell a malformed body from a wrong descriptor
// count — and whether the connection must end. The rule lives here once: a datagram whose
// descriptors are wrong for it (too many to receive, a count its type does not carry, or any
// at all beside a datagram that cannot be read) ends the connection, because descriptors sent
// where none belong are a peer's bug or an attack, never a slip to be answered and forgotten.
// A refused datagram's descriptors are all closed, so a misbehaving peer can never make us
// leak them.
//
// Blocking: read_datagram() and read_message() never wait (MSG_DONTWAIT: Errc::would_block
// when nothing is queued), for an event loop that polls. receive_message() waits with poll()
// up to a deadline and then reads, so it never blocks past the deadline on either a blocking
// or a non-blocking socket. Sending blocks like the socket does (a non-blocking socket gives
// Errc::would_block, a blocking one waits up to SO_SNDTIMEO if set) and never raises SIGPIPE
// (MSG_NOSIGNAL).
//
// End of the connection: a SOCK_SEQPACKET read of zero bytes without descriptors is the peer's
// close (a zero-length datagram is no message either); both are Errc::closed.
//
// Thread-safety: the functions keep no state; a datagram is sent and received whole, so two
// threads may send on one socket at once. Nothing throws: allocation failure is no_memory.
#pragma once

#include "protocol/wire.hpp"

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
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

// ---- datagrams ----

/// Descriptors one read can receive. More than any message carries, so that a peer sending
/// a few too many has them installed here (and then closed by us) instead of truncating the
/// control data; beyond this the kernel drops them itself (Datagram::excess_descriptors).
inline constexpr std::size_t kMaxReceivedFds = 16;

/// Sends `bytes` on `fd` as one datagram with `fds` as SCM_RIGHTS (duplicated into the peer;
/// the caller keeps its own: NOT consumed). No check of what the bytes or the descriptors are:
/// send_message() is the protocol's sender (the tests use this one to play a hostile peer).
/// At most 253 descriptors (the kernel's SCM_MAX_FD). Errors:
/// Errc::closed (with sys_errno) when the peer has gone (EPIPE, ECONNRESET, ENOTCONN);
/// Errc::would_block when a non-blocking socket is full or SO_SNDTIMEO expired;
/// Errc::limit_reached when the datagram cannot fit the send buffer; Errc::invalid_argument
/// for too many or negative descriptors; Errc::system_error otherwise.
[[nodiscard]] Result<void> send_datagram(int fd, std::span<const std::byte> bytes,
                                         std::span<const int> fds = {}) noexcept;

/// One datagram as the kernel delivered it.
struct Datagram {
    std::size_t size{0};       ///< its length as sent (more than the buffer when `cut`)
    std::vector<UniqueFd> fds; ///< every descriptor that came with it, now the caller's
    bool cut{false};           ///< larger than the buffer: only the buffer's worth was read
    /// More descriptors came than kMaxReceivedFds: the kernel closed the rest.
    bool excess_descriptors{false};
};

/// Reads one datagram from `fd` into `buffer` without waiting. Errors: Errc::would_block when
/// none is queued; Errc::closed when the peer closed the connection (or sent an empty
/// datagram without descriptors); Errc::system_error for other socket errors. `fd` is not
/// consumed.
[[nodiscard]] Result<Datagram> read_datagram(int fd, std::span<std::byte> buffer) noexcept;

// ---- messages ----

/// Encodes `message` and sends it as one datagram (send_datagram) with `fds`, NOT consumed.
/// Errors: Errc::invalid_argument if encode() refuses the message or `fds` does not match
/// descriptors_for() its type; send_datagram()'s errors otherwise.
[[nodiscard]] Result<void> send_message(int fd, const Message& message,
                                        std::span<const int> fds = {}) noexcept;

/// One received message and the descriptors that came with it (now owned by the caller).
struct Received {
    Message message;
    std::vector<UniqueFd> fds; ///< exactly descriptors_for(type_of(message.body)) entries
};

/// Why a datagram that arrived was refused.
enum class Fault : std::uint8_t {
    oversized,          ///< larger than kMaxMessageBytes: cut by the kernel, unreadable
    excess_descriptors, ///< more descriptors than kMaxReceivedFds
    malformed,          ///< decode() refused its bytes (protocol_error or version_mismatch)
    descriptor_count,   ///< a well-formed message with descriptors its type does not carry
};

/// A datagram that arrived and was refused; every descriptor that came with it is closed.
struct Refusal {
    Fault fault{Fault::malformed};
    /// What was wrong, to tell the peer: Errc::protocol_error, or decode()'s version_mismatch.
    Error error;
    std::uint32_t request_id{0}; ///< of the message when it decoded (descriptor_count), else 0
    std::size_t bytes{0};        ///< the datagram's length as sent
    std::size_t descriptors{0};  ///< how many came with it (all closed)

    /// Whether the connection must end once the peer is told: its descriptors were wrong
    /// for the datagram (see the file comment).
    [[nodiscard]] bool ends_connection() const noexcept;
};

/// What one read gave: a message, a datagram refused, or an Error of the socket
/// (Errc::would_block, Errc::closed, Errc::system_error, Errc::no_memory).
using Incoming = std::variant<Received, Refusal, Error>;

/// Reads one datagram without waiting (read_datagram) into `buffer`, which must hold
/// kMaxMessageBytes, and decodes it. `fd` is not consumed.
[[nodiscard]] Incoming read_message(int fd, std::span<std::byte> buffer) noexcept;

/// Waits until `deadline` for one datagram on `fd` and decodes it; a deadline already passed
/// checks once without waiting. Errors: Errc::timed_out when nothing arrived in time;
/// Errc::closed when the peer closed the connection; a Refusal's error (protocol_error, or
/// version_mismatch from decode()) for a datagram that was refused; Errc::system_error for
/// other socket errors. `fd` is not consumed.
[[nodiscard]] Result<Received>
receive_message(int fd, std::chrono::steady_clock::time_point deadline) noexcept;

} // namespace shmbus::proto
