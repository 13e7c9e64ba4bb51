// What the client library says and does across a restart of the real shmbusd: how many
// endpoints the new daemon took back and which it refused, and opens made while the new
// daemon still takes channels back from the clients of its previous run.
//
// The daemon is stopped with SIGKILL (no chance to tidy up), and restarted on the same socket
// and, unless a test says otherwise, the same state directory, so that it takes its channels
// back from the state file. Waits are on the library's own log lines and on replies, always
// with a deadline.
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <filesystem>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = [] {
    TestChannel telemetry = telemetry_channel();
    telemetry.slot_size = 64;
    return channels_yaml({telemetry, jobs_channel()});
}();

ClientOptions options_for(const DaemonProcess& d, const std::string& name, LogLines* lines) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.request_timeout = 30s;
    if (lines != nullptr) {
        o.log = lines->sink();
    }
    return o;
}

Client connect_to(const DaemonProcess& d, const std::string& name, LogLines* lines = nullptr) {
    auto c = Client::connect(options_for(d, name, lines));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

} // namespace

TEST_CASE("after a restart the reconnected line counts the endpoints the daemon took back") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    LogLines lines;
    Client client = connect_to(d, "counted", &lines);
    auto sub = client.open_subscriber("telemetry");
    REQUIRE(sub);
    auto pub = client.open_publisher("jobs");
    REQUIRE(pub);
    REQUIRE(d.kill_hard().has_value());
    REQUIRE(d.start());
    INFO(lines.all());
    CHECK(lines.wait_for("reconnected to shmbusd at " + d.socket_path().native() + " as client "));
    CHECK(lines.count(": 2 endpoints taken back, 0 refused") == 1);
    CHECK(lines.count("refused to take back") == 0);
}

TEST_CASE("offers a restarted daemon refuses are logged with channel, role and why, and "
          "counted") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    LogLines lines;
    Client client = connect_to(d, "refused", &lines);
    auto sub = client.open_subscriber("telemetry");
    REQUIRE(sub);
    const std::uint64_t old_id = sub->info().creation_id;
    auto pub = client.open_publisher("jobs");
    REQUIRE(pub);
    REQUIRE(d.kill_hard().has_value());
    // The new daemon knows nothing of the previous run: it creates both channels anew and
    // cannot take the old segments back.
    std::filesystem::remove_all(d.state_dir());
    REQUIRE(d.start());
    INFO(lines.all());
    REQUIRE(lines.wait_for(": 0 endpoints taken back, 2 refused"));
    CHECK(lines.count("refused to take back the subscriber (endpoint " +
                      std::to_string(sub->endpoint_index()) + ") of channel 'telemetry': " +
                      "not_found: the daemon has no channel 'telemetry' with creation id " +
                      std::to_string(old_id)) == 1);
    CHECK(lines.count("refused to take back the publisher (endpoint " +
                      std::to_string(pub->endpoint_index()) + ") of channel 'jobs': ") == 1);

    // Opened again, the channel is the daemon's new one, and the library counts it as taken
    // back at the next restart.
    auto fresh = client.open_subscriber("telemetry");
    REQUIRE(fresh);
    CHECK(fresh->info().creation_id != old_id);
    REQUIRE(d.kill_hard().has_value());
    REQUIRE(d.start());
    CHECK(lines.wait_for(": 1 endpoint taken back, 0 refused"));
}

TEST_CASE("an open while the restarted daemon takes back channels whose clients are gone "
          "waits for the channel instead of failing with would_block") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    {
        Client gone = connect_to(d, "gone");
        auto sub = gone.open_subscriber("telemetry");
        REQUIRE(sub);
        REQUIRE(d.kill_hard().has_value());
        // The client and its endpoint end while no daemon runs: nobody will offer them back.
    }
    REQUIRE(d.start());
    // The state file names 'telemetry', whose clients are gone: within its grace period the
    // daemon serves a stand-in, and a daemon that answered would_block instead is asked again.
    Client late = connect_to(d, "late");
    auto sub = late.open_subscriber("telemetry");
    INFO((sub ? std::string{} : sub.error().message()));
    REQUIRE(sub);
    auto pub = late.open_publisher("telemetry");
    INFO((pub ? std::string{} : pub.error().message()));
    REQUIRE(pub);
    std::vector<std::byte> msg(16);
    stamp(msg, 7);
    REQUIRE(pub->send(msg, 30s));
    std::vector<std::byte> buf(64);
    auto got = sub->receive_copy(buf, 30s);
    REQUIRE(got);
    CHECK(check_stamp(std::span{buf}.first(got->size)) == 7);
}
