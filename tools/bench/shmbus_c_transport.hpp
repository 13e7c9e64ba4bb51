// The shmbus transport through the C ABI (<shmbus/shmbus.h>), to set beside the C++ one in
// the same run: the same single-producer single-consumer queue, the same zero-copy stream
// (shmbus_publisher_reserve -> fill in place -> shmbus_publisher_commit;
// shmbus_subscriber_receive -> read in place -> shmbus_subscriber_release), the same
// patterns (patterns.hpp), so that the difference between the rows is what the C calls cost
// over the inline C++ ones.
//
// The C ABI opens endpoints through shmbusd only (there is no C form of attaching a
// channel's descriptors), so each run starts a real shmbusd (ShmbusdProcess) with one queue
// channel of the scenario's geometry; each child connects, opens its endpoint and then
// streams without the daemon, as every shmbus endpoint does.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Runs shmbus-c scenario `s` once (a throughput stream) and collects its children's
/// reports. Returns an error sentence, or empty.
[[nodiscard]] std::string run_shmbus_c(const Scenario& s, const RunSettings& settings,
                                       std::vector<Report>& reports);

} // namespace bench
