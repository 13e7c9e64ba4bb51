// Calibrations: the floors this machine sets, measured in the same run as everything else.
//
// futex-raw: two processes ping-pong through one futex word in a MAP_SHARED anonymous
// mapping, always sleeping and always waking (no spinning): the cheapest possible
// cross-process wake-up, against which shmbus's blocking ("futex") mode is judged.
//
// raw-ring: the benchmark's patterns over a minimal SPSC ring in a MAP_SHARED anonymous
// mapping: cached indices on their own cache lines, busy polling, no validation, no
// wake-ups, no counters. It is what any shared-memory queue must at least pay on this
// machine (cache-line transfers between the cores), so shmbus minus raw-ring is the cost of
// the library, and raw-ring minus memcpy the cost of crossing cores.
//
// line RTT: two processes on the run's first two cores pass one cache line back and forth
// (each stores the next count when it sees the other's): how long moving a line between
// those cores takes right now. Measured just before every cross-process run and reported
// beside its figures, because on a virtual machine the host can move the virtual CPUs to
// cores that are closer or further apart between two runs, and every ring's speed follows.
//
// memcpy: one process copies a buffer to another of the same size in a loop, on one core:
// 64 KiB (cache-resident) and 64 MiB (memory-bound) buffers, against which the zero-copy
// bandwidth of large messages is judged.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <optional>
#include <string>
#include <vector>

namespace bench {

/// Runs the raw futex ping-pong once. Returns an error sentence, or empty.
[[nodiscard]] std::string run_futex_raw(const Scenario& s, const RunSettings& settings,
                                        std::vector<Report>& reports);

/// Runs scenario `s` once over the raw shared-memory ring. Returns an error, or empty.
[[nodiscard]] std::string run_raw_ring(const Scenario& s, const RunSettings& settings,
                                       std::vector<Report>& reports);

/// The round trip of one cache line between the first two cores a run is pinned to, in
/// nanoseconds: the median of a few short batches. nullopt when not pinning (the scheduler
/// would place the probe elsewhere than the run), when the probe failed, or when not even
/// one batch finished within its budget (50 ms: cores busy with other work).
[[nodiscard]] std::optional<double> measure_line_rtt(const RunSettings& settings);

/// Runs the single-core memcpy loop once over `s.msg_size` bytes. Returns an error, or empty.
[[nodiscard]] std::string run_memcpy(const Scenario& s, const RunSettings& settings,
                                     std::vector<Report>& reports);

} // namespace bench
