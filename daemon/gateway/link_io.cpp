// Blocking link I/O with deadlines; the rules are in link_io.hpp.
#include "gateway/link_io.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shmbus::gateway {

namespace {

/// How long until `deadline`, as poll() wants it: at least 0, at most a day.
int poll_timeout(Deadline deadline) noexcept {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<std::int64_t>(left.count() + 1, 0, 86'400'000));
}

bool is_socket(int fd) noexcept {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/// How much a read asks for at least: a large buffer, so that a streaming peer's frames come
/// in few system calls.
constexpr std::size_t kReadChunk = 256 * 1024;

/// One read into `reader` from `fd`: `socket` with MSG_DONTWAIT (never waiting), else with
/// read(). The bytes read; 0 when nothing was there (EAGAIN, EINTR: poll and try again);
/// Errc::closed at end of stream or a reset, Errc::system_error otherwise.
Result<std::size_t> read_once(int fd, bool socket, FrameReader& reader) {
    auto room = reader.writable(kReadChunk);
    const ssize_t n = socket ? ::recv(fd, room.data(), room.size(), MSG_DONTWAIT)
                             : ::read(fd, room.data(), room.size());
    if (n > 0) {
        reader.commit(static_cast<std::size_t>(n));
        return static_cast<std::size_t>(n);
    }
    if (n == 0) {
        return make_error(Errc::closed, "the peer closed the link");
    }
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
        return std::size_t{0};
    }
    if (errno == ECONNRESET) {
        return make_error(Errc::closed, "the peer reset the link", errno);
    }
    return make_error(Errc::system_error, "reading from the link failed", errno);
}

} // namespace

Result<void> wait_ready(int fd, short events, Deadline deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int timeout = poll_timeout(deadline);
        const int n = ::poll(&p, 1, timeout);
        if (n > 0) {
            return ok(); // readable, writable, or an error/hang-up the next call reports
        }
        if (n == 0) {
            if (std::chrono::steady_clock::now() >= deadline) {
                return make_error(Errc::timed_out, "the link did not become ready in time");
            }
            continue;
        }
        if (errno != EINTR) {
            return make_error(Errc::system_error, "poll on the link failed", errno);
        }
    }
}

namespace {

Result<void> write_all_to(int fd, bool socket, std::span<const std::byte> bytes,
                          Deadline deadline) {
    ProgressDeadline progress{deadline};
    while (!bytes.empty()) {
        const ssize_t n = socket ? ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL)
                                 : ::write(fd, bytes.data(), bytes.size());
        if (n > 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
            deadline = progress.moved();
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (auto w = wait_ready(fd, POLLOUT, deadline); !w) {
                return w;
            }
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return make_error(Errc::closed, "the peer closed the link", errno);
        }
        return make_error(Errc::system_error, "writing to the link failed", n < 0 ? errno : 0);
    }
    return ok();
}

Result<void> write_gather_to(int fd, bool socket, std::span<iovec> iov, Deadline deadline) {
    ProgressDeadline progress{deadline};
    while (!iov.empty()) {
        if (iov.front().iov_len == 0) {
            iov = iov.subspan(1);
            continue;
        }
        const std::size_t pieces = std::min<std::size_t>(iov.size(), IOV_MAX);
        ssize_t n = 0;
        if (socket) {
            msghdr msg{};
            msg.msg_iov = iov.data();
            msg.msg_iovlen = pieces;
            n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        } else {
            n = ::writev(fd, iov.data(), static_cast<int>(pieces));
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (auto w = wait_ready(fd, POLLOUT, deadline); !w) {
                    return w;
                }
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET) {
                return make_error(Errc::closed, "the peer closed the link", errno);
            }
            return make_error(Errc::system_error, "writing to the link failed", errno);
        }
        deadline = progress.moved();
        // Advance past what went out: whole pieces, then into the first one left.
        auto left = static_cast<std::size_t>(n);
        while (left > 0 && !iov.empty()) {
            iovec& first = iov.front();
            const std::size_t take = std::min(left, first.iov_len);
            first.iov_base = static_cast<char*>(first.iov_base) + take;
            first.iov_len -= take;
            left -= take;
            if (first.iov_len == 0) {
                iov = iov.subspan(1);
            }
        }
    }
    return ok();
}

} // namespace

Result<void> write_all(int fd, std::span<const std::byte> bytes, Deadline deadline) {
    return write_all_to(fd, is_socket(fd), bytes, deadline);
}

Result<void> write_gather(int fd, std::span<iovec> iov, Deadline deadline) {
    return write_gather_to(fd, is_socket(fd), iov, deadline);
}

Result<std::size_t> read_into(int fd, FrameReader& reader, Deadline deadline) {
    for (;;) {
        if (auto w = wait_ready(fd, POLLIN, deadline); !w) {
            return w.error();
        }
        auto r = read_once(fd, false, reader);
        if (!r || r.value() > 0) {
            return r;
        }
    }
}

void drain_before_close(int fd, Deadline deadline) {
    if (!is_socket(fd) || ::shutdown(fd, SHUT_WR) != 0) {
        return;
    }
    char sink[4096];
    while (wait_ready(fd, POLLIN, deadline)) {
        const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
            return; // the peer closed (or reset): nothing more can reach it
        }
    }
}

FdStream::FdStream(int in_fd, int out_fd) noexcept
    : in_{in_fd}, out_{out_fd}, in_socket_{is_socket(in_fd)}, out_socket_{out_fd == in_fd
                                                                              ? in_socket_
                                                                              : is_socket(out_fd)} {
}

Result<void> FdStream::write_all(std::span<const std::byte> bytes, Deadline deadline) {
    return write_all_to(out_, out_socket_, bytes, deadline);
}

Result<void> FdStream::write_gather(std::span<iovec> iov, Deadline deadline) {
    return write_gather_to(out_, out_socket_, iov, deadline);
}

Result<std::size_t> FdStream::read_into(FrameReader& reader, Deadline deadline) {
    if (!in_socket_) {
        // A pipe is polled first: a FIFO whose writer has not yet opened it reads as its end.
        return gateway::read_into(in_, reader, deadline);
    }
    for (;;) {
        auto r = read_once(in_, true, reader);
        if (!r || r.value() > 0) {
            return r;
        }
        if (auto w = wait_ready(in_, POLLIN, deadline); !w) {
            return w.error();
        }
    }
}

Result<std::size_t> FdStream::read_available(FrameReader& reader) {
    if (!in_socket_) {
        return std::size_t{0};
    }
    return read_once(in_, true, reader);
}

} // namespace shmbus::gateway
