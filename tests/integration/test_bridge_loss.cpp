// Loss and order across a cut link, between two real shmbusd processes on this machine joined
// by BridgeRunners over TCP loopback:
// - `drop` (the default): what the ground's subscribers missed while the link was down
//   reaches them as exactly that many lost messages (lost_before), however the link came
//   back (here: the robot's bridge restarts, a new incarnation);
// - `on_link_down: block`: the export keeps its cursor, local publishers keep publishing
//   within the channel's depth, and when the link returns nothing is lost, even though the
//   ground's daemon was killed with SIGKILL and restarted meanwhile; what the ground's
//   bridge had received but not published when it went down is sent again (a restarted peer
//   remembers nothing, so a message may come twice, but none is skipped or reordered);
// - a `block` hold older than its export's block_timeout is given up, logged and counted, and
//   the local publishers go on past the channel's depth, while another export of the same
//   bridge, with a longer block_timeout, keeps holding its publishers.
#include "bridge_test.hpp"
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "test_support.hpp"

#include "gateway/bridge_runner.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::gateway;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kRobot = channels_yaml({bridged("telemetry")});
const std::string kGround = channels_yaml({bridged("robot1/telemetry")});
// Not a divisor of the rings' 64: a frame may straddle the moment the ground's ring fills.
constexpr std::uint32_t kWindow = 24;

BridgeConfig robot_bridge(std::uint16_t port, LinkDownPolicy policy) {
    BridgeConfig c;
    c.name = "to-ground";
    c.address = parse_link("tcp://127.0.0.1:" + std::to_string(port)).value();
    c.secret = "robot and ground share this";
    c.exports = {{"telemetry", "robot1/telemetry", policy, 10min}};
    c.backoff_first = 50ms;
    c.backoff_cap = 200ms;
    return c;
}

BridgeConfig ground_bridge(std::uint16_t port) {
    BridgeConfig c;
    c.name = "from-robot";
    c.listen = true;
    c.address = parse_link("tcp://127.0.0.1:" + std::to_string(port)).value();
    c.secret = "robot and ground share this";
    c.imports = {{"robot1/*", "", LinkDownPolicy::drop}};
    c.window = kWindow;
    return c;
}

std::unique_ptr<BridgeRunner> start_ground(const DaemonProcess& ground, std::uint16_t port,
                                           std::uint64_t incarnation, LogLines& log) {
    auto r = std::make_unique<BridgeRunner>(ground_bridge(port), options_for(ground), "ground",
                                            incarnation, log.sink());
    r->start();
    REQUIRE(wait_until([&] { return r->status().listening_port != 0; }));
    return r;
}

/// The robot's publisher of `telemetry` and the ground's subscriber of `robot1/telemetry`.
struct Ends {
    Ends(const DaemonProcess& robot, const DaemonProcess& ground)
        : robot_app{connect(robot)}, ground_app{connect(ground)},
          pub{take(robot_app.open_publisher("telemetry"))}, sub{take(ground_app.open_subscriber(
                                                                "robot1/telemetry"))} {}

    template <typename T>
    static T take(Result<T> r) {
        REQUIRE(r.has_value());
        return std::move(r.value());
    }
    static Client connect(const DaemonProcess& d) { return take(Client::connect(options_for(d))); }

    Client robot_app;
    Client ground_app;
    Publisher pub;
    Subscriber sub;
};

void publish(Publisher& pub, std::uint64_t id) {
    std::vector<std::byte> buf(128);
    stamp(buf, id);
    REQUIRE(pub.send(buf, 60s).has_value());
}

/// Receives the next message; its id, and what was lost just before it in `lost_before`.
std::uint64_t receive(Subscriber& sub, std::uint64_t& lost_before) {
    std::vector<std::byte> buf(128);
    auto r = sub.receive_copy(buf, 60s);
    REQUIRE(r.has_value());
    lost_before = r.value().lost_before;
    return check_stamp(std::span{buf}.first(r.value().size));
}

/// Publishes ids [from, to) on the robot and checks each reaches the ground, none lost.
void flow(Publisher& pub, Subscriber& sub, std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t id = from; id < to; ++id) {
        publish(pub, id);
        std::uint64_t lost = 0;
        REQUIRE(receive(sub, lost) == id);
        REQUIRE(lost == 0);
    }
}

} // namespace

TEST_CASE("drop: the messages published while the link was down reach the remote subscribers "
          "as exactly that many lost") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    REQUIRE(robot.start());
    REQUIRE(ground.start());
    LogLines log;
    auto listener = start_ground(ground, 0, 0x2002, log);
    const auto port = listener->status().listening_port;
    auto connector = std::make_unique<BridgeRunner>(
        robot_bridge(port, LinkDownPolicy::drop), options_for(robot), "robot1", 0x1001, log.sink());
    connector->start();
    REQUIRE(wait_until([&] { return exporting(*connector); }));

    Ends ends{robot, ground};
    auto& pub = ends.pub;
    auto& sub = ends.sub;
    flow(pub, sub, 0, 100);

    // The robot's bridge goes away; 37 messages are published meanwhile, which no one on
    // the ground will ever see.
    connector.reset();
    constexpr std::uint64_t kMissed = 37;
    for (std::uint64_t id = 100; id < 100 + kMissed; ++id) {
        publish(pub, id);
    }
    // A new bridge process (a new incarnation) on the robot takes the channel up again.
    connector = std::make_unique<BridgeRunner>(robot_bridge(port, LinkDownPolicy::drop),
                                               options_for(robot), "robot1", 0x1002, log.sink());
    connector->start();
    REQUIRE(wait_until([&] { return exporting(*connector); }));
    publish(pub, 100 + kMissed);
    std::uint64_t lost = 0;
    CHECK(receive(sub, lost) == 100 + kMissed);
    CHECK(lost == kMissed);
    CHECK(sub.lost() == kMissed);
    CHECK(log.contains("bridge 'from-robot': channel 'robot1/telemetry' comes from a restarted "
                       "peer"));
    flow(pub, sub, 101 + kMissed, 200);
    CHECK(sub.lost() == kMissed);
}

TEST_CASE("block: a link cut within the channel's depth loses nothing, across a SIGKILL and "
          "restart of the remote daemon") {
    DaemonProcess robot{kRobot};
    auto ground = std::make_unique<DaemonProcess>(kGround);
    ground->with_stderr_file();
    REQUIRE(robot.start());
    REQUIRE(ground->start());
    LogLines log;
    auto listener = start_ground(*ground, 0, 0x2002, log);
    const auto port = listener->status().listening_port;
    BridgeRunner connector{robot_bridge(port, LinkDownPolicy::block), options_for(robot), "robot1",
                           0x1001, log.sink()};
    connector.start();
    REQUIRE(wait_until([&] { return exporting(connector); }));

    Ends ends{robot, *ground};
    auto& pub = ends.pub;
    auto& sub = ends.sub;
    flow(pub, sub, 0, 100);
    REQUIRE(wait_until([&] { return all_confirmed(connector, kWindow); }));

    // The ground goes down hard: its daemon is killed, its bridge ends with it.
    REQUIRE(ground->kill_hard());
    listener.reset();
    REQUIRE(wait_until([&] { return connector.status().state != BridgeState::connected; }));
    // Within the channel's depth (64), the robot's publisher is never held up.
    constexpr std::uint64_t kWhileDown = 50;
    std::vector<std::byte> buf(128);
    for (std::uint64_t id = 100; id < 100 + kWhileDown; ++id) {
        stamp(buf, id);
        REQUIRE(pub.try_send(buf).has_value());
    }

    // The ground comes back: a new daemon on the same socket and state, a new bridge.
    auto successor = std::make_unique<DaemonProcess>(kGround);
    successor->with_state_dir(ground->state_dir())
        .with_args({"--socket", ground->socket_path().native()})
        .without_own_socket()
        .with_stderr_file();
    REQUIRE(successor->start());
    REQUIRE(
        successor->wait_for_stderr("gave channel 'robot1/telemetry' back", generous_deadline()));
    listener = start_ground(*ground, port, 0x2003, log); // the successor has its socket
    const bool resumed = wait_until(
        [&] { return exporting(connector) && connector.status().peer_incarnation == 0x2003; });
    INFO(log.all());
    REQUIRE(resumed);

    for (std::uint64_t id = 100; id < 100 + kWhileDown; ++id) {
        std::uint64_t lost = 0;
        REQUIRE(receive(sub, lost) == id);
        REQUIRE(lost == 0);
    }
    flow(pub, sub, 100 + kWhileDown, 300);
    CHECK(sub.lost() == 0);
    CHECK(connector.status().block_timeouts == 0);
}

TEST_CASE("block: what the remote bridge received but had not published is sent again "
          "after it restarts, and nothing is skipped") {
    DaemonProcess robot{kRobot};
    auto ground = std::make_unique<DaemonProcess>(kGround);
    ground->with_stderr_file();
    REQUIRE(robot.start());
    REQUIRE(ground->start());
    LogLines log;
    auto listener = start_ground(*ground, 0, 0x2002, log);
    const auto port = listener->status().listening_port;
    BridgeRunner connector{robot_bridge(port, LinkDownPolicy::block), options_for(robot), "robot1",
                           0x1001, log.sink()};
    connector.start();
    REQUIRE(wait_until([&] { return exporting(connector); }));
    Ends ends{robot, *ground};

    // The ground's subscriber reads nothing yet: its ring (64) fills, the ground's bridge holds
    // what it received but cannot publish, and the robot's export runs out of credits.
    constexpr std::uint64_t kCount = 100;
    for (std::uint64_t id = 0; id < kCount; ++id) {
        publish(ends.pub, id);
    }
    // Stalled for good once the export has sent the ring's 64 and a window more: then the
    // ground has published and confirmed 64, and holds a window it cannot publish.
    REQUIRE(wait_until([&] {
        const auto s = connector.status();
        return !s.session.streams.empty() && s.session.streams.front().messages == 64 + kWindow &&
               s.session.streams.front().credits == 0;
    }));

    // The ground goes down hard with messages in its bridge, and comes back.
    REQUIRE(ground->kill_hard());
    listener.reset();
    DaemonProcess successor{kGround};
    successor.with_state_dir(ground->state_dir())
        .with_args({"--socket", ground->socket_path().native()})
        .without_own_socket()
        .with_stderr_file();
    REQUIRE(successor.start());
    REQUIRE(successor.wait_for_stderr("gave channel 'robot1/telemetry' back", generous_deadline()));
    listener = start_ground(*ground, port, 0x2003, log);

    // Every id arrives, in order; a restarted ground remembers nothing, so what it had
    // published without confirming may come a second time, but never out of order or lost.
    std::uint64_t next = 0;
    std::uint64_t repeats = 0;
    while (next < kCount) {
        std::uint64_t lost = 0;
        const std::uint64_t id = receive(ends.sub, lost);
        REQUIRE(lost == 0);
        REQUIRE(id <= next);
        if (id == next) {
            ++next;
        } else {
            ++repeats;
        }
    }
    CHECK(repeats <= kWindow);
    CHECK(ends.sub.lost() == 0);
    // Exactly the window the ground held was unconfirmed when the link was cut.
    CHECK(log.contains("bridge 'to-ground': channel 'telemetry' resumes from where the last "
                       "link left it (" +
                       std::to_string(kWindow) + " messages to send again"));
}

TEST_CASE("block: a hold older than its export's block_timeout is given up, logged and "
          "counted, while another export of the bridge holds for its own") {
    DaemonProcess robot{channels_yaml({bridged("telemetry"), bridged("camera")})};
    DaemonProcess ground{channels_yaml({bridged("robot1/telemetry"), bridged("robot1/camera")})};
    REQUIRE(robot.start());
    REQUIRE(ground.start());
    LogLines log;
    auto listener = start_ground(ground, 0, 0x2002, log);
    auto config = robot_bridge(listener->status().listening_port, LinkDownPolicy::block);
    config.exports = {{"telemetry", "robot1/telemetry", LinkDownPolicy::block, 200ms},
                      {"camera", "robot1/camera", LinkDownPolicy::block, 10min}};
    BridgeRunner connector{config, options_for(robot), "robot1", 0x1001, log.sink()};
    connector.start();
    REQUIRE(wait_until([&] {
        const auto s = connector.status();
        std::size_t granted = 0;
        for (const auto& st : s.session.streams) {
            granted += st.exporting && st.credits > 0 ? 1 : 0;
        }
        return s.state == BridgeState::connected && granted == 2;
    }));
    auto robot_app = Client::connect(options_for(robot));
    REQUIRE(robot_app.has_value());
    auto telemetry = robot_app.value().open_publisher("telemetry");
    REQUIRE(telemetry.has_value());
    auto camera = robot_app.value().open_publisher("camera");
    REQUIRE(camera.has_value());

    listener.reset(); // the link goes down and stays down
    REQUIRE(log.wait_for("bridge 'to-ground': channel 'telemetry' (on_link_down: block): the "
                         "link stayed down for block_timeout (200 ms)"));
    CHECK(connector.status().block_timeouts == 1);
    // telemetry's hold is given up: its publisher goes far past the channel's depth of 64.
    std::vector<std::byte> buf(128);
    for (std::uint64_t id = 0; id < 500; ++id) {
        stamp(buf, id);
        REQUIRE(telemetry.value().try_send(buf).has_value());
    }
    // camera's hold stands: its publisher fills the depth of 64, and no further.
    for (std::uint64_t id = 0; id < 64; ++id) {
        stamp(buf, id);
        REQUIRE(camera.value().try_send(buf).has_value());
    }
    CHECK(camera.value().try_send(buf).code() == Errc::would_block);
    CHECK(connector.status().block_timeouts == 1);
    CHECK_FALSE(log.contains("channel 'camera' (on_link_down: block): the link stayed down"));
}
