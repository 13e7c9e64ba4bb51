// Targets: see targets.hpp. The goals are the issues', verbatim in the names.

#include "targets.hpp"

#include "format.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <functional>
#include <utility>

namespace bench {
namespace {

using Pick = std::function<bool(const Scenario&)>;

const Summary* find(const std::vector<Summary>& all, const Pick& pick) {
    for (const Summary& s : all) {
        if (!s.skipped && s.good_runs() > 0 && pick(s.scenario)) {
            return &s;
        }
    }
    return nullptr;
}

/// A shmbus stream or ping-pong of `kind` (one publisher and `subscribers` readers; MPMC is
/// always 2 publishers and 2 consumers, see scenario.cpp).
Pick shm(Kind kind, Wait w, Test t, std::uint64_t size, std::uint32_t batch = 1,
         std::uint32_t subscribers = 1) {
    return [=](const Scenario& s) {
        return s.transport == Transport::shmbus && s.kind == kind && s.wait == w && s.test == t &&
               s.msg_size == size && s.batch == batch &&
               (kind == Kind::queue_mpmc || s.subscribers == subscribers);
    };
}

Pick spsc(Wait w, Test t, std::uint64_t size, std::uint32_t batch = 1) {
    return shm(Kind::queue_spsc, w, t, size, batch);
}

Pick baseline(Transport tr, Test t, std::uint64_t size, std::uint32_t batch = 1) {
    return [=](const Scenario& s) {
        return s.transport == tr && s.test == t && s.msg_size == size && s.batch == batch;
    };
}

Pick raw_ring(Test t, std::uint64_t size, std::uint32_t batch = 1) {
    return baseline(Transport::raw_ring, t, size, batch);
}

/// The figure a target compares, and how it is named in the JSON report and shown.
enum class Metric { p50, p99, rate, bytes, min_sub_rate, opens };

const std::optional<Spread>* figure(const Summary* s, Metric m) {
    if (s == nullptr) {
        return nullptr;
    }
    switch (m) {
    case Metric::p50:
        return &s->p50_ns;
    case Metric::p99:
        return &s->p99_ns;
    case Metric::rate:
        return &s->msgs_per_s;
    case Metric::bytes:
        return &s->bytes_per_s;
    case Metric::min_sub_rate:
        return &s->min_sub_msgs_per_s;
    case Metric::opens:
        return &s->opens_per_s;
    }
    return nullptr;
}

const char* metric_name(Metric m) {
    switch (m) {
    case Metric::p50:
        return "p50_ns";
    case Metric::p99:
        return "p99_ns";
    case Metric::bytes:
        return "bytes_per_s";
    case Metric::opens:
        return "opens_per_s";
    default:
        return "msgs_per_s";
    }
}

Unit unit_of(Metric m) {
    switch (m) {
    case Metric::p50:
    case Metric::p99:
        return Unit::ns;
    case Metric::bytes:
        return Unit::bytes;
    default:
        return Unit::rate;
    }
}

/// One run's figure of `m`, if the run succeeded and has it.
std::optional<double> run_figure(const RunResult& r, Metric m) {
    if (!r.ok()) {
        return std::nullopt;
    }
    switch (m) {
    case Metric::p50:
        return r.p50_ns;
    case Metric::p99:
        return r.p99_ns;
    case Metric::rate:
        return r.msgs_per_s;
    case Metric::bytes:
        return r.bytes_per_s;
    case Metric::min_sub_rate:
        return r.min_sub_msgs_per_s;
    case Metric::opens:
        return r.opens_per_s;
    }
    return std::nullopt;
}

/// One side of a ratio: a summary, the figure taken from it (times `scale`: an rpc round trip
/// is set against two one-way trips), and its name in the basis.
struct Side {
    const Summary* summary;
    Metric metric;
    std::string label;
    double scale{1.0};
    [[nodiscard]] const std::optional<Spread>* spread() const { return figure(summary, metric); }
    /// The median of the figure, scaled; call only when spread() holds one.
    [[nodiscard]] double median() const { return scale * (*spread())->median; }
};

/// The median ratio num / den, if both sides were measured.
std::optional<double> median_ratio(const Side& num, const Side& den) {
    const std::optional<Spread>* n = num.spread();
    const std::optional<Spread>* d = den.spread();
    if (n == nullptr || d == nullptr || !*n || !*d || den.median() <= 0) {
        return std::nullopt;
    }
    return num.median() / den.median();
}

/// Whether two runs had the same placement: line RTTs within kSamePlacement of each other,
/// or unknown for either (unpinned, one process).
constexpr double kSamePlacement = 1.5;
bool same_placement(const RunResult& a, const RunResult& b) {
    if (!a.line_rtt_ns || !b.line_rtt_ns || *a.line_rtt_ns <= 0 || *b.line_rtt_ns <= 0) {
        return true;
    }
    return std::max(*a.line_rtt_ns, *b.line_rtt_ns) <=
           kSamePlacement * std::min(*a.line_rtt_ns, *b.line_rtt_ns);
}

/// The ratio num / den taken round by round (run i of each side ran in round i, minutes
/// apart at most) over the rounds whose runs had the same placement, and its median: on a
/// VM whose vCPUs the host moves between near and far cores, a ratio of medians can set a
/// far run of one side against a near run of the other.
struct Matched {
    std::optional<double> ratio;
    std::size_t rounds{0};
};
Matched placement_matched(const Side& num, const Side& den) {
    Matched m;
    if (num.summary == nullptr || den.summary == nullptr) {
        return m;
    }
    const std::vector<RunResult>& a = num.summary->runs;
    const std::vector<RunResult>& b = den.summary->runs;
    std::vector<std::optional<double>> ratios;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        const auto x = run_figure(a[i], num.metric);
        const auto y = run_figure(b[i], den.metric);
        if (x && y && *y > 0 && same_placement(a[i], b[i])) {
            ratios.emplace_back(num.scale * *x / (den.scale * *y));
        }
    }
    m.rounds = ratios.size();
    if (const auto spread = spread_of(ratios)) {
        m.ratio = spread->median;
    }
    return m;
}

/// A target "num / den >= goal" (or "<= goal" when `at_most`), judged on the
/// placement-matched ratio, or on the ratio of medians when no round matched.
Target ratio_target(std::string id, std::string name, double goal, bool at_most, const Side& num,
                    const Side& den) {
    Target t;
    t.id = std::move(id);
    t.name = std::move(name);
    t.goal = (at_most ? "<= " : ">= ") + format_ratio(goal);
    t.median_ratio = median_ratio(num, den);
    if (!t.median_ratio) {
        t.basis = "not measured in this run";
        return t;
    }
    const Matched matched = placement_matched(num, den);
    t.matched_rounds = matched.rounds;
    t.ratio = matched.ratio ? matched.ratio : t.median_ratio;
    t.measured = format_ratio(*t.ratio);
    t.met = at_most ? *t.ratio <= goal : *t.ratio >= goal;
    t.basis =
        num.label + " " + format_value(num.median(), unit_of(num.metric)) + " / " + den.label +
        " " + format_value(den.median(), unit_of(den.metric)) + " = " +
        format_ratio(*t.median_ratio) +
        (matched.ratio
             ? "; placement-matched in " + std::to_string(matched.rounds) + " of " +
                   std::to_string(std::min(num.summary->runs.size(), den.summary->runs.size())) +
                   " rounds"
             : "; no round with one placement: ratio of medians");
    return t;
}

/// Records on `t` the raw ring's own figure of `metric` from `raw`, if it ran.
void add_raw_ring(Target& t, const Summary* raw, Metric metric) {
    t.raw_ring_metric = metric_name(metric);
    const std::optional<Spread>* f = figure(raw, metric);
    if (f != nullptr && *f) {
        t.raw_ring = (*f)->median;
    }
}

/// An information row: `num / den` as measured, and the same ratio with the raw ring in
/// shmbus's place (`floor_num / floor_den`), with no goal. Left out when not measured.
void add_information(std::vector<Target>& out, std::string id, std::string name, const Side& num,
                     const Side& den, const Side& floor_num, const Side& floor_den,
                     const Summary* raw, Metric raw_metric) {
    Target t = ratio_target(std::move(id), std::move(name), 1, false, num, den);
    if (!t.ratio) {
        return;
    }
    t.goal = "information";
    t.information = true;
    t.met.reset();
    const Matched floor = placement_matched(floor_num, floor_den);
    t.floor_ratio = floor.ratio ? floor.ratio : median_ratio(floor_num, floor_den);
    if (t.floor_ratio) {
        t.basis += "; raw-ring " + format_ratio(*t.floor_ratio);
    }
    add_raw_ring(t, raw, raw_metric);
    out.push_back(std::move(t));
}

Pick control(Test test, std::uint32_t channels, std::uint32_t clients) {
    return [=](const Scenario& s) {
        return s.control_plane() && s.test == test && s.channels == channels &&
               s.clients == clients;
    };
}

/// A target "figure >= goal" (or "<= goal" when `at_most`) on the median of `figure`.
Target absolute_target(std::string id, std::string name, std::string goal_text, double goal,
                       bool at_most, const std::optional<Spread>* figure, Unit unit) {
    Target t;
    t.id = std::move(id);
    t.name = std::move(name);
    t.goal = std::move(goal_text);
    if (figure == nullptr || !*figure) {
        t.basis = "not measured in this run";
        return t;
    }
    t.value = (*figure)->median;
    t.measured = format_value(*t.value, unit);
    t.met = at_most ? *t.value <= goal : *t.value >= goal;
    t.basis = "median of " + format_spread(*figure, unit);
    return t;
}

/// The SPSC queue against the raw ring: latency, one and 64 per publish, 64 KiB zero-copy.
void spsc_targets(const std::vector<Summary>& all, std::vector<Target>& out) {
    const Summary* spin_lat = find(all, spsc(Wait::spin, Test::latency, 128));
    const Summary* raw_lat = find(all, raw_ring(Test::latency, 128));
    out.push_back(ratio_target(
        "spsc-p50-vs-raw-ring", "SPSC spin one-way p50 <= 1.10x raw ring (128 B)", 1.10, true,
        {spin_lat, Metric::p50, "spin"}, {raw_lat, Metric::p50, "raw-ring"}));
    add_raw_ring(out.back(), raw_lat, Metric::p50);
    out.push_back(ratio_target(
        "spsc-p99-vs-raw-ring", "SPSC spin one-way p99 <= 1.25x raw ring (128 B)", 1.25, true,
        {spin_lat, Metric::p99, "spin"}, {raw_lat, Metric::p99, "raw-ring"}));
    add_raw_ring(out.back(), raw_lat, Metric::p99);

    for (const std::uint32_t batch : {1U, 64U}) {
        const Summary* tp = find(all, spsc(Wait::spin, Test::throughput, 128, batch));
        const Summary* raw = find(all, raw_ring(Test::throughput, 128, batch));
        if (batch == 1) {
            out.push_back(ratio_target("one-per-publish-vs-raw-ring",
                                       "1 msg per publish >= 0.90x raw ring msgs/s (128 B, spin)",
                                       0.90, false, {tp, Metric::rate, "shmbus spin"},
                                       {raw, Metric::rate, "raw-ring"}));
        } else {
            out.push_back(ratio_target("batched-vs-raw-ring",
                                       "batched (64 per publish) >= 1.0x raw ring msgs/s "
                                       "(128 B, spin)",
                                       1.0, false, {tp, Metric::rate, "shmbus spin"},
                                       {raw, Metric::rate, "raw-ring"}));
        }
        add_raw_ring(out.back(), raw, Metric::rate);
    }

    const Summary* zero_copy = find(all, spsc(Wait::spin, Test::bandwidth, 64ULL * 1024));
    const Summary* raw_bw = find(all, raw_ring(Test::bandwidth, 64ULL * 1024));
    out.push_back(ratio_target(
        "zero-copy-64k-vs-raw-ring", "64 KiB zero-copy >= 0.95x raw ring bytes/s (spin)", 0.95,
        false, {zero_copy, Metric::bytes, "zero-copy"}, {raw_bw, Metric::bytes, "raw-ring"}));
    add_raw_ring(out.back(), raw_bw, Metric::bytes);
}

/// Broadcast with one subscriber and MPMC 2+2 against the SPSC queue, adaptive, 1 and 64 per
/// publish.
void kind_targets(const std::vector<Summary>& all, std::vector<Target>& out) {
    for (const std::uint32_t batch : {1U, 64U}) {
        const std::string per = std::to_string(batch) + " per publish";
        const std::string id_per = std::to_string(batch);
        const Summary* base = find(all, spsc(Wait::adaptive, Test::throughput, 128, batch));
        const Summary* raw = find(all, raw_ring(Test::throughput, 128, batch));
        const Summary* bcast =
            find(all, shm(Kind::broadcast_block, Wait::adaptive, Test::throughput, 128, batch));
        out.push_back(ratio_target(
            "broadcast-" + id_per + "-vs-spsc",
            "broadcast, 1 subscriber, " + per + " >= 0.80x SPSC msgs/s (128 B, adaptive)", 0.80,
            false, {bcast, Metric::rate, "broadcast-block"}, {base, Metric::rate, "queue-spsc"}));
        add_raw_ring(out.back(), raw, Metric::rate);
        const Summary* mpmc =
            find(all, shm(Kind::queue_mpmc, Wait::adaptive, Test::throughput, 128, batch));
        out.push_back(ratio_target("mpmc-" + id_per + "-vs-spsc",
                                   "MPMC 2+2, " + per + " >= 0.5x SPSC msgs/s (128 B, adaptive)",
                                   0.5, false, {mpmc, Metric::rate, "queue-mpmc 2x2"},
                                   {base, Metric::rate, "queue-spsc"}));
        add_raw_ring(out.back(), raw, Metric::rate);
    }
}

/// The kernel transports, as information: how far shmbus (and the raw ring) is from each.
void kernel_ratios(const std::vector<Summary>& all, std::vector<Target>& out) {
    const Summary* spin_lat = find(all, spsc(Wait::spin, Test::latency, 128));
    const Summary* raw_lat = find(all, raw_ring(Test::latency, 128));
    constexpr std::array kKernel{Transport::fifo, Transport::uds_stream, Transport::uds_seqpacket,
                                 Transport::tcp};
    for (const Transport tr : kKernel) {
        const std::string name{to_string(tr)};
        const Summary* lat = find(all, baseline(tr, Test::latency, 128));
        add_information(out, "p50-vs-" + name, "spin p50 lower than " + name + " p50 (128 B)",
                        {lat, Metric::p50, name}, {spin_lat, Metric::p50, "spin"},
                        {lat, Metric::p50, name}, {raw_lat, Metric::p50, "raw-ring"}, raw_lat,
                        Metric::p50);
        for (const std::uint32_t batch : {1U, 64U}) {
            const Summary* tp = find(all, spsc(Wait::spin, Test::throughput, 128, batch));
            const Summary* raw = find(all, raw_ring(Test::throughput, 128, batch));
            const Summary* kernel = find(all, baseline(tr, Test::throughput, 128, batch));
            const bool one = batch == 1;
            add_information(out, (one ? "one-per-publish-vs-" : "batched-vs-") + name,
                            one ? "1 msg per publish against " + name + " msgs/s (128 B)"
                                : "batched (64) against " + name + " writing 64 per write (128 B)",
                            {tp, Metric::rate, "shmbus spin"}, {kernel, Metric::rate, name},
                            {raw, Metric::rate, "raw-ring"}, {kernel, Metric::rate, name}, raw,
                            Metric::rate);
        }
    }
}

void control_plane_targets(const std::vector<Summary>& all, std::vector<Target>& out) {
    const Summary* opens = find(all, control(Test::control_open, 1, 1));
    out.push_back(absolute_target(
        "channel-opens", "channel opens (connect, hello, open, fd received, mapped), one client",
        ">= 5000/s", 5000, false, opens != nullptr ? &opens->opens_per_s : nullptr, Unit::rate));
    if (opens != nullptr && opens->daemon_cpu_ns_per_open) {
        out.back().basis += "; daemon CPU " +
                            format_value(opens->daemon_cpu_ns_per_open->median, Unit::ns) +
                            " per open";
    }

    const Summary* rss = find(all, control(Test::daemon_rss, 100, 200));
    out.push_back(absolute_target(
        "daemon-rss", "daemon RSS with 100 channels and 200 connected clients", "<= 10 MB", 10e6,
        true, rss != nullptr ? &rss->rss_bytes : nullptr, Unit::memory));
    if (rss != nullptr && rss->hwm_bytes) {
        out.back().basis += "; VmHWM " + format_value(rss->hwm_bytes->median, Unit::memory);
    }

    // "0 %": nothing polls, so the daemon does not run at all. 0.01 % of a core (100 µs a
    // second) leaves room for the last reply of the set-up still on its way out.
    const Summary* idle = find(all, control(Test::daemon_idle_cpu, 100, 200));
    out.push_back(absolute_target(
        "daemon-idle-cpu", "0% CPU when idle (100 channels, 200 clients connected)", "<= 0.01 %",
        0.01, true, idle != nullptr ? &idle->cpu_percent : nullptr, Unit::percent));
    if (idle != nullptr && idle->wakeups_per_s) {
        out.back().basis +=
            "; " + format_value(idle->wakeups_per_s->median, Unit::rate) + " wake-ups";
    }
}

/// A row through the bridge (Load::none), or one of its isolation rows (`load`).
Pick bridge_row(Test t, std::uint64_t size, std::uint32_t batch, Load load = Load::none) {
    return [=](const Scenario& s) {
        return s.transport == Transport::bridge && s.load == load && s.test == t &&
               s.msg_size == size && s.batch == batch;
    };
}

/// A gateway target: `numerator`'s `metric` over `denominator`'s, against `goal`.
struct BridgeGoal {
    const char* id;
    const char* name;
    double goal;
    bool at_most;
    Pick numerator;
    Pick denominator;
    Metric metric;
    const char* numerator_name;
    const char* denominator_name;
};

/// The bridge's 100 Hz channel (rate_hz 100, 128 B), idle or beside a 64 MiB stream.
Pick paced_row(Load load) {
    return [=](const Scenario& s) {
        return s.transport == Transport::bridge && s.rate_hz == 100 && s.load == load &&
               s.test == Test::latency && s.msg_size == 128;
    };
}

/// A large message holds a 100 Hz channel up by at most a few fragments' time: the paced
/// channel's p99 beside a 64 MiB stream, less its p99 with the bridge otherwise idle, in
/// fragments of 256 KiB at the 64 MiB row's bandwidth through the bridge (same run), at most
/// kFragmentsAhead. Judged on the medians of the three rows.
Target paced_beside_large_target(const std::vector<Summary>& all) {
    constexpr double kFragmentsAhead = 4;
    constexpr double kFragmentBytes = 256.0 * 1024;
    Target t;
    t.id = "bridge-100hz-p99-beside-64m";
    t.name = "100 Hz channel's p99 beside a 64 MiB stream <= its p99 with the bridge idle + 4 "
             "fragments' time (256 KiB each, at the 64 MiB bandwidth)";
    t.goal = "<= 4 fragments";
    const Summary* beside = find(all, paced_row(Load::large));
    const Summary* idle = find(all, paced_row(Load::none));
    const Summary* bulk = find(all, bridge_row(Test::bandwidth, kLargeBeside, 1));
    if (beside == nullptr || idle == nullptr || bulk == nullptr || !beside->p99_ns ||
        !idle->p99_ns || !bulk->bytes_per_s || bulk->bytes_per_s->median <= 0) {
        t.basis = "not measured in this run";
        return t;
    }
    const double fragment_ns = kFragmentBytes / bulk->bytes_per_s->median * 1e9;
    const double added_ns = beside->p99_ns->median - idle->p99_ns->median;
    t.value = added_ns / fragment_ns;
    char fragments[32];
    std::snprintf(fragments, sizeof fragments, "%.1f fragments", *t.value);
    t.measured = fragments;
    t.met = *t.value <= kFragmentsAhead;
    t.basis = "p99 beside 64 MiB " + format_value(beside->p99_ns->median, Unit::ns) + " - idle " +
              format_value(idle->p99_ns->median, Unit::ns) + " = " +
              format_value(added_ns, Unit::ns) + "; a fragment " +
              format_value(fragment_ns, Unit::ns) + " at " +
              format_value(bulk->bytes_per_s->median, Unit::bytes) + " (64 MiB row); max " +
              format_value(beside->max_ns ? beside->max_ns->median : 0, Unit::ns) + " beside, " +
              format_value(idle->max_ns ? idle->max_ns->median : 0, Unit::ns) + " idle";
    return t;
}

void bridge_targets(const std::vector<Summary>& all, std::vector<Target>& out) {
    constexpr std::uint64_t kKiB64 = 64ULL * 1024;
    constexpr std::uint64_t kMiB1 = 1ULL << 20;
    const BridgeGoal goals[] = {
        {"bridge-batched-vs-tcp", "bridged 128 B msgs/s (64 per publish) >= 0.5x tcp batched 64",
         0.5, false, bridge_row(Test::throughput, 128, 64),
         baseline(Transport::tcp, Test::throughput, 128, 64), Metric::rate, "bridge", "tcp"},
        {"bridge-p50-vs-tcp", "bridged one-way p50 <= 1.5x tcp one-way p50 (128 B)", 1.5, true,
         bridge_row(Test::latency, 128, 1), baseline(Transport::tcp, Test::latency, 128),
         Metric::p50, "bridge", "tcp"},
        {"bridge-64k-vs-tcp", "bridged 64 KiB bytes/s >= 0.7x tcp bandwidth", 0.7, false,
         bridge_row(Test::bandwidth, kKiB64, 1), baseline(Transport::tcp, Test::bandwidth, kKiB64),
         Metric::bytes, "bridge", "tcp"},
        // Messages sent in fragments (docs/gateway.md, "Fragments").
        {"bridge-1m-vs-tcp", "bridged 1 MiB bytes/s (in fragments) >= 0.7x tcp bandwidth", 0.7,
         false, bridge_row(Test::bandwidth, kMiB1, 1),
         baseline(Transport::tcp, Test::bandwidth, kMiB1), Metric::bytes, "bridge", "tcp"},
        {"bridge-64m-vs-tcp", "bridged 64 MiB bytes/s (in fragments) >= 0.7x tcp bandwidth", 0.7,
         false, bridge_row(Test::bandwidth, kLargeBeside, 1),
         baseline(Transport::tcp, Test::bandwidth, kLargeBeside), Metric::bytes, "bridge", "tcp"},
        // Isolation, on the exporting daemon: its bridge streaming against its bridge idle.
        {"bridge-opens-while-streaming",
         "channel opens/s with the bridge streaming >= 0.9x bridge idle (drop <= 10 %)", 0.9, false,
         bridge_row(Test::control_open, 128, 1, Load::streaming),
         bridge_row(Test::control_open, 128, 1, Load::idle), Metric::opens, "streaming", "idle"},
        {"bridge-local-p99-while-streaming",
         "local p99 on an exported channel, bridge streaming <= 1.1x bridge idle (rise <= 10 %)",
         1.1, true, bridge_row(Test::latency, 128, 1, Load::streaming),
         bridge_row(Test::latency, 128, 1, Load::idle), Metric::p99, "streaming", "idle"},
    };
    for (const BridgeGoal& g : goals) {
        out.push_back(ratio_target(g.id, g.name, g.goal, g.at_most,
                                   {find(all, g.numerator), g.metric, g.numerator_name},
                                   {find(all, g.denominator), g.metric, g.denominator_name}));
    }
    out.push_back(paced_beside_large_target(all));
}

/// The NATS path against the same messages through libnats alone (docs/nats.md).
void nats_targets(const std::vector<Summary>& all, std::vector<Target>& out) {
    for (const std::uint64_t size : {std::uint64_t{128}, std::uint64_t{4096}}) {
        const std::string id = "nats-vs-nats-raw-" + format_size(size);
        out.push_back(ratio_target(
            id,
            "daemon -> NATS -> daemon >= 0.8x libnats alone, msgs/s (" + format_size(size) + ")",
            0.8, false,
            {find(all, baseline(Transport::nats, Test::throughput, size)), Metric::rate, "nats"},
            {find(all, baseline(Transport::nats_raw, Test::throughput, size)), Metric::rate,
             "nats-raw"}));
    }
    // The latency the bridges add is stated, not held to a goal of its own: at most 1x says
    // that two daemons and their bridges cost no more than a plain libnats client's write
    // delay.
    const Side bridged{find(all, baseline(Transport::nats, Test::latency, 128)), Metric::p50,
                       "nats"};
    const Side raw{find(all, baseline(Transport::nats_raw, Test::latency, 128)), Metric::p50,
                   "nats-raw"};
    Target t = ratio_target("nats-p50-vs-nats-raw",
                            "daemon -> NATS -> daemon p50 latency <= libnats alone (128 B)", 1,
                            true, bridged, raw);
    if (t.ratio) {
        t.basis += "; difference " + format_value(bridged.median() - raw.median(), Unit::ns);
    }
    out.push_back(std::move(t));
}

} // namespace

std::vector<Target> evaluate_targets(const std::vector<Summary>& all) {
    std::vector<Target> out;
    spsc_targets(all, out);
    kind_targets(all, out);

    const Summary* spin_lat = find(all, spsc(Wait::spin, Test::latency, 128));
    const Summary* raw_lat = find(all, raw_ring(Test::latency, 128));
    const Summary* futex_lat = find(all, spsc(Wait::futex, Test::latency, 128));
    const Summary* raw_futex = find(all, [](const Scenario& s) {
        return s.transport == Transport::futex_raw && s.test == Test::latency;
    });
    out.push_back(ratio_target("futex-vs-raw-futex", "futex p50 <= 1.1x raw futex ping-pong p50",
                               1.1, true, {futex_lat, Metric::p50, "shmbus futex"},
                               {raw_futex, Metric::p50, "futex-raw"}));
    const Summary* adaptive_lat = find(all, spsc(Wait::adaptive, Test::latency, 128));
    out.push_back(ratio_target("adaptive-vs-spin", "adaptive p50 <= 3x spin p50 (128 B)", 3, true,
                               {adaptive_lat, Metric::p50, "adaptive"},
                               {spin_lat, Metric::p50, "spin"}));
    add_raw_ring(out.back(), raw_lat, Metric::p50);

    // An rpc call is a request one way and a reply the other: its whole round trip against
    // two one-way trips through the SPSC queue of the same run (its ping-pong round trip).
    const Summary* rpc_spin = find(all, [](const Scenario& s) {
        return s.transport == Transport::shmbus && s.kind == Kind::rpc && s.wait == Wait::spin &&
               s.test == Test::round_trip && s.msg_size == 128 && s.publishers == 1;
    });
    out.push_back(
        ratio_target("rpc-round-trip-vs-spsc",
                     "rpc busy-spin round trip p50 <= 1.25x two SPSC one-way p50s (128 B)", 1.25,
                     true, {rpc_spin, Metric::p50, "rpc round trip"},
                     {spin_lat, Metric::p50, "2x queue-spsc one-way", 2.0}));

    const Summary* tp1 = find(all, spsc(Wait::spin, Test::throughput, 128, 1));
    const Summary* raw_tp1 = find(all, raw_ring(Test::throughput, 128, 1));
    const Summary* c_tp1 = find(all, [](const Scenario& s) {
        return s.transport == Transport::shmbus_c && s.wait == Wait::spin &&
               s.test == Test::throughput && s.msg_size == 128 && s.batch == 1;
    });
    out.push_back(ratio_target(
        "c-abi-vs-cpp", "C ABI >= 0.90x C++ inline API msgs/s (128 B, 1 per publish)", 0.9, false,
        {c_tp1, Metric::rate, "shmbus-c spin"}, {tp1, Metric::rate, "shmbus spin"}));
    add_raw_ring(out.back(), raw_tp1, Metric::rate);

    // Broadcast fan-out: two conditions, one line.
    const Summary* one =
        find(all, shm(Kind::broadcast_block, Wait::adaptive, Test::throughput, 128));
    const Summary* three =
        find(all, shm(Kind::broadcast_block, Wait::adaptive, Test::throughput, 128, 1, 3));
    Target b = ratio_target(
        "broadcast-3-fan-out",
        "broadcast block, 1 pub 3 subs, adaptive: 0 lost, each sub >= 25% of 1-sub rate", 0.25,
        false, {three, Metric::min_sub_rate, "slowest of 3"}, {one, Metric::rate, "1 sub"});
    if (b.met && three->lost) {
        const double lost = three->lost->max;
        b.basis += ", lost " + format_count(lost);
        b.met = *b.met && lost == 0;
    }
    out.push_back(std::move(b));

    // A read costs 1/rate: local rate over blackboard rate is how many times dearer it is.
    const Summary* board_read =
        find(all, baseline(Transport::blackboard_read, Test::throughput, 64));
    const Summary* local_read = find(all, baseline(Transport::local_read, Test::throughput, 64));
    out.push_back(ratio_target("blackboard-read-vs-local-read",
                               "consistent 64 B blackboard read <= 2x a plain 64 B local read", 2,
                               true, {local_read, Metric::rate, "local-read"},
                               {board_read, Metric::rate, "blackboard-read"}));
    bridge_targets(all, out);
    // Payloads per second of 16 MiB: handed through a pool by handle over copied.
    constexpr std::uint64_t kFrame = std::uint64_t{16} << 20;
    const Summary* handed = find(all, baseline(Transport::pool_handoff, Test::throughput, kFrame));
    const Summary* copied = find(all, baseline(Transport::queue_copy, Test::throughput, kFrame));
    out.push_back(ratio_target("pool-handoff-vs-queue-copy",
                               "16 MiB payloads through a pool + queue >= 20x copied through a "
                               "16 MiB-slot queue",
                               20, false, {handed, Metric::rate, "pool-handoff"},
                               {copied, Metric::rate, "queue-copy"}));
    nats_targets(all, out);
    control_plane_targets(all, out);
    kernel_ratios(all, out);
    return out;
}

} // namespace bench
