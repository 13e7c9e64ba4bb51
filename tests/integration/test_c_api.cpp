// The C ABI (shmbus/shmbus.h) against the real shmbusd: a C11 program (c_api_client.c, built
// with -pedantic -Werror) checks errors, timeouts and zero-copy on its own and exchanges
// messages with the C++ API of this process, each way; the drop policy's loss is checked
// through the C calls from here, with a C++ publisher overwriting what a C reader holds.
//
// Synchronisation is on events only: READY=1, messages arriving, the child exiting.
#include "c_program.hpp"
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "process.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <unistd.h>
#include <vector>

#if !defined(C_API_CLIENT_PATH) || !defined(C_API_DOC_EXAMPLE_PATH)
#error "C_API_CLIENT_PATH and C_API_DOC_EXAMPLE_PATH must name the C programs"
#endif

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = channels_yaml({
    {.name = "cq", .kind = "queue", .slot_size = 128},
    {.name = "c2cpp", .kind = "queue", .slot_size = 128},
    {.name = "cpp2c", .kind = "queue", .slot_size = 128},
    {.name = "drops", .kind = "broadcast", .slot_count = 4, .overflow = "drop"},
});

constexpr std::uint64_t kMessages = 500; // many laps of a 16-slot ring
constexpr auto kWait = std::chrono::seconds{60};

/// Runs the C program with `args`, after the daemon's socket, in a child process.
Child run_c_client(const DaemonProcess& d, std::vector<std::string> args) {
    return run_c_program(C_API_CLIENT_PATH, d, std::move(args));
}

/// Tries `attempt(timeout)` (a receive or a send) in short slices while the C program runs,
/// until it succeeds (its result): fails at once, saying how the program ended, if it ends first,
/// and says where it is if nothing happens within kWait.
template <typename Attempt>
auto while_c_runs(Child& child, std::uint64_t n, Attempt attempt) {
    const Deadline deadline{kWait};
    for (;;) {
        auto r = attempt(std::chrono::milliseconds{200});
        if (r) {
            return r;
        }
        INFO("message " << n << ": " << r.error().message());
        REQUIRE(r.error().code == Errc::timed_out);
        if (auto ended = child.wait(Deadline{std::chrono::nanoseconds::zero()})) {
            FAIL("the C program ended before message " << n << ": " << ended->describe());
        }
        if (deadline.passed()) {
            FAIL("message " << n << " not through within " << kWait.count()
                            << " s; the C program: " << child.where());
        }
    }
}

Client connect_to(const DaemonProcess& d) {
    auto c = Client::connect(client_options(d, "test_c_api"));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

} // namespace

TEST_CASE("a C program checks errors, timeouts and zero-copy through the C ABI") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Child child = run_c_client(d, {"selftest"});
    require_exited_ok(child, kWait);
}

TEST_CASE("the complete example of docs/c-api.md runs against shmbusd") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    const std::string socket = d.socket_path().native();
    Child child = Child::spawn([&socket] {
        // The example finds the daemon as every client does: $SHMBUS_SOCKET first.
        ::setenv("SHMBUS_SOCKET", socket.c_str(), 1);
        ::execl(C_API_DOC_EXAMPLE_PATH, C_API_DOC_EXAMPLE_PATH, "cq", static_cast<char*>(nullptr));
        std::perror("execl c_api_doc_example");
        return 127;
    });
    require_exited_ok(child, kWait);
    // It left the channel empty: it read back everything it wrote.
    Client client = connect_to(d);
    auto info = client.channel_info("cq");
    REQUIRE(info);
    CHECK(info->summary.stats.published >= 2); // in place (1 to 3) and copied
    CHECK(info->summary.stats.depth == 0);
}

TEST_CASE("a C publisher reaches a C++ subscriber, in place and copied") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto sub = client.open_subscriber("c2cpp");
    REQUIRE(sub);
    Child child = run_c_client(d, {"publish", "c2cpp", std::to_string(kMessages)});
    std::vector<std::byte> buf(128);
    for (std::uint64_t n = 0; n < kMessages; ++n) {
        const std::size_t size = while_c_runs(child, n, [&](auto timeout) {
                                     return sub->receive_copy(buf, timeout);
                                 })->size;
        const std::string want = "c-" + std::to_string(n);
        REQUIRE(std::string(reinterpret_cast<const char*>(buf.data()), size) == want);
    }
    require_exited_ok(child, kWait);
}

TEST_CASE("a C++ publisher reaches a C subscriber, in place and copied") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    auto pub = client.open_publisher("cpp2c");
    REQUIRE(pub);
    Child child = run_c_client(d, {"subscribe", "cpp2c", std::to_string(kMessages)});
    for (std::uint64_t n = 0; n < kMessages; ++n) {
        const std::string text = "cpp-" + std::to_string(n);
        REQUIRE(while_c_runs(child, n, [&](auto timeout) {
            return pub->send(std::as_bytes(std::span{text}), timeout);
        }));
    }
    require_exited_ok(child, kWait);
}

TEST_CASE("a C reader on a drop channel learns at release what it lost, and how many") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    shmbus_client_options options;
    shmbus_client_options_init(&options);
    const std::string socket = d.socket_path().native();
    options.socket_path = socket.c_str();
    shmbus_client* c = nullptr;
    REQUIRE(shmbus_connect(&options, &c) == SHMBUS_OK);
    shmbus_subscriber* sub = nullptr;
    REQUIRE(shmbus_open_subscriber(c, "drops", nullptr, &sub) == SHMBUS_OK);
    Client client = connect_to(d);
    auto pub = client.open_publisher("drops");
    REQUIRE(pub);
    const std::uint64_t slots = pub->info().slot_count;

    const char first[] = "held while overwritten";
    REQUIRE(pub->try_send(std::as_bytes(std::span{first})));
    shmbus_message msg{};
    std::size_t count = 0;
    std::uint64_t lost_before = 99;
    REQUIRE(shmbus_subscriber_receive(sub, &msg, 1, SHMBUS_WAIT_FOREVER, &count, &lost_before) ==
            SHMBUS_OK);
    REQUIRE(count == 1);
    CHECK(lost_before == 0);
    CHECK(std::memcmp(msg.data, first, sizeof first) == 0);
    const std::uint64_t held = msg.sequence;

    // Two laps over the held slot: the drop policy never waits for the reader.
    for (std::uint64_t i = 0; i < 2 * slots; ++i) {
        const std::string text = "overwrite " + std::to_string(i);
        REQUIRE(pub->try_send(std::as_bytes(std::span{text})));
    }
    std::uint64_t lost = 0;
    CHECK(shmbus_subscriber_release(sub, &lost) == SHMBUS_E_LOST);
    CHECK(lost == 1);
    CHECK(shmbus_last_error_code() == SHMBUS_E_LOST);
    CHECK(std::string(shmbus_last_error_message()).starts_with("lost"));
    CHECK(shmbus_subscriber_lost(sub) == 1);

    // The next batch says how many were overwritten before it; nothing else goes missing.
    REQUIRE(shmbus_subscriber_receive(sub, &msg, 1, SHMBUS_WAIT_FOREVER, &count, &lost_before) ==
            SHMBUS_OK);
    CHECK(lost_before >= 1);
    CHECK(msg.sequence == held + 1 + lost_before);
    CHECK(shmbus_subscriber_release(sub, &lost) == SHMBUS_OK);
    CHECK(lost == 0);
    CHECK(shmbus_subscriber_lost(sub) == 1 + lost_before);

    shmbus_subscriber_close(sub);
    shmbus_client_close(c);
}
