// NATS bridges as a feature of shmbusd: real daemons configured from YAML only, bridged
// through a real nats-server that each test starts on a free loopback port. The daemons are
// driven as an operator would — their configuration, reload — and watched through the
// control protocol (list_bridges), `shmbusctl bridges` and their logs; the far side of a
// durable import is a plain libnats JetStream publisher. Skipped where nats-server is not
// installed.
#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "nats_client.hpp"
#include "nats_server.hpp"
#include "shmbusctl_process.hpp"
#include "skip.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

/// A `channels:` section of broadcast channels of 128-byte slots, 256 deep, open to all.
std::string channels(const std::vector<std::string>& names) {
    std::vector<TestChannel> list;
    for (const auto& n : names) {
        list.push_back({.name = n,
                        .kind = "broadcast",
                        .slot_size = 128,
                        .slot_count = 256,
                        .max_publishers = 2,
                        .max_subscribers = 4});
    }
    return channels_yaml(list);
}

/// Waits until NATS bridge `name` of `d` is connected with its `streams` streams: its
/// subscriptions are then known to the server, so a message published now is delivered.
bool wait_connected(const DaemonProcess& d, const std::string& name, std::size_t streams) {
    return wait_until([&] {
        auto b = bridge_of(d, name);
        return b && b->state == "connected" && b->streams.size() == streams;
    });
}

/// One stream's counters, by its local channel and direction.
BridgeStreamSummary stream_of(const DaemonProcess& d, const std::string& bridge,
                              const std::string& channel, bool exporting) {
    if (auto b = bridge_of(d, bridge)) {
        for (const auto& s : b->streams) {
            if (s.local_name == channel && s.exporting == exporting) {
                return s;
            }
        }
    }
    return {};
}

/// Sends `count` stamped messages from `first` on `channel` of `from`, each checked to arrive
/// in order on `sub`, before the next is sent.
void check_flow(const DaemonProcess& from, const std::string& channel, Subscriber& sub,
                std::uint64_t first, std::uint64_t count) {
    auto sender = Client::connect(options_for(from));
    REQUIRE(sender.has_value());
    auto pub = sender.value().open_publisher(channel);
    REQUIRE(pub.has_value());
    std::vector<std::byte> buf(128);
    for (std::uint64_t id = first; id < first + count; ++id) {
        stamp(buf, id);
        REQUIRE(pub.value().send(buf, 60s).has_value());
        auto r = sub.receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
    }
}

Subscriber subscribe(const Client& client, const std::string& channel) {
    auto sub = const_cast<Client&>(client).open_subscriber(channel);
    REQUIRE(sub.has_value());
    return std::move(sub.value());
}

/// A bridge entry of shmbusd.yaml.
std::string nats_bridge(const NatsServer& server, const std::string& exports,
                        const std::string& imports) {
    return "  - name: fleet\n"
           "    connect: " +
           server.url() + "\n" + (exports.empty() ? "" : "    export:\n" + exports) +
           (imports.empty() ? "" : "    import:\n" + imports);
}

} // namespace

TEST_CASE("two shmbusd configured in YAML carry channels both ways through one NATS server, "
          "and shmbusctl bridges shows the NATS bridge",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    INFO(why);
    DaemonProcess robot{
        channels({"telemetry", "ground/jobs"}) + "bridges:\n" +
        nats_bridge(server, "      - {channel: telemetry, subject: shmbus.robot1.telemetry}\n",
                    "      - {subject: shmbus.ground.jobs, channel: ground/jobs}\n")};
    DaemonProcess ground{
        channels({"fleet/telemetry", "jobs"}) + "bridges:\n" +
        nats_bridge(server, "      - {channel: jobs, subject: shmbus.ground.jobs}\n",
                    "      - {subject: \"shmbus.*.telemetry\", channel: fleet/telemetry}\n")};
    robot.with_stderr_file();
    REQUIRE(robot.start());
    REQUIRE(ground.start());
    REQUIRE(wait_connected(robot, "fleet", 2));
    REQUIRE(wait_connected(ground, "fleet", 2));

    auto ground_app = Client::connect(options_for(ground));
    REQUIRE(ground_app.has_value());
    auto telemetry = subscribe(ground_app.value(), "fleet/telemetry");
    auto robot_app = Client::connect(options_for(robot));
    REQUIRE(robot_app.has_value());
    auto jobs = subscribe(robot_app.value(), "ground/jobs");
    check_flow(robot, "telemetry", telemetry, 0, 500);
    check_flow(ground, "jobs", jobs, 0, 500);

    const Outcome out = ctl(at(robot, {"bridges", "--json"}));
    REQUIRE(out.code == 0);
    const auto doc = nlohmann::json::parse(out.out);
    REQUIRE(doc["bridges"].size() == 1);
    const auto& b = doc["bridges"][0];
    CHECK(b["name"] == "fleet");
    CHECK(b["transport"] == "nats");
    CHECK(b["state"] == "connected");
    CHECK(b["address"] == server.url());
    CHECK(b["peer"] == server.url());
    REQUIRE(b["nats"]["known_servers"].is_array());
    CHECK(b["nats"]["known_servers"][0] == server.url());
    CHECK(b["out"]["channels"] == 1);
    CHECK(b["out"]["messages"].get<std::uint64_t>() == 500);
    CHECK(b["out"]["bytes"].get<std::uint64_t>() == 500 * 128);
    CHECK(b["out"]["lost"] == 0);
    CHECK(b["in"]["channels"] == 1);
    CHECK(b["in"]["messages"].get<std::uint64_t>() == 500);
    CHECK(b["in"]["lost"] == 0);
    CHECK(b["streams"][0]["wire_name"] == "shmbus.robot1.telemetry");

    const Outcome table = ctl(at(robot, {"bridges"}));
    REQUIRE(table.code == 0);
    CHECK_THAT(table.out, Catch::Contains("connect " + server.url()));
    CHECK_THAT(table.out, Catch::Contains("connected"));
    CHECK(
        robot.wait_for_stderr("bridge 'fleet': connected to " + server.url(), generous_deadline()));
}

TEST_CASE("a channel exported and imported through one subject on two daemons reaches the "
          "other daemon once and never comes back",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    const std::string both =
        channels({"shared"}) + "bridges:\n" +
        nats_bridge(server, "      - {channel: shared, subject: shmbus.shared}\n",
                    "      - {subject: shmbus.shared, channel: shared}\n");
    DaemonProcess a{both};
    DaemonProcess b{both};
    REQUIRE(a.start());
    REQUIRE(b.start());
    REQUIRE(wait_connected(a, "fleet", 2));
    REQUIRE(wait_connected(b, "fleet", 2));

    auto a_app = Client::connect(options_for(a));
    REQUIRE(a_app.has_value());
    auto b_app = Client::connect(options_for(b));
    REQUIRE(b_app.has_value());
    auto on_a = subscribe(a_app.value(), "shared");
    auto on_b = subscribe(b_app.value(), "shared");
    std::vector<std::byte> buf(128);
    const auto expect = [&](Subscriber& sub, std::uint64_t id) {
        auto r = sub.receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
    };

    // 200 published on A: A's subscriber sees its own, B's the same through NATS, once.
    constexpr std::uint64_t kCount = 200;
    {
        auto pub = a_app.value().open_publisher("shared");
        REQUIRE(pub.has_value());
        for (std::uint64_t id = 0; id < kCount; ++id) {
            stamp(buf, id);
            REQUIRE(pub.value().send(buf, 60s).has_value());
        }
    }
    for (std::uint64_t id = 0; id < kCount; ++id) {
        expect(on_a, id);
        expect(on_b, id);
    }
    // Then one published on B: B's export reads the channel in order, so once A has it, B's
    // export has gone past the 200 it imported, and sent none of them back.
    {
        auto pub = b_app.value().open_publisher("shared");
        REQUIRE(pub.has_value());
        stamp(buf, kCount);
        REQUIRE(pub.value().send(buf, 60s).has_value());
    }
    expect(on_b, kCount);
    expect(on_a, kCount);
    CHECK(stream_of(b, "fleet", "shared", true).messages == 1);
    CHECK(stream_of(a, "fleet", "shared", true).messages == kCount);
    // Each daemon's import dropped what came back of its own exports.
    REQUIRE(wait_until([&] { return bridge_of(a, "fleet")->looped == kCount; }));
    REQUIRE(wait_until([&] { return bridge_of(b, "fleet")->looped == 1; }));
    CHECK(stream_of(a, "fleet", "shared", false).messages == 1);
    CHECK(stream_of(b, "fleet", "shared", false).messages == kCount);
    CHECK(on_a.try_receive_copy(buf).code() == Errc::would_block);
    CHECK(on_b.try_receive_copy(buf).code() == Errc::would_block);
}

TEST_CASE("reload adds a NATS bridge, restarts it when its exports change, and removes it",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    const std::string robot_channels = channels({"telemetry", "camera"});
    DaemonProcess robot{robot_channels};
    DaemonProcess ground{channels({"fleet/telemetry"}) + "bridges:\n" +
                         nats_bridge(server, "",
                                     "      - {subject: \"shmbus.robot1.*\", channel: "
                                     "fleet/telemetry}\n")};
    REQUIRE(robot.start());
    REQUIRE(ground.start());
    REQUIRE(wait_connected(ground, "fleet", 1));
    auto ground_app = Client::connect(options_for(ground));
    REQUIRE(ground_app.has_value());
    auto sub = subscribe(ground_app.value(), "fleet/telemetry");

    CHECK_THAT(
        reload_with(
            robot, robot_channels + "bridges:\n" +
                       nats_bridge(
                           server,
                           "      - {channel: telemetry, subject: shmbus.robot1.telemetry}\n", "")),
        Catch::Contains("bridge 'fleet' added (connect " + server.url() + ")"));
    REQUIRE(wait_connected(robot, "fleet", 1));
    check_flow(robot, "telemetry", sub, 0, 100);

    CHECK_THAT(
        reload_with(robot,
                    robot_channels + "bridges:\n" +
                        nats_bridge(server,
                                    "      - {channel: camera, subject: shmbus.robot1.camera}\n",
                                    "")),
        Catch::Contains("bridge 'fleet' restarted (export)"));
    REQUIRE(wait_until([&] {
        auto b = bridge_of(robot, "fleet");
        return b && b->state == "connected" && b->streams.size() == 1 &&
               b->streams[0].local_name == "camera";
    }));
    check_flow(robot, "camera", sub, 100, 100);

    CHECK_THAT(reload_with(robot, robot_channels), Catch::Contains("bridge 'fleet' removed"));
    REQUIRE(wait_until([&] { return !bridge_of(robot, "fleet").has_value(); }));
}

TEST_CASE("a NATS server that refuses a bridge's credentials: the bridge says so, naming the "
          "server, and the daemon runs on",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program, false, {"--user", "fleet", "--pass", "right-password"}};
    std::string why;
    REQUIRE(server.start(&why));
    const std::string wrong =
        "nats://fleet:wrong-password@127.0.0.1:" + std::to_string(server.port());
    DaemonProcess robot{channels({"telemetry"}) +
                        "bridges:\n"
                        "  - name: fleet\n"
                        "    connect: " +
                        wrong +
                        "\n"
                        "    export:\n"
                        "      - {channel: telemetry, subject: shmbus.robot1.telemetry}\n"};
    robot.with_stderr_file();
    REQUIRE(robot.start());
    std::optional<BridgeSummary> b;
    REQUIRE(wait_until([&] {
        b = bridge_of(robot, "fleet");
        return b && b->state == "stopped" && !b->last_error.empty();
    }));
    CHECK_THAT(b->last_error, Catch::Contains("Authorization Violation"));
    const std::string shown = "nats://fleet:***@127.0.0.1:" + std::to_string(server.port());
    CHECK_THAT(b->last_error, Catch::Contains(shown));
    // The password is never shown: not in the summary, not in the log.
    CHECK(b->address == shown);
    CHECK(robot.wait_for_stderr("bridge 'fleet': stopped: NATS connect (servers " + shown + "): ",
                                generous_deadline()));
    CHECK(robot.stderr_text().find("wrong-password") == std::string::npos);
    // The local bus is not disturbed: a channel works as before.
    auto app = Client::connect(options_for(robot));
    REQUIRE(app.has_value());
    auto sub = subscribe(app.value(), "telemetry");
    check_flow(robot, "telemetry", sub, 0, 10);
}

TEST_CASE("a durable JetStream import configured in YAML loses and repeats nothing across a "
          "restart of its daemon",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program, /*jetstream=*/true};
    std::string why;
    REQUIRE(server.start(&why));

    // The far side: a stream holding shmbus.ground.jobs, and a publisher that waits for each
    // message's acknowledgement by the stream.
    add_jobs_stream(server.url());
    PlainNats far{server.url()};
    jsCtx* js = nullptr;
    REQUIRE(natsConnection_JetStream(&js, far.nc, nullptr) == NATS_OK);
    jsErrCode code{};
    const auto publish = [&](std::uint64_t from, std::uint64_t to) {
        std::vector<std::byte> out(128);
        for (std::uint64_t id = from; id < to; ++id) {
            stamp(out, id);
            jsPubAck* ack = nullptr;
            REQUIRE(js_Publish(&ack, js, "shmbus.ground.jobs", out.data(),
                               static_cast<int>(out.size()), nullptr, &code) == NATS_OK);
            jsPubAck_Destroy(ack);
        }
    };

    std::vector<TestChannel> list{{.name = "jobs",
                                   .kind = "broadcast",
                                   .slot_size = 128,
                                   .slot_count = 4096,
                                   .max_publishers = 2,
                                   .max_subscribers = 4}};
    const std::string yaml =
        channels_yaml(list) + "bridges:\n" +
        nats_bridge(server, "",
                    "      - {subject: shmbus.ground.jobs, channel: jobs, durable: ground-jobs}\n");
    DaemonProcess ground{yaml};
    REQUIRE(ground.start());
    REQUIRE(wait_connected(ground, "fleet", 1));

    // The subscriber stays attached while the daemon restarts, as under systemd: the channel's
    // segments wait in the descriptor store, and the next daemon serves them again on the same
    // socket (and its bridge imports into them).
    auto app = Client::connect(options_for(ground));
    REQUIRE(app.has_value());
    auto sub = subscribe(app.value(), "jobs");
    std::vector<std::byte> buf(128);
    std::uint64_t next = 0;
    bool in_order = true;
    const auto receive = [&](std::uint64_t until) {
        while (next < until) {
            auto r = sub.receive_copy(buf, 60s);
            REQUIRE(r.has_value());
            in_order = in_order && check_stamp(std::span{buf}.first(r.value().size)) == next;
            ++next;
        }
    };
    publish(0, 1000);
    receive(1000);
    const auto stored = ground.stored_fds();
    REQUIRE_FALSE(stored.empty());
    const auto stopped = ground.stop(); // SIGTERM: the bridge acknowledges what it published
    REQUIRE(stopped);
    CHECK(stopped->code == 0);
    publish(1000, 2000); // while no daemon runs: the stream keeps them for ground-jobs
    std::vector<std::pair<int, std::string>> passed;
    for (const auto& [name, fd] : stored) {
        passed.emplace_back(fd.get(), name);
    }
    DaemonProcess successor{yaml};
    successor.with_state_dir(ground.state_dir())
        .with_args({"--socket", ground.socket_path().native()})
        .without_own_socket()
        .with_passed_fds(passed);
    REQUIRE(successor.start());
    REQUIRE(wait_connected(ground, "fleet", 1)); // on the same socket
    publish(2000, 3000);
    receive(3000);
    CHECK(in_order);
    // The new daemon's bridge published exactly what the old one had not: 2,000, none again.
    std::optional<BridgeSummary> b;
    REQUIRE(wait_until([&] {
        b = bridge_of(ground, "fleet");
        return b && b->streams.size() == 1 && b->streams[0].messages >= 2000;
    }));
    CHECK(b->streams[0].messages == 2000);
    CHECK(b->streams[0].lost == 0);
    CHECK(b->duplicates == 0);
    CHECK(sub.try_receive_copy(buf).code() == Errc::would_block);
    CHECK(sub.lost() == 0);
    jsCtx_Destroy(js);
}
