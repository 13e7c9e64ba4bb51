// shmbus::Client against the real shmbusd: the public API end to end, the way applications
// use it. The daemon is the built binary, started per test on its own socket, state
// directory and configuration (tests/support/daemon_process.hpp); where a process boundary
// matters, a forked child connects with a Client of its own.
//
// Synchronisation is always on an event: READY=1 from the daemon, a reply, a message on the
// channel, a process exit. No sleeps. A child never uses Catch2: it reports through its exit
// code (0 = all well, otherwise which step failed) and leaves with _exit().
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <functional>
#include <optional>
#include <thread>
#include <unistd.h>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = standard_channels_yaml();

constexpr auto kMessageWait = std::chrono::seconds{60};

ClientOptions options_for(const DaemonProcess& d, const std::string& name = "test_client") {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.request_timeout = 30s;
    return o;
}

/// For a forked child of this multi-threaded test process: no reconnect thread, because a
/// thread started after fork() is not something ThreadSanitizer supports.
ClientOptions child_options(const DaemonProcess& d, const std::string& name) {
    ClientOptions o = options_for(d, name);
    o.reconnect_in_background = false;
    return o;
}

Client connect_to(const DaemonProcess& d, const std::string& name = "test_client") {
    auto c = Client::connect(options_for(d, name));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

/// In a forked child: connects, publishes `count` stamped messages on `channel`, exits.
/// Exit codes: 0 all sent, 2 connect failed, 3 open failed, 4 a send failed.
[[noreturn]] void publish_in_child(const DaemonProcess& d, const std::string& channel,
                                   std::uint64_t count, std::size_t size) {
    auto client = Client::connect(child_options(d, "child-publisher"));
    if (!client) {
        std::fprintf(stderr, "child: %s\n", client.error().message().c_str());
        _exit(2);
    }
    auto pub = client->open_publisher(channel);
    if (!pub) {
        std::fprintf(stderr, "child: %s\n", pub.error().message().c_str());
        _exit(3);
    }
    std::vector<std::byte> buf(size);
    for (std::uint64_t i = 0; i < count; ++i) {
        stamp(buf, i);
        if (auto sent = pub->send(buf, kMessageWait); !sent) {
            std::fprintf(stderr, "child: %s\n", sent.error().message().c_str());
            _exit(4);
        }
    }
    _exit(0);
}

/// Receives `count` messages stamped 0, 1, ... in order; the number received intact.
std::uint64_t receive_in_order(Subscriber& sub, std::uint64_t count) {
    std::vector<std::byte> buf(4096);
    std::uint64_t good = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        auto got = sub.receive_copy(buf, kMessageWait);
        if (!got) {
            UNSCOPED_INFO("message " << i << ": " << got.error().message());
            break;
        }
        if (check_stamp(std::span{buf}.first(got->size)) == i) {
            ++good;
        }
    }
    return good;
}

bool has_endpoint(const ChannelDetail& d, Role role, std::uint64_t client_id) {
    return std::any_of(d.endpoints.begin(), d.endpoints.end(), [&](const EndpointDetail& e) {
        return e.role == role && e.client_id == client_id;
    });
}

} // namespace

TEST_CASE("a Client connects to shmbusd, says hello and reads the discovery table") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d, "reader-of-tables");
    CHECK(client.client_id() != 0);
    CHECK(client.socket_path() == d.socket_path().native());

    auto rtt = client.ping();
    REQUIRE(rtt);

    auto status = client.status();
    REQUIRE(status);
    CHECK(status->pid == static_cast<std::uint32_t>(d.pid()));
    CHECK(status->protocol_major == 1);

    auto channels = client.list_channels();
    REQUIRE(channels);
    std::vector<std::string> names;
    for (const ChannelSummary& s : *channels) {
        names.push_back(s.info.name);
    }
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"jobs", "telemetry"});

    auto clients = client.list_clients();
    REQUIRE(clients);
    const bool listed = std::any_of(clients->begin(), clients->end(), [&](const ClientSummary& c) {
        return c.client_id == client.client_id() && c.name == "reader-of-tables" &&
               c.pid == static_cast<std::uint32_t>(::getpid());
    });
    CHECK(listed);
}

TEST_CASE("a publisher in one process and a subscriber in another exchange messages") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto sub = client.open_subscriber("telemetry");
    INFO((sub ? std::string{} : sub.error().message()));
    REQUIRE(sub);
    CHECK(sub->info().kind == ChannelKind::broadcast);

    const std::uint64_t count = scaled(2000, 200);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        publish_in_child(d, "telemetry", count, 200);
    }
    CHECK(receive_in_order(*sub, count) == count);
    const auto exit = wait_for_exit(child, generous_deadline());
    REQUIRE(exit);
    CHECK(exit->code == 0);
}

TEST_CASE("a producer in one process feeds a consumer in another through a queue") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto consumer = client.open_subscriber("jobs");
    REQUIRE(consumer);
    CHECK(consumer->info().kind == ChannelKind::queue);

    const std::uint64_t count = scaled(2000, 200);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        publish_in_child(d, "jobs", count, 64);
    }
    CHECK(receive_in_order(*consumer, count) == count);
    const auto exit = wait_for_exit(child, generous_deadline());
    REQUIRE(exit);
    CHECK(exit->code == 0);
}

TEST_CASE("opening a channel the daemon does not have is not_found naming it") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto pub = client.open_publisher("no-such-channel");
    REQUIRE_FALSE(pub);
    CHECK(pub.code() == Errc::not_found);
    CHECK_THAT(pub.error().detail, Catch::Contains("no-such-channel"));
}

TEST_CASE("connecting where no daemon runs is not_found naming the socket path") {
    TempDir dir;
    ClientOptions o;
    o.socket_path = (dir.path() / "shmbusd.sock").native();
    auto c = Client::connect(o);
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::not_found);
    CHECK(c.error().detail == "no shmbusd is listening on " + o.socket_path + " (is it running?)");
}

TEST_CASE("connecting after the daemon stopped is not_found naming the socket path") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    REQUIRE(d.stop().has_value());
    auto c = Client::connect(options_for(d));
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::not_found);
    CHECK_THAT(c.error().detail, Catch::Contains(d.socket_path().native()));
}

TEST_CASE("destroying an endpoint tells the daemon, which frees the entry") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    {
        auto pub = client.open_publisher("telemetry");
        REQUIRE(pub);
        auto detail = client.channel_info("telemetry");
        REQUIRE(detail);
        CHECK(has_endpoint(*detail, Role::publisher, client.client_id()));

        // max_publishers is 1: a second one is refused while the first lives.
        auto second = client.open_publisher("telemetry");
        REQUIRE_FALSE(second);
        CHECK(second.code() == Errc::limit_reached);
    }
    // The Close went out before this request, on the same connection: it is processed first.
    auto detail = client.channel_info("telemetry");
    REQUIRE(detail);
    CHECK_FALSE(has_endpoint(*detail, Role::publisher, client.client_id()));
    auto again = client.open_publisher("telemetry");
    INFO((again ? std::string{} : again.error().message()));
    CHECK(again);
}

TEST_CASE("an endpoint that outlives its Client keeps its entry in the daemon's table") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client observer = connect_to(d, "observer");
    std::optional<Publisher> pub;
    std::uint64_t owner = 0;
    {
        Client client = connect_to(d, "owner");
        owner = client.client_id();
        auto p = client.open_publisher("telemetry");
        REQUIRE(p);
        pub.emplace(std::move(*p));
    }
    // Had the connection closed with the Client, the daemon would have reclaimed the entry
    // and could hand it to a second publisher while the first still writes.
    auto detail = observer.channel_info("telemetry");
    REQUIRE(detail);
    CHECK(has_endpoint(*detail, Role::publisher, owner));
    auto second = observer.open_publisher("telemetry");
    REQUIRE_FALSE(second);
    CHECK(second.code() == Errc::limit_reached);
}

TEST_CASE("messages keep flowing while shmbusd restarts, and the next request reconnects") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto sub = client.open_subscriber("telemetry");
    REQUIRE(sub);
    auto pub = client.open_publisher("telemetry");
    REQUIRE(pub);

    SECTION("after SIGTERM") {
        REQUIRE(d.stop().has_value());
    }
    SECTION("after SIGKILL") {
        REQUIRE(d.kill_hard().has_value());
    }

    // With no daemon at all, the data path does not notice.
    std::vector<std::byte> buf(64);
    stamp(buf, 0);
    REQUIRE(pub->send(buf, kMessageWait));
    REQUIRE(d.start());
    stamp(buf, 1);
    REQUIRE(pub->send(buf, kMessageWait));
    CHECK(receive_in_order(*sub, 2) == 2);

    // The next request finds the old connection closed, reconnects and succeeds.
    auto rtt = client.ping();
    INFO((rtt ? std::string{} : rtt.error().message()));
    REQUIRE(rtt);
    CHECK(client.client_id() != 0);
    auto status = client.status();
    REQUIRE(status);
    CHECK(status->pid == static_cast<std::uint32_t>(d.pid()));
}

namespace {

/// The daemon's id of the connected client called `name`; 0 if there is none.
std::uint64_t id_of_client(Client& observer, std::string_view name) {
    auto clients = observer.list_clients();
    REQUIRE(clients);
    for (const auto& s : *clients) {
        if (s.name == name) {
            return s.client_id;
        }
    }
    return 0;
}

/// Whether the daemon lists client `id` as `role` on `channel`.
bool listed_as(Client& observer, std::string_view channel, Role role, std::uint64_t id) {
    auto info = observer.channel_info(channel);
    REQUIRE(info);
    return has_endpoint(*info, role, id);
}

ClientOptions logged_options(const DaemonProcess& d, LogLines& lines, const std::string& name) {
    ClientOptions o = options_for(d, name);
    o.log = lines.sink();
    return o;
}

} // namespace

TEST_CASE("an idle client restores its connection on its own after a restart and is listed "
          "again") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    LogLines lines;
    auto c = Client::connect(logged_options(d, lines, "idle"));
    REQUIRE(c);
    auto sub = c->open_subscriber("telemetry");
    REQUIRE(sub);
    auto pub = c->open_publisher("jobs");
    REQUIRE(pub);
    const bool keep_client = GENERATE(true, false);
    const int stop_signal = GENERATE(SIGKILL, SIGTERM);
    if (!keep_client) {
        const Client gone = std::move(*c); // only the endpoints hold the connection now
    }
    REQUIRE(d.signal_and_wait(stop_signal).has_value());
    REQUIRE(d.start());
    // No request from this client: its background thread notices and reconnects.
    INFO(lines.all());
    REQUIRE(lines.wait_for("reconnected to shmbusd"));
    CHECK(lines.count("lost the connection") == 1);

    Client observer = connect_to(d, "observer");
    const std::uint64_t idle = id_of_client(observer, "idle");
    REQUIRE(idle != 0);
    CHECK(listed_as(observer, "telemetry", Role::subscriber, idle));
    CHECK(listed_as(observer, "jobs", Role::publisher, idle));
}

TEST_CASE("every idle client of a process is restored by the one background thread") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    LogLines lines;
    auto a = Client::connect(logged_options(d, lines, "idle-a"));
    auto b = Client::connect(logged_options(d, lines, "idle-b"));
    REQUIRE(a);
    REQUIRE(b);
    auto sub = a->open_subscriber("telemetry");
    auto pub = b->open_publisher("jobs");
    REQUIRE(sub);
    REQUIRE(pub);
    {
        // A connection made and dropped before the restart is not restored.
        auto brief = Client::connect(logged_options(d, lines, "brief"));
        REQUIRE(brief);
    }
    REQUIRE(d.signal_and_wait(SIGKILL).has_value());
    REQUIRE(d.start());
    INFO(lines.all());
    REQUIRE(lines.wait_for("reconnected to shmbusd", 2));
    CHECK(lines.count("lost the connection") == 2);

    Client observer = connect_to(d, "observer");
    const std::uint64_t ida = id_of_client(observer, "idle-a");
    const std::uint64_t idb = id_of_client(observer, "idle-b");
    REQUIRE(ida != 0);
    REQUIRE(idb != 0);
    CHECK(id_of_client(observer, "brief") == 0);
    CHECK(listed_as(observer, "telemetry", Role::subscriber, ida));
    CHECK(listed_as(observer, "jobs", Role::publisher, idb));
}

TEST_CASE("kill -9 of shmbusd mid-stream in block mode loses nothing, both sides carry on and "
          "are listed again") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    const std::uint64_t total = 200'000;
    Pipe go = Pipe::make();
    Pipe reconnected = Pipe::make();
    Pipe may_exit = Pipe::make();
    // The publisher child restores its connection with its next request (a child of this
    // test starts no thread, see child_options()), so it makes one every 1,000 messages: it
    // must offer its publisher back within the restarted daemon's grace period however slow
    // the machine (sanitizers, a loaded host) makes the rest of the stream. The pings that
    // meet no daemon fail, and are meant to. The subscriber's background thread restores ours.
    // The child is forked before this process connects, so before libshmbus's reconnect
    // thread exists: a fork while another thread holds a lock (a sanitizer's allocator, say)
    // could leave the child waiting for it forever. It starts once the subscriber is
    // attached.
    Child publisher = Child::spawn([&] {
        go.write_end.reset();
        reconnected.read_end.reset();
        may_exit.write_end.reset();
        if (!receive_record<std::uint32_t>(go.read_end.get())) {
            return 8;
        }
        auto client = Client::connect(child_options(d, "stream-publisher"));
        if (!client) {
            return 2;
        }
        auto pub = client->open_publisher("telemetry");
        if (!pub) {
            return 3;
        }
        std::vector<std::byte> buf(64);
        for (std::uint64_t i = 0; i < total; ++i) {
            stamp(buf, i);
            if (!pub->send(buf, kMessageWait)) {
                return 4;
            }
            if (i % 1000 == 999) {
                (void)client->ping(); // after the restart: reconnects, offers the publisher back
            }
        }
        if (!client->ping()) { // the connection is up again by now
            return 5;
        }
        if (!send_record(reconnected.write_end.get(), std::uint32_t{1})) {
            return 6;
        }
        // Stays attached until the parent has seen it listed.
        return receive_record<std::uint32_t>(may_exit.read_end.get()).has_value() ? 0 : 7;
    });
    go.read_end.reset();
    reconnected.write_end.reset();
    may_exit.read_end.reset();
    LogLines lines;
    auto c = Client::connect(logged_options(d, lines, "stream-subscriber"));
    REQUIRE(c);
    auto sub = c->open_subscriber("telemetry");
    REQUIRE(sub);
    REQUIRE(send_record(go.write_end.get(), std::uint32_t{1}));

    std::vector<std::byte> buf(4096);
    std::uint64_t good = 0;
    bool restarted = false;
    for (std::uint64_t i = 0; i < total; ++i) {
        auto got = sub->receive_copy(buf, kMessageWait);
        if (!got) {
            UNSCOPED_INFO("message " << i << ": " << got.error().message());
            break;
        }
        good += check_stamp(std::span{buf}.first(got->size)) == i ? 1 : 0;
        if (i == total / 4) {
            // The publisher is blocked on the 8-slot ring right now, or soon will be.
            REQUIRE(d.kill_hard().has_value());
            REQUIRE(d.start());
            restarted = true;
        }
    }
    CHECK(restarted);
    CHECK(good == total);
    CHECK(sub->lost() == 0);

    // Both sides re-registered (the background thread says so once it has offered ours).
    REQUIRE(lines.wait_for("reconnected to shmbusd"));
    CHECK(receive_record<std::uint32_t>(reconnected.read_end.get()).has_value());
    Client observer = connect_to(d, "observer");
    auto info = observer.channel_info("telemetry");
    REQUIRE(info);
    CHECK(has_endpoint(*info, Role::subscriber, id_of_client(observer, "stream-subscriber")));
    CHECK(has_endpoint(*info, Role::publisher, id_of_client(observer, "stream-publisher")));
    CHECK(send_record(may_exit.write_end.get(), std::uint32_t{1}));
    auto exit = publisher.wait(Deadline{});
    REQUIRE(exit);
    CHECK(exit->exited_ok());
}

TEST_CASE("a client started before shmbusd waits for it, saying so once") {
    DaemonProcess d{kChannels};
    LogLines lines;
    ClientOptions o = logged_options(d, lines, "early");
    o.wait_for_daemon = std::chrono::milliseconds::max();
    std::optional<Result<Client>> early;
    std::thread starter{[&] { early.emplace(Client::connect(o)); }};
    const bool waiting = lines.wait_for("waiting for ever for shmbusd");
    const bool started = waiting && d.start();
    starter.join();
    REQUIRE(waiting);
    REQUIRE(started);
    REQUIRE(early.has_value());
    INFO((*early ? std::string{} : early->error().message()));
    REQUIRE(*early);
    CHECK(lines.count("waiting") == 1);
    CHECK((*early)->open_subscriber("telemetry").has_value());
}

TEST_CASE("a client that waits for shmbusd in vain gets not_found naming the socket and the "
          "wait") {
    TempDir dir;
    LogLines lines;
    ClientOptions o;
    o.socket_path = (dir.path() / "nobody.sock").native();
    o.wait_for_daemon = 30ms;
    o.log = lines.sink();
    auto c = Client::connect(o);
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::not_found);
    CHECK_THAT(c.error().message(), Catch::Contains(o.socket_path) && Catch::Contains("30 ms"));
    CHECK(lines.count("waiting up to 30 ms") == 1);
}

TEST_CASE("a created channel takes the daemon's dynamic_channels.defaults for what the request "
          "leaves out") {
    DaemonProcess d{R"(
dynamic_channels:
  defaults:
    kind: broadcast
    slot_size: 128
    slot_count: 8
    overflow: drop
    max_subscribers: 3
)"};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto info_of = [&](const std::string& name) {
        auto detail = client.channel_info(name);
        INFO((detail ? std::string{} : detail.error().message()));
        REQUIRE(detail);
        return detail->summary.info;
    };

    auto created = client.create_channel(ChannelRequest{.name = "all-defaults"});
    INFO((created ? std::string{} : created.error().message()));
    REQUIRE(created);
    const ChannelInfo all = info_of("all-defaults");
    CHECK(all.kind == ChannelKind::broadcast);
    CHECK(all.overflow == Overflow::drop);
    CHECK(all.slot_size == 128);
    CHECK(all.slot_count == 8);
    CHECK(all.max_subscribers == 3);

    // A queue always blocks, whatever the broadcast default says.
    REQUIRE(client.create_channel(
        ChannelRequest{.name = "a-queue", .kind = ChannelKind::queue, .slot_count = 16}));
    const ChannelInfo queue = info_of("a-queue");
    CHECK(queue.kind == ChannelKind::queue);
    CHECK(queue.overflow == Overflow::block);
    CHECK(queue.slot_count == 16);
    CHECK(queue.slot_size == 128);

    // A full spec is taken as it is, kind and overflow included.
    ChannelSpec spec;
    spec.name = "explicit";
    spec.kind = ChannelKind::queue;
    spec.slot_size = 64;
    spec.slot_count = 4;
    REQUIRE(client.create_channel(spec));
    const ChannelInfo given = info_of("explicit");
    CHECK(given.kind == ChannelKind::queue);
    CHECK(given.slot_size == 64);
    CHECK(given.slot_count == 4);
    CHECK(given.max_publishers == 1);
}
