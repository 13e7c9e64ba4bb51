// Messages larger than one data frame between two real shmbusd processes (bridge protocol 2,
// docs/gateway.md "Fragments"). Pins: a 64 MiB message crosses a tcp bridge whole, byte for
// byte, in fragments, while a 100 Hz channel beside it on the same link keeps flowing — no
// small message waits behind more than a fraction of the large one's fragments (counted from
// the bridges' own fragment counters, not timed) and none takes seconds; and a link cut in
// the middle of a fragmented message delivers nothing of it, and the next link counts it as
// exactly one message lost; and a reassembled message is admitted by its origin exactly as a
// whole one (a second copy of it skipped as a duplicate, this daemon's own as a loop).
#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include "gateway/frame.hpp"
#include "gateway/handshake.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kBig = std::uint64_t{64} * 1024 * 1024;

TestChannel big_channel() {
    return {.name = "big",
            .kind = "broadcast",
            .slot_size = kBig,
            .slot_count = 2,
            .max_subscribers = 2};
}

/// Byte `i` of large message `n`.
std::byte big_byte(std::uint64_t n, std::uint64_t i) {
    return static_cast<std::byte>(((i >> 12) * 7 + i * 13 + n * 101) & 0xffU);
}

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

/// A bridge's fragment counters, from list_bridges.
std::uint64_t fragments(const DaemonProcess& d, const std::string& bridge, bool sent) {
    auto b = bridge_of(d, bridge);
    REQUIRE(b.has_value());
    return sent ? b->fragments_sent : b->fragments_received;
}

struct Tick {
    std::uint64_t id;
    std::uint64_t sent_before; ///< the robot's fragments sent when it was published
    std::uint64_t sent_ns;
};

} // namespace

TEST_CASE("a 64 MiB message crosses whole in fragments while a 100 Hz channel beside it flows") {
    TempDir dir;
    const std::string key = make_secret(dir);
    const std::string yaml = channels_yaml({big_channel(), bridged("tick")});
    DaemonProcess ground{yaml +
                         "bridges:\n  - name: robot\n    listen: tcp://127.0.0.1:0\n"
                         "    secret_file: " +
                         key + "\n    import: [big, tick]\n"};
    REQUIRE(ground.start());
    const auto port = std::to_string(listening_port(ground, "robot"));
    DaemonProcess robot{yaml + "bridges:\n  - name: ground\n    connect: tcp://127.0.0.1:" + port +
                        "\n    secret_file: " + key + "\n    export: [big, tick]\n"};
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "ground", 2));
    auto b = bridge_of(robot, "ground");
    REQUIRE(b.has_value());
    CHECK(b->version >= gateway::kFragmentsVersion);

    auto receiver = Client::connect(options_for(ground));
    REQUIRE(receiver.has_value());
    auto big_sub = receiver.value().open_subscriber("big");
    REQUIRE(big_sub.has_value());
    auto tick_sub = receiver.value().open_subscriber("tick");
    REQUIRE(tick_sub.has_value());

    // The 100 Hz channel: each tick carries the robot's fragment count when it was published;
    // at its arrival the ground's count says how many fragments went ahead of it.
    std::atomic<bool> stop_ticks{false};
    std::atomic<std::uint64_t> ticks_sent{0};
    std::atomic<bool> tick_failed{false};
    std::thread ticker{[&] {
        auto sender = Client::connect(options_for(robot));
        auto pub =
            sender ? sender.value().open_publisher("tick") : Result<Publisher>{sender.take_error()};
        if (!pub) {
            tick_failed.store(true);
            return;
        }
        for (std::uint64_t id = 0; !stop_ticks.load(); ++id) {
            auto r = bridge_of(robot, "ground");
            Tick t{id, r ? r->fragments_sent : 0, now_ns()};
            std::vector<std::byte> buf(sizeof t);
            std::memcpy(buf.data(), &t, sizeof t);
            if (!pub.value().send(buf, 60s)) {
                tick_failed.store(true);
                return;
            }
            ticks_sent.store(id + 1);
            std::this_thread::sleep_for(10ms); // the channel's rate, not a synchronisation
        }
    }};
    struct Arrival {
        Tick tick;
        std::uint64_t received_by; ///< the ground's fragments received at its arrival
        std::uint64_t latency_ns;
        std::uint64_t lost_before;
    };
    std::mutex arrivals_mu;
    std::vector<Arrival> arrivals;
    std::atomic<bool> stop_listening{false};
    std::thread listener{[&] {
        std::vector<std::byte> buf(128);
        while (!stop_listening.load()) {
            auto r = tick_sub.value().receive_copy(buf, 100ms);
            if (!r) {
                continue;
            }
            const std::uint64_t at = now_ns();
            Tick t{};
            std::memcpy(&t, buf.data(), sizeof t);
            auto g = bridge_of(ground, "robot");
            std::lock_guard lock{arrivals_mu};
            arrivals.push_back(
                {t, g ? g->fragments_received : 0, at - t.sent_ns, r.value().lost_before});
        }
    }};

    auto sender = Client::connect(options_for(robot));
    REQUIRE(sender.has_value());
    auto big_pub = sender.value().open_publisher("big");
    REQUIRE(big_pub.has_value());
    constexpr std::uint64_t kMessages = 3;
    std::uint64_t per_message = 0;
    for (std::uint64_t n = 0; n < kMessages; ++n) {
        CAPTURE(n);
        {
            auto w = big_pub.value().reserve(1, 60s);
            REQUIRE(w.has_value());
            auto out = w.value().data(0);
            for (std::uint64_t i = 0; i < kBig; ++i) {
                out[i] = big_byte(n, i);
            }
            w.value().set_length(0, kBig);
            REQUIRE(big_pub.value().commit(w.value()).has_value());
        }
        auto got = big_sub.value().receive(1, 120s);
        REQUIRE(got.has_value());
        CHECK(got.value().lost_before() == 0);
        const auto m = got.value().message(0).data;
        REQUIRE(m.size() == kBig);
        std::uint64_t wrong = 0;
        for (std::uint64_t i = 0; i < kBig; ++i) {
            wrong += m[i] != big_byte(n, i) ? 1 : 0;
        }
        CHECK(wrong == 0);
        REQUIRE(big_sub.value().release(got.value()).has_value());
        if (n == 0) {
            per_message = fragments(robot, "ground", true);
        }
    }
    stop_ticks.store(true);
    ticker.join();
    REQUIRE_FALSE(tick_failed.load());
    // Every tick arrives: wait for the last one rather than for a while.
    REQUIRE(wait_until([&] {
        std::lock_guard lock{arrivals_mu};
        return arrivals.size() == ticks_sent.load();
    }));
    stop_listening.store(true);
    listener.join();

    const std::uint64_t sent = fragments(robot, "ground", true);
    const std::uint64_t received = fragments(ground, "robot", false);
    CHECK(per_message >= 64); // 64 MiB in fragments of at most 1 MiB
    CHECK(sent == kMessages * per_message);
    CHECK(received == sent);

    // The ticks published while a large message was in flight (the robot had sent some of
    // its fragments, not all), and how many fragments arrived before each of them.
    std::vector<std::uint64_t> ahead;
    std::uint64_t slowest_ns = 0;
    std::lock_guard lock{arrivals_mu};
    for (std::size_t i = 0; i < arrivals.size(); ++i) {
        const Arrival& a = arrivals[i];
        CHECK(a.tick.id == i);
        CHECK(a.lost_before == 0);
        if (a.tick.sent_before % per_message != 0) {
            ahead.push_back(a.received_by - a.tick.sent_before);
            slowest_ns = std::max(slowest_ns, a.latency_ns);
        }
    }
    std::sort(ahead.begin(), ahead.end());
    REQUIRE_FALSE(ahead.empty());
    const std::uint64_t median = ahead[ahead.size() / 2];
    INFO("ticks during transfers: " << ahead.size() << ", fragments ahead of one: median " << median
                                    << ", most " << ahead.back() << " of " << per_message
                                    << " per message; slowest: " << slowest_ns / 1000 << " us");
    // Interleaved, a tick waits for a few fragments; behind a whole message, ticks published
    // at random moments of it would wait for half its fragments on the median. The counts
    // include the test's own delay in reading the counters, which a loaded machine stretches
    // now and then: the median bounds the typical wait, the most only a sanity limit.
    CHECK(median < per_message / 4);
    CHECK(ahead.back() < 2 * per_message);
    CHECK(slowest_ns < std::uint64_t{5'000'000'000});
}

namespace {

/// The exporting end played by the test over tcp: a real handshake, then frames as written.
struct PlayedExporter {
    UniqueFd fd;
    gateway::FrameReader reader;
    std::uint64_t peer_incarnation{0}; ///< the daemon's, from the handshake
    /// The channel the messages are said to come from (their origin's channel).
    static constexpr std::uint64_t kChannel = 0xc0ffee;
    std::uint64_t own{0}; ///< this end's incarnation: the origin daemon of what it sends

    PlayedExporter(std::uint16_t port, const std::string& secret, std::uint64_t incarnation)
        : own{incarnation} {
        fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(fd);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        gateway::HandshakeSettings hs;
        hs.initiator = true;
        hs.bridge = "robot";
        hs.node = "played";
        hs.incarnation = incarnation;
        hs.secret = secret;
        auto h = gateway::Handshake::start(hs);
        REQUIRE(h.has_value());
        auto params =
            gateway::run_handshake(fd.get(), fd.get(), h.value(), reader, generous_deadline());
        REQUIRE(params.has_value());
        REQUIRE(params.value().version >= gateway::kFragmentsVersion);
        peer_incarnation = params.value().peer_incarnation;
        reader.set_version(params.value().version);
    }

    void write(std::span<const std::byte> bytes) const {
        while (!bytes.empty()) {
            const ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
            REQUIRE(n > 0);
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        }
    }

    void send(const gateway::Frame& f) const {
        auto bytes = gateway::encode(f);
        REQUIRE(bytes.has_value());
        write(bytes.value());
    }

    /// The grant of `stream`, skipping the peer's other frames.
    gateway::Grant grant() {
        for (;;) {
            auto f = reader.next();
            REQUIRE(f.has_value());
            if (f.value()) {
                if (auto* g = std::get_if<gateway::Grant>(&*f.value())) {
                    return *g;
                }
                continue;
            }
            auto room = reader.writable(4096);
            const ssize_t n = ::read(fd.get(), room.data(), room.size());
            REQUIRE(n > 0);
            reader.commit(static_cast<std::size_t>(n));
        }
    }

    /// Message `seq` whole, in an origin_data frame: first published as message `origin_seq`
    /// (default `seq`) of kChannel by `origin_daemon` (default this end).
    void whole(std::uint32_t stream, std::uint64_t seq, const std::vector<std::byte>& m,
               std::uint64_t origin_seq = 0, std::uint64_t origin_daemon = 0) const {
        std::vector<std::byte> wire;
        const std::uint32_t length = static_cast<std::uint32_t>(m.size());
        const gateway::MessageOrigin o{origin_daemon != 0 ? origin_daemon : own, kChannel,
                                       origin_seq != 0 ? origin_seq : seq};
        REQUIRE(gateway::encode_origin_data_prefix(stream, seq, o, std::span{&length, 1},
                                                   gateway::kDefaultDataBody, wire));
        wire.insert(wire.end(), m.begin(), m.end());
        write(wire);
    }

    /// One fragment of message `seq`, its origin as for whole().
    void fragment(gateway::FragmentPart part, std::uint32_t stream, std::uint64_t seq,
                  const std::vector<std::byte>& m, std::size_t offset, std::size_t size,
                  std::uint64_t origin_seq = 0, std::uint64_t origin_daemon = 0) const {
        std::vector<std::byte> wire;
        const gateway::MessageOrigin o{origin_daemon != 0 ? origin_daemon : own, kChannel,
                                       origin_seq != 0 ? origin_seq : seq};
        REQUIRE(gateway::encode_fragment_prefix(part, stream, seq, m.size(), offset, size, o,
                                                gateway::kDefaultDataBody, wire));
        wire.insert(wire.end(), m.begin() + static_cast<long>(offset),
                    m.begin() + static_cast<long>(offset + size));
        write(wire);
    }

    /// Message `seq` (more than 256 KiB) in fragments of 256 KiB, its origin as for whole().
    void in_fragments(std::uint32_t stream, std::uint64_t seq, const std::vector<std::byte>& m,
                      std::uint64_t origin_seq = 0, std::uint64_t origin_daemon = 0) const {
        constexpr std::size_t kPiece = 256 * 1024;
        REQUIRE(m.size() > kPiece);
        for (std::size_t at = 0; at < m.size(); at += kPiece) {
            const auto part = at == 0                   ? gateway::FragmentPart::start
                              : at + kPiece >= m.size() ? gateway::FragmentPart::end
                                                        : gateway::FragmentPart::middle;
            fragment(part, stream, seq, m, at, std::min(kPiece, m.size() - at), origin_seq,
                     origin_daemon);
        }
    }
};

/// A message of `size` bytes for the played exporter: byte `i` is i * `salt` + i / 1024 (mod
/// 256), so that bytes landing a whole fragment away from their place would show.
std::vector<std::byte> large_message(std::size_t size, std::size_t salt) {
    std::vector<std::byte> m(size);
    for (std::size_t i = 0; i < size; ++i) {
        m[i] = static_cast<std::byte>((i * salt + (i >> 10)) & 0xffU);
    }
    return m;
}

/// A daemon whose bridge `robot` listens on tcp for a peer that exports channel `wide` (1 MiB
/// slots) to it, and the bridge's secret. With one publisher allowed on `wide` (the bridge
/// alone), a message in fragments is reassembled in the slot it is published in; with two, in
/// a buffer (docs/gateway.md, "Fragments").
struct WideImporter {
    explicit WideImporter(std::uint32_t max_publishers = 1)
        : ground{channels_yaml({TestChannel{.name = "wide",
                                            .kind = "broadcast",
                                            .slot_size = 1 << 20,
                                            .slot_count = 4,
                                            .max_publishers = max_publishers,
                                            .max_subscribers = 2}}) +
                 "bridges:\n  - name: robot\n    listen: tcp://127.0.0.1:0\n"
                 "    secret_file: " +
                 key + "\n    import: [wide]\n"} {}

    TempDir dir;
    std::string key{make_secret(dir)};
    DaemonProcess ground;
    std::optional<Client> app;
    std::optional<Subscriber> sub; ///< of `wide`, on the daemon
    std::uint16_t port{0};         ///< where the bridge listens

    /// Starts the daemon and opens `sub`.
    void start() {
        REQUIRE(ground.start());
        port = listening_port(ground, "robot");
        auto c = Client::connect(options_for(ground));
        REQUIRE(c.has_value());
        app.emplace(std::move(c.value()));
        auto s = app->open_subscriber("wide");
        REQUIRE(s.has_value());
        sub.emplace(std::move(s.value()));
    }

    [[nodiscard]] std::string secret() const {
        std::string out;
        std::ifstream in(key);
        std::getline(in, out, '\0');
        return out;
    }
};

/// The played exporter's one stream: broadcast channel `wide` of four 1 MiB slots.
gateway::Offer wide_offer() {
    return {1,
            0,
            "wide",
            ChannelKind::broadcast,
            Overflow::block,
            1 << 20,
            4,
            PlayedExporter::kChannel,
            0,
            std::string{}};
}

} // namespace

TEST_CASE("a link cut mid-message delivers none of it, and the next link counts one lost") {
    const std::uint32_t publishers = GENERATE(1U, 2U);
    INFO("max_publishers " << publishers << (publishers == 1 ? " (in place)" : " (buffered)"));
    WideImporter w{publishers};
    DaemonProcess& ground = w.ground;
    const std::string secret = w.secret();
    w.start();
    Subscriber& sub = *w.sub;
    const std::uint16_t port = w.port;

    std::vector<std::byte> small(100, std::byte{1});
    const std::vector<std::byte> large = large_message(600 * 1024, 1);
    const gateway::Offer offer = wide_offer();
    {
        PlayedExporter peer{port, secret, 0x5001};
        peer.send(offer);
        const auto g = peer.grant();
        REQUIRE(g.credits >= 3);
        peer.whole(1, 10, small);
        peer.fragment(gateway::FragmentPart::start, 1, 11, large, 0, 256 * 1024);
        peer.fragment(gateway::FragmentPart::middle, 1, 11, large, 256 * 1024, 256 * 1024);
        std::vector<std::byte> first(256);
        auto r = sub.receive_copy(first, 60s);
        REQUIRE(r.has_value());
        CHECK(r.value().size == small.size());
        CHECK(r.value().lost_before == 0);
        REQUIRE(wait_until([&] {
            auto b = bridge_of(ground, "robot");
            return b && b->fragments_received == 2;
        }));
    } // the link is cut: message 11 never ended
    REQUIRE(wait_until([&] {
        auto b = bridge_of(ground, "robot");
        return b && b->state != "connected";
    }));
    {
        PlayedExporter peer{port, secret, 0x5001};
        peer.send(offer);
        const auto g = peer.grant();
        CHECK(g.resume_sequence == 11); // the first message not published here
        peer.whole(1, 12, small);
        std::vector<std::byte> next(1 << 20);
        auto r = sub.receive_copy(next, 60s);
        REQUIRE(r.has_value());
        CHECK(r.value().size == small.size()); // message 12: nothing of message 11
        CHECK(r.value().lost_before == 1);     // message 11, lost whole
        auto b = bridge_of(ground, "robot");
        REQUIRE(b.has_value());
        REQUIRE(b->streams.size() == 1);
        CHECK(b->streams[0].lost == 1);
        CHECK(b->streams[0].messages == 1);
    }
    std::vector<std::byte> none(1 << 20);
    auto nothing = sub.try_receive();
    CHECK_FALSE(nothing.has_value());
}

TEST_CASE("a message in fragments is admitted by its origin like a whole one: a second copy is "
          "skipped as a duplicate, this daemon's own as a loop") {
    const std::uint32_t publishers = GENERATE(1U, 2U);
    INFO("max_publishers " << publishers << (publishers == 1 ? " (in place)" : " (buffered)"));
    WideImporter w{publishers};
    DaemonProcess& ground = w.ground;
    const std::string secret = w.secret();
    w.start();
    Subscriber& sub = *w.sub;
    const std::uint16_t port = w.port;

    const std::vector<std::byte> small(100, std::byte{1});
    const std::vector<std::byte> large = large_message(600 * 1024, 7);
    const gateway::Offer offer = wide_offer();
    PlayedExporter peer{port, secret, 0x5002};
    peer.send(offer);
    const auto g = peer.grant();
    REQUIRE(g.credits >= 11);            // every message and fragment below, before any comes back
    peer.whole(1, 10, small);            // origin message 10
    peer.in_fragments(1, 11, large, 11); // origin message 11, in fragments
    peer.in_fragments(1, 12, large, 11); // origin message 11 again, as a second path brings it
    peer.in_fragments(1, 13, large, 12, peer.peer_incarnation); // the ground's own: a loop
    peer.whole(1, 14, small, 12); // origin message 12: nothing lost before it

    std::vector<std::byte> buf(1 << 20);
    auto first = sub.receive_copy(buf, 60s);
    REQUIRE(first.has_value());
    CHECK(first.value().size == small.size());
    auto second = sub.receive_copy(buf, 60s);
    REQUIRE(second.has_value());
    REQUIRE(second.value().size == large.size());
    CHECK(second.value().lost_before == 0);
    CHECK(std::memcmp(buf.data(), large.data(), large.size()) == 0);
    auto third = sub.receive_copy(buf, 60s);
    REQUIRE(third.has_value());
    CHECK(third.value().size == small.size()); // neither the duplicate nor the loop
    CHECK(third.value().lost_before == 0);
    REQUIRE(wait_until([&] {
        auto b = bridge_of(ground, "robot");
        return b && b->fragments_received == 9 && b->duplicates == 1 && b->looped == 1;
    }));
    CHECK_FALSE(sub.try_receive().has_value());
}

TEST_CASE("a message in fragments follows the gap before it, and waits in a buffer while the "
          "ring has no room at its start") {
    WideImporter w;
    DaemonProcess& ground = w.ground;
    const std::string secret = w.secret();
    w.start();
    Subscriber& sub = *w.sub;
    const std::uint16_t port = w.port;

    const std::vector<std::byte> small(100, std::byte{2});
    const std::vector<std::byte> large = large_message(700 * 1024, 11);
    PlayedExporter peer{port, secret, 0x5003};
    peer.send(wide_offer());
    const auto g = peer.grant();
    REQUIRE(g.credits >= 10); // every message and fragment below, before any comes back

    // Message 11 never comes: the subscriber is told before message 12, placed in its slot.
    peer.whole(1, 10, small);
    peer.in_fragments(1, 12, large);
    std::vector<std::byte> buf(1 << 20);
    auto first = sub.receive_copy(buf, 60s);
    REQUIRE(first.has_value());
    CHECK(first.value().size == small.size());
    CHECK(first.value().lost_before == 0);
    auto second = sub.receive_copy(buf, 60s);
    REQUIRE(second.has_value());
    REQUIRE(second.value().size == large.size());
    CHECK(second.value().lost_before == 1);
    CHECK(std::memcmp(buf.data(), large.data(), large.size()) == 0);

    // The subscriber stops reading: four messages fill the ring's four slots, so the next
    // one in fragments finds no room at its start and is reassembled in a buffer, then
    // published once the subscriber has made room, after them and whole.
    for (std::uint64_t seq = 13; seq <= 16; ++seq) {
        peer.whole(1, seq, small);
    }
    REQUIRE(wait_until([&] {
        auto b = bridge_of(ground, "robot");
        return b && !b->streams.empty() && b->streams[0].messages == 6;
    }));
    peer.in_fragments(1, 17, large);
    REQUIRE(wait_until([&] {
        auto b = bridge_of(ground, "robot");
        return b && b->fragments_received == 6;
    }));
    for (int i = 0; i < 4; ++i) {
        auto r = sub.receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        CHECK(r.value().size == small.size());
        CHECK(r.value().lost_before == 0);
    }
    auto last = sub.receive_copy(buf, 60s);
    REQUIRE(last.has_value());
    REQUIRE(last.value().size == large.size());
    CHECK(last.value().lost_before == 0);
    CHECK(std::memcmp(buf.data(), large.data(), large.size()) == 0);
    REQUIRE(wait_until([&] {
        auto b = bridge_of(ground, "robot");
        return b && b->streams[0].messages == 7;
    }));
    auto b = bridge_of(ground, "robot");
    REQUIRE(b.has_value());
    CHECK(b->streams[0].lost == 1);
    CHECK_FALSE(sub.try_receive().has_value());
}
