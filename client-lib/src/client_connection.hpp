// The control connection of a Client, below the protocol: the socket, how it is opened, how
// long to wait between attempts, and to which process it belongs.
//
// Owns: every descriptor of a control connection in the process, as a ControlFd. A connection
// belongs to the process that opened it: shmbusd reclaims a client's endpoints when the last
// descriptor of its connection closes (DESIGN.md, Liveness), so a fork()ed child that kept a
// copy would keep a dead parent's endpoints alive, and a block-policy publisher would wait for
// ever. Each ControlFd is therefore listed in a process-wide table, and a pthread_atfork child
// handler replaces every listed descriptor in the child with an unconnected socket (dup3 onto
// the same number): the child holds no reference to the parent's connection, and the number
// stays taken, so a stale ControlFd never closes something the child opened later. Sends and
// receives on such a descriptor fail; Client::Impl refuses requests in a child before that.
//
// Threads: the table is guarded by one mutex, held only around socket()/dup/close and the
// table update, never while connecting or waiting; the atfork prepare handler takes it, so a
// fork() never copies a descriptor that is opened but not yet listed (or closed but still
// listed). Backoff is a plain value, one per waiting loop.
//
// Failure policy: connect_socket() turns each errno into the Errc an application can act on
// and names the socket path; nothing here throws but std::bad_alloc.
#pragma once

#include <shmbus/error.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

namespace shmbus::detail {

using Clock = std::chrono::steady_clock;

inline constexpr std::chrono::milliseconds kFirstBackoff{10};
/// Between reconnect attempts, at most this.
inline constexpr std::chrono::milliseconds kMaxBackoff{1000};
/// While connect() waits for a daemon to appear: a new daemon is found within this.
inline constexpr std::chrono::milliseconds kMaxWaitBackoff{250};
/// While an open waits for a channel the daemon is taking back after a restart.
inline constexpr std::chrono::milliseconds kMaxRetryBackoff{250};

/// The waits between attempts: 10 ms, doubling up to `max`.
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

/// One descriptor of a control connection (-1: empty). Move-only; closes on destruction.
/// Listed in the process's table while open, so that a fork()ed child never keeps it (see
/// the top of this file).
class ControlFd {
public:
    ControlFd() noexcept = default;
    ControlFd(ControlFd&& other) noexcept : fd_{other.release()} {}
    ControlFd& operator=(ControlFd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = other.release();
        }
        return *this;
    }
    ControlFd(const ControlFd&) = delete;
    ControlFd& operator=(const ControlFd&) = delete;
    ~ControlFd() { reset(); }

    /// A new SOCK_SEQPACKET Unix socket, close-on-exec. Errc::system_error naming errno.
    [[nodiscard]] static Result<ControlFd> open_socket();
    /// A duplicate of `fd` (close-on-exec); empty if `fd` is empty or dup fails.
    [[nodiscard]] static ControlFd duplicate(const ControlFd& fd);

    [[nodiscard]] int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    /// Closes the descriptor, if any.
    void reset() noexcept;

private:
    explicit ControlFd(int fd) noexcept : fd_{fd} {}
    int release() noexcept {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }
    int fd_{-1};
};

/// A connected control socket to `path`. SO_SNDTIMEO = `timeout` bounds both connect() on a
/// full listen backlog (AF_UNIX waits for room) and every later send to a daemon that has
/// stopped reading. Errc::not_found when nobody listens there, Errc::permission_denied,
/// Errc::timed_out, Errc::invalid_argument for a path that does not fit a sockaddr_un.
[[nodiscard]] Result<ControlFd> connect_socket(const std::string& path,
                                               std::chrono::milliseconds timeout);

/// Conditions a reconnect cannot outwait.
[[nodiscard]] bool is_permanent(Errc code) noexcept;

/// "250 ms", "5 s".
[[nodiscard]] std::string format_ms(std::chrono::milliseconds d);
/// 'text'
[[nodiscard]] std::string quoted(std::string_view s);
/// The same error with `prefix` in front of its detail.
[[nodiscard]] Error prefixed(Error e, const std::string& prefix);

} // namespace shmbus::detail
