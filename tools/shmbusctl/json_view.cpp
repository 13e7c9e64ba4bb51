// The --json documents: see json_view.hpp. Field names here are documented in
// docs/shmbusctl.md; change both together, and only by adding.
#include "json_view.hpp"

#include <cstdio>
#include <string>

namespace shmbusctl {

nlohmann::json channel_json(const shmbus::ChannelSummary& channel,
                            std::optional<double> rate_per_s) {
    const shmbus::ChannelInfo& i = channel.info;
    const shmbus::ChannelStats& s = channel.stats;
    nlohmann::json j;
    j["name"] = i.name;
    j["kind"] = std::string{shmbus::to_string(i.kind)};
    j["overflow"] = std::string{shmbus::to_string(i.overflow)};
    j["slot_size"] = i.slot_size;
    j["slot_count"] = i.slot_count;
    j["max_publishers"] = i.max_publishers;
    j["max_subscribers"] = i.max_subscribers;
    // A string: a random 64-bit value that JSON readers holding numbers as doubles (jq,
    // JavaScript) would round above 2^53 (docs/shmbusctl.md).
    j["creation_id"] = std::to_string(i.creation_id);
    j["control_bytes"] = i.control_bytes;
    j["payload_bytes"] = i.payload_bytes;
    j["dynamic"] = channel.dynamic;
    j["publishers"] = s.publishers;
    j["subscribers"] = s.subscribers;
    j["published"] = s.published;
    j["consumed"] = s.consumed;
    j["dropped"] = s.dropped;
    j["abandoned"] = s.abandoned;
    j["redelivered"] = s.redelivered;
    j["corrupted"] = s.corrupted;
    j["data_waits"] = s.data_waits;
    j["data_wakes"] = s.data_wakes;
    j["space_waits"] = s.space_waits;
    j["space_wakes"] = s.space_wakes;
    j["depth"] = s.depth;
    j["high_water"] = s.high_water;
    j["rate_per_s"] = rate_per_s ? nlohmann::json(*rate_per_s) : nlohmann::json(nullptr);
    if (i.kind == shmbus::ChannelKind::rpc) {
        // The same counters under their rpc names (see the fields above they come from).
        j["rpc"] = {{"callers", s.publishers},  {"max_callers", i.max_publishers},
                    {"servers", s.subscribers}, {"max_servers", i.max_subscribers},
                    {"calls", s.published},     {"replies", s.consumed},
                    {"failures", s.abandoned},  {"late_replies", s.dropped},
                    {"in_flight", s.depth},     {"request_size", i.slot_size},
                    {"depth", i.slot_count}};
    }
    if (i.kind == shmbus::ChannelKind::pool) {
        // The same counters under their pool names (docs/memory-layout.md).
        j["pool"] = {{"writers", s.publishers},     {"max_writers", i.max_publishers},
                     {"readers", s.subscribers},    {"max_readers", i.max_subscribers},
                     {"block_size", i.slot_size},   {"blocks", i.slot_count},
                     {"in_use", s.depth},           {"in_use_high_water", s.high_water},
                     {"in_transit", s.redelivered}, {"acquired", s.published},
                     {"returned", s.consumed},      {"reclaimed", s.abandoned},
                     {"dropped", s.dropped},        {"exhausted", s.data_waits}};
    }
    return j;
}

std::uint64_t subscriber_lag(const shmbus::EndpointDetail& endpoint,
                             const shmbus::ChannelSummary& channel) noexcept {
    if (endpoint.role != shmbus::Role::subscriber ||
        channel.info.kind != shmbus::ChannelKind::broadcast) {
        return 0;
    }
    const std::uint64_t published = channel.stats.published;
    return published > endpoint.cursor ? published - endpoint.cursor : 0;
}

nlohmann::json endpoint_json(const shmbus::EndpointDetail& e,
                             const shmbus::ChannelSummary& channel) {
    nlohmann::json j;
    j["role"] = std::string{shmbus::to_string(e.role)};
    j["index"] = e.index;
    j["client_id"] = e.client_id;
    j["pid"] = e.pid;
    j["uid"] = e.uid;
    j["client_name"] = e.client_name;
    const bool reader =
        e.role == shmbus::Role::subscriber && channel.info.kind == shmbus::ChannelKind::broadcast;
    j["cursor"] = reader ? nlohmann::json(e.cursor) : nlohmann::json(nullptr);
    j["lag"] = reader ? nlohmann::json(subscriber_lag(e, channel)) : nlohmann::json(nullptr);
    j["lost"] = reader ? nlohmann::json(e.lost) : nlohmann::json(nullptr);
    j["blocks"] = channel.info.kind == shmbus::ChannelKind::pool ? nlohmann::json(e.held)
                                                                 : nlohmann::json(nullptr);
    return j;
}

nlohmann::json client_json(const shmbus::ClientSummary& c) {
    nlohmann::json j;
    j["client_id"] = c.client_id;
    j["pid"] = c.pid;
    j["uid"] = c.uid;
    j["gid"] = c.gid;
    j["name"] = c.name;
    j["endpoints"] = c.endpoints;
    j["connected_since_ms"] = c.connected_since_ms;
    return j;
}

std::string writers_level_name(std::size_t level, std::size_t levels) {
    return level + 1 == levels ? "control" : std::to_string(level);
}

BridgeTotals bridge_totals(const shmbus::BridgeSummary& bridge, bool exporting) {
    BridgeTotals t;
    for (const auto& s : bridge.streams) {
        if (s.exporting == exporting) {
            t.channels += 1;
            t.messages += s.messages;
            t.bytes += s.bytes;
            t.lost += s.lost;
            t.credits += s.credits;
        }
    }
    return t;
}

nlohmann::json bridge_json(const shmbus::BridgeSummary& b) {
    const bool nats = b.transport == "nats";
    const bool live = b.version != 0 || (nats && !b.peer.empty());
    nlohmann::json j;
    j["name"] = b.name;
    j["transport"] = b.transport.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.transport);
    j["state"] = b.state;
    j["end"] = b.listen ? "listen" : "connect";
    j["address"] = b.address;
    j["listening_port"] = b.listen && b.listening_port != 0 ? nlohmann::json(b.listening_port)
                                                            : nlohmann::json(nullptr);
    j["peer"] = live ? nlohmann::json(b.peer) : nlohmann::json(nullptr);
    j["peer_node"] = live && !nats ? nlohmann::json(b.peer_node) : nlohmann::json(nullptr);
    j["incarnation"] = live && !nats ? nlohmann::json(b.peer_incarnation) : nlohmann::json(nullptr);
    j["version"] = live && !nats ? nlohmann::json(b.version) : nlohmann::json(nullptr);
    if (nats) {
        j["nats"] = {{"known_servers", b.known_servers},
                     {"pending_bytes", b.pending_bytes},
                     {"duplicates", b.duplicates},
                     {"looped", b.looped}};
    }
    j["loss"] = bridge_loss_json(b);
    j["rtt_ns"] = b.rtt_ns != 0 ? nlohmann::json(b.rtt_ns) : nlohmann::json(nullptr);
    j["reconnects"] = b.reconnects;
    j["last_error"] = b.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.last_error);
    for (const bool out : {true, false}) {
        const BridgeTotals t = bridge_totals(b, out);
        j[out ? "out" : "in"] = {{"channels", t.channels},
                                 {"messages", t.messages},
                                 {"bytes", t.bytes},
                                 {"lost", t.lost},
                                 {"credits", t.credits}};
    }
    j["out"]["fragments"] = b.fragments_sent;
    j["in"]["fragments"] = b.fragments_received;
    j["streams"] = nlohmann::json::array();
    for (const auto& s : b.streams) {
        const bool scheduled = s.exporting && !s.on_congestion.empty();
        j["streams"].push_back(
            {{"channel", s.local_name},
             {"wire_name", s.wire_name},
             {"direction", s.exporting ? "out" : "in"},
             {"messages", s.messages},
             {"bytes", s.bytes},
             {"lost", s.lost},
             {"credits", s.credits},
             {"on_congestion",
              scheduled ? nlohmann::json(s.on_congestion) : nlohmann::json(nullptr)},
             {"priority", scheduled ? nlohmann::json(s.priority) : nlohmann::json(nullptr)}});
    }
    // Writers waiting for the link by priority, "0".."7" and "control" (docs/shmbusctl.md).
    if (!b.writers_waiting.empty()) {
        nlohmann::json now = nlohmann::json::object();
        nlohmann::json most = nlohmann::json::object();
        for (std::size_t level = 0; level < b.writers_waiting.size(); ++level) {
            const std::string key = writers_level_name(level, b.writers_waiting.size());
            now[key] = b.writers_waiting[level];
            most[key] = level < b.writers_waiting_most.size() ? b.writers_waiting_most[level] : 0;
        }
        j["writers_waiting"] = {{"now", now}, {"most", most}};
    } else {
        j["writers_waiting"] = nullptr;
    }
    j["block_timeouts"] = b.block_timeouts;
    return j;
}

nlohmann::json bridge_loss_json(const shmbus::BridgeSummary& b) {
    if (b.transport == "nats") {
        return nullptr; // its duplicates and loops are under "nats"
    }
    return {{"link_down", b.lost_link_down},    {"congestion", b.lost_congestion},
            {"type_refusals", b.type_refusals}, {"upstream", b.lost_upstream},
            {"duplicates", b.duplicates},       {"looped", b.looped}};
}

nlohmann::json status_json(const shmbus::DaemonStatus& s) {
    nlohmann::json j;
    j["daemon_version"] = s.daemon_version;
    j["protocol_version"] =
        std::to_string(s.protocol_major) + "." + std::to_string(s.protocol_minor);
    j["pid"] = s.pid;
    j["uptime_ms"] = s.uptime_ms;
    j["config_files"] = s.config_files;
    j["socket"] = s.socket_path;
    j["state_directory"] = s.state_directory;
    j["clients"] = s.clients;
    j["channels"] = s.channels;
    j["segment_bytes"] = s.segment_bytes;
    return j;
}

void print_json(const nlohmann::json& document) {
    const std::string text =
        document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fprintf(stdout, "%s\n", text.c_str());
}

} // namespace shmbusctl
