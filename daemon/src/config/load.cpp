// Loading the configuration: the files, the conf.d/ drop-ins, the merge of their settings, and
// the user and group names of the account databases.
//
// parse_config() reads each source with the YAML reader (yaml_reader.hpp) onto one Config, in
// order, so that a later file overrides exactly the keys it sets and channels accumulate; the
// checks that depend on the merged result (channel count, total memory, dynamic defaults
// against their maxima) run once, in check_merged(), after the last source. It is pure.
//
// The I/O of the loader is here and only here: read_text_file() (one file, size-capped, no
// special files), the conf.d/ listing of load_config(), the bridges' secret files
// (read_bridge_secrets(): their mode is checked before they are read) and TLS files
// (read_bridge_tls(): the key's mode likewise, then the gateway's TLS context checks all three),
// and the NSS lookups behind system_accounts(). Errors are values (ConfigError with line 0 for a
// whole file); nothing here logs or exits. Thread-safety: reentrant; the NSS functions used are the
// _r variants.
#include "config.hpp"

#include "schema.hpp"
#include "values.hpp"
#include "yaml_reader.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>
#include <utility>

namespace shmbus::daemon {

namespace {

/// A configuration file larger than this is refused: it is not a hand-written config.
constexpr std::size_t kMaxFileBytes = 4 * kMiB;

/// Where dotted setting `key` was set; else where `fallback` was set; else the first source.
ConfigLocation where_set(const Config& config, std::string_view key, std::string_view fallback,
                         std::span<const ConfigSource> sources) {
    for (const std::string_view k : {key, fallback}) {
        if (const auto it = config.set_at.find(k); it != config.set_at.end()) {
            return it->second;
        }
    }
    return ConfigLocation{sources.empty() ? std::string{} : sources.front().origin, 0, 0};
}

/// The connections of limits.max_clients: the admins' reserve and what one uid may hold.
template <typename Report>
void check_connection_limits(Config& config, std::span<const ConfigSource> sources,
                             const Report& report) {
    Limits& limits = config.limits;
    const bool reserve_set = config.set_at.contains("limits.admin_reserve");
    if (!reserve_set) {
        // The default must not refuse a small max_clients: it takes at most half of it.
        limits.admin_reserve = std::min(limits.admin_reserve, limits.max_clients / 2);
    } else if (limits.admin_reserve >= limits.max_clients) {
        report(where_set(config, "limits.admin_reserve", "limits.max_clients", sources),
               "'limits.admin_reserve' (" + std::to_string(limits.admin_reserve) +
                   ") must be less than 'limits.max_clients' (" +
                   std::to_string(limits.max_clients) +
                   "), or only root and the admins could ever connect");
        return;
    }
    const std::uint32_t open_to_all = limits.max_clients - limits.admin_reserve;
    if (config.set_at.contains("limits.per_uid.max_connections") &&
        limits.per_uid.max_connections > open_to_all) {
        report(where_set(config, "limits.per_uid.max_connections", "limits.max_clients", sources),
               "'limits.per_uid.max_connections' (" +
                   std::to_string(limits.per_uid.max_connections) +
                   ") is more than the connections open to users who are not admins "
                   "('limits.max_clients' " +
                   std::to_string(limits.max_clients) + " - 'limits.admin_reserve' " +
                   std::to_string(limits.admin_reserve) + " = " + std::to_string(open_to_all) +
                   "), so it would never apply");
    }
}

/// The checks that need the merged configuration of all sources.
void check_merged(MergeState& state, std::span<const ConfigSource> sources) {
    Config& config = state.config;
    const auto report = [&](ConfigLocation where, std::string message) {
        state.errors.push_back(
            ConfigError{std::move(where.file), where.line, where.column, std::move(message)});
    };

    DynamicChannelPolicy& dynamic = config.dynamic_channels;
    if (dynamic.defaults.kind == ChannelKind::queue &&
        dynamic.defaults.overflow == Overflow::drop) {
        report(where_set(config, "dynamic_channels.defaults.overflow",
                         "dynamic_channels.defaults.kind", sources),
               "overflow 'drop' is only valid on a broadcast channel; the default kind of dynamic "
               "channels is queue");
    }
    if (!state.dynamic_subscribers_set && dynamic.defaults.kind == ChannelKind::broadcast) {
        dynamic.defaults.max_subscribers = kDefaultBroadcastSubscribers;
    }
    if (dynamic.defaults.slot_size > dynamic.max_slot_size) {
        report(where_set(config, "dynamic_channels.defaults.slot_size",
                         "dynamic_channels.max_slot_size", sources),
               "the default slot_size of dynamic channels (" +
                   format_size(dynamic.defaults.slot_size) + ") is larger than 'max_slot_size' (" +
                   format_size(dynamic.max_slot_size) + ")");
    }
    if (dynamic.defaults.slot_count > dynamic.max_slot_count) {
        report(where_set(config, "dynamic_channels.defaults.slot_count",
                         "dynamic_channels.max_slot_count", sources),
               "the default slot_count of dynamic channels (" +
                   std::to_string(dynamic.defaults.slot_count) +
                   ") is larger than 'max_slot_count' (" + std::to_string(dynamic.max_slot_count) +
                   ")");
    }

    check_connection_limits(config, sources, report);

    if (config.channels.size() > config.limits.max_channels) {
        const ChannelConfig& first_extra = config.channels[config.limits.max_channels];
        report(first_extra.where, "too many channels: 'limits.max_channels' is " +
                                      std::to_string(config.limits.max_channels) +
                                      " and this is channel number " +
                                      std::to_string(config.limits.max_channels + 1));
    }

    // A NATS bridge's exports against the channels they read: a message that could not fit
    // in one NATS message is refused here, by name, rather than lost at run time.
    for (const ConfiguredBridge& bridge : config.bridges) {
        if (!bridge.nats) {
            continue;
        }
        const auto& exports = bridge.nats->exports;
        for (std::size_t i = 0; i < exports.size() && i < bridge.nats_export_where.size(); ++i) {
            // Each configured channel the entry names or its glob matches; a channel created
            // at run time is checked by the bridge as it starts.
            for (const ChannelConfig& channel : config.channels) {
                if (!gateway::glob_match(exports[i].channel, channel.spec.name)) {
                    continue;
                }
                if (auto fits = gateway::check_export_payload(
                        channel.spec.name, channel.spec.slot_size, bridge.nats->max_payload,
                        "the servers' ('nats.max_payload')");
                    !fits) {
                    report(bridge.nats_export_where[i],
                           "bridge " + quote(bridge.name) + ": " + fits.error().detail);
                }
            }
        }
    }

    // Slots alone, a lower bound of what the segments reserve. No overflow: each term is at
    // most 2^54 and the sum stops at the first one past max_total_segment_bytes (<= 2^40).
    std::uint64_t total = 0;
    for (const ChannelConfig& channel : config.channels) {
        total += channel.spec.slot_size * channel.spec.slot_count;
        if (total > config.limits.max_total_segment_bytes) {
            report(channel.where, "the channels up to " + quote(channel.spec.name) +
                                      " need at least " + format_size(total) +
                                      " of shared memory for their slots, more than "
                                      "'limits.max_total_segment_bytes' (" +
                                      format_size(config.limits.max_total_segment_bytes) + ")");
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// I/O: files and the account databases

struct FileCloser {
    void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};

std::string errno_text(int error) {
    return std::system_category().message(error);
}

/// The whole of file `path`. Errc::not_found if it does not exist.
Result<std::string> read_text_file(const std::filesystem::path& path) {
    // "e": O_CLOEXEC, so that a reload in a running daemon leaks nothing into children.
    const std::unique_ptr<std::FILE, FileCloser> file{std::fopen(path.c_str(), "rbe")};
    if (!file) {
        const int error = errno;
        return make_error(error == ENOENT ? Errc::not_found : Errc::system_error,
                          "cannot open: " + errno_text(error), error);
    }
    struct stat info {};
    if (::fstat(::fileno(file.get()), &info) != 0) {
        const int error = errno;
        return make_error(Errc::system_error, "cannot stat: " + errno_text(error), error);
    }
    if (!S_ISREG(info.st_mode)) {
        return make_error(Errc::invalid_argument, "not a regular file");
    }
    std::string text;
    std::array<char, 8192> buffer{};
    for (;;) {
        const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
        text.append(buffer.data(), n);
        if (text.size() > kMaxFileBytes) {
            return make_error(Errc::limit_reached, "larger than " + format_size(kMaxFileBytes) +
                                                       "; is this a configuration file?");
        }
        if (n < buffer.size()) {
            if (std::ferror(file.get()) != 0) {
                const int error = errno;
                return make_error(Errc::system_error, "cannot read: " + errno_text(error), error);
            }
            return text;
        }
    }
}

/// getpwnam_r and getgrnam_r share this shape: retry with a larger buffer on ERANGE; ENOENT,
/// ESRCH, EBADF and EPERM mean "no such name" (see getpwnam(3)).
template <typename Record, typename Lookup, typename Id>
Result<std::optional<std::uint32_t>> lookup_account(const std::string& name, Lookup lookup,
                                                    Id id_of, std::string_view noun) {
    std::vector<char> buffer(1024);
    for (;;) {
        Record entry{};
        Record* found = nullptr;
        const int rc = lookup(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (rc == ERANGE && buffer.size() < (std::size_t{1} << 20)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (found != nullptr) {
            return std::optional<std::uint32_t>{id_of(*found)};
        }
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) {
            return std::optional<std::uint32_t>{};
        }
        return make_error(
            Errc::system_error,
            "cannot look up " + std::string(noun) + " " + quote(name) + ": " + errno_text(rc), rc);
    }
}

/// The whole of a file that only its owner may read: a secret or a private key. Looked at
/// before it is read: a secret others could read is no secret, whatever it holds.
Result<std::string> read_private_file(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        const int error = errno;
        return make_error(Errc::system_error, "cannot stat: " + errno_text(error), error);
    }
    if (S_ISREG(info.st_mode) && (info.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
        return make_error(Errc::permission_denied,
                          std::string{"group or others may access it (mode "} + mode +
                              "); chmod 600 it, and give it to the daemon's user");
    }
    return read_text_file(path);
}

void io_errors_append(std::vector<ConfigError>& to, std::vector<ConfigError> more) {
    to.insert(to.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

} // namespace

std::string to_string(const ConfigError& error) {
    std::string out = error.file;
    if (error.line != 0) {
        out += ":" + std::to_string(error.line) + ":" + std::to_string(error.column);
    }
    return out + ": error: " + error.message;
}

std::string_view to_string(LogLevel level) noexcept {
    for (std::size_t i = 0; i < kLogLevels.size(); ++i) {
        if (kLogLevels[i] == level) {
            return kLogLevelNames[i];
        }
    }
    return "unknown";
}

ParseOutcome parse_config(std::string_view text, std::string_view origin) {
    const std::array<ConfigSource, 1> sources{ConfigSource{std::string(origin), std::string(text)}};
    return parse_config(sources);
}

ParseOutcome parse_config(std::span<const ConfigSource> sources) {
    MergeState state;
    for (const ConfigSource& source : sources) {
        const std::size_t first = state.errors.size();
        read_source(source, state);
        // Within one file, in file order, as a compiler would list them.
        std::stable_sort(state.errors.begin() + static_cast<std::ptrdiff_t>(first),
                         state.errors.end(), [](const ConfigError& a, const ConfigError& b) {
                             return std::pair(a.line, a.column) < std::pair(b.line, b.column);
                         });
    }
    check_merged(state, sources);
    ParseOutcome outcome;
    outcome.errors = std::move(state.errors);
    if (outcome.errors.empty()) {
        outcome.config = std::move(state.config);
    }
    return outcome;
}

AccountResolver system_accounts() {
    return AccountResolver{
        [](const std::string& name) {
            return lookup_account<struct passwd>(
                name, ::getpwnam_r, [](const passwd& p) { return p.pw_uid; }, "user");
        },
        [](const std::string& name) {
            return lookup_account<struct group>(
                name, ::getgrnam_r, [](const group& g) { return g.gr_gid; }, "group");
        },
    };
}

std::vector<ConfigError> resolve_accounts(Config& config, const AccountResolver& resolver) {
    std::vector<ConfigError> errors;
    // One lookup per distinct name: NSS may be a network round trip.
    std::map<std::string, Result<std::optional<std::uint32_t>>, std::less<>> users;
    std::map<std::string, Result<std::optional<std::uint32_t>>, std::less<>> groups;
    const auto resolve = [&](std::vector<AccountRef>& refs, bool user) {
        auto& cache = user ? users : groups;
        const AccountLookup& lookup = user ? resolver.user : resolver.group;
        for (AccountRef& ref : refs) {
            if (ref.id) {
                continue;
            }
            auto it = cache.find(ref.name);
            if (it == cache.end()) {
                it = cache.emplace(ref.name, lookup(ref.name)).first;
            }
            const Result<std::optional<std::uint32_t>>& found = it->second;
            std::string message;
            if (!found) {
                message = found.error().detail;
            } else if (!found.value()) {
                message = std::string(user ? "unknown user " : "unknown group ") + quote(ref.name);
            } else {
                ref.id = *found.value();
                continue;
            }
            errors.push_back(
                ConfigError{ref.where.file, ref.where.line, ref.where.column, std::move(message)});
        }
    };
    const auto resolve_list = [&](AccessList& list) {
        resolve(list.users, true);
        resolve(list.groups, false);
    };
    resolve_list(config.admins);
    resolve_list(config.dynamic_channels.creators);
    for (ChannelConfig& channel : config.channels) {
        resolve_list(channel.acl.publish);
        resolve_list(channel.acl.subscribe);
    }
    return errors;
}

Environment process_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* value = std::getenv(std::string(name).c_str());
        return value != nullptr ? std::optional<std::string>{value} : std::nullopt;
    };
}

Result<ConfigPath> choose_config_path(Instance instance,
                                      const std::optional<std::filesystem::path>& explicit_path,
                                      const Environment& environment) {
    if (explicit_path) {
        return ConfigPath{*explicit_path, true};
    }
    if (instance == Instance::system) {
        return ConfigPath{"/etc/shmbusd/shmbusd.yaml", true};
    }
    // XDG Base Directory: a relative XDG_CONFIG_HOME is invalid and must be ignored.
    const auto absolute = [&](std::string_view name) -> std::optional<std::filesystem::path> {
        auto value = environment(name);
        if (value && !value->empty() && value->front() == '/') {
            return std::filesystem::path(*value);
        }
        return std::nullopt;
    };
    if (const auto config_home = absolute("XDG_CONFIG_HOME")) {
        return ConfigPath{*config_home / "shmbus" / "shmbusd.yaml", false};
    }
    if (const auto home = absolute("HOME")) {
        return ConfigPath{*home / ".config" / "shmbus" / "shmbusd.yaml", false};
    }
    return make_error(Errc::not_found, "cannot find the user configuration: neither "
                                       "XDG_CONFIG_HOME nor HOME is set to an absolute path; "
                                       "use --config FILE");
}

ParseOutcome load_config(const ConfigPath& config) {
    std::vector<ConfigSource> sources;
    std::vector<ConfigError> io_errors;
    const auto io_error = [&](const std::filesystem::path& path, std::string message) {
        io_errors.push_back(ConfigError{path.string(), 0, 0, std::move(message)});
    };

    if (auto text = read_text_file(config.path)) {
        sources.push_back(ConfigSource{config.path.string(), std::move(text.value())});
    } else if (text.code() != Errc::not_found || config.required) {
        io_error(config.path, text.error().detail);
    }

    const std::filesystem::path drop_in_dir = config.path.parent_path() / "conf.d";
    std::error_code ec;
    std::filesystem::directory_iterator it(drop_in_dir, ec);
    std::vector<std::string> names;
    for (; !ec && it != std::filesystem::directory_iterator{}; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        constexpr std::string_view kSuffix = ".yaml";
        if (name.size() <= kSuffix.size() || name.front() == '.' || !name.ends_with(kSuffix)) {
            continue;
        }
        std::error_code type_ec;
        if (it->is_directory(type_ec)) {
            continue;
        }
        names.push_back(name);
    }
    if (ec && ec != std::errc::no_such_file_or_directory) {
        io_error(drop_in_dir, "cannot read directory: " + ec.message());
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
        const std::filesystem::path path = drop_in_dir / name;
        if (auto text = read_text_file(path)) {
            sources.push_back(ConfigSource{path.string(), std::move(text.value())});
        } else {
            io_error(path, text.error().detail);
        }
    }

    ParseOutcome outcome = parse_config(sources);
    if (outcome.ok() && outcome.config) {
        io_errors_append(io_errors, read_bridge_secrets(*outcome.config));
        io_errors_append(io_errors, read_bridge_tls(*outcome.config));
    }
    if (!io_errors.empty()) {
        outcome.errors.insert(outcome.errors.begin(), io_errors.begin(), io_errors.end());
        outcome.config.reset();
    }
    return outcome;
}

std::vector<ConfigError> read_bridge_secrets(Config& config) {
    std::vector<ConfigError> errors;
    for (ConfiguredBridge& bridge : config.bridges) {
        if (!bridge.secret_file) {
            continue;
        }
        const ConfigLocation& where = bridge.secret_where;
        const std::string named = "secret_file " + quote(bridge.secret_file->native());
        const auto fail = [&](std::string message) {
            errors.push_back(ConfigError{where.file, where.line, where.column,
                                         named + " of bridge " + quote(bridge.name) + ": " +
                                             std::move(message)});
        };
        auto text = read_private_file(*bridge.secret_file);
        if (!text) {
            fail(text.error().detail);
            continue;
        }
        if (text->size() < kMinSecretBytes || text->size() > kMaxSecretBytes) {
            fail("holds " + std::to_string(text->size()) + " bytes; a secret holds " +
                 std::to_string(kMinSecretBytes) + " to " + std::to_string(kMaxSecretBytes) +
                 " (such as 32 random bytes: head -c 32 /dev/urandom)");
            continue;
        }
        bridge.secret = std::move(text.value());
    }
    return errors;
}

std::vector<ConfigError> read_bridge_tls(Config& config) {
    std::vector<ConfigError> errors;
    for (ConfiguredBridge& bridge : config.bridges) {
        if (!bridge.tls) {
            continue;
        }
        gateway::TlsCredentials& tls = *bridge.tls;
        const auto fail = [&](const ConfigLocation& where, std::string message) {
            errors.push_back(
                ConfigError{where.file, where.line, where.column,
                            "bridge " + quote(bridge.name) + ": " + std::move(message)});
        };
        const std::size_t errors_before = errors.size();
        const struct {
            const std::string& file;
            std::string& into;
            const ConfigLocation& where;
            const char* key;
            bool secret;
        } files[] = {{tls.cert_file, tls.cert_pem, bridge.tls_where.cert, "cert", false},
                     {tls.key_file, tls.key_pem, bridge.tls_where.key, "key", true},
                     {tls.ca_file, tls.ca_pem, bridge.tls_where.ca, "ca", false}};
        for (const auto& f : files) {
            auto text = f.secret ? read_private_file(f.file) : read_text_file(f.file);
            if (!text) {
                fail(f.where, std::string{"tls."} + f.key + " " + quote(f.file) + ": " +
                                  text.error().detail);
                continue;
            }
            f.into = std::move(text.value());
        }
        if (errors.size() != errors_before) {
            continue;
        }
        // The gateway's own check, so that the configuration accepts what the bridge can use.
        if (auto context = gateway::TlsContext::create(tls); !context) {
            const std::string& why = context.error().detail;
            const ConfigLocation& where = why.rfind("key ", 0) == 0  ? bridge.tls_where.key
                                          : why.rfind("ca ", 0) == 0 ? bridge.tls_where.ca
                                                                     : bridge.tls_where.cert;
            fail(where, "tls: " + why);
        }
    }
    return errors;
}

ParseOutcome load_resolved_config(const ConfigPath& path) {
    ParseOutcome outcome = load_config(path);
    if (outcome.ok() && outcome.config) {
        auto errors = resolve_accounts(*outcome.config, system_accounts());
        if (!errors.empty()) {
            outcome.config.reset();
            outcome.errors = std::move(errors);
        }
    }
    return outcome;
}

Result<ConfigCheck> check_config_file(Instance instance,
                                      const std::optional<std::filesystem::path>& explicit_path,
                                      const Environment& environment) {
    auto path = choose_config_path(instance, explicit_path, environment);
    if (!path) {
        return path.take_error();
    }
    ParseOutcome outcome = load_resolved_config(*path);
    return ConfigCheck{std::move(*path), std::move(outcome)};
}

std::string describe(const ConfigCheck& check) {
    if (check.outcome.ok() && check.outcome.config) {
        const Config& config = *check.outcome.config;
        std::string counts = std::to_string(config.channels.size()) + " channels";
        if (!config.bridges.empty()) {
            counts += ", " + std::to_string(config.bridges.size()) + " bridges";
        }
        return check.path.path.native() + ": configuration is valid (" + counts + ")";
    }
    std::string out;
    for (const ConfigError& error : check.outcome.errors) {
        out += (out.empty() ? "" : "\n") + to_string(error);
    }
    return out;
}

} // namespace shmbus::daemon
