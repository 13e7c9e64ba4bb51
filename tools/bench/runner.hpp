// Runner: runs one scenario once on the transport it names and turns the children's
// reports into one RunResult.
//
// Definitions (also in docs/benchmarks.md):
//   latency      one-way = RTT / 2 of every ping-pong after a warm-up, from the pingers;
//   msgs_per_s   messages received per reader per second, from the first writer's start
//                to the last reader's end (a broadcast reader sees every message; the
//                readers of a queue share them);
//   cpu          getrusage(RUSAGE_SELF) of each process over its measured part: writers'
//                CPU per message sent plus readers' CPU per message received;
//   lost         messages sent times readers per message, minus messages received.
// The control-plane tests (transport shmbusd) have their own runner: control_plane.hpp; so
// have the rows of two daemons joined by a bridge (transport bridge): bridge_transport.hpp.
// A run whose checksum found corrupted messages fails: speed over wrong data means nothing.
#pragma once

#include "scenario.hpp"
#include "stats.hpp"
#include "team.hpp"

#include <vector>

namespace bench {

/// Runs `s` once with `settings`.
[[nodiscard]] RunResult run_once(const Scenario& s, const RunSettings& settings);

/// Computes the result of scenario `s` from its children's `reports` (samples are moved out).
[[nodiscard]] RunResult reduce_reports(const Scenario& s, std::vector<Report>& reports);

} // namespace bench
