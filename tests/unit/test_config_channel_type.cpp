// Tests of a channel's `type:` key: a type name reaches the configuration, no key means no
// type, and anything that is not a type name is refused at its line and column — all without
// a daemon.
#include "bridges.hpp"
#include "config.hpp"
#include "config_test.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace shmbus::daemon;
using shmbus::test::config_errors;
using shmbus::test::config_of;

namespace {

std::string channel_with(const std::string& type_line) {
    return "channels:\n"
           "  - name: imu\n"
           "    kind: broadcast\n" +
           type_line;
}

} // namespace

TEST_CASE("a channel's type name reaches its configuration and the bridges' table") {
    const Config c = config_of(channel_with("    type: \"sensor_msgs/Imu@v2\"\n"));
    REQUIRE(c.channels.size() == 1);
    CHECK(c.channels[0].type == "sensor_msgs/Imu@v2");
    ChannelTypes types;
    types.set(c.channels);
    CHECK(types.of("imu") == "sensor_msgs/Imu@v2");
    CHECK(types.of("other").empty());
}

TEST_CASE("a channel without a type has none") {
    const Config c = config_of(channel_with(""));
    REQUIRE(c.channels.size() == 1);
    CHECK(c.channels[0].type.empty());
}

TEST_CASE("a type that is not a type name is refused at its place, naming the rule") {
    for (const std::string bad : {"\"two words\"", "\"\"", "[a, b]"}) {
        CAPTURE(bad);
        const auto e = config_errors(channel_with("    type: " + bad + "\n"));
        REQUIRE(e.size() == 1);
        CHECK_THAT(e[0], Catch::StartsWith("shmbusd.yaml:4:11: error: "));
    }
    const auto e = config_errors(channel_with("    type: \"two words\"\n"));
    REQUIRE(e.size() == 1);
    CHECK_THAT(e[0], Catch::Contains("'type' 'two words' is not a type name"));
}
