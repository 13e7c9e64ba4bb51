// An exec: bridge as an operator configures it: shmbusd.yaml says
// `connect: exec:sh -c '... shmbusctl bridge-stdio ...'` (an ssh command in real life; a plain
// `sh -c` here, so that no ssh is needed), and the daemon runs the command for the link. The far
// end, `shmbusctl bridge-stdio`, is a client of a second real shmbusd; channels move both ways
// between the two daemons, `list_bridges` shows the link, and the command's stderr is in the
// daemon's log with the bridge named.
#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <string>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

#ifndef SHMBUSCTL_PATH
#error "SHMBUSCTL_PATH must name the shmbusctl binary under test"
#endif

namespace {

/// The robot's bridge: an exec: link to `shmbusctl bridge-stdio` on the ground's daemon,
/// through `sh -c`, as `ssh ground shmbusctl bridge-stdio ...` would be.
std::string robot_config(const DaemonProcess& ground) {
    // Paths of the build and of temporary directories hold no double quote, `$`, backslash,
    // ": " or " #", so the command is a plain YAML scalar and a plain word for sh.
    const std::string far_end = std::string{"exec '"} + SHMBUSCTL_PATH +
                                "' bridge-stdio --socket '" + ground.socket_path().native() +
                                "' --name ground-end --import 'robot1/*' --export jobs";
    return channels_yaml({bridged("telemetry"), bridged("ground/jobs")}) +
           "bridges:\n"
           "  - name: ground\n"
           "    connect: exec:sh -c \"" +
           far_end +
           "\"\n"
           "    export:\n"
           "      - {channel: telemetry, as: robot1/telemetry}\n"
           "    import:\n"
           "      - {channel: jobs, as: ground/jobs}\n";
}

} // namespace

TEST_CASE("an exec: bridge configured in YAML moves channels both ways between two daemons") {
    DaemonProcess ground{channels_yaml({bridged("robot1/telemetry"), bridged("jobs")})};
    REQUIRE(ground.start());
    DaemonProcess robot{robot_config(ground)};
    robot.with_stderr_file();
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "ground", 2));

    check_flow(robot, "telemetry", ground, "robot1/telemetry", 500);
    check_flow(ground, "jobs", robot, "ground/jobs", 500);

    auto b = bridge_of(robot, "ground");
    REQUIRE(b.has_value());
    CHECK(b->state == "connected");
    CHECK_THAT(b->peer, Catch::StartsWith("command pid "));
    CHECK(b->version >= 2); // both ends are this build: bridge protocol 2 or later
    CHECK_FALSE(b->peer_node.empty());
    // The far end is an ordinary client of the ground's daemon, holding the two channels.
    auto c = Client::connect(options_for(ground));
    REQUIRE(c.has_value());
    for (const char* channel : {"robot1/telemetry", "jobs"}) {
        auto info = c.value().channel_info(channel);
        REQUIRE(info.has_value());
        CHECK_FALSE(info.value().endpoints.empty());
    }
    // Its stderr is the robot daemon's log, with the bridge named.
    CHECK(robot.wait_for_stderr("bridge 'ground': command: shmbusctl bridge-stdio",
                                generous_deadline()));
}
