// DocumentReader: one YAML document onto a Config, reported at file:line:column.
//
// Internal to the configuration loader's YAML reader (yaml_reader.cpp, whose opening comment
// says how errors are collected, what marks mean and how sources merge). The reader's members
// are defined by subject: yaml_reader.cpp the walk and the typed scalar readers (numbers,
// durations, choices, paths, accounts) with the daemon, limits and dynamic_channels sections;
// yaml_channels.cpp the channels section (kinds, geometry, rpc keys, ACLs); yaml_bridges.cpp
// the bridges section (links, TLS, export and import rules). Only the files named yaml_*
// include yaml-cpp.
#pragma once

#include "schema.hpp"
#include "values.hpp"
#include "yaml_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmbus::daemon::yaml {

/// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
inline constexpr std::size_t kMaxSocketPathLength = 107;

/// Whether this build runs NATS bridges (the gateway found libnats): a configuration that
/// asks for one is refused otherwise, at the place that asks.
#if SHMBUS_HAVE_NATS
inline constexpr bool kNatsBuilt = true;
#else
inline constexpr bool kNatsBuilt = false;
#endif

/// "a list", "a mapping", "the value 'x'": what was found where something else was expected.
std::string describe(const YAML::Node& node);

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

    void read(const YAML::Node& root);

    /// Reports a problem at `where`.
    void error(ConfigLocation where, std::string message);

    /// A yaml-cpp mark as a 1-based location in this source.
    [[nodiscard]] ConfigLocation at(const YAML::Mark& mark) const;

private:
    /// Where to point at a value: the value itself, or its key when it is empty (a null value
    /// carries the mark of the token after it).
    [[nodiscard]] ConfigLocation value_at(const Entry& e) const;

    [[nodiscard]] static std::string key_name(const Entry& e);

    void record(std::string dotted, const Entry& e);

    /// "(first given at line 3, column 5)" for a place in this file, else with the file name.
    [[nodiscard]] std::string other_place(const ConfigLocation& where) const;

    /// The entries of mapping `map` with known keys, in file order. Reports keys that are not
    /// plain names, unknown keys (with a suggestion) and keys given twice; those are left out.
    /// The keys suggested for unknown ones are added to `suggested`, if given, so that a caller
    /// does not report a misspelt required key a second time as missing.
    std::vector<Entry> entries(const YAML::Node& map, std::span<const std::string_view> known,
                               std::vector<std::string_view>* suggested = nullptr);

    /// The entries of the mapping under `e`; none (after an error) if it is not a mapping.
    /// An empty value (`limits:` alone) is an empty mapping.
    std::vector<Entry> sub_entries(const Entry& e, std::span<const std::string_view> known);

    /// The text of scalar `e`, or nothing (after an error) if it is empty or not a scalar.
    std::optional<std::string> scalar(const Entry& e, std::string_view expected);

    std::optional<std::uint64_t> read_number(const Entry& e, const Range& range);

    std::optional<std::uint32_t> read_u32(const Entry& e, const Range& range);

    std::optional<std::chrono::milliseconds> read_duration(const Entry& e,
                                                           const DurationRange& range);

    /// `true` or `false`, in any case.
    std::optional<bool> read_bool(const Entry& e);

    /// One of `names` (exact spelling); its index.
    std::optional<std::size_t> read_choice(const Entry& e, std::string_view what,
                                           std::span<const std::string_view> names);

    std::optional<std::filesystem::path> read_absolute_path(const Entry& e);

    /// `users:` or `groups:` (a list of names or numeric ids) into `list`, replacing it.
    void read_accounts(const Entry& e, AccessList& list, bool users);

    /// The keys of a mapping with `users:` and `groups:` into `list`; `dotted` prefixes set_at.
    void read_access_entry(const Entry& e, AccessList& list, const std::string& dotted);

    void read_daemon(const Entry& section);

    void read_limits(const Entry& section);

    void read_client_limits(const Entry& section);

    void read_uid_limits(const Entry& section);

    void read_dynamic(const Entry& section);

    /// One of the kSpecKeys into `spec`.
    void read_spec_field(const Entry& e, ChannelSpec& spec, SpecSeen& seen);

    /// The rules of `spec`'s kind, once the whole mapping is read: a ring's slot_count is a
    /// power of two from 2; the shared-state kinds take their own defaults for what was left
    /// out, a counters channel's slot_size is fixed, and a pool has at most
    /// kMaxPoolEndpoints endpoints.
    void finish_spec(ChannelSpec& spec, const SpecSeen& seen);

    void read_channels(const Entry& section);

    void read_channel(const YAML::Node& item, const Entry& section);

    bool read_channel_name(const Entry& e, std::string& name);
    /// A channel's `type:` (gateway::type_name_ok()).
    void read_channel_type(const Entry& e, std::string& type);

    /// One of the kRpcKeys into `spec` (see ChannelSpec: request_size is slot_size, depth
    /// slot_count, max_callers max_publishers, max_servers max_subscribers).
    void read_rpc_field(const Entry& e, ChannelSpec& spec, SpecSeen& seen);

    /// An rpc channel takes the rpc keys and ACL `serve` / `call`, the other kinds the ring
    /// keys and ACL `publish` / `subscribe`; fills in the rpc defaults.
    void check_rpc_keys(ChannelSpec& spec, const SpecSeen& seen);

    void read_acl(const Entry& section, ChannelAcl& acl, SpecSeen& seen);

    // ---- bridges: ------------------------------------------------------------------------

    void read_bridges(const Entry& section);

    void read_bridge(const YAML::Node& item, const Entry& section);

    /// `tls:`: cert, key and ca (absolute paths, all three), and an optional peer_subject.
    void read_bridge_tls(const Entry& e, ConfiguredBridge& bridge);

    /// How a bridge authenticates its peer: tls only on tcp, a tcp bridge has tls or a secret
    /// (or both), and `require` names only what the bridge has. `address_at`: the address's
    /// value if it parsed.
    template <typename Misspelt>
    void check_bridge_auth(const ConfiguredBridge& bridge, const std::string& named,
                           const std::optional<ConfigLocation>& address_at,
                           const std::optional<ConfigLocation>& require_at,
                           const Misspelt& misspelt);

    /// What two bridges would fight over, if anything: a TCP port both listen on, or a FIFO.
    static std::optional<std::string> shared_endpoint(const ConfiguredBridge& a,
                                                      const ConfiguredBridge& b);

    // ---- NATS bridges (docs/nats.md) -------------------------------------------------------

    /// Whether bridge `item`'s `connect:` (or, wrongly, `listen:`) names NATS servers.
    static bool names_nats_servers(const YAML::Node& item);

    /// A NATS bridge's `connect:`: comma-separated server URLs, checked by the gateway.
    bool read_nats_servers(const Entry& e, gateway::LinkAddress& address,
                           gateway::NatsBridgeConfig& nats);

    /// The `nats:` block: credentials, tls {cert, key, ca}, jetstream, ack_wait, max_payload.
    void read_nats_settings(const Entry& section, gateway::NatsBridgeConfig& nats);

    /// A NATS bridge's `export:` ({channel, subject} entries) or `import:` ({subject,
    /// channel, durable} entries), each checked by the gateway's own rules.
    void read_nats_rules(const Entry& e, ConfiguredBridge& bridge, gateway::NatsBridgeConfig& nats,
                         bool exporting);

    /// `connect:` or `listen:` through the gateway's own parser, so that every address the
    /// gateway can open (and only those) is accepted.
    bool read_link_address(const Entry& e, gateway::LinkAddress& address);

    /// `export:` or `import:`: a list of channel names or globs, or mappings with `channel`.
    void read_bridge_rules(const Entry& e, std::vector<gateway::ChannelRule>& rules,
                           bool exporting);

    /// One `{channel, as, on_link_down, block_timeout}` entry; false after an error.
    bool read_bridge_rule(const YAML::Node& item, gateway::ChannelRule& rule, bool exporting,
                          const ConfigLocation& where);

    std::string origin_;
    MergeState& state_;
    Config& config_;
};

} // namespace shmbus::daemon::yaml
