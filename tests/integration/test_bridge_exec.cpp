// exec: links and `shmbusctl bridge-stdio`, between two real shmbusd processes on this
// machine: a BridgeRunner on the robot's daemon runs `sh -c '<shmbusctl> bridge-stdio ...'`,
// which is a client of the ground's daemon and answers as the far end. Channels move both
// ways; what the far end's rules do not allow is refused by name; the command's stderr is
// logged with the bridge named; stopping the bridge ends and reaps the command, whose exit is
// the bridge's last error, at once even mid-handshake.
#include "bridge_test.hpp"
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "test_support.hpp"

#include "gateway/bridge_runner.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::gateway;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kRobot =
    channels_yaml({bridged("telemetry"), bridged("secret"), bridged("ground/jobs")});
const std::string kGround = channels_yaml({bridged("robot1/telemetry"), bridged("jobs")});

/// The far end, as the robot's bridge runs it: shmbusctl bridge-stdio on the ground's daemon.
std::string far_end(const DaemonProcess& ground, const std::string& rules) {
    return std::string{"exec:'"} + SHMBUSCTL_PATH + "' bridge-stdio --socket '" +
           ground.socket_path().native() + "' --name ground-end " + rules;
}

BridgeConfig robot_bridge(const std::string& address) {
    BridgeConfig c;
    c.name = "to-ground";
    auto a = parse_link(address);
    REQUIRE(a.has_value());
    c.address = a.value();
    c.exports = {{"telemetry", "robot1/telemetry", LinkDownPolicy::drop}};
    c.imports = {{"jobs", "ground/jobs", LinkDownPolicy::drop}};
    c.backoff_first = 50ms;
    c.backoff_cap = 200ms;
    return c;
}

bool streams_up(const BridgeRunner& r, std::size_t count) {
    const auto s = r.status();
    std::size_t granted = 0;
    for (const auto& st : s.session.streams) {
        granted += st.credits > 0 ? 1 : 0;
    }
    return s.state == BridgeState::connected && granted >= count;
}

} // namespace

TEST_CASE("exec: link addresses are parsed strictly, naming what is wrong") {
    auto e = parse_link("exec:ssh robot@ground shmbusctl bridge-stdio");
    REQUIRE(e.has_value());
    CHECK(e.value().kind == LinkAddress::Kind::exec);
    CHECK(e.value().command == "ssh robot@ground shmbusctl bridge-stdio");
    const std::vector<std::pair<std::string, std::string>> bad{
        {"exec:", "needs a command"},
        {"exec:   ", "needs a command"},
        {std::string{"exec:ssh a\nrm"}, "line break"},
        {"exe:ssh", "unknown kind"},
    };
    for (const auto& [text, problem] : bad) {
        CAPTURE(text);
        auto r = parse_link(text);
        REQUIRE_FALSE(r.has_value());
        CHECK_THAT(r.error().detail, Catch::Contains(problem));
    }
}

TEST_CASE("an exec: link to shmbusctl bridge-stdio moves channels both ways") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    REQUIRE(robot.start());
    REQUIRE(ground.start());
    LogLines log;
    BridgeRunner bridge{robot_bridge(far_end(ground, "--import 'robot1/*' --export jobs")),
                        options_for(robot), "robot1", 0x1001, log.sink()};
    bridge.start();
    REQUIRE(wait_until([&] { return streams_up(bridge, 2); }));
    check_flow(robot, "telemetry", ground, "robot1/telemetry", 500);
    check_flow(ground, "jobs", robot, "ground/jobs", 500);
    // The far end's stderr is the robot's log, with the bridge named.
    CHECK(log.wait_for("bridge 'to-ground': command: shmbusctl bridge-stdio: bridge "
                       "'ground-end': connected to robot1"));
    CHECK_THAT(bridge.status().peer, Catch::StartsWith("command pid "));
    bridge.stop();
    CHECK(bridge.status().state == BridgeState::stopped);
    CHECK_THAT(bridge.status().last_error, Catch::Contains("the command"));
}

TEST_CASE("bridge-stdio refuses by name what its rules do not allow, and moves nothing of it") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{
        channels_yaml({bridged("robot1/telemetry"), bridged("jobs"), bridged("secret")})};
    REQUIRE(robot.start());
    REQUIRE(ground.start());
    LogLines log;
    auto config = robot_bridge(far_end(ground, "--import 'robot1/*'"));
    config.exports.push_back({"secret", "", LinkDownPolicy::drop});
    BridgeRunner bridge{config, options_for(robot), "robot1", 0x1001, log.sink()};

    auto ground_app = Client::connect(options_for(ground));
    REQUIRE(ground_app.has_value());
    auto ground_secret = ground_app.value().open_subscriber("secret");
    REQUIRE(ground_secret.has_value());
    bridge.start();
    REQUIRE(log.wait_for("the peer refused channel 'secret': channel 'secret' is not in bridge "
                         "'ground-end''s import list"));
    REQUIRE(log.wait_for("the peer refused to export 'jobs'"));
    REQUIRE(wait_until([&] { return streams_up(bridge, 1); }));
    check_flow(robot, "telemetry", ground, "robot1/telemetry", 50);

    auto robot_app = Client::connect(options_for(robot));
    REQUIRE(robot_app.has_value());
    auto secret = robot_app.value().open_publisher("secret");
    REQUIRE(secret.has_value());
    std::vector<std::byte> buf(64);
    stamp(buf, 7);
    REQUIRE(secret.value().send(buf, 60s).has_value());
    check_flow(robot, "telemetry", ground, "robot1/telemetry", 50); // after the secret one
    CHECK(ground_secret.value().try_receive().code() == Errc::would_block);
}

TEST_CASE("an exec: command's stderr is logged and its exit status is the last error") {
    DaemonProcess robot{kRobot};
    REQUIRE(robot.start());
    LogLines log;
    BridgeRunner bridge{robot_bridge("exec:echo 'no route to ground' >&2; exit 3"),
                        options_for(robot), "robot1", 0x1001, log.sink()};
    bridge.start();
    REQUIRE(log.wait_for("bridge 'to-ground': command: no route to ground"));
    REQUIRE(wait_until([&] {
        return bridge.status().last_error.find("exited with status 3") != std::string::npos;
    }));
    // The retry is counted after the link's end is recorded, not with it.
    CHECK(wait_until([&] { return bridge.status().reconnects >= 1; }));
}

TEST_CASE("stop() ends an exec: link in its handshake at once and reaps the command") {
    DaemonProcess robot{kRobot};
    REQUIRE(robot.start());
    LogLines log;
    auto config = robot_bridge("exec:exec sleep 100000");
    config.handshake_timeout = std::chrono::hours{1}; // stop() must not wait for it
    BridgeRunner bridge{config, options_for(robot), "robot1", 0x1001, log.sink()};
    bridge.start();
    REQUIRE(wait_until([&] { return bridge.status().state == BridgeState::handshaking; }));
    bridge.stop();
    CHECK(bridge.status().state == BridgeState::stopped);
    CHECK_THAT(bridge.status().last_error, Catch::Contains("killed by signal 15"));
}

TEST_CASE("stop() ends a TCP link in its handshake at once") {
    DaemonProcess robot{kRobot};
    REQUIRE(robot.start());
    // A peer that accepts and never says hello.
    auto silent = TcpListener::listen(parse_link("tcp://127.0.0.1:0").value());
    REQUIRE(silent.has_value());
    auto config = robot_bridge("tcp://127.0.0.1:" + std::to_string(silent.value().port()));
    config.handshake_timeout = std::chrono::hours{1};
    BridgeRunner bridge{config, options_for(robot), "robot1", 0x1001, {}};
    bridge.start();
    REQUIRE(wait_until([&] { return bridge.status().state == BridgeState::handshaking; }));
    bridge.stop();
    CHECK(bridge.status().state == BridgeState::stopped);
}
