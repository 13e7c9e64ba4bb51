// The daemon's log: readable lines on stderr, or structured journald entries under systemd.
//
// Owns: the one logger of the process (a static, set up by init_logging() before the loop
// starts). This is the only module that includes spdlog sinks or sends journal entries; the rest
// of the daemon calls log() with a message and the fields it knows.
//
// Destination: when the daemon's stderr is the journal stream systemd set up (JOURNAL_STREAM
// names stderr's device:inode), entries go to journald (sd::journal_send(), its native
// protocol) with
// MESSAGE=, PRIORITY=, and CHANNEL=, CLIENT_PID=, CLIENT_UID=, CLIENT_NAME=, BRIDGE=, PEER=
// where known, so `journalctl -u shmbusd CHANNEL=jobs` (or BRIDGE=ground) works; values are
// sent verbatim, never as formats.
// Otherwise spdlog writes one line per entry to stderr:
// "2024-05-01 12:00:00.123 info client 7 (pid 42, uid 1000, 'demo') ...".
//
// Thread: init_logging() before any other thread starts; log() and set_log_level() from any
// thread (the event loop's, and the gateway's bridge threads): the level is atomic, the stderr
// sink locks, and journal entries are single datagrams on one socket. Failure policy: logging
// never fails the caller; a journal that refuses an entry is ignored.
#pragma once

#include "config.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmbus::daemon {

/// What an entry is about, beyond its message. Empty / unset fields are left out.
struct LogFields {
    std::string_view channel;
    std::optional<std::uint32_t> client_pid;
    std::optional<std::uint32_t> client_uid;
    std::string_view client_name;
    std::string_view bridge; ///< a gateway bridge's name
    std::string_view peer;   ///< the bridge's peer address
};

/// Fields of an entry about one bridge and its peer.
[[nodiscard]] inline LogFields bridge_fields(std::string_view bridge, std::string_view peer) {
    LogFields f;
    f.bridge = bridge;
    f.peer = peer;
    return f;
}

/// Fields of an entry about one channel.
[[nodiscard]] inline LogFields channel_fields(std::string_view channel) {
    LogFields f;
    f.channel = channel;
    return f;
}

/// Fields of an entry about one client (and, optionally, a channel).
[[nodiscard]] inline LogFields client_fields(std::uint32_t pid, std::uint32_t uid,
                                             std::string_view name, std::string_view channel = {}) {
    LogFields f;
    f.channel = channel;
    f.client_pid = pid;
    f.client_uid = uid;
    f.client_name = name;
    return f;
}

/// Sets up the logger: journald when JOURNAL_STREAM names our stderr, else stderr lines.
/// Call once, before anything logs. Safe to call again (tests): it replaces the logger.
void init_logging(LogLevel level);
/// Changes the threshold (on reload, or from --log-level).
void set_log_level(LogLevel level);
/// True when entries go to journald.
[[nodiscard]] bool logging_to_journal() noexcept;

/// Writes one entry if `level` passes the threshold.
void log(LogLevel level, std::string_view message, const LogFields& fields = {});

inline void log_debug(std::string_view m, const LogFields& f = {}) {
    log(LogLevel::debug, m, f);
}
inline void log_info(std::string_view m, const LogFields& f = {}) {
    log(LogLevel::info, m, f);
}
inline void log_warning(std::string_view m, const LogFields& f = {}) {
    log(LogLevel::warning, m, f);
}
inline void log_error(std::string_view m, const LogFields& f = {}) {
    log(LogLevel::error, m, f);
}

/// Parses "trace", "debug", "info", "warning" (or "warn"), "error".
[[nodiscard]] std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;

} // namespace shmbus::daemon
