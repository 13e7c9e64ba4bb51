// Targets: the performance goals of the issue, checked against a run's summaries.
//
// Each target compares the medians of two scenarios of the same run (so both saw the same
// machine state) and says whether the ratio meets the goal; the control plane's targets
// are absolute instead (opens per second, bytes of memory, percent of a core), checked
// against the median of one scenario. A target whose scenarios were
// not part of the run (filtered out, skipped, failed) is reported as not measured, never
// as met. The shmbus side of the throughput and bandwidth targets is the SPSC queue in
// spin mode; docs/benchmarks.md says so beside the figures. The gateway's targets compare the
// rows through a bridge with the tcp rows of the same run, and its isolation rows with each
// other (the bridge streaming over the bridge idle). Where the shmbus side has a
// raw-ring counterpart in the run, the target also carries that ratio, so a report shows
// whether a missed goal is within reach of any ring on the machine.
#pragma once

#include "stats.hpp"

#include <optional>
#include <string>
#include <vector>

namespace bench {

struct Target {
    std::string name;            ///< "busy-spin p50 vs FIFO p50 (128 B)"
    std::string goal;            ///< ">= 300x"
    std::optional<double> ratio; ///< the measured ratio, oriented like the goal
    std::optional<double> value; ///< the measured figure, for an absolute target
    std::string measured;        ///< ratio or value for people ("1.25x", "4.87 k/s"); or empty
    std::optional<bool> met;     ///< nullopt: not measured in this run
    std::string basis;           ///< the two figures the ratio comes from
    /// The same ratio with the `raw-ring` calibration in shmbus's place: what the bare ring,
    /// the floor of any shared-memory queue on this machine, reaches. nullopt for targets
    /// without a raw-ring counterpart or when it was not measured.
    std::optional<double> floor_ratio;
};

/// Evaluates every target of the issue over `summaries`.
[[nodiscard]] std::vector<Target> evaluate_targets(const std::vector<Summary>& summaries);

} // namespace bench
