// systemd glue: readiness and status notifications, the watchdog, socket activation and the
// file-descriptor store.
//
// Everything here is a no-op when the daemon was not started by systemd (no NOTIFY_SOCKET,
// no LISTEN_FDS): a plain user's daemon runs the same code. This is the only module that sends
// notifications and takes passed descriptors; the protocols themselves are spoken in
// systemd_protocol.hpp.
//
// Thread: the event loop's thread. Failure policy: a notification that cannot be delivered
// is ignored (systemd would time us out, which is the right outcome); errors of the listen
// socket checks are values.
#pragma once

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::daemon {

/// Tells the service manager the daemon is ready (socket bound, configured channels exist).
void notify_ready();
/// One STATUS= line, shown by `systemctl status`.
void notify_status(std::string_view status);
/// RELOADING=1 with MONOTONIC_USEC= now, before a reload; call notify_ready() after it.
void notify_reloading();
/// STOPPING=1, when a graceful stop begins.
void notify_stopping();
/// WATCHDOG=1.
void notify_watchdog();
/// The watchdog interval systemd expects pings within, when WATCHDOG_USEC is set for us.
[[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval();

/// A descriptor passed by the service manager (socket activation or the fd store).
struct PassedFd {
    UniqueFd fd;
    std::string name; ///< LISTEN_FDNAMES entry, "unknown" when none was given
};

/// Takes the descriptors systemd passed (LISTEN_FDS, LISTEN_FDNAMES), unsetting LISTEN_*.
/// Each is made close-on-exec. Empty when none were passed, or (logged) when the variables
/// are malformed.
[[nodiscard]] std::vector<PassedFd> take_passed_fds();

/// True if `fd` is a listening Unix SOCK_SEQPACKET socket.
[[nodiscard]] bool is_listening_seqpacket(int fd) noexcept;

/// Stores `fds` in the service's file-descriptor store under `name` (FDSTORE=1, FDNAME=).
/// No-op without NOTIFY_SOCKET. Errc::system_error if systemd refused them.
[[nodiscard]] Result<void> store_fds(std::string_view name, const std::vector<int>& fds);
/// Removes the descriptors stored under `name` (FDSTOREREMOVE=1).
void remove_stored_fds(std::string_view name);

} // namespace shmbus::daemon
