// An endpoint that a restarted shmbusd refused to take back: the library closes it, so that
// the application learns at once, from every call, that the daemon no longer serves it,
// instead of working (or waiting for ever) on a segment nobody serves.
//
// The refusal is made real: the daemon is killed with SIGKILL and restarted on the same
// socket without its state directory, so that it creates its channels anew and refuses every
// offer (no channel of that creation id). Waits are on the library's own log lines and on
// the calls themselves, always with a deadline.
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <filesystem>
#include <future>
#include <string>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

// `pair`: a queue of one producer and one consumer, which takes the inline data path.
const std::string kChannels = [] {
    TestChannel pair = jobs_channel();
    pair.name = "pair";
    pair.max_publishers = 1;
    pair.max_subscribers = 1;
    return channels_yaml({pair, jobs_channel(), telemetry_channel()});
}();

// Something that must happen: long enough for any machine, short enough to fail rather than
// hang when it does not.
constexpr auto kLong = std::chrono::nanoseconds{60s};

/// Kills the daemon and starts it again knowing nothing of its previous run.
void restart_forgetting(DaemonProcess& d) {
    REQUIRE(d.kill_hard().has_value());
    std::filesystem::remove_all(d.state_dir());
    REQUIRE(d.start());
}

/// Checks that `r` is Errc::closed saying that the daemon refused `role` of `channel`.
template <typename R>
void check_refused(const R& r, const std::string& role, const std::string& channel) {
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().message());
    CHECK(r.code() == Errc::closed);
    CHECK_THAT(r.error().message(),
               Catch::Contains("refused to take back the " + role) &&
                   Catch::Contains("of channel '" + channel + "'") &&
                   Catch::Contains("no channel '" + channel + "' with creation id") &&
                   Catch::Contains("open the channel again"));
}

Result<Client> connect_logged(const DaemonProcess& d, LogLines& lines, const std::string& name) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.request_timeout = 30s;
    o.log = lines.sink();
    return Client::connect(o);
}

std::span<const std::byte> bytes(const std::string& s) {
    return std::as_bytes(std::span{s.data(), s.size()});
}

} // namespace

TEST_CASE("an endpoint the restarted daemon refused wakes from its blocking calls and answers "
          "every call with Errc::closed, naming the channel, the role and why") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    LogLines lines;
    auto client = connect_logged(d, lines, "refused");
    REQUIRE(client);
    const EndpointOptions blocking{.wait = WaitMode::blocking};
    auto pair_pub = client->open_publisher("pair");
    auto pair_sub = client->open_subscriber("pair", blocking);
    auto jobs_pub = client->open_publisher("jobs", blocking);
    auto telemetry_sub = client->open_subscriber("telemetry");
    REQUIRE(pair_pub);
    REQUIRE(pair_sub);
    REQUIRE(jobs_pub);
    REQUIRE(telemetry_sub);

    // Before: the inline path works, and the jobs ring is full (nobody consumes it).
    REQUIRE(pair_pub->try_send(bytes("before")));
    std::array<std::byte, 64> buf{};
    auto got = pair_sub->receive_copy(buf, kLong);
    REQUIRE(got);
    CHECK(got->size == 6);
    while (jobs_pub->try_send(bytes("fill"))) {
    }

    // Blocked: a consumer on an empty ring (futex), a producer on a full one (futex), a
    // broadcast subscriber waiting adaptively.
    auto pair_waits = std::async(std::launch::async, [&] { return pair_sub->receive(1, kLong); });
    auto jobs_waits =
        std::async(std::launch::async, [&] { return jobs_pub->send(bytes("more"), kLong); });
    auto telemetry_waits = std::async(std::launch::async, [&] {
        std::array<std::byte, 256> b{};
        return telemetry_sub->receive_copy(b, kLong);
    });

    restart_forgetting(d);
    INFO(lines.all());
    REQUIRE(lines.wait_for(": 0 endpoints taken back, 4 refused"));

    REQUIRE(pair_waits.wait_for(kLong) == std::future_status::ready);
    REQUIRE(jobs_waits.wait_for(kLong) == std::future_status::ready);
    REQUIRE(telemetry_waits.wait_for(kLong) == std::future_status::ready);
    check_refused(pair_waits.get(), "subscriber", "pair");
    check_refused(jobs_waits.get(), "publisher", "jobs");
    check_refused(telemetry_waits.get(), "subscriber", "telemetry");

    // Every later call, inline path included, says the same at once.
    check_refused(pair_pub->try_send(bytes("after")), "publisher", "pair");
    check_refused(pair_pub->send(bytes("after"), kLong), "publisher", "pair");
    check_refused(pair_pub->try_reserve(1), "publisher", "pair");
    check_refused(pair_pub->reserve(1, kLong), "publisher", "pair");
    check_refused(pair_sub->try_receive(1), "subscriber", "pair");
    check_refused(pair_sub->try_receive_copy(buf), "subscriber", "pair");
    check_refused(jobs_pub->try_send(bytes("after")), "publisher", "jobs");
    check_refused(telemetry_sub->receive(1, kLong), "subscriber", "telemetry");

    // Opened again, the channel is the new daemon's, and works.
    auto fresh_pub = client->open_publisher("pair");
    auto fresh_sub = client->open_subscriber("pair");
    REQUIRE(fresh_pub);
    REQUIRE(fresh_sub);
    REQUIRE(fresh_pub->try_send(bytes("again")));
    got = fresh_sub->receive_copy(buf, kLong);
    REQUIRE(got);
    CHECK(got->size == 5);
}

TEST_CASE("a batch taken before the daemon refused its endpoint is still freed, and the call "
          "says the endpoint is closed") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    LogLines lines;
    auto client = connect_logged(d, lines, "refused-batch");
    REQUIRE(client);
    auto pub = client->open_publisher("pair");
    auto sub = client->open_subscriber("pair");
    REQUIRE(pub);
    REQUIRE(sub);
    REQUIRE(pub->try_send(bytes("held")));
    auto read = sub->receive(1, kLong);
    REQUIRE(read);
    auto reserved = pub->try_reserve(1);
    REQUIRE(reserved);
    reserved->set_length(0, 4);

    restart_forgetting(d);
    INFO(lines.all());
    REQUIRE(lines.wait_for(": 0 endpoints taken back, 2 refused"));

    check_refused(sub->release(*read), "subscriber", "pair");
    CHECK(read->size() == 0); // released all the same
    check_refused(pub->commit(*reserved), "publisher", "pair");
    CHECK(reserved->size() == 0); // abandoned: nothing is published on the old segment
    check_refused(sub->try_receive(1), "subscriber", "pair");
}
