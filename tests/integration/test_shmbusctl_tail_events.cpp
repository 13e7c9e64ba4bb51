// shmbusctl tail --events: the channel's peer events printed beside its messages, waited for
// on the subscriber's wait handle. Every wait is on an event (READY=1, the tail's
// subscription in `info --json`, a process exit).
#include "daemon_process.hpp"
#include "shmbusctl_process.hpp"
#include "test_channels.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>

using namespace shmbus::test;

TEST_CASE("tail --events prints the publishers that came and went beside their messages") {
    DaemonProcess d{standard_channels_yaml()};
    REQUIRE(d.start());
    Ctl tail(at(d, {"tail", "telemetry", "--events", "--count", "2", "--format", "json"}));
    REQUIRE(wait_for_tails(d, "telemetry", 1));
    REQUIRE(ctl(at(d, {"pub", "telemetry", "first"})).code == 0);
    REQUIRE(ctl(at(d, {"pub", "telemetry", "second"})).code == 0);
    const Outcome got = tail.finish();
    INFO(got.out << got.err);
    REQUIRE(got.code == 0);

    int attached = 0;
    int messages = 0;
    std::istringstream lines{got.out};
    for (std::string line; std::getline(lines, line);) {
        const auto j = nlohmann::json::parse(line);
        if (j.contains("event")) {
            CHECK(j.at("role") == "publisher");
            CHECK(j.at("endpoint") == 0);
            CHECK(j.at("pid").get<int>() > 0);
            attached += j.at("event") == "attached" ? 1 : 0;
        } else {
            ++messages;
        }
    }
    CHECK(attached == 2);
    CHECK(messages == 2);
    // The first publisher's detach came before the second message at the latest.
    CHECK(got.out.find("\"detached\"") != std::string::npos);
}
