// The bridges section of shmbusd.yaml: each bridge's link address, secret and TLS, and its
// export and import rules, read by DocumentReader (yaml_document.hpp) and checked against the
// gateway's own rules (gateway/bridge_rules.hpp) so that the daemon never starts a bridge the
// gateway would refuse.
#include "yaml_document.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <sstream>
#include <utility>

namespace shmbus::daemon::yaml {

void DocumentReader::read_bridges(const Entry& section) {
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

void DocumentReader::read_bridge(const YAML::Node& item, const Entry& section) {
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
    std::optional<ConfigLocation> receive_buffer_at;
    std::optional<int> receive_buffer; // `auto`: 0
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
                error(at(e.key.Mark()), quote(e.name) +
                                            " applies to tcp links; a NATS bridge's TLS goes in "
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
        } else if (e.name == "credit_window") {
            if (nats) {
                error(at(e.key.Mark()), "'credit_window' applies to links between shmbus "
                                        "daemons; a NATS bridge's flow is the servers'");
                continue;
            }
            bridge.credit_window = read_u32(e, kCreditWindowRange).value_or(bridge.credit_window);
        } else if (e.name == "nice") {
            if (nats) {
                error(at(e.key.Mark()), "'nice' applies to links between shmbus daemons; a "
                                        "NATS bridge's threads run at the daemon's priority");
                continue;
            }
            if (const auto levels = read_u32(e, kBridgeNiceRange)) {
                bridge.nice = static_cast<int>(*levels);
            }
        } else if (e.name == "receive_buffer") {
            if (nats) {
                error(at(e.key.Mark()), "'receive_buffer' applies to tcp links between shmbus "
                                        "daemons; a NATS bridge's sockets are libnats'");
                continue;
            }
            receive_buffer_at = at(e.key.Mark());
            if (e.value.IsScalar() && e.value.Scalar() == "auto") {
                receive_buffer = 0;
            } else if (const auto bytes = read_number(e, kReceiveBufferRange)) {
                receive_buffer = static_cast<int>(*bytes);
            }
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
    if (receive_buffer_at && address_ok && !bridge.nats &&
        bridge.address.kind != gateway::LinkAddress::Kind::tcp) {
        error(*receive_buffer_at, "'receive_buffer' applies to tcp links only: an exec: or "
                                  "fifo: link's buffers are its pipe's or its command's");
    } else if (receive_buffer) {
        bridge.address.receive_buffer = *receive_buffer;
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

void DocumentReader::read_bridge_tls(const Entry& e, ConfiguredBridge& bridge) {
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

template <typename Misspelt>
void DocumentReader::check_bridge_auth(const ConfiguredBridge& bridge, const std::string& named,
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

std::optional<std::string> DocumentReader::shared_endpoint(const ConfiguredBridge& a,
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

bool DocumentReader::names_nats_servers(const YAML::Node& item) {
    for (const auto& pair : item) {
        if (pair.first.IsScalar() &&
            (pair.first.Scalar() == "connect" || pair.first.Scalar() == "listen") &&
            pair.second.IsScalar() && gateway::is_nats_address(pair.second.Scalar())) {
            return true;
        }
    }
    return false;
}

bool DocumentReader::read_nats_servers(const Entry& e, gateway::LinkAddress& address,
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

void DocumentReader::read_nats_settings(const Entry& section, gateway::NatsBridgeConfig& nats) {
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

void DocumentReader::read_nats_rules(const Entry& e, ConfiguredBridge& bridge,
                                     gateway::NatsBridgeConfig& nats, bool exporting) {
    const std::string example = exporting
                                    ? "{channel: telemetry, subject: shmbus.robot1.telemetry}"
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
                             " of a NATS bridge must be a mapping such as " + example + ", not " +
                             describe(item));
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

bool DocumentReader::read_link_address(const Entry& e, gateway::LinkAddress& address) {
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

void DocumentReader::read_bridge_rules(const Entry& e, std::vector<gateway::ChannelRule>& rules,
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

bool DocumentReader::read_bridge_rule(const YAML::Node& item, gateway::ChannelRule& rule,
                                      bool exporting, const ConfigLocation& where) {
    const std::size_t errors_before = state_.errors.size();
    bool has_channel = false;
    std::optional<ConfigLocation> timeout_at;
    std::optional<ConfigLocation> congestion_at;
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
        } else if (f.name == "on_congestion") {
            if (const auto index = read_choice(f, "congestion policy", kCongestionNames)) {
                rule.on_congestion = kCongestionPolicies[*index];
                congestion_at = value_at(f);
            }
        } else if (f.name == "block_timeout") {
            timeout_at = value_at(f);
            rule.block_timeout = read_duration(f, kBlockTimeoutRange).value_or(rule.block_timeout);
        } else if (f.name == "priority") {
            if (const auto p = read_u32(f, kPriorityRange)) {
                rule.priority = static_cast<std::uint8_t>(*p);
            }
        }
    }
    if (rule.on_link_down == gateway::LinkDownPolicy::block) {
        // A loss-free export stays loss-free while the link is up.
        if (congestion_at && rule.on_congestion != gateway::CongestionPolicy::block) {
            error(*congestion_at,
                  "'on_congestion: " +
                      std::string{kCongestionNames[static_cast<std::size_t>(rule.on_congestion)]} +
                      "' cannot go with 'on_link_down: block', which loses nothing: leave "
                      "'on_congestion' out or make it 'block'");
        }
        rule.on_congestion = gateway::CongestionPolicy::block;
    }
    if (!has_channel && state_.errors.size() == errors_before &&
        std::find(suggested.begin(), suggested.end(), "channel") == suggested.end()) {
        error(where, "entry has no 'channel'");
    }
    if (timeout_at && rule.on_link_down != gateway::LinkDownPolicy::block &&
        rule.on_congestion != gateway::CongestionPolicy::block &&
        state_.errors.size() == errors_before) {
        error(*timeout_at, "'block_timeout' applies only with 'on_link_down: block' or "
                           "'on_congestion: block'");
    }
    return state_.errors.size() == errors_before;
}

} // namespace shmbus::daemon::yaml
