// Checks the shape of a shmbus-bench JSON report (the bench_smoke test): every key the
// documentation promises is there with the right type, null exactly where a metric does
// not apply to the row's test, at least one configuration ran, every test of the tiny
// suite (the control plane's included) has its row, the gateway's rows (two daemons joined by
// a bridge) are there, every target has its keys, the data path's targets are all listed,
// and the latency targets carry the raw ring's figure. Timings are not judged: a benchmark
// is never a timed test.
//
// Usage: bench_smoke_check REPORT.json. Prints every problem found; exit status 1 if any.

#include <nlohmann/json.hpp>

#include <array>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <utility>

namespace {

using nlohmann::json;

class Checker {
public:
    void require(bool ok, const std::string& what) {
        if (!ok) {
            std::cerr << "bench_smoke_check: " << what << '\n';
            ++problems_;
        }
    }
    [[nodiscard]] int problems() const { return problems_; }

private:
    int problems_{0};
};

bool one_of(const json& v, std::initializer_list<const char*> names) {
    if (!v.is_string()) {
        return false;
    }
    for (const char* n : names) {
        if (v.get<std::string>() == n) {
            return true;
        }
    }
    return false;
}

constexpr std::array kLatencyKeys{"p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"};
constexpr std::array kStreamKeys{"msgs_per_s", "bytes_per_s", "cpu_ns_per_msg"};
// The control plane's metrics, and the test whose rows have them.
constexpr std::array<std::pair<const char*, const char*>, 6> kControlKeys{{
    {"opens_per_s", "control-open"},
    {"client_cpu_ns_per_open", "control-open"},
    {"rss_bytes", "daemon-rss"},
    {"hwm_bytes", "daemon-rss"},
    {"rss_base_bytes", "daemon-rss"},
    {"cpu_percent", "daemon-idle-cpu"},
}};
constexpr std::array kTests{"latency",      "round-trip", "throughput",     "bandwidth",
                            "control-open", "daemon-rss", "daemon-idle-cpu"};

void check_row(Checker& c, const json& row, const std::string& at) {
    if (!row.is_object()) {
        c.require(false, at + " is not an object");
        return;
    }
    c.require(one_of(row.value("transport", json{}),
                     {"shmbus", "shmbus-c", "python", "fifo", "uds-stream", "uds-seqpacket", "tcp",
                      "posix-mq", "futex-raw", "memcpy", "raw-ring", "shmbusd", "bridge",
                      "blackboard-read", "local-read", "pool-handoff", "queue-copy"}),
              at + ".transport is not a known transport");
    const json kind = row.value("kind", json{"missing"});
    c.require(kind.is_null() || one_of(kind, {"queue-spsc", "queue-mpmc", "broadcast-block",
                                              "broadcast-drop", "rpc"}),
              at + ".kind is neither null nor a known kind");
    const json wait = row.value("wait", json{"missing"});
    c.require(wait.is_null() || one_of(wait, {"spin", "adaptive", "futex"}),
              at + ".wait is neither null nor a known wait mode");
    const json load = row.value("bridge_load", json{"missing"});
    c.require(load.is_null() || one_of(load, {"idle", "streaming", "large-stream"}),
              at + ".bridge_load is neither null nor a known load");
    const json rate = row.value("rate_hz", json{"missing"});
    c.require(rate.is_null() || rate.is_number_unsigned(),
              at + ".rate_hz is neither null nor an unsigned integer");
    const json test = row.value("test", json{});
    c.require(one_of(test, {"latency", "round-trip", "throughput", "bandwidth", "control-open",
                            "daemon-rss", "daemon-idle-cpu"}),
              at + ".test is unknown");
    for (const char* key : {"msg_size", "batch", "subscribers", "runs"}) {
        c.require(row.contains(key) && row[key].is_number_unsigned(),
                  at + "." + key + " is not an unsigned integer");
    }
    const bool control = one_of(test, {"control-open", "daemon-rss", "daemon-idle-cpu"});
    for (const char* key : {"channels", "clients"}) {
        const json v = row.value(key, json{"missing"});
        c.require(control ? v.is_number_unsigned() : v.is_null(),
                  at + "." + key +
                      (control ? " is not an unsigned integer"
                               : " is not null outside the control-plane tests"));
    }
    const json status = row.value("status", json{});
    c.require(one_of(status, {"ok", "failed", "skipped"}), at + ".status is unknown");

    const bool ok = status == "ok";
    const bool latency = test == "latency" || test == "round-trip" || test == "control-open";
    const bool stream = test == "throughput" || test == "bandwidth";
    const std::string row_kind = test.is_string() ? test.get<std::string>() : "?";
    // expect_value: whether an ok row must have a number (true) or null (false); nullopt:
    // either.
    const auto check_metric = [&](const std::string& key, std::optional<bool> expect_value) {
        for (const std::string& k : {key, key + "_min", key + "_max"}) {
            std::string where = at;
            where += '.';
            where += k;
            if (!row.contains(k)) {
                c.require(false, where + " is missing");
                continue;
            }
            const json& v = row[k];
            c.require(v.is_null() || v.is_number(), where + " is neither null nor a number");
            if (ok && expect_value) {
                where += *expect_value ? " should be a number for a " : " should be null for a ";
                where += row_kind;
                where += " row";
                c.require(*expect_value ? v.is_number() : v.is_null(), where);
            }
        }
    };
    for (const char* key : kLatencyKeys) {
        check_metric(key, latency);
    }
    for (const char* key : kStreamKeys) {
        check_metric(key, stream);
    }
    for (const auto& [key, owner] : kControlKeys) {
        check_metric(key, test == owner);
    }
    // Measured only where a run is pinned to two cores or more: present, but may be null.
    check_metric("line_rtt_ns", std::nullopt);
    // The bridge daemons' CPU: on the bridge's stream rows only.
    const bool bridge_stream = stream && row.value("transport", json{}) == "bridge";
    for (const char* key : {"bridge_out_cpu_ns_per_msg", "bridge_in_cpu_ns_per_msg"}) {
        check_metric(key, bridge_stream ? std::nullopt : std::optional<bool>{false});
    }
    const json details = row.value("run_details", json{});
    c.require(details.is_array(), at + ".run_details is not an array");
    for (std::size_t i = 0; details.is_array() && i < details.size(); ++i) {
        const json& d = details[i];
        const std::string where = at + ".run_details[" + std::to_string(i) + "]";
        c.require(d.is_object() && d.value("ok", json{}).is_boolean(),
                  where + ".ok is not a boolean");
        for (const char* k :
             {"p50_ns", "p99_ns", "msgs_per_s", "bytes_per_s", "opens_per_s", "line_rtt_ns"}) {
            c.require(d.is_object() && d.contains(k) && (d[k].is_null() || d[k].is_number()),
                      where + "." + k + " is missing or neither null nor a number");
        }
    }
    if (ok && details.is_array()) {
        c.require(details.size() >= row["runs"].get<std::size_t>(),
                  at + ".run_details has fewer entries than runs");
    }
    c.require(row.contains("lost") && (row["lost"].is_null() || row["lost"].is_number_unsigned()),
              at + ".lost is neither null nor an unsigned integer");
    if (ok) {
        c.require(row["runs"].is_number_unsigned() && row["runs"].get<unsigned>() >= 1,
                  at + ".runs is 0 for a row that ran");
    }
}

// The data path's targets (docs/benchmarks.md, "Targets"): present in every report, measured
// or not, each with the raw ring's figure where the raw ring runs the same test.
constexpr std::array kDataPathTargets{"spsc-p50-vs-raw-ring",
                                      "spsc-p99-vs-raw-ring",
                                      "one-per-publish-vs-raw-ring",
                                      "batched-vs-raw-ring",
                                      "zero-copy-64k-vs-raw-ring",
                                      "broadcast-1-vs-spsc",
                                      "broadcast-64-vs-spsc",
                                      "mpmc-1-vs-spsc",
                                      "mpmc-64-vs-spsc",
                                      "futex-vs-raw-futex"};

void check_targets(Checker& c, const json& targets) {
    c.require(targets.is_array(), "targets is missing");
    if (!targets.is_array()) {
        return;
    }
    bool raw_ring_given = false;
    for (std::size_t i = 0; i < targets.size(); ++i) {
        const json& t = targets[i];
        const std::string at = "targets[" + std::to_string(i) + "]";
        if (!t.is_object()) {
            c.require(false, at + " is not an object");
            continue;
        }
        for (const char* key : {"id", "name", "goal", "basis"}) {
            c.require(t.value(key, json{}).is_string(), at + "." + key + " is not a string");
        }
        c.require(t.value("information", json{}).is_boolean(),
                  at + ".information is not a boolean");
        for (const char* key : {"ratio", "median_ratio", "value", "floor_ratio", "raw_ring"}) {
            c.require(t.contains(key) && (t[key].is_null() || t[key].is_number()),
                      at + "." + key + " is neither null nor a number");
        }
        const json metric = t.value("raw_ring_metric", json{"missing"});
        c.require(metric.is_null() ||
                      one_of(metric, {"p50_ns", "p99_ns", "msgs_per_s", "bytes_per_s"}),
                  at + ".raw_ring_metric is neither null nor a known metric");
        c.require(t.contains("met") && (t["met"].is_null() || t["met"].is_boolean()),
                  at + ".met is neither null nor a boolean");
        c.require(t.value("matched_rounds", json{}).is_number_unsigned(),
                  at + ".matched_rounds is not an unsigned integer");
        c.require(!(t.value("information", false) && t.contains("met") && !t["met"].is_null()),
                  at + " is information but has a met");
        raw_ring_given = raw_ring_given || (t.contains("raw_ring") && t["raw_ring"].is_number());
    }
    for (const char* id : kDataPathTargets) {
        bool found = false;
        for (const json& t : targets) {
            found = found || (t.is_object() && t.value("id", json{}) == id);
        }
        c.require(found, std::string{"no target "} + id);
    }
    // The tiny suite measures shmbus spin and raw-ring latency at 128 B, so the latency
    // targets have the raw ring's figure.
    c.require(raw_ring_given, "no target has the raw ring's figure");
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: bench_smoke_check REPORT.json\n";
        return 2;
    }
    Checker c;
    try {
        std::ifstream in{argv[1]};
        c.require(static_cast<bool>(in), std::string{"cannot open "} + argv[1]);
        const json doc = json::parse(in);
        c.require(doc.is_object(), "the report is not a JSON object");
        const json machine = doc.value("machine", json{});
        c.require(machine.is_object(), "machine is missing");
        for (const char* key : {"cpu_model", "kernel", "compiler", "build_type"}) {
            c.require(machine.contains(key) && machine[key].is_string(),
                      std::string{"machine."} + key + " is not a string");
        }
        c.require(machine.contains("cores") && machine["cores"].is_number_unsigned(),
                  "machine.cores is not an unsigned integer");
        c.require(doc.contains("command") && doc["command"].is_string() &&
                      !doc["command"].get<std::string>().empty(),
                  "command is not a non-empty string");
        const json results = doc.value("results", json{});
        c.require(results.is_array() && !results.empty(), "results is not a non-empty array");
        int ran = 0;
        for (std::size_t i = 0; results.is_array() && i < results.size(); ++i) {
            check_row(c, results[i], "results[" + std::to_string(i) + "]");
            ran += results[i].value("status", "") == "ok" ? 1 : 0;
        }
        c.require(ran > 0, "no configuration ran");
        for (const char* t : kTests) {
            bool found = false;
            for (std::size_t i = 0; results.is_array() && i < results.size(); ++i) {
                found = found || results[i].value("test", json{}) == t;
            }
            c.require(found, std::string{"no row of test "} + t);
        }
        bool bridged = false;
        for (std::size_t i = 0; results.is_array() && i < results.size(); ++i) {
            bridged = bridged || results[i].value("transport", json{}) == "bridge";
        }
        c.require(bridged, "no row of transport bridge (two daemons joined by a bridge)");
        check_targets(c, doc.value("targets", json{}));
    } catch (const json::exception& e) {
        c.require(false, std::string{"invalid JSON: "} + e.what());
    }
    if (c.problems() == 0) {
        std::cout << "bench_smoke_check: report shape is valid\n";
    }
    return c.problems() == 0 ? 0 : 1;
}
