// NATS bridges (NatsBridgeRunner) between real shmbusd processes and a real nats-server
// started by each test on a free loopback port: an export read by a plain libnats
// subscriber, an import fed by a plain libnats publisher, two daemons through one server
// (stamped messages, none lost or reordered), the server killed and restarted mid-stream
// (the bridges reconnect and the loss is counted exactly), and a durable JetStream import
// that loses and repeats nothing across a restart of the bridge; three daemons through a
// three-server cluster that loses a server mid-stream, core NATS and with a durable
// JetStream import; a glob export. Skipped where nats-server is not installed.
#include "bridge_test.hpp"
#include "daemon_process.hpp"
#include "nats_client.hpp"
#include "nats_server.hpp"
#include "skip.hpp"
#include "test_support.hpp"

#include "gateway/nats_bridge.hpp"

#include <shmbus/client.hpp>

#include <nats/nats.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::gateway;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kSlot = 128;

std::string channel(const std::string& name, std::uint32_t slots = 1024) {
    return "  - name: " + name + "\n    kind: broadcast\n    slot_size: " + std::to_string(kSlot) +
           "\n    slot_count: " + std::to_string(slots) +
           "\n    overflow: block\n    max_publishers: 2\n    max_subscribers: 4\n"
           "    acl:\n      publish:   {users: [\"*\"]}\n      subscribe: {users: [\"*\"]}\n";
}

/// Lines the bridges log, kept for a failure message.
struct Lines {
    std::mutex mu;
    std::vector<std::string> lines;
    std::function<void(std::string_view)> sink() {
        return [this](std::string_view l) {
            std::lock_guard lock{mu};
            lines.emplace_back(l);
        };
    }
    std::string text() {
        std::lock_guard lock{mu};
        std::string t;
        for (const auto& l : lines) {
            t += l + "\n";
        }
        return t;
    }
};

bool connected(const NatsBridgeRunner& r) {
    const auto s = r.status();
    return s.bridge.state == BridgeState::connected && !s.bridge.session.streams.empty();
}

StreamStats stream(const NatsBridgeRunner& r, bool exporting) {
    for (auto& s : r.status().bridge.session.streams) {
        if (s.exporting == exporting) {
            return s;
        }
    }
    return {};
}

NatsBridgeConfig bridge(const std::string& name, const NatsServer& server) {
    NatsBridgeConfig c;
    c.name = name;
    c.servers = {server.url()};
    c.reconnect_wait = 50ms;
    return c;
}

/// Publishes messages stamped 0..count-1 into `name` on `daemon`.
void publish_stamped(const DaemonProcess& daemon, const std::string& name, std::uint64_t count) {
    auto app = Client::connect(options_for(daemon));
    REQUIRE(app.has_value());
    auto pub = app.value().open_publisher(name);
    REQUIRE(pub.has_value());
    std::vector<std::byte> buf(kSlot);
    for (std::uint64_t id = 0; id < count; ++id) {
        stamp(buf, id);
        REQUIRE(pub.value().send(buf, 60s).has_value());
    }
}

} // namespace

TEST_CASE("NATS bridge configurations are checked, naming the bridge and the entry",
          "[gateway][nats]") {
    NatsBridgeConfig c;
    c.name = "fleet";
    c.servers = {"nats://127.0.0.1:4222"};
    c.exports = {{"telemetry", "shmbus.robot1.telemetry"}};
    c.imports = {{"shmbus.*.telemetry", "fleet/telemetry", ""}};
    REQUIRE(validate(c).has_value());

    auto bad = c;
    bad.servers = {"tcp://127.0.0.1:4222"};
    auto r = validate(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().detail.find("'fleet'") != std::string::npos);
    CHECK(r.error().detail.find("tcp://127.0.0.1:4222") != std::string::npos);

    bad = c;
    bad.exports = {{"camera/*", "shmbus.camera"}};
    r = validate(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().detail.find("camera/*") != std::string::npos);

    bad = c;
    bad.exports = {{"telemetry", "shmbus.*"}};
    r = validate(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().detail.find("shmbus.*") != std::string::npos);

    bad = c;
    bad.imports = {{"jobs", "jobs", "ground.jobs"}};
    r = validate(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().detail.find("ground.jobs") != std::string::npos);

    bad = c;
    bad.servers.clear();
    r = validate(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().detail.find("no server") != std::string::npos);
}

TEST_CASE("an export reaches a plain NATS subscriber with its sequence in a header, and "
          "says how far it got when idle",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    INFO(why);
    DaemonProcess robot{"channels:\n" + channel("telemetry")};
    REQUIRE(robot.start());

    PlainNats far{server.url()};
    natsSubscription* sub = nullptr;
    REQUIRE(natsConnection_SubscribeSync(&sub, far.nc, "shmbus.robot1.telemetry") == NATS_OK);
    REQUIRE(natsConnection_Flush(far.nc) == NATS_OK);

    Lines lines;
    auto config = bridge("fleet", server);
    config.exports = {{"telemetry", "shmbus.robot1.telemetry"}};
    NatsBridgeRunner runner{config, options_for(robot), "robot1", 7, lines.sink()};
    runner.start();
    REQUIRE(wait_until([&] { return connected(runner); }));
    INFO(lines.text());

    constexpr std::uint64_t kCount = 2000;
    publish_stamped(robot, "telemetry", kCount);
    // An idle export's heartbeat: "NODE INCARNATION CHANNEL LAST".
    const auto idle = [](natsMsg* m) -> std::optional<std::string> {
        const char* value = nullptr;
        if (natsMsgHeader_Get(m, "Shmbus-Idle", &value) != NATS_OK) {
            return std::nullopt;
        }
        return std::string{value};
    };
    for (std::uint64_t id = 0; id < kCount;) {
        natsMsg* m = nullptr;
        REQUIRE(natsSubscription_NextMsg(&m, sub, 60000) == NATS_OK);
        if (const auto heartbeat = idle(m)) {
            // The export fell idle for a moment (a slow machine) and said how far it got:
            // a plain subscriber skips such messages.
            CHECK(*heartbeat == "robot1 7 telemetry " + std::to_string(id));
            CHECK(natsMsg_GetDataLength(m) == 0);
            natsMsg_Destroy(m);
            continue;
        }
        const auto data = std::as_bytes(
            std::span{natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))});
        CHECK(check_stamp(data) == id);
        const char* origin = nullptr;
        REQUIRE(natsMsgHeader_Get(m, "Shmbus-Origin", &origin) == NATS_OK);
        CHECK(std::string{origin} == "robot1 7 telemetry " + std::to_string(id + 1));
        natsMsg_Destroy(m);
        ++id;
    }
    // Idle now, the export says how far it got, so that an importer that missed the last
    // messages counts them.
    natsMsg* last = nullptr;
    REQUIRE(natsSubscription_NextMsg(&last, sub, 60000) == NATS_OK);
    CHECK(idle(last) == "robot1 7 telemetry " + std::to_string(kCount));
    CHECK(natsMsg_GetDataLength(last) == 0);
    natsMsg_Destroy(last);
    const auto s = stream(runner, true);
    CHECK(s.messages == kCount);
    CHECK(s.bytes == kCount * kSlot);
    CHECK(s.lost == 0);
    natsSubscription_Destroy(sub);
    runner.stop();
    CHECK(runner.status().bridge.state == BridgeState::stopped);
}

TEST_CASE("an import publishes what a plain NATS publisher sends, and never its own exports",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    DaemonProcess ground{"channels:\n" + channel("jobs")};
    REQUIRE(ground.start());
    auto app = Client::connect(options_for(ground));
    REQUIRE(app.has_value());
    auto sub = app.value().open_subscriber("jobs");
    REQUIRE(sub.has_value());

    Lines lines;
    auto config = bridge("fleet", server);
    config.imports = {{"shmbus.ground.>", "jobs", ""}};
    NatsBridgeRunner runner{config, options_for(ground), "ground", 1, lines.sink()};
    runner.start();
    REQUIRE(wait_until([&] { return connected(runner); }));
    INFO(lines.text());

    PlainNats far{server.url()};
    constexpr std::uint64_t kCount = 2000;
    std::vector<std::byte> buf(kSlot);
    for (std::uint64_t id = 0; id < kCount; ++id) {
        stamp(buf, id);
        natsMsg* m = nullptr;
        REQUIRE(natsMsg_Create(&m, "shmbus.ground.jobs", nullptr,
                               reinterpret_cast<const char*>(buf.data()),
                               static_cast<int>(buf.size())) == NATS_OK);
        if (id % 2 == 1) {
            // As if this daemon had exported it itself: the import drops it (loop prevention).
            const std::string origin = "ground 1 jobs " + std::to_string(id / 2 + 1);
            natsMsgHeader_Set(m, "Shmbus-Origin", origin.c_str());
        }
        REQUIRE(natsConnection_PublishMsg(far.nc, m) == NATS_OK);
        natsMsg_Destroy(m);
    }
    REQUIRE(natsConnection_Flush(far.nc) == NATS_OK);
    for (std::uint64_t id = 0; id < kCount; id += 2) {
        auto r = sub.value().receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
    }
    REQUIRE(wait_until([&] { return runner.status().looped == kCount / 2; }));
    const auto s = stream(runner, false);
    CHECK(s.messages == kCount / 2);
    CHECK(s.lost == 0);
    CHECK(sub.value().try_receive_copy(buf).code() == Errc::would_block);
}

namespace {

/// Two daemons, A exporting `telemetry` and B importing it as `fleet/telemetry`, through
/// `server`.
struct Pair {
    DaemonProcess a{"channels:\n" + channel("telemetry")};
    DaemonProcess b{"channels:\n" + channel("fleet/telemetry")};
    Lines lines;
    std::optional<NatsBridgeRunner> exporter;
    std::optional<NatsBridgeRunner> importer;

    explicit Pair(const NatsServer& server) {
        REQUIRE(a.start());
        REQUIRE(b.start());
        auto ea = bridge("fleet", server);
        ea.exports = {{"telemetry", "shmbus.a.telemetry"}};
        auto ib = bridge("fleet", server);
        ib.imports = {{"shmbus.*.telemetry", "fleet/telemetry", ""}};
        importer.emplace(ib, options_for(b), "b", 2, lines.sink());
        importer->start();
        REQUIRE(wait_until([&] { return connected(*importer); }));
        exporter.emplace(ea, options_for(a), "a", 1, lines.sink());
        exporter->start();
        REQUIRE(wait_until([&] { return connected(*exporter); }));
    }
};

} // namespace

TEST_CASE("two daemons through one NATS server: 100,000 stamped messages, none lost or "
          "reordered",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    Pair pair{server};
    INFO(pair.lines.text());

    auto b_app = Client::connect(options_for(pair.b));
    REQUIRE(b_app.has_value());
    auto sub = b_app.value().open_subscriber("fleet/telemetry");
    REQUIRE(sub.has_value());
    const std::uint64_t count = scaled(100'000);
    std::thread publisher{[&] {
        auto a_app = Client::connect(options_for(pair.a));
        auto pub = a_app.value().open_publisher("telemetry");
        std::vector<std::byte> out(kSlot);
        for (std::uint64_t id = 0; id < count; ++id) {
            stamp(out, id);
            if (!pub.value().send(out, 60s).has_value()) {
                return;
            }
        }
    }};
    std::vector<std::byte> buf(kSlot);
    std::uint64_t received = 0;
    std::uint64_t out_of_order = 0;
    for (std::uint64_t id = 0; id < count; ++id) {
        auto r = sub.value().receive_copy(buf, 60s);
        if (!r.has_value()) {
            break;
        }
        out_of_order += check_stamp(std::span{buf}.first(r.value().size)) != id ? 1 : 0;
        ++received;
    }
    publisher.join();
    CHECK(received == count);
    CHECK(out_of_order == 0);
    CHECK(stream(*pair.exporter, true).lost == 0);
    CHECK(stream(*pair.importer, false).lost == 0);
    CHECK(stream(*pair.importer, false).messages == count);
}

TEST_CASE("a NATS server killed and restarted mid-stream: the bridges reconnect, and every "
          "message arrives or is counted lost once, where the subscribers see it",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    Pair pair{server};

    auto b_app = Client::connect(options_for(pair.b));
    REQUIRE(b_app.has_value());
    auto sub = b_app.value().open_subscriber("fleet/telemetry");
    REQUIRE(sub.has_value());
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> published{0};
    std::thread publisher{[&] {
        auto a_app = Client::connect(options_for(pair.a));
        auto pub = a_app.value().open_publisher("telemetry");
        std::vector<std::byte> out(kSlot);
        for (std::uint64_t id = 0; !stop.load(); ++id) {
            stamp(out, id);
            if (!pub.value().send(out, 60s).has_value()) {
                return;
            }
            published.store(id + 1);
        }
    }};
    const auto stop_publisher = [&] {
        stop = true;
        if (publisher.joinable()) {
            publisher.join();
        }
    };

    // Phases: 5,000 messages through the first server; the server killed and started again;
    // 5,000 messages published after it was back; then the publisher stops, and the test
    // waits until every message published has arrived or shows as lost to the subscriber
    // (what was lost after the last message that arrived shows through the exporter's
    // heartbeat).
    std::vector<std::byte> buf(kSlot);
    std::uint64_t received = 0;
    std::uint64_t last = 0;
    std::uint64_t lost_before = 0; // the lost_before of the messages received
    bool ordered = true;
    std::optional<std::uint64_t> resumed_at; // the first id published after the restart
    std::uint64_t after_restart = 0;
    std::optional<std::uint64_t> total;
    auto progress_deadline = generous_deadline();
    for (;;) {
        auto r = sub.value().receive_copy(buf, 50ms);
        if (r.has_value()) {
            const std::uint64_t id = check_stamp(std::span{buf}.first(r.value().size));
            REQUIRE(id != UINT64_MAX);
            ordered = ordered && (received == 0 || id > last);
            last = id;
            ++received;
            lost_before += r.value().lost_before;
            progress_deadline = generous_deadline();
            if (!resumed_at && received == 5000) {
                server.stop();
                REQUIRE(server.start(&why));
                resumed_at = published.load();
            } else if (resumed_at && !total && id >= *resumed_at && ++after_restart == 5000) {
                stop_publisher();
                total = published.load();
            }
            continue;
        }
        REQUIRE(r.code() == Errc::timed_out);
        if (total && received + sub.value().lost() == *total) {
            break;
        }
        if (std::chrono::steady_clock::now() > progress_deadline) {
            stop_publisher();
            const auto e = stream(*pair.exporter, true);
            const auto i = stream(*pair.importer, false);
            FAIL("nothing arrived for "
                 << kDaemonDeadline.count() << " s: received " << received << ", lost "
                 << sub.value().lost() << ", published " << published.load() << "; exporter sent "
                 << e.messages << " and lost " << e.lost << ", importer published " << i.messages
                 << " and lost " << i.lost << "\n"
                 << pair.lines.text());
        }
    }
    INFO(pair.lines.text());
    CHECK(ordered);
    CHECK(pair.exporter->status().bridge.reconnects >= 1);
    CHECK(pair.importer->status().bridge.reconnects >= 1);
    // What the importer counted is what its subscribers were shown, message for message: each
    // message published either arrived or was counted lost exactly once.
    REQUIRE(wait_until([&] { return stream(*pair.importer, false).messages == received; }));
    const auto imported = stream(*pair.importer, false);
    CHECK(imported.lost == sub.value().lost());
    CHECK(received + imported.lost == *total);
    CHECK(lost_before <= sub.value().lost());
    // The exporter's own loss (publishes libnats refused while the server was away) is part
    // of what the importer counted.
    CHECK(stream(*pair.exporter, true).lost <= imported.lost);
}

TEST_CASE("a durable JetStream import loses and repeats nothing across a restart of the bridge",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program, /*jetstream=*/true};
    std::string why;
    REQUIRE(server.start(&why));
    INFO(why);
    DaemonProcess ground{"channels:\n" + channel("jobs", 4096)};
    REQUIRE(ground.start());

    PlainNats far{server.url()};
    jsCtx* js = nullptr;
    REQUIRE(natsConnection_JetStream(&js, far.nc, nullptr) == NATS_OK);
    add_jobs_stream(server.url());
    jsErrCode code{};

    const auto publish = [&](std::uint64_t from, std::uint64_t to) {
        std::vector<std::byte> out(kSlot);
        for (std::uint64_t id = from; id < to; ++id) {
            stamp(out, id);
            natsMsg* m = nullptr;
            REQUIRE(natsMsg_Create(&m, "shmbus.ground.jobs", nullptr,
                                   reinterpret_cast<const char*>(out.data()),
                                   static_cast<int>(out.size())) == NATS_OK);
            jsPubAck* ack = nullptr;
            REQUIRE(js_PublishMsg(&ack, js, m, nullptr, &code) == NATS_OK);
            jsPubAck_Destroy(ack);
            natsMsg_Destroy(m);
        }
    };

    auto app = Client::connect(options_for(ground));
    REQUIRE(app.has_value());
    auto sub = app.value().open_subscriber("jobs");
    REQUIRE(sub.has_value());
    std::vector<std::byte> buf(kSlot);
    std::uint64_t next = 0;
    const auto receive = [&](std::uint64_t until) {
        while (next < until) {
            auto r = sub.value().receive_copy(buf, 60s);
            REQUIRE(r.has_value());
            REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == next);
            ++next;
        }
    };

    Lines lines;
    auto config = bridge("fleet", server);
    config.imports = {{"shmbus.ground.jobs", "jobs", "ground-jobs"}};
    publish(0, 1000); // before the bridge ever ran: the durable consumer starts at the stream's
                      // beginning
    {
        NatsBridgeRunner runner{config, options_for(ground), "ground", 1, lines.sink()};
        runner.start();
        REQUIRE(wait_until([&] { return connected(runner); }));
        publish(1000, 2000);
        receive(2000);
        runner.stop();
    }
    publish(2000, 3000); // while no bridge runs: kept by the stream for the durable consumer
    {
        NatsBridgeRunner runner{config, options_for(ground), "ground", 2, lines.sink()};
        runner.start();
        REQUIRE(wait_until([&] { return connected(runner); }));
        INFO(lines.text());
        receive(3000);
        REQUIRE(wait_until([&] { return stream(runner, false).messages == 1000; }));
        CHECK(stream(runner, false).lost == 0);
        CHECK(runner.status().duplicates == 0);
        runner.stop();
    }
    CHECK(next == 3000);
    CHECK(sub.value().try_receive_copy(buf).code() == Errc::would_block); // nothing repeated
    jsCtx_Destroy(js);
}

namespace {

/// Publishes message `id` (stamped in `out`) to the jobs stream as an exporting daemon would
/// (origin and sequence headers, Nats-Msg-Id), retrying until the stream acknowledges it;
/// false if `deadline` passes first.
bool publish_acked(jsCtx* js, const std::vector<std::byte>& out, std::uint64_t id,
                   std::chrono::steady_clock::time_point deadline) {
    const std::string seq = std::to_string(id + 1);
    const std::string msg_id = "far/1/jobs/" + seq;
    const std::string origin = "far 1 jobs " + seq;
    for (;;) {
        natsMsg* m = nullptr;
        natsMsg_Create(&m, "shmbus.ground.jobs", nullptr, reinterpret_cast<const char*>(out.data()),
                       static_cast<int>(out.size()));
        natsMsgHeader_Set(m, "Shmbus-Origin", origin.c_str());
        natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id.c_str());
        jsPubAck* ack = nullptr;
        jsErrCode code{};
        const natsStatus st = js_PublishMsg(&ack, js, m, nullptr, &code);
        jsPubAck_Destroy(ack);
        natsMsg_Destroy(m);
        if (st == NATS_OK) {
            return true;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
    }
}

} // namespace

TEST_CASE("a durable JetStream import loses nothing when the NATS server is killed and "
          "restarted mid-stream",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program, /*jetstream=*/true};
    std::string why;
    REQUIRE(server.start(&why));
    DaemonProcess ground{"channels:\n" + channel("jobs", 4096)};
    REQUIRE(ground.start());
    add_jobs_stream(server.url());
    auto app = Client::connect(options_for(ground));
    REQUIRE(app.has_value());
    auto sub = app.value().open_subscriber("jobs");
    REQUIRE(sub.has_value());

    Lines lines;
    auto config = bridge("fleet", server);
    config.imports = {{"shmbus.ground.jobs", "jobs", "ground-jobs"}};
    config.ack_wait = 1000ms;
    NatsBridgeRunner runner{config, options_for(ground), "ground", 1, lines.sink()};
    runner.start();
    REQUIRE(wait_until([&] { return connected(runner); }));

    // The far side publishes as an exporting daemon would (origin and sequence headers), and
    // retries each message until the stream acknowledged it (Nats-Msg-Id de-duplicates).
    const std::uint64_t count = 20000;
    std::atomic<std::uint64_t> published{0};
    std::atomic<bool> failed{false};
    std::thread publisher{[&] {
        natsOptions* opts = nullptr;
        natsOptions_Create(&opts);
        natsOptions_SetURL(opts, server.url().c_str());
        natsOptions_SetMaxReconnect(opts, -1);
        natsOptions_SetReconnectWait(opts, 50);
        natsConnection* nc = nullptr;
        if (natsConnection_Connect(&nc, opts) != NATS_OK) {
            failed = true;
            return;
        }
        jsCtx* js = nullptr;
        natsConnection_JetStream(&js, nc, nullptr);
        std::vector<std::byte> out(kSlot);
        const auto deadline = generous_deadline();
        for (std::uint64_t id = 0; id < count && !failed; ++id) {
            stamp(out, id);
            if (!publish_acked(js, out, id, deadline)) {
                failed = true;
                break;
            }
            published = id + 1;
        }
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        natsOptions_Destroy(opts);
    }};

    std::vector<std::byte> buf(kSlot);
    std::uint64_t next = 0;
    bool in_order = true;
    while (next < count) {
        auto r = sub.value().receive_copy(buf, 60s);
        if (!r.has_value()) {
            break;
        }
        in_order = in_order && check_stamp(std::span{buf}.first(r.value().size)) == next;
        ++next;
        if (next == count / 4) {
            server.stop();
            REQUIRE(server.start(&why));
        }
    }
    publisher.join();
    INFO(lines.text());
    CHECK_FALSE(failed);
    CHECK(next == count);
    CHECK(in_order);
    CHECK(stream(runner, false).lost == 0);
    CHECK(runner.status().bridge.reconnects >= 1);
    runner.stop();
}

TEST_CASE("a JetStream export into a stream, read back by a durable import on another daemon",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program, /*jetstream=*/true};
    std::string why;
    REQUIRE(server.start(&why));
    DaemonProcess robot{"channels:\n" + channel("telemetry")};
    REQUIRE(robot.start());
    DaemonProcess ground{"channels:\n" + channel("jobs", 4096)};
    REQUIRE(ground.start());
    add_jobs_stream(server.url());
    Lines lines;
    auto ec = bridge("fleet", server);
    ec.jetstream = true;
    ec.exports = {{"telemetry", "shmbus.ground.jobs"}};
    NatsBridgeRunner exporter{ec, options_for(robot), "robot", 1, lines.sink()};
    exporter.start();
    REQUIRE(wait_until([&] { return connected(exporter); }));

    const std::uint64_t count = 10000;
    publish_stamped(robot, "telemetry", count);
    // Published before any importer existed: the stream holds them for the durable consumer.
    REQUIRE(wait_until([&] { return stream(exporter, true).messages == count; }));

    auto ground_app = Client::connect(options_for(ground));
    REQUIRE(ground_app.has_value());
    auto sub = ground_app.value().open_subscriber("jobs");
    REQUIRE(sub.has_value());
    auto ic = bridge("fleet", server);
    ic.imports = {{"shmbus.ground.jobs", "jobs", "ground-jobs"}};
    NatsBridgeRunner importer{ic, options_for(ground), "ground", 1, lines.sink()};
    importer.start();
    std::vector<std::byte> buf(kSlot);
    for (std::uint64_t id = 0; id < count; ++id) {
        auto r = sub.value().receive_copy(buf, 60s);
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
    }
    INFO(lines.text());
    CHECK(stream(exporter, true).lost == 0);
    CHECK(stream(importer, false).lost == 0);
    CHECK(importer.status().duplicates == 0);
}

namespace {

/// What one subscriber of a stamped stream saw, filled by its own thread (no Catch2 there).
struct Ledger {
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> last{0}; ///< the last id received
    std::uint64_t first{0};             ///< the first id received: the path was open from it
    std::uint64_t lost{0};              ///< the subscriber's own count, when it finished
    std::uint64_t lost_before{0};       ///< the sum of lost_before of the messages received
    bool ordered{true};
    bool complete{false}; ///< every id from `first` to `total` received or counted lost
    std::string failure;
};

/// Receives stamped messages on `sub` until, once `total` is known (non-zero), every id from
/// the first one received up to it has arrived or been counted lost; or until nothing arrived
/// for kDaemonDeadline.
void follow(Subscriber& sub, Ledger& ledger, const std::atomic<std::uint64_t>& total) {
    std::vector<std::byte> buf(kSlot);
    auto progress_deadline = generous_deadline();
    for (;;) {
        auto r = sub.receive_copy(buf, 50ms);
        if (r.has_value()) {
            const std::uint64_t id = check_stamp(std::span{buf}.first(r.value().size));
            const std::uint64_t n = ledger.received.load();
            if (n == 0) {
                ledger.first = id;
            }
            ledger.ordered = ledger.ordered && (n == 0 || id > ledger.last.load());
            ledger.lost_before += r.value().lost_before;
            ledger.last = id;
            ledger.received = n + 1;
            progress_deadline = generous_deadline();
            continue;
        }
        if (r.code() != Errc::timed_out) {
            ledger.failure = r.error().message();
            return;
        }
        const std::uint64_t t = total.load();
        if (t != 0 && ledger.received.load() > 0 &&
            ledger.received.load() + sub.lost() == t - ledger.first) {
            ledger.lost = sub.lost();
            ledger.complete = true;
            return;
        }
        if (std::chrono::steady_clock::now() > progress_deadline) {
            ledger.lost = sub.lost();
            ledger.failure = "nothing arrived for " + std::to_string(kDaemonDeadline.count()) +
                             " s: received " + std::to_string(ledger.received.load()) + ", lost " +
                             std::to_string(ledger.lost) + ", total " + std::to_string(t);
            return;
        }
    }
}

} // namespace

TEST_CASE("three daemons through a three-server cluster: a server killed mid-stream, its "
          "client fails over to a server it learnt from the cluster, every message arrives or "
          "is counted lost once, and the local bus is not disturbed",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsCluster cluster{*program};
    INFO(cluster.problem());
    REQUIRE(cluster.problem().empty());

    // a exports its telemetry; b and c import every robot's. Each bridge is given one seed,
    // its own server, and learns the other two from the cluster.
    DaemonProcess a{"channels:\n" + channel("telemetry")};
    DaemonProcess b{"channels:\n" + channel("fleet/telemetry")};
    DaemonProcess c{"channels:\n" + channel("fleet/telemetry")};
    REQUIRE(a.start());
    REQUIRE(b.start());
    REQUIRE(c.start());
    Lines lines;
    auto ea = bridge("fleet", cluster.at(0));
    ea.exports = {{"telemetry", "shmbus.a.telemetry"}};
    auto ib = bridge("fleet", cluster.at(1));
    ib.imports = {{"shmbus.*.telemetry", "fleet/telemetry", ""}};
    auto ic = bridge("fleet", cluster.at(2));
    ic.imports = ib.imports;
    NatsBridgeRunner importer_b{ib, options_for(b), "b", 1, lines.sink()};
    NatsBridgeRunner importer_c{ic, options_for(c), "c", 1, lines.sink()};
    NatsBridgeRunner exporter{ea, options_for(a), "a", 1, lines.sink()};
    importer_b.start();
    importer_c.start();
    exporter.start();
    // Each knows the whole cluster: its server is routed to the other two.
    for (const NatsBridgeRunner* r : {&exporter, &importer_b, &importer_c}) {
        REQUIRE(wait_until([&] { return connected(*r) && r->status().known_servers.size() >= 3; }));
    }
    INFO(lines.text());

    auto a_app = Client::connect(options_for(a));
    auto b_app = Client::connect(options_for(b));
    auto c_app = Client::connect(options_for(c));
    REQUIRE((a_app.has_value() && b_app.has_value() && c_app.has_value()));
    auto local_sub = a_app.value().open_subscriber("telemetry"); // a's own bus
    auto b_sub = b_app.value().open_subscriber("fleet/telemetry");
    auto c_sub = c_app.value().open_subscriber("fleet/telemetry");
    REQUIRE((local_sub.has_value() && b_sub.has_value() && c_sub.has_value()));

    std::atomic<bool> stop{false};
    std::atomic<bool> send_failed{false};
    std::atomic<std::uint64_t> published{0};
    std::atomic<std::uint64_t> total{0};
    std::thread publisher{[&] {
        auto app = Client::connect(options_for(a));
        auto pub = app.value().open_publisher("telemetry");
        std::vector<std::byte> out(kSlot);
        for (std::uint64_t id = 0; !stop.load(); ++id) {
            stamp(out, id);
            if (!pub.value().send(out, 60s).has_value()) {
                send_failed = true;
                return;
            }
            published.store(id + 1);
        }
    }};
    Ledger local;
    Ledger at_b;
    Ledger at_c;
    std::thread follow_local{[&] { follow(local_sub.value(), local, total); }};
    std::thread follow_b{[&] { follow(b_sub.value(), at_b, total); }};
    std::thread follow_c{[&] { follow(c_sub.value(), at_c, total); }};
    const auto finish = [&] {
        stop = true;
        if (publisher.joinable()) {
            publisher.join();
        }
        total = published.load();
        for (std::thread* t : {&follow_local, &follow_b, &follow_c}) {
            if (t->joinable()) {
                t->join();
            }
        }
    };

    // 2,000 messages through the whole cluster, then b's server dies; b goes on through
    // another once 2,000 more published after the loss have reached it.
    const bool flowing = wait_until([&] { return at_b.received >= 2000 && at_c.received >= 2000; });
    if (!flowing) {
        finish();
        FAIL("the stream did not reach b and c: b " << at_b.received << ", c " << at_c.received);
    }
    const std::string lost_server = cluster.at(1).url();
    cluster.at(1).stop();
    const std::uint64_t killed_at = published.load();
    const bool failed_over =
        wait_until([&] { return at_b.last >= killed_at + 2000 && at_c.last >= killed_at + 2000; });
    finish();
    REQUIRE(failed_over);

    for (const Ledger* l : {&local, &at_b, &at_c}) {
        INFO(l->failure);
        CHECK(l->complete);
        CHECK(l->ordered);
    }
    CHECK_FALSE(send_failed);
    // The local bus: every message, none lost, the publisher never refused.
    CHECK(local.first == 0);
    CHECK(local.received == total);
    CHECK(local.lost == 0);
    // b failed over, to a server it learnt from the cluster; c's server never went away.
    const auto b_status = importer_b.status();
    CHECK(b_status.bridge.reconnects >= 1);
    CHECK(b_status.bridge.peer != lost_server);
    CHECK(importer_c.status().bridge.reconnects == 0);
    CHECK(exporter.status().bridge.reconnects == 0);
    // What each importer counted lost is what its subscribers were shown.
    INFO(lines.text());
    for (const auto& importer : {std::pair{&importer_b, &at_b}, std::pair{&importer_c, &at_c}}) {
        const NatsBridgeRunner* runner = importer.first;
        const Ledger* ledger = importer.second;
        REQUIRE(wait_until([&] { return stream(*runner, false).messages >= ledger->received; }));
        const auto imported = stream(*runner, false);
        CHECK(imported.lost == ledger->lost);
        CHECK(ledger->lost_before <= ledger->lost);
    }
}

TEST_CASE("an export whose channel's slots could outgrow a NATS message is refused as the "
          "bridge starts, naming the channel, the sizes and whose limit it is",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program}; // max_payload: NATS's default, 1 MiB
    std::string why;
    REQUIRE(server.start(&why));
    DaemonProcess robot{"channels:\n  - {name: frames, kind: broadcast, slot_size: 2MiB, "
                        "slot_count: 2}\n"};
    REQUIRE(robot.start());
    Lines lines;
    for (const std::uint64_t configured : {std::uint64_t{1} << 20, std::uint64_t{8} << 20}) {
        // Configured as the servers' default, the configuration's own limit refuses it; raised
        // past what the server announces, the server's does.
        auto config = bridge("fleet", server);
        config.max_payload = configured;
        config.exports = {{"frames", "shmbus.robot1.frames"}};
        NatsBridgeRunner runner{config, options_for(robot), "robot", 1, lines.sink()};
        runner.start();
        REQUIRE(wait_until([&] {
            const auto st = runner.status().bridge;
            return st.state == BridgeState::stopped && !st.last_error.empty();
        }));
        const std::string error = runner.status().bridge.last_error;
        INFO(lines.text());
        CHECK_THAT(error, Catch::Contains("export of channel 'frames': its slots hold messages of "
                                          "up to 2097152 bytes"));
        CHECK_THAT(error, Catch::Contains(configured == (std::uint64_t{1} << 20)
                                              ? "the servers' ('nats.max_payload') max_payload "
                                                "(1048576 bytes"
                                              : "the connected server's max_payload (1048576 "
                                                "bytes"));
        CHECK(runner.status().bridge.session.streams.empty()); // nothing was sent
        runner.stop();
    }
}

TEST_CASE("a durable JetStream import on a three-server cluster loses and repeats nothing when "
          "the server it is connected to is killed mid-stream",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsCluster cluster{*program, /*jetstream=*/true};
    INFO(cluster.problem());
    REQUIRE(cluster.problem().empty());
    // Kept on all three servers: two of them still make a quorum when one is lost.
    add_jobs_stream(cluster.at(1).url(), 3);

    DaemonProcess ground{"channels:\n" + channel("jobs", 4096)};
    REQUIRE(ground.start());
    auto app = Client::connect(options_for(ground));
    REQUIRE(app.has_value());
    auto sub = app.value().open_subscriber("jobs");
    REQUIRE(sub.has_value());

    // The importing bridge is given server 0 alone, the one to be killed, and learns the
    // other two from the cluster.
    Lines lines;
    auto config = bridge("fleet", cluster.at(0));
    config.imports = {{"shmbus.ground.jobs", "jobs", "ground-jobs"}};
    config.ack_wait = 1000ms;
    NatsBridgeRunner runner{config, options_for(ground), "ground", 1, lines.sink()};
    runner.start();
    REQUIRE(wait_until([&] { return connected(runner); }));

    // The far side publishes to server 1 (server 2 its spare) as an exporting daemon would
    // (origin and sequence headers), and retries each message until the stream acknowledged
    // it (Nats-Msg-Id de-duplicates a retry whose first try was stored after all).
    const std::uint64_t count = 5000;
    std::atomic<bool> failed{false};
    std::thread publisher{[&] {
        natsOptions* opts = nullptr;
        natsOptions_Create(&opts);
        const std::string first = cluster.at(1).url();
        const std::string spare = cluster.at(2).url();
        const char* urls[] = {first.c_str(), spare.c_str()};
        natsOptions_SetServers(opts, urls, 2);
        natsOptions_SetNoRandomize(opts, true);
        natsOptions_SetMaxReconnect(opts, -1);
        natsOptions_SetReconnectWait(opts, 50);
        natsConnection* nc = nullptr;
        if (natsConnection_Connect(&nc, opts) != NATS_OK) {
            failed = true;
            natsOptions_Destroy(opts);
            return;
        }
        jsCtx* js = nullptr;
        natsConnection_JetStream(&js, nc, nullptr);
        std::vector<std::byte> out(kSlot);
        const auto deadline = generous_deadline();
        for (std::uint64_t id = 0; id < count && !failed; ++id) {
            stamp(out, id);
            if (!publish_acked(js, out, id, deadline)) {
                failed = true;
            }
        }
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        natsOptions_Destroy(opts);
    }};

    std::vector<std::byte> buf(kSlot);
    std::uint64_t next = 0;
    bool in_order = true;
    while (next < count) {
        auto r = sub.value().receive_copy(buf, 60s);
        if (!r.has_value()) {
            break;
        }
        in_order = in_order && check_stamp(std::span{buf}.first(r.value().size)) == next;
        ++next;
        if (next == count / 4) {
            cluster.at(0).stop(); // for good: the bridge fails over to server 1 or 2
        }
    }
    publisher.join();
    INFO(lines.text());
    CHECK_FALSE(failed);
    CHECK(next == count);
    CHECK(in_order);
    // Nothing repeated: what JetStream delivered again after the failover was dropped by its
    // sequence, and nothing more arrives.
    CHECK(sub.value().try_receive_copy(buf).code() == Errc::would_block);
    CHECK(stream(runner, false).lost == 0);
    CHECK(stream(runner, false).messages == count);
    CHECK(runner.status().bridge.reconnects >= 1);
    CHECK(runner.status().bridge.peer != cluster.at(0).url());
    runner.stop();
}

TEST_CASE("a glob export publishes each channel it matches to the subject its wildcards make, "
          "and a channel an entry names is exported once, as that entry says",
          "[gateway][nats]") {
    REQUIRE_NATS_SERVER(program);
    NatsServer server{*program};
    std::string why;
    REQUIRE(server.start(&why));
    DaemonProcess robot{"channels:\n" + channel("camera/front") + channel("camera/rear") +
                        channel("telemetry")};
    REQUIRE(robot.start());

    PlainNats far{server.url()};
    natsSubscription* sub = nullptr;
    REQUIRE(natsConnection_SubscribeSync(&sub, far.nc, "shmbus.>") == NATS_OK);
    REQUIRE(natsConnection_Flush(far.nc) == NATS_OK);

    Lines lines;
    auto config = bridge("fleet", server);
    config.exports = {{"camera/*", "shmbus.robot1.camera.*"}, {"camera/rear", "shmbus.rear"}};
    NatsBridgeRunner runner{config, options_for(robot), "robot1", 1, lines.sink()};
    runner.start();
    REQUIRE(wait_until([&] { return connected(runner); }));
    INFO(lines.text());
    std::vector<std::string> streams;
    for (const auto& s : runner.status().bridge.session.streams) {
        streams.push_back(s.local_name + " -> " + s.wire_name);
    }
    std::sort(streams.begin(), streams.end());
    CHECK(streams == std::vector<std::string>{"camera/front -> shmbus.robot1.camera.front",
                                              "camera/rear -> shmbus.rear"});

    publish_stamped(robot, "telemetry", 1); // matched by nothing: stays local
    publish_stamped(robot, "camera/front", 1);
    publish_stamped(robot, "camera/rear", 1);
    std::vector<std::string> subjects;
    while (subjects.size() < 2) {
        natsMsg* m = nullptr;
        REQUIRE(natsSubscription_NextMsg(&m, sub, 60000) == NATS_OK);
        if (natsMsg_GetDataLength(m) > 0) { // not a heartbeat
            subjects.emplace_back(natsMsg_GetSubject(m));
        }
        natsMsg_Destroy(m);
    }
    std::sort(subjects.begin(), subjects.end());
    CHECK(subjects == std::vector<std::string>{"shmbus.rear", "shmbus.robot1.camera.front"});
    REQUIRE(wait_until([&] {
        std::uint64_t total = 0;
        for (const auto& s : runner.status().bridge.session.streams) {
            total += s.messages;
        }
        return total == 2;
    }));
    natsSubscription_Destroy(sub);
    runner.stop();
}
