// Reports: see report.hpp. Tables are built once as rows of strings and rendered either
// as aligned text or as Markdown. nlohmann::ordered_json is used here only; its exceptions
// (invalid UTF-8 in an error text, say) are avoided by replacing bad bytes on dump.

#include "report.hpp"

#include "format.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>

namespace bench {
namespace {

struct Table {
    std::string title;
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

bool is_pairwise(const Scenario& s) {
    return s.kind == Kind::none || s.kind == Kind::queue_spsc;
}

std::string subs_cell(const Scenario& s) {
    if (s.transport != Transport::shmbus) {
        return "1";
    }
    if (s.kind == Kind::queue_mpmc || s.kind == Kind::rpc) {
        // writers x readers; on rpc, callers x servers
        return std::to_string(s.publishers) + "x" + std::to_string(s.subscribers);
    }
    return std::to_string(s.subscribers);
}

std::string size_cell(const Scenario& s) {
    return s.transport == Transport::futex_raw ? "-" : format_size(s.msg_size);
}

Table latency_table(const std::vector<Summary>& all) {
    Table t{"Latency (one-way = RTT/2; rows at N Hz: timed one way; median [min..max] of runs)",
            {"transport", "size", "subs", "p50", "p90", "p99", "p99.9", "max", "mean", "line rtt"},
            {}};
    for (const Summary& s : all) {
        if (s.skipped || s.scenario.test != Test::latency) {
            continue;
        }
        if (s.good_runs() == 0) {
            t.rows.push_back({s.scenario.label(), size_cell(s.scenario), subs_cell(s.scenario),
                              "failed", "", "", "", "", "", ""});
            continue;
        }
        t.rows.push_back({s.scenario.label(), size_cell(s.scenario), subs_cell(s.scenario),
                          format_spread(s.p50_ns, Unit::ns), format_median(s.p90_ns, Unit::ns),
                          format_spread(s.p99_ns, Unit::ns), format_median(s.p999_ns, Unit::ns),
                          format_median(s.max_ns, Unit::ns), format_median(s.mean_ns, Unit::ns),
                          format_spread(s.line_rtt_ns, Unit::ns)});
    }
    return t;
}

/// Twice the median one-way p50 of the SPSC queue's ping-pong of `wait` at `size` in this
/// run: the round trip an rpc call is compared with; nullopt if it was not measured.
std::optional<Spread> queue_round_trip(const std::vector<Summary>& all, Wait wait,
                                       std::uint64_t size) {
    for (const Summary& s : all) {
        const Scenario& sc = s.scenario;
        if (!s.skipped && s.p50_ns && sc.transport == Transport::shmbus &&
            sc.kind == Kind::queue_spsc && sc.test == Test::latency && sc.wait == wait &&
            sc.msg_size == size) {
            return Spread{2 * s.p50_ns->median, 2 * s.p50_ns->min, 2 * s.p50_ns->max};
        }
    }
    return std::nullopt;
}

Table round_trip_table(const std::vector<Summary>& all) {
    Table t{"rpc round trip (request and reply, whole round trip; median [min..max] of runs)",
            {"transport", "size", "callers", "p50", "p90", "p99", "p99.9", "max", "mean",
             "queue 2x one-way p50", "line rtt"},
            {}};
    for (const Summary& s : all) {
        if (s.skipped || s.scenario.test != Test::round_trip) {
            continue;
        }
        if (s.good_runs() == 0) {
            t.rows.push_back({s.scenario.label(), size_cell(s.scenario), subs_cell(s.scenario),
                              "failed", "", "", "", "", "", "", ""});
            continue;
        }
        t.rows.push_back(
            {s.scenario.label(), size_cell(s.scenario), subs_cell(s.scenario),
             format_spread(s.p50_ns, Unit::ns), format_median(s.p90_ns, Unit::ns),
             format_spread(s.p99_ns, Unit::ns), format_median(s.p999_ns, Unit::ns),
             format_median(s.max_ns, Unit::ns), format_median(s.mean_ns, Unit::ns),
             format_median(queue_round_trip(all, s.scenario.wait, s.scenario.msg_size), Unit::ns),
             format_spread(s.line_rtt_ns, Unit::ns)});
    }
    return t;
}

Table stream_table(const std::vector<Summary>& all, Test test) {
    Table t;
    if (test == Test::throughput) {
        t.title = "Throughput (per reader; CPU per message; median [min..max] of runs)";
        t.header = {"transport", "size",     "batch",    "subs", "msgs/s",
                    "bytes/s",   "cpu send", "cpu recv", "lost", "line rtt"};
    } else {
        t.title = "Bandwidth (large messages, filled and checksummed in place)";
        t.header = {"transport", "size",     "batch",    "subs", "bytes/s",
                    "msgs/s",    "cpu send", "cpu recv", "lost", "line rtt"};
    }
    for (const Summary& s : all) {
        if (s.skipped || s.scenario.test != test) {
            continue;
        }
        std::vector<std::string> row{s.scenario.label(), size_cell(s.scenario),
                                     std::to_string(s.scenario.batch), subs_cell(s.scenario)};
        if (s.scenario.solo()) {
            row[3] = "-";
        }
        if (s.good_runs() == 0) {
            row.insert(row.end(), {"failed", "", "", "", "", ""});
        } else {
            // The headline figure (with its range) first, the other beside it.
            if (test == Test::throughput) {
                row.insert(row.end(), {format_spread(s.msgs_per_s, Unit::rate),
                                       format_median(s.bytes_per_s, Unit::bytes)});
            } else {
                row.insert(row.end(), {format_spread(s.bytes_per_s, Unit::bytes),
                                       format_median(s.msgs_per_s, Unit::rate)});
            }
            row.insert(row.end(), {format_median(s.cpu_send_ns_per_msg, Unit::ns),
                                   format_median(s.cpu_recv_ns_per_msg, Unit::ns),
                                   format_median(s.lost, Unit::count),
                                   format_spread(s.line_rtt_ns, Unit::ns)});
        }
        t.rows.push_back(std::move(row));
    }
    return t;
}

/// Where a message's CPU goes on its way through a bridge: the publishing client, the
/// exporting daemon, the importing daemon, the subscribing client.
Table bridge_cpu_table(const std::vector<Summary>& all) {
    Table t{"Through the bridge: CPU per message (median of runs)",
            {"transport", "test", "size", "batch", "msgs/s", "cpu publisher", "cpu bridge out",
             "cpu bridge in", "cpu subscriber"},
            {}};
    for (const Summary& s : all) {
        const Scenario& sc = s.scenario;
        if (s.skipped || sc.transport != Transport::bridge || sc.load != Load::none ||
            sc.test == Test::latency || s.good_runs() == 0) {
            continue;
        }
        t.rows.push_back({sc.label(), std::string{to_string(sc.test)}, size_cell(sc),
                          std::to_string(sc.batch), format_median(s.msgs_per_s, Unit::rate),
                          format_median(s.cpu_send_ns_per_msg, Unit::ns),
                          format_median(s.bridge_out_cpu_ns_per_msg, Unit::ns),
                          format_median(s.bridge_in_cpu_ns_per_msg, Unit::ns),
                          format_median(s.cpu_recv_ns_per_msg, Unit::ns)});
    }
    return t;
}

/// A table of the control-plane rows of `test`: label, channels, clients, then the figure
/// cells `cells(summary)` gives, one per header entry after the third.
template <typename Cells>
Table control_table(const std::vector<Summary>& all, Test test, std::string title,
                    std::vector<std::string> header, Cells cells) {
    Table t{std::move(title), std::move(header), {}};
    for (const Summary& s : all) {
        if (s.skipped || s.scenario.test != test) {
            continue;
        }
        std::vector<std::string> row{s.scenario.label(), std::to_string(s.scenario.channels),
                                     std::to_string(s.scenario.clients)};
        if (s.good_runs() == 0) {
            row.emplace_back("failed");
        } else {
            for (std::string& c : cells(s)) {
                row.push_back(std::move(c));
            }
        }
        row.resize(t.header.size());
        t.rows.push_back(std::move(row));
    }
    return t;
}

Table opens_table(const std::vector<Summary>& all) {
    return control_table(
        all, Test::control_open,
        "Channel opens through shmbusd (connect, hello, open, fd received, mapped, close; one "
        "cycle per sample; median [min..max] of runs)",
        {"transport", "channels", "clients", "opens/s", "p50", "p90", "p99", "p99.9", "max",
         "cpu client", "cpu daemon"},
        [](const Summary& s) {
            return std::vector<std::string>{format_spread(s.opens_per_s, Unit::rate),
                                            format_spread(s.p50_ns, Unit::ns),
                                            format_median(s.p90_ns, Unit::ns),
                                            format_spread(s.p99_ns, Unit::ns),
                                            format_median(s.p999_ns, Unit::ns),
                                            format_median(s.max_ns, Unit::ns),
                                            format_median(s.client_cpu_ns_per_open, Unit::ns),
                                            format_median(s.daemon_cpu_ns_per_open, Unit::ns)};
        });
}

Table memory_table(const std::vector<Summary>& all) {
    return control_table(
        all, Test::daemon_rss,
        "shmbusd memory (every client connected with one endpoint open; median [min..max] of "
        "runs)",
        {"transport", "channels", "clients", "VmRSS", "VmHWM", "anon", "file", "shmem",
         "VmRSS before clients"},
        [](const Summary& s) {
            return std::vector<std::string>{format_spread(s.rss_bytes, Unit::memory),
                                            format_median(s.hwm_bytes, Unit::memory),
                                            format_median(s.rss_anon_bytes, Unit::memory),
                                            format_median(s.rss_file_bytes, Unit::memory),
                                            format_median(s.rss_shmem_bytes, Unit::memory),
                                            format_median(s.rss_base_bytes, Unit::memory)};
        });
}

Table idle_table(const std::vector<Summary>& all) {
    return control_table(
        all, Test::daemon_idle_cpu,
        "shmbusd idle CPU (every client connected and idle; median [min..max] of runs)",
        {"transport", "channels", "clients", "cpu", "wakeups/s"}, [](const Summary& s) {
            return std::vector<std::string>{format_spread(s.cpu_percent, Unit::percent),
                                            format_median(s.wakeups_per_s, Unit::rate)};
        });
}

/// Every table, in the order the reports show them.
std::vector<Table> all_tables(const std::vector<Summary>& summaries) {
    return {latency_table(summaries),
            round_trip_table(summaries),
            stream_table(summaries, Test::throughput),
            stream_table(summaries, Test::bandwidth),
            bridge_cpu_table(summaries),
            opens_table(summaries),
            memory_table(summaries),
            idle_table(summaries)};
}

/// The unit of a target's raw-ring figure, by the metric's JSON name.
Unit raw_ring_unit(const std::string& metric) {
    if (metric == "p50_ns" || metric == "p99_ns") {
        return Unit::ns;
    }
    return metric == "bytes_per_s" ? Unit::bytes : Unit::rate;
}

Table targets_table(const std::vector<Target>& targets) {
    Table t{"Targets", {"target", "goal", "measured", "status", "raw ring", "from"}, {}};
    for (const Target& g : targets) {
        std::string status = "not measured";
        if (g.information) {
            status = "information";
        } else if (g.met) {
            status = *g.met ? "met" : "MISSED";
        }
        t.rows.push_back(
            {g.name, g.goal, g.measured.empty() ? "-" : g.measured, status,
             g.raw_ring ? format_value(*g.raw_ring, raw_ring_unit(g.raw_ring_metric)) : "-",
             g.basis});
    }
    return t;
}

std::vector<std::string> notes(const std::vector<Summary>& all) {
    std::vector<std::string> out;
    for (const Summary& s : all) {
        const Scenario& sc = s.scenario;
        const std::string what =
            sc.label() + " " + std::string{to_string(sc.test)} + " " +
            (sc.control_test()
                 ? "channels " + std::to_string(sc.channels) + " clients " +
                       std::to_string(sc.clients)
                 : size_cell(sc) + " batch " + std::to_string(sc.batch) + " subs " + subs_cell(sc));
        if (s.skipped) {
            out.push_back("skipped: " + what + ": " + *s.skipped);
        } else if (s.good_runs() < s.runs.size()) {
            out.push_back("failed " + std::to_string(s.runs.size() - s.good_runs()) + " of " +
                          std::to_string(s.runs.size()) + " runs: " + what + ": " +
                          s.first_error());
        }
    }
    return out;
}

/// Display width of UTF-8 text (µ is two bytes, one column).
std::size_t width(const std::string& s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

void render_text(std::ostream& out, const Table& t) {
    if (t.rows.empty()) {
        return;
    }
    std::vector<std::size_t> w(t.header.size(), 0);
    for (std::size_t i = 0; i < t.header.size(); ++i) {
        w[i] = width(t.header[i]);
        for (const auto& row : t.rows) {
            w[i] = std::max(w[i], width(row[i]));
        }
    }
    const auto line = [&](const std::vector<std::string>& cells) {
        for (std::size_t i = 0; i < cells.size(); ++i) {
            const std::string pad(w[i] - width(cells[i]), ' ');
            // Text columns left, figures right.
            out << (i == 0 ? cells[i] + pad : pad + cells[i]) << (i + 1 < cells.size() ? "  " : "");
        }
        out << '\n';
    };
    out << t.title << '\n';
    line(t.header);
    for (const auto& row : t.rows) {
        line(row);
    }
    out << '\n';
}

void render_markdown(std::ostream& out, const Table& t, bool first_columns_text = true) {
    if (t.rows.empty()) {
        return;
    }
    out << "### " << t.title << "\n\n|";
    for (const auto& h : t.header) {
        out << ' ' << h << " |";
    }
    out << "\n|";
    for (std::size_t i = 0; i < t.header.size(); ++i) {
        out << (i == 0 || !first_columns_text ? " --- |" : " ---: |");
    }
    out << '\n';
    for (const auto& row : t.rows) {
        out << '|';
        for (const auto& c : row) {
            out << ' ' << c << " |";
        }
        out << '\n';
    }
    out << '\n';
}

nlohmann::ordered_json nullable(const std::optional<Spread>& s, double Spread::*field) {
    return s ? nlohmann::ordered_json((*s).*field) : nlohmann::ordered_json(nullptr);
}

void put_metric(nlohmann::ordered_json& row, const std::string& key,
                const std::optional<Spread>& s) {
    row[key] = nullable(s, &Spread::median);
    row[key + "_min"] = nullable(s, &Spread::min);
    row[key + "_max"] = nullable(s, &Spread::max);
}

void put_count(nlohmann::ordered_json& row, const std::string& key,
               const std::optional<Spread>& s) {
    const auto as_int = [&](double Spread::*f) {
        return s ? nlohmann::ordered_json(static_cast<std::uint64_t>(std::llround((*s).*f)))
                 : nlohmann::ordered_json(nullptr);
    };
    row[key] = as_int(&Spread::median);
    row[key + "_min"] = as_int(&Spread::min);
    row[key + "_max"] = as_int(&Spread::max);
}

/// The runs of one row in the order they ran (round 1 first): the headline figures of each,
/// so that a run can be matched with its line RTT (the median and range alone cannot say
/// which run was which).
nlohmann::ordered_json run_details(const Summary& s) {
    const auto value = [](const std::optional<double>& v) {
        return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
    };
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const RunResult& r : s.runs) {
        out.push_back({
            {"ok", r.ok()},
            {"p50_ns", value(r.p50_ns)},
            {"p99_ns", value(r.p99_ns)},
            {"msgs_per_s", value(r.msgs_per_s)},
            {"bytes_per_s", value(r.bytes_per_s)},
            {"opens_per_s", value(r.opens_per_s)},
            {"line_rtt_ns", value(r.line_rtt_ns)},
        });
    }
    return out;
}

nlohmann::ordered_json name_or_null(std::string_view name) {
    return name.empty() ? nlohmann::ordered_json(nullptr)
                        : nlohmann::ordered_json(std::string{name});
}

std::string quoted(const std::string& s) {
    return '"' + s + '"';
}

std::string number(const std::optional<Spread>& s, double scale) {
    if (!s) {
        return "NaN";
    }
    std::ostringstream o;
    o << s->median / scale;
    return o.str();
}

/// Wide data: one row per size, one column per label; `pick` selects the summaries.
template <typename Pick, typename Metric>
std::string wide(const std::vector<Summary>& all, Pick pick, Metric metric, double scale) {
    std::vector<std::string> labels;
    std::map<std::uint64_t, std::map<std::string, std::string>> cells;
    for (const Summary& s : all) {
        if (s.skipped || !pick(s.scenario)) {
            continue;
        }
        const std::string label = s.scenario.label();
        if (std::find(labels.begin(), labels.end(), label) == labels.end()) {
            labels.push_back(label);
        }
        cells[s.scenario.msg_size][label] = number(metric(s), scale);
    }
    std::ostringstream o;
    o << "size";
    for (const auto& l : labels) {
        o << ' ' << quoted(l);
    }
    o << '\n';
    for (const auto& [size, row] : cells) {
        o << size;
        for (const auto& l : labels) {
            const auto it = row.find(l);
            o << ' ' << (it == row.end() ? std::string{"NaN"} : it->second);
        }
        o << '\n';
    }
    return o.str();
}

std::string write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out{path};
    out << text;
    out.close();
    return out ? std::string{} : "cannot write " + path.string();
}

} // namespace

void print_report(std::ostream& out, const std::vector<Summary>& summaries,
                  const std::vector<Target>& targets) {
    for (const Table& t : all_tables(summaries)) {
        render_text(out, t);
    }
    render_text(out, targets_table(targets));
    for (const std::string& n : notes(summaries)) {
        out << n << '\n';
    }
}

std::string markdown_report(const RunInfo& info, const std::vector<Summary>& summaries,
                            const std::vector<Target>& targets) {
    std::ostringstream o;
    o << "## shmbus-bench: suite " << info.suite << "\n\n";
    o << "- CPU: " << info.machine.cpu_model << ", " << info.machine.cores << " cores online, "
      << info.machine.usable_cores << " usable\n";
    o << "- Kernel: " << info.machine.kernel << "\n";
    o << "- Clock source: " << info.machine.clocksource << "\n";
    o << "- Compiler: " << info.machine.compiler << ", build type " << info.machine.build_type
      << "\n";
    o << "- Runs per configuration: " << info.settings.runs << ", "
      << std::chrono::duration<double>(info.settings.duration).count() << " s each; processes "
      << (info.settings.pin ? "pinned one per core" : "not pinned") << "\n";
    o << "- Load average (1, 5, 15 min) before: " << info.load_before
      << "; after: " << info.load_after << "\n\n";
    o << "```\n" << info.command << "\n```\n\n";
    for (const Table& t : all_tables(summaries)) {
        render_markdown(o, t);
    }
    render_markdown(o, targets_table(targets), false);
    const auto n = notes(summaries);
    if (!n.empty()) {
        o << "### Notes\n\n";
        for (const std::string& line : n) {
            o << "- " << line << '\n';
        }
        o << '\n';
    }
    return o.str();
}

std::string json_report(const RunInfo& info, const std::vector<Summary>& summaries,
                        const std::vector<Target>& targets) {
    nlohmann::ordered_json doc;
    doc["machine"] = {
        {"cpu_model", info.machine.cpu_model},       {"cores", info.machine.cores},
        {"usable_cores", info.machine.usable_cores}, {"kernel", info.machine.kernel},
        {"compiler", info.machine.compiler},         {"build_type", info.machine.build_type},
        {"clocksource", info.machine.clocksource},
    };
    doc["command"] = info.command;
    doc["suite"] = info.suite;
    doc["settings"] = {
        {"runs", info.settings.runs},
        {"duration_s", std::chrono::duration<double>(info.settings.duration).count()},
        {"pinned", info.settings.pin},
    };
    doc["load_average"] = {{"before", info.load_before}, {"after", info.load_after}};
    nlohmann::ordered_json results = nlohmann::ordered_json::array();
    for (const Summary& s : summaries) {
        const Scenario& sc = s.scenario;
        nlohmann::ordered_json row;
        row["transport"] = std::string{to_string(sc.transport)};
        row["kind"] = name_or_null(to_string(sc.kind));
        row["wait"] = name_or_null(to_string(sc.wait));
        row["bridge_load"] = name_or_null(to_string(sc.load));
        row["rate_hz"] =
            sc.rate_hz != 0 ? nlohmann::ordered_json(sc.rate_hz) : nlohmann::ordered_json(nullptr);
        row["test"] = std::string{to_string(sc.test)};
        row["msg_size"] = sc.msg_size;
        row["batch"] = sc.batch;
        row["subscribers"] = sc.subscribers;
        row["publishers"] = sc.publishers;
        row["runs"] = s.good_runs();
        row["status"] = s.skipped ? "skipped" : (s.good_runs() > 0 ? "ok" : "failed");
        row["error"] = s.skipped
                           ? nlohmann::ordered_json(*s.skipped)
                           : (s.first_error().empty() ? nlohmann::ordered_json(nullptr)
                                                      : nlohmann::ordered_json(s.first_error()));
        put_metric(row, "p50_ns", s.p50_ns);
        put_metric(row, "p90_ns", s.p90_ns);
        put_metric(row, "p99_ns", s.p99_ns);
        put_metric(row, "p999_ns", s.p999_ns);
        put_metric(row, "max_ns", s.max_ns);
        put_metric(row, "mean_ns", s.mean_ns);
        put_metric(row, "msgs_per_s", s.msgs_per_s);
        put_metric(row, "bytes_per_s", s.bytes_per_s);
        put_metric(row, "cpu_ns_per_msg", s.cpu_ns_per_msg);
        put_metric(row, "cpu_send_ns_per_msg", s.cpu_send_ns_per_msg);
        put_metric(row, "cpu_recv_ns_per_msg", s.cpu_recv_ns_per_msg);
        put_metric(row, "min_sub_msgs_per_s", s.min_sub_msgs_per_s);
        put_metric(row, "bridge_out_cpu_ns_per_msg", s.bridge_out_cpu_ns_per_msg);
        put_metric(row, "bridge_in_cpu_ns_per_msg", s.bridge_in_cpu_ns_per_msg);
        put_count(row, "lost", s.lost);
        const auto control_count = [&](std::uint32_t n) {
            return sc.control_test() ? nlohmann::ordered_json(n) : nlohmann::ordered_json(nullptr);
        };
        row["channels"] = control_count(sc.channels);
        row["clients"] = control_count(sc.clients);
        put_metric(row, "opens_per_s", s.opens_per_s);
        put_metric(row, "client_cpu_ns_per_open", s.client_cpu_ns_per_open);
        put_metric(row, "daemon_cpu_ns_per_open", s.daemon_cpu_ns_per_open);
        put_metric(row, "rss_bytes", s.rss_bytes);
        put_metric(row, "hwm_bytes", s.hwm_bytes);
        put_metric(row, "rss_anon_bytes", s.rss_anon_bytes);
        put_metric(row, "rss_file_bytes", s.rss_file_bytes);
        put_metric(row, "rss_shmem_bytes", s.rss_shmem_bytes);
        put_metric(row, "rss_base_bytes", s.rss_base_bytes);
        put_metric(row, "line_rtt_ns", s.line_rtt_ns);
        row["run_details"] = run_details(s);
        put_metric(row, "cpu_percent", s.cpu_percent);
        put_metric(row, "wakeups_per_s", s.wakeups_per_s);
        results.push_back(std::move(row));
    }
    doc["results"] = std::move(results);
    nlohmann::ordered_json goals = nlohmann::ordered_json::array();
    for (const Target& t : targets) {
        const auto number = [](const std::optional<double>& v) {
            return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
        };
        goals.push_back({
            {"id", t.id},
            {"name", t.name},
            {"goal", t.goal},
            {"information", t.information},
            {"ratio", number(t.ratio)},
            {"median_ratio", number(t.median_ratio)},
            {"matched_rounds", t.matched_rounds},
            {"value", number(t.value)},
            {"met", t.met ? nlohmann::ordered_json(*t.met) : nlohmann::ordered_json(nullptr)},
            {"floor_ratio", number(t.floor_ratio)},
            {"raw_ring", number(t.raw_ring)},
            {"raw_ring_metric", t.raw_ring_metric.empty()
                                    ? nlohmann::ordered_json(nullptr)
                                    : nlohmann::ordered_json(t.raw_ring_metric)},
            {"basis", t.basis},
        });
    }
    doc["targets"] = std::move(goals);
    return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string write_plot_data(const std::string& dir, const std::vector<Summary>& summaries) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        return "cannot create " + dir + ": " + ec.message();
    }
    const fs::path base{dir};

    // Percentiles at 128 B, one pair of processes, plus the raw futex floor.
    std::ostringstream lat;
    lat << "# label p50_us p90_us p99_us p999_us\n";
    for (const Summary& s : summaries) {
        const Scenario& sc = s.scenario;
        const bool pick = sc.test == Test::latency && is_pairwise(sc) &&
                          (sc.msg_size == 128 || sc.transport == Transport::futex_raw);
        if (s.skipped || !pick || s.good_runs() == 0) {
            continue;
        }
        lat << quoted(sc.label()) << ' ' << number(s.p50_ns, 1e3) << ' ' << number(s.p90_ns, 1e3)
            << ' ' << number(s.p99_ns, 1e3) << ' ' << number(s.p999_ns, 1e3) << '\n';
    }

    // Messages per second at 128 B, one message per publish and 64.
    std::vector<std::string> labels;
    std::map<std::string, std::pair<std::string, std::string>> rates;
    for (const Summary& s : summaries) {
        const Scenario& sc = s.scenario;
        if (s.skipped || sc.test != Test::throughput || !is_pairwise(sc) || sc.msg_size != 128) {
            continue;
        }
        if (rates.find(sc.label()) == rates.end()) {
            labels.push_back(sc.label());
            rates[sc.label()] = {"NaN", "NaN"};
        }
        (sc.batch == 1 ? rates[sc.label()].first : rates[sc.label()].second) =
            number(s.msgs_per_s, 1e6);
    }
    std::ostringstream tp;
    tp << "# label batch1_Mmsgs_per_s batch64_Mmsgs_per_s\n";
    for (const auto& l : labels) {
        tp << quoted(l) << ' ' << rates[l].first << ' ' << rates[l].second << '\n';
    }

    const auto pairwise_latency = [](const Scenario& sc) {
        return sc.test == Test::latency && is_pairwise(sc) && sc.transport != Transport::futex_raw;
    };
    const auto bandwidth = [](const Scenario& sc) { return sc.test == Test::bandwidth; };

    for (const auto& [name, text] :
         {std::pair{"latency_128.dat", lat.str()}, std::pair{"throughput_128.dat", tp.str()},
          std::pair{"latency_size.dat", wide(
                                            summaries, pairwise_latency,
                                            [](const Summary& s) { return s.p50_ns; }, 1e3)},
          std::pair{"bandwidth.dat", wide(
                                         summaries, bandwidth,
                                         [](const Summary& s) { return s.bytes_per_s; }, 1e9)}}) {
        if (std::string e = write_file(base / name, text); !e.empty()) {
            return e;
        }
    }
    return {};
}

} // namespace bench
