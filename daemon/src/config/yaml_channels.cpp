// The channels section of shmbusd.yaml: each channel's name, kind and geometry, the rpc keys
// and the ACL, read by DocumentReader (yaml_document.hpp). What a value may be is values.cpp's
// rule; the checks that need every source merged are load.cpp's.
#include "yaml_document.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <sstream>
#include <utility>

namespace shmbus::daemon::yaml {

void DocumentReader::read_spec_field(const Entry& e, ChannelSpec& spec, SpecSeen& seen) {
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

void DocumentReader::finish_spec(ChannelSpec& spec, const SpecSeen& seen) {
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
        spec.slot_size = spec.kind == ChannelKind::pool ? kDefaultBlockSize : kDefaultElementSize;
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

void DocumentReader::read_channels(const Entry& section) {
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

void DocumentReader::read_channel(const YAML::Node& item, const Entry& section) {
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
        } else if (e.name == "type") {
            read_channel_type(e, channel.type);
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
                           " has no 'kind' (expected " + join_choices(kKindNames, " or ") + ")");
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

bool DocumentReader::read_channel_name(const Entry& e, std::string& name) {
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

void DocumentReader::read_channel_type(const Entry& e, std::string& type) {
    const auto text = scalar(e, "a type name");
    if (!text) {
        return;
    }
    if (!gateway::type_name_ok(*text)) {
        error(value_at(e), "'type' " + quote(*text) + " is not a type name (1 to " +
                               std::to_string(gateway::kMaxTypeBytes) +
                               " visible ASCII characters, no spaces, such as "
                               "\"sensor_msgs/Imu@v2\")");
        return;
    }
    type = *text;
}

void DocumentReader::read_rpc_field(const Entry& e, ChannelSpec& spec, SpecSeen& seen) {
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

void DocumentReader::check_rpc_keys(ChannelSpec& spec, const SpecSeen& seen) {
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

void DocumentReader::read_acl(const Entry& section, ChannelAcl& acl, SpecSeen& seen) {
    for (const Entry& e : sub_entries(section, kAclKeys)) {
        const bool rpc_key = e.name == "serve" || e.name == "call";
        auto& first = rpc_key ? seen.rpc_acl : seen.ring_acl;
        if (!first) {
            first.emplace(e.name, at(e.key.Mark()));
        }
        AccessList& list = e.name == "publish" || e.name == "call" ? acl.publish : acl.subscribe;
        for (const Entry& a : sub_entries(e, kAccessKeys)) {
            read_access_entry(a, list, {});
        }
    }
}

} // namespace shmbus::daemon::yaml
