// Tests of a bridge's `nice` key: its default is the gateway's, a value from 0 to 19 reaches
// the gateway's bridge, anything else is refused at its place, a change restarts the bridge
// on reload (reload_plan.hpp), and a NATS bridge refuses it — all without a daemon.
#include "bridges.hpp"
#include "config.hpp"
#include "config_test.hpp"
#include "reload_plan.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace shmbus::daemon;
using shmbus::test::config_errors;
using shmbus::test::config_of;

namespace {

std::string bridge_with(const std::string& nice_line) {
    return "bridges:\n"
           "  - name: ground\n"
           "    connect: fifo:/run/a,/run/b\n" +
           nice_line + "    import: [jobs]\n";
}

} // namespace

TEST_CASE("a bridge without nice runs the gateway's default levels below the daemon") {
    const Config c = config_of(bridge_with(""));
    REQUIRE(c.bridges.size() == 1);
    CHECK(c.bridges[0].nice == shmbus::gateway::kDefaultBridgeNice);
    CHECK(to_gateway(c.bridges[0]).nice == shmbus::gateway::kDefaultBridgeNice);
}

TEST_CASE("nice reaches the gateway's bridge, from 0 (the daemon's priority) to 19") {
    for (const int levels : {0, 1, 10, shmbus::gateway::kMaxBridgeNice}) {
        const Config c = config_of(bridge_with("    nice: " + std::to_string(levels) + "\n"));
        REQUIRE(c.bridges.size() == 1);
        CHECK(c.bridges[0].nice == levels);
        CHECK(to_gateway(c.bridges[0]).nice == levels);
    }
}

TEST_CASE("a nice out of range, negative or not a number is refused at its place") {
    for (const std::string value : {"20", "-5"}) {
        const auto e = config_errors(bridge_with("    nice: " + value + "\n"));
        REQUIRE(e.size() == 1);
        CHECK_THAT(e[0], Catch::StartsWith("shmbusd.yaml:4:11: error: 'nice' "));
        CHECK_THAT(e[0], Catch::Contains("19"));
    }
    for (const std::string value : {"low", "1.5"}) {
        const auto e = config_errors(bridge_with("    nice: " + value + "\n"));
        REQUIRE(e.size() == 1);
        CHECK(e[0] ==
              "shmbusd.yaml:4:11: error: 'nice' must be a whole number, got '" + value + "'");
    }
    const auto misspelt = config_errors(bridge_with("    nise: 5\n"));
    REQUIRE(misspelt.size() == 1);
    CHECK_THAT(misspelt[0], Catch::Contains("did you mean 'nice'?"));
}

TEST_CASE("a reload that changes a bridge's nice restarts that bridge") {
    const Config before = config_of(bridge_with(""));
    const Config after = config_of(bridge_with("    nice: 0\n"));
    const auto plan = plan_bridges(before.bridges, after.bridges);
    REQUIRE(plan.size() == 1);
    CHECK(describe(plan[0]) == "bridge 'ground' restarted (nice)");
    CHECK(plan_bridges(after.bridges, after.bridges).empty());
}

TEST_CASE("nice on a NATS bridge is refused at its key") {
    const auto e = config_errors(R"(bridges:
  - name: fleet
    connect: nats://10.0.0.5:4222
    nice: 5
    export:
      - {channel: telemetry, subject: shmbus.robot1.telemetry}
)");
    REQUIRE(e.size() == 1);
    CHECK(e[0] == "shmbusd.yaml:4:5: error: 'nice' applies to links between shmbus daemons; a "
                  "NATS bridge's threads run at the daemon's priority");
}
