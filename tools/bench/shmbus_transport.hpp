// The shmbus transport: channels driven through the public API only, as an application
// would (<shmbus/...> headers, linked as shmbus::shmbus).
//
// The parent creates each channel with shmbus::create_channel() before forking; every
// child duplicates the descriptors for its role (ChannelFiles::duplicate_for) and attaches
// a Publisher or Subscriber with the scenario's wait mode. Writes are zero-copy
// (try_reserve / reserve -> fill in place -> commit), reads too (try_receive / receive ->
// read in place -> release). In spin mode the loops call the try_ forms and retry on
// Errc::would_block; in adaptive and futex (WaitMode::blocking) modes they call the
// blocking forms, so the library decides how to wait.
//
// Ping-pong uses two channels (ping, pong). On a broadcast channel with several
// subscribers, subscriber 0 echoes and the others only read, so the latency shows what
// extra subscribers cost the publisher.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Runs shmbus scenario `s` once and collects its children's reports. Returns an error
/// sentence, or empty.
[[nodiscard]] std::string run_shmbus(const Scenario& s, const RunSettings& settings,
                                     std::vector<Report>& reports);

} // namespace bench
