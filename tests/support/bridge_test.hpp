// What the tests of the gateway's engine (BridgeRunner and BridgeSession in the test process,
// between real daemons) share: waiting on a runner's status; and, from bridge_daemons.hpp, the
// channels they move, reaching a daemon and checking a flow.
#pragma once

#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "test_channels.hpp"

#include "gateway/bridge_runner.hpp"

#include <shmbus/client.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace shmbus::test {

/// Whether `r` is connected and one of its exporting streams has been granted credits.
inline bool exporting(const gateway::BridgeRunner& r) {
    const auto s = r.status();
    if (s.state != gateway::BridgeState::connected) {
        return false;
    }
    for (const auto& st : s.session.streams) {
        if (st.exporting && st.credits > 0) {
            return true;
        }
    }
    return false;
}

/// Whether every exporting stream of `r` holds all `window` credits: the peer has
/// published, and confirmed, everything it was sent.
inline bool all_confirmed(const gateway::BridgeRunner& r, std::uint32_t window) {
    const auto s = r.status();
    bool any = false;
    for (const auto& st : s.session.streams) {
        if (st.exporting) {
            any = true;
            if (st.credits != window) {
                return false;
            }
        }
    }
    return any;
}

/// check_flow() from the robot's `telemetry` to the ground's `robot1/telemetry`.
inline void check_flow(const DaemonProcess& robot, const DaemonProcess& ground,
                       std::uint64_t count) {
    check_flow(robot, "telemetry", ground, "robot1/telemetry", count);
}

} // namespace shmbus::test
