// A channel's creation id in shmbusctl's output: a random 64-bit value, which --json sends as
// a string of decimal digits so that readers holding JSON numbers as doubles (jq, JavaScript)
// do not round it, and which `info` prints as the same number (docs/shmbusctl.md).
#include "daemon_process.hpp"
#include "shmbusctl_process.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

using namespace shmbus;
using namespace shmbus::test;

TEST_CASE("creation_id in --json is a string holding the exact 64-bit id, as info prints it") {
    DaemonProcess d{standard_channels_yaml()};
    REQUIRE(d.start());
    ClientOptions options;
    options.socket_path = d.socket_path().native();
    auto client = Client::connect(options);
    REQUIRE(client);
    auto detail = client->channel_info("telemetry");
    REQUIRE(detail);
    const std::string id = std::to_string(detail->summary.info.creation_id);

    const Outcome info = ctl(at(d, {"info", "telemetry", "--json"}));
    REQUIRE(info.code == 0);
    const nlohmann::json doc = info.document();
    REQUIRE(doc.at("creation_id").is_string());
    CHECK(doc.at("creation_id").get<std::string>() == id);

    const Outcome list = ctl(at(d, {"list", "--interval", "0", "--json"}));
    REQUIRE(list.code == 0);
    bool listed = false;
    const nlohmann::json channels = list.document().at("channels"); // outlives the loop
    for (const auto& c : channels) {
        if (c.at("name") == "telemetry") {
            listed = true;
            CHECK(c.at("creation_id") == id);
        }
    }
    CHECK(listed);

    const Outcome text = ctl(at(d, {"info", "telemetry"}));
    REQUIRE(text.code == 0);
    CHECK(text.out.find(id) != std::string::npos);
}
