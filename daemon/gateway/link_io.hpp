// Blocking reads and writes on a link's descriptors, with a deadline, for a bridge's own
// thread (never the control loop). A link is one descriptor (a socket) or two (a FIFO pair, a
// command's stdin/stdout); these functions take one direction each and do not care which.
//
// The frame layer (the handshake, the session) reads and writes a link through a LinkStream:
// FdStream passes straight to the functions below, TlsStream (tls_link.hpp) encrypts on the
// way. Whatever the stream, frames and their rules are the same above it.
//
// Descriptors may be blocking or not: every call waits with poll() for readiness before it
// reads or writes, and retries on EINTR and EAGAIN, so a slow peer costs waiting, never a
// busy loop. SIGPIPE is not raised: sockets are written with MSG_NOSIGNAL, and pipes only
// from threads that block SIGPIPE (BridgeRunner's do), so a gone reader is EPIPE.
// Nothing here owns a descriptor.
#pragma once

#include "gateway/frame.hpp"

#include <shmbus/error.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <sys/uio.h>

namespace shmbus::gateway {

using Deadline = std::chrono::steady_clock::time_point;

/// Waits until `fd` is ready for `events` (POLLIN, POLLOUT), or has an error or a hang-up that
/// the next read or write reports. Errc::timed_out at `deadline`.
[[nodiscard]] Result<void> wait_ready(int fd, short events, Deadline deadline);

/// What a write's deadline means: the time the peer may take to take *any* byte. Each write
/// that moves bytes gives the rest as long again as the call was given at its start, so that a
/// large frame on a slow link is not cut while it drains (the link is dead only when nothing
/// moves).
class ProgressDeadline {
public:
    explicit ProgressDeadline(Deadline deadline) noexcept
        : budget_{deadline - std::chrono::steady_clock::now()} {}
    /// Bytes moved: the deadline from now on.
    [[nodiscard]] Deadline moved() const noexcept {
        return std::chrono::steady_clock::now() + budget_;
    }

private:
    std::chrono::steady_clock::duration budget_;
};

/// Writes all of `bytes` to `fd`. Errc::timed_out when no byte could go for as long as
/// `deadline` was away at the call (ProgressDeadline), Errc::closed if the peer has gone
/// (EPIPE, ECONNRESET), Errc::system_error otherwise.
[[nodiscard]] Result<void> write_all(int fd, std::span<const std::byte> bytes, Deadline deadline);

/// Writes all the bytes `iov` points to, in order, with as few system calls as the kernel
/// allows (writev, or sendmsg on a socket; IOV_MAX pieces at a time). `iov` is consumed:
/// its entries are advanced as bytes go out. Errors as write_all().
[[nodiscard]] Result<void> write_gather(int fd, std::span<iovec> iov, Deadline deadline);

/// Waits until `fd` is readable and reads what is there (at least one byte) into `reader`.
/// Returns the bytes read; Errc::closed at end of stream (the peer closed), Errc::timed_out at
/// `deadline`, Errc::system_error otherwise.
[[nodiscard]] Result<std::size_t> read_into(int fd, FrameReader& reader, Deadline deadline);

/// Ends a refused socket link so that the last thing this end wrote (a goodbye, a TLS alert)
/// reaches the peer: shuts down the sending side, then reads and discards until the peer
/// closes or `deadline`. Closing a socket with unread bytes would reset the connection and
/// could destroy the reason on its way. Does nothing to a descriptor that is not a socket.
void drain_before_close(int fd, Deadline deadline);

/// A link's byte stream as the frame layer sees it. One thread reads (read_into()); writers
/// are serialized by the caller (a session writes whole frames under its own mutex); a read
/// and a write may run at the same time.
class LinkStream {
public:
    LinkStream() = default;
    virtual ~LinkStream() = default;
    LinkStream(const LinkStream&) = delete;
    LinkStream& operator=(const LinkStream&) = delete;

    /// As write_all() above.
    [[nodiscard]] virtual Result<void> write_all(std::span<const std::byte> bytes,
                                                 Deadline deadline) = 0;
    /// As write_gather() above; `iov` is consumed.
    [[nodiscard]] virtual Result<void> write_gather(std::span<iovec> iov, Deadline deadline) = 0;
    /// As read_into() above: what has arrived, at least one byte of frames.
    [[nodiscard]] virtual Result<std::size_t> read_into(FrameReader& reader, Deadline deadline) = 0;
    /// What has arrived, without waiting: 0 when nothing has (or when the stream cannot tell
    /// without waiting; then poll readable_fd() and call read_into()). Errors as read_into().
    [[nodiscard]] virtual Result<std::size_t> read_available(FrameReader& /*reader*/) {
        return std::size_t{0};
    }
    /// The descriptor to poll for POLLIN before read_into(): once read_into() has returned,
    /// the stream holds nothing it could return without this descriptor becoming readable.
    [[nodiscard]] virtual int readable_fd() const noexcept = 0;
    /// Bytes that bind an authentication to this very stream (TLS: keying material exported
    /// from its session, RFC 5705 / RFC 8446 section 7.5); empty for a plain one.
    [[nodiscard]] virtual std::string channel_binding() const { return {}; }
    /// "TLS 1.3, TLS_AES_256_GCM_SHA384, peer CN=..."; empty for a plain stream.
    [[nodiscard]] virtual std::string describe() const { return {}; }
};

/// A plain stream over one descriptor each way (the same one for a socket). Owns neither.
/// Whether each descriptor is a socket is learnt once, at construction, so that a frame
/// costs its write and nothing more. A socket is read before any poll() (MSG_DONTWAIT), with
/// a large buffer; a pipe is polled first (a FIFO whose writer has not yet opened it reads as
/// its end).
class FdStream final : public LinkStream {
public:
    FdStream(int in_fd, int out_fd) noexcept;
    [[nodiscard]] Result<void> write_all(std::span<const std::byte> bytes,
                                         Deadline deadline) override;
    [[nodiscard]] Result<void> write_gather(std::span<iovec> iov, Deadline deadline) override;
    [[nodiscard]] Result<std::size_t> read_into(FrameReader& reader, Deadline deadline) override;
    [[nodiscard]] Result<std::size_t> read_available(FrameReader& reader) override;
    [[nodiscard]] int readable_fd() const noexcept override { return in_; }

private:
    int in_;
    int out_;
    bool in_socket_;
    bool out_socket_;
};

} // namespace shmbus::gateway
