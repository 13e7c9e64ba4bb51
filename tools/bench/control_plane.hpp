// The control plane: shmbusd itself, measured through its control socket with the public
// client API (shmbus::Client), as an application uses it.
//
// Every run starts a fresh shmbusd (ShmbusdProcess: a temporary configuration with the
// scenario's channels, its own socket and state directory, READY=1 awaited) and stops it
// with SIGTERM at the end; a daemon that does not exit cleanly fails the run. The clients
// are forked processes of a Team, like every other cross-process figure.
//
//   control-open     `clients` opener processes each repeat, for the run's duration, one
//                    whole open: Client::connect (the socket connection and the hello
//                    exchange), open_subscriber on one channel (the open request, the
//                    segments' descriptors received over SCM_RIGHTS, mapped and verified),
//                    then destroying both (the close request, the disconnect). A latency
//                    sample is one such cycle; opens_per_s counts every opener's cycles per
//                    second from the first start to the last end. 20 cycles per opener before
//                    the start gate warm both sides up. The daemon's CPU per open is its
//                    /proc CPU time over the measured part divided by the opens.
//   daemon-rss       `clients` clients in processes of kClientsPerHolder each connect and open
//                    one endpoint each (the first `channels` publish, one per channel, the
//                    others subscribe, spread over the channels); once all are open, the
//                    daemon's VmRSS, VmHWM and their parts are read from /proc/PID/status.
//                    VmRSS right after READY=1, before any client, is reported beside it.
//   daemon-idle-cpu  the same clients, connected and idle; the daemon's CPU time over the
//                    run's duration, as a percentage of one core, and how often it was
//                    scheduled in (wakeups_per_s; 0 when nothing polls).
#pragma once

#include "scenario.hpp"
#include "stats.hpp"
#include "team.hpp"

#include <shmbus/client.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bench {

/// Runs control-plane scenario `s` once against a shmbusd started for it.
[[nodiscard]] RunResult run_control_plane(const Scenario& s, const RunSettings& settings);

/// How the benchmark's clients reach the daemon listening on `socket`.
[[nodiscard]] shmbus::ClientOptions client_options(const std::string& socket);

/// One opener of the control-open test (a Team child's body): opens and closes a subscriber
/// of `channel` in a loop for the run's duration, one sample per cycle.
[[nodiscard]] Report run_opener(const shmbus::ClientOptions& options, const std::string& channel,
                                StartGate& gate, const RunSettings& settings);

/// The control-open figures from the openers' `reports` (samples are moved out; other roles'
/// reports are left alone) and the daemon's CPU time over the measured part, if known.
[[nodiscard]] RunResult reduce_opens(std::vector<Report>& reports,
                                     std::optional<std::int64_t> daemon_cpu_ns);

} // namespace bench
