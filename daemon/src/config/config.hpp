// The daemon's configuration: what shmbusd.yaml and its drop-ins say, as a plain struct.
//
// Three steps, kept apart so that each can be tested and reused on its own:
//  1. parse_config() turns YAML text into a Config and validates it. It is a pure function:
//     no I/O, no global state, the same answer for the same text. It reports *every* error it
//     finds, GCC-style ("shmbusd.yaml:14:5: error: unknown key 'slot_sise' (did you mean
//     'slot_size'?)"), so that an operator fixes a file in one pass. The daemon at start and on
//     reload and `shmbusd --check-config` (which `shmbusctl check-config` runs) all call it.
//  2. resolve_accounts() turns user and group names into ids through an injectable resolver
//     (getpwnam/getgrnam in production). Unknown names are reported at the line that names them.
//  3. load_config() is the only step that touches the file system: it reads the main file and
//     the drop-ins of the conf.d/ directory beside it, then calls parse_config().
//     choose_config_path() picks the file (system, user, or --config), and check_config_file()
//     does all three as shmbusd and its --check-config need it.
//
// This module and runtime_paths.hpp are a library of their own, libshmbusd-config (a private
// shared library of the shmbusd package), which keeps yaml-cpp off every link line but its
// own (daemon/CMakeLists.txt). shmbusctl links none of it: its check-config runs shmbusd.
//
// The code lives in this directory, in three units: values.* (numbers, sizes, names and the
// words of messages about them), yaml_reader.* (the only includer of yaml-cpp: one YAML text
// onto a Config) and load.cpp (files, conf.d/ drop-ins, the merge, accounts); schema.hpp holds
// the keys and ranges. No YAML type appears here, and every YAML::Exception becomes a
// ConfigError. The rest of the daemon sees only Config.
//
// Failure policy: a configuration with any error is rejected whole (ParseOutcome::config is
// empty); the caller keeps what it had (on reload) or refuses to start (exit code 78,
// EX_CONFIG). Nothing here logs or exits. Thread-safety: every function is reentrant.
//
// Reference for users: docs/configuration.md. Keep it in step with this module.
#pragma once

#include "gateway/bridge_rules.hpp"
#include "gateway/link.hpp"
#include "gateway/nats_rules.hpp"
#include "gateway/tls_context.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

/// What libshmbusd-config exports (the functions of config.hpp and runtime_paths.hpp); the
/// rest of it is hidden, so that its helpers can never interpose on a program's own.
#define SHMBUS_CONFIG_EXPORT __attribute__((visibility("default")))

namespace shmbus::daemon {

/// Where a value was written: file as given to the parser, 1-based line and column.
/// line == 0 means "not from a file" (a built-in default, or an error about a whole file).
struct ConfigLocation {
    std::string file;
    std::uint32_t line{0};
    std::uint32_t column{0};
};

/// One problem found in the configuration. line == 0 for errors about a whole file (cannot
/// be read, ...); then column is 0 too.
struct ConfigError {
    std::string file;
    std::uint32_t line{0};
    std::uint32_t column{0};
    std::string message; ///< without the "error: " prefix, e.g. "unknown key 'x'"
};

/// "file:line:column: error: message", or "file: error: message" when line == 0.
[[nodiscard]] SHMBUS_CONFIG_EXPORT std::string to_string(const ConfigError& error);

/// How much the daemon logs.
enum class LogLevel { trace, debug, info, warning, error };

[[nodiscard]] SHMBUS_CONFIG_EXPORT std::string_view to_string(LogLevel level) noexcept;

/// One user or group named in an access list.
struct AccountRef {
    std::string name;                ///< as written; for a numeric entry, its digits
    std::optional<std::uint32_t> id; ///< set when written as a number, or by resolve_accounts()
    ConfigLocation where;
};

/// Who may do something: the listed users and the members of the listed groups. Empty lists
/// admit nobody beyond those the daemon always admits (root and its own user).
struct AccessList {
    bool anyone{false}; ///< `users: ["*"]`: every local user
    std::vector<AccountRef> users;
    std::vector<AccountRef> groups;
};

/// Who may publish on and subscribe to one channel.
/// On an rpc channel, `serve` is read into `subscribe` (servers take its subscriber table)
/// and `call` into `publish` (callers take its publisher table).
struct ChannelAcl {
    AccessList publish;
    AccessList subscribe;
};

/// max_subscribers of a broadcast channel that does not set it (a queue's default is 1, as in
/// ChannelSpec: with one publisher that selects the single-producer single-consumer ring).
inline constexpr std::uint32_t kDefaultBroadcastSubscribers = 16;

/// What an rpc channel that leaves a key out gets (docs/configuration.md).
inline constexpr std::uint64_t kDefaultRpcRequestSize = 1024;
inline constexpr std::uint64_t kDefaultRpcReplySize = 1024;
inline constexpr std::uint64_t kDefaultRpcDepth = 16;
inline constexpr std::uint32_t kDefaultRpcServers = 4;
inline constexpr std::uint32_t kDefaultRpcCallers = 16;

/// Defaults of the shared-state kinds (blackboard, counters, pool) for what a channel leaves out:
/// 64 elements of 64 bytes (blackboard) or 64 cells (counters), several writers, and as many
/// readers as a broadcast channel.
inline constexpr std::uint64_t kDefaultElementSize = 64;
inline constexpr std::uint64_t kDefaultElementCount = 64;
inline constexpr std::uint32_t kDefaultSharedStateWriters = 8;
/// Defaults of a pool for what it leaves out: 16 blocks of 1 MiB; writers and readers as the
/// other shared-state kinds (8 + 16, the most a pool can have: kMaxPoolEndpoints).
inline constexpr std::uint64_t kDefaultBlockSize = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kDefaultBlockCount = 16;
static_assert(kDefaultSharedStateWriters + kDefaultBroadcastSubscribers <= kMaxPoolEndpoints);

/// A channel the daemon creates at start (the `channels:` list).
struct ChannelConfig {
    ChannelSpec spec; ///< validated: name, sizes and overflow are acceptable to create_channel()
    ChannelAcl acl;
    ConfigLocation where; ///< of the channel's `name:` value
    /// The type of its messages (`sensor_msgs/Imu@v2`), "" if not said: a bridge refuses to
    /// join it to a channel of another type (docs/gateway.md, "Types").
    std::string type;
};

/// Limits that apply to each connected client.
struct ClientLimits {
    std::uint32_t max_open_channels{64};     ///< endpoints (publishers + subscribers) open at once
    std::uint32_t max_inflight_requests{32}; ///< replies held for a client that does not read them
    std::uint32_t max_dynamic_channels{16};  ///< channels it has created and that still exist
};

/// Limits that apply to all clients of one uid together, so that one local user cannot lock
/// the others out (as dbus-broker's per-user quotas). Root and the admins are not counted.
struct UidLimits {
    std::uint32_t max_connections{64};      ///< control connections open at once
    std::uint32_t max_open_channels{256};   ///< endpoints (publishers + subscribers) open at once
    std::uint32_t max_dynamic_channels{32}; ///< channels its clients created that still exist
    /// Segment memory of the dynamic channels its clients created.
    std::uint64_t max_segment_bytes{std::uint64_t{256} << 20};
};

/// Daemon-wide limits.
struct Limits {
    std::uint32_t max_clients{256};
    std::uint32_t max_channels{256}; ///< configured and dynamic channels together
    /// Memory all channel segments together may reserve.
    std::uint64_t max_total_segment_bytes{std::uint64_t{1} << 30};
    ClientLimits per_client;
    UidLimits per_uid;
    /// Connections of max_clients that only root and the admins may use, so that they can
    /// always reach a daemon that everyone else has filled. Less than max_clients; when the
    /// file does not set it, parse_config() lowers this default to max_clients / 2 if that is
    /// less, so that a small max_clients needs no reserve of its own.
    std::uint32_t admin_reserve{8};
    /// A connection that has not completed hello within this time is closed.
    std::chrono::milliseconds hello_timeout{5000};
};

/// Whether and how clients may create channels at run time.
struct DynamicChannelPolicy {
    bool allowed{true};
    AccessList creators; ///< who may create, besides root and the daemon's user
    /// Values of a create request that leaves them out (defaults.name is unused).
    ChannelSpec defaults{};
    std::uint64_t max_slot_size{std::uint64_t{1} << 20};
    std::uint64_t max_slot_count{std::uint64_t{1} << 16};
};

/// A bridge to a peer daemon, or to a NATS server or cluster (the `bridges:` list;
/// docs/gateway.md, docs/nats.md). The gateway's own rules check the address
/// (gateway::parse_link(), gateway::parse_nats_servers()) and each export and import entry
/// (gateway::validate_rule(), gateway::validate_export() and validate_import()), so the
/// configuration accepts exactly what the gateway runs.
struct ConfiguredBridge {
    std::string name;
    /// `listen:` (the answering end) rather than `connect:`.
    bool listen{false};
    /// For a NATS bridge only `text` is set: what `connect:` says.
    gateway::LinkAddress address;
    /// Set for a NATS bridge (`connect:` names nats:// or tls:// servers): its servers, its
    /// `nats:` settings, exports and imports. `secret_file`, `exports` and `imports` below
    /// are then empty.
    std::optional<gateway::NatsBridgeConfig> nats;
    /// Where each of `nats->exports` stands, in the same order (for the checks against
    /// `channels:` made once every file is read).
    std::vector<ConfigLocation> nats_export_where;
    std::optional<std::filesystem::path> secret_file;
    /// The secret_file's bytes: read by load_config() (parse_config() does no I/O).
    std::optional<std::string> secret;
    /// `tls:` (tcp only). parse_config() sets the file names and peer_subject; load_config()
    /// reads the files' contents into it and checks them with the gateway's TLS context.
    std::optional<gateway::TlsCredentials> tls;
    /// `require:` as written; none: what is configured (gateway::default_peer_auth()).
    std::optional<gateway::PeerAuth> require;
    /// Messages of each imported stream that may be on their way at once (its credits).
    std::uint32_t credit_window{gateway::kDefaultCreditWindow};
    /// Nice levels below the daemon's priority at which the bridge's threads run.
    int nice{gateway::kDefaultBridgeNice};
    std::vector<gateway::ChannelRule> exports;
    std::vector<gateway::ChannelRule> imports;
    ConfigLocation where;        ///< of the bridge's `name:` value
    ConfigLocation secret_where; ///< of its `secret_file:` value
    /// Of its `tls:` value and of the values of `tls.cert`, `tls.key` and `tls.ca`.
    struct TlsPlaces {
        ConfigLocation section;
        ConfigLocation cert;
        ConfigLocation key;
        ConfigLocation ca;
    } tls_where;
};

/// Everything shmbusd.yaml can say. A default-constructed Config is what an empty file means.
struct Config {
    /// Control socket; unset: the daemon picks it from its runtime directory.
    std::optional<std::filesystem::path> socket_path;
    /// State file directory; unset: the daemon's runtime directory.
    std::optional<std::filesystem::path> state_directory;
    LogLevel log_level{LogLevel::info};
    AccessList admins; ///< may reload and see everything, besides root and the daemon's user
    Limits limits;
    DynamicChannelPolicy dynamic_channels;
    std::vector<ChannelConfig> channels;   ///< in file order, drop-ins after the main file
    std::vector<ConfiguredBridge> bridges; ///< in file order, drop-ins after the main file
    /// Where each setting outside `channels:` was last set, by dotted key ("limits.max_clients",
    /// "daemon.admin.users"); a key that is absent kept its built-in default.
    std::map<std::string, ConfigLocation, std::less<>> set_at;
};

/// What parsing produced: a Config when there are no errors, else every error found.
struct ParseOutcome {
    std::optional<Config> config; ///< set if and only if errors is empty
    std::vector<ConfigError> errors;

    [[nodiscard]] bool ok() const noexcept { return errors.empty(); }
};

/// One YAML document to parse and where it came from (used in messages).
struct ConfigSource {
    std::string origin; ///< file name as the user should see it
    std::string text;
};

/// Parses and validates one configuration file's `text`; `origin` names it in errors. Pure:
/// no I/O. Reports every error at once (a YAML syntax error ends the reading of that text).
/// Does not resolve user or group names: see resolve_accounts().
[[nodiscard]] SHMBUS_CONFIG_EXPORT ParseOutcome parse_config(std::string_view text,
                                                             std::string_view origin);

/// Parses `sources` in order and merges them as load_config() does with a main file and its
/// drop-ins: channels and bridges are appended (a name defined twice is an error naming both
/// places); any other setting given again replaces the earlier value (lists replaced whole). Pure.
[[nodiscard]] SHMBUS_CONFIG_EXPORT ParseOutcome parse_config(std::span<const ConfigSource> sources);

/// A user or group id, or nothing when the name is unknown; an Error when the lookup itself
/// failed (NSS unreachable, ...).
using AccountLookup = std::function<Result<std::optional<std::uint32_t>>(const std::string& name)>;

/// How names become ids. Injectable so that tests do not depend on /etc/passwd.
struct AccountResolver {
    AccountLookup user;
    AccountLookup group;
};

/// getpwnam_r / getgrnam_r: the system's user and group databases (NSS).
[[nodiscard]] SHMBUS_CONFIG_EXPORT AccountResolver system_accounts();

/// Sets the id of every named user and group in `config` (admins, dynamic channel creators,
/// channel ACLs). Returns one error per name that does not resolve, at the place it is
/// written. Entries already holding an id are left alone. Calls `resolver` once per entry.
[[nodiscard]] SHMBUS_CONFIG_EXPORT std::vector<ConfigError>
resolve_accounts(Config& config, const AccountResolver& resolver);

/// Which daemon instance a configuration is for.
enum class Instance {
    system, ///< the system service: /etc/shmbusd/shmbusd.yaml
    user,   ///< a per-user daemon: $XDG_CONFIG_HOME/shmbus/shmbusd.yaml
};

/// The main configuration file to load, and whether it must exist.
struct ConfigPath {
    std::filesystem::path path;
    /// true for a path the user gave (--config) and for the system file: missing is an
    /// error. false for the default user file: missing means built-in defaults.
    bool required{true};
};

/// Reads an environment variable; std::nullopt when it is unset.
using Environment = std::function<std::optional<std::string>(std::string_view name)>;

/// The process environment (getenv).
[[nodiscard]] SHMBUS_CONFIG_EXPORT Environment process_environment();

/// Picks the main configuration file: `explicit_path` (--config) if given; else
/// /etc/shmbusd/shmbusd.yaml for Instance::system; else $XDG_CONFIG_HOME/shmbus/shmbusd.yaml,
/// falling back to $HOME/.config/shmbus/shmbusd.yaml when XDG_CONFIG_HOME is unset, empty or
/// relative. Errc::not_found when a user instance has neither variable set to an absolute path.
[[nodiscard]] SHMBUS_CONFIG_EXPORT Result<ConfigPath>
choose_config_path(Instance instance, const std::optional<std::filesystem::path>& explicit_path,
                   const Environment& environment);

/// Reads `config.path` and then every `*.yaml` file of the `conf.d/` directory beside it, in
/// byte order of their names (files starting with '.' are skipped), and parses them as
/// parse_config(sources) does. A missing main file is an error when `config.required`; a
/// missing conf.d/ is not. Read errors are ConfigErrors with line 0. Then reads each bridge's
/// secret_file (read_bridge_secrets()) and TLS files (read_bridge_tls()).
[[nodiscard]] SHMBUS_CONFIG_EXPORT ParseOutcome load_config(const ConfigPath& config);

/// Reads the `tls:` files of every bridge in `config` into its credentials: the key file must
/// be private as a secret_file is; then the gateway's TLS context checks all three (PEM, the
/// key matches the certificate, a CA certificate at least). One error per problem, at the
/// `tls.cert`, `tls.key` or `tls.ca` value it concerns.
[[nodiscard]] SHMBUS_CONFIG_EXPORT std::vector<ConfigError> read_bridge_tls(Config& config);

/// Reads the secret_file of every bridge in `config` into its `secret`: a regular file of 16
/// to 4096 bytes that neither group nor others may read or write (mode 0600 or stricter).
/// One error per file that is not, at the `secret_file:` that names it.
[[nodiscard]] SHMBUS_CONFIG_EXPORT std::vector<ConfigError> read_bridge_secrets(Config& config);

/// load_config() + resolve_accounts(system_accounts()): the configuration or every error.
[[nodiscard]] SHMBUS_CONFIG_EXPORT ParseOutcome load_resolved_config(const ConfigPath& path);

/// A configuration file checked: which main file was read, and what it gave.
struct ConfigCheck {
    ConfigPath path;
    ParseOutcome outcome; ///< accounts resolved; the configuration, or every error
};

/// Everything shmbusd does with its configuration before it touches the system: picks the main
/// file (choose_config_path()), reads it and its drop-ins and resolves user and group names
/// (load_resolved_config()). shmbusd at start and for --check-config (which `shmbusctl
/// check-config` runs) calls this one function, so that they always give the same answer.
/// Errc::not_found when no file can be chosen (see choose_config_path()).
[[nodiscard]] SHMBUS_CONFIG_EXPORT Result<ConfigCheck>
check_config_file(Instance instance, const std::optional<std::filesystem::path>& explicit_path,
                  const Environment& environment);

/// What both tools print on stderr about `check`: "FILE: configuration is valid (N channels,
/// M bridges)" (the bridges only when there are some),
/// or every error GCC-style, one a line. No final newline.
[[nodiscard]] SHMBUS_CONFIG_EXPORT std::string describe(const ConfigCheck& check);

} // namespace shmbus::daemon
