// Shared-state reads: what an uncontended consistent read of one blackboard element costs,
// beside a plain read of as many bytes from the process's own memory, in the same run.
//
// blackboard-read: one process attaches a blackboard of one element of `msg_size` bytes
// (created in place, no daemon: the read path is the same), writes it once, then reads it
// in a loop with Blackboard::read() — the acquire load, the copy as atomic words, the fence
// and the re-load. local-read: the same loop copying `msg_size` bytes from a local buffer.
// Both check the clock every 4096 reads only, so the clock does not dominate either, and
// report reads per second and CPU nanoseconds per read.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Runs the blackboard-read or local-read loop once. Returns an error sentence, or empty.
[[nodiscard]] std::string run_shared_state_read(const Scenario& s, const RunSettings& settings,
                                                std::vector<Report>& reports);

} // namespace bench
