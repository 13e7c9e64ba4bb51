// Targets: the performance goals of the issues, checked against a run's summaries.
//
// The data path's goals are ratios to what the machine allows in the same run: the raw
// ring (calibration.hpp: a bare SPSC ring in plain shared memory, the floor of any
// shared-memory queue on the same cores) for the SPSC queue, the SPSC queue for the other
// channel kinds, the raw futex ping-pong for blocking waits. A goal that is a ratio to a
// kernel transport measures the machine more than shmbus (on a VM, a FIFO's wake-up cost
// swings with the host), so those ratios are shown as information, without a goal. The
// control plane's targets are absolute instead (opens per second, bytes of memory, percent
// of a core), checked against the median of one scenario. The gateway's targets compare the
// rows through a bridge with the tcp rows of the same run, and its isolation rows with each
// other (the bridge streaming over the bridge idle).
//
// Each target compares two scenarios of the same run, which ran in rounds (each scenario once
// per round), round by round: its ratio is the median of the ratios of the rounds whose two
// runs had the same placement (line RTTs within 1.5x of each other), and the ratio of the
// two medians is kept beside it. A target whose scenarios were not part of the run
// (filtered out, skipped, failed) is reported as not measured, never as met. Every data-path
// target carries the raw ring's own figure of the same run in the metric it compares, so a
// report shows the floor beside each goal.
#pragma once

#include "stats.hpp"

#include <optional>
#include <string>
#include <vector>

namespace bench {

struct Target {
    std::string id;          ///< stable key: "spsc-p50-vs-raw-ring"
    std::string name;        ///< "SPSC spin one-way p50 <= 1.10x raw ring (128 B)"
    std::string goal;        ///< "<= 1.10x"; "information" for a ratio without a goal
    bool information{false}; ///< a ratio shown for comparison: no goal, met stays empty
    /// The measured ratio, oriented like the goal: the median over the rounds whose two runs
    /// had the same placement (`matched_rounds`), or `median_ratio` when none had.
    std::optional<double> ratio;
    std::optional<double> median_ratio; ///< the same ratio of the two sides' medians
    std::size_t matched_rounds{0};      ///< rounds `ratio` comes from (0: from the medians)
    std::optional<double> value;        ///< the measured figure, for an absolute target
    std::string measured;    ///< ratio or value for people ("1.25x", "4.87 k/s"); or empty
    std::optional<bool> met; ///< nullopt: not measured in this run, or information
    std::string basis;       ///< the two figures the ratio comes from
    /// The same ratio with the `raw-ring` calibration in shmbus's place (information rows
    /// against a kernel transport): what the bare ring reaches. nullopt otherwise.
    std::optional<double> floor_ratio;
    /// The raw ring's own figure of the same run in the metric the target compares
    /// (`raw_ring_metric`: p50_ns, p99_ns, msgs_per_s or bytes_per_s), for the data-path
    /// targets whose test the raw ring also ran; nullopt otherwise.
    std::optional<double> raw_ring;
    std::string raw_ring_metric; ///< empty when raw_ring does not apply
};

/// Evaluates every target over `summaries`.
[[nodiscard]] std::vector<Target> evaluate_targets(const std::vector<Summary>& summaries);

} // namespace bench
