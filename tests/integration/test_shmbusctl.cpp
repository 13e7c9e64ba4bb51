// shmbusctl against the real shmbusd: every command, in text and in JSON, and every exit code.
//
// shmbusctl runs as a subprocess (tests/support/shmbusctl_process.hpp): the built binary,
// exactly as an operator runs it, with stdout and stderr captured and a deadline on its exit.
// The daemon is the built shmbusd on a private socket and configuration
// (tests/support/daemon_process.hpp). JSON output is parsed with nlohmann-json and checked
// against what the test did.
//
// Synchronisation is on events: READY=1 from the daemon, a subscriber appearing in
// `info --json` (polled with a deadline), a process exit. No sleeps.
#include "daemon_process.hpp"
#include "shmbusctl_process.hpp"
#include "skip.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sstream>
#include <sys/stat.h>
#include <thread>

using namespace shmbus;
using namespace shmbus::test;
using json = nlohmann::json;

namespace {

// `telemetry` deep enough for a thousand messages to a tail and 4 subscribers; `jobs` a
// single-producer single-consumer queue; `private` has no acl (only root and the daemon's own
// user may open it) and drops when 8 behind.
const std::string kConfig = [] {
    TestChannel telemetry = telemetry_channel();
    telemetry.slot_count = 64;
    telemetry.max_subscribers = 4;
    TestChannel jobs = jobs_channel();
    jobs.max_publishers = 1;
    jobs.max_subscribers = 1;
    TestChannel restricted = telemetry_channel();
    restricted.name = "private";
    restricted.slot_size = 64;
    restricted.overflow = "drop";
    restricted.publishers.clear();
    restricted.subscribers.clear();
    return channels_yaml({telemetry, jobs, restricted});
}();

json channel_in(const json& list, const std::string& name) {
    for (const auto& c : list.at("channels")) {
        if (c.at("name") == name) {
            return c;
        }
    }
    FAIL("no channel '" << name << "' in " << list.dump());
    return {};
}

ClientOptions options_for(const DaemonProcess& d, const std::string& name) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.request_timeout = std::chrono::seconds{30};
    return o;
}

} // namespace

TEST_CASE("shmbusctl status reports the daemon it talks to") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome text = ctl(at(d, {"status"}));
    CHECK(text.code == 0);
    CHECK(text.out.find("PID: " + std::to_string(d.pid())) != std::string::npos);
    CHECK(text.out.find(d.socket_path().native()) != std::string::npos);

    const Outcome j = ctl(at(d, {"status", "--json"}));
    REQUIRE(j.code == 0);
    const json s = j.document();
    CHECK(s.at("pid") == d.pid());
    CHECK(s.at("channels") == 3);
    CHECK(s.at("clients").get<int>() >= 1); // shmbusctl itself
    CHECK(s.at("socket") == d.socket_path().native());
    CHECK(s.at("config_files").at(0) == d.config_path().native());
    CHECK(s.at("segment_bytes").get<std::uint64_t>() > 0);
    CHECK(s.at("protocol_version").get<std::string>().find('.') != std::string::npos);
    CHECK(s.contains("uptime_ms"));
    CHECK(s.contains("state_directory"));
    CHECK(s.contains("daemon_version"));
}

TEST_CASE("shmbusctl list shows every channel in an aligned table and in JSON") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome text = ctl(at(d, {"list", "--interval", "0"}));
    CHECK(text.code == 0);
    const auto lines = text.lines();
    REQUIRE(lines.size() == 6); // header, 3 channels, blank, footer
    CHECK(lines[0].rfind("CHANNEL", 0) == 0);
    CHECK(lines[0].find("PUBLISHED") != std::string::npos);
    CHECK(text.out.find("3 channels listed.") != std::string::npos);
    // Aligned: every row's second column starts where the header's does.
    const auto kind_at = lines[0].find("KIND");
    for (int r = 1; r <= 3; ++r) {
        CHECK(lines[static_cast<std::size_t>(r)].substr(kind_at, 5).find_first_of("qb") == 0);
    }
    CHECK(text.out.find("256B×64") != std::string::npos);

    const Outcome bare = ctl(at(d, {"list", "--no-legend", "--interval", "0"}));
    CHECK(bare.lines().size() == 3);
    CHECK(bare.out.find("CHANNEL") == std::string::npos);

    const Outcome j = ctl(at(d, {"list", "--json", "--interval", "0"}));
    REQUIRE(j.code == 0);
    const json doc = j.document();
    CHECK(doc.at("channels").size() == 3);
    CHECK(doc.at("interval_s").is_null());
    const json t = channel_in(doc, "telemetry");
    CHECK(t.at("kind") == "broadcast");
    CHECK(t.at("overflow") == "block");
    CHECK(t.at("slot_size") == 256);
    CHECK(t.at("slot_count") == 64);
    CHECK(t.at("max_subscribers") == 4);
    CHECK(t.at("published") == 0);
    CHECK(t.at("rate_per_s").is_null()); // one sample: no rate
    CHECK(channel_in(doc, "private").at("overflow") == "drop");

    // Two samples: every channel has a rate.
    const Outcome rated = ctl(at(d, {"list", "--json", "--interval", "0.05"}));
    REQUIRE(rated.code == 0);
    CHECK(channel_in(rated.document(), "jobs").at("rate_per_s").is_number());
}

TEST_CASE("a tail started before pub --count 1000 prints all 1000 and list counts them") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Ctl tail(at(d, {"tail", "telemetry", "--count", "1000"}));
    REQUIRE(wait_for_tails(d, "telemetry", 1));

    const Outcome pub = ctl(at(d, {"pub", "telemetry", "--count", "1000", "--size", "100"}));
    CHECK(pub.code == 0);
    CHECK(pub.out.find("sent 1000 messages") != std::string::npos);

    const Outcome got = tail.finish();
    CHECK(got.code == 0);
    const auto lines = got.lines();
    REQUIRE(lines.size() == 1000);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        // "#SEQ (100 B) shmbusctl pub #00000N ....": consecutive sequences from 0.
        INFO(lines[i]);
        REQUIRE(lines[i].rfind("#" + std::to_string(i) + " (100 B) shmbusctl pub #", 0) == 0);
    }

    const Outcome list = ctl(at(d, {"list", "--json", "--interval", "0"}));
    REQUIRE(list.code == 0);
    const json t = channel_in(list.document(), "telemetry");
    CHECK(t.at("published") == 1000);
    CHECK(t.at("dropped") == 0);
    CHECK(t.at("subscribers") == 0); // the tail detached when it exited

    const Outcome pub_json = ctl(at(d, {"pub", "jobs", "--count", "10", "--json"}));
    REQUIRE(pub_json.code == 0);
    CHECK(pub_json.document().at("messages") == 10);
    CHECK(pub_json.document().at("bytes") == 10 * 64); // default size: min(64, slot)
}

TEST_CASE("binary data published with --hex comes back unchanged through tail") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Ctl hex(at(d, {"tail", "telemetry", "--count", "3", "--format", "hex"}));
    Ctl js(at(d, {"tail", "telemetry", "--count", "3", "--format", "json"}));
    REQUIRE(wait_for_tails(d, "telemetry", 2));

    const Outcome pub =
        ctl(at(d, {"pub", "telemetry", "--hex", "00ff0a5c80", "de ad be ef", "00"}));
    CHECK(pub.code == 0);

    const Outcome h = hex.finish();
    CHECK(h.code == 0);
    CHECK(h.lines() == std::vector<std::string>{"#0 (5 B) 00 ff 0a 5c 80", "#1 (4 B) de ad be ef",
                                                "#2 (1 B) 00"});
    const Outcome j = js.finish();
    CHECK(j.code == 0);
    const auto lines = j.lines();
    REQUIRE(lines.size() == 3);
    const json first = json::parse(lines[0]);
    CHECK(first.at("sequence") == 0);
    CHECK(first.at("size") == 5);
    CHECK(first.at("hex") == "00ff0a5c80");
    CHECK(first.at("text") == "\\x00\\xff\\x0a\\\\\\x80");
    CHECK(json::parse(lines[2]).at("hex") == "00");
}

TEST_CASE("pub sends each line of stdin when given no message") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome pub = ctl(at(d, {"pub", "jobs"}), "first\nsecond\n");
    CHECK(pub.code == 0);
    CHECK(pub.out.find("sent 2 messages") != std::string::npos);
    const Outcome tail = ctl(at(d, {"tail", "jobs", "--count", "2", "--timeout", "30"}));
    CHECK(tail.code == 0);
    CHECK(tail.lines() == std::vector<std::string>{"#0 (5 B) first", "#1 (6 B) second"});
}

TEST_CASE("info and clients show each endpoint with its role, pid, uid and client name") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    auto client = Client::connect(options_for(d, "test-publisher"));
    REQUIRE(client);
    auto pub = client->open_publisher("telemetry");
    REQUIRE(pub);
    Ctl tail(at(d, {"tail", "telemetry", "--count", "5"}));
    REQUIRE(wait_for_tails(d, "telemetry", 1));
    for (int i = 0; i < 5; ++i) {
        const std::byte b{static_cast<unsigned char>(i)};
        REQUIRE(pub->send(std::span<const std::byte>{&b, 1}, std::chrono::seconds{30}));
    }
    CHECK(tail.finish().code == 0);

    const Outcome j = ctl(at(d, {"info", "telemetry", "--json"}));
    REQUIRE(j.code == 0);
    const json info = j.document();
    CHECK(info.at("published") == 5);
    CHECK(info.at("high_water").get<std::uint64_t>() <= 64);
    REQUIRE(info.at("endpoints").size() == 1);
    const json e = info.at("endpoints").at(0);
    CHECK(e.at("role") == "publisher");
    CHECK(e.at("pid") == ::getpid());
    CHECK(e.at("uid") == ::getuid());
    CHECK(e.at("client_name") == "test-publisher");
    CHECK(e.at("lag").is_null());

    const Outcome text = ctl(at(d, {"info", "telemetry"}));
    CHECK(text.code == 0);
    CHECK(text.out.find("test-publisher") != std::string::npos);
    CHECK(text.out.find("Published: 5") != std::string::npos);
    CHECK(text.out.find("1 endpoint attached.") != std::string::npos);

    const Outcome clients = ctl(at(d, {"clients", "--json"}));
    REQUIRE(clients.code == 0);
    bool found = false;
    const json client_list = clients.document();
    for (const auto& c : client_list.at("clients")) {
        if (c.at("name") == "test-publisher") {
            found = true;
            CHECK(c.at("pid") == ::getpid());
            CHECK(c.at("endpoints") == 1);
            CHECK(c.at("channels") == json::array({"telemetry:pub"}));
            CHECK(c.at("connected_since_ms").get<std::int64_t>() > 0);
        }
    }
    CHECK(found);
    const Outcome clients_text = ctl(at(d, {"clients"}));
    CHECK(clients_text.code == 0);
    CHECK(clients_text.out.find("telemetry:pub") != std::string::npos);
}

TEST_CASE("a lagging tail on a drop channel reports exactly what it lost") {
    // `private` (root only; the tests run as root or skip this) drops when 8 behind.
    if (::geteuid() != 0) {
        SHMBUS_SKIP("needs root: 'private' admits only root and the daemon's user");
    }
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    auto client = Client::connect(options_for(d, "test-publisher"));
    REQUIRE(client);
    auto pub = client->open_publisher("private");
    REQUIRE(pub);
    Ctl tail(at(d, {"tail", "private", "--count", "1", "--format", "json"}));
    REQUIRE(wait_for_tails(d, "private", 1));
    // Whether the tail reads before the ring wraps is a race; with the ring lapped many
    // times over it almost always loses some, and when it does it must say so exactly.
    for (int i = 0; i < 1000; ++i) {
        const std::byte b{static_cast<unsigned char>(i)};
        REQUIRE(pub->send(std::span<const std::byte>{&b, 1}, std::chrono::seconds{30}));
    }
    const Outcome got = tail.finish();
    CHECK(got.code == 0);
    const auto lines = got.lines();
    REQUIRE(!lines.empty());
    const json last = json::parse(lines.back());
    if (lines.size() == 2) {
        const json loss = json::parse(lines[0]);
        CHECK(loss.at("lost") == last.at("sequence"));
        CHECK(loss.at("before_sequence") == last.at("sequence"));
        CHECK(got.err.find("lost") != std::string::npos);
    } else {
        CHECK(last.at("sequence") == 0);
    }
}

TEST_CASE("stats prints one sample per interval with rates when piped") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome text = ctl(at(d, {"stats", "--interval", "0.05", "--count", "2"}));
    CHECK(text.code == 0);
    std::size_t headers = 0;
    for (const auto& l : text.lines()) {
        headers += l.rfind("CHANNEL", 0) == 0 ? 1 : 0;
    }
    CHECK(headers == 2);
    CHECK(text.out.find("\x1b[") == std::string::npos); // no escapes into a pipe

    const Outcome j = ctl(at(d, {"stats", "--interval", "0.05", "--count", "2", "--json"}));
    REQUIRE(j.code == 0);
    const auto lines = j.lines();
    REQUIRE(lines.size() == 2);
    for (const auto& l : lines) {
        const json sample = json::parse(l);
        CHECK(sample.at("channels").size() == 3);
        CHECK(sample.at("channels").at(0).at("rate_per_s").is_number());
        CHECK(sample.at("time_ms").get<std::int64_t>() > 0);
    }
}

TEST_CASE("ping, reload and version answer in text and JSON") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome ping = ctl(at(d, {"ping", "--count", "2"}));
    CHECK(ping.code == 0);
    CHECK(ping.lines().size() == 2);
    CHECK(ping.out.find("reply from shmbusd") != std::string::npos);
    const Outcome ping_json = ctl(at(d, {"ping", "--json"}));
    CHECK(ping_json.document().at("round_trip_us").size() == 1);

    const Outcome reload = ctl(at(d, {"reload", "--json"}));
    CHECK(reload.code == 0);
    CHECK(reload.document().at("reloaded") == true);

    const Outcome version = ctl({"version"});
    CHECK(version.code == 0);
    CHECK(version.out.rfind("shmbusctl ", 0) == 0);
    const Outcome version_json = ctl({"version", "--json"});
    CHECK(version_json.document().at("layout_version") == kLayoutVersion);
    CHECK(version_json.document().at("library") == library_version());
}

TEST_CASE("shmbusctl exits 2 on a usage error") {
    for (const auto& args : std::vector<std::vector<std::string>>{{},
                                                                  {"list", "--bogus"},
                                                                  {"info"},
                                                                  {"tail", "x", "--format", "yaml"},
                                                                  {"frobnicate"}}) {
        const Outcome o = ctl(args);
        INFO(o.err);
        CHECK(o.code == 2);
        CHECK(!o.err.empty());
    }
}

TEST_CASE("shmbusctl exits 3 and names the socket when no daemon listens") {
    TempDir dir;
    const std::string socket = (dir.path() / "none.sock").native();
    for (const auto& cmd : {"status", "list", "clients"}) {
        const Outcome o = ctl({"--socket", socket, cmd});
        CHECK(o.code == 3);
        CHECK(o.err.find(socket) != std::string::npos);
    }
    // SHMBUS_SOCKET is the default.
    const Outcome env = Ctl({"info", "telemetry"}, {}, std::nullopt, socket).finish();
    CHECK(env.code == 3);
    CHECK(env.err.find(socket) != std::string::npos);
}

TEST_CASE("shmbusctl exits 4 for a channel that does not exist") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"info", "nonesuch"}, {"tail", "nonesuch"}, {"pub", "nonesuch", "x"}}) {
        const Outcome o = ctl(at(d, args));
        CHECK(o.code == 4);
        CHECK(o.err.find("nonesuch") != std::string::npos);
    }
}

TEST_CASE("shmbusctl exits 77 when the channel's acl or the admin list refuses the user") {
    if (::geteuid() != 0) {
        SHMBUS_SKIP("needs root to run shmbusctl as another uid");
    }
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    REQUIRE(::chmod(d.dir().c_str(), 0755) == 0); // nobody reaches the socket in it
    constexpr uid_t kNobody = 65534;
    // Not the build tree's shmbusctl: a checkout under a 0700 home is out of nobody's reach.
    const StagedProgram shmbusctl = staged_shmbusctl();
    if (auto why =
            unreachable_by(kNobody, {{shmbusctl.program(), X_OK}, {d.socket_path(), W_OK}})) {
        SHMBUS_SKIP(*why);
    }
    const OtherUid nobody{kNobody, shmbusctl};
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"tail", "private"}, {"pub", "private", "x"}, {"reload"}}) {
        const Outcome o = Ctl(at(d, args), {}, nobody).finish();
        INFO(o.err);
        CHECK(o.code == 77);
        CHECK(o.err.find("permission_denied") != std::string::npos);
    }
    // Channels open to everyone stay open to nobody.
    const Outcome ok = Ctl(at(d, {"pub", "telemetry", "x"}), {}, nobody).finish();
    CHECK(ok.code == 0);
}

TEST_CASE("check-config gives shmbusd --check-config's answer and exits 78 on errors") {
    TempDir dir;
    const auto good = dir.path() / "good.yaml";
    const auto bad = dir.path() / "bad.yaml";
    write_file(good, kConfig);
    write_file(bad, "channels:\n  - name: x\n    kind: queue\n    slot_sise: 3\n");

    const Outcome ok = ctl({"check-config", good.native()});
    CHECK(ok.code == 0);
    CHECK(ok.err == good.native() + ": configuration is valid (3 channels)\n");

    const Outcome no = ctl({"check-config", bad.native()});
    CHECK(no.code == 78);
    CHECK(no.err.find(bad.native() + ":4:5: error: unknown key 'slot_sise' (did you mean "
                                     "'slot_size'?)") != std::string::npos);

    // The same function, so the same words as the daemon's.
    std::string daemon_err;
    const Exit daemon = run_shmbusd({"--check-config", "--config", bad.native()}, &daemon_err);
    CHECK(daemon.code == 78);
    CHECK(no.err == daemon_err);

    const Outcome j = ctl({"check-config", bad.native(), "--json"});
    CHECK(j.code == 78);
    const json doc = j.document();
    CHECK(doc.at("valid") == false);
    REQUIRE(doc.at("errors").size() >= 1);
    bool located = false;
    for (const auto& e : doc.at("errors")) {
        located =
            located || (e.at("line") == 4 && e.at("column") == 5 && e.at("file") == bad.native());
    }
    CHECK(located);
    CHECK(ctl({"check-config", good.native(), "--json"}).document().at("channels") == 3);
    CHECK(ctl({"check-config", (dir.path() / "missing.yaml").native()}).code == 78);
}
