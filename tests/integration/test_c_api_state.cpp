// The C ABI of the shared-state channels (shmbus.h, "Shared state") against the real shmbusd:
// a C11 program (c_api_state_client.c, built with -pedantic -Werror) checks errors, reads,
// writes, ranges, update and every counter operation on its own, and shares a blackboard
// and a counters channel with the C++ API of this process, each way; C and C++ add to one
// cell at the same time and lose no increment.
//
// Synchronisation is on events only: READY=1 and the child exiting.
#include "c_program.hpp"
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "process.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#if !defined(C_API_STATE_CLIENT_PATH)
#error "C_API_STATE_CLIENT_PATH must name the C program"
#endif

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = channels_yaml({
    {.name = "board",
     .kind = "blackboard",
     .slot_size = 32,
     .slot_count = 8,
     .max_publishers = 4,
     .max_subscribers = 4},
    {.name = "stats",
     .kind = "counters",
     .slot_size = 48,
     .slot_count = 8,
     .max_publishers = 4,
     .max_subscribers = 4},
});

constexpr auto kWait = std::chrono::seconds{60};

/// Runs the C program with `args`, after the daemon's socket, in a child process.
Child run_c_client(const DaemonProcess& d, std::vector<std::string> args) {
    return run_c_program(C_API_STATE_CLIENT_PATH, d, std::move(args));
}

void require_exited_ok(Child& child) {
    shmbus::test::require_exited_ok(child, kWait);
}

Client connect_to(const DaemonProcess& d) {
    auto c = Client::connect(client_options(d, "test_c_api_state"));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

std::string element_text(const Blackboard& board, std::uint64_t index) {
    std::vector<std::byte> bytes(board.element_size());
    auto r = board.read(index, bytes);
    INFO((r ? std::string{} : r.error().message()));
    REQUIRE(r);
    const auto* text = reinterpret_cast<const char*>(bytes.data());
    return std::string(text, ::strnlen(text, bytes.size()));
}

} // namespace

TEST_CASE("a C program checks the shared-state calls, their errors and every counter "
          "operation") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Child child = run_c_client(d, {"selftest"});
    require_exited_ok(child);
}

TEST_CASE("C and C++ add to one counter at once and lose no increment, and C++ reads what C "
          "wrote to a blackboard") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto counters = client.open_counters("stats", Role::publisher);
    REQUIRE(counters);
    auto cell = counters->cell("from_c");
    REQUIRE(cell);
    auto board = client.open_blackboard("board", Role::subscriber);
    REQUIRE(board);

    constexpr std::uint64_t kEach = 200'000;
    Child child = run_c_client(d, {"count", std::to_string(kEach)});
    for (std::uint64_t i = 0; i < kEach; ++i) {
        REQUIRE(cell->fetch_add(1));
    }
    require_exited_ok(child);
    CHECK(cell->load() == 2 * kEach);
    CHECK(element_text(*board, 6) == "from C");
}

TEST_CASE("what C++ writes to a counter and a blackboard element, a C reader reads") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto counters = client.open_counters("stats", Role::publisher);
    REQUIRE(counters);
    auto cell = counters->cell("from_cpp");
    REQUIRE(cell);
    REQUIRE(cell->store(4242));
    auto board = client.open_blackboard("board", Role::publisher);
    REQUIRE(board);
    const std::string text = "from C++ 4242";
    REQUIRE(board->write(7, std::as_bytes(std::span{text})));

    Child child = run_c_client(d, {"expect", "4242"});
    require_exited_ok(child);
}
