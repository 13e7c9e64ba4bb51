// What the bridge tests share: channel configuration for the two daemons, reaching a daemon
// as a client, and waiting on a bridge's status.
#pragma once

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

/// A channel the bridge tests move: broadcast, 128-byte slots, 64 deep, open to all.
inline TestChannel bridged(const std::string& name) {
    return {.name = name,
            .kind = "broadcast",
            .slot_size = 128,
            .slot_count = 64,
            .max_publishers = 2,
            .max_subscribers = 4};
}

inline ClientOptions options_for(const DaemonProcess& d, const std::string& name = "test") {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    return o;
}

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

/// Sends `count` stamped messages on `from_channel` at `from` and checks each arrives on
/// `to_channel` at `to`.
inline void check_flow(const DaemonProcess& from, const std::string& from_channel,
                       const DaemonProcess& to, const std::string& to_channel,
                       std::uint64_t count) {
    auto to_app = Client::connect(options_for(to));
    REQUIRE(to_app.has_value());
    auto sub = to_app.value().open_subscriber(to_channel);
    REQUIRE(sub.has_value());
    auto from_app = Client::connect(options_for(from));
    REQUIRE(from_app.has_value());
    auto pub = from_app.value().open_publisher(from_channel);
    REQUIRE(pub.has_value());
    std::vector<std::byte> buf(128);
    for (std::uint64_t id = 0; id < count; ++id) {
        stamp(buf, id);
        REQUIRE(pub.value().send(buf, std::chrono::seconds{60}).has_value());
        auto r = sub.value().receive_copy(buf, std::chrono::seconds{60});
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
        REQUIRE(r.value().lost_before == 0);
    }
}

/// check_flow() from the robot's `telemetry` to the ground's `robot1/telemetry`.
inline void check_flow(const DaemonProcess& robot, const DaemonProcess& ground,
                       std::uint64_t count) {
    check_flow(robot, "telemetry", ground, "robot1/telemetry", count);
}

} // namespace shmbus::test
