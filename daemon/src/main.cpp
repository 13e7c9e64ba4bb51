// shmbusd: the shmbus broker daemon. Parses the command line, loads the configuration,
// picks the runtime paths, creates the configured channels, starts the gateway's bridges once
// the socket is ready, and runs the event loop until SIGTERM/SIGINT; then stops the bridges.
//
// Exit codes: 0 after a graceful stop (and for --check-config on a valid configuration,
// --version, --help); 78 (EX_CONFIG) for a configuration with errors, each printed GCC-style
// on stderr; 64 (EX_USAGE) for bad options; 1 for any other failure to start (socket in use,
// no memory for a segment, ...), with a log line saying what and where.
//
// --check-config is also the answer of `shmbusctl check-config`, which runs this program for
// it (tools/shmbusctl/check_config.hpp): with --json, the answer is the one JSON document
// that command prints, on stdout.
//
// Thread: the event loop runs on main()'s thread; each bridge has threads of its own
// (bridges.hpp).
#include "bridges.hpp"
#include "channel_registry.hpp"
#include "config.hpp"
#include "daemon_state.hpp"
#include "event_loop.hpp"
#include "logging.hpp"
#include "runtime_paths.hpp"
#include "segment_store.hpp"
#include "systemd_notify.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace {

constexpr int kExitConfig = 78; // EX_CONFIG
constexpr int kExitUsage = 64;  // EX_USAGE

using namespace shmbus::daemon;

/// --check-config --json: {"file", "valid", "channels" (count or null), "errors": [{"file",
/// "line", "column", "message"}]} on stdout (docs/shmbusctl.md); a configuration no file could
/// be chosen for has one error with line and column 0.
void print_check_json(const shmbus::Result<ConfigCheck>& checked) {
    using nlohmann::json;
    json doc;
    if (!checked) {
        doc = {
            {"file", nullptr},
            {"valid", false},
            {"channels", nullptr},
            {"errors",
             {{{"file", ""}, {"line", 0}, {"column", 0}, {"message", checked.error().message()}}}}};
    } else {
        const ParseOutcome& outcome = checked->outcome;
        const bool valid = outcome.ok() && outcome.config.has_value();
        json errors = json::array();
        for (const auto& e : outcome.errors) {
            errors.push_back(
                {{"file", e.file}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
        }
        doc = {{"file", checked->path.path.native()},
               {"valid", valid},
               {"channels", valid ? json(outcome.config->channels.size()) : json(nullptr)},
               {"errors", errors}};
    }
    std::printf("%s\n", doc.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
}

int run(int argc, char** argv) {
    CLI::App app{"shmbusd: the shmbus broker daemon. Owns shared-memory channels and hands "
                 "them to clients over a Unix control socket.",
                 "shmbusd"};
    std::string config_file;
    std::string socket_path;
    std::string state_dir;
    std::string log_level_text;
    bool check_only = false;
    bool check_json = false;
    bool show_version = false;
    app.add_option("--config", config_file,
                   "configuration file (default: /etc/shmbusd/shmbusd.yaml as root, "
                   "$XDG_CONFIG_HOME/shmbus/shmbusd.yaml otherwise)");
    app.add_option("--socket", socket_path,
                   "control socket (default: daemon.socket, else shmbusd.sock in the runtime "
                   "directory)");
    app.add_option("--state-dir", state_dir,
                   "directory of the state file (default: daemon.state_directory, else the "
                   "runtime directory)");
    app.add_option("--log-level", log_level_text, "trace, debug, info, warning or error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warning", "warn", "error"}));
    auto* check_flag = app.add_flag("--check-config", check_only,
                                    "validate the configuration, print every error, exit 0 or 78");
    app.add_flag("--json", check_json,
                 "with --check-config: the answer as one JSON document on stdout")
        ->needs(check_flag);
    app.add_flag("--version", show_version, "print the version and exit");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : kExitUsage;
    }
    if (show_version) {
        std::printf("shmbusd %s\n", SHMBUS_VERSION_STRING);
        return 0;
    }

    const Instance instance = geteuid() == 0 ? Instance::system : Instance::user;
    const Environment env = process_environment();
    std::optional<std::filesystem::path> explicit_config;
    if (!config_file.empty()) {
        explicit_config = config_file;
    }
    auto checked = check_config_file(instance, explicit_config, env);
    if (check_json) {
        print_check_json(checked);
        return checked && checked->outcome.ok() && checked->outcome.config ? 0 : kExitConfig;
    }
    if (!checked) {
        std::fprintf(stderr, "shmbusd: %s\n", checked.error().message().c_str());
        return kExitConfig;
    }
    // `shmbusctl check-config` runs this very check: the same answer, in the same words.
    ParseOutcome& outcome = checked->outcome;
    const bool valid = outcome.ok() && outcome.config;
    if (!valid || check_only) {
        std::fprintf(stderr, "%s\n", describe(*checked).c_str());
        return valid ? 0 : kExitConfig;
    }
    const ConfigPath& config_path = checked->path;
    Config config = std::move(*outcome.config);
    if (!log_level_text.empty()) {
        config.log_level = parse_log_level(log_level_text).value_or(config.log_level);
    }
    init_logging(config.log_level);

    std::optional<std::filesystem::path> cli_socket;
    std::optional<std::filesystem::path> cli_state;
    if (!socket_path.empty()) {
        cli_socket = socket_path;
    }
    if (!state_dir.empty()) {
        cli_state = state_dir;
    }
    auto paths = choose_runtime_paths(instance, cli_socket, cli_state, config, env);
    if (!paths) {
        log_error(paths.error().message());
        return kExitUsage;
    }
    for (const auto& dir : {paths->socket.parent_path(), paths->state_directory}) {
        if (auto made = ensure_private_directory(dir); !made) {
            log_error(made.error().message());
            return 1;
        }
    }
    if (instance == Instance::system && !cli_socket && !config.socket_path) {
        // Other users reach the system socket; the directory must let them through.
        (void)::chmod(paths->socket.parent_path().c_str(), 0755);
    }

    // One daemon per state file: a second one that would share it stops here, naming the
    // first, before it reads or writes anything (state_file.hpp).
    auto state_file =
        StateFile::lock(paths->state_directory / state_file_name(paths->socket), paths->socket);
    if (!state_file) {
        log_error(state_file.error().message());
        return 1;
    }
    DaemonState state{std::move(config), config_path, *paths, std::move(*state_file),
                      static_cast<std::uint32_t>(geteuid())};
    std::vector<PassedFd> passed = take_passed_fds();
    // Under systemd every segment goes to the descriptor store as it is created, and comes
    // back from it at the next start (segment_store.hpp).
    state.registry().on_added = [](const RegisteredChannel& ch) { store_channel(ch); };
    state.registry().on_removed = [](const RegisteredChannel& ch) { forget_stored_channel(ch); };
    const auto adopted = adopt_stored_channels(passed, state.config(), state.registry());
    // Endpoints of the previous run still attached to the segments (and, without a descriptor
    // store, the channels its state file names) may be claimed back by their clients during
    // a grace period (restart_recovery.hpp).
    (void)state.restore_after_restart(adopted);
    if (auto created = state.create_configured_channels(); !created) {
        log_error("cannot create the configured channels: " + created.error().message());
        return 1;
    }
    auto loop = EventLoop::open(state, passed);
    if (!loop) {
        log_error(loop.error().message());
        return 1;
    }
    for (const auto& p : passed) {
        if (p.fd) {
            log_warning("closing descriptor '" + p.name +
                        "' passed by the service manager: not a socket or segment of ours");
        }
    }
    passed.clear();
    log_info("shmbusd " + std::string{SHMBUS_VERSION_STRING} + " listening on " +
             paths->socket.native() + " (" + state.status_line() + ", config " +
             config_path.path.native() + ")");
    notify_ready();
    notify_status(state.status_line());
    // The bridges' sessions are clients of this daemon: they start once its socket is ready,
    // and stop once the loop has ended and closed their connections (bridges.hpp).
    std::random_device entropy;
    const std::uint64_t incarnation = (std::uint64_t{entropy()} << 32) | entropy();
    Bridges bridges{paths->socket.native(), incarnation};
    state.attach_bridges(&bridges);
    bridges.set_channel_types(state.config().channels);
    state.start_bridges(); // after the previous run's channels are back, if it had any
    auto ran = (*loop)->run();
    loop->reset();
    bridges.stop_all();
    state.attach_bridges(nullptr);
    // The clients keep their endpoints across the stop; the next daemon waits only for the
    // channels they hold.
    state.write_state_at_stop();
    if (!ran) {
        log_error(ran.error().message());
        return 1;
    }
    log_info("stopped");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        // Only allocation failures can get here; say so rather than terminate() silently.
        std::fprintf(stderr, "shmbusd: fatal: %s\n", e.what());
        return 1;
    }
}
