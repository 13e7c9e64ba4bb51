// Statistics: see stats.hpp. Percentiles use the nearest-rank definition on the sorted
// full sample set: p(q) is the smallest sample with at least q of all samples at or
// below it, so p100 is the maximum and no value is interpolated.

#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

namespace bench {
namespace {

double nearest_rank(const std::vector<std::uint32_t>& sorted, double q) {
    const auto n = static_cast<double>(sorted.size());
    auto rank = static_cast<std::size_t>(std::ceil(q * n));
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

template <typename Get>
std::optional<Spread> spread_over(const std::vector<RunResult>& runs, Get get) {
    std::vector<std::optional<double>> values;
    for (const RunResult& r : runs) {
        if (r.ok()) {
            values.push_back(get(r));
        }
    }
    return spread_of(values);
}

} // namespace

void summarise_latency(std::vector<std::uint32_t>& samples, RunResult& r) {
    r.samples = samples.size();
    if (samples.empty()) {
        return;
    }
    std::sort(samples.begin(), samples.end());
    r.p50_ns = nearest_rank(samples, 0.50);
    r.p90_ns = nearest_rank(samples, 0.90);
    r.p99_ns = nearest_rank(samples, 0.99);
    r.p999_ns = nearest_rank(samples, 0.999);
    r.max_ns = samples.back();
    const double sum = std::accumulate(samples.begin(), samples.end(), 0.0);
    r.mean_ns = sum / static_cast<double>(samples.size());
}

std::optional<Spread> spread_of(const std::vector<std::optional<double>>& values) {
    std::vector<double> v;
    for (const auto& x : values) {
        if (x) {
            v.push_back(*x);
        }
    }
    if (v.empty()) {
        return std::nullopt;
    }
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    const double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return Spread{median, v.front(), v.back()};
}

std::uint32_t Summary::good_runs() const noexcept {
    return static_cast<std::uint32_t>(
        std::count_if(runs.begin(), runs.end(), [](const RunResult& r) { return r.ok(); }));
}

std::string Summary::first_error() const {
    for (const RunResult& r : runs) {
        if (!r.ok()) {
            return r.error;
        }
    }
    return {};
}

void summarise_runs(Summary& s) {
    s.p50_ns = spread_over(s.runs, [](const RunResult& r) { return r.p50_ns; });
    s.p90_ns = spread_over(s.runs, [](const RunResult& r) { return r.p90_ns; });
    s.p99_ns = spread_over(s.runs, [](const RunResult& r) { return r.p99_ns; });
    s.p999_ns = spread_over(s.runs, [](const RunResult& r) { return r.p999_ns; });
    s.max_ns = spread_over(s.runs, [](const RunResult& r) { return r.max_ns; });
    s.mean_ns = spread_over(s.runs, [](const RunResult& r) { return r.mean_ns; });
    s.msgs_per_s = spread_over(s.runs, [](const RunResult& r) { return r.msgs_per_s; });
    s.bytes_per_s = spread_over(s.runs, [](const RunResult& r) { return r.bytes_per_s; });
    s.cpu_send_ns_per_msg =
        spread_over(s.runs, [](const RunResult& r) { return r.cpu_send_ns_per_msg; });
    s.cpu_recv_ns_per_msg =
        spread_over(s.runs, [](const RunResult& r) { return r.cpu_recv_ns_per_msg; });
    s.cpu_ns_per_msg = spread_over(s.runs, [](const RunResult& r) { return r.cpu_ns_per_msg; });
    s.min_sub_msgs_per_s =
        spread_over(s.runs, [](const RunResult& r) { return r.min_sub_msgs_per_s; });
    s.lost = spread_over(s.runs, [](const RunResult& r) -> std::optional<double> {
        return static_cast<double>(r.lost);
    });
    // The bridges' and the control plane's metrics and the line RTT, field by field: one
    // pointer-to-member table.
    using Field = std::optional<double> RunResult::*;
    using Target = std::optional<Spread> Summary::*;
    static constexpr std::pair<Field, Target> kControl[] = {
        {&RunResult::bridge_out_cpu_ns_per_msg, &Summary::bridge_out_cpu_ns_per_msg},
        {&RunResult::bridge_in_cpu_ns_per_msg, &Summary::bridge_in_cpu_ns_per_msg},
        {&RunResult::opens_per_s, &Summary::opens_per_s},
        {&RunResult::client_cpu_ns_per_open, &Summary::client_cpu_ns_per_open},
        {&RunResult::daemon_cpu_ns_per_open, &Summary::daemon_cpu_ns_per_open},
        {&RunResult::rss_bytes, &Summary::rss_bytes},
        {&RunResult::hwm_bytes, &Summary::hwm_bytes},
        {&RunResult::rss_anon_bytes, &Summary::rss_anon_bytes},
        {&RunResult::rss_file_bytes, &Summary::rss_file_bytes},
        {&RunResult::rss_shmem_bytes, &Summary::rss_shmem_bytes},
        {&RunResult::rss_base_bytes, &Summary::rss_base_bytes},
        {&RunResult::cpu_percent, &Summary::cpu_percent},
        {&RunResult::wakeups_per_s, &Summary::wakeups_per_s},
        {&RunResult::line_rtt_ns, &Summary::line_rtt_ns},
    };
    for (const auto& entry : kControl) {
        const Field field = entry.first;
        s.*entry.second = spread_over(s.runs, [field](const RunResult& r) { return r.*field; });
    }
}

} // namespace bench
