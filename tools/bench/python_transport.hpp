// The Python row: the Python package shmbus (python/, docs/python.md) streaming messages
// from one Python process to another through a single-producer single-consumer queue,
// zero-copy both ways, in batches (128 B in batches of 64 in the suites), to set beside the
// C++ rows of the same run.
//
// The Python side is tools/bench/python_rate.py in its bench role: each of the two children
// of a run (Team) starts `python3 python_rate.py --bench-role publisher|subscriber ...`,
// which connects to the run's shmbusd (ShmbusdProcess, one queue channel of the scenario's
// geometry, as the shmbus-c rows have), opens its endpoint and says "ready" on its stdout;
// the child then passes the start barrier and answers "go" on its stdin. The publisher
// reserves and fills batches for the run's duration and then sends an empty message as the
// end marker; the subscriber receives in place, checks that the sequences follow each other,
// and stops at the marker. Each prints one line, "MESSAGES T_START_NS T_END_NS CPU_NS
// OUT_OF_ORDER" (CLOCK_MONOTONIC, the clock of now_ns(); CPU of the Python process), which
// becomes the child's Report. Set-up, interpreter start and imports are outside the timed
// part, as attach is for the other transports.
//
// Where the script and the package are is found once per invocation (find_python()); a
// machine without python3 or without the package skips the row with the reason.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Finds python3, the bench script and a package path from which python3 imports shmbus:
/// fills settings.python, settings.python_script and settings.python_path, or leaves
/// settings.python empty and returns why the Python row cannot run.
[[nodiscard]] std::string find_python(RunSettings& settings);

/// Runs Python scenario `s` once (a throughput stream) and collects its children's reports.
/// Returns an error sentence, or empty.
[[nodiscard]] std::string run_python(const Scenario& s, const RunSettings& settings,
                                     std::vector<Report>& reports);

} // namespace bench
