// Congestion while the link is up, between two real shmbusd processes on this machine joined
// by BridgeRunners over TCP loopback. The ground's subscriber of robot1/telemetry (a block
// channel) stops reading: the ground's ring fills, its bridge holds a window it cannot publish,
// and the robot's export runs out of credits while the robot's publisher goes on. Meanwhile
// robot1/side, on the same bridge, keeps flowing. Then the subscriber reads again:
// - drop_oldest: the robot's publisher was never held; what the export let go reaches the
//   ground's subscriber as exactly that many lost, in order, and the bridge counts it;
// - keep_latest: after the congestion only the newest message comes, the rest counted lost;
// - block: with a block_timeout longer than the stall nothing is lost; with a shorter one
//   the link is dropped, logged and counted.
#include "bridge_test.hpp"
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "test_support.hpp"

#include "gateway/bridge_runner.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::gateway;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kWindow = 24;
constexpr std::uint64_t kDepth = 64; // bridged()'s slot_count

template <typename T>
T take(Result<T> r) {
    REQUIRE(r.has_value());
    return std::move(r.value());
}

/// The robot and the ground, each with telemetry and side, bridged with `telemetry`'s rule.
struct Congested {
    explicit Congested(ChannelRule telemetry_rule)
        : robot{channels_yaml({bridged("telemetry"), bridged("side")})},
          ground{channels_yaml({bridged("robot1/telemetry"), bridged("robot1/side")})} {
        REQUIRE(robot.start());
        REQUIRE(ground.start());
        BridgeConfig g;
        g.name = "from-robot";
        g.listen = true;
        g.address = parse_link("tcp://127.0.0.1:0").value();
        g.secret = "robot and ground share this";
        g.imports = {{"robot1/*", ""}};
        g.window = kWindow;
        listener =
            std::make_unique<BridgeRunner>(g, options_for(ground), "ground", 0x2002, log.sink());
        listener->start();
        REQUIRE(wait_until([&] { return listener->status().listening_port != 0; }));
        BridgeConfig r;
        r.name = "to-ground";
        r.address =
            parse_link("tcp://127.0.0.1:" + std::to_string(listener->status().listening_port))
                .value();
        r.secret = "robot and ground share this";
        r.exports = {std::move(telemetry_rule), {"side", "robot1/side"}};
        r.backoff_first = 50ms;
        r.backoff_cap = 200ms;
        connector =
            std::make_unique<BridgeRunner>(r, options_for(robot), "robot1", 0x1001, log.sink());
        connector->start();
        REQUIRE(wait_until([&] {
            const auto s = connector->status();
            std::size_t granted = 0;
            for (const auto& st : s.session.streams) {
                granted += st.exporting && st.credits > 0 ? 1 : 0;
            }
            return s.state == BridgeState::connected && granted == 2;
        }));
        robot_app.emplace(take(Client::connect(options_for(robot))));
        ground_app.emplace(take(Client::connect(options_for(ground))));
        sub.emplace(take(ground_app->open_subscriber("robot1/telemetry")));
        pub.emplace(take(robot_app->open_publisher("telemetry")));
    }

    /// The robot's stream of `local`, as its bridge shows it.
    StreamStats exported(const std::string& local) const {
        for (const auto& st : connector->status().session.streams) {
            if (st.exporting && st.local_name == local) {
                return st;
            }
        }
        return {};
    }
    /// The ground's stream into `local`.
    StreamStats imported(const std::string& local) const {
        for (const auto& st : listener->status().session.streams) {
            if (!st.exporting && st.local_name == local) {
                return st;
            }
        }
        return {};
    }

    /// Whether the export of telemetry has sent at least what the ground's ring holds and has
    /// no credit left: the far side cannot keep up. Not an exact count: the ground's bridge
    /// publishes a frame's messages together, so the last frame may wait for more room than
    /// the ring has left, and then its ring holds a few less than kDepth and the export has
    /// sent as many less than kDepth + kWindow.
    bool stalled() const {
        const StreamStats st = exported("telemetry");
        return st.messages >= kDepth && st.credits == 0;
    }

    /// Messages cross from the robot's side to the ground's robot1/side, none lost.
    void side_flows(std::uint64_t count) const {
        check_flow(robot, "side", ground, "robot1/side", count);
    }

    DaemonProcess robot;
    DaemonProcess ground;
    LogLines log;
    std::unique_ptr<BridgeRunner> listener;
    std::unique_ptr<BridgeRunner> connector;
    std::optional<Client> robot_app;
    std::optional<Client> ground_app;
    std::optional<Subscriber> sub;
    std::optional<Publisher> pub;
};

ChannelRule telemetry_rule(CongestionPolicy policy, std::chrono::milliseconds timeout = 10min) {
    ChannelRule r{"telemetry", "robot1/telemetry"};
    r.on_congestion = policy;
    r.block_timeout = timeout;
    return r;
}

void publish(Publisher& pub, std::uint64_t id) {
    std::vector<std::byte> buf(128);
    stamp(buf, id);
    REQUIRE(pub.send(buf, 60s).has_value());
}

/// Publishes ids [0, sent) on the robot while nobody reads the ground (the publisher is never
/// held for long: the export lets go of what it cannot send), until the export has no credits
/// and has let messages go; robot1/side flows meanwhile.
void publish_into_congestion(Congested& c, std::uint64_t sent) {
    for (std::uint64_t id = 0; id < sent; ++id) {
        publish(*c.pub, id);
    }
    REQUIRE(wait_until([&] { return c.stalled() && c.exported("telemetry").lost > 0; }));
    c.side_flows(50);
    CHECK(c.stalled());
}

/// What the ground's subscriber read once it read again: ids in order, and the loss it
/// was told of.
struct Reading {
    std::vector<std::uint64_t> ids;
    std::vector<std::uint64_t> lost_before; ///< per id
    std::uint64_t lost{0};
};

/// Reads until id `last` arrives, checking the ids rise.
Reading read_until(Subscriber& sub, std::uint64_t last) {
    Reading out;
    std::vector<std::byte> buf(128);
    for (;;) {
        auto r = sub.receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        const std::uint64_t id = check_stamp(std::span{buf}.first(r.value().size));
        if (!out.ids.empty()) {
            REQUIRE(id > out.ids.back());
        }
        out.ids.push_back(id);
        out.lost_before.push_back(r.value().lost_before);
        out.lost += r.value().lost_before;
        if (id == last) {
            return out;
        }
    }
}

/// Every id sent either arrived or was told lost, exactly, in order.
void check_accounted(const Reading& r, std::uint64_t sent) {
    REQUIRE(!r.ids.empty());
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < r.ids.size(); ++i) {
        expected += r.lost_before[i];
        CHECK(r.ids[i] == expected); // each gap is exactly the loss told before the message
        ++expected;
    }
    CHECK(r.ids.size() + r.lost == sent);
}

} // namespace

TEST_CASE("drop_oldest: a stalled remote subscriber never holds the local publisher, and what "
          "the export lets go is counted exactly and reaches the subscriber as lost, in order") {
    Congested c{telemetry_rule(CongestionPolicy::drop_oldest)};
    // Far more than the ground's ring, its window, the robot's ring and what the export may
    // hold (a ring's worth): the robot's publisher goes on although nobody reads the ground.
    constexpr std::uint64_t kSent = 2000;
    publish_into_congestion(c, kSent);

    const Reading r = read_until(*c.sub, kSent - 1);
    check_accounted(r, kSent);
    CHECK(r.lost > 0);
    CHECK(c.sub->lost() == r.lost);
    REQUIRE(wait_until([&] { return c.imported("robot1/telemetry").lost_congestion == r.lost; }));
    const StreamStats out = c.exported("telemetry");
    CHECK(out.lost_congestion == r.lost);
    CHECK(out.on_congestion == CongestionPolicy::drop_oldest);
    // The export kept the newest it could hold, a ring's worth, and sent them in order.
    CHECK(r.ids.size() >= kDepth);
    CHECK(c.connector->status().block_timeouts == 0);
}

TEST_CASE("keep_latest: after the congestion only the newest message is sent, everything "
          "skipped counted exactly") {
    Congested c{telemetry_rule(CongestionPolicy::keep_latest)};
    constexpr std::uint64_t kSent = 1000;
    publish_into_congestion(c, kSent);

    const Reading r = read_until(*c.sub, kSent - 1);
    check_accounted(r, kSent);
    // What the ground held (its ring and its window), then, after the congestion, only the
    // newest: the one message that came after a gap.
    REQUIRE(r.ids.size() >= 2);
    CHECK(r.lost_before.back() > 0);
    CHECK(r.ids.size() <= kDepth + kWindow + 1);
    CHECK(c.sub->lost() == r.lost);
    REQUIRE(wait_until([&] { return c.imported("robot1/telemetry").lost_congestion == r.lost; }));
    CHECK(c.exported("telemetry").lost_congestion == r.lost);
}

TEST_CASE("block: a stall shorter than block_timeout holds the local publisher and loses "
          "nothing, while another channel of the bridge flows") {
    Congested c{telemetry_rule(CongestionPolicy::block)};
    constexpr std::uint64_t kSent = 400;
    std::atomic<std::uint64_t> published{0};
    std::thread publisher{[&] {
        std::vector<std::byte> buf(128);
        for (std::uint64_t id = 0; id < kSent; ++id) {
            stamp(buf, id);
            if (!c.pub->send(buf, 60s)) {
                return;
            }
            published.store(id + 1);
        }
    }};
    // Held: the robot's ring fills behind the export, which waits for credits.
    const auto held_back = [&] {
        return published.load() == c.exported("telemetry").messages + kDepth;
    };
    const bool held = wait_until([&] { return c.stalled() && held_back(); });
    c.side_flows(50);
    CHECK(held_back());

    const Reading r = read_until(*c.sub, kSent - 1);
    publisher.join();
    REQUIRE(held);
    CHECK(r.lost == 0);
    CHECK(r.ids.size() == kSent);
    check_accounted(r, kSent);
    CHECK(c.exported("telemetry").lost_congestion == 0);
    CHECK(c.connector->status().block_timeouts == 0);
}

TEST_CASE("block: a stall longer than block_timeout drops the link, with a log line and a "
          "count") {
    Congested c{telemetry_rule(CongestionPolicy::block, 300ms)};
    std::vector<std::byte> buf(128);
    // The ground's ring, its window and the robot's ring: the rest would wait.
    for (std::uint64_t id = 0; id < kDepth + kWindow + kDepth; ++id) {
        stamp(buf, id);
        REQUIRE(c.pub->send(buf, 60s).has_value());
    }
    REQUIRE(c.log.wait_for("bridge 'to-ground': channel 'telemetry' (on_congestion: block): the "
                           "peer gave no credit for block_timeout (300 ms); the link is dropped"));
    CHECK(wait_until([&] { return c.connector->status().block_timeouts == 1; }));
}
