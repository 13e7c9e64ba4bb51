// The gateway measured: two real shmbusd processes on this machine, joined by a bridge over
// TCP loopback, exactly as two hosts would be (docs/gateway.md), and the benchmark's clients
// on either side using the public client API.
//
// Each run starts a fresh pair (ShmbusdProcess): the *far* daemon listens on 127.0.0.1 on a
// free port (read back with Client::list_bridges), the *near* daemon connects to it; both
// share a secret file written for the run (mode 0600). Both have the same kBridgeChannels
// broadcast channels with the block policy, so nothing is lost anywhere on the way and a
// slow end holds the other back:
//
//   bench/ch000  near -> far   the stream, the ping, the isolation rows' exported ping
//   bench/ch001  far -> near   the pong
//   bench/ch002  near -> far   the isolation rows' full-rate stream
//   bench/ch003  near only     the isolation rows' local pong (not bridged)
//
// A run starts measuring only once the bridge is connected and every exporting stream holds
// credits, at both ends (polled through list_bridges, with a deadline), so that nothing
// published after the start gate can miss the bridge's subscriber.
//
// Rows through the bridge (Load::none), every client a forked Team child:
//   latency     a pinger on the near daemon (publishes ch000, reads ch001) and a ponger on the
//               far one (reads ch000, publishes ch001): one-way = RTT / 2, as the tcp row;
//   throughput  a sender on the near daemon, a receiver on the far one, 1 or `batch` per
//   bandwidth   publish; rate from the sender's start to the receiver's end marker.
//               Beside the clients' CPU, the two daemons' CPU per message over the run (their
//               bridge threads: the exporter's reader of the channel and writer of the link,
//               the importer's reader of the link and publisher into the channel).
// Isolation rows, on the near daemon while its bridge is idle (Load::idle) or carries a
// full-rate 128 B stream of 64 per publish from a sender on the near daemon to a receiver on
// the far one (Load::streaming):
//   control-open  one opener opening and closing a subscriber of ch003 (control_plane.hpp);
//   latency       a local ping-pong on the near daemon over ch000 (exported: the bridge is one
//                 more subscriber of every ping) and ch003.
//
// Readers of the bridged channels wait up to a second per receive: a stream reader stops at
// its end marker, or when it finds its ring empty on a second look after the sender finished,
// and the messages still on their way through the bridge must not be mistaken for none.
#pragma once

#include "scenario.hpp"
#include "stats.hpp"

namespace bench {

/// Runs bridge scenario `s` once on a freshly started pair of daemons.
[[nodiscard]] RunResult run_bridge(const Scenario& s, const RunSettings& settings);

} // namespace bench
