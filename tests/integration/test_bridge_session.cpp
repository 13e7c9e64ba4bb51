// The gateway's link engine between two real shmbusd processes: each end is a BridgeSession
// on its own thread, a client of its own daemon, joined by a socketpair after a real
// handshake. Pins: messages cross in order with every byte intact and none lost on a block
// channel; a queue crosses the other way on the same link; a request for a channel the
// listening end does not export is refused by name, logged on both ends, and moves nothing;
// an offer into a channel whose geometry differs is refused naming the item; one stalled
// channel does not hold up another; stop() ends both ends, each saying why; and, with the
// robot's end played frame by frame by the test, the credits for the part of a frame that was
// published come back while the rest waits for a slow subscriber (else the peer's window
// shrinks by that part until the subscriber catches up), credits come back a quarter of the
// window at a time rather than one frame per data frame, and a message longer than the slot
// size its stream's offer announced ends the link before anything of its frame is published.
// With the ground's end played by the test, which stops reading, the frame of a priority-7
// export goes ahead of the frames of priority-0 exports that waited for the link before it.
//
// The tests build the sessions themselves from plain structs, as the daemon's bridges do.
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "test_support.hpp"

#include "gateway/bridge_session.hpp"
#include "gateway/handshake.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::gateway;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kAcl = R"(
    acl:
      publish:   {users: ["*"]}
      subscribe: {users: ["*"]}
)";

std::string channel(const std::string& name, const std::string& kind, int slot_size, int slot_count,
                    const std::string& overflow = "block") {
    std::string s = "  - name: " + name + "\n    kind: " + kind +
                    "\n    slot_size: " + std::to_string(slot_size) +
                    "\n    slot_count: " + std::to_string(slot_count) +
                    "\n    max_publishers: 2\n    max_subscribers: 4\n";
    if (kind == "broadcast") {
        s += "    overflow: " + overflow + "\n";
    }
    return s + kAcl;
}

// The robot: exports telemetry and a slow channel, imports the ground's jobs.
const std::string kRobot = "channels:\n" + channel("telemetry", "broadcast", 256, 64) +
                           channel("slow", "broadcast", 64, 8) +
                           channel("ground/jobs", "queue", 64, 16);
// The ground: receives the robot's channels under robot1/, exports jobs.
const std::string kGround = "channels:\n" + channel("robot1/telemetry", "broadcast", 256, 64) +
                            channel("robot1/slow", "broadcast", 64, 8) +
                            channel("jobs", "queue", 64, 16) +
                            channel("narrow", "broadcast", 16, 8);

Client connect_to(const DaemonProcess& d, const std::string& name) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    auto c = Client::connect(o);
    REQUIRE(c.has_value());
    return std::move(c.value());
}

/// One end of a link: its daemon client, handshake and session on a thread.
struct End {
    explicit End(Client c) : client{std::move(c)} {}

    Client client;
    LogLines log;
    std::unique_ptr<BridgeSession> owner; ///< set by the end's thread, before `session`
    std::atomic<BridgeSession*> session{nullptr};
    std::future<Error> ended;
};

std::unique_ptr<End> start_end(const DaemonProcess& d, int fd, SessionSettings settings,
                               std::uint64_t incarnation) {
    auto end = std::make_unique<End>(connect_to(d, settings.bridge));
    HandshakeSettings hs;
    hs.initiator = settings.initiator;
    hs.bridge = settings.bridge;
    hs.node = settings.initiator ? "robot1" : "ground";
    hs.incarnation = incarnation;
    hs.secret = "a shared secret for the test link";
    auto h = Handshake::start(hs);
    REQUIRE(h.has_value());
    settings.log = end->log.sink();
    End* raw = end.get();
    auto handshake = std::make_shared<Handshake>(std::move(h.value()));
    end->ended = std::async(std::launch::async, [raw, fd, handshake, settings]() mutable {
        FrameReader reader;
        auto params = run_handshake(fd, fd, *handshake, reader, generous_deadline());
        if (!params) {
            return params.error();
        }
        raw->owner = std::make_unique<BridgeSession>(std::move(settings), params.value(),
                                                     raw->client, fd, fd, std::move(reader));
        raw->session.store(raw->owner.get());
        return raw->owner->run();
    });
    return end;
}

struct Link {
    UniqueFd a;
    UniqueFd b;
    std::unique_ptr<End> robot;
    std::unique_ptr<End> ground;

    Link(const DaemonProcess& robot_daemon, const DaemonProcess& ground_daemon,
         SessionSettings robot_settings, SessionSettings ground_settings) {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        a.reset(fds[0]);
        b.reset(fds[1]);
        robot = start_end(robot_daemon, a.get(), std::move(robot_settings), 0x1001);
        ground = start_end(ground_daemon, b.get(), std::move(ground_settings), 0x2002);
    }
    ~Link() {
        // A session is created on its thread; stop whichever exist, then wait for both.
        for (End* e : {robot.get(), ground.get()}) {
            if (e->ended.valid() && e->ended.wait_for(0s) != std::future_status::ready) {
                if (BridgeSession* session = e->session.load()) {
                    session->stop();
                }
                ::shutdown(e == robot.get() ? a.get() : b.get(), SHUT_RDWR);
            }
        }
        for (End* e : {robot.get(), ground.get()}) {
            if (e->ended.valid()) {
                e->ended.wait();
            }
        }
    }
};

SessionSettings robot_settings() {
    SessionSettings s;
    s.bridge = "to-ground";
    s.initiator = true;
    // Both exports block on congestion, for as long as a test takes: the tests pin that
    // nothing is lost on a block channel, and that a stalled stream stalls alone (the
    // default, drop_oldest, lets go of what the ground cannot take: test_bridge_congestion).
    ChannelRule telemetry{"telemetry", "robot1/telemetry", LinkDownPolicy::drop, 10min};
    telemetry.on_congestion = CongestionPolicy::block;
    ChannelRule slow{"slow", "robot1/slow", LinkDownPolicy::drop, 10min};
    slow.on_congestion = CongestionPolicy::block;
    s.exports = {telemetry, slow};
    s.imports = {{"jobs", "ground/jobs", LinkDownPolicy::drop}};
    s.window = 64;
    return s;
}

SessionSettings ground_settings() {
    SessionSettings s;
    s.bridge = "from-robot";
    s.initiator = false;
    s.exports = {{"jobs", "", LinkDownPolicy::drop}};
    s.imports = {{"robot1/*", "", LinkDownPolicy::drop}};
    s.window = 64;
    return s;
}

/// Waits until `end`'s session shows `wire_name` with credits granted (an export) or at all.
bool wait_for_stream(End& end, const std::string& wire_name, bool exporting) {
    const auto deadline = generous_deadline();
    while (std::chrono::steady_clock::now() < deadline) {
        if (BridgeSession* session = end.session.load()) {
            for (const auto& s : session->stats().streams) {
                if (s.wire_name == wire_name && s.exporting == exporting &&
                    (!exporting || s.credits > 0)) {
                    return true;
                }
            }
        }
        if (end.ended.wait_for(5ms) == std::future_status::ready) {
            return false; // the link ended
        }
    }
    return false;
}

StreamStats stream(End& end, const std::string& wire_name, bool exporting) {
    BridgeSession* session = end.session.load();
    REQUIRE(session != nullptr);
    for (const auto& s : session->stats().streams) {
        if (s.wire_name == wire_name && s.exporting == exporting) {
            return s;
        }
    }
    FAIL("no stream " << wire_name);
    return {};
}

} // namespace

TEST_CASE("a bridged broadcast channel delivers every message in order, byte for byte") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    Client ground_app = connect_to(ground, "ground-app");
    auto sub = ground_app.open_subscriber("robot1/telemetry");
    REQUIRE(sub.has_value());

    Link link{robot, ground, robot_settings(), ground_settings()};
    REQUIRE(wait_for_stream(*link.robot, "robot1/telemetry", true));

    Client robot_app = connect_to(robot, "robot-app");
    auto pub = robot_app.open_publisher("telemetry");
    REQUIRE(pub.has_value());
    const std::uint64_t count = scaled(200000, 5000);
    std::string producer_error;
    std::thread producer{[&] {
        std::vector<std::byte> buf(256);
        for (std::uint64_t id = 0; id < count; ++id) {
            const std::size_t length = 8 + id % 240;
            stamp(std::span{buf}.first(length), id);
            if (auto r = pub.value().send(std::span{buf}.first(length), 60s); !r) {
                producer_error = "message " + std::to_string(id) + ": " + r.error().message();
                return;
            }
        }
    }};
    std::vector<std::byte> buf(256);
    std::uint64_t next = 0;
    std::uint64_t bad = 0;
    std::uint64_t lost = 0;
    while (next < count) {
        auto r = sub.value().receive_copy(buf, 10s);
        if (!r) {
            std::string state;
            for (End* e : {link.robot.get(), link.ground.get()}) {
                for (const auto& line : e->log.lines()) {
                    state += "\n" + line;
                }
            }
            producer.join();
            FAIL("after message " << next << ": " << r.error().message()
                                  << "; the producer: " << producer_error << state);
        }
        lost += r.value().lost_before;
        const std::uint64_t id = check_stamp(std::span{buf}.first(r.value().size));
        if (id != next || r.value().size != 8 + id % 240) {
            if (bad < 10) {
                UNSCOPED_INFO("expected " << next << ", got " << id << " of " << r.value().size
                                          << " bytes");
            }
            ++bad;
        }
        next = id + 1;
    }
    producer.join();
    CHECK(producer_error.empty());
    CHECK(bad == 0);
    CHECK(lost == 0);
    // The exporter counts a message once its write is done, which may come after the reader
    // has it: poll its statistics (they have no event to wait on) up to the deadline.
    (void)wait_until(
        [&] { return stream(*link.robot, "robot1/telemetry", true).messages >= count; });
    const auto exported = stream(*link.robot, "robot1/telemetry", true);
    CHECK(exported.messages == count);
    CHECK(exported.lost == 0);
    CHECK(stream(*link.ground, "robot1/telemetry", false).lost == 0);
}

TEST_CASE("a queue crosses the link from the listening end to the connecting one") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    Link link{robot, ground, robot_settings(), ground_settings()};
    REQUIRE(wait_for_stream(*link.ground, "jobs", true));

    Client ground_app = connect_to(ground, "dispatcher");
    auto producer = ground_app.open_publisher("jobs");
    REQUIRE(producer.has_value());
    Client robot_app = connect_to(robot, "worker");
    auto consumer = robot_app.open_subscriber("ground/jobs");
    REQUIRE(consumer.has_value());
    const std::uint64_t count = 2000;
    std::string feed_error;
    std::thread feeder{[&] {
        std::vector<std::byte> buf(64);
        for (std::uint64_t id = 0; id < count; ++id) {
            stamp(buf, id);
            if (auto r = producer.value().send(buf, 60s); !r) {
                feed_error = "message " + std::to_string(id) + ": " + r.error().message();
                return;
            }
        }
    }};
    std::vector<std::byte> buf(64);
    for (std::uint64_t id = 0; id < count; ++id) {
        auto r = consumer.value().receive_copy(buf, 60s);
        if (!r || check_stamp(std::span{buf}.first(r.value().size)) != id) {
            feeder.join();
            FAIL("job " << id << ": " << (r ? "wrong bytes" : r.error().message()) << "; "
                        << feed_error);
        }
    }
    feeder.join();
    CHECK(feed_error.empty());
    CHECK(link.robot->log.contains("importing channel 'jobs' as 'ground/jobs'"));
}

TEST_CASE("a request for a channel the listening end does not export is refused by name") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    auto settings = robot_settings();
    settings.exports.clear();
    settings.imports = {{"narrow", "", LinkDownPolicy::drop}};
    Link link{robot, ground, settings, ground_settings()};
    const auto deadline = generous_deadline();
    while (!link.robot->log.contains("refused to export 'narrow'") &&
           std::chrono::steady_clock::now() < deadline) {
        REQUIRE(link.robot->ended.wait_for(5ms) == std::future_status::timeout);
    }
    CHECK(link.robot->log.contains(
        "the peer refused to export 'narrow': no channel matching 'narrow' is in bridge "
        "'from-robot''s export list"));
    CHECK(link.ground->log.contains("refused the peer's request for 'narrow'"));
    REQUIRE(link.ground->session.load() != nullptr);
    CHECK(link.ground->session.load()->stats().streams.empty());
}

TEST_CASE("an offer into a channel of another geometry is refused naming the item") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    auto settings = robot_settings();
    // telemetry's 256-byte slots, offered into the ground's 16-byte 'narrow'.
    settings.exports = {{"telemetry", "narrow", LinkDownPolicy::drop}};
    settings.imports.clear();
    auto ground_side = ground_settings();
    ground_side.imports = {{"narrow", "", LinkDownPolicy::drop}};
    Link link{robot, ground, settings, ground_side};
    const std::string reason = "channel 'narrow': slot_size differs: 16 here, 256 on the peer";
    const auto deadline = generous_deadline();
    while (!link.robot->log.contains(reason) && std::chrono::steady_clock::now() < deadline) {
        REQUIRE(link.robot->ended.wait_for(5ms) == std::future_status::timeout);
    }
    CHECK(link.robot->log.contains("the peer refused channel 'narrow': " + reason));
    CHECK(link.ground->log.contains("refused channel 'narrow' from the peer: " + reason));
}

TEST_CASE("a stalled channel does not hold up another on the same link") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    Client ground_app = connect_to(ground, "ground-app");
    // A subscriber of robot1/slow that never reads: that channel (block, 8 slots) fills, the
    // bridge's importer waits on it and stops returning credits for it.
    auto stalled = ground_app.open_subscriber("robot1/slow");
    REQUIRE(stalled.has_value());
    auto fast = ground_app.open_subscriber("robot1/telemetry");
    REQUIRE(fast.has_value());

    Link link{robot, ground, robot_settings(), ground_settings()};
    REQUIRE(wait_for_stream(*link.robot, "robot1/telemetry", true));
    REQUIRE(wait_for_stream(*link.robot, "robot1/slow", true));

    Client robot_app = connect_to(robot, "robot-app");
    auto slow_pub = robot_app.open_publisher("slow");
    REQUIRE(slow_pub.has_value());
    // Publish until the slow stream has stalled: the robot's ring is full and the bridge
    // holds no credits for it (the ground's ring and the link's window are full).
    std::vector<std::byte> small(64);
    std::uint64_t slow_sent = 0;
    const auto stall_deadline = generous_deadline();
    for (;;) {
        REQUIRE(std::chrono::steady_clock::now() < stall_deadline);
        if (slow_pub.value().send(small, 200ms).has_value()) {
            ++slow_sent;
            continue;
        }
        if (stream(*link.robot, "robot1/slow", true).credits == 0) {
            break;
        }
    }
    CHECK(slow_sent >= 8 + 8);

    auto fast_pub = robot_app.open_publisher("telemetry");
    REQUIRE(fast_pub.has_value());
    const std::uint64_t count = 5000;
    std::string feed_error;
    std::thread producer{[&] {
        std::vector<std::byte> buf(128);
        for (std::uint64_t id = 0; id < count; ++id) {
            stamp(buf, id);
            if (auto r = fast_pub.value().send(buf, 60s); !r) {
                feed_error = "message " + std::to_string(id) + ": " + r.error().message();
                return;
            }
        }
    }};
    std::vector<std::byte> buf(256);
    for (std::uint64_t id = 0; id < count; ++id) {
        auto r = fast.value().receive_copy(buf, 60s);
        if (!r || check_stamp(std::span{buf}.first(r.value().size)) != id) {
            producer.join();
            FAIL("message " << id << ": " << (r ? "wrong bytes" : r.error().message()) << "; "
                            << feed_error);
        }
    }
    producer.join();
    CHECK(feed_error.empty());
    // The slow stream is still stalled, and nothing of it was lost.
    CHECK(stream(*link.robot, "robot1/slow", true).credits == 0);
    CHECK(stream(*link.robot, "robot1/slow", true).lost == 0);
}

TEST_CASE("stopping one end ends the link on both, each saying why") {
    DaemonProcess robot{kRobot};
    DaemonProcess ground{kGround};
    robot.start();
    ground.start();
    Link link{robot, ground, robot_settings(), ground_settings()};
    REQUIRE(wait_for_stream(*link.robot, "robot1/telemetry", true));
    link.robot->session.load()->stop();
    REQUIRE(link.robot->ended.wait_for(60s) == std::future_status::ready);
    REQUIRE(link.ground->ended.wait_for(60s) == std::future_status::ready);
    const Error robot_why = link.robot->ended.get();
    const Error ground_why = link.ground->ended.get();
    CHECK(robot_why.code == Errc::closed);
    CHECK(robot_why.detail == "stopped");
    CHECK(ground_why.code == Errc::closed);
    CHECK_THAT(ground_why.detail, Catch::Contains("the peer ended the link: stopped"));
    CHECK(link.ground->log.contains("link ended"));
}

namespace {

/// One end of a link played by the test itself, frame by frame: the robot's (the initiator),
/// so that what the ground's session receives in one frame is exactly what the test sent, or
/// the ground's, which reads only when told to.
struct ScriptedPeer {
    explicit ScriptedPeer(int fd, bool initiator = true) : fd{fd} {
        HandshakeSettings hs;
        hs.initiator = initiator;
        hs.bridge = initiator ? "to-ground" : "from-robot";
        hs.node = initiator ? "robot1" : "ground";
        hs.incarnation = initiator ? 0x1001 : 0x2002;
        hs.secret = "a shared secret for the test link";
        auto h = Handshake::start(hs);
        REQUIRE(h.has_value());
        auto params = run_handshake(fd, fd, h.value(), reader, generous_deadline());
        REQUIRE(params.has_value());
        reader.set_max_data_body(params.value().receive_data_body);
    }

    void send(const Frame& frame) const {
        auto bytes = encode(frame);
        REQUIRE(bytes.has_value());
        write_all(bytes.value());
    }

    void send_data(std::uint32_t stream, std::uint64_t first,
                   const std::vector<std::vector<std::byte>>& messages) const {
        std::vector<std::uint32_t> lengths;
        std::vector<std::byte> wire;
        for (const auto& m : messages) {
            lengths.push_back(static_cast<std::uint32_t>(m.size()));
        }
        // Protocol 2: the robot's own messages, of its channel 7, numbered from 1.
        const MessageOrigin origin{0x1001, 7, first + 1};
        REQUIRE(encode_origin_data_prefix(stream, first, origin, lengths, kDefaultDataBody, wire)
                    .has_value());
        for (const auto& m : messages) {
            wire.insert(wire.end(), m.begin(), m.end());
        }
        write_all(wire);
    }

    /// The next frame of type T the session sends, skipping any other (its wants and offers)
    /// and answering its pings; empty at the deadline.
    template <typename T>
    std::optional<T> next(std::chrono::steady_clock::time_point deadline) {
        for (;;) {
            auto f = next_frame(deadline);
            if (!f) {
                return std::nullopt;
            }
            if (const T* t = std::get_if<T>(&*f)) {
                return *t;
            }
            if (const Ping* ping = std::get_if<Ping>(&*f)) {
                send(Pong{ping->token, ping->sent_ns}); // the link stays alive meanwhile
            }
        }
    }

    /// The next frame, reading as needed; none at the deadline.
    std::optional<Frame> next_frame(std::chrono::steady_clock::time_point deadline) {
        for (;;) {
            auto f = reader.next();
            REQUIRE(f.has_value());
            if (f.value()) {
                return *f.value();
            }
            pollfd p{fd, POLLIN, 0};
            const int left = ms_left(deadline);
            if (left <= 0 || ::poll(&p, 1, left) <= 0) {
                return std::nullopt;
            }
            auto room = reader.writable(64 * 1024);
            const ssize_t n = ::read(fd, room.data(), room.size());
            REQUIRE(n > 0);
            reader.commit(static_cast<std::size_t>(n));
        }
    }

    void write_all(std::span<const std::byte> bytes) const {
        while (!bytes.empty()) {
            const ssize_t n = ::write(fd, bytes.data(), bytes.size());
            REQUIRE(n > 0);
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        }
    }

    int fd;
    FrameReader reader;
};

std::vector<std::byte> stamped(std::uint64_t id) {
    std::vector<std::byte> b(128);
    stamp(b, id);
    return b;
}

/// The ground's end of a link whose robot end the test plays (`robot`), over a socketpair:
/// the ground's session runs on its own thread, its `app` client reads robot1/telemetry
/// (`sub`, from before anything arrives).
struct ScriptedLink {
    explicit ScriptedLink(DaemonProcess& ground, SessionSettings settings = ground_settings())
        : app{connect_to(ground, "ground-app")}, sub{subscribe(app)}, fds{make_pair()}, a{fds[0]},
          b{fds[1]}, end{start_end(ground, b.get(), std::move(settings), 0x2002)}, robot{a.get()} {}

    /// The robot offers robot1/telemetry as stream 1, its messages at most `slot_size`
    /// bytes; the ground's grant.
    Grant offer_telemetry(std::uint64_t slot_size) {
        robot.send(Offer{.stream = 1,
                         .request = 0,
                         .wire_name = "robot1/telemetry",
                         .kind = ChannelKind::broadcast,
                         .overflow = Overflow::block,
                         .slot_size = slot_size,
                         .slot_count = 64,
                         .creation_id = 7,
                         .next_sequence = 0,
                         .type = std::string{}}); // protocol 2: untyped
        auto grant = robot.next<Grant>(generous_deadline());
        REQUIRE(grant.has_value());
        return *grant;
    }

    ScriptedLink(const ScriptedLink&) = delete;
    ScriptedLink& operator=(const ScriptedLink&) = delete;
    /// Ends the ground's session, if a failed check left it running, before waiting for it.
    ~ScriptedLink() { ::shutdown(a.get(), SHUT_RDWR); }

    static Subscriber subscribe(Client& c) {
        auto s = c.open_subscriber("robot1/telemetry");
        REQUIRE(s.has_value());
        return std::move(s.value());
    }

    static std::array<int, 2> make_pair() {
        std::array<int, 2> p{};
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.data()) == 0);
        return p;
    }

    Client app;
    Subscriber sub;
    std::array<int, 2> fds;
    UniqueFd a; ///< the robot's side
    UniqueFd b; ///< the ground's side
    std::unique_ptr<End> end;
    ScriptedPeer robot;
};

} // namespace

TEST_CASE("credits for the part of a frame that was published come back while the rest waits "
          "for a slow subscriber") {
    DaemonProcess ground{kGround};
    REQUIRE(ground.start());
    ScriptedLink link{ground};
    auto& robot = link.robot;
    Subscriber& sub = link.sub;
    auto local = link.app.open_publisher("robot1/telemetry");
    REQUIRE(local.has_value());
    // The subscriber reads nothing yet: 54 local messages leave room for 10 of its 64.
    constexpr std::uint64_t kLocal = 54;
    for (std::uint64_t id = 0; id < kLocal; ++id) {
        REQUIRE(local.value().send(stamped(id), 1s).has_value());
    }
    REQUIRE(link.offer_telemetry(256).credits >= 24);

    // One frame of 24: 10 fit, 14 wait for the subscriber.
    std::vector<std::vector<std::byte>> frame;
    for (std::uint64_t id = kLocal; id < kLocal + 24; ++id) {
        frame.push_back(stamped(id));
    }
    robot.send_data(1, 0, frame);
    auto first = robot.next<Credit>(generous_deadline());
    REQUIRE(first.has_value());
    REQUIRE(first->grants.size() == 1);
    CHECK(first->grants.front().stream == 1);
    CHECK(first->grants.front().messages == 10);

    // The subscriber reads: the rest is published, in order, and its credits follow.
    std::vector<std::byte> buf(256);
    for (std::uint64_t id = 0; id < kLocal + 24; ++id) {
        auto r = sub.receive_copy(buf, 60s);
        INFO("message " << id << "; the ground's session logged: " << link.end->log.all());
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
    }
    std::uint32_t returned = 0;
    while (returned < 14) {
        auto more = robot.next<Credit>(generous_deadline());
        REQUIRE(more.has_value());
        for (const auto& g : more->grants) {
            returned += g.messages;
        }
    }
    CHECK(returned == 14);
    CHECK(sub.lost() == 0);
    ::shutdown(link.a.get(), SHUT_RDWR);
    REQUIRE(link.end->ended.wait_for(60s) == std::future_status::ready);
}

TEST_CASE("a data frame with a message longer than its stream's slot size ends the link, "
          "naming the stream and both sizes, and publishes nothing of it") {
    DaemonProcess ground{kGround};
    REQUIRE(ground.start());
    ScriptedLink link{ground};
    Subscriber& sub = link.sub;
    // The offer says 128 bytes at most; the ground's channel has slots of 256.
    link.offer_telemetry(128);
    link.robot.send_data(1, 1, {stamped(1), std::vector<std::byte>(129)});

    REQUIRE(link.end->ended.wait_for(60s) == std::future_status::ready);
    const Error why = link.end->ended.get();
    CHECK(why.code == Errc::protocol_error);
    CHECK_THAT(why.detail, Catch::Contains("stream 1 ('robot1/telemetry'): message 2 is 129 "
                                           "bytes, above the slot_size its offer announced (128)"));
    std::vector<std::byte> buf(256);
    CHECK(sub.try_receive_copy(buf).error().code == Errc::would_block);
}

TEST_CASE("a frame that arrives slower than the silence limit keeps its link alive: liveness "
          "is judged by bytes arriving") {
    DaemonProcess ground{kGround};
    REQUIRE(ground.start());
    SessionSettings settings = ground_settings();
    settings.dead_after_silence = 1000ms;
    ScriptedLink link{ground, settings};
    link.offer_telemetry(256);
    std::vector<std::uint32_t> lengths{200};
    std::vector<std::byte> frame;
    REQUIRE(encode_origin_data_prefix(1, 1, MessageOrigin{0x1001, 7, 2}, lengths, kDefaultDataBody,
                                      frame)
                .has_value());
    std::vector<std::byte> message(200);
    stamp(message, 1);
    frame.insert(frame.end(), message.begin(), message.end());
    // The frame in 8 pieces, 250 ms apart: no whole frame for 1.75 s, bytes every 250 ms. The
    // pace is the slow link itself, not a wait for anything.
    const std::size_t piece = (frame.size() + 7) / 8;
    for (std::size_t at = 0; at < frame.size(); at += piece) {
        if (at > 0) {
            std::this_thread::sleep_for(250ms);
        }
        link.robot.write_all(std::span{frame}.subspan(at, std::min(piece, frame.size() - at)));
        REQUIRE(link.end->ended.wait_for(0s) != std::future_status::ready);
    }
    std::vector<std::byte> buf(256);
    auto r = link.sub.receive_copy(buf, 60s);
    REQUIRE(r.has_value());
    CHECK(r.value().size == 200);
    CHECK(check_stamp(std::span{buf}.first(r.value().size)) == 1);
    CHECK(link.end->ended.wait_for(0s) != std::future_status::ready);
}

TEST_CASE("credits come back a quarter of the window at a time, and the rest once the link is "
          "quiet, not one credit frame per data frame") {
    DaemonProcess ground{kGround};
    REQUIRE(ground.start());
    ScriptedLink link{ground};
    Subscriber& sub = link.sub;
    // ground_settings(): a window of 64, so credits go back by 16.
    REQUIRE(link.offer_telemetry(256).credits == ground_settings().window);

    // 40 data frames of one message each (the ring holds 64: every one is published at once).
    constexpr std::uint64_t kCount = 40;
    for (std::uint64_t id = 0; id < kCount; ++id) {
        link.robot.send_data(1, id + 1, {stamped(id)});
    }
    std::uint32_t returned = 0;
    std::size_t frames = 0;
    while (returned < kCount) {
        auto c = link.robot.next<Credit>(generous_deadline());
        REQUIRE(c.has_value());
        ++frames;
        for (const auto& g : c->grants) {
            CHECK(g.stream == 1);
            returned += g.messages;
        }
    }
    CHECK(returned == kCount);
    // Each frame but the last carries at least a quarter of the window (16): at most 3.
    CHECK(frames <= 3);
    std::vector<std::byte> buf(256);
    for (std::uint64_t id = 0; id < kCount; ++id) {
        auto r = sub.receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
    }
    ::shutdown(link.a.get(), SHUT_RDWR);
    REQUIRE(link.end->ended.wait_for(60s) == std::future_status::ready);
}

namespace {

/// Bytes of each bulk message: more than half a data frame, so one message per frame.
constexpr int kBulkBytes = 600 * 1024;

} // namespace

TEST_CASE("a high-priority export's frame goes ahead of the frames of saturating low-priority "
          "exports waiting for the link") {
    DaemonProcess robot{"channels:\n" + channel("bulk0", "broadcast", kBulkBytes, 4) +
                        channel("bulk1", "broadcast", kBulkBytes, 4) +
                        channel("bulk2", "broadcast", kBulkBytes, 4) +
                        channel("alarm", "broadcast", 128, 8)};
    REQUIRE(robot.start());
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    UniqueFd a{fds[0]};
    UniqueFd b{fds[1]};
    SessionSettings s;
    s.bridge = "to-ground";
    s.initiator = true;
    for (const char* bulk : {"bulk0", "bulk1", "bulk2"}) {
        ChannelRule r{bulk, ""};
        r.priority = 0;
        s.exports.push_back(r);
    }
    ChannelRule alarm{"alarm", ""};
    alarm.priority = 7;
    s.exports.push_back(alarm);
    auto end = start_end(robot, a.get(), s, 0x1001);
    // Should a check below fail, the session's writers are blocked on the full socket: hang
    // up the played end before the session is torn down, so that they fail rather than wait.
    struct HangUpOnExit {
        int fd;
        ~HangUpOnExit() { ::shutdown(fd, SHUT_RDWR); }
    } hang_up{b.get()};
    ScriptedPeer ground{b.get(), /*initiator=*/false}; // reads only when told

    // Grant every offer: a window each.
    std::map<std::string, std::uint32_t> stream_of;
    while (stream_of.size() < 4) {
        auto f = ground.next_frame(generous_deadline());
        REQUIRE(f.has_value());
        if (const auto* o = std::get_if<Offer>(&*f)) {
            stream_of[o->wire_name] = o->stream;
            ground.send(Grant{o->stream, 16, 0});
        }
    }
    REQUIRE(wait_for_stream(*end, "alarm", true));
    REQUIRE(wait_for_stream(*end, "bulk2", true));
    auto app = connect_to(robot, "robot-app");
    std::vector<Publisher> bulk;
    for (const char* name : {"bulk0", "bulk1", "bulk2"}) {
        auto p = app.open_publisher(name);
        REQUIRE(p.has_value());
        bulk.push_back(std::move(p.value()));
    }
    auto alarm_pub = app.open_publisher("alarm");
    REQUIRE(alarm_pub.has_value());

    // The bulk exports saturate the link: nobody reads it, so one writes (blocked on the
    // full socket) and the other two wait for the link at priority 0.
    const std::vector<std::byte> big(kBulkBytes, std::byte{0x5a});
    for (auto& p : bulk) {
        for (int i = 0; i < 2; ++i) {
            REQUIRE(p.send(big, 60s).has_value());
        }
    }
    BridgeSession* session = end->session.load();
    REQUIRE(session != nullptr);
    REQUIRE(wait_until([&] { return session->stats().writers.now[0] == 2; }));
    // The alarm comes after them, and waits at priority 7.
    REQUIRE(alarm_pub.value().send(stamped(1), 60s).has_value());
    REQUIRE(wait_until([&] { return session->stats().writers.now[7] == 1; }));
    std::uint64_t bulk_done = 0; // frames written whole before the link filled
    for (const auto& st : session->stats().streams) {
        if (st.local_name != "alarm") {
            bulk_done += st.messages;
        }
    }

    // Read the link: after the frames written before and the one being written, the alarm's
    // frame is next, ahead of the two bulk frames that asked for the link before it.
    std::vector<std::uint32_t> data_streams;
    while (std::find(data_streams.begin(), data_streams.end(), stream_of["alarm"]) ==
           data_streams.end()) {
        auto f = ground.next_frame(generous_deadline());
        REQUIRE(f.has_value());
        if (const auto* d = std::get_if<DataView>(&*f)) {
            data_streams.push_back(d->stream());
        }
    }
    CHECK(data_streams.size() == bulk_done + 2);
    const auto most = session->stats().writers.most;
    CHECK(most[0] >= 2);
    CHECK(most[7] == 1);
    ::shutdown(b.get(), SHUT_RDWR);
    REQUIRE(end->ended.wait_for(60s) == std::future_status::ready);
}
