// Reports: the human table on stdout, and the --markdown, --json and --plot-data files.
//
// Every output is built from the same summaries and targets, so they never disagree. The
// JSON row shape is a published interface (docs/benchmarks.md, the plot script and the
// smoke test read it): one object per scenario with the keys transport, kind, wait, test,
// msg_size, batch, subscribers, publishers, runs, status, error, channels and clients (the
// control plane's; null elsewhere), each metric as the median of the runs plus <metric>_min
// and <metric>_max, null where a metric does not apply.
#pragma once

#include "machine.hpp"
#include "stats.hpp"
#include "targets.hpp"

#include <iosfwd>
#include <string>
#include <vector>

namespace bench {

/// Where and how the figures were produced.
struct RunInfo {
    Machine machine;
    std::string command; ///< argv joined with spaces
    std::string suite;
    RunSettings settings;
    std::string load_before; ///< load averages when the run started
    std::string load_after;  ///< and when it ended
};

/// Writes the tables, the targets and the notes (skipped, failed) for people.
void print_report(std::ostream& out, const std::vector<Summary>& summaries,
                  const std::vector<Target>& targets);

/// The same as Markdown, with the machine and the command first.
[[nodiscard]] std::string markdown_report(const RunInfo& info,
                                          const std::vector<Summary>& summaries,
                                          const std::vector<Target>& targets);

/// The JSON document: {machine, command, suite, settings, results: [...], targets: [...]}.
[[nodiscard]] std::string json_report(const RunInfo& info, const std::vector<Summary>& summaries,
                                      const std::vector<Target>& targets);

/// Writes the gnuplot data files (latency_128.dat, latency_size.dat, throughput_128.dat,
/// bandwidth.dat) into `dir`, creating it. Returns an error sentence, or empty.
[[nodiscard]] std::string write_plot_data(const std::string& dir,
                                          const std::vector<Summary>& summaries);

} // namespace bench
