// What every shmbusctl command shares: the global options, the connection to shmbusd, and
// the mapping from errors to exit codes and messages.
//
// Exit codes are part of the interface (docs/shmbusctl.md) and never change meaning:
// 0 success, 1 the operation failed (the daemon's message is printed), 2 usage error,
// 3 no daemon at the socket, 4 no such channel, 77 permission denied (EX_NOPERM),
// 78 invalid configuration (EX_CONFIG).
//
// Errors go to stderr as "shmbusctl: <what was tried>: <the error's message>". Commands
// never throw; the only exceptions in the program are CLI11's parse errors, caught in main().
#pragma once

#include <shmbus/client.hpp>
#include <shmbus/error.hpp>

#include <chrono>
#include <csignal>
#include <string>
#include <string_view>

namespace shmbusctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNoDaemon = 3;
inline constexpr int kExitNoChannel = 4;
inline constexpr int kExitPermission = 77; // EX_NOPERM
inline constexpr int kExitConfig = 78;     // EX_CONFIG

/// Options given before or after the subcommand.
struct GlobalOptions {
    std::string socket_path; ///< --socket; empty: shmbus::default_socket_path() ($SHMBUS_SOCKET)
    bool json{false};        ///< --json: one JSON document instead of a table
    bool no_legend{false};   ///< --no-legend: no header line and no footer
    bool colour{false};      ///< stdout is a terminal and NO_COLOR is unset or empty
};

/// The socket the command talks to.
[[nodiscard]] std::string socket_of(const GlobalOptions& options);

/// Connects to shmbusd as client "shmbusctl". On failure prints why and sets `exit_code`.
[[nodiscard]] shmbus::Result<shmbus::Client> connect(const GlobalOptions& options, int& exit_code);

/// The options of an endpoint a long-running command (tail, serve) waits on: blocking waits,
/// and peer events when `peer_events`.
[[nodiscard]] shmbus::EndpointOptions blocking_endpoint(bool peer_events = false) noexcept;

/// The exit code for `error` from a request about a channel (not_found is 4) or from a
/// connect (not_found is 3). Permission is 77; a refused configuration (reload) is 78.
enum class ErrorSite { connect, channel, other };
[[nodiscard]] int exit_code_for(const shmbus::Error& error, ErrorSite site) noexcept;

/// Prints "shmbusctl: <what>: <error>" on stderr and returns exit_code_for(error, site).
int fail(std::string_view what, const shmbus::Error& error, ErrorSite site);

/// Prints "shmbusctl: <message>" on stderr and returns `code`.
int fail(std::string_view message, int code);

/// Set by SIGINT / SIGTERM while a long-running command (tail, stats, pub) runs; they stop
/// at the next message or tick and exit normally.
[[nodiscard]] bool interrupted() noexcept;
/// Installs the handlers behind interrupted() (without SA_RESTART: sleeps end early).
void catch_interrupts() noexcept;

/// How long one wait of a long-running command lasts before it looks at interrupted() again
/// (and tail flushes its output).
inline constexpr std::chrono::milliseconds kTick{200};

} // namespace shmbusctl
