// Peer events through the real shmbusd: other processes attach, detach and die, and an
// endpoint that asked for events learns each, in order, by its wait handle and events(); a
// peer killed with SIGKILL is reported dead within 50 ms. The C API reads the same events.
// The ring itself (order, loss, damage, lapped) is tested without a daemon in
// tests/unit/test_peer_events.cpp.
//
// Synchronisation is on events: a child says on a pipe what it did, the parent waits on the
// observer's wait handle. Children never use Catch2; they report through their exit code.
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "event_reading.hpp"
#include "process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <csignal>
#include <poll.h>
#include <unistd.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

/// A peer in another process: opens `role` on `channel`, says 'a' on `report`, then waits
/// for a byte on `command`: 'd' detaches, says 'd' and exits. A peer that is killed instead
/// never gets that far. Exit codes: 2 connect, 3 open, 4 pipe or another command.
Child peer(const DaemonProcess& d, const std::string& channel, Role role, int report, int command) {
    return Child::spawn([&d, channel, role, report, command]() -> int {
        auto c = Client::connect(client_options(d, "peer", true));
        if (!c) {
            return 2;
        }
        {
            std::optional<Publisher> p;
            std::optional<Subscriber> s;
            if (role == Role::publisher) {
                auto opened = c->open_publisher(channel);
                if (!opened) {
                    return 3;
                }
                p.emplace(std::move(*opened));
            } else {
                auto opened = c->open_subscriber(channel);
                if (!opened) {
                    return 3;
                }
                s.emplace(std::move(*opened));
            }
            if (!send_record(report, 'a')) {
                return 4;
            }
            if (receive_record<char>(command) != 'd') {
                return 4;
            }
        }                // detaches
        (void)c->ping(); // the close went before this request: the daemon has seen it
        return send_record(report, 'd') ? 0 : 4;
    });
}

} // namespace

TEST_CASE("shmbusd tells an endpoint that peers attached, detached and died, in order") {
    DaemonProcess d{standard_channels_yaml()};
    REQUIRE(d.start());
    auto client = Client::connect(client_options(d, "observer"));
    REQUIRE(client);
    EndpointOptions o;
    o.peer_events = true;
    auto observer = client->open_subscriber("telemetry", o);
    REQUIRE(observer);
    REQUIRE(observer->endpoint_index() == 0);
    auto fd = observer->wait_handle();
    REQUIRE(fd);

    Pipe report = Pipe::make();
    Pipe command = Pipe::make();
    // A publisher comes and goes cleanly.
    Child writer =
        peer(d, "telemetry", Role::publisher, report.write_end.get(), command.read_end.get());
    REQUIRE(receive_record<char>(report.read_end.get()) == 'a');
    auto events = wait_events(*observer, *fd, 1);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == EventKind::attached);
    CHECK(events[0].role == Role::publisher);
    CHECK(events[0].endpoint_index == 0);
    CHECK(events[0].pid == static_cast<std::uint32_t>(writer.pid()));
    REQUIRE(send_record(command.write_end.get(), 'd'));
    REQUIRE(receive_record<char>(report.read_end.get()) == 'd');
    auto detached = wait_events(*observer, *fd, 1);
    REQUIRE(detached.size() == 1);
    CHECK(detached[0].kind == EventKind::detached);
    CHECK(detached[0].role == Role::publisher);
    CHECK(detached[0].pid == static_cast<std::uint32_t>(writer.pid()));
    CHECK(detached[0].sequence > events[0].sequence);
    REQUIRE(writer.wait());
    CHECK(writer.wait()->exited_ok());

    // A subscriber comes and is killed.
    Child victim =
        peer(d, "telemetry", Role::subscriber, report.write_end.get(), command.read_end.get());
    REQUIRE(receive_record<char>(report.read_end.get()) == 'a');
    auto attached = wait_events(*observer, *fd, 1);
    REQUIRE(attached.size() == 1);
    CHECK(attached[0].kind == EventKind::attached);
    CHECK(attached[0].role == Role::subscriber);
    CHECK(attached[0].endpoint_index == 1);

    const auto killed_at = std::chrono::steady_clock::now();
    REQUIRE(::kill(victim.pid(), SIGKILL) == 0);
    auto died = wait_events(*observer, *fd, 1);
    const auto reported_after = std::chrono::steady_clock::now() - killed_at;
    REQUIRE(died.size() == 1);
    CHECK(died[0].kind == EventKind::died);
    CHECK(died[0].role == Role::subscriber);
    CHECK(died[0].endpoint_index == 1);
    CHECK(died[0].pid == static_cast<std::uint32_t>(victim.pid()));
    CHECK(died[0].sequence > attached[0].sequence);
    const double ms = std::chrono::duration<double, std::milli>(reported_after).count();
    INFO("reported " << ms << " ms after the kill");
    CHECK(reported_after <= 50ms);
    CHECK(victim.wait()->killed_by(SIGKILL));
}

TEST_CASE("the C API reads peer events and offers a wait handle") {
    DaemonProcess d{standard_channels_yaml()};
    REQUIRE(d.start());
    shmbus_client_options co;
    shmbus_client_options_init(&co);
    const std::string socket = d.socket_path().native();
    co.socket_path = socket.c_str();
    shmbus_client* client = nullptr;
    REQUIRE(shmbus_connect(&co, &client) == SHMBUS_OK);
    shmbus_endpoint_options eo;
    shmbus_endpoint_options_init(&eo);
    CHECK(eo.peer_events == 0);
    eo.peer_events = 1;
    shmbus_subscriber* sub = nullptr;
    REQUIRE(shmbus_open_subscriber(client, "jobs", &eo, &sub) == SHMBUS_OK);
    int fd = -1;
    REQUIRE(shmbus_subscriber_wait_handle(sub, &fd) == SHMBUS_OK);
    CHECK(fd >= 0);
    CHECK(!readable_now(fd));
    CHECK(shmbus_subscriber_wait_handle(nullptr, &fd) == SHMBUS_E_INVALID_ARGUMENT);

    shmbus_publisher* pub = nullptr;
    REQUIRE(shmbus_open_publisher(client, "jobs", nullptr, &pub) == SHMBUS_OK);
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, Deadline{}.poll_ms()) == 1);
    std::array<shmbus_event, 4> events{};
    REQUIRE(shmbus_subscriber_events(sub, events.data(), events.size()) == 1);
    CHECK(events[0].kind == SHMBUS_EVENT_ATTACHED);
    CHECK(events[0].role == SHMBUS_ROLE_PUBLISHER);
    CHECK(events[0].pid == static_cast<std::uint32_t>(::getpid()));
    CHECK(!readable_now(fd)); // ran out of events: re-armed

    const char hello[] = "hello";
    REQUIRE(shmbus_publisher_send(pub, hello, sizeof hello, 0) == SHMBUS_OK);
    REQUIRE(::poll(&p, 1, Deadline{}.poll_ms()) == 1);
    char buf[16];
    shmbus_received got{};
    REQUIRE(shmbus_subscriber_receive_copy(sub, buf, sizeof buf, 0, &got) == SHMBUS_OK);
    CHECK(got.size == sizeof hello);
    CHECK(shmbus_subscriber_receive_copy(sub, buf, sizeof buf, 0, &got) == SHMBUS_E_WOULD_BLOCK);
    CHECK(!readable_now(fd));

    shmbus_publisher_close(pub);
    REQUIRE(::poll(&p, 1, Deadline{}.poll_ms()) == 1);
    REQUIRE(shmbus_subscriber_events(sub, events.data(), events.size()) == 1);
    CHECK(events[0].kind == SHMBUS_EVENT_DETACHED);
    shmbus_subscriber_close(sub);
    shmbus_client_close(client);
}
