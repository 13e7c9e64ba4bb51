// Reading shmbusd.yaml: one YAML text onto a Config, or ConfigErrors at file:line:column.
//
// This is the only file of shmbus that includes yaml-cpp. yaml-cpp is used as a tree builder
// only: we walk the node tree ourselves and never call Node::as<T>(), so that each value is
// checked with a message we wrote and a mark we know; a YAML::Exception (syntax errors, or
// anything unexpected) is caught here and becomes a ConfigError. No exception leaves this
// file except std::bad_alloc. What a value may be (sizes, names, ranges) is values.cpp's rule;
// this file knows which key holds which kind of value, and where it was written.
//
// How errors are collected: DocumentReader walks one document and appends to an error list
// instead of stopping, so one run reports everything (only a YAML syntax error ends the reading
// of a document, because yaml-cpp cannot go on after one). A value that fails its check keeps
// the previous (default) value; because any error rejects the whole configuration, such a value
// is never used, it only keeps later checks from reporting follow-on errors.
//
// Marks: yaml-cpp counts lines and columns from 0; ConfigLocation counts from 1. A null value
// (`slot_size:` with nothing after it) carries the mark of whatever token follows it, so errors
// about a missing value point at the key instead.
//
// Merging: every source of one parse is read onto the same MergeState, so a later file
// overrides exactly the keys it sets, and channels accumulate; the checks that need the merged
// result are load.cpp's. No I/O here.
#include "yaml_reader.hpp"

#include "schema.hpp"
#include "values.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <sstream>
#include <utility>

namespace shmbus::daemon {

namespace {

/// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPathLength = 107;

/// Whether this build runs NATS bridges (the gateway found libnats): a configuration that
/// asks for one is refused otherwise, at the place that asks.
#if SHMBUS_HAVE_NATS
constexpr bool kNatsBuilt = true;
#else
constexpr bool kNatsBuilt = false;
#endif

/// "a list", "a mapping", "the value 'x'": what was found where something else was expected.
std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Scalar:
        return "the value " + quote(node.Scalar());
    default:
        return "nothing";
    }
}

// ---------------------------------------------------------------------------------------------
// DocumentReader: one YAML document onto a Config

/// One key of a mapping, after the duplicate and unknown-key checks.
struct Entry {
    std::string_view name; ///< one of the known keys (static storage)
    YAML::Node key;
    YAML::Node value;
};

/// What read_spec_field() saw of one channel (or of the dynamic defaults).
struct SpecSeen {
    bool kind{false};
    bool subscribers{false};
    bool publishers{false};
    std::optional<ConfigLocation> slot_size;     ///< where slot_size was written
    std::optional<ConfigLocation> slot_count;    ///< where slot_count was written
    std::optional<ConfigLocation> overflow_drop; ///< where `overflow: drop` was written
    /// Where the last of max_publishers / max_subscribers was written (a pool's sum of both).
    std::optional<ConfigLocation> endpoints;
    /// rpc: the first key of each family given, to refuse the one that does not fit the kind.
    std::optional<std::pair<std::string_view, ConfigLocation>> rpc_key, ring_key, rpc_acl, ring_acl;
    bool request_size{false}, reply_size{false}, depth{false}, servers{false}, callers{false};
};

class DocumentReader {
public:
    DocumentReader(std::string origin, MergeState& state)
        : origin_{std::move(origin)}, state_{state}, config_{state.config} {}

    void read(const YAML::Node& root) {
        if (root.IsNull()) {
            return; // an empty file, or only comments: all defaults
        }
        if (!root.IsMap()) {
            error(at(root.Mark()), "the top level must be a mapping of sections (" +
                                       join_choices(kTopKeys, " and ") + "), not " +
                                       describe(root));
            return;
        }
        for (const Entry& e : entries(root, kTopKeys)) {
            if (e.name == "daemon") {
                read_daemon(e);
            } else if (e.name == "limits") {
                read_limits(e);
            } else if (e.name == "dynamic_channels") {
                read_dynamic(e);
            } else if (e.name == "channels") {
                read_channels(e);
            } else if (e.name == "bridges") {
                read_bridges(e);
            }
        }
    }

    /// Reports a problem at `where`.
    void error(ConfigLocation where, std::string message) {
        state_.errors.push_back(
            ConfigError{std::move(where.file), where.line, where.column, std::move(message)});
    }

    /// A yaml-cpp mark as a 1-based location in this source.
    [[nodiscard]] ConfigLocation at(const YAML::Mark& mark) const {
        if (mark.is_null() || mark.line < 0 || mark.column < 0) {
            return ConfigLocation{origin_, 0, 0};
        }
        return ConfigLocation{origin_, static_cast<std::uint32_t>(mark.line) + 1,
                              static_cast<std::uint32_t>(mark.column) + 1};
    }

private:
    /// Where to point at a value: the value itself, or its key when it is empty (a null value
    /// carries the mark of the token after it).
    [[nodiscard]] ConfigLocation value_at(const Entry& e) const {
        return at(e.value.IsNull() ? e.key.Mark() : e.value.Mark());
    }

    [[nodiscard]] static std::string key_name(const Entry& e) {
        return "'" + std::string(e.name) + "'";
    }

    void record(std::string dotted, const Entry& e) {
        config_.set_at.insert_or_assign(std::move(dotted), value_at(e));
    }

    /// "(first given at line 3, column 5)" for a place in this file, else with the file name.
    [[nodiscard]] std::string other_place(const ConfigLocation& where) const {
        if (where.file == origin_) {
            return "line " + std::to_string(where.line) + ", column " +
                   std::to_string(where.column);
        }
        return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
    }

    /// The entries of mapping `map` with known keys, in file order. Reports keys that are not
    /// plain names, unknown keys (with a suggestion) and keys given twice; those are left out.
    /// The keys suggested for unknown ones are added to `suggested`, if given, so that a caller
    /// does not report a misspelt required key a second time as missing.
    std::vector<Entry> entries(const YAML::Node& map, std::span<const std::string_view> known,
                               std::vector<std::string_view>* suggested = nullptr) {
        std::vector<Entry> out;
        std::map<std::string, ConfigLocation, std::less<>> seen;
        for (const auto& pair : map) {
            const YAML::Node& key = pair.first;
            if (!key.IsScalar()) {
                error(at(key.IsNull() ? pair.second.Mark() : key.Mark()),
                      "a key must be a name, not " + describe(key));
                continue;
            }
            const std::string& text = key.Scalar();
            const ConfigLocation where = at(key.Mark());
            if (const auto first = seen.find(text); first != seen.end()) {
                error(where, "duplicate key " + quote(text) + " (first given at " +
                                 other_place(first->second) + ")");
                continue;
            }
            seen.emplace(text, where);
            const auto match = std::find(known.begin(), known.end(), text);
            if (match == known.end()) {
                std::string message = "unknown key " + quote(text);
                if (const auto suggestion = closest_match(text, known)) {
                    message += " (did you mean '" + std::string(*suggestion) + "'?)";
                    if (suggested != nullptr) {
                        suggested->push_back(*suggestion);
                    }
                } else {
                    message += " (expected " + join_choices(known, " or ") + ")";
                }
                error(where, std::move(message));
                continue;
            }
            out.push_back(Entry{*match, key, pair.second});
        }
        return out;
    }

    /// The entries of the mapping under `e`; none (after an error) if it is not a mapping.
    /// An empty value (`limits:` alone) is an empty mapping.
    std::vector<Entry> sub_entries(const Entry& e, std::span<const std::string_view> known) {
        if (e.value.IsNull()) {
            return {};
        }
        if (!e.value.IsMap()) {
            error(value_at(e),
                  key_name(e) + " must be a mapping of settings, not " + describe(e.value));
            return {};
        }
        return entries(e.value, known);
    }

    /// The text of scalar `e`, or nothing (after an error) if it is empty or not a scalar.
    std::optional<std::string> scalar(const Entry& e, std::string_view expected) {
        if (e.value.IsNull()) {
            error(value_at(e), key_name(e) + " needs a value (" + std::string(expected) + ")");
            return std::nullopt;
        }
        if (!e.value.IsScalar()) {
            error(value_at(e),
                  key_name(e) + " must be " + std::string(expected) + ", not " + describe(e.value));
            return std::nullopt;
        }
        return e.value.Scalar();
    }

    std::optional<std::uint64_t> read_number(const Entry& e, const Range& range) {
        const auto text = scalar(e, number_expected(range));
        if (!text) {
            return std::nullopt;
        }
        auto number = check_number(*text, range);
        if (!number) {
            error(value_at(e), key_name(e) + " " + number.error().detail);
            return std::nullopt;
        }
        return *number;
    }

    std::optional<std::uint32_t> read_u32(const Entry& e, const Range& range) {
        const auto value = read_number(e, range);
        return value ? std::optional<std::uint32_t>{static_cast<std::uint32_t>(*value)}
                     : std::nullopt;
    }

    std::optional<std::chrono::milliseconds> read_duration(const Entry& e,
                                                           const DurationRange& range) {
        const auto text = scalar(e, "a duration, such as 5s or 500ms");
        if (!text) {
            return std::nullopt;
        }
        auto duration = check_duration(*text, range);
        if (!duration) {
            error(value_at(e), key_name(e) + " " + duration.error().detail);
            return std::nullopt;
        }
        return *duration;
    }

    /// A slot count: in range and a power of two.
    std::optional<bool> read_bool(const Entry& e) {
        const auto text = scalar(e, "true or false");
        if (!text) {
            return std::nullopt;
        }
        if (equal_ignoring_case(*text, "true")) {
            return true;
        }
        if (equal_ignoring_case(*text, "false")) {
            return false;
        }
        error(value_at(e), key_name(e) + " must be true or false, got " + quote(*text));
        return std::nullopt;
    }

    /// One of `names` (exact spelling); its index.
    std::optional<std::size_t> read_choice(const Entry& e, std::string_view what,
                                           std::span<const std::string_view> names) {
        const std::string expected = join_choices(names, " or ");
        const auto text = scalar(e, expected);
        if (!text) {
            return std::nullopt;
        }
        const auto match = std::find(names.begin(), names.end(), *text);
        if (match != names.end()) {
            return static_cast<std::size_t>(match - names.begin());
        }
        std::string message = "unknown " + std::string(what) + " " + quote(*text);
        if (const auto suggestion = closest_match(*text, names)) {
            message += " (did you mean '" + std::string(*suggestion) + "'?)";
        } else {
            message += " (expected " + expected + ")";
        }
        error(value_at(e), std::move(message));
        return std::nullopt;
    }

    std::optional<std::filesystem::path> read_absolute_path(const Entry& e) {
        const auto text = scalar(e, "an absolute path");
        if (!text) {
            return std::nullopt;
        }
        if (text->empty() || text->front() != '/') {
            error(value_at(e), key_name(e) + " must be an absolute path, got " + quote(*text));
            return std::nullopt;
        }
        if (text->find('\0') != std::string::npos) {
            error(value_at(e), key_name(e) + " must not contain a NUL byte");
            return std::nullopt;
        }
        return std::filesystem::path(*text);
    }

    /// `users:` or `groups:` (a list of names or numeric ids) into `list`, replacing it.
    void read_accounts(const Entry& e, AccessList& list, bool users) {
        std::vector<AccountRef>& out = users ? list.users : list.groups;
        out.clear();
        if (users) {
            list.anyone = false;
        }
        const std::string_view noun = users ? "user" : "group";
        if (e.value.IsNull()) {
            return;
        }
        if (!e.value.IsSequence()) {
            error(value_at(e), key_name(e) + " must be a list of " + std::string(noun) +
                                   " names, such as [alice, 1001], not " + describe(e.value));
            return;
        }
        for (const YAML::Node& item : e.value) {
            const ConfigLocation where = at(item.Mark());
            if (!item.IsScalar()) {
                error(item.IsNull() ? value_at(e) : where,
                      "each entry of " + key_name(e) + " must be a " + std::string(noun) +
                          " name or id, not " + describe(item));
                continue;
            }
            const std::string& text = item.Scalar();
            if (text == "*") {
                if (users) {
                    list.anyone = true;
                } else {
                    error(where, "'*' (everyone) is only valid in 'users'");
                }
                continue;
            }
            auto id = check_account(text, noun);
            if (!id) {
                error(where, id.error().detail);
                continue;
            }
            out.push_back(AccountRef{text, *id, where});
        }
    }

    /// The keys of a mapping with `users:` and `groups:` into `list`; `dotted` prefixes set_at.
    void read_access_entry(const Entry& e, AccessList& list, const std::string& dotted) {
        if (e.name == "users") {
            read_accounts(e, list, true);
        } else {
            read_accounts(e, list, false);
        }
        if (!dotted.empty()) {
            record(dotted + "." + std::string(e.name), e);
        }
    }

    void read_daemon(const Entry& section) {
        for (const Entry& e : sub_entries(section, kDaemonKeys)) {
            if (e.name == "socket") {
                if (auto path = read_absolute_path(e)) {
                    if (path->native().size() > kMaxSocketPathLength) {
                        error(value_at(e), "'socket' is " + std::to_string(path->native().size()) +
                                               " bytes long; a Unix socket path holds at most " +
                                               std::to_string(kMaxSocketPathLength));
                    } else {
                        config_.socket_path = std::move(*path);
                    }
                }
            } else if (e.name == "state_directory") {
                if (auto path = read_absolute_path(e)) {
                    config_.state_directory = std::move(*path);
                }
            } else if (e.name == "log_level") {
                if (const auto index = read_choice(e, "log level", kLogLevelNames)) {
                    config_.log_level = kLogLevels[*index];
                }
            } else if (e.name == "admin") {
                for (const Entry& a : sub_entries(e, kAccessKeys)) {
                    read_access_entry(a, config_.admins, "daemon.admin");
                }
                continue; // recorded per list
            }
            record("daemon." + std::string(e.name), e);
        }
    }

    void read_limits(const Entry& section) {
        Limits& limits = config_.limits;
        for (const Entry& e : sub_entries(section, kLimitKeys)) {
            if (e.name == "max_clients") {
                limits.max_clients = read_u32(e, kClientCountRange).value_or(limits.max_clients);
            } else if (e.name == "max_channels") {
                limits.max_channels = read_u32(e, kChannelCountRange).value_or(limits.max_channels);
            } else if (e.name == "max_total_segment_bytes") {
                limits.max_total_segment_bytes =
                    read_number(e, kTotalBytesRange).value_or(limits.max_total_segment_bytes);
            } else if (e.name == "per_client") {
                read_client_limits(e);
                continue;
            } else if (e.name == "per_uid") {
                read_uid_limits(e);
                continue;
            } else if (e.name == "admin_reserve") {
                limits.admin_reserve =
                    read_u32(e, kAdminReserveRange).value_or(limits.admin_reserve);
            } else if (e.name == "hello_timeout") {
                limits.hello_timeout =
                    read_duration(e, kHelloTimeoutRange).value_or(limits.hello_timeout);
            }
            record("limits." + std::string(e.name), e);
        }
    }

    void read_client_limits(const Entry& section) {
        ClientLimits& limits = config_.limits.per_client;
        for (const Entry& e : sub_entries(section, kClientLimitKeys)) {
            if (e.name == "max_open_channels") {
                limits.max_open_channels =
                    read_u32(e, kOpenChannelsRange).value_or(limits.max_open_channels);
            } else if (e.name == "max_inflight_requests") {
                limits.max_inflight_requests =
                    read_u32(e, kInflightRange).value_or(limits.max_inflight_requests);
            } else if (e.name == "max_dynamic_channels") {
                limits.max_dynamic_channels =
                    read_u32(e, kDynamicPerClientRange).value_or(limits.max_dynamic_channels);
            }
            record("limits.per_client." + std::string(e.name), e);
        }
    }

    void read_uid_limits(const Entry& section) {
        UidLimits& limits = config_.limits.per_uid;
        for (const Entry& e : sub_entries(section, kUidLimitKeys)) {
            if (e.name == "max_connections") {
                limits.max_connections =
                    read_u32(e, kUidConnectionsRange).value_or(limits.max_connections);
            } else if (e.name == "max_open_channels") {
                limits.max_open_channels =
                    read_u32(e, kUidOpenChannelsRange).value_or(limits.max_open_channels);
            } else if (e.name == "max_dynamic_channels") {
                limits.max_dynamic_channels =
                    read_u32(e, kUidDynamicChannelsRange).value_or(limits.max_dynamic_channels);
            } else if (e.name == "max_segment_bytes") {
                limits.max_segment_bytes =
                    read_number(e, kUidSegmentBytesRange).value_or(limits.max_segment_bytes);
            }
            record("limits.per_uid." + std::string(e.name), e);
        }
    }

    void read_dynamic(const Entry& section) {
        DynamicChannelPolicy& policy = config_.dynamic_channels;
        for (const Entry& e : sub_entries(section, kDynamicKeys)) {
            if (e.name == "allowed") {
                policy.allowed = read_bool(e).value_or(policy.allowed);
            } else if (e.name == "users" || e.name == "groups") {
                read_access_entry(e, policy.creators, "dynamic_channels");
                continue;
            } else if (e.name == "defaults") {
                SpecSeen seen;
                for (const Entry& d : sub_entries(e, kSpecKeys)) {
                    read_spec_field(d, policy.defaults, seen);
                    record("dynamic_channels.defaults." + std::string(d.name), d);
                }
                finish_spec(policy.defaults, seen);
                state_.dynamic_subscribers_set = state_.dynamic_subscribers_set || seen.subscribers;
                continue;
            } else if (e.name == "max_slot_size") {
                policy.max_slot_size =
                    read_number(e, kSlotSizeRange).value_or(policy.max_slot_size);
            } else if (e.name == "max_slot_count") {
                policy.max_slot_count =
                    read_number(e, kSlotCountRange).value_or(policy.max_slot_count);
            }
            record("dynamic_channels." + std::string(e.name), e);
        }
    }

    /// One of the kSpecKeys into `spec`.
    void read_spec_field(const Entry& e, ChannelSpec& spec, SpecSeen& seen) {
        if (e.name == "kind") {
            seen.kind = true;
            if (const auto index = read_choice(e, "channel kind", kKindNames)) {
                spec.kind = kKinds[*index];
            }
        } else if (e.name == "slot_size") {
            if (const auto size = read_number(e, kSlotSizeRange)) {
                spec.slot_size = *size;
                seen.slot_size = value_at(e);
            }
        } else if (e.name == "slot_count") {
            // Which counts are valid depends on the kind, which may come later in the
            // mapping: finish_spec() checks.
            const bool ring = seen.kind && is_ring_kind(spec.kind);
            if (const auto count = read_number(e, ring ? kSlotCountRange : kElementCountRange)) {
                spec.slot_count = *count;
                seen.slot_count = value_at(e);
            }
        } else if (e.name == "overflow") {
            if (const auto index = read_choice(e, "overflow policy", kOverflowNames)) {
                spec.overflow = kOverflows[*index];
                if (spec.overflow == Overflow::drop) {
                    seen.overflow_drop = value_at(e);
                }
            }
        } else if (e.name == "max_publishers") {
            seen.publishers = true;
            seen.endpoints = value_at(e);
            spec.max_publishers = read_u32(e, kEndpointRange).value_or(spec.max_publishers);
        } else if (e.name == "max_subscribers") {
            seen.subscribers = true;
            seen.endpoints = value_at(e);
            spec.max_subscribers = read_u32(e, kEndpointRange).value_or(spec.max_subscribers);
        }
    }

    /// The rules of `spec`'s kind, once the whole mapping is read: a ring's slot_count is a
    /// power of two from 2; the shared-state kinds take their own defaults for what was left
    /// out, a counters channel's slot_size is fixed, and a pool has at most
    /// kMaxPoolEndpoints endpoints.
    void finish_spec(ChannelSpec& spec, const SpecSeen& seen) {
        if (spec.kind == ChannelKind::rpc) {
            return; // its own keys and defaults: check_rpc_keys()
        }
        if (is_ring_kind(spec.kind)) {
            if (seen.slot_count) {
                if (auto in = check_number(std::to_string(spec.slot_count), kSlotCountRange); !in) {
                    error(*seen.slot_count, "'slot_count' " + in.error().detail);
                } else if (auto checked = check_power_of_two(spec.slot_count); !checked) {
                    error(*seen.slot_count, "'slot_count' " + checked.error().detail);
                }
            }
            return;
        }
        if (spec.kind == ChannelKind::counters) {
            if (seen.slot_size && spec.slot_size != kCounterSlotSize) {
                error(*seen.slot_size, "'slot_size' of a counters channel is fixed at " +
                                           std::to_string(kCounterSlotSize) +
                                           " (a cell's name); leave it out");
            }
            spec.slot_size = kCounterSlotSize;
        } else if (!seen.slot_size) {
            spec.slot_size =
                spec.kind == ChannelKind::pool ? kDefaultBlockSize : kDefaultElementSize;
        }
        if (!seen.slot_count) {
            spec.slot_count =
                spec.kind == ChannelKind::pool ? kDefaultBlockCount : kDefaultElementCount;
        }
        if (!seen.publishers) {
            spec.max_publishers = kDefaultSharedStateWriters;
        }
        if (!seen.subscribers) {
            spec.max_subscribers = kDefaultBroadcastSubscribers;
        }
        if (spec.kind == ChannelKind::pool &&
            spec.max_publishers + spec.max_subscribers > kMaxPoolEndpoints) {
            error(*seen.endpoints, // the defaults fit, so one of them was written
                  "a pool has at most " + std::to_string(kMaxPoolEndpoints) +
                      " endpoints (each has a bit in every block's state), but 'max_publishers' " +
                      std::to_string(spec.max_publishers) + " + 'max_subscribers' " +
                      std::to_string(spec.max_subscribers) + " make " +
                      std::to_string(spec.max_publishers + spec.max_subscribers));
        }
    }

    void read_channels(const Entry& section) {
        if (section.value.IsNull()) {
            return;
        }
        if (!section.value.IsSequence()) {
            error(value_at(section), "'channels' must be a list of channels (lines starting with "
                                     "'- name:'), not " +
                                         describe(section.value));
            return;
        }
        for (const YAML::Node& item : section.value) {
            read_channel(item, section);
        }
    }

    void read_channel(const YAML::Node& item, const Entry& section) {
        if (!item.IsMap()) {
            error(item.IsNull() ? value_at(section) : at(item.Mark()),
                  "each entry of 'channels' must be a mapping with at least 'name' and 'kind', "
                  "not " +
                      describe(item));
            return;
        }
        ChannelConfig channel;
        SpecSeen seen;
        bool name_ok = false;
        std::vector<std::string_view> suggested;
        for (const Entry& e : entries(item, kChannelKeys, &suggested)) {
            if (e.name == "name") {
                channel.where = value_at(e);
                name_ok = read_channel_name(e, channel.spec.name);
            } else if (e.name == "acl") {
                read_acl(e, channel.acl, seen);
            } else if (std::find(kRpcKeys.begin(), kRpcKeys.end(), e.name) != kRpcKeys.end()) {
                read_rpc_field(e, channel.spec, seen);
            } else {
                if (!seen.ring_key &&
                    std::find(kRingKeys.begin(), kRingKeys.end(), e.name) != kRingKeys.end()) {
                    seen.ring_key.emplace(e.name, at(e.key.Mark()));
                }
                read_spec_field(e, channel.spec, seen);
            }
        }
        const ConfigLocation item_at = at(item.Mark());
        const auto misspelt = [&](std::string_view key) {
            return std::find(suggested.begin(), suggested.end(), key) != suggested.end();
        };
        if (channel.where.line == 0 && !misspelt("name")) {
            error(item_at, "channel has no 'name'");
        }
        if (!seen.kind && !misspelt("kind")) {
            error(item_at, "channel" + (name_ok ? " " + quote(channel.spec.name) : std::string{}) +
                               " has no 'kind' (expected " + join_choices(kKindNames, " or ") +
                               ")");
        }
        if (seen.overflow_drop && seen.kind && channel.spec.kind != ChannelKind::broadcast) {
            error(*seen.overflow_drop,
                  "overflow 'drop' is only valid on a broadcast channel; " +
                      std::string{channel.spec.kind == ChannelKind::queue
                                      ? "a queue always blocks"
                                      : "a " + std::string{kind_name(channel.spec.kind)} +
                                            " never drops"});
        }
        if (!seen.subscribers && channel.spec.kind == ChannelKind::broadcast) {
            channel.spec.max_subscribers = kDefaultBroadcastSubscribers;
        }
        check_rpc_keys(channel.spec, seen);
        finish_spec(channel.spec, seen);
        if (!name_ok) {
            return;
        }
        for (const ChannelConfig& earlier : config_.channels) {
            if (earlier.spec.name == channel.spec.name) {
                error(channel.where, "duplicate channel name " + quote(channel.spec.name) +
                                         " (first defined at " + other_place(earlier.where) + ")");
                return;
            }
        }
        config_.channels.push_back(std::move(channel));
    }

    bool read_channel_name(const Entry& e, std::string& name) {
        const auto text = scalar(e, "a channel name");
        if (!text) {
            return false;
        }
        if (auto checked = check_channel_name(*text); !checked) {
            error(value_at(e), checked.error().detail);
            return false;
        }
        name = *text;
        return true;
    }

    /// One of the kRpcKeys into `spec` (see ChannelSpec: request_size is slot_size, depth
    /// slot_count, max_callers max_publishers, max_servers max_subscribers).
    void read_rpc_field(const Entry& e, ChannelSpec& spec, SpecSeen& seen) {
        if (!seen.rpc_key) {
            seen.rpc_key.emplace(e.name, at(e.key.Mark()));
        }
        if (e.name == "request_size") {
            seen.request_size = true;
            spec.slot_size = read_number(e, kSlotSizeRange).value_or(spec.slot_size);
        } else if (e.name == "reply_size") {
            seen.reply_size = true;
            spec.reply_slot_size = read_number(e, kSlotSizeRange).value_or(spec.reply_slot_size);
        } else if (e.name == "depth") {
            seen.depth = true;
            if (const auto depth = read_number(e, kSlotCountRange)) {
                if (auto checked = check_power_of_two(*depth); !checked) {
                    error(value_at(e), key_name(e) + " " + checked.error().detail);
                } else {
                    spec.slot_count = *depth;
                }
            }
        } else if (e.name == "max_servers") {
            seen.servers = true;
            spec.max_subscribers = read_u32(e, kEndpointRange).value_or(spec.max_subscribers);
        } else if (e.name == "max_callers") {
            seen.callers = true;
            spec.max_publishers = read_u32(e, kEndpointRange).value_or(spec.max_publishers);
        }
    }

    /// An rpc channel takes the rpc keys and ACL `serve` / `call`, the other kinds the ring
    /// keys and ACL `publish` / `subscribe`; fills in the rpc defaults.
    void check_rpc_keys(ChannelSpec& spec, const SpecSeen& seen) {
        const bool rpc = spec.kind == ChannelKind::rpc;
        const auto refuse = [&](const auto& key, const char* why) {
            if (key) {
                error(key->second, "'" + std::string{key->first} + "' " + why);
            }
        };
        if (!seen.kind) {
            return; // already reported: which keys fit is unknown
        }
        if (rpc) {
            refuse(seen.ring_key, "does not apply to an rpc channel (its keys are request_size, "
                                  "reply_size, depth, max_servers and max_callers)");
            refuse(seen.ring_acl, "does not apply to an rpc channel (its acl keys are serve and "
                                  "call)");
            spec.slot_size = seen.request_size ? spec.slot_size : kDefaultRpcRequestSize;
            spec.reply_slot_size = seen.reply_size ? spec.reply_slot_size : kDefaultRpcReplySize;
            spec.slot_count = seen.depth ? spec.slot_count : kDefaultRpcDepth;
            spec.max_subscribers = seen.servers ? spec.max_subscribers : kDefaultRpcServers;
            spec.max_publishers = seen.callers ? spec.max_publishers : kDefaultRpcCallers;
            spec.overflow = Overflow::block;
        } else {
            refuse(seen.rpc_key, "applies to rpc channels only");
            refuse(seen.rpc_acl, "applies to rpc channels only (use publish / subscribe)");
            spec.reply_slot_size = 0;
        }
    }

    void read_acl(const Entry& section, ChannelAcl& acl, SpecSeen& seen) {
        for (const Entry& e : sub_entries(section, kAclKeys)) {
            const bool rpc_key = e.name == "serve" || e.name == "call";
            auto& first = rpc_key ? seen.rpc_acl : seen.ring_acl;
            if (!first) {
                first.emplace(e.name, at(e.key.Mark()));
            }
            AccessList& list =
                e.name == "publish" || e.name == "call" ? acl.publish : acl.subscribe;
            for (const Entry& a : sub_entries(e, kAccessKeys)) {
                read_access_entry(a, list, {});
            }
        }
    }

    // ---- bridges: ------------------------------------------------------------------------

    void read_bridges(const Entry& section) {
        if (section.value.IsNull()) {
            return;
        }
        if (!section.value.IsSequence()) {
            error(value_at(section), "'bridges' must be a list of bridges (lines starting with "
                                     "'- name:'), not " +
                                         describe(section.value));
            return;
        }
        for (const YAML::Node& item : section.value) {
            read_bridge(item, section);
        }
    }

    void read_bridge(const YAML::Node& item, const Entry& section) {
        if (!item.IsMap()) {
            error(item.IsNull() ? value_at(section) : at(item.Mark()),
                  "each entry of 'bridges' must be a mapping with at least 'name' and 'connect' "
                  "or 'listen', not " +
                      describe(item));
            return;
        }
        ConfiguredBridge bridge;
        bool name_ok = false;
        bool address_ok = false;
        std::optional<ConfigLocation> connect_at;
        std::optional<ConfigLocation> listen_at;
        std::optional<ConfigLocation> require_at;
        bool has_lists = false;
        std::vector<std::string_view> suggested;
        // A NATS bridge (docs/nats.md) is told by its address, wherever `connect:` stands
        // among the keys: its other keys are read its own way.
        std::optional<gateway::NatsBridgeConfig> nats;
        if (names_nats_servers(item)) {
            nats.emplace();
        }
        for (const Entry& e : entries(item, kBridgeKeys, &suggested)) {
            if (e.name == "name") {
                bridge.where = value_at(e);
                if (const auto text = scalar(e, "a bridge name")) {
                    if (auto checked = check_name(*text, "bridge name"); !checked) {
                        error(value_at(e), checked.error().detail);
                    } else {
                        bridge.name = *text;
                        name_ok = true;
                    }
                }
            } else if (e.name == "connect" || e.name == "listen") {
                (e.name == "connect" ? connect_at : listen_at) = value_at(e);
                bridge.listen = e.name == "listen";
                if (!nats) {
                    address_ok = read_link_address(e, bridge.address);
                } else if (bridge.listen) {
                    error(value_at(e), "a NATS bridge connects to its servers: write 'connect:' "
                                       "rather than 'listen:'");
                } else {
                    address_ok = read_nats_servers(e, bridge.address, *nats);
                }
            } else if (e.name == "secret_file") {
                if (nats) {
                    error(at(e.key.Mark()), "'secret_file' applies to tcp links; a NATS bridge "
                                            "authenticates with 'nats: {credentials: FILE}'");
                    continue;
                }
                bridge.secret_where = value_at(e);
                bridge.secret_file = read_absolute_path(e);
            } else if (e.name == "tls" || e.name == "require") {
                if (nats) {
                    error(at(e.key.Mark()),
                          quote(e.name) + " applies to tcp links; a NATS bridge's TLS goes in "
                                          "'nats: {tls: {cert: FILE, key: FILE, ca: FILE}}' and "
                                          "its identity in 'nats: {credentials: FILE}'");
                    continue;
                }
                if (e.name == "require") {
                    require_at = value_at(e);
                    if (const auto index = read_choice(e, "requirement", kPeerAuthNames)) {
                        bridge.require = kPeerAuths[*index];
                    }
                    continue;
                }
                bridge.tls_where.section = value_at(e);
                read_bridge_tls(e, bridge);
            } else if (e.name == "nats") {
                if (!nats) {
                    error(at(e.key.Mark()), "'nats' applies only to a bridge whose 'connect' "
                                            "names NATS servers (nats://HOST:PORT, tls://...)");
                    continue;
                }
                read_nats_settings(e, *nats);
            } else {
                has_lists = true;
                if (nats) {
                    read_nats_rules(e, bridge, *nats, e.name == "export");
                } else {
                    read_bridge_rules(e, e.name == "export" ? bridge.exports : bridge.imports,
                                      e.name == "export");
                }
            }
        }
        if (nats) {
            nats->name = bridge.name;
            bridge.nats = std::move(nats);
        }
        const ConfigLocation item_at = at(item.Mark());
        const auto misspelt = [&](std::string_view key) {
            return std::find(suggested.begin(), suggested.end(), key) != suggested.end();
        };
        const std::string named = name_ok ? "bridge " + quote(bridge.name) : "bridge";
        if (bridge.where.line == 0 && !misspelt("name")) {
            error(item_at, "bridge has no 'name'");
        }
        if (connect_at && listen_at) {
            error(*listen_at, named + " has both 'connect' and 'listen'; an end either connects "
                                      "or listens (the peer has the other)");
            address_ok = false;
        } else if (!connect_at && !listen_at && !misspelt("connect") && !misspelt("listen")) {
            error(item_at, named + " has neither 'connect' nor 'listen' (such as connect: "
                                   "tcp://ground.example:7411)");
        }
        if (!bridge.nats) {
            check_bridge_auth(bridge, named,
                              address_ok ? (connect_at ? connect_at : listen_at) : std::nullopt,
                              require_at, misspelt);
        }
        if (!has_lists && !misspelt("export") && !misspelt("import")) {
            error(item_at, named + " has neither 'export' nor 'import': it would move nothing");
        }
        if (!name_ok || !address_ok) {
            return;
        }
        for (const ConfiguredBridge& earlier : config_.bridges) {
            if (earlier.name == bridge.name) {
                error(bridge.where, "duplicate bridge name " + quote(bridge.name) +
                                        " (first defined at " + other_place(earlier.where) + ")");
                return;
            }
            if (const auto clash = shared_endpoint(earlier, bridge)) {
                error(*(connect_at ? connect_at : listen_at), named + " " + *clash + " as bridge " +
                                                                  quote(earlier.name) + " (at " +
                                                                  other_place(earlier.where) + ")");
                return;
            }
        }
        config_.bridges.push_back(std::move(bridge));
    }

    /// `tls:`: cert, key and ca (absolute paths, all three), and an optional peer_subject.
    void read_bridge_tls(const Entry& e, ConfiguredBridge& bridge) {
        if (e.value.IsNull()) {
            error(value_at(e), "'tls' needs 'cert', 'key' and 'ca' (this end's certificate, its "
                               "key, and the CA the peer's certificate must chain to)");
            return;
        }
        gateway::TlsCredentials tls;
        std::string missing;
        const std::size_t errors_before = state_.errors.size();
        bool cert = false;
        bool key = false;
        bool ca = false;
        for (const Entry& f : sub_entries(e, kBridgeTlsKeys)) {
            if (f.name == "peer_subject") {
                if (const auto text = scalar(f, "a name the peer's certificate carries")) {
                    if (text->empty() || text->find('\0') != std::string::npos) {
                        error(value_at(f), "'peer_subject' must be a name (a common name, a DNS "
                                           "name or an address, or a whole subject such as "
                                           "CN=ground,O=example), not " +
                                               quote(*text));
                    } else {
                        tls.peer_subject = *text;
                    }
                }
                continue;
            }
            const auto path = read_absolute_path(f);
            if (!path) {
                continue;
            }
            if (f.name == "cert") {
                tls.cert_file = path->native();
                bridge.tls_where.cert = value_at(f);
                cert = true;
            } else if (f.name == "key") {
                tls.key_file = path->native();
                bridge.tls_where.key = value_at(f);
                key = true;
            } else {
                tls.ca_file = path->native();
                bridge.tls_where.ca = value_at(f);
                ca = true;
            }
        }
        if (state_.errors.size() != errors_before) {
            return;
        }
        for (const auto& [given, name] :
             {std::pair{cert, "'cert'"}, std::pair{key, "'key'"}, std::pair{ca, "'ca'"}}) {
            if (!given) {
                missing += (missing.empty() ? "" : ", ") + std::string{name};
            }
        }
        if (!missing.empty()) {
            error(value_at(e), "'tls' needs 'cert', 'key' and 'ca'; missing " + missing);
            return;
        }
        bridge.tls = std::move(tls);
    }

    /// How a bridge authenticates its peer: tls only on tcp, a tcp bridge has tls or a secret
    /// (or both), and `require` names only what the bridge has. `address_at`: the address's
    /// value if it parsed.
    template <typename Misspelt>
    void check_bridge_auth(const ConfiguredBridge& bridge, const std::string& named,
                           const std::optional<ConfigLocation>& address_at,
                           const std::optional<ConfigLocation>& require_at,
                           const Misspelt& misspelt) {
        const bool tls_given = bridge.tls_where.section.line != 0;
        const bool secret_given = bridge.secret_file || bridge.secret_where.line != 0;
        if (!address_at) {
            return;
        }
        const bool tcp = bridge.address.kind == gateway::LinkAddress::Kind::tcp;
        if (tls_given && !tcp) {
            error(bridge.tls_where.section,
                  "'tls' applies to tcp links only: an exec: link is secured by its command "
                  "(such as ssh), a fifo: pair by its files' modes");
            return;
        }
        if (tcp && !tls_given && !secret_given && !misspelt("secret_file") && !misspelt("tls")) {
            error(*address_at, named + " links over tcp and needs 'tls' (certificates), a "
                                       "'secret_file' (a 0600 file, the same on both ends), or "
                                       "both");
            return;
        }
        if (require_at && bridge.require) {
            if (auto c = gateway::check_peer_auth(*bridge.require, tls_given, secret_given); !c) {
                error(*require_at, c.error().detail);
            }
        }
    }

    /// What two bridges would fight over, if anything: a TCP port both listen on, or a FIFO.
    static std::optional<std::string> shared_endpoint(const ConfiguredBridge& a,
                                                      const ConfiguredBridge& b) {
        using Kind = gateway::LinkAddress::Kind;
        if (a.address.kind == Kind::tcp && b.address.kind == Kind::tcp && a.listen && b.listen &&
            a.address.port != 0 && a.address.port == b.address.port &&
            a.address.host == b.address.host) {
            return "listens on the same address " + quote(b.address.text);
        }
        if (a.address.kind == Kind::fifo && b.address.kind == Kind::fifo) {
            for (const auto* path : {&b.address.in_path, &b.address.out_path}) {
                if (*path == a.address.in_path || *path == a.address.out_path) {
                    return "uses the FIFO " + quote(*path);
                }
            }
        }
        return std::nullopt;
    }

    // ---- NATS bridges (docs/nats.md) -------------------------------------------------------

    /// Whether bridge `item`'s `connect:` (or, wrongly, `listen:`) names NATS servers.
    static bool names_nats_servers(const YAML::Node& item) {
        for (const auto& pair : item) {
            if (pair.first.IsScalar() &&
                (pair.first.Scalar() == "connect" || pair.first.Scalar() == "listen") &&
                pair.second.IsScalar() && gateway::is_nats_address(pair.second.Scalar())) {
                return true;
            }
        }
        return false;
    }

    /// A NATS bridge's `connect:`: comma-separated server URLs, checked by the gateway.
    bool read_nats_servers(const Entry& e, gateway::LinkAddress& address,
                           gateway::NatsBridgeConfig& nats) {
        const auto text = scalar(e, "NATS server URLs, such as nats://HOST:4222,nats://HOST2:4222");
        if (!text) {
            return false;
        }
        auto servers = gateway::parse_nats_servers(*text);
        if (!servers) {
            error(value_at(e), key_name(e) + ": " + servers.error().detail);
            return false;
        }
        if (!kNatsBuilt) {
            error(value_at(e), key_name(e) + " names NATS servers, but this shmbusd was built "
                                             "without NATS support (libnats; Debian: "
                                             "libnats-dev)");
            return false;
        }
        // What logs, reload summaries and `shmbusctl bridges` show: no password.
        for (const auto& url : servers.value()) {
            address.text += (address.text.empty() ? "" : ",") + gateway::redact_nats_url(url);
        }
        nats.servers = std::move(servers.value());
        return true;
    }

    /// The `nats:` block: credentials, tls {cert, key, ca}, jetstream, ack_wait, max_payload.
    void read_nats_settings(const Entry& section, gateway::NatsBridgeConfig& nats) {
        for (const Entry& e : sub_entries(section, kNatsKeys)) {
            if (e.name == "credentials") {
                if (const auto path = read_absolute_path(e)) {
                    nats.credentials_file = path->native();
                }
            } else if (e.name == "tls") {
                // `tls:` with nothing under it: TLS, trusting the system's certificates.
                nats.tls.emplace();
                std::optional<ConfigLocation> cert_at;
                std::optional<ConfigLocation> key_at;
                for (const Entry& t : sub_entries(e, kNatsTlsKeys)) {
                    const auto path = read_absolute_path(t);
                    if (!path) {
                        continue;
                    }
                    if (t.name == "cert") {
                        nats.tls->cert_file = path->native();
                        cert_at = value_at(t);
                    } else if (t.name == "key") {
                        nats.tls->key_file = path->native();
                        key_at = value_at(t);
                    } else {
                        nats.tls->ca_file = path->native();
                    }
                }
                if (cert_at && !key_at) {
                    error(*cert_at, "'cert' needs 'key' beside it (the certificate's private key)");
                } else if (key_at && !cert_at) {
                    error(*key_at, "'key' needs 'cert' beside it (the client certificate)");
                }
            } else if (e.name == "jetstream") {
                nats.jetstream = read_bool(e).value_or(nats.jetstream);
            } else if (e.name == "ack_wait") {
                nats.ack_wait = read_duration(e, kAckWaitRange).value_or(nats.ack_wait);
            } else if (e.name == "max_payload") {
                nats.max_payload = read_number(e, kNatsMaxPayloadRange).value_or(nats.max_payload);
            }
        }
    }

    /// A NATS bridge's `export:` ({channel, subject} entries) or `import:` ({subject,
    /// channel, durable} entries), each checked by the gateway's own rules.
    void read_nats_rules(const Entry& e, ConfiguredBridge& bridge, gateway::NatsBridgeConfig& nats,
                         bool exporting) {
        const std::string example =
            exporting ? "{channel: telemetry, subject: shmbus.robot1.telemetry}"
                      : "{subject: \"shmbus.*.telemetry\", channel: fleet/telemetry}";
        if (e.value.IsNull()) {
            return;
        }
        if (!e.value.IsSequence()) {
            error(value_at(e), key_name(e) +
                                   " of a NATS bridge must be a list of mappings such "
                                   "as " +
                                   example + ", not " + describe(e.value));
            return;
        }
        for (const YAML::Node& item : e.value) {
            const ConfigLocation where = item.IsNull() ? value_at(e) : at(item.Mark());
            if (!item.IsMap()) {
                error(where, "each entry of " + key_name(e) +
                                 " of a NATS bridge must be a mapping such as " + example +
                                 ", not " + describe(item));
                continue;
            }
            const std::size_t errors_before = state_.errors.size();
            std::vector<std::string_view> suggested;
            std::string channel;
            std::string subject;
            std::string durable;
            for (const Entry& f :
                 entries(item,
                         exporting ? std::span<const std::string_view>{kNatsExportKeys}
                                   : std::span<const std::string_view>{kNatsImportKeys},
                         &suggested)) {
                const auto text = scalar(f, f.name == "channel"   ? "a channel name"
                                            : f.name == "subject" ? "a NATS subject"
                                                                  : "a durable consumer's name");
                if (!text) {
                    continue;
                }
                (f.name == "channel" ? channel : f.name == "subject" ? subject : durable) = *text;
            }
            for (const std::string_view key :
                 {std::string_view{"channel"}, std::string_view{"subject"}}) {
                const bool given = key == "channel" ? !channel.empty() : !subject.empty();
                if (!given && state_.errors.size() == errors_before &&
                    std::find(suggested.begin(), suggested.end(), key) == suggested.end()) {
                    error(where, "entry has no '" + std::string{key} + "'");
                }
            }
            if (state_.errors.size() != errors_before) {
                continue;
            }
            if (exporting) {
                gateway::NatsExport rule{channel, subject};
                if (auto valid = gateway::validate_export(rule); !valid) {
                    error(where, key_name(e) + ": " + valid.error().detail);
                    continue;
                }
                nats.exports.push_back(std::move(rule));
                bridge.nats_export_where.push_back(where);
            } else {
                gateway::NatsImport rule{subject, channel, durable};
                if (auto valid = gateway::validate_import(rule); !valid) {
                    error(where, key_name(e) + ": " + valid.error().detail);
                    continue;
                }
                nats.imports.push_back(std::move(rule));
            }
        }
    }

    /// `connect:` or `listen:` through the gateway's own parser, so that every address the
    /// gateway can open (and only those) is accepted.
    bool read_link_address(const Entry& e, gateway::LinkAddress& address) {
        const auto text = scalar(e, "a link address, such as tcp://HOST:PORT or fifo:IN,OUT");
        if (!text) {
            return false;
        }
        auto parsed = gateway::parse_link(*text);
        if (!parsed) {
            error(value_at(e), key_name(e) + ": " + parsed.error().detail);
            return false;
        }
        address = std::move(parsed.value());
        return true;
    }

    /// `export:` or `import:`: a list of channel names or globs, or mappings with `channel`.
    void read_bridge_rules(const Entry& e, std::vector<gateway::ChannelRule>& rules,
                           bool exporting) {
        if (e.value.IsNull()) {
            return;
        }
        if (!e.value.IsSequence()) {
            error(value_at(e), key_name(e) +
                                   " must be a list of channel names or globs, or of mappings "
                                   "such as {channel: jobs, as: ground/jobs}, not " +
                                   describe(e.value));
            return;
        }
        for (const YAML::Node& item : e.value) {
            const ConfigLocation where = item.IsNull() ? value_at(e) : at(item.Mark());
            gateway::ChannelRule rule;
            if (item.IsScalar()) {
                rule.channel = item.Scalar();
            } else if (item.IsMap()) {
                if (!read_bridge_rule(item, rule, exporting, where)) {
                    continue;
                }
            } else {
                error(where, "each entry of " + key_name(e) +
                                 " must be a channel name or glob, or a mapping with 'channel', "
                                 "not " +
                                 describe(item));
                continue;
            }
            if (auto valid = gateway::validate_rule(rule); !valid) {
                error(where, key_name(e) + ": " + valid.error().detail);
                continue;
            }
            rules.push_back(std::move(rule));
        }
    }

    /// One `{channel, as, on_link_down, block_timeout}` entry; false after an error.
    bool read_bridge_rule(const YAML::Node& item, gateway::ChannelRule& rule, bool exporting,
                          const ConfigLocation& where) {
        const std::size_t errors_before = state_.errors.size();
        bool has_channel = false;
        std::optional<ConfigLocation> timeout_at;
        std::vector<std::string_view> suggested;
        for (const Entry& f : entries(item, kBridgeRuleKeys, &suggested)) {
            if (f.name == "channel" || f.name == "as") {
                if (const auto text = scalar(f, "a channel name or glob")) {
                    (f.name == "channel" ? rule.channel : rule.as) = *text;
                    has_channel = has_channel || f.name == "channel";
                }
            } else if (!exporting) {
                error(at(f.key.Mark()),
                      key_name(f) + " applies to exports only: the exporting end decides what a "
                                    "dead link does to its publishers");
            } else if (f.name == "on_link_down") {
                if (const auto index = read_choice(f, "link-down policy", kLinkDownNames)) {
                    rule.on_link_down = kLinkDownPolicies[*index];
                }
            } else if (f.name == "block_timeout") {
                timeout_at = value_at(f);
                rule.block_timeout =
                    read_duration(f, kBlockTimeoutRange).value_or(rule.block_timeout);
            }
        }
        if (!has_channel && state_.errors.size() == errors_before &&
            std::find(suggested.begin(), suggested.end(), "channel") == suggested.end()) {
            error(where, "entry has no 'channel'");
        }
        if (timeout_at && rule.on_link_down != gateway::LinkDownPolicy::block &&
            state_.errors.size() == errors_before) {
            error(*timeout_at, "'block_timeout' applies only with 'on_link_down: block'");
        }
        return state_.errors.size() == errors_before;
    }

    std::string origin_;
    MergeState& state_;
    Config& config_;
};

/// A first pass over a YAML stream's events, before building any node tree, for two things
/// YAML::LoadAll() gets wrong in yaml-cpp 0.7 (Debian bookworm):
///  - a stray ',' outside a flow collection (", x", "{a: 1}, x") is never consumed: the parser
///    reports an empty document at the same place again and again, and LoadAll() loops for
///    ever, allocating a node each time (jbeder/yaml-cpp#1040, fixed upstream in 2024 by
///    #1319). A document that starts where the previous one started is that loop: we stop and
///    report it. Termination: every other document starts further on in a finite text.
///  - a second document, which a configuration file must not have (only the first would be
///    read).
class StreamScan final : public YAML::EventHandler {
public:
    /// Where the parser stopped making progress, if it did.
    std::optional<YAML::Mark> stuck;
    /// Where the first document after the first one with any content starts, if there is one.
    std::optional<YAML::Mark> second_document;

    /// Scans `text`. Throws YAML::Exception on a syntax error.
    void scan(const std::string& text) {
        std::istringstream stream(text);
        YAML::Parser parser(stream);
        while (!stuck && !second_document && parser.HandleNextDocument(*this)) {
        }
    }

    void OnDocumentStart(const YAML::Mark& mark) override {
        if (documents_ > 0 && mark.pos == last_start_.pos) {
            stuck = mark;
        }
        last_start_ = mark;
        ++documents_;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override { content(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  const std::string& /*value*/) override {
        content(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/,
                         YAML::anchor_t /*anchor*/, YAML::EmitterStyle::value /*style*/) override {
        content(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                    YAML::EmitterStyle::value /*style*/) override {
        content(mark);
    }
    void OnMapEnd() override {}

private:
    void content(const YAML::Mark& mark) {
        if (documents_ > 1 && !second_document) {
            second_document = mark;
        }
    }

    std::size_t documents_{0};
    YAML::Mark last_start_;
};

} // namespace

void read_source(const ConfigSource& source, MergeState& state) {
    DocumentReader reader(source.origin, state);
    if (const std::size_t nul = source.text.find('\0'); nul != std::string::npos) {
        // yaml-cpp would take a NUL byte as a sign of UTF-16 and read garbage.
        const std::string_view before = std::string_view(source.text).substr(0, nul);
        const std::size_t line =
            static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
        const std::size_t line_start = before.rfind('\n');
        const std::size_t column =
            line_start == std::string_view::npos ? nul : nul - line_start - 1;
        reader.error(ConfigLocation{source.origin, static_cast<std::uint32_t>(line + 1),
                                    static_cast<std::uint32_t>(column + 1)},
                     "a NUL byte is not allowed; a configuration file is UTF-8 text");
        return;
    }
    try {
        StreamScan scan;
        scan.scan(source.text);
        if (scan.stuck) {
            const auto pos = static_cast<std::size_t>(std::max(scan.stuck->pos, 0));
            reader.error(reader.at(*scan.stuck),
                         "unexpected " + quote(std::string_view(source.text).substr(pos, 1)));
            return;
        }
        if (scan.second_document) {
            reader.error(reader.at(*scan.second_document),
                         "a configuration file holds one YAML document; remove this second one "
                         "or move it to its own file");
        }
        // Load() builds the first document only: never the LoadAll() loop described above.
        reader.read(YAML::Load(source.text));
    } catch (const YAML::Exception& e) {
        reader.error(reader.at(e.mark), e.msg.empty() ? std::string{"invalid YAML"} : e.msg);
    }
}

} // namespace shmbus::daemon
