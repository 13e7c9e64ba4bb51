// Tests of a bridge's `credit_window` key: its default is the gateway's, a value in range
// reaches the gateway's bridge, a value out of range is refused at its place, and a change
// restarts the bridge on reload (reload_plan.hpp), and a NATS bridge refuses it — all without
// a daemon.
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

std::string bridge_with(const std::string& window_line) {
    return "bridges:\n"
           "  - name: ground\n"
           "    connect: fifo:/run/a,/run/b\n" +
           window_line + "    import: [jobs]\n";
}

} // namespace

TEST_CASE("a bridge without credit_window grants the gateway's default window") {
    const Config c = config_of(bridge_with(""));
    REQUIRE(c.bridges.size() == 1);
    CHECK(c.bridges[0].credit_window == shmbus::gateway::kDefaultCreditWindow);
    CHECK(to_gateway(c.bridges[0]).window == shmbus::gateway::kDefaultCreditWindow);
}

TEST_CASE("credit_window reaches the gateway's bridge, from 1 to the largest window") {
    for (const std::uint32_t window : {1U, 64U, 4096U, shmbus::gateway::kMaxCreditWindow}) {
        const Config c =
            config_of(bridge_with("    credit_window: " + std::to_string(window) + "\n"));
        REQUIRE(c.bridges.size() == 1);
        CHECK(c.bridges[0].credit_window == window);
        CHECK(to_gateway(c.bridges[0]).window == window);
    }
}

TEST_CASE("a credit_window out of range or not a number is refused at its place") {
    const auto zero = config_errors(bridge_with("    credit_window: 0\n"));
    REQUIRE(zero.size() == 1);
    CHECK_THAT(zero[0], Catch::StartsWith("shmbusd.yaml:4:20: error: 'credit_window' "));
    CHECK_THAT(zero[0], Catch::Contains("65536"));
    const auto big = config_errors(bridge_with("    credit_window: 65537\n"));
    REQUIRE(big.size() == 1);
    CHECK_THAT(big[0], Catch::StartsWith("shmbusd.yaml:4:20: error: 'credit_window' "));
    const auto word = config_errors(bridge_with("    credit_window: lots\n"));
    REQUIRE(word.size() == 1);
    CHECK_THAT(word[0], Catch::StartsWith("shmbusd.yaml:4:20: error: 'credit_window' "));
    const auto misspelt = config_errors(bridge_with("    credit_windw: 64\n"));
    REQUIRE(misspelt.size() == 1);
    CHECK_THAT(misspelt[0], Catch::Contains("did you mean 'credit_window'?"));
}

TEST_CASE("a reload that changes a bridge's credit_window restarts that bridge") {
    const Config before = config_of(bridge_with(""));
    const Config after = config_of(bridge_with("    credit_window: 64\n"));
    const auto plan = plan_bridges(before.bridges, after.bridges);
    REQUIRE(plan.size() == 1);
    CHECK(describe(plan[0]) == "bridge 'ground' restarted (credit_window)");
    CHECK(plan_bridges(after.bridges, after.bridges).empty());
}

TEST_CASE("credit_window on a NATS bridge is refused at its key: the servers pace that flow") {
    const auto e = config_errors(R"(bridges:
  - name: fleet
    connect: nats://10.0.0.5:4222
    credit_window: 64
    export:
      - {channel: telemetry, subject: shmbus.robot1.telemetry}
)");
    REQUIRE(e.size() == 1);
    CHECK(e[0] == "shmbusd.yaml:4:5: error: 'credit_window' applies to links between shmbus "
                  "daemons; a NATS bridge's flow is the servers'");
}
