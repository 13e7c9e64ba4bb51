// status, list, info, clients, stats, ping, reload: see inspect.hpp.
#include "inspect.hpp"

#include "format.hpp"
#include "json_view.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace shmbusctl {

namespace {

using Clock = std::chrono::steady_clock;

/// One reading of the discovery table and when it was taken.
struct Sample {
    std::vector<shmbus::ChannelSummary> channels;
    Clock::time_point at;
};

std::optional<Sample> take_sample(shmbus::Client& client, int& exit_code) {
    auto list = client.list_channels();
    if (!list) {
        exit_code = fail("cannot list channels", list.error(), ErrorSite::other);
        return std::nullopt;
    }
    return Sample{std::move(*list), Clock::now()};
}

/// Messages per second published on each channel between two samples; a channel absent
/// from `before`, or recreated since (another creation id), has no rate.
std::map<std::string, double> rates_between(const Sample& before, const Sample& after) {
    std::map<std::string, double> rates;
    const double seconds = std::chrono::duration<double>(after.at - before.at).count();
    if (seconds <= 0) {
        return rates;
    }
    for (const auto& a : after.channels) {
        for (const auto& b : before.channels) {
            if (a.info.name == b.info.name && a.info.creation_id == b.info.creation_id) {
                const std::uint64_t delta = a.stats.published >= b.stats.published
                                                ? a.stats.published - b.stats.published
                                                : 0;
                rates[a.info.name] = static_cast<double>(delta) / seconds;
            }
        }
    }
    return rates;
}

std::optional<double> rate_of(const std::map<std::string, double>& rates, const std::string& name) {
    const auto it = rates.find(name);
    return it == rates.end() ? std::nullopt : std::optional<double>{it->second};
}

/// Sleeps `seconds`; false if a signal (SIGINT) ended the sleep early.
bool pause_for(double seconds) {
    const auto ns = static_cast<long long>(seconds * 1e9);
    timespec ts{static_cast<time_t>(ns / 1000000000LL), static_cast<long>(ns % 1000000000LL)};
    while (::nanosleep(&ts, &ts) != 0) {
        if (interrupted()) {
            return false;
        }
    }
    return !interrupted();
}

std::string geometry(const shmbus::ChannelInfo& info) {
    return human_bytes(info.slot_size) + "×" + std::to_string(info.slot_count);
}

std::string policy(const shmbus::ChannelInfo& info) {
    return info.kind == shmbus::ChannelKind::queue ? "block"
           : info.kind == shmbus::ChannelKind::rpc ? "-"
                                                   : std::string{shmbus::to_string(info.overflow)};
}

/// "consumed" on a queue, replies on an rpc channel; a broadcast delivers to each subscriber
/// separately (see `info`).
std::string consumed_cell(const shmbus::ChannelSummary& c) {
    return c.info.kind == shmbus::ChannelKind::broadcast ? "-" : std::to_string(c.stats.consumed);
}

Tint alarm_if(std::uint64_t v) {
    return v > 0 ? Tint::red : Tint::none;
}

/// An rpc channel's own page of `info`: its counters under their rpc names.
std::vector<std::pair<std::string, std::string>> rpc_fields(const GlobalOptions& options,
                                                            const shmbus::ChannelSummary& c) {
    const shmbus::ChannelInfo& i = c.info;
    const shmbus::ChannelStats& s = c.stats;
    return {
        {"Channel", i.name + (c.dynamic ? " (dynamic)" : "")},
        {"Kind", "rpc"},
        {"Calls", std::to_string(i.slot_count) + " in flight per caller, requests up to " +
                      human_bytes(i.slot_size)},
        {"Memory",
         human_bytes(i.payload_bytes) + " payload + " + human_bytes(i.control_bytes) + " control"},
        {"Callers", std::to_string(s.publishers) + " of " + std::to_string(i.max_publishers)},
        {"Servers", std::to_string(s.subscribers) + " of " + std::to_string(i.max_subscribers)},
        {"Calls made", std::to_string(s.published)},
        {"Replies", std::to_string(s.consumed)},
        {"Failures", tinted(std::to_string(s.abandoned) + " (their server died)",
                            alarm_if(s.abandoned), options.colour)},
        {"Late replies", tinted(std::to_string(s.dropped) + " (dropped: the caller had gone)",
                                alarm_if(s.dropped), options.colour)},
        {"In flight", std::to_string(s.depth)},
        {"Corrupted", tinted(std::to_string(s.corrupted), alarm_if(s.corrupted), options.colour)},
        {"Waits", "servers slept " + std::to_string(s.data_waits) + " (woken " +
                      std::to_string(s.data_wakes) + "), callers slept " +
                      std::to_string(s.space_waits) + " (woken " + std::to_string(s.space_wakes) +
                      ")"},
        {"Creation id", std::to_string(i.creation_id)},
    };
}

/// A pool's own page of `info`: its counters under their pool names (docs/memory-layout.md
/// says which ChannelStats field carries which).
std::vector<std::pair<std::string, std::string>> pool_fields(const GlobalOptions& options,
                                                             const shmbus::ChannelSummary& c) {
    const shmbus::ChannelInfo& i = c.info;
    const shmbus::ChannelStats& s = c.stats;
    return {
        {"Channel", i.name + (c.dynamic ? " (dynamic)" : "")},
        {"Kind", "pool"},
        {"Blocks", std::to_string(i.slot_count) + " × " + human_bytes(i.slot_size)},
        {"Memory",
         human_bytes(i.payload_bytes) + " payload + " + human_bytes(i.control_bytes) + " control"},
        {"Writers", std::to_string(s.publishers) + " of " + std::to_string(i.max_publishers)},
        {"Readers", std::to_string(s.subscribers) + " of " + std::to_string(i.max_subscribers)},
        {"In use", std::to_string(s.depth) + " (high water " + std::to_string(s.high_water) +
                       " of " + std::to_string(i.slot_count) + ")"},
        {"In transit", std::to_string(s.redelivered) + " references in handles not yet adopted"},
        {"Acquired", std::to_string(s.published)},
        {"Returned", std::to_string(s.consumed) + " (to the free list)"},
        {"Reclaimed", tinted(std::to_string(s.abandoned) + " (references of dead endpoints)",
                             alarm_if(s.abandoned), options.colour)},
        {"Dropped", std::to_string(s.dropped) + " (references in handles given back unread)"},
        {"Exhausted", std::to_string(s.data_waits) + " (acquires that found no free block)"},
        {"Corrupted", tinted(std::to_string(s.corrupted), alarm_if(s.corrupted), options.colour)},
        {"Waits", "writers slept " + std::to_string(s.space_waits) + " for a block (woken " +
                      std::to_string(s.space_wakes) + ")"},
        {"Creation id", std::to_string(i.creation_id)},
    };
}

/// A channel's place in the daemon's bridges: "ground out as robot1/jobs", one per stream.
/// Empty for a daemon without bridges (or one that predates them).
std::map<std::string, std::vector<std::string>> bridged_channels(shmbus::Client& client) {
    std::map<std::string, std::vector<std::string>> out;
    if (auto bridges = client.list_bridges(); bridges) {
        for (const auto& b : *bridges) {
            for (const auto& s : b.streams) {
                out[s.local_name].push_back(
                    b.name + (s.exporting ? " out" : " in") +
                    (s.wire_name != s.local_name ? " as " + s.wire_name : std::string{}));
            }
        }
    }
    return out;
}

std::string joined(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : std::string{separator}) + p;
    }
    return out;
}

void print_channel_table(const GlobalOptions& options, const Sample& sample,
                         const std::map<std::string, double>& rates,
                         const std::map<std::string, std::vector<std::string>>& bridged = {}) {
    Table table({{"channel"},
                 {"kind"},
                 {"slots"},
                 {"policy"},
                 {"pub", Table::Align::right},
                 {"sub", Table::Align::right},
                 {"published", Table::Align::right},
                 {"consumed", Table::Align::right},
                 {"dropped", Table::Align::right},
                 {"abandoned", Table::Align::right},
                 {"depth", Table::Align::right},
                 {"rate", Table::Align::right},
                 {"bridge"}});
    for (const auto& c : sample.channels) {
        const auto via = bridged.find(c.info.name);
        table.add_row(
            {c.info.name, std::string{shmbus::to_string(c.info.kind)}, geometry(c.info),
             policy(c.info),
             std::to_string(c.stats.publishers) + "/" + std::to_string(c.info.max_publishers),
             std::to_string(c.stats.subscribers) + "/" + std::to_string(c.info.max_subscribers),
             std::to_string(c.stats.published), consumed_cell(c), std::to_string(c.stats.dropped),
             std::to_string(c.stats.abandoned), std::to_string(c.stats.depth),
             human_rate(rate_of(rates, c.info.name)),
             via != bridged.end() ? joined(via->second, ", ") : "-"},
            {Tint::none, Tint::none, Tint::none, Tint::none, Tint::none, Tint::none, Tint::none,
             Tint::none, alarm_if(c.stats.dropped), alarm_if(c.stats.abandoned)});
    }
    table.print(stdout, options.no_legend, options.colour);
}

} // namespace

int run_status(const GlobalOptions& options) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto status = client->status();
    if (!status) {
        return fail("cannot read the daemon's status", status.error(), ErrorSite::other);
    }
    const shmbus::DaemonStatus& s = *status;
    if (options.json) {
        print_json(status_json(s));
        return kExitOk;
    }
    std::string configs;
    for (const auto& f : s.config_files) {
        configs += (configs.empty() ? "" : ", ") + f;
    }
    std::fprintf(stdout, "%s shmbusd %s\n", tinted("●", Tint::green, options.colour).c_str(),
                 s.daemon_version.c_str());
    print_fields(
        stdout,
        {{"State", "running since " + human_duration(s.uptime_ms) + " ago"},
         {"PID", std::to_string(s.pid)},
         {"Protocol", std::to_string(s.protocol_major) + "." + std::to_string(s.protocol_minor)},
         {"Config", configs.empty() ? "(built-in defaults)" : configs},
         {"Socket", s.socket_path},
         {"State dir", s.state_directory},
         {"Clients", std::to_string(s.clients)},
         {"Channels", std::to_string(s.channels)},
         {"Memory", human_bytes(s.segment_bytes) + " in segments"}},
        options.colour);
    return kExitOk;
}

int run_list(const GlobalOptions& options, double interval_s) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto first = take_sample(*client, rc);
    if (!first) {
        return rc;
    }
    Sample shown = std::move(*first);
    std::map<std::string, double> rates;
    if (interval_s > 0) {
        catch_interrupts();
        if (pause_for(interval_s)) {
            auto second = take_sample(*client, rc);
            if (!second) {
                return rc;
            }
            rates = rates_between(shown, *second);
            shown = std::move(*second);
        }
    }
    const auto bridged = bridged_channels(*client);
    if (options.json) {
        nlohmann::json doc;
        doc["interval_s"] = rates.empty() ? nlohmann::json(nullptr) : nlohmann::json(interval_s);
        doc["channels"] = nlohmann::json::array();
        for (const auto& c : shown.channels) {
            nlohmann::json j = channel_json(c, rate_of(rates, c.info.name));
            const auto via = bridged.find(c.info.name);
            j["bridges"] = via != bridged.end() ? via->second : std::vector<std::string>{};
            doc["channels"].push_back(std::move(j));
        }
        print_json(doc);
        return kExitOk;
    }
    print_channel_table(options, shown, rates, bridged);
    if (!options.no_legend) {
        std::fprintf(stdout, "\n%zu channel%s listed.\n", shown.channels.size(),
                     shown.channels.size() == 1 ? "" : "s");
    }
    return kExitOk;
}

int run_info(const GlobalOptions& options, const std::string& channel) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto detail = client->channel_info(channel);
    if (!detail) {
        return fail("channel '" + channel + "'", detail.error(), ErrorSite::channel);
    }
    const shmbus::ChannelSummary& c = detail->summary;
    const auto bridged = bridged_channels(*client);
    const auto via = bridged.find(channel);
    const std::vector<std::string> bridges =
        via != bridged.end() ? via->second : std::vector<std::string>{};
    if (options.json) {
        nlohmann::json doc = channel_json(c, std::nullopt);
        doc.erase("rate_per_s");
        doc["bridges"] = bridges;
        doc["endpoints"] = nlohmann::json::array();
        for (const auto& e : detail->endpoints) {
            doc["endpoints"].push_back(endpoint_json(e, c));
        }
        print_json(doc);
        return kExitOk;
    }
    const shmbus::ChannelInfo& i = c.info;
    const shmbus::ChannelStats& s = c.stats;
    const bool rpc = i.kind == shmbus::ChannelKind::rpc;
    const bool pool = i.kind == shmbus::ChannelKind::pool;
    std::vector<std::pair<std::string, std::string>> fields =
        rpc    ? rpc_fields(options, c)
        : pool ? pool_fields(options, c)
               : std::vector<std::pair<std::string, std::string>>{
                     {"Channel", i.name + (c.dynamic ? " (dynamic)" : "")},
                     {"Kind", std::string{shmbus::to_string(i.kind)} + ", overflow " + policy(i)},
                     {"Slots", std::to_string(i.slot_count) + " × " + human_bytes(i.slot_size)},
                     {"Memory", human_bytes(i.payload_bytes) + " payload + " +
                                    human_bytes(i.control_bytes) + " control"},
                     {"Publishers",
                      std::to_string(s.publishers) + " of " + std::to_string(i.max_publishers)},
                     {"Subscribers",
                      std::to_string(s.subscribers) + " of " + std::to_string(i.max_subscribers)},
                     {"Published", std::to_string(s.published)},
                     {"Consumed", consumed_cell(c)},
                     {"Dropped",
                      tinted(std::to_string(s.dropped), alarm_if(s.dropped), options.colour)},
                     {"Abandoned",
                      tinted(std::to_string(s.abandoned), alarm_if(s.abandoned), options.colour)},
                     {"Redelivered", std::to_string(s.redelivered)},
                     {"Corrupted",
                      tinted(std::to_string(s.corrupted), alarm_if(s.corrupted), options.colour)},
                     {"Depth", std::to_string(s.depth) + " (high water " +
                                   std::to_string(s.high_water) + " of " +
                                   std::to_string(i.slot_count) + ")"},
                     {"Waits", "readers slept " + std::to_string(s.data_waits) + " (woken " +
                                   std::to_string(s.data_wakes) + "), writers slept " +
                                   std::to_string(s.space_waits) + " (woken " +
                                   std::to_string(s.space_wakes) + ")"},
                     {"Creation id",
                      std::to_string(i.creation_id)}, // as in --json and the daemon's log
                 };
    if (!bridges.empty()) {
        // A bridge endpoint: the channel travels to (out) or comes from (in) a peer daemon.
        fields.emplace_back("Bridge", joined(bridges, "; "));
    }
    print_fields(stdout, fields, options.colour);
    std::fprintf(stdout, "\n");
    // A pool's endpoints hold blocks instead of reading a ring: one column for that.
    std::vector<Table::Column> columns{{"role"},
                                       {"index", Table::Align::right},
                                       {"pid", Table::Align::right},
                                       {"uid", Table::Align::right},
                                       {"client"}};
    if (pool) {
        columns.push_back({"blocks", Table::Align::right});
    } else {
        columns.insert(columns.end(), {{"cursor", Table::Align::right},
                                       {"lag", Table::Align::right},
                                       {"lost", Table::Align::right}});
    }
    Table table(columns);
    const bool broadcast = i.kind == shmbus::ChannelKind::broadcast;
    for (const auto& e : detail->endpoints) {
        const bool reader = broadcast && e.role == shmbus::Role::subscriber;
        const std::string role = rpc    ? (e.role == shmbus::Role::publisher ? "caller" : "server")
                                 : pool ? (e.role == shmbus::Role::publisher ? "writer" : "reader")
                                        : std::string{shmbus::to_string(e.role)};
        std::vector<std::string> cells{role, std::to_string(e.index), std::to_string(e.pid),
                                       std::to_string(e.uid), e.client_name};
        if (pool) {
            cells.push_back(std::to_string(e.held));
            table.add_row(std::move(cells));
            continue;
        }
        cells.insert(cells.end(), {reader ? std::to_string(e.cursor) : "-",
                                   reader ? std::to_string(subscriber_lag(e, c)) : "-",
                                   reader ? std::to_string(e.lost) : "-"});
        table.add_row(std::move(cells), {Tint::none, Tint::none, Tint::none, Tint::none, Tint::none,
                                         Tint::none, Tint::none, alarm_if(reader ? e.lost : 0)});
    }
    if (table.rows() == 0) {
        if (!options.no_legend) {
            std::fprintf(stdout, "No endpoints attached.\n");
        }
        return kExitOk;
    }
    table.print(stdout, options.no_legend, options.colour);
    if (!options.no_legend) {
        std::fprintf(stdout, "\n%zu endpoint%s attached.\n", table.rows(),
                     table.rows() == 1 ? "" : "s");
    }
    return kExitOk;
}

namespace {

/// The link bridges' loss by cause, duplicates and loops, one line each, after the bridges'
/// table (docs/gateway.md, "Loss by cause").
void print_bridge_losses(const std::vector<shmbus::BridgeSummary>& bridges,
                         const GlobalOptions& options) {
    Table table({{"bridge"},
                 {"lost: link down", Table::Align::right},
                 {"congestion", Table::Align::right},
                 {"type refused", Table::Align::right},
                 {"upstream", Table::Align::right},
                 {"duplicates", Table::Align::right},
                 {"looped", Table::Align::right}});
    for (const auto& b : bridges) {
        if (b.transport == "nats") {
            continue;
        }
        const std::uint64_t lost = b.lost_link_down + b.lost_congestion + b.lost_upstream;
        table.add_row({b.name, std::to_string(b.lost_link_down), std::to_string(b.lost_congestion),
                       std::to_string(b.type_refusals), std::to_string(b.lost_upstream),
                       std::to_string(b.duplicates), std::to_string(b.looped)},
                      {Tint::none, alarm_if(lost), Tint::none, alarm_if(b.type_refusals)});
    }
    if (table.rows() == 0) {
        return;
    }
    std::fprintf(stdout, "\n");
    table.print(stdout, options.no_legend, options.colour);
}

/// The link bridges' streams, one line each: what each moves, its credits, and for an export
/// its congestion policy and priority (docs/gateway.md, "Congestion", "Priorities").
void print_bridge_streams(const std::vector<shmbus::BridgeSummary>& bridges,
                          const GlobalOptions& options) {
    Table table({{"bridge"},
                 {"channel"},
                 {"dir"},
                 {"wire name"},
                 {"messages", Table::Align::right},
                 {"lost", Table::Align::right},
                 {"credits", Table::Align::right},
                 {"on_congestion"},
                 {"prio", Table::Align::right}});
    for (const auto& b : bridges) {
        if (b.transport == "nats") {
            continue;
        }
        for (const auto& s : b.streams) {
            const bool scheduled = s.exporting && !s.on_congestion.empty();
            table.add_row(
                {b.name, s.local_name, s.exporting ? "out" : "in", s.wire_name,
                 std::to_string(s.messages), std::to_string(s.lost), std::to_string(s.credits),
                 scheduled ? s.on_congestion : "-", scheduled ? std::to_string(s.priority) : "-"},
                {Tint::none, Tint::none, Tint::none, Tint::none, Tint::none, alarm_if(s.lost)});
        }
    }
    if (table.rows() == 0) {
        return;
    }
    std::fprintf(stdout, "\n");
    table.print(stdout, options.no_legend, options.colour);
}

/// The live links' writers waiting for the link, per priority: now/most since the link
/// began, the link's own frames ("ctl") first, then priority 7 down to 0; and the `block`
/// holds given up after block_timeout.
void print_bridge_writers(const std::vector<shmbus::BridgeSummary>& bridges,
                          const GlobalOptions& options) {
    std::vector<Table::Column> columns{{"bridge"}};
    std::size_t levels = 0;
    for (const auto& b : bridges) {
        levels = std::max(levels, b.writers_waiting.size());
    }
    if (levels == 0) {
        return;
    }
    for (std::size_t level = levels; level-- > 0;) {
        const std::string name = writers_level_name(level, levels);
        columns.push_back(
            {"wait " + (name == "control" ? std::string{"ctl"} : "p" + name), Table::Align::right});
    }
    columns.push_back({"block timeouts", Table::Align::right});
    Table table(std::move(columns));
    for (const auto& b : bridges) {
        if (b.writers_waiting.empty()) {
            continue;
        }
        std::vector<std::string> row{b.name};
        for (std::size_t level = levels; level-- > 0;) {
            const std::uint32_t now =
                level < b.writers_waiting.size() ? b.writers_waiting[level] : 0;
            const std::uint32_t most =
                level < b.writers_waiting_most.size() ? b.writers_waiting_most[level] : 0;
            row.push_back(std::to_string(now) + "/" + std::to_string(most));
        }
        row.push_back(std::to_string(b.block_timeouts));
        table.add_row(std::move(row), {});
    }
    std::fprintf(stdout, "\n");
    table.print(stdout, options.no_legend, options.colour);
}

} // namespace

int run_bridges(const GlobalOptions& options) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto bridges = client->list_bridges();
    if (!bridges) {
        return fail("cannot list bridges", bridges.error(), ErrorSite::other);
    }
    if (options.json) {
        nlohmann::json doc;
        doc["bridges"] = nlohmann::json::array();
        for (const auto& b : *bridges) {
            doc["bridges"].push_back(bridge_json(b));
        }
        print_json(doc);
        return kExitOk;
    }
    Table table({{"bridge"},
                 {"state"},
                 {"link"},
                 {"peer"},
                 {"ver", Table::Align::right},
                 {"ch out/in", Table::Align::right},
                 {"msgs out/in", Table::Align::right},
                 {"bytes out/in", Table::Align::right},
                 {"lost out/in", Table::Align::right},
                 {"frags out/in", Table::Align::right},
                 {"credits", Table::Align::right},
                 {"rtt", Table::Align::right},
                 {"reconnects", Table::Align::right},
                 {"last error"}});
    for (const auto& b : *bridges) {
        const BridgeTotals out = bridge_totals(b, true);
        const BridgeTotals in = bridge_totals(b, false);
        const auto pair = [](std::uint64_t a, std::uint64_t z) {
            return std::to_string(a) + "/" + std::to_string(z);
        };
        // A NATS bridge's peer is the server it is connected to, named by its URL (and how
        // many servers of the cluster it knows); a link's is the other daemon.
        const bool nats = b.transport == "nats";
        const bool live = b.version != 0 || (nats && !b.peer.empty());
        std::string peer = "-";
        if (live && nats) {
            peer = b.peer + (b.known_servers.size() > 1
                                 ? " (" + std::to_string(b.known_servers.size()) + " known)"
                                 : "");
        } else if (live) {
            peer = b.peer + (b.peer_node.empty() ? "" : " (" + b.peer_node + ")");
        }
        table.add_row({b.name, b.state, (b.listen ? "listen " : "connect ") + b.address, peer,
                       live && !nats ? std::to_string(b.version) : "-",
                       pair(out.channels, in.channels), pair(out.messages, in.messages),
                       human_bytes(out.bytes) + "/" + human_bytes(in.bytes),
                       pair(out.lost, in.lost), pair(b.fragments_sent, b.fragments_received),
                       std::to_string(out.credits + in.credits),
                       b.rtt_ns != 0 ? std::to_string(b.rtt_ns / 1000) + " µs" : "-",
                       std::to_string(b.reconnects), b.last_error.empty() ? "-" : b.last_error},
                      {Tint::none, Tint::none, Tint::none, Tint::none, Tint::none, Tint::none,
                       Tint::none, Tint::none, alarm_if(out.lost + in.lost)});
    }
    if (table.rows() == 0) {
        if (!options.no_legend) {
            std::fprintf(stdout, "No bridges configured.\n");
        }
        return kExitOk;
    }
    table.print(stdout, options.no_legend, options.colour);
    if (!options.no_legend) {
        std::fprintf(stdout, "\n%zu bridge%s listed.\n", table.rows(),
                     table.rows() == 1 ? "" : "s");
    }
    print_bridge_losses(*bridges, options);
    print_bridge_streams(*bridges, options);
    print_bridge_writers(*bridges, options);
    return kExitOk;
}

int run_clients(const GlobalOptions& options) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto clients = client->list_clients();
    if (!clients) {
        return fail("cannot list clients", clients.error(), ErrorSite::other);
    }
    // Which channels each client holds: from every channel's endpoint table.
    std::map<std::uint64_t, std::vector<std::string>> held;
    if (auto list = client->list_channels(); list) {
        for (const auto& c : *list) {
            auto detail = client->channel_info(c.info.name);
            if (!detail) {
                continue; // removed meanwhile (reload)
            }
            for (const auto& e : detail->endpoints) {
                held[e.client_id].push_back(c.info.name + ":" +
                                            (e.role == shmbus::Role::publisher ? "pub" : "sub"));
            }
        }
    }
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    if (options.json) {
        nlohmann::json doc;
        doc["clients"] = nlohmann::json::array();
        for (const auto& c : *clients) {
            nlohmann::json j = client_json(c);
            j["channels"] = nlohmann::json::array();
            for (const auto& h : held[c.client_id]) {
                j["channels"].push_back(h);
            }
            doc["clients"].push_back(std::move(j));
        }
        print_json(doc);
        return kExitOk;
    }
    Table table({{"id", Table::Align::right},
                 {"pid", Table::Align::right},
                 {"uid", Table::Align::right},
                 {"name"},
                 {"endpoints", Table::Align::right},
                 {"channels"},
                 {"connected since"}});
    for (const auto& c : *clients) {
        std::string channels;
        for (const auto& h : held[c.client_id]) {
            channels += (channels.empty() ? "" : ",") + h;
        }
        const std::int64_t age = now_ms > c.connected_since_ms ? now_ms - c.connected_since_ms : 0;
        table.add_row({std::to_string(c.client_id), std::to_string(c.pid), std::to_string(c.uid),
                       c.name, std::to_string(c.endpoints), channels.empty() ? "-" : channels,
                       local_time(c.connected_since_ms) + " (" +
                           human_duration(static_cast<std::uint64_t>(age)) + " ago)"});
    }
    table.print(stdout, options.no_legend, options.colour);
    if (!options.no_legend) {
        std::fprintf(stdout, "\n%zu client%s connected.\n", table.rows(),
                     table.rows() == 1 ? "" : "s");
    }
    return kExitOk;
}

int run_stats(const GlobalOptions& options, double interval_s, std::uint64_t count) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    catch_interrupts();
    // On a terminal the table is redrawn in place; into a pipe, one block per sample.
    const bool live = !options.json && ::isatty(::fileno(stdout)) == 1;
    auto previous = take_sample(*client, rc);
    if (!previous) {
        return rc;
    }
    for (std::uint64_t shown = 0; count == 0 || shown < count; ++shown) {
        if (!pause_for(interval_s)) {
            break;
        }
        auto current = take_sample(*client, rc);
        if (!current) {
            return rc;
        }
        const auto rates = rates_between(*previous, *current);
        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        if (options.json) {
            nlohmann::json doc;
            doc["time_ms"] = now_ms;
            doc["interval_s"] = interval_s;
            doc["channels"] = nlohmann::json::array();
            for (const auto& c : current->channels) {
                doc["channels"].push_back(channel_json(c, rate_of(rates, c.info.name)));
            }
            print_json(doc);
        } else {
            if (live) {
                std::fputs("\x1b[H\x1b[2J", stdout); // home, clear: redraw in place like top
            } else if (shown > 0) {
                std::fputs("\n", stdout);
            }
            std::fprintf(stdout, "%s  every %gs  %zu channel%s\n", local_time(now_ms).c_str(),
                         interval_s, current->channels.size(),
                         current->channels.size() == 1 ? "" : "s");
            print_channel_table(options, *current, rates, bridged_channels(*client));
        }
        std::fflush(stdout);
        previous = std::move(current);
    }
    return kExitOk;
}

int run_ping(const GlobalOptions& options, std::uint64_t count) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    nlohmann::json rtts = nlohmann::json::array();
    for (std::uint64_t i = 0; i < count; ++i) {
        auto rtt = client->ping();
        if (!rtt) {
            return fail("ping", rtt.error(), ErrorSite::other);
        }
        const double us = static_cast<double>(rtt->count()) / 1000.0;
        if (options.json) {
            rtts.push_back(us);
        } else {
            std::fprintf(stdout, "reply from shmbusd at %s: time=%.1f µs\n",
                         client->socket_path().c_str(), us);
        }
    }
    if (options.json) {
        print_json({{"socket", client->socket_path()}, {"round_trip_us", rtts}});
    }
    return kExitOk;
}

int run_reload(const GlobalOptions& options) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto summary = client->reload();
    if (!summary) {
        const int code = summary.code() == shmbus::Errc::invalid_argument
                             ? kExitConfig
                             : exit_code_for(summary.error(), ErrorSite::other);
        std::fprintf(stderr, "shmbusctl: reload refused: %s\n", summary.error().message().c_str());
        return code;
    }
    if (options.json) {
        print_json({{"reloaded", true}, {"changes", *summary}});
    } else {
        std::fprintf(stdout, "%s\n",
                     summary->empty() ? "configuration reloaded: nothing changed"
                                      : summary->c_str());
    }
    return kExitOk;
}

} // namespace shmbusctl
