// rpc channels: the round trip of one call, and calls per second, through the public API
// (<shmbus/rpc.hpp>) like any application.
//
// The parent creates one rpc channel (request and reply slots of the scenario's size, 4 call
// slots per caller) with shmbus::create_channel() and forks one Server and the scenario's
// callers (`publishers`; `subscribers` is the number of servers and is 1 in every suite).
// The server answers every request with a copy of it, written in place into the reply slot
// (reserve_reply / commit_reply); callers use the copying Caller::call() overload that
// fills a buffer of their own, so no call allocates.
//
//  - round-trip: one caller stamps each request with steady_clock and records now − stamp
//    when the reply (the echoed stamp) is back: the **whole** round trip, not halved. The
//    warm-up is the latency test's. The run compares it with the queue's ping-pong of the
//    same run, whose one-way figure is half a round trip through two SPSC queues.
//  - throughput: every caller makes calls one after the other (one in flight) for the run's
//    duration; calls/s is all callers' replies over the time from the first caller's start
//    to the server's last reply, CPU per call the callers' (send) and the server's (recv).
//
// Wait modes as for the other shmbus rows: spin calls try_receive() and a Caller opened
// with WaitMode::spin; adaptive and futex call the blocking forms, which wait without a
// limit. The run ends with an end-marker call from the last caller to finish, which the
// server answers before it leaves.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Runs rpc scenario `s` once and collects its children's reports. Returns an error
/// sentence, or empty.
[[nodiscard]] std::string run_rpc(const Scenario& s, const RunSettings& settings,
                                  std::vector<Report>& reports);

} // namespace bench
