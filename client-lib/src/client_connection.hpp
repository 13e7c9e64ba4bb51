// The control connection of a Client, below the protocol: how the socket is opened, and how
// long to wait between attempts.
//
// Owns: nothing beyond what it returns; connect_socket() hands over a connected socket.
// Backoff is a plain value, one per waiting loop, used by one thread.
//
// Failure policy: connect_socket() turns each errno into the Errc an application can act on
// and names the socket path; nothing here throws but std::bad_alloc.
#pragma once

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

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

/// A connected control socket to `path`. SO_SNDTIMEO = `timeout` bounds both connect() on a
/// full listen backlog (AF_UNIX waits for room) and every later send to a daemon that has
/// stopped reading. Errc::not_found when nobody listens there, Errc::permission_denied,
/// Errc::timed_out, Errc::invalid_argument for a path that does not fit a sockaddr_un.
[[nodiscard]] Result<UniqueFd> connect_socket(const std::string& path,
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
