// Tests of a bridge's `receive_buffer` key: its default is the gateway's, a size or `auto`
// reaches the link address of the gateway's bridge, anything else is refused at its place, a
// change restarts the bridge on reload (reload_plan.hpp), and links that are not tcp refuse it
// — all without a daemon.
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

std::string tcp_bridge_with(const std::string& line) {
    return "bridges:\n"
           "  - name: ground\n"
           "    connect: tcp://ground.example:7411\n"
           "    secret_file: /etc/shmbusd/ground.key\n" +
           line + "    import: [jobs]\n";
}

} // namespace

TEST_CASE("a tcp bridge without receive_buffer keeps about a fragment in its receive buffer") {
    const Config c = config_of(tcp_bridge_with(""));
    REQUIRE(c.bridges.size() == 1);
    CHECK(c.bridges[0].address.receive_buffer == shmbus::gateway::kLinkReceiveBuffer);
    CHECK(to_gateway(c.bridges[0]).address.receive_buffer == shmbus::gateway::kLinkReceiveBuffer);
}

TEST_CASE("receive_buffer reaches the gateway's link as bytes, and auto as the kernel's own") {
    const std::vector<std::pair<std::string, int>> cases{
        {"65536", 65536}, {"4MiB", 4 * 1024 * 1024}, {"16KiB", 16 * 1024}, {"auto", 0}};
    for (const auto& [value, bytes] : cases) {
        CAPTURE(value);
        // Written before and after the address: the order of the keys does not matter.
        for (const bool before : {true, false}) {
            const std::string text =
                before ? "bridges:\n  - name: ground\n    receive_buffer: " + value +
                             "\n    connect: tcp://ground.example:7411\n"
                             "    secret_file: /etc/shmbusd/ground.key\n    import: [jobs]\n"
                       : tcp_bridge_with("    receive_buffer: " + value + "\n");
            const Config c = config_of(text);
            REQUIRE(c.bridges.size() == 1);
            CHECK(to_gateway(c.bridges[0]).address.receive_buffer == bytes);
        }
    }
}

TEST_CASE("a receive_buffer out of range or not a size is refused at its place") {
    for (const std::string value : {"1KiB", "1GiB"}) {
        const auto e = config_errors(tcp_bridge_with("    receive_buffer: " + value + "\n"));
        REQUIRE(e.size() == 1);
        CHECK_THAT(e[0], Catch::StartsWith("shmbusd.yaml:5:21: error: 'receive_buffer' "));
        CHECK_THAT(e[0], Catch::Contains("16 KiB") || Catch::Contains("16384"));
    }
    const auto word = config_errors(tcp_bridge_with("    receive_buffer: big\n"));
    REQUIRE(word.size() == 1);
    CHECK_THAT(word[0], Catch::StartsWith("shmbusd.yaml:5:21: error: 'receive_buffer' "));
}

TEST_CASE("receive_buffer on an exec: or fifo: link, or a NATS bridge, is refused at its key") {
    for (const std::string address :
         {"fifo:/run/a,/run/b", "exec:ssh ground shmbusctl bridge-stdio"}) {
        const auto e = config_errors("bridges:\n  - name: ground\n    connect: " + address +
                                     "\n    receive_buffer: 1MiB\n    import: [jobs]\n");
        REQUIRE(e.size() == 1);
        CHECK(e[0] == "shmbusd.yaml:4:5: error: 'receive_buffer' applies to tcp links only: an "
                      "exec: or fifo: link's buffers are its pipe's or its command's");
    }
    const auto nats = config_errors(R"(bridges:
  - name: fleet
    connect: nats://10.0.0.5:4222
    receive_buffer: 1MiB
    export:
      - {channel: telemetry, subject: shmbus.robot1.telemetry}
)");
    REQUIRE(nats.size() == 1);
    CHECK(nats[0] == "shmbusd.yaml:4:5: error: 'receive_buffer' applies to tcp links between "
                     "shmbus daemons; a NATS bridge's sockets are libnats'");
}

TEST_CASE("a reload that changes a bridge's receive_buffer restarts that bridge") {
    const Config before = config_of(tcp_bridge_with(""));
    const Config after = config_of(tcp_bridge_with("    receive_buffer: auto\n"));
    const auto plan = plan_bridges(before.bridges, after.bridges);
    REQUIRE(plan.size() == 1);
    CHECK(describe(plan[0]) == "bridge 'ground' restarted (receive_buffer)");
    CHECK(plan_bridges(after.bridges, after.bridges).empty());
}
