// Where a daemon instance keeps its socket and state. See runtime_paths.hpp for the rules.
// choose_runtime_paths() is pure; ensure_private_directory() creates directories 0700 so
// that the state file and a socket made before chmod are never readable by other users.
#include "runtime_paths.hpp"

#include <cerrno>
#include <string>
#include <sys/stat.h>

namespace shmbus::daemon {

Result<RuntimePaths>
choose_runtime_paths(Instance instance, const std::optional<std::filesystem::path>& cli_socket,
                     const std::optional<std::filesystem::path>& cli_state_directory,
                     const Config& config, const Environment& environment) {
    std::optional<std::filesystem::path> runtime;
    if (instance == Instance::system) {
        runtime = kSystemRuntimeDirectory;
    } else if (auto xdg = environment("XDG_RUNTIME_DIR");
               xdg && !xdg->empty() && (*xdg)[0] == '/') {
        runtime = std::filesystem::path{*xdg} / "shmbus";
    }
    RuntimePaths paths;
    if (cli_socket) {
        paths.socket = *cli_socket;
    } else if (config.socket_path) {
        paths.socket = *config.socket_path;
    } else if (runtime) {
        paths.socket = *runtime / kSocketFileName;
    }
    if (cli_state_directory) {
        paths.state_directory = *cli_state_directory;
    } else if (config.state_directory) {
        paths.state_directory = *config.state_directory;
    } else if (cli_socket || config.socket_path) {
        // A socket of its own makes an instance of its own: its state lives beside it, never
        // in the runtime directory another instance uses.
        paths.state_directory = paths.socket.parent_path();
    } else if (runtime) {
        paths.state_directory = *runtime;
    } else if (!paths.socket.empty()) {
        paths.state_directory = paths.socket.parent_path();
    }
    if (paths.socket.empty() || paths.state_directory.empty()) {
        return make_error(Errc::not_found,
                          "XDG_RUNTIME_DIR is not set to an absolute path: give --socket and "
                          "--state-dir, or daemon.socket in the configuration");
    }
    if (paths.socket.native().size() > 107) {
        return make_error(Errc::invalid_argument,
                          "socket path '" + paths.socket.native() + "' is longer than 107 bytes");
    }
    return paths;
}

Result<void> ensure_private_directory(const std::filesystem::path& dir) {
    std::filesystem::path partial;
    for (const auto& part : dir) {
        partial /= part;
        if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
            const int err = errno;
            return make_error(Errc::system_error,
                              "cannot create directory '" + partial.native() + "'", err);
        }
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return make_error(Errc::system_error, "'" + dir.native() + "' is not a directory", errno);
    }
    return ok();
}

} // namespace shmbus::daemon
