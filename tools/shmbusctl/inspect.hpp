// The read commands — status, list, info, clients, stats, bridges — and ping and reload: requests
// to shmbusd through shmbus::Client, shown as a table or as one JSON document (--json).
//
// Every counter comes from the daemon's list / info replies, which it reads from the
// segments read-only; shmbusctl maps no segment here. Rates are the difference of two
// samples over the time between them, measured on the monotonic clock.
//
// Each function returns the process exit code (context.hpp) and prints its own errors.
#pragma once

#include "context.hpp"

#include <cstdint>
#include <string>

namespace shmbusctl {

int run_status(const GlobalOptions& options);
/// `interval_s` > 0: a second sample after that long gives each channel's rate.
int run_list(const GlobalOptions& options, double interval_s);
int run_info(const GlobalOptions& options, const std::string& channel);
int run_clients(const GlobalOptions& options);
/// `count` samples (0: until interrupted), one each `interval_s`.
int run_stats(const GlobalOptions& options, double interval_s, std::uint64_t count);
int run_ping(const GlobalOptions& options, std::uint64_t count);
int run_reload(const GlobalOptions& options);
/// The daemon's bridges: one row each (or --json), with their totals each way.
int run_bridges(const GlobalOptions& options);

} // namespace shmbusctl
