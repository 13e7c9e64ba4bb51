// Large payloads between two processes: handed through a pool by handle, or copied through a
// queue with slots as large as the payload, in the same run.
//
// pool-handoff: the sender acquires a block of a pool (4 blocks of `msg_size`), writes the
// payload's sequence number into its first and last 8 bytes in place (the payload is made
// where it lies, as a camera or a decoder would), hands it on, and sends the 16-byte handle
// through an SPSC queue. The receiver takes the handle, adopts the block, checks both words,
// and releases it, which returns the block to the pool.
// queue-copy: the sender stamps the same words into a payload in its own memory and send()s
// it into a queue of two `msg_size` slots (one copy in); the receiver receive_copy()s it into
// its own buffer (one copy out) and checks both words.
//
// Both use the adaptive wait and end with an end marker once the run's time is up; the rate
// is payloads received per second, sender's start to receiver's end.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Runs pool-handoff or queue-copy once. Returns an error sentence, or empty.
[[nodiscard]] std::string run_payload_handoff(const Scenario& s, const RunSettings& settings,
                                              std::vector<Report>& reports);

} // namespace bench
