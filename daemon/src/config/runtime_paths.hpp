// Where a daemon instance keeps its control socket and its state file.
//
// Precedence, for each path: the command line (--socket, --state-dir), then the configuration
// (daemon.socket, daemon.state_directory), then — for the state directory — the socket's own
// directory when the socket was given (so that daemons on different sockets never share a
// state file, state_file.hpp), then the instance's runtime directory:
//   system instance (root): /run/shmbusd/ (systemd's RuntimeDirectory=shmbusd)
//   a plain user:           $XDG_RUNTIME_DIR/shmbus/
// The client library looks in the same places (shmbus::default_socket_path()), so a client
// finds a default daemon without being told where.
//
// choose_runtime_paths() is pure (the environment is injected); ensure_private_directory() is
// the one step that touches the file system. Failure policy: values, never exits or logs.
#pragma once

#include "config.hpp"

#include <shmbus/error.hpp>

#include <filesystem>
#include <optional>

namespace shmbus::daemon {

/// The runtime directory of the system instance.
inline constexpr const char* kSystemRuntimeDirectory = "/run/shmbusd";
/// File name of the control socket inside a runtime directory.
inline constexpr const char* kSocketFileName = "shmbusd.sock";

struct RuntimePaths {
    std::filesystem::path socket;
    std::filesystem::path state_directory;
};

/// Picks the socket and the state directory. Errc::not_found when a user instance has no
/// absolute XDG_RUNTIME_DIR and neither the command line nor the configuration names a path.
[[nodiscard]] SHMBUS_CONFIG_EXPORT Result<RuntimePaths>
choose_runtime_paths(Instance instance, const std::optional<std::filesystem::path>& cli_socket,
                     const std::optional<std::filesystem::path>& cli_state_directory,
                     const Config& config, const Environment& environment);

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist. An existing
/// directory is kept as it is. Errc::system_error naming the path otherwise.
[[nodiscard]] SHMBUS_CONFIG_EXPORT Result<void>
ensure_private_directory(const std::filesystem::path& dir);

} // namespace shmbus::daemon
