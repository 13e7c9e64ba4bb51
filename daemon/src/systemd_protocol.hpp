// The systemd interfaces the daemon uses, spoken here directly rather than through libsystemd:
//
// - the notification protocol (sd_notify(3)): one datagram of newline-separated assignments
//   to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace),
//   descriptors attached with SCM_RIGHTS;
// - socket activation's and the watchdog's environment (sd_listen_fds(3),
//   sd_watchdog_enabled(3)): $LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES, $WATCHDOG_USEC,
//   $WATCHDOG_PID;
// - journald's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL document): one datagram of
//   fields to /run/systemd/journal/socket, a field whose value holds a newline in its binary
//   form, and an entry too large for a datagram in a sealed memfd passed with SCM_RIGHTS;
// - the machine's application-specific id (sd_id128_get_machine_app_specific(3)): the first
//   128 bits of HMAC-SHA256 keyed with /etc/machine-id over the application's id, made a
//   version-4 UUID.
//
// systemd documents each of these as a stable interface for programs that do not link
// libsystemd. Linking it loaded libsystemd and, through it, libgcrypt, libgpg-error, liblzma,
// libzstd, liblz4 and libcap into the daemon for these few calls: about 1.2 MB of its
// resident memory, and six libraries the daemon never used.
//
// Thread: every function may run on any thread. Failure policy: values (negative errno, or an
// empty result); nothing here logs, since logging itself calls journal_send().
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/uio.h>
#include <vector>

namespace shmbus::daemon::sd {

/// The first descriptor the service manager passes (SD_LISTEN_FDS_START).
inline constexpr int kListenFdsStart = 3;
inline constexpr const char* kJournalSocket = "/run/systemd/journal/socket";
inline constexpr const char* kMachineIdFile = "/etc/machine-id";

/// Sends `state` ("READY=1", "STATUS=...", several lines joined by '\n') to $NOTIFY_SOCKET,
/// with `fds` attached. 1 when sent, 0 when NOTIFY_SOCKET is unset, -errno when it could not
/// be sent (-EAFNOSUPPORT: the variable names neither a path nor an abstract address).
[[nodiscard]] int notify(std::string_view state, std::span<const int> fds = {}) noexcept;

/// $WATCHDOG_USEC, when it is set to a positive number and $WATCHDOG_PID is unset or names
/// this process; 0 otherwise.
[[nodiscard]] std::uint64_t watchdog_usec() noexcept;

/// The descriptors passed by the service manager: kListenFdsStart .. + names.size() - 1, each
/// named by $LISTEN_FDNAMES ("unknown" without it). Empty when $LISTEN_PID does not name this
/// process or $LISTEN_FDS is unset; std::nullopt when the variables are malformed (a count that
/// is not a number, names that do not match the count). The descriptors are made
/// close-on-exec. LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are unset in every case, so that
/// no child takes them for its own.
[[nodiscard]] std::optional<std::vector<std::string>> take_listen_fds();

/// True if `fd` is an AF_UNIX socket of `type` (SOCK_STREAM, SOCK_SEQPACKET, ...) that listens.
[[nodiscard]] bool is_listening_unix_socket(int fd, int type) noexcept;

/// Sends one journal entry: each of `fields` is "NAME=value", the value any bytes. 0 when
/// sent, -errno when not (-ENOENT: no journald listens at `socket_path`; -EINVAL: a field
/// without a name).
[[nodiscard]] int journal_send(std::span<const iovec> fields,
                               const char* socket_path = kJournalSocket) noexcept;

/// The bytes journal_send() puts in one datagram for `fields`: each field as "NAME=value\n",
/// or, when the value holds a newline, as "NAME\n", the value's length as 64-bit little
/// endian, the value and "\n". std::nullopt when a field has no '=' or an empty name.
[[nodiscard]] std::optional<std::string> journal_datagram(std::span<const iovec> fields);

using Id128 = std::array<std::uint8_t, 16>;

/// This machine's id mixed with `app` as sd_id128_get_machine_app_specific() mixes them, so
/// that the machine's id itself is never shown. std::nullopt when `machine_id_file` does not
/// hold a machine id (32 hex digits, not all zero).
[[nodiscard]] std::optional<Id128>
machine_app_specific_id(const Id128& app, const char* machine_id_file = kMachineIdFile);

} // namespace shmbus::daemon::sd
