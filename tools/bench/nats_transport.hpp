// NATS transports: shmbus channels bridged through a NATS server, beside the same messages
// sent and received with libnats directly, in the same run (docs/nats.md, "Figures").
//
//   nats      daemon -> NATS -> daemon: a writer publishes into a channel of one shmbusd,
//             whose NATS bridge exports it to a subject; a second shmbusd imports the
//             subject into its own channel, which the reader reads. Both daemons and the
//             server run on this machine, on loopback; each run starts them afresh.
//   nats-raw  the baseline: the writer publishes each message to the subject with libnats,
//             the reader takes it from a libnats subscription (core NATS on both).
//
// Ping-pong goes both ways through two subjects (a second pair of channels and bridge
// entries for nats). Streams are core NATS, at most once: a reader that falls behind loses
// messages (a slow consumer), and the run reports them as lost.
//
// A run starts its own nats-server (found by find_nats_server()) on a free loopback port,
// and stops it at the end; a scenario is skipped, saying why, where there is none or where
// shmbus-bench was built without libnats.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Whether this build has the NATS transports (libnats was found).
[[nodiscard]] bool nats_built() noexcept;

/// nats-server's path: on PATH, or in /usr/sbin or /usr/local/sbin (where Debian puts it).
/// Empty if there is none.
[[nodiscard]] std::string find_nats_server();

/// Runs NATS scenario `s` (transport nats or nats-raw) once and collects its children's
/// reports. Returns an error sentence, or empty.
[[nodiscard]] std::string run_nats(const Scenario& s, const RunSettings& settings,
                                   std::vector<Report>& reports);

} // namespace bench
