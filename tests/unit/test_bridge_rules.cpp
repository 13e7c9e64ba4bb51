// Tests of daemon/gateway/bridge_rules: globs match whole names, `as` renames with what the
// wildcards matched, rules that cannot rename consistently are refused naming why, and the
// first matching rule wins.
#include "gateway/bridge_rules.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace shmbus::gateway {

TEST_CASE("a glob matches whole names only") {
    CHECK(glob_match("telemetry", "telemetry"));
    CHECK_FALSE(glob_match("telemetry", "telemetry2"));
    CHECK(glob_match("camera/*", "camera/front"));
    CHECK(glob_match("camera/*", "camera/"));
    CHECK_FALSE(glob_match("camera/*", "cameras/front"));
    CHECK(glob_match("*", "anything.at-all"));
    CHECK(glob_match("a?c", "abc"));
    CHECK_FALSE(glob_match("a?c", "ac"));
    CHECK(glob_match("*/raw/*", "robot1/raw/imu"));
    CHECK_FALSE(glob_match("*/raw/*", "robot1/cooked/imu"));
    CHECK(glob_match("a*b*c", "aXXbYYbZc"));
    CHECK_FALSE(glob_match("a*b*c", "aXXbYYbZ"));
}

TEST_CASE("a glob reports what each wildcard matched, in order") {
    std::vector<std::string> captures;
    REQUIRE(glob_match("*/cam?/*", "robot1/cam2/front/left", &captures));
    CHECK(captures == std::vector<std::string>{"robot1", "2", "front/left"});
    REQUIRE(glob_match("x*", "x", &captures));
    CHECK(captures == std::vector<std::string>{""});
}

TEST_CASE("a pathological glob is answered without exponential backtracking") {
    const std::string name(63, 'a');
    CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", name));
}

TEST_CASE("an export's as renames a local channel to its wire name") {
    const ChannelRule rule{"camera/*", "robot1/camera/*", LinkDownPolicy::drop};
    REQUIRE(validate_rule(rule).has_value());
    CHECK(apply_rule(rule, "camera/front") == std::optional<std::string>{"robot1/camera/front"});
    CHECK(apply_rule(rule, "lidar/top") == std::nullopt);
    const ChannelRule plain{"jobs", "", LinkDownPolicy::drop};
    CHECK(apply_rule(plain, "jobs") == std::optional<std::string>{"jobs"});
    const ChannelRule renamed{"jobs", "ground/jobs", LinkDownPolicy::drop};
    CHECK(apply_rule(renamed, "jobs") == std::optional<std::string>{"ground/jobs"});
}

TEST_CASE("a rename that would make a name too long does not match") {
    const ChannelRule rule{"*", "a-long-prefix-that-takes-most-of-the-room/*",
                           LinkDownPolicy::drop};
    CHECK(apply_rule(rule, std::string(40, 'x')) == std::nullopt);
}

TEST_CASE("a rule whose as has other wildcards than its channel is refused naming both") {
    auto r = validate_rule({"camera/*", "robot1/camera", LinkDownPolicy::drop});
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().detail,
               Catch::Contains("as 'robot1/camera'") && Catch::Contains("channel 'camera/*'"));
    CHECK_FALSE(validate_rule({"a*?", "b?*", LinkDownPolicy::drop}).has_value());
}

TEST_CASE("a rule with a character no channel name holds is refused naming it") {
    auto r = validate_rule({"camera front", "", LinkDownPolicy::drop});
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().detail, Catch::Contains("contains ' '"));
    CHECK_FALSE(validate_rule({"", "", LinkDownPolicy::drop}).has_value());
    CHECK_FALSE(validate_rule({std::string(64, 'a'), "", LinkDownPolicy::drop}).has_value());
}

TEST_CASE("the first matching rule decides") {
    const std::vector<ChannelRule> rules{{"camera/front", "front", LinkDownPolicy::block},
                                         {"camera/*", "cams/*", LinkDownPolicy::drop}};
    auto front = first_match(rules, "camera/front");
    REQUIRE(front);
    CHECK(front->mapped == "front");
    CHECK(front->rule->on_link_down == LinkDownPolicy::block);
    auto rear = first_match(rules, "camera/rear");
    REQUIRE(rear);
    CHECK(rear->mapped == "cams/rear");
    CHECK_FALSE(first_match(rules, "lidar"));
}

} // namespace shmbus::gateway
