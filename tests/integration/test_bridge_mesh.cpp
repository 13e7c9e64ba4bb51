// Bridges between real shmbusd processes arranged as a mesh (docs/gateway.md, "Multi-hop:
// origins, loops and duplicates", "Types"): both directions between two daemons, a ring of
// three with a chord, a gap made upstream and seen downstream, the middle daemon killed and
// restarted, a channel refused for its type beside one that keeps flowing, and a queue's
// messages (one path each) round a cycle and split and joined again. Every message
// is stamped with its source and number, every subscriber keeps a ledger, and every wait is on
// the daemons' own counters (list_bridges) or on the messages themselves.
#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "shmbusctl_process.hpp"
#include "test_support.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

/// A broadcast channel of 256 slots that blocks its publishers rather than overwrite, so that
/// nothing is lost locally while a test publishes before it reads.
std::string channel(const std::string& name, const std::string& type = {}) {
    return "  - {name: " + name +
           ", kind: broadcast, slot_size: 128, slot_count: 256, overflow: block, "
           "max_publishers: 4, max_subscribers: 8" +
           (type.empty() ? std::string{} : ", type: \"" + type + "\"") + "}\n";
}

/// One bridge entry of a daemon's YAML.
std::string bridge(const std::string& name, const std::string& end, const std::string& address,
                   const std::string& key, const std::string& exports, const std::string& imports) {
    std::string y =
        "  - name: " + name + "\n    " + end + ": " + address + "\n    secret_file: " + key + "\n";
    if (!exports.empty()) {
        y += "    export: [" + exports + "]\n";
    }
    if (!imports.empty()) {
        y += "    import: [" + imports + "]\n";
    }
    return y;
}

/// A TCP port of the loopback that was free a moment ago, for a listener whose address must
/// stay the same across reloads and restarts.
std::uint16_t free_port() {
    UniqueFd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    REQUIRE(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    return ntohs(addr.sin_port);
}

std::string tcp(std::uint16_t port) {
    return "tcp://127.0.0.1:" + std::to_string(port);
}

/// A daemon whose stderr is kept, so its log can be read.
std::unique_ptr<DaemonProcess> daemon_with(const std::string& yaml) {
    auto d = std::make_unique<DaemonProcess>(yaml);
    d->with_stderr_file();
    REQUIRE(d->start());
    return d;
}

/// A client of `d` and one publisher and one subscriber of `name` there.
struct Ends {
    Ends(const DaemonProcess& d, const std::string& name)
        : app{take(Client::connect(options_for(d)))}, sub{take(app.open_subscriber(name))},
          pub{take(app.open_publisher(name))} {}

    template <typename T>
    static T take(Result<T> r) {
        REQUIRE(r.has_value());
        return std::move(r.value());
    }

    /// Publishes ids [from, from + count).
    void publish(std::uint64_t from, std::uint64_t count) {
        std::vector<std::byte> buf(128);
        for (std::uint64_t id = from; id < from + count; ++id) {
            stamp(buf, id);
            REQUIRE(pub.send(buf, 60s).has_value());
        }
    }

    /// Receives until `until` arrives; every id received (counted), and the messages lost
    /// before them. If it does not, the logs of `daemons` say why.
    void receive_until(std::uint64_t until, std::vector<const DaemonProcess*> daemons = {}) {
        std::vector<std::byte> buf(128);
        for (;;) {
            auto r = sub.receive_copy(buf, 60s);
            if (!r) {
                for (const DaemonProcess* d : daemons) {
                    UNSCOPED_INFO(d->stderr_text());
                }
            }
            REQUIRE(r.has_value());
            lost += r.value().lost_before;
            const std::uint64_t id = check_stamp(std::span{buf}.first(r.value().size));
            ++seen[id];
            if (id == until) {
                return;
            }
        }
    }

    /// Receives `count` messages, whatever they are.
    void receive(std::uint64_t count) {
        std::vector<std::byte> buf(128);
        for (std::uint64_t i = 0; i < count; ++i) {
            auto r = sub.receive_copy(buf, 60s);
            REQUIRE(r.has_value());
            lost += r.value().lost_before;
            ++seen[check_stamp(std::span{buf}.first(r.value().size))];
        }
    }

    /// Whether nothing more is waiting.
    bool drained() {
        std::vector<std::byte> buf(128);
        auto r = sub.try_receive_copy(buf);
        return !r.has_value() && r.error().code == Errc::would_block;
    }

    Client app;
    Subscriber sub;
    Publisher pub;
    std::map<std::uint64_t, std::uint64_t> seen; ///< id -> times received
    std::uint64_t lost{0};
};

/// Ids [from, from + count) of one source, each once.
void expect_once(const Ends& e, std::uint64_t from, std::uint64_t count) {
    for (std::uint64_t id = from; id < from + count; ++id) {
        CAPTURE(id);
        auto it = e.seen.find(id);
        REQUIRE(it != e.seen.end());
        CHECK(it->second == 1);
    }
}

/// A counter of bridge `name` of `d`; 0 when it cannot be read.
std::uint64_t counter(const DaemonProcess& d, const std::string& name,
                      std::uint64_t BridgeSummary::*field) {
    auto b = bridge_of(d, name);
    return b ? (*b).*field : 0;
}

bool reaches(const DaemonProcess& d, const std::string& name, std::uint64_t BridgeSummary::*field,
             std::uint64_t value) {
    return wait_until([&] { return counter(d, name, field) >= value; });
}

constexpr std::uint64_t kPerSource = 60;
constexpr std::uint64_t kFromA = 1000;
constexpr std::uint64_t kFromB = 2000;
constexpr std::uint64_t kFromC = 3000;

} // namespace

TEST_CASE("a channel bridged both ways between two daemons neither loops nor repeats") {
    TempDir dir;
    const std::string key = make_secret(dir);
    auto b = daemon_with("channels:\n" + channel("news") + "bridges:\n" +
                         bridge("to-a", "listen", "tcp://127.0.0.1:0", key, "news", "news"));
    const auto port = listening_port(*b, "to-a");
    auto a = daemon_with("channels:\n" + channel("news") + "bridges:\n" +
                         bridge("to-b", "connect", tcp(port), key, "news", "news"));
    REQUIRE(wait_streaming(*a, "to-b", 2));
    REQUIRE(wait_streaming(*b, "to-a", 2));

    Ends at_a{*a, "news"};
    Ends at_b{*b, "news"};
    at_a.publish(kFromA, kPerSource);
    at_b.publish(kFromB, kPerSource);
    at_a.receive(2 * kPerSource);
    at_b.receive(2 * kPerSource);
    // Each end's own messages come back once over the other direction, and are dropped
    // there: once every one of them has been, nothing else can arrive.
    REQUIRE(reaches(*a, "to-b", &BridgeSummary::looped, kPerSource));
    REQUIRE(reaches(*b, "to-a", &BridgeSummary::looped, kPerSource));
    for (Ends* e : {&at_a, &at_b}) {
        expect_once(*e, kFromA, kPerSource);
        expect_once(*e, kFromB, kPerSource);
        CHECK(e->seen.size() == 2 * kPerSource);
        CHECK(e->lost == 0);
        CHECK(e->drained());
    }
    CHECK(counter(*a, "to-b", &BridgeSummary::looped) == kPerSource);
    CHECK(counter(*b, "to-a", &BridgeSummary::looped) == kPerSource);
    CHECK(counter(*a, "to-b", &BridgeSummary::duplicates) == 0);
    CHECK(counter(*b, "to-a", &BridgeSummary::duplicates) == 0);
}

namespace {

/// Three daemons: news goes round A -> B -> C -> A, with a chord A -> C; chain goes A -> B -> C
/// only. A listens for B and for C, B for C.
struct Ring {
    Ring() : key{make_secret(dir)} {
        a = daemon_with("channels:\n" + channel("news") + channel("chain") + "bridges:\n" +
                        bridge("from-b", "listen", "tcp://127.0.0.1:0", key, "news, chain", "") +
                        bridge("from-c", "listen", "tcp://127.0.0.1:0", key, "news", "news"));
        a_for_b = listening_port(*a, "from-b");
        a_for_c = listening_port(*a, "from-c");
        // B listens for C on a port that stays the same when B's bridge to A comes and goes
        // and when B restarts.
        b_for_c = free_port();
        b = daemon_with(b_yaml(b_for_c, true));
        REQUIRE(listening_port(*b, "from-c") == b_for_c);
        c = daemon_with("channels:\n" + channel("news") + channel("chain") + "bridges:\n" +
                        bridge("to-b", "connect", tcp(b_for_c), key, "", "news, chain") +
                        bridge("to-a", "connect", tcp(a_for_c), key, "news", "news"));
        REQUIRE(wait_streaming(*b, "to-a", 2));
        REQUIRE(wait_streaming(*c, "to-b", 2));
        REQUIRE(wait_streaming(*c, "to-a", 2));
    }

    /// B's configuration: listening for C on `port`, with or without its bridge to A.
    std::string b_yaml(std::uint16_t port, bool to_a) const {
        return "channels:\n" + channel("news") + channel("chain") + "bridges:\n" +
               (to_a ? bridge("to-a", "connect", tcp(a_for_b), key, "", "news, chain")
                     : std::string{}) +
               bridge("from-c", "listen", tcp(port), key, "news, chain", "");
    }

    TempDir dir;
    std::string key;
    std::unique_ptr<DaemonProcess> a, b, c;
    std::uint16_t a_for_b{0}, a_for_c{0}, b_for_c{0};
};

/// Ids a chain message took from A: those before `marker` received at `e`, and how many
/// were lost; each received once.
std::uint64_t accounted(const Ends& e, std::uint64_t from, std::uint64_t marker) {
    std::uint64_t received = 0;
    for (const auto& [id, times] : e.seen) {
        CAPTURE(id);
        CHECK(times == 1);
        if (id >= from && id < marker) {
            ++received;
        }
    }
    return received + e.lost;
}

} // namespace

TEST_CASE("three daemons in a ring with a chord deliver every message exactly once to each") {
    Ring ring;
    auto& [dir, key, a, b, c, a_for_b, a_for_c, b_for_c] = ring;
    Ends at_a{*a, "news"};
    Ends at_b{*b, "news"};
    Ends at_c{*c, "news"};
    at_a.publish(kFromA, kPerSource);
    at_b.publish(kFromB, kPerSource);
    at_c.publish(kFromC, kPerSource);
    for (Ends* e : {&at_a, &at_b, &at_c}) {
        e->receive(3 * kPerSource);
    }
    // Every copy that must be dropped, counted where it is: A's messages come back to A from C
    // and reach C twice (from A and through B); B's come back to B from A and reach C twice
    // (from B and through A); C's come back to C from A and from B.
    REQUIRE(reaches(*a, "from-c", &BridgeSummary::looped, kPerSource));
    REQUIRE(reaches(*b, "to-a", &BridgeSummary::looped, kPerSource));
    REQUIRE(wait_until([&] {
        return counter(*c, "to-a", &BridgeSummary::looped) +
                       counter(*c, "to-b", &BridgeSummary::looped) >=
                   2 * kPerSource &&
               counter(*c, "to-a", &BridgeSummary::duplicates) +
                       counter(*c, "to-b", &BridgeSummary::duplicates) >=
                   2 * kPerSource;
    }));
    for (Ends* e : {&at_a, &at_b, &at_c}) {
        expect_once(*e, kFromA, kPerSource);
        expect_once(*e, kFromB, kPerSource);
        expect_once(*e, kFromC, kPerSource);
        CHECK(e->seen.size() == 3 * kPerSource);
        CHECK(e->lost == 0);
        CHECK(e->drained());
    }
    CHECK(counter(*c, "to-a", &BridgeSummary::duplicates) +
              counter(*c, "to-b", &BridgeSummary::duplicates) ==
          2 * kPerSource);
    CHECK(counter(*a, "from-c", &BridgeSummary::duplicates) == 0);
    CHECK(counter(*b, "to-a", &BridgeSummary::duplicates) == 0);
}

TEST_CASE("messages lost upstream of a re-exporting daemon are counted exactly downstream") {
    Ring ring;
    auto& [dir, key, a, b, c, a_for_b, a_for_c, b_for_c] = ring;
    Ends at_a{*a, "chain"};
    Ends at_b{*b, "chain"};
    Ends at_c{*c, "chain"};
    at_a.publish(0, 10);
    at_b.receive_until(9);
    at_c.receive_until(9);

    // B's bridge to A goes away; what A publishes meanwhile never reaches B, nor C behind it.
    reload_with(*b, ring.b_yaml(b_for_c, false));
    REQUIRE(wait_until([&] {
        auto s = bridge_of(*a, "from-b");
        return s && s->state != "connected";
    }));
    constexpr std::uint64_t kMissed = 25;
    at_a.publish(10, kMissed);
    reload_with(*b, ring.b_yaml(b_for_c, true));
    REQUIRE(wait_streaming(*b, "to-a", 2));
    constexpr std::uint64_t kMarker = 999;
    at_a.publish(kMarker, 1);
    at_b.receive_until(kMarker, {a.get(), b.get()});
    at_c.receive_until(kMarker, {b.get(), c.get()});

    // Every message from 10 on is either delivered or counted lost, at B and at C alike.
    CHECK(accounted(at_b, 10, kMarker) == kMissed);
    CHECK(accounted(at_c, 10, kMarker) == kMissed);
    CHECK(at_b.lost >= kMissed - 1); // a new export starts at the newest message
    CHECK(at_c.lost == at_b.lost);
    CHECK(at_c.seen == at_b.seen);
    // B saw it as a cut link; C, behind an unbroken one, as loss upstream.
    CHECK(counter(*b, "to-a", &BridgeSummary::lost_link_down) == at_b.lost);
    CHECK(counter(*c, "to-b", &BridgeSummary::lost_upstream) == at_c.lost);
    CHECK(counter(*c, "to-b", &BridgeSummary::lost_link_down) == 0);

    const Outcome out = ctl(at(*c, {"bridges", "--json"}));
    REQUIRE(out.code == 0);
    const auto doc = nlohmann::json::parse(out.out);
    bool found = false;
    for (const auto& entry : doc["bridges"]) {
        if (entry["name"] == "to-b") {
            found = true;
            CHECK(entry["loss"]["upstream"] == at_c.lost);
            CHECK(entry["loss"]["link_down"] == 0);
        }
    }
    CHECK(found);
}

TEST_CASE("the middle daemon killed and restarted: its new incarnation is recognised and the "
          "loss counted exactly at the far end") {
    Ring ring;
    auto& [dir, key, a, b, c, a_for_b, a_for_c, b_for_c] = ring;
    const auto before = bridge_of(*c, "to-b");
    REQUIRE(before.has_value());
    Ends at_a{*a, "chain"};
    Ends at_c{*c, "chain"};
    at_a.publish(0, 10);
    at_c.receive_until(9);

    REQUIRE(b->kill_hard().has_value());
    REQUIRE(wait_until([&] {
        auto s = bridge_of(*c, "to-b");
        return s && s->state != "connected";
    }));
    constexpr std::uint64_t kMissed = 30;
    at_a.publish(10, kMissed);
    // The same daemon, restarted: a new process, listening for C on the same port.
    b = daemon_with(ring.b_yaml(b_for_c, true));
    REQUIRE(wait_streaming(*b, "to-a", 2));
    REQUIRE(wait_streaming(*c, "to-b", 2));
    constexpr std::uint64_t kMarker = 999;
    at_a.publish(kMarker, 1);
    at_c.receive_until(kMarker, {a.get(), b.get(), c.get()});

    const auto after = bridge_of(*c, "to-b");
    REQUIRE(after.has_value());
    CHECK(after->peer_incarnation != before->peer_incarnation);
    CHECK(accounted(at_c, 10, kMarker) == kMissed);
    CHECK(at_c.lost >= kMissed - 1);
    // B's channel is a new one, numbered afresh; the origin's numbers still tell C exactly
    // what it missed, across a link that was down.
    CHECK(after->lost_link_down + after->lost_upstream == at_c.lost);
    CHECK(c->wait_for_stderr("'chain' was created anew on the peer", generous_deadline()));
}

TEST_CASE("a channel whose type differs is refused by name on both ends while another flows") {
    TempDir dir;
    const std::string key = make_secret(dir);
    auto ground = daemon_with("channels:\n" + channel("imu", "sensor_msgs/Imu@v1") +
                              channel("news") + "bridges:\n" +
                              bridge("robot", "listen", "tcp://127.0.0.1:0", key, "", "imu, news"));
    const auto port = listening_port(*ground, "robot");
    auto robot =
        daemon_with("channels:\n" + channel("imu", "sensor_msgs/Imu@v2") + channel("news") +
                    "bridges:\n" + bridge("ground", "connect", tcp(port), key, "imu, news", ""));
    const std::string why = "channel 'imu': type differs: 'sensor_msgs/Imu@v1' here, "
                            "'sensor_msgs/Imu@v2' on the peer";
    CHECK(ground->wait_for_stderr("bridge 'robot': refused channel 'imu' from the peer: " + why,
                                  generous_deadline()));
    CHECK(robot->wait_for_stderr("bridge 'ground': the peer refused channel 'imu': " + why,
                                 generous_deadline()));
    // The refused stream stays listed, closed and without credits, beside the one that flows.
    REQUIRE(wait_until([&] {
        auto s = bridge_of(*robot, "ground");
        if (!s) {
            return false;
        }
        for (const auto& stream : s->streams) {
            if (stream.local_name == "news" && stream.credits > 0) {
                return true;
            }
        }
        return false;
    }));
    check_flow(*robot, "news", *ground, "news", 200);

    auto r = bridge_of(*robot, "ground");
    auto g = bridge_of(*ground, "robot");
    REQUIRE(r.has_value());
    REQUIRE(g.has_value());
    CHECK(r->type_refusals == 1);
    CHECK(g->type_refusals == 1);
    CHECK(g->streams.size() == 1); // the importer never opened 'imu'

    const Outcome out = ctl(at(*ground, {"bridges"}));
    REQUIRE(out.code == 0);
    CHECK_THAT(out.out, Catch::Contains("TYPE REFUSED"));
    const Outcome json = ctl(at(*ground, {"bridges", "--json"}));
    REQUIRE(json.code == 0);
    CHECK(nlohmann::json::parse(json.out)["bridges"][0]["loss"]["type_refusals"] == 1);
}

namespace {

/// A queue channel of 256 slots: each message goes to one of its consumers, here a bridge's
/// export stream when no client consumes.
std::string queue(const std::string& name) {
    return "  - {name: " + name +
           ", kind: queue, slot_size: 128, slot_count: 256, max_publishers: 4, "
           "max_subscribers: 8}\n";
}

/// A queue of kLargeJob-byte slots, whose messages are larger than a data frame (1 MiB) and
/// cross a link in fragments (of 256 KiB: six each).
constexpr std::size_t kLargeJob = std::size_t{1536} * 1024;
std::string large_queue(const std::string& name) {
    return "  - {name: " + name + ", kind: queue, slot_size: " + std::to_string(kLargeJob) +
           ", slot_count: 4, max_publishers: 4, max_subscribers: 8}\n";
}

/// Messages that crossed the link of bridge `name` of `d` on its stream of `channel`, one way.
std::uint64_t stream_messages(const DaemonProcess& d, const std::string& name,
                              const std::string& channel, bool exporting) {
    auto b = bridge_of(d, name);
    if (!b) {
        return 0;
    }
    for (const auto& s : b->streams) {
        if (s.local_name == channel && s.exporting == exporting) {
            return s.messages;
        }
    }
    return 0;
}

/// Publishes ids [from, from + count) on queue `name` of `d`.
void publish_jobs(const DaemonProcess& d, const std::string& name, std::uint64_t from,
                  std::uint64_t count, std::size_t bytes = 128) {
    auto app = Client::connect(options_for(d));
    REQUIRE(app.has_value());
    auto pub = app.value().open_publisher(name);
    REQUIRE(pub.has_value());
    std::vector<std::byte> buf(bytes);
    for (std::uint64_t id = from; id < from + count; ++id) {
        stamp(buf, id);
        REQUIRE(pub.value().send(buf, 60s).has_value());
    }
}

} // namespace

TEST_CASE("a queue bridged around a cycle takes each message around once, then drops it where "
          "it has been") {
    // A -> B, and B <-> C: B's and C's only consumers are their bridges to each other, so each
    // message goes round B -> C -> B. B's own come back to their origin; A's come back to a
    // daemon they passed, which only the set of what it has seen can tell. Beside the small
    // jobs, large ones that cross every link in fragments.
    TempDir dir;
    const std::string key = make_secret(dir);
    const std::string channels = "channels:\n" + queue("jobs") + large_queue("large");
    auto b = daemon_with(
        channels + "bridges:\n" +
        bridge("from-a", "listen", "tcp://127.0.0.1:0", key, "", "jobs, large") +
        bridge("from-c", "listen", "tcp://127.0.0.1:0", key, "jobs, large", "jobs, large"));
    auto a = daemon_with(
        channels + "bridges:\n" +
        bridge("to-b", "connect", tcp(listening_port(*b, "from-a")), key, "jobs, large", ""));
    auto c = daemon_with(channels + "bridges:\n" +
                         bridge("to-b", "connect", tcp(listening_port(*b, "from-c")), key,
                                "jobs, large", "jobs, large"));
    REQUIRE(wait_streaming(*a, "to-b", 2));
    REQUIRE(wait_streaming(*c, "to-b", 4));
    REQUIRE(wait_streaming(*b, "from-c", 4));

    constexpr std::uint64_t kLarge = 3;
    publish_jobs(*a, "jobs", kFromA, kPerSource);
    publish_jobs(*b, "jobs", kFromB, kPerSource);
    publish_jobs(*a, "large", kFromA, kLarge, kLargeJob);
    publish_jobs(*b, "large", kFromB, kLarge, kLargeJob);
    REQUIRE(reaches(*b, "from-c", &BridgeSummary::looped, 2 * (kPerSource + kLarge)));
    // A stream counts a message once it is written or published, after the next daemon may
    // have dropped it (a message in fragments: at its start): wait for the counts' ends.
    REQUIRE(wait_until([&] {
        return stream_messages(*a, "to-b", "jobs", true) >= kPerSource &&
               stream_messages(*c, "to-b", "jobs", false) >= 2 * kPerSource &&
               stream_messages(*c, "to-b", "large", false) >= 2 * kLarge &&
               stream_messages(*b, "from-c", "jobs", true) >= 2 * kPerSource &&
               stream_messages(*c, "to-b", "jobs", true) >= 2 * kPerSource &&
               stream_messages(*c, "to-b", "large", true) >= 2 * kLarge &&
               counter(*c, "to-b", &BridgeSummary::fragments_sent) >= 6 * 2 * kLarge;
    }));
    // Each message crossed each link once, and nothing goes round again.
    CHECK(counter(*b, "from-c", &BridgeSummary::looped) == 2 * (kPerSource + kLarge));
    CHECK(stream_messages(*c, "to-b", "large", false) == 2 * kLarge);
    CHECK(stream_messages(*c, "to-b", "large", true) == 2 * kLarge);
    CHECK(counter(*c, "to-b", &BridgeSummary::fragments_sent) == 6 * 2 * kLarge);
    CHECK(stream_messages(*a, "to-b", "jobs", true) == kPerSource);
    CHECK(stream_messages(*b, "from-c", "jobs", true) == 2 * kPerSource);
    CHECK(stream_messages(*c, "to-b", "jobs", false) == 2 * kPerSource);
    CHECK(stream_messages(*c, "to-b", "jobs", true) == 2 * kPerSource);
    for (const auto* d : {a.get(), b.get(), c.get()}) {
        for (const std::string name : {"to-b", "from-a", "from-c"}) {
            if (auto s = bridge_of(*d, name)) {
                CAPTURE(name);
                CHECK(s->duplicates == 0);
                CHECK(s->lost_link_down + s->lost_congestion + s->lost_upstream == 0);
            }
        }
    }
    CHECK(counter(*c, "to-b", &BridgeSummary::looped) == 0);
}

TEST_CASE("a queue's messages split between two bridges and joined again two hops on arrive "
          "each exactly once") {
    // A's queue has two consumers, its bridges to B and to C, which take its messages in turn;
    // B and C pass theirs on to D. D meets A's numbers with holes on each path and out of
    // order between them: none of that is loss, and nothing is dropped.
    TempDir dir;
    const std::string key = make_secret(dir);
    auto a = daemon_with("channels:\n" + queue("jobs") + "bridges:\n" +
                         bridge("from-b", "listen", "tcp://127.0.0.1:0", key, "jobs", "") +
                         bridge("from-c", "listen", "tcp://127.0.0.1:0", key, "jobs", ""));
    auto middle = [&](const std::string& from) {
        return daemon_with(
            "channels:\n" + queue("jobs") + "bridges:\n" +
            bridge("to-a", "connect", tcp(listening_port(*a, from)), key, "", "jobs") +
            bridge("from-d", "listen", "tcp://127.0.0.1:0", key, "jobs", ""));
    };
    auto b = middle("from-b");
    auto c = middle("from-c");
    auto d =
        daemon_with("channels:\n" + queue("jobs") + "bridges:\n" +
                    bridge("to-b", "connect", tcp(listening_port(*b, "from-d")), key, "", "jobs") +
                    bridge("to-c", "connect", tcp(listening_port(*c, "from-d")), key, "", "jobs"));
    for (const auto* m : {b.get(), c.get()}) {
        REQUIRE(wait_streaming(*m, "to-a", 1));
        REQUIRE(wait_streaming(*m, "from-d", 1));
    }
    REQUIRE(wait_streaming(*a, "from-b", 1));
    REQUIRE(wait_streaming(*a, "from-c", 1));

    auto app = Client::connect(options_for(*d));
    REQUIRE(app.has_value());
    auto consumer = app.value().open_subscriber("jobs");
    REQUIRE(consumer.has_value());
    constexpr std::uint64_t kJobs = 2000;
    publish_jobs(*a, "jobs", 0, kJobs);
    std::map<std::uint64_t, std::uint64_t> seen;
    std::uint64_t lost = 0;
    std::vector<std::byte> buf(128);
    for (std::uint64_t i = 0; i < kJobs; ++i) {
        auto r = consumer.value().receive_copy(buf, 60s);
        if (!r) {
            for (const auto* p : {a.get(), b.get(), c.get(), d.get()}) {
                UNSCOPED_INFO(p->stderr_text());
            }
        }
        REQUIRE(r.has_value());
        lost += r.value().lost_before;
        ++seen[check_stamp(std::span{buf}.first(r.value().size))];
    }
    CHECK(lost == 0);
    CHECK(seen.size() == kJobs);
    for (const auto& [id, times] : seen) {
        CAPTURE(id);
        CHECK(id < kJobs);
        CHECK(times == 1);
    }
    // An importer counts what it published just after publishing it: wait for the counts.
    std::uint64_t via_b = 0;
    std::uint64_t via_c = 0;
    REQUIRE(wait_until([&] {
        via_b = stream_messages(*d, "to-b", "jobs", false);
        via_c = stream_messages(*d, "to-c", "jobs", false);
        return via_b + via_c >= kJobs;
    }));
    INFO("through B: " << via_b << ", through C: " << via_c);
    CHECK(via_b + via_c == kJobs);
    for (const std::string name : {"to-b", "to-c"}) {
        CAPTURE(name);
        CHECK(counter(*d, name, &BridgeSummary::looped) == 0);
        CHECK(counter(*d, name, &BridgeSummary::duplicates) == 0);
    }
    auto rest = consumer.value().try_receive_copy(buf);
    CHECK((!rest.has_value() && rest.error().code == Errc::would_block));
}
