// rpc peer events through the real shmbusd: a caller that asked for events learns that a
// server attached, and that it went — detached and server_gone when it closes, died and
// server_gone within 50 ms when it is killed with SIGKILL — by its wait handle and events(),
// in order; its calls in flight fail with closed meanwhile. The same through the C API is in
// test_c_api_rpc.cpp, the ring itself in tests/unit/test_rpc_events.cpp.
//
// Synchronisation is on events: a server says on a pipe that it attached, the parent waits
// on the caller's wait handle. Children never use Catch2; they report through exit codes.
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "event_reading.hpp"
#include "process.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <csignal>
#include <poll.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kConfig = "channels:\n  - {name: svc, kind: rpc}\n";

/// A server in another process: opens `svc`, says 'a' on `report`, then takes requests
/// without answering them, saying 't' for each batch taken, until a byte comes on
/// `command`: 'd' closes the server, says 'd' and exits. A server that is killed never gets
/// that far.
Child server(const DaemonProcess& d, int report, int command) {
    return Child::spawn([&d, report, command]() -> int {
        auto c = Client::connect(client_options(d, "server", true));
        if (!c) {
            return 2;
        }
        {
            auto s = c->open_server("svc");
            if (!s || !send_record(report, 'a')) {
                return 3;
            }
            for (;;) {
                if (readable_now(command)) {
                    break;
                }
                // Holds what it takes: those calls fail when it goes.
                if (s->receive(16, 1ms) && !send_record(report, 't')) {
                    return 4;
                }
            }
            if (receive_record<char>(command) != 'd') {
                return 4;
            }
        }                // closes the server
        (void)c->ping(); // the close went before this request: the daemon has seen it
        return send_record(report, 'd') ? 0 : 4;
    });
}

} // namespace

TEST_CASE("an rpc caller learns that its server attached, then went: detached or died, and "
          "server_gone, in order") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    auto client = Client::connect(client_options(d, "caller"));
    REQUIRE(client);
    EndpointOptions o;
    o.peer_events = true;
    auto caller = client->open_caller("svc", o);
    REQUIRE(caller);
    auto fd = caller->wait_handle();
    REQUIRE(fd);
    Pipe report = Pipe::make();
    Pipe command = Pipe::make();

    // A server comes and closes cleanly.
    Child polite = server(d, report.write_end.get(), command.read_end.get());
    REQUIRE(receive_record<char>(report.read_end.get()) == 'a');
    auto attached = wait_events(*caller, *fd, 1);
    REQUIRE(attached.size() == 1);
    CHECK(attached[0].kind == EventKind::attached);
    CHECK(attached[0].role == Role::subscriber);
    CHECK(attached[0].pid == static_cast<std::uint32_t>(polite.pid()));
    REQUIRE(send_record(command.write_end.get(), 'd'));
    REQUIRE(receive_record<char>(report.read_end.get()) == 'd');
    auto left = wait_events(*caller, *fd, 2);
    REQUIRE(left.size() == 2);
    CHECK(left[0].kind == EventKind::detached);
    CHECK(left[0].role == Role::subscriber);
    CHECK(left[1].kind == EventKind::server_gone);
    CHECK(left[1].pid == static_cast<std::uint32_t>(polite.pid()));
    CHECK(left[1].sequence == left[0].sequence);
    CHECK(left[0].sequence > attached[0].sequence);
    REQUIRE(polite.wait());
    CHECK(polite.wait()->exited_ok());

    // A server comes, takes a call and is killed.
    Child victim = server(d, report.write_end.get(), command.read_end.get());
    REQUIRE(receive_record<char>(report.read_end.get()) == 'a');
    REQUIRE(wait_events(*caller, *fd, 1).size() == 1); // attached
    const std::array<std::byte, 4> request{};
    auto held = caller->send_request(request);
    REQUIRE(held);
    REQUIRE(receive_record<char>(report.read_end.get()) == 't');
    const auto killed_at = std::chrono::steady_clock::now();
    REQUIRE(::kill(victim.pid(), SIGKILL) == 0);
    auto died = wait_events(*caller, *fd, 2);
    const auto reported_after = std::chrono::steady_clock::now() - killed_at;
    REQUIRE(died.size() == 2);
    CHECK(died[0].kind == EventKind::died);
    CHECK(died[0].pid == static_cast<std::uint32_t>(victim.pid()));
    CHECK(died[1].kind == EventKind::server_gone);
    CHECK(died[1].endpoint_index == died[0].endpoint_index);
    const double ms = std::chrono::duration<double, std::milli>(reported_after).count();
    INFO("server_gone " << ms << " ms after the kill");
    CHECK(reported_after <= 50ms);
    auto outcome = caller->poll(*held);
    REQUIRE_FALSE(outcome);
    CHECK(outcome.code() == Errc::closed);
    CHECK(victim.wait()->killed_by(SIGKILL));
}
