// Tests of the configuration of per-uid quotas, the admins' reserve of connections and the
// hello timeout (limits.per_uid.*, limits.admin_reserve, limits.hello_timeout): their
// defaults, their ranges, durations as values, and the cross-checks against max_clients,
// each error pinned at its file:line:column.
#include "config.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

using namespace shmbus::daemon;
using namespace std::chrono_literals;

namespace {

/// Every error of `text` (or of `sources`), formatted as the daemon prints them.
std::vector<std::string> errors(std::string_view text) {
    std::vector<std::string> out;
    for (const ConfigError& e : parse_config(text, "shmbusd.yaml").errors) {
        out.push_back(to_string(e));
    }
    return out;
}

/// The limits `text` gives; fails the test when it has errors.
Limits limits_of(std::string_view text) {
    const ParseOutcome outcome = parse_config(text, "shmbusd.yaml");
    INFO(text);
    for (const ConfigError& e : outcome.errors) {
        UNSCOPED_INFO(to_string(e));
    }
    REQUIRE(outcome.config);
    return outcome.config->limits;
}

void check_same_quotas(const Limits& a, const Limits& b) {
    CHECK(a.per_uid.max_connections == b.per_uid.max_connections);
    CHECK(a.per_uid.max_open_channels == b.per_uid.max_open_channels);
    CHECK(a.per_uid.max_dynamic_channels == b.per_uid.max_dynamic_channels);
    CHECK(a.per_uid.max_segment_bytes == b.per_uid.max_segment_bytes);
    CHECK(a.admin_reserve == b.admin_reserve);
    CHECK(a.hello_timeout == b.hello_timeout);
}

} // namespace

TEST_CASE("an empty file leaves the quotas, the reserve and the hello timeout at their defaults") {
    check_same_quotas(limits_of(""), Limits{});
}

TEST_CASE("the shipped shmbusd.yaml writes out the defaults of the quotas") {
    const ParseOutcome shipped = load_config(
        ConfigPath{std::filesystem::path{SHMBUS_SOURCE_DIR} / "config" / "shmbusd.yaml", true});
    REQUIRE(shipped.ok());
    check_same_quotas(shipped.config->limits, Limits{});
    for (const char* key :
         {"limits.per_uid.max_connections", "limits.per_uid.max_open_channels",
          "limits.per_uid.max_dynamic_channels", "limits.per_uid.max_segment_bytes",
          "limits.admin_reserve", "limits.hello_timeout"}) {
        INFO(key);
        CHECK(shipped.config->set_at.contains(key));
    }
}

TEST_CASE("per-uid quotas, the reserve and the hello timeout are read where they are written") {
    const Limits limits = limits_of(R"(limits:
  max_clients: 100
  admin_reserve: 10
  hello_timeout: 750ms
  per_uid:
    max_connections: 20
    max_open_channels: 300
    max_dynamic_channels: 0
    max_segment_bytes: 64MiB
)");
    CHECK(limits.admin_reserve == 10);
    CHECK(limits.hello_timeout == 750ms);
    CHECK(limits.per_uid.max_connections == 20);
    CHECK(limits.per_uid.max_open_channels == 300);
    CHECK(limits.per_uid.max_dynamic_channels == 0);
    CHECK(limits.per_uid.max_segment_bytes == std::uint64_t{64} << 20);

    const ParseOutcome outcome =
        parse_config("limits:\n  per_uid:\n    max_connections: 3\n", "shmbusd.yaml");
    REQUIRE(outcome.config);
    const ConfigLocation where = outcome.config->set_at.at("limits.per_uid.max_connections");
    CHECK(where.line == 3);
    CHECK(where.column == 22);
}

TEST_CASE("a duration takes ms, s, min or h, with or without a space, in any case") {
    CHECK(limits_of("limits: {hello_timeout: 500ms}").hello_timeout == 500ms);
    CHECK(limits_of("limits: {hello_timeout: 5s}").hello_timeout == 5s);
    CHECK(limits_of("limits: {hello_timeout: 2 S}").hello_timeout == 2s);
    CHECK(limits_of("limits: {hello_timeout: 1min}").hello_timeout == 1min);
    CHECK(limits_of("limits: {hello_timeout: \"100ms\"}").hello_timeout == 100ms);
}

TEST_CASE("a duration without a unit, with an unknown unit or a fraction is refused clearly") {
    CHECK(errors("limits:\n  hello_timeout: 5\n") ==
          std::vector<std::string>{"shmbusd.yaml:2:18: error: 'hello_timeout' needs a unit: '5' "
                                   "could be seconds or milliseconds (write '5s' or '5ms')"});
    CHECK(errors("limits:\n  hello_timeout: 5m\n") ==
          std::vector<std::string>{
              "shmbusd.yaml:2:18: error: 'hello_timeout' has an unknown unit 'm' (did you mean "
              "'5min' or '5ms'?); durations use ms, s, min or h"});
    CHECK(errors("limits:\n  hello_timeout: 2mins\n") ==
          std::vector<std::string>{
              "shmbusd.yaml:2:18: error: 'hello_timeout' has an unknown unit 'mins' (did you mean "
              "'2min'?); durations use ms, s, min or h"});
    CHECK(errors("limits:\n  hello_timeout: 1.5s\n") ==
          std::vector<std::string>{
              "shmbusd.yaml:2:18: error: 'hello_timeout' must be a duration such as 5s or 500ms, "
              "got '1.5s'; durations use ms, s, min or h"});
    CHECK(errors("limits:\n  hello_timeout:\n") ==
          std::vector<std::string>{"shmbusd.yaml:2:3: error: 'hello_timeout' needs a value (a "
                                   "duration, such as 5s or 500ms)"});
}

TEST_CASE("values out of range name the allowed range in the key's own unit") {
    CHECK(errors("limits:\n  hello_timeout: 50ms\n") ==
          std::vector<std::string>{"shmbusd.yaml:2:18: error: 'hello_timeout' must be between "
                                   "100ms and 5min, got 50ms"});
    CHECK(errors("limits:\n  hello_timeout: 1h\n") ==
          std::vector<std::string>{"shmbusd.yaml:2:18: error: 'hello_timeout' must be between "
                                   "100ms and 5min, got 1h"});
    CHECK(errors("limits:\n  hello_timeout: 99999999999999999999h\n") ==
          std::vector<std::string>{"shmbusd.yaml:2:18: error: 'hello_timeout' must be between "
                                   "100ms and 5min, got '99999999999999999999h'"});
    CHECK(errors("limits:\n  per_uid:\n    max_connections: 0\n") ==
          std::vector<std::string>{"shmbusd.yaml:3:22: error: 'max_connections' must be between "
                                   "1 and 65536, got 0"});
    CHECK(errors("limits:\n  per_uid:\n    max_open_channels: 0\n") ==
          std::vector<std::string>{"shmbusd.yaml:3:24: error: 'max_open_channels' must be "
                                   "between 1 and 1048576, got 0"});
    CHECK(errors("limits:\n  per_uid:\n    max_dynamic_channels: -1\n") ==
          std::vector<std::string>{"shmbusd.yaml:3:27: error: 'max_dynamic_channels' must be "
                                   "between 0 and 65536, got '-1'"});
    CHECK(errors("limits:\n  per_uid:\n    max_segment_bytes: 2TiB\n") ==
          std::vector<std::string>{"shmbusd.yaml:3:24: error: 'max_segment_bytes' must be "
                                   "between 0 B and 1 TiB, got 2 TiB"});
    CHECK(errors("limits:\n  per_uid:\n    max_segment_bytes: 1GB\n") ==
          std::vector<std::string>{"shmbusd.yaml:3:24: error: 'max_segment_bytes' has an unknown "
                                   "unit 'GB' (did you mean '1GiB'?); sizes use B, KiB, MiB, GiB "
                                   "or TiB"});
    CHECK(errors("limits:\n  max_clients: 65536\n  admin_reserve: 65536\n") ==
          std::vector<std::string>{"shmbusd.yaml:3:18: error: 'admin_reserve' must be between 0 "
                                   "and 65535, got 65536"});
}

TEST_CASE("an unknown key under per_uid is an error with a suggestion") {
    CHECK(errors("limits:\n  per_uid:\n    max_conections: 3\n") ==
          std::vector<std::string>{"shmbusd.yaml:3:5: error: unknown key 'max_conections' (did "
                                   "you mean 'max_connections'?)"});
    CHECK(errors("limits:\n  per_uid: 3\n") ==
          std::vector<std::string>{"shmbusd.yaml:2:12: error: 'per_uid' must be a mapping of "
                                   "settings, not the value '3'"});
}

TEST_CASE("admin_reserve must leave connections to everyone else") {
    CHECK(errors("limits:\n  max_clients: 8\n  admin_reserve: 8\n") ==
          std::vector<std::string>{
              "shmbusd.yaml:3:18: error: 'limits.admin_reserve' (8) must be less than "
              "'limits.max_clients' (8), or only root and the admins could ever connect"});
    CHECK(limits_of("limits:\n  max_clients: 8\n  admin_reserve: 7\n").admin_reserve == 7);
    CHECK(limits_of("limits:\n  admin_reserve: 0\n").admin_reserve == 0);
}

TEST_CASE("a small max_clients lowers the default reserve instead of refusing the file") {
    const std::uint32_t reserve = Limits{}.admin_reserve;
    CHECK(limits_of("limits:\n  max_clients: 1\n").admin_reserve == 0);
    CHECK(limits_of("limits:\n  max_clients: 2\n").admin_reserve == 1);
    CHECK(limits_of("limits:\n  max_clients: " + std::to_string(2 * reserve - 2) + "\n")
              .admin_reserve == reserve - 1);
    CHECK(
        limits_of("limits:\n  max_clients: " + std::to_string(2 * reserve) + "\n").admin_reserve ==
        reserve);
    CHECK(limits_of("limits:\n  max_clients: 1000\n").admin_reserve == reserve);
}

TEST_CASE("a per-uid connection quota above what non-admins can get is an error") {
    CHECK(errors("limits:\n  max_clients: 10\n  admin_reserve: 2\n  per_uid:\n"
                 "    max_connections: 9\n") ==
          std::vector<std::string>{
              "shmbusd.yaml:5:22: error: 'limits.per_uid.max_connections' (9) is more than the "
              "connections open to users who are not admins ('limits.max_clients' 10 - "
              "'limits.admin_reserve' 2 = 8), so it would never apply"});
    CHECK(limits_of("limits:\n  max_clients: 10\n  admin_reserve: 2\n  per_uid:\n"
                    "    max_connections: 8\n")
              .per_uid.max_connections == 8);
    // The default quota is not checked: a small max_clients alone stays valid.
    CHECK(limits_of("limits:\n  max_clients: 4\n").per_uid.max_connections ==
          UidLimits{}.max_connections);
}

TEST_CASE("the cross-checks apply to the merged files and point at the setting's own file") {
    const std::array<ConfigSource, 2> sources{{
        {"shmbusd.yaml", "limits:\n  admin_reserve: 16\n"},
        {"conf.d/10-small.yaml", "limits: {max_clients: 16}\n"},
    }};
    std::vector<std::string> found;
    for (const ConfigError& e : parse_config(sources).errors) {
        found.push_back(to_string(e));
    }
    CHECK(found == std::vector<std::string>{
                       "shmbusd.yaml:2:18: error: 'limits.admin_reserve' (16) must be less than "
                       "'limits.max_clients' (16), or only root and the admins could ever "
                       "connect"});
}
