// Statistics: percentiles over a full latency sample set, and median [min..max] over runs.
//
// A run yields one RunResult: latency percentiles computed from every sample (no
// histogram bucketing, no sampling), or rates and CPU cost for the streaming tests. A
// scenario repeated N times is summarised metric by metric as the median of the runs,
// with the smallest and largest run beside it, so that one disturbed run is visible
// instead of averaged away. Metrics that a test does not produce stay empty (null in JSON).
#pragma once

#include "scenario.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bench {

/// What one run of one scenario measured. Unset metrics do not apply to the test.
struct RunResult {
    std::string error; ///< empty when the run succeeded
    // Latency (one-way = RTT / 2), in nanoseconds.
    std::optional<double> p50_ns, p90_ns, p99_ns, p999_ns, max_ns, mean_ns;
    std::uint64_t samples{0};
    // Streaming tests.
    std::optional<double> msgs_per_s, bytes_per_s;
    std::optional<double> cpu_send_ns_per_msg, cpu_recv_ns_per_msg, cpu_ns_per_msg;
    std::optional<double> min_sub_msgs_per_s; ///< the slowest reader's own receive rate
    /// Through a bridge: the exporting and the importing daemon's CPU per message sent.
    std::optional<double> bridge_out_cpu_ns_per_msg, bridge_in_cpu_ns_per_msg;
    std::uint64_t lost{0};
    // Control plane (shmbusd). control-open fills the latency fields too, per open.
    std::optional<double> opens_per_s;
    std::optional<double> client_cpu_ns_per_open, daemon_cpu_ns_per_open;
    std::optional<double> rss_bytes, hwm_bytes, rss_anon_bytes, rss_file_bytes, rss_shmem_bytes;
    std::optional<double> rss_base_bytes; ///< VmRSS once ready, before any client connected
    std::optional<double> cpu_percent;    ///< of one core, over the idle interval
    std::optional<double> wakeups_per_s;  ///< times the daemon was scheduled in, per second
    /// A cache line's round trip between the run's first two cores, just before the run.
    std::optional<double> line_rtt_ns;

    [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

/// Fills the latency fields of `r` from `samples` (one-way nanoseconds); sorts them.
void summarise_latency(std::vector<std::uint32_t>& samples, RunResult& r);

/// A metric over the runs of a scenario.
struct Spread {
    double median{0};
    double min{0};
    double max{0};
};

/// Median [min..max] of the values present; nullopt if no run produced the metric.
[[nodiscard]] std::optional<Spread> spread_of(const std::vector<std::optional<double>>& values);

/// Every run of one scenario, and their spread per metric.
struct Summary {
    Scenario scenario;
    std::optional<std::string> skipped; ///< why the scenario did not run
    std::vector<RunResult> runs;
    std::optional<Spread> p50_ns, p90_ns, p99_ns, p999_ns, max_ns, mean_ns;
    std::optional<Spread> msgs_per_s, bytes_per_s;
    std::optional<Spread> cpu_send_ns_per_msg, cpu_recv_ns_per_msg, cpu_ns_per_msg;
    std::optional<Spread> min_sub_msgs_per_s;
    std::optional<Spread> bridge_out_cpu_ns_per_msg, bridge_in_cpu_ns_per_msg;
    std::optional<Spread> lost;
    std::optional<Spread> opens_per_s, client_cpu_ns_per_open, daemon_cpu_ns_per_open;
    std::optional<Spread> rss_bytes, hwm_bytes, rss_anon_bytes, rss_file_bytes, rss_shmem_bytes;
    std::optional<Spread> rss_base_bytes, cpu_percent, wakeups_per_s;
    std::optional<Spread> line_rtt_ns;

    /// Runs that succeeded.
    [[nodiscard]] std::uint32_t good_runs() const noexcept;
    /// The first error of a failed run, or empty.
    [[nodiscard]] std::string first_error() const;
};

/// Builds the per-metric spreads of `summary.runs` that succeeded.
void summarise_runs(Summary& summary);

} // namespace bench
