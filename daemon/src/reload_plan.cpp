// Reload as a plan. See reload_plan.hpp for the rules.
#include "reload_plan.hpp"

#include <set>

namespace shmbus::daemon {

namespace {

bool same_geometry(const ChannelSpec& a, const ChannelSpec& b) {
    return a.kind == b.kind && a.slot_size == b.slot_size && a.slot_count == b.slot_count &&
           a.overflow == b.overflow && a.max_publishers == b.max_publishers &&
           a.max_subscribers == b.max_subscribers && a.reply_slot_size == b.reply_slot_size;
}

std::string geometry_change(const ChannelSpec& from, const ChannelSpec& to) {
    std::vector<std::string> parts;
    auto add = [&](const char* key, const std::string& a, const std::string& b) {
        if (a != b) {
            parts.push_back(std::string{key} + " " + a + " -> " + b);
        }
    };
    add("kind", std::string{to_string(from.kind)}, std::string{to_string(to.kind)});
    add("slot_size", std::to_string(from.slot_size), std::to_string(to.slot_size));
    add("slot_count", std::to_string(from.slot_count), std::to_string(to.slot_count));
    add("overflow", std::string{to_string(from.overflow)}, std::string{to_string(to.overflow)});
    add("max_publishers", std::to_string(from.max_publishers), std::to_string(to.max_publishers));
    add("max_subscribers", std::to_string(from.max_subscribers),
        std::to_string(to.max_subscribers));
    add("reply_size", std::to_string(from.reply_slot_size), std::to_string(to.reply_slot_size));
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : ", ") + p;
    }
    return out;
}

/// Why a channel whose geometry changed cannot be re-created now; empty if it can.
std::string why_held(const RegisteredChannel& ch) {
    if (!ch.claims.empty() || !ch.supervisor.endpoints().empty()) {
        return "it has " + std::to_string(ch.claims.size()) + " endpoints open";
    }
    if (ch.stand_in) {
        return "clients of the daemon's previous run may still offer its segments back";
    }
    return {};
}

} // namespace

ReloadPlan plan_reload(const ChannelRegistry& registry, const Config& current, const Config& next) {
    ReloadPlan plan;
    // What the registry will hold once the steps so far are carried out.
    std::size_t channels = registry.size();
    std::uint64_t bytes = registry.total_bytes();
    std::set<std::string, std::less<>> wanted;
    for (const auto& cc : next.channels) {
        wanted.insert(cc.spec.name);
        ChannelChange change;
        change.config = cc;
        const RegisteredChannel* existing = registry.find(cc.spec.name);
        if (existing != nullptr && existing->origin.dynamic) {
            change.action = ReloadAction::dynamic_clash;
        } else if (existing != nullptr && same_geometry(existing->spec, cc.spec)) {
            change.action = existing->draining ? ReloadAction::undrain : ReloadAction::keep;
        } else if (existing != nullptr) {
            change.detail = geometry_change(existing->spec, cc.spec);
            change.why_not = why_held(*existing);
            if (!change.why_not.empty()) {
                change.action = ReloadAction::refuse_in_use;
            } else {
                channels -= 1;
                bytes -= existing->bytes();
                if (auto room = check_room(cc.spec, channels, bytes, next.limits); !room) {
                    change.action = ReloadAction::remove_no_room;
                    change.why_not = room.error().message();
                } else {
                    change.action = ReloadAction::recreate;
                }
            }
        } else if (auto room = check_room(cc.spec, channels, bytes, next.limits); !room) {
            change.action = ReloadAction::create_no_room;
            change.why_not = room.error().message();
        } else {
            change.action = ReloadAction::create;
        }
        if (change.action == ReloadAction::recreate || change.action == ReloadAction::create) {
            channels += 1;
            if (auto needed = channel_bytes(cc.spec)) {
                bytes += *needed; // check_room() computed it already: it cannot fail here
            }
        }
        plan.channels.push_back(std::move(change));
    }
    for (const RegisteredChannel* ch : registry.channels()) {
        if (!ch->origin.dynamic && !ch->draining && wanted.count(ch->info.name) == 0) {
            ChannelChange change;
            change.action = ReloadAction::drain;
            change.config.spec.name = ch->info.name;
            change.held = !ch->claims.empty();
            plan.channels.push_back(std::move(change));
        }
    }
    if (next.log_level != current.log_level) {
        plan.log_level = next.log_level;
    }
    plan.bridges = plan_bridges(current.bridges, next.bridges);
    return plan;
}

namespace {

/// What differs between two settings of one bridge; empty when nothing does.
std::string bridge_change(const ConfiguredBridge& from, const ConfiguredBridge& to) {
    std::vector<std::string> parts;
    const auto end = [](const ConfiguredBridge& b) {
        return std::string{b.listen ? "listen " : "connect "} + b.address.text;
    };
    if (from.listen != to.listen || from.address.text != to.address.text) {
        parts.push_back(end(from) + " -> " + end(to));
    }
    if (from.secret_file != to.secret_file || from.secret != to.secret) {
        parts.push_back("secret");
    }
    if (from.tls != to.tls) {
        parts.push_back("tls");
    }
    if (from.require != to.require) {
        parts.push_back("require");
    }
    if (from.credit_window != to.credit_window) {
        parts.push_back("credit_window");
    }
    if (from.nice != to.nice) {
        parts.push_back("nice");
    }
    if (from.address.receive_buffer != to.address.receive_buffer) {
        parts.push_back("receive_buffer");
    }
    if (from.exports != to.exports) {
        parts.push_back("export");
    }
    if (from.imports != to.imports) {
        parts.push_back("import");
    }
    if (from.nats.has_value() != to.nats.has_value()) {
        parts.push_back("transport");
    } else if (from.nats && to.nats) {
        // Everything but the lists, and the servers when the address above said they changed
        // (it shows them without passwords: a new password alone shows here).
        const bool servers_shown = from.address.text != to.address.text;
        const auto settings = [servers_shown](gateway::NatsBridgeConfig c) {
            if (servers_shown) {
                c.servers.clear();
            }
            c.exports.clear();
            c.imports.clear();
            return c;
        };
        if (settings(*from.nats) != settings(*to.nats)) {
            parts.push_back("nats");
        }
        if (from.nats->exports != to.nats->exports) {
            parts.push_back("export");
        }
        if (from.nats->imports != to.nats->imports) {
            parts.push_back("import");
        }
    }
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : ", ") + p;
    }
    return out;
}

} // namespace

std::vector<BridgeChange> plan_bridges(const std::vector<ConfiguredBridge>& current,
                                       const std::vector<ConfiguredBridge>& next) {
    std::vector<BridgeChange> changes;
    const auto find = [](const std::vector<ConfiguredBridge>& list,
                         std::string_view name) -> const ConfiguredBridge* {
        for (const auto& b : list) {
            if (b.name == name) {
                return &b;
            }
        }
        return nullptr;
    };
    // Removals first, so that a new bridge may take over what a removed one held (a port, a
    // FIFO pair) as soon as that one has let go.
    for (const auto& old : current) {
        if (find(next, old.name) == nullptr) {
            changes.push_back(BridgeChange{BridgeAction::remove, old, {}});
        }
    }
    for (const auto& b : next) {
        const ConfiguredBridge* old = find(current, b.name);
        if (old == nullptr) {
            changes.push_back(BridgeChange{BridgeAction::add, b, {}});
        } else if (std::string detail = bridge_change(*old, b); !detail.empty()) {
            changes.push_back(BridgeChange{BridgeAction::restart, b, std::move(detail)});
        }
    }
    return changes;
}

std::string describe(const BridgeChange& change) {
    const std::string bridge = "bridge '" + change.config.name + "'";
    switch (change.action) {
    case BridgeAction::add:
        return bridge + " added (" + (change.config.listen ? "listen " : "connect ") +
               change.config.address.text + ")";
    case BridgeAction::remove:
        return bridge + " removed";
    case BridgeAction::restart:
        return bridge + " restarted (" + change.detail + ")";
    }
    return {};
}

std::string describe(const ChannelChange& change) {
    const std::string channel = "channel '" + change.config.spec.name + "'";
    switch (change.action) {
    case ReloadAction::keep:
        return {};
    case ReloadAction::undrain:
        return channel + " kept (no longer draining)";
    case ReloadAction::dynamic_clash:
        return channel + " not applied: a dynamic channel of that name exists";
    case ReloadAction::refuse_in_use:
        return channel + " not changed (" + change.detail + "): " + change.why_not +
               "; the old channel keeps running";
    case ReloadAction::recreate:
        return channel + " re-created (" + change.detail + ")";
    case ReloadAction::remove_no_room:
        return channel + " removed but not re-created: " + change.why_not;
    case ReloadAction::create:
        return channel + " created";
    case ReloadAction::create_no_room:
        return channel + " not created: " + change.why_not;
    case ReloadAction::drain:
        return channel + " removed from the configuration" +
               (change.held ? "; it goes when its last client closes it" : "");
    }
    return {};
}

} // namespace shmbus::daemon
