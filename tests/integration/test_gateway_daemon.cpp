// The gateway as a feature of shmbusd: bridges configured in shmbusd.yaml between two or
// three real daemons on this machine (TCP loopback and a FIFO pair, never the network).
// Each test drives the daemons as an operator would — their configuration, SIGKILL and
// restart, reload — and watches them through the control protocol (list_bridges) and
// `shmbusctl bridges --json`, and reads their logs for the lines an operator would look for.
#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "shmbusctl_process.hpp"
#include "test_pki.hpp"
#include "test_support.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

std::string broadcast(const std::string& name) {
    return "  - {name: " + name +
           ", kind: broadcast, slot_size: 128, slot_count: 64, overflow: block, "
           "max_publishers: 2, max_subscribers: 4}\n";
}

/// A daemon whose stderr is kept, so its log can be read.
struct LoggedDaemon {
    explicit LoggedDaemon(const std::string& yaml) : d{yaml} { d.with_stderr_file(); }
    DaemonProcess d;
};

} // namespace

TEST_CASE("bridges configured in YAML over tcp move channels both ways, connect and listen") {
    TempDir dir;
    const std::string key = make_secret(dir);
    LoggedDaemon ground{"channels:\n" + broadcast("jobs") +
                        "bridges:\n"
                        "  - name: robot\n"
                        "    listen: tcp://127.0.0.1:0\n"
                        "    secret_file: " +
                        key +
                        "\n"
                        "    export: [jobs]\n"
                        "    import: [\"robot1/*\"]\n"};
    REQUIRE(ground.d.start());
    const auto port = listening_port(ground.d, "robot");
    LoggedDaemon robot{"channels:\n" + broadcast("telemetry") +
                       "bridges:\n"
                       "  - name: ground\n"
                       "    connect: tcp://127.0.0.1:" +
                       std::to_string(port) +
                       "\n"
                       "    secret_file: " +
                       key +
                       "\n"
                       "    export:\n"
                       "      - {channel: telemetry, as: robot1/telemetry, on_link_down: drop}\n"
                       "    import:\n"
                       "      - {channel: jobs, as: ground/jobs}\n"};
    REQUIRE(robot.d.start());
    REQUIRE(wait_streaming(robot.d, "ground", 2));
    REQUIRE(wait_streaming(ground.d, "robot", 2));

    check_flow(robot.d, "telemetry", ground.d, "robot1/telemetry", 500); // connecting end out
    check_flow(ground.d, "jobs", robot.d, "ground/jobs", 500);           // listening end out

    auto b = bridge_of(robot.d, "ground");
    REQUIRE(b.has_value());
    CHECK(b->peer == "127.0.0.1:" + std::to_string(port));
    CHECK(b->version == 2); // the highest bridge protocol both daemons speak
    CHECK(b->peer_incarnation != 0);
    // The imported channel is an ordinary local channel of the robot.
    auto c = Client::connect(options_for(robot.d));
    REQUIRE(c.has_value());
    auto info = c.value().channel_info("ground/jobs");
    REQUIRE(info.has_value());
    CHECK(info.value().summary.info.kind == ChannelKind::broadcast);
    CHECK(robot.d.wait_for_stderr("bridge 'ground': connected: 127.0.0.1:" + std::to_string(port),
                                  generous_deadline()));
    CHECK(ground.d.wait_for_stderr("bridge 'robot': importing channel 'robot1/telemetry'",
                                   generous_deadline()));
}

TEST_CASE("bridges configured over a FIFO pair move messages") {
    TempDir dir;
    const std::string up = (dir.path() / "up").native();
    const std::string down = (dir.path() / "down").native();
    REQUIRE(::mkfifo(up.c_str(), 0600) == 0);
    REQUIRE(::mkfifo(down.c_str(), 0600) == 0);
    DaemonProcess robot{"channels:\n" + broadcast("telemetry") +
                        "bridges:\n"
                        "  - name: ground\n"
                        "    connect: fifo:" +
                        down + "," + up +
                        "\n"
                        "    export: [telemetry]\n"};
    DaemonProcess ground{"channels:\n" + broadcast("telemetry") +
                         "bridges:\n"
                         "  - name: robot\n"
                         "    listen: fifo:" +
                         up + "," + down +
                         "\n"
                         "    import: [telemetry]\n"};
    REQUIRE(robot.start());
    REQUIRE(ground.start());
    REQUIRE(wait_streaming(robot, "ground", 1));
    check_flow(robot, "telemetry", ground, "telemetry", 500);
    auto b = bridge_of(ground, "robot");
    REQUIRE(b.has_value());
    REQUIRE(b->streams.size() == 1);
    CHECK_FALSE(b->streams[0].exporting);
    CHECK(b->streams[0].messages >= 500);
}

TEST_CASE("a peer asking for a channel it may not have is refused and logged by name") {
    TempDir dir;
    const std::string key = make_secret(dir);
    LoggedDaemon ground{"channels:\n" + broadcast("public") + broadcast("private") +
                        "bridges:\n"
                        "  - name: robot\n"
                        "    listen: tcp://127.0.0.1:0\n"
                        "    secret_file: " +
                        key +
                        "\n"
                        "    export: [public]\n"};
    REQUIRE(ground.d.start());
    const auto port = listening_port(ground.d, "robot");
    LoggedDaemon robot{"bridges:\n"
                       "  - name: ground\n"
                       "    connect: tcp://127.0.0.1:" +
                       std::to_string(port) +
                       "\n"
                       "    secret_file: " +
                       key +
                       "\n"
                       "    import: [public, private]\n"};
    REQUIRE(robot.d.start());
    CHECK(
        ground.d.wait_for_stderr("refused the peer's request for 'private'", generous_deadline()));
    CHECK(robot.d.wait_for_stderr("the peer refused to export 'private'", generous_deadline()));
    REQUIRE(wait_streaming(robot.d, "ground", 1)); // 'public' still flows
    check_flow(ground.d, "public", robot.d, "public", 100);
    // Nothing of 'private' moved: the robot has no such channel, the ground no reader on it.
    auto c = Client::connect(options_for(robot.d));
    REQUIRE(c.has_value());
    CHECK(c.value().channel_info("private").code() == Errc::not_found);
    auto g = Client::connect(options_for(ground.d));
    REQUIRE(g.has_value());
    auto priv = g.value().channel_info("private");
    REQUIRE(priv.has_value());
    CHECK(priv.value().endpoints.empty());
}

TEST_CASE("a bridge whose peer is killed reconnects by itself when the peer returns") {
    TempDir dir;
    const std::string key = make_secret(dir);
    const auto ground_yaml = [&](const std::string& port) {
        return "channels:\n" + broadcast("telemetry") +
               "bridges:\n"
               "  - name: robot\n"
               "    listen: tcp://127.0.0.1:" +
               port + "\n    secret_file: " + key + "\n    import: [telemetry]\n";
    };
    auto ground = std::make_unique<DaemonProcess>(ground_yaml("0"));
    REQUIRE(ground->start());
    const auto port = std::to_string(listening_port(*ground, "robot"));
    DaemonProcess robot{"channels:\n" + broadcast("telemetry") +
                        "bridges:\n"
                        "  - name: ground\n"
                        "    connect: tcp://127.0.0.1:" +
                        port + "\n    secret_file: " + key + "\n    export: [telemetry]\n"};
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "ground", 1));
    check_flow(robot, "telemetry", *ground, "telemetry", 200);
    const auto before = bridge_of(robot, "ground");
    REQUIRE(before.has_value());

    REQUIRE(ground->kill_hard().has_value());
    REQUIRE(wait_until([&] {
        auto b = bridge_of(robot, "ground");
        return b && b->state != "connected";
    }));
    // Local publishers are not held up by the dead link (on_link_down: drop, the default).
    {
        auto c = Client::connect(options_for(robot));
        REQUIRE(c.has_value());
        auto pub = c.value().open_publisher("telemetry");
        REQUIRE(pub.has_value());
        std::vector<std::byte> buf(128);
        for (std::uint64_t id = 0; id < 1000; ++id) {
            stamp(buf, id);
            REQUIRE(pub.value().send(buf, 60s).has_value());
        }
    }
    // The same peer, restarted on the same port.
    ground = std::make_unique<DaemonProcess>(ground_yaml(port));
    REQUIRE(ground->start());
    REQUIRE(wait_streaming(robot, "ground", 1));
    check_flow(robot, "telemetry", *ground, "telemetry", 200);
    const auto after = bridge_of(robot, "ground");
    REQUIRE(after.has_value());
    CHECK(after->reconnects > before->reconnects);
    CHECK(after->peer_incarnation != before->peer_incarnation); // a new daemon, known as such
}

TEST_CASE("reload adds and removes a bridge while another carries load, untouched") {
    TempDir dir;
    const std::string key = make_secret(dir);
    DaemonProcess ground{"channels:\n" + broadcast("steady") + broadcast("extra") +
                         "bridges:\n"
                         "  - name: steady-in\n"
                         "    listen: tcp://127.0.0.1:0\n"
                         "    secret_file: " +
                         key +
                         "\n    import: [steady]\n"
                         "  - name: extra-in\n"
                         "    listen: tcp://127.0.0.1:0\n"
                         "    secret_file: " +
                         key + "\n    import: [extra]\n"};
    REQUIRE(ground.start());
    const auto steady_port = std::to_string(listening_port(ground, "steady-in"));
    const auto extra_port = std::to_string(listening_port(ground, "extra-in"));
    // The steady export blocks on congestion: the test's own subscriber reads nothing while
    // it reloads, and every message must arrive (the default, drop_oldest, would let go).
    const std::string steady = "  - name: steady\n    connect: tcp://127.0.0.1:" + steady_port +
                               "\n    secret_file: " + key +
                               "\n    export: [{channel: steady, on_congestion: block, "
                               "block_timeout: 1h}]\n";
    const std::string extra = "  - name: extra\n    connect: tcp://127.0.0.1:" + extra_port +
                              "\n    secret_file: " + key + "\n    export: [extra]\n";
    const std::string channels = "channels:\n" + broadcast("steady") + broadcast("extra");
    DaemonProcess robot{channels + "bridges:\n" + steady};
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "steady", 1));
    const auto steady_before = bridge_of(robot, "steady");
    REQUIRE(steady_before.has_value());

    // Load on the steady bridge for the whole test: every message arrives, in order.
    auto receiver = Client::connect(options_for(ground));
    REQUIRE(receiver.has_value());
    auto sub = receiver.value().open_subscriber("steady");
    REQUIRE(sub.has_value());
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> sent{0};
    std::thread publisher{[&] {
        auto sender = Client::connect(options_for(robot));
        if (!sender) {
            return; // the receiver then waits in vain, and the test fails there
        }
        auto pub = sender.value().open_publisher("steady");
        if (!pub) {
            return;
        }
        std::vector<std::byte> buf(128);
        for (std::uint64_t id = 0; !done.load(); ++id) {
            stamp(buf, id);
            if (!pub.value().send(buf, 60s)) {
                break;
            }
            sent.store(id + 1);
        }
    }};
    std::uint64_t received = 0;
    bool in_order = true;
    std::vector<std::byte> buf(128);
    const auto drain_until = [&](std::uint64_t count) {
        while (received < count && in_order) {
            auto r = sub.value().receive_copy(buf, 60s);
            if (!r) {
                return false;
            }
            in_order = check_stamp(std::span{buf}.first(r.value().size)) == received;
            ++received;
        }
        return in_order;
    };
    REQUIRE(drain_until(1000));

    CHECK_THAT(reload_with(robot, channels + "bridges:\n" + steady + extra),
               Catch::Contains("bridge 'extra' added"));
    REQUIRE(drain_until(received + 1000));
    REQUIRE(wait_streaming(robot, "extra", 1));
    check_flow(robot, "extra", ground, "extra", 100);
    CHECK_THAT(reload_with(robot, channels + "bridges:\n" + steady),
               Catch::Contains("bridge 'extra' removed"));
    REQUIRE(wait_until([&] { return !bridge_of(robot, "extra").has_value(); }));
    REQUIRE(wait_until([&] {
        auto b = bridge_of(ground, "extra-in");
        return b && b->state == "listening";
    }));
    REQUIRE(drain_until(received + 1000));
    done.store(true);
    publisher.join();
    REQUIRE(drain_until(sent.load()));
    CHECK(in_order);

    const auto steady_after = bridge_of(robot, "steady");
    REQUIRE(steady_after.has_value());
    CHECK(steady_after->state == "connected");
    CHECK(steady_after->reconnects == steady_before->reconnects);
    CHECK(steady_after->peer == steady_before->peer); // the same link: never re-established
    REQUIRE(steady_after->streams.size() == 1);
    CHECK(steady_after->streams[0].lost == 0);
}

TEST_CASE("shmbusctl bridges --json shows each bridge's state and counters") {
    TempDir dir;
    const std::string key = make_secret(dir);
    DaemonProcess ground{"channels:\n" + broadcast("telemetry") +
                         "bridges:\n"
                         "  - name: robot\n"
                         "    listen: tcp://127.0.0.1:0\n"
                         "    secret_file: " +
                         key + "\n    import: [telemetry]\n"};
    REQUIRE(ground.start());
    const auto port = std::to_string(listening_port(ground, "robot"));
    DaemonProcess robot{"channels:\n" + broadcast("telemetry") +
                        "bridges:\n"
                        "  - name: ground\n"
                        "    connect: tcp://127.0.0.1:" +
                        port + "\n    secret_file: " + key + "\n    export: [telemetry]\n"};
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "ground", 1));
    check_flow(robot, "telemetry", ground, "telemetry", 300);

    const Outcome out = ctl(at(robot, {"bridges", "--json"}));
    REQUIRE(out.code == 0);
    const auto doc = nlohmann::json::parse(out.out);
    REQUIRE(doc["bridges"].size() == 1);
    const auto& b = doc["bridges"][0];
    CHECK(b["name"] == "ground");
    CHECK(b["state"] == "connected");
    CHECK(b["end"] == "connect");
    CHECK(b["peer"] == "127.0.0.1:" + port);
    CHECK(b["version"] == 2);
    CHECK(b["out"]["channels"] == 1);
    CHECK(b["out"]["messages"].get<std::uint64_t>() >= 300);
    CHECK(b["out"]["bytes"].get<std::uint64_t>() >= 300 * 128);
    CHECK(b["out"]["lost"] == 0);
    CHECK(b["in"]["channels"] == 0);
    CHECK(b["streams"][0]["channel"] == "telemetry");
    CHECK(b["streams"][0]["direction"] == "out");

    const Outcome listed = ctl(at(ground, {"bridges", "--json"}));
    REQUIRE(listed.code == 0);
    const auto g = nlohmann::json::parse(listed.out)["bridges"][0];
    CHECK(g["end"] == "listen");
    CHECK(g["listening_port"] == std::stoi(port));
    CHECK(g["in"]["messages"].get<std::uint64_t>() >= 300);

    // `info` names the bridge endpoint of the imported channel.
    const Outcome info = ctl(at(ground, {"info", "telemetry", "--json"}));
    REQUIRE(info.code == 0);
    const auto i = nlohmann::json::parse(info.out);
    REQUIRE(i["bridges"].size() == 1);
    CHECK(i["bridges"][0] == "robot in");
}

TEST_CASE("shmbusctl bridges shows each export's congestion policy and priority, and the "
          "writers waiting for the link per priority") {
    TempDir dir;
    const std::string key = make_secret(dir);
    DaemonProcess ground{"channels:\n" + broadcast("pose") + broadcast("log") +
                         "bridges:\n"
                         "  - name: robot\n"
                         "    listen: tcp://127.0.0.1:0\n"
                         "    secret_file: " +
                         key + "\n    import: [pose, log]\n"};
    REQUIRE(ground.start());
    const auto port = std::to_string(listening_port(ground, "robot"));
    DaemonProcess robot{"channels:\n" + broadcast("pose") + broadcast("log") +
                        "bridges:\n"
                        "  - name: ground\n"
                        "    connect: tcp://127.0.0.1:" +
                        port + "\n    secret_file: " + key +
                        "\n    export:\n"
                        "      - {channel: pose, on_congestion: keep_latest, priority: 6}\n"
                        "      - {channel: log, on_congestion: block, block_timeout: 30s}\n"};
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "ground", 2));
    check_flow(robot, "pose", ground, "pose", 100);

    const Outcome out = ctl(at(robot, {"bridges", "--json"}));
    REQUIRE(out.code == 0);
    const auto b = nlohmann::json::parse(out.out)["bridges"][0];
    REQUIRE(b["streams"].size() == 2);
    for (const auto& s : b["streams"]) {
        if (s["channel"] == "pose") {
            CHECK(s["on_congestion"] == "keep_latest");
            CHECK(s["priority"] == 6);
        } else {
            CHECK(s["channel"] == "log");
            CHECK(s["on_congestion"] == "block");
            CHECK(s["priority"] == 3); // the default
        }
        CHECK(s["credits"].get<std::uint64_t>() > 0);
    }
    const auto& waiting = b["writers_waiting"];
    REQUIRE(waiting.is_object());
    for (const char* level : {"0", "3", "6", "7", "control"}) {
        CHECK(waiting["now"].contains(level));
        CHECK(waiting["most"].contains(level));
    }
    // 100 messages of pose were written at priority 6; nothing at 5 or below 3.
    CHECK(waiting["most"]["5"] == 0);
    CHECK(b["block_timeouts"] == 0);

    // The listening end imports: its streams have no policy of their own.
    const Outcome listed = ctl(at(ground, {"bridges", "--json"}));
    REQUIRE(listed.code == 0);
    const auto g = nlohmann::json::parse(listed.out)["bridges"][0];
    REQUIRE(g["streams"].size() == 2);
    CHECK(g["streams"][0]["on_congestion"].is_null());
    CHECK(g["streams"][0]["priority"].is_null());

    const Outcome text = ctl(at(robot, {"bridges"}));
    REQUIRE(text.code == 0);
    CHECK(text.out.find("ON_CONGESTION") != std::string::npos);
    CHECK(text.out.find("keep_latest") != std::string::npos);
    CHECK(text.out.find("WAIT CTL") != std::string::npos);
    CHECK(text.out.find("WAIT P0") != std::string::npos);
}

TEST_CASE("a malformed bridges: section is refused, naming file, line and column") {
    TempDir dir;
    const auto path = dir.path() / "shmbusd.yaml";
    {
        std::ofstream out(path);
        out << "bridges:\n"
               "  - name: ground\n"
               "    connect: udp://ground:7411\n"
               "    export: [telemetry]\n"
               "  - name: robot\n"
               "    listen: tcp://0.0.0.0:7411\n"
               "    import:\n"
               "      - {channel: jobs, on_link_down: block}\n";
    }
    std::string err;
    const Exit e = run_shmbusd({"--config", path.native(), "--check-config"}, &err);
    CHECK(e.code == 78);
    CHECK_THAT(err, Catch::Contains(path.native() + ":3:14: error: 'connect': link "
                                                    "'udp://ground:7411': unknown kind"));
    CHECK_THAT(err, Catch::Contains(path.native() + ":6:13: error: bridge 'robot' links over tcp "
                                                    "and needs 'tls' (certificates), a "
                                                    "'secret_file'"));
    CHECK_THAT(err, Catch::Contains(path.native() + ":8:25: error: 'on_link_down' applies to "
                                                    "exports only"));
}

TEST_CASE("a bridge configured with tls refuses a certificate of another CA and stays up") {
    TempDir dir;
    const std::string key = make_secret(dir);
    TestPki fleet{dir.path(), "fleet", "fleet CA"};
    TestPki rogue{dir.path(), "rogue", "rogue CA"};
    const auto ground_cert = fleet.issue("ground", "ground.example");
    const auto robot_cert = fleet.issue("robot1", "robot1");
    const auto forged = rogue.issue("forged", "robot1");
    const auto tls = [&](const TestPki::Issued& c, const TestPki& ca, const std::string& peer) {
        return "    tls:\n      cert: " + c.cert.native() + "\n      key: " + c.key.native() +
               "\n      ca: " + ca.ca().native() + "\n      peer_subject: " + peer + "\n";
    };
    LoggedDaemon ground{"channels:\n" + broadcast("robot1/telemetry") +
                        "bridges:\n"
                        "  - name: robot\n"
                        "    listen: tcp://127.0.0.1:0\n"
                        "    secret_file: " +
                        key + "\n" + tls(ground_cert, fleet, "robot1") +
                        "    import: [\"robot1/*\"]\n"};
    REQUIRE(ground.d.start());
    const auto port = std::to_string(listening_port(ground.d, "robot"));
    const auto robot_yaml = [&](const TestPki::Issued& c) {
        return "channels:\n" + broadcast("telemetry") +
               "bridges:\n"
               "  - name: ground\n"
               "    connect: tcp://127.0.0.1:" +
               port + "\n    secret_file: " + key + "\n" + tls(c, fleet, "ground.example") +
               "    export:\n      - {channel: telemetry, as: robot1/telemetry}\n";
    };
    {
        LoggedDaemon intruder{robot_yaml(forged)};
        REQUIRE(intruder.d.start());
        CHECK(ground.d.wait_for_stderr("unable to get local issuer certificate",
                                       generous_deadline()));
        CHECK(intruder.d.wait_for_stderr("the peer refused this end's certificate: TLS alert "
                                         "'unknown CA'",
                                         generous_deadline()));
        auto b = bridge_of(ground.d, "robot");
        REQUIRE(b.has_value());
        CHECK(b->state != "connected");
        CHECK(b->streams.empty());
    }
    LoggedDaemon robot{robot_yaml(robot_cert)};
    REQUIRE(robot.d.start());
    REQUIRE(wait_streaming(robot.d, "ground", 1));
    check_flow(robot.d, "telemetry", ground.d, "robot1/telemetry", 200);
    CHECK(robot.d.wait_for_stderr("over TLSv1.3", generous_deadline()));
}

namespace {

/// The ground's configuration in the restart tests: it imports what robot1 exports.
std::string ground_importing(const std::string& key) {
    return "channels:\n" + broadcast("robot1/telemetry") +
           "bridges:\n"
           "  - name: robot\n"
           "    listen: tcp://127.0.0.1:0\n"
           "    secret_file: " +
           key + "\n    import: [\"robot1/*\"]\n";
}

/// The robot's bridge to `ground` in the restart tests, exporting its telemetry.
std::string robot_bridge(const DaemonProcess& ground, const std::string& key) {
    return "bridges:\n"
           "  - name: ground\n"
           "    connect: tcp://127.0.0.1:" +
           std::to_string(listening_port(ground, "robot")) + "\n    secret_file: " + key +
           "\n    export:\n"
           "      - {channel: telemetry, as: robot1/telemetry}\n";
}

/// Makes `successor` the restart of `dead` (killed): its state file, its socket, and no
/// descriptor store.
void take_over(DaemonProcess& successor, const DaemonProcess& dead) {
    successor.with_state_dir(dead.state_dir())
        .with_args({"--socket", dead.socket_path().native()})
        .without_own_socket();
}

} // namespace

TEST_CASE("after a kill -9 without a descriptor store, a bridged channel goes back to its "
          "clients: the bridges start once it is back") {
    TempDir dir;
    const std::string key = make_secret(dir);
    LoggedDaemon ground{ground_importing(key)};
    REQUIRE(ground.d.start());
    const std::string robot_yaml =
        "channels:\n" + broadcast("telemetry") + robot_bridge(ground.d, key);
    LoggedDaemon robot{robot_yaml};
    REQUIRE(robot.d.start());
    REQUIRE(wait_streaming(robot.d, "ground", 1));

    // A publisher of the bridged channel, and a subscriber at the far end.
    auto app = Client::connect(options_for(robot.d));
    REQUIRE(app.has_value());
    auto pub = app.value().open_publisher("telemetry");
    REQUIRE(pub.has_value());
    auto far = Client::connect(options_for(ground.d));
    REQUIRE(far.has_value());
    auto sub = far.value().open_subscriber("robot1/telemetry");
    REQUIRE(sub.has_value());

    // The robot's daemon dies; its successor has the state file, no descriptor store, and the
    // same bridge, whose peer is up: it could connect at once.
    REQUIRE(robot.d.kill_hard());
    LoggedDaemon successor{robot_yaml};
    take_over(successor.d, robot.d);
    REQUIRE(successor.d.start());
    // The publisher's offer is taken, not refused because the bridge opened a stand-in first.
    const bool given_back =
        successor.d.wait_for_stderr("gave channel 'telemetry' back", generous_deadline());
    INFO(successor.d.stderr_text());
    REQUIRE(given_back);
    CHECK(successor.d.wait_for_stderr("bridges start once the channels of the previous run are "
                                      "offered back",
                                      generous_deadline()));
    CHECK(successor.d.stderr_text().find("was made anew") == std::string::npos);
    REQUIRE(wait_streaming(robot.d, "ground", 1)); // the successor has robot's socket

    // The publisher that outlived its daemon reaches the far end through the restarted bridge.
    std::vector<std::byte> buf(128);
    for (std::uint64_t id = 0; id < 100; ++id) {
        stamp(buf, id);
        REQUIRE(pub.value().send(buf, 60s).has_value());
    }
    std::uint64_t expected = 0;
    while (expected < 100) {
        auto r = sub.value().receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        const std::uint64_t id = check_stamp(std::span{buf}.first(r.value().size));
        REQUIRE(id >= expected); // in order; what the link lost while down is counted
        expected = id + 1;
    }
    CHECK(expected == 100);
}

TEST_CASE("after a kill -9 without a descriptor store, a bridge that a reload adds during the "
          "grace period waits for the previous run's channels too") {
    TempDir dir;
    const std::string key = make_secret(dir);
    LoggedDaemon ground{ground_importing(key)};
    REQUIRE(ground.d.start());
    const std::string channels = "channels:\n" + broadcast("telemetry");
    const std::string bridged = channels + robot_bridge(ground.d, key);
    LoggedDaemon robot{channels}; // no bridge yet
    REQUIRE(robot.d.start());
    // A subscriber of the channel in a process of its own, stopped before the daemon dies, so
    // that it can offer the channel back only when the test lets it.
    Ctl tail(at(robot.d, {"tail", "telemetry", "--count", "1000000"}));
    REQUIRE(wait_for_tails(robot.d, "telemetry", 1));
    REQUIRE(::kill(tail.pid(), SIGSTOP) == 0);
    REQUIRE(robot.d.kill_hard());
    LoggedDaemon successor{channels};
    take_over(successor.d, robot.d);
    REQUIRE(successor.d.start());
    // Within the grace period (the channel is still awaited), a reload adds the bridge: it
    // waits, rather than opening the channel ahead of its subscriber's offer.
    // (The successor answers on the socket of robot.d, which the helpers below go to.)
    {
        std::ofstream out(successor.d.config_path());
        out << bridged;
    }
    auto admin = Client::connect(options_for(robot.d));
    REQUIRE(admin.has_value());
    auto summary = admin.value().reload();
    REQUIRE(summary.has_value());
    CHECK_THAT(summary.value(), Catch::Contains("bridge 'ground': applies when the bridges start"));
    CHECK_FALSE(bridge_of(robot.d, "ground").has_value());
    REQUIRE(::kill(tail.pid(), SIGCONT) == 0);
    const bool given_back =
        successor.d.wait_for_stderr("gave channel 'telemetry' back", generous_deadline());
    INFO(successor.d.stderr_text());
    REQUIRE(given_back);
    CHECK(successor.d.stderr_text().find("was made anew") == std::string::npos);
    REQUIRE(wait_streaming(robot.d, "ground", 1));
    check_flow(robot.d, "telemetry", ground.d, "robot1/telemetry", 100);
}
