// Blocking reads and writes on a link's descriptors, with a deadline, for a bridge's own
// thread (never the control loop). A link is one descriptor (a socket) or two (a FIFO pair, a
// command's stdin/stdout); these functions take one direction each and do not care which.
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
#include <sys/uio.h>

namespace shmbus::gateway {

using Deadline = std::chrono::steady_clock::time_point;

/// Writes all of `bytes` to `fd`. Errc::timed_out at `deadline`, Errc::closed if the peer
/// has gone (EPIPE, ECONNRESET), Errc::system_error otherwise.
[[nodiscard]] Result<void> write_all(int fd, std::span<const std::byte> bytes, Deadline deadline);

/// Writes all the bytes `iov` points to, in order, with as few system calls as the kernel
/// allows (writev, or sendmsg on a socket; IOV_MAX pieces at a time). `iov` is consumed:
/// its entries are advanced as bytes go out. Errors as write_all().
[[nodiscard]] Result<void> write_gather(int fd, std::span<iovec> iov, Deadline deadline);

/// Waits until `fd` is readable and reads what is there (at least one byte) into `reader`.
/// Returns the bytes read; Errc::closed at end of stream (the peer closed), Errc::timed_out at
/// `deadline`, Errc::system_error otherwise.
[[nodiscard]] Result<std::size_t> read_into(int fd, FrameReader& reader, Deadline deadline);

} // namespace shmbus::gateway
