// Bridges kept up by BridgeRunner between two real shmbusd processes on this machine: over
// TCP loopback (IPv4, and IPv6 where the machine has it) and over a FIFO pair; a wrong
// secret is refused and moves nothing; a connecting bridge whose peer goes away backs off
// and reconnects by itself when the peer returns. Link addresses are parsed strictly.
#include "bridge_test.hpp"
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "skip.hpp"
#include "test_support.hpp"

#include "gateway/bridge_runner.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::gateway;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kRobot = channels_yaml({bridged("telemetry")});
const std::string kGround = channels_yaml({bridged("robot1/telemetry")});

BridgeConfig robot_bridge(const std::string& address) {
    BridgeConfig c;
    c.name = "to-ground";
    c.listen = false;
    auto a = parse_link(address);
    REQUIRE(a.has_value());
    c.address = a.value();
    c.secret = "robot and ground share this";
    c.exports = {{"telemetry", "robot1/telemetry", LinkDownPolicy::drop}};
    c.backoff_first = 50ms;
    c.backoff_cap = 200ms;
    return c;
}

BridgeConfig ground_bridge(const std::string& address) {
    BridgeConfig c;
    c.name = "from-robot";
    c.listen = true;
    auto a = parse_link(address);
    REQUIRE(a.has_value());
    c.address = a.value();
    c.secret = "robot and ground share this";
    c.imports = {{"robot1/*", "", LinkDownPolicy::drop}};
    return c;
}

} // namespace

TEST_CASE("link addresses are parsed strictly, naming what is wrong") {
    auto v4 = parse_link("tcp://127.0.0.1:7411");
    REQUIRE(v4.has_value());
    CHECK(v4.value().host == "127.0.0.1");
    CHECK(v4.value().port == 7411);
    auto v6 = parse_link("tcp://[::]:7411");
    REQUIRE(v6.has_value());
    CHECK(v6.value().host == "::");
    auto fifo = parse_link("fifo:/run/a,/run/b");
    REQUIRE(fifo.has_value());
    CHECK(fifo.value().in_path == "/run/a");
    CHECK(fifo.value().out_path == "/run/b");
    const std::vector<std::pair<std::string, std::string>> bad{
        {"tcp://host", "missing ':PORT'"},
        {"tcp://:7411", "missing host"},
        {"tcp://host:70000", "not a number from 0 to 65535"},
        {"tcp://host:x1", "not a number"},
        {"tcp://::1:7411", "in brackets"},
        {"tcp://[::1:7411", "closing ']'"},
        {"fifo:/a", "two paths"},
        {"fifo:a,b", "absolute"},
        {"fifo:/a,/a", "same FIFO"},
        {"udp://host:1", "unknown kind"},
    };
    for (const auto& [text, problem] : bad) {
        CAPTURE(text);
        auto r = parse_link(text);
        REQUIRE_FALSE(r.has_value());
        CHECK_THAT(r.error().detail, Catch::Contains(problem) && Catch::Contains(text));
    }
}

namespace {

int socket_option(int fd, int level, int name) {
    int value = 0;
    socklen_t len = sizeof value;
    REQUIRE(::getsockopt(fd, level, name, &value, &len) == 0);
    return value;
}

/// What getsockopt(SO_RCVBUF) says after setting `bytes`: socket(7) has the kernel double it,
/// within net.core.rmem_max.
int receive_buffer_as_kept(int bytes) {
    long long rmem_max = 0;
    std::ifstream{"/proc/sys/net/core/rmem_max"} >> rmem_max;
    REQUIRE(rmem_max > 0);
    return 2 * static_cast<int>(std::min<long long>(bytes, rmem_max));
}

} // namespace

TEST_CASE("a TCP link's sockets leave little to the kernel, at both ends") {
    auto listener = TcpListener::listen(parse_link("tcp://127.0.0.1:0").value());
    REQUIRE(listener.has_value());
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    auto connecting = connect_link(
        parse_link("tcp://127.0.0.1:" + std::to_string(listener.value().port())).value(), deadline);
    REQUIRE(connecting.has_value());
    auto accepted = listener.value().accept(deadline);
    REQUIRE(accepted.has_value());
    const int kept = receive_buffer_as_kept(kLinkReceiveBuffer);
    for (const int fd : {connecting.value().in_fd(), accepted.value().in_fd()}) {
        CAPTURE(fd == connecting.value().in_fd() ? "connecting end" : "accepting end");
        CHECK(socket_option(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT) == kLinkNotSentLowWater);
        CHECK(socket_option(fd, SOL_SOCKET, SO_RCVBUF) == kept);
        CHECK(socket_option(fd, IPPROTO_TCP, TCP_NODELAY) != 0);
    }
}

TEST_CASE("a TCP link's receive buffer is the bridge's receive_buffer, or the kernel's own with "
          "auto") {
    auto listen_at = parse_link("tcp://127.0.0.1:0").value();
    int expected = 0;
    SECTION("a size") {
        listen_at.receive_buffer = 64 * 1024;
        expected = receive_buffer_as_kept(64 * 1024);
    }
    SECTION("auto: no SO_RCVBUF, so the kernel's autotuning starts from tcp_rmem's default") {
        listen_at.receive_buffer = 0;
        long long low = 0;
        long long initial = 0;
        std::ifstream{"/proc/sys/net/ipv4/tcp_rmem"} >> low >> initial;
        REQUIRE(initial > 0);
        expected = static_cast<int>(initial);
    }
    auto listener = TcpListener::listen(listen_at);
    REQUIRE(listener.has_value());
    auto connect_to =
        parse_link("tcp://127.0.0.1:" + std::to_string(listener.value().port())).value();
    connect_to.receive_buffer = listen_at.receive_buffer;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    auto connecting = connect_link(connect_to, deadline);
    REQUIRE(connecting.has_value());
    auto accepted = listener.value().accept(deadline);
    REQUIRE(accepted.has_value());
    for (const int fd : {connecting.value().in_fd(), accepted.value().in_fd()}) {
        CAPTURE(fd == connecting.value().in_fd() ? "connecting end" : "accepting end");
        CHECK(socket_option(fd, SOL_SOCKET, SO_RCVBUF) == expected);
        CHECK(socket_option(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT) == kLinkNotSentLowWater);
    }
}

TEST_CASE("a receive_buffer beyond net.core.rmem_max is named with both sizes, and the default "
          "and other links never are") {
    long long rmem_max = 0;
    std::ifstream{"/proc/sys/net/core/rmem_max"} >> rmem_max;
    REQUIRE(rmem_max > 0);
    auto address = parse_link("tcp://127.0.0.1:7411").value();
    CHECK_FALSE(receive_buffer_shortfall(address).has_value()); // the default
    address.receive_buffer = 0;
    CHECK_FALSE(receive_buffer_shortfall(address).has_value()); // auto
    address.receive_buffer = static_cast<int>(rmem_max);
    CHECK_FALSE(receive_buffer_shortfall(address).has_value());
    if (rmem_max < std::numeric_limits<int>::max()) {
        address.receive_buffer = static_cast<int>(rmem_max) + 1;
        const auto why = receive_buffer_shortfall(address);
        REQUIRE(why.has_value());
        CHECK_THAT(*why, Catch::Contains(std::to_string(rmem_max + 1)) &&
                             Catch::Contains("net.core.rmem_max (" + std::to_string(rmem_max)) &&
                             Catch::Contains("receive_buffer: auto"));
    }
    auto fifo = parse_link("fifo:/tmp/a,/tmp/b").value();
    fifo.receive_buffer = static_cast<int>(std::min<long long>(rmem_max * 2, 1 << 30));
    CHECK_FALSE(receive_buffer_shortfall(fifo).has_value());
}

TEST_CASE("a bridge over TCP loopback moves a channel and shows its state") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    LogLines log;
    BridgeRunner listener{ground_bridge("tcp://127.0.0.1:0"), options_for(ground), "ground", 0x2002,
                          log.sink()};
    listener.start();
    REQUIRE(wait_until([&] { return listener.status().listening_port != 0; }));
    const auto port = std::to_string(listener.status().listening_port);
    BridgeRunner connector{robot_bridge("tcp://127.0.0.1:" + port), options_for(robot), "robot1",
                           0x1001, log.sink()};
    connector.start();
    REQUIRE(wait_until([&] { return exporting(connector); }));
    check_flow(robot, ground, 2000);
    const auto s = connector.status();
    CHECK(s.peer == "127.0.0.1:" + port);
    CHECK(s.peer_node == "ground");
    CHECK(s.peer_incarnation == 0x2002);
    CHECK(s.version == kVersionMax);
    CHECK(log.contains("bridge 'to-ground': connected: 127.0.0.1:" + port + " (ground)"));
    connector.stop();
    listener.stop();
    CHECK(connector.status().state == BridgeState::stopped);
}

TEST_CASE("a bridge over IPv6 loopback moves a channel") {
    {
        UniqueFd probe{::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_loopback;
        if (!probe || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            SHMBUS_SKIP("no IPv6 loopback on this machine");
        }
    }
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    BridgeRunner listener{
        ground_bridge("tcp://[::1]:0"), options_for(ground), "ground", 0x2002, {}};
    listener.start();
    REQUIRE(wait_until([&] { return listener.status().listening_port != 0; }));
    BridgeRunner connector{
        robot_bridge("tcp://[::1]:" + std::to_string(listener.status().listening_port)),
        options_for(robot),
        "robot1",
        0x1001,
        {}};
    connector.start();
    REQUIRE(wait_until([&] { return exporting(connector); }));
    check_flow(robot, ground, 500);
    CHECK_THAT(connector.status().peer, Catch::StartsWith("[::1]:"));
}

TEST_CASE("a bridge over a FIFO pair moves a channel") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    TempDir dir;
    const std::string up = (dir.path() / "up").native();
    const std::string down = (dir.path() / "down").native();
    REQUIRE(::mkfifo(up.c_str(), 0600) == 0);
    REQUIRE(::mkfifo(down.c_str(), 0600) == 0);
    // The robot writes up and reads down; the ground the other way round.
    // `listen` makes the ground the answering end, though it opens its FIFOs as the robot does.
    BridgeRunner ground_end{
        ground_bridge("fifo:" + up + "," + down), options_for(ground), "ground", 0x2002, {}};
    BridgeRunner robot_end{
        robot_bridge("fifo:" + down + "," + up), options_for(robot), "robot1", 0x1001, {}};
    ground_end.start();
    robot_end.start();
    REQUIRE(wait_until([&] { return exporting(robot_end); }));
    check_flow(robot, ground, 500);
}

TEST_CASE("a wrong secret is refused on both ends and moves nothing") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    LogLines log;
    BridgeRunner listener{ground_bridge("tcp://127.0.0.1:0"), options_for(ground), "ground", 0x2002,
                          log.sink()};
    listener.start();
    REQUIRE(wait_until([&] { return listener.status().listening_port != 0; }));
    auto cfg = robot_bridge("tcp://127.0.0.1:" + std::to_string(listener.status().listening_port));
    cfg.secret = "not the ground's secret";
    BridgeRunner connector{cfg, options_for(robot), "robot1", 0x1001, log.sink()};
    connector.start();
    REQUIRE(wait_until([&] {
        return log.contains("bridge 'from-robot': peer") && log.contains("authentication failed");
    }));
    REQUIRE(wait_until([&] { return connector.status().reconnects > 0; }));
    CHECK_THAT(connector.status().last_error, Catch::Contains("authentication failed"));
    CHECK(connector.status().state != BridgeState::connected);
}

TEST_CASE("a connecting bridge backs off while its peer is away and reconnects by itself") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    LogLines log;
    auto listener = std::make_unique<BridgeRunner>(
        ground_bridge("tcp://127.0.0.1:0"), options_for(ground), "ground", 0x2002, log.sink());
    listener->start();
    REQUIRE(wait_until([&] { return listener->status().listening_port != 0; }));
    const auto port = std::to_string(listener->status().listening_port);
    BridgeRunner connector{robot_bridge("tcp://127.0.0.1:" + port), options_for(robot), "robot1",
                           0x1001, log.sink()};
    connector.start();
    REQUIRE(wait_until([&] { return exporting(connector); }));

    listener->stop(); // the peer goes away (its listening socket stays bound until reset)
    listener.reset();
    REQUIRE(wait_until([&] { return connector.status().state == BridgeState::backing_off; }));
    CHECK(log.contains("bridge 'to-ground': backing off"));

    listener = std::make_unique<BridgeRunner>(ground_bridge("tcp://127.0.0.1:" + port),
                                              options_for(ground), "ground", 0x2003, log.sink());
    listener->start();
    REQUIRE(wait_until(
        [&] { return exporting(connector) && connector.status().peer_incarnation == 0x2003; }));
    CHECK(connector.status().reconnects >= 1);
    check_flow(robot, ground, 200);
}
