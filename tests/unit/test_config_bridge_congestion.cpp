// Tests of an export's `on_congestion` and `priority` keys: their defaults, every value they
// take reaching the gateway's rule, on_link_down: block implying a blocking export, and each
// mistake refused at its place — all without a daemon.
#include "config.hpp"
#include "config_test.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace shmbus::daemon;
using namespace shmbus::gateway;
using shmbus::test::config_errors;
using shmbus::test::config_of;
using namespace std::chrono_literals;

namespace {

/// A bridge whose only export is `{channel: t, <keys>}` (line 5, the mapping at column 9).
std::string export_with(const std::string& keys) {
    return "bridges:\n"
           "  - name: ground\n"
           "    connect: fifo:/run/a,/run/b\n"
           "    export:\n"
           "      - {channel: t" +
           keys + "}\n";
}

ChannelRule rule_of(const std::string& keys) {
    const Config c = config_of(export_with(keys));
    REQUIRE(c.bridges.size() == 1);
    REQUIRE(c.bridges[0].exports.size() == 1);
    return c.bridges[0].exports[0];
}

} // namespace

TEST_CASE("an export without on_congestion drops the oldest, at the middle priority") {
    const ChannelRule r = rule_of("");
    CHECK(r.on_congestion == CongestionPolicy::drop_oldest);
    CHECK(r.priority == kDefaultPriority);
    CHECK(r.block_timeout == kDefaultBlockTimeout);
}

TEST_CASE("each congestion policy reaches the export's rule") {
    CHECK(rule_of(", on_congestion: drop_oldest").on_congestion == CongestionPolicy::drop_oldest);
    CHECK(rule_of(", on_congestion: keep_latest").on_congestion == CongestionPolicy::keep_latest);
    const ChannelRule block = rule_of(", on_congestion: block, block_timeout: 2s");
    CHECK(block.on_congestion == CongestionPolicy::block);
    CHECK(block.on_link_down == LinkDownPolicy::drop);
    CHECK(block.block_timeout == 2s);
}

TEST_CASE("on_link_down: block makes an export block on congestion too") {
    const ChannelRule implied = rule_of(", on_link_down: block");
    CHECK(implied.on_congestion == CongestionPolicy::block);
    const ChannelRule said = rule_of(", on_link_down: block, on_congestion: block");
    CHECK(said.on_congestion == CongestionPolicy::block);
}

TEST_CASE("priority takes 0 to 7") {
    for (unsigned p = 0; p <= kMaxPriority; ++p) {
        CHECK(rule_of(", priority: " + std::to_string(p)).priority == p);
    }
}

TEST_CASE("a wrong congestion policy or priority is refused at its place") {
    const auto unknown = config_errors(export_with(", on_congestion: conflate"));
    REQUIRE(unknown.size() == 1);
    CHECK_THAT(unknown[0],
               Catch::StartsWith("shmbusd.yaml:5:37: error: unknown congestion policy 'conflate'"));
    CHECK_THAT(unknown[0], Catch::Contains("keep_latest"));

    const auto high = config_errors(export_with(", priority: 8"));
    REQUIRE(high.size() == 1);
    CHECK_THAT(high[0], Catch::StartsWith("shmbusd.yaml:5:32: error: 'priority' "));
    CHECK_THAT(high[0], Catch::Contains("7"));
    const auto word = config_errors(export_with(", priority: high"));
    REQUIRE(word.size() == 1);
    CHECK_THAT(word[0], Catch::StartsWith("shmbusd.yaml:5:32: error: 'priority' "));

    const auto lossy =
        config_errors(export_with(", on_link_down: block, on_congestion: keep_latest"));
    REQUIRE(lossy.size() == 1);
    CHECK(lossy[0] == "shmbusd.yaml:5:58: error: 'on_congestion: keep_latest' cannot go with "
                      "'on_link_down: block', which loses nothing: leave 'on_congestion' out or "
                      "make it 'block'");

    const auto timeout =
        config_errors(export_with(", on_congestion: drop_oldest, block_timeout: 1s"));
    REQUIRE(timeout.size() == 1);
    CHECK(timeout[0] == "shmbusd.yaml:5:65: error: 'block_timeout' applies only with "
                        "'on_link_down: block' or 'on_congestion: block'");
}

TEST_CASE("on_congestion and priority apply to exports only") {
    const auto e = config_errors("bridges:\n"
                                 "  - name: ground\n"
                                 "    connect: fifo:/run/a,/run/b\n"
                                 "    import:\n"
                                 "      - {channel: j, on_congestion: block, priority: 5}\n");
    REQUIRE(e.size() == 2);
    CHECK_THAT(e[0], Catch::StartsWith("shmbusd.yaml:5:22: error: 'on_congestion' applies to "
                                       "exports only"));
    CHECK_THAT(e[1], Catch::StartsWith("shmbusd.yaml:5:44: error: 'priority' applies to "
                                       "exports only"));
}
