// The C ABI (shmbus/shmbus.h) against the real shmbusd: a C11 program (c_api_client.c, built
// with -pedantic -Werror) checks errors, timeouts and zero-copy on its own and exchanges
// messages with the C++ API of this process, each way; the drop policy's loss is checked
// through the C calls from here, with a C++ publisher overwriting what a C reader holds. The
// complete example of docs/c-api.md, built from the page, runs alone on one channel and with
// this process at the other ends of two.
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

#include <array>
#include <cstdio>
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
    {.name = "doc-out", .kind = "queue", .slot_size = 64},
    {.name = "doc-in", .kind = "queue", .slot_size = 64},
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

/// Runs `attempt` while the C program runs: see while_program_runs().
template <typename Attempt>
auto while_c_runs(Child& child, std::uint64_t n, Attempt attempt) {
    return while_program_runs(child, n, kWait, std::move(attempt));
}

/// Runs the complete example of docs/c-api.md, writing to `out_channel` and reading from
/// `in_channel` (nullptr: the same channel), with its stdout on `stdout_fd` if given. It finds
/// the daemon as every client does: $SHMBUS_SOCKET first.
Child run_doc_example(const DaemonProcess& d, const char* out_channel,
                      const char* in_channel = nullptr, int stdout_fd = -1) {
    const std::string socket = d.socket_path().native();
    return Child::spawn([socket, out_channel, in_channel, stdout_fd] {
        ::setenv("SHMBUS_SOCKET", socket.c_str(), 1);
        if (stdout_fd >= 0 && ::dup2(stdout_fd, STDOUT_FILENO) < 0) {
            std::perror("dup2");
            return 126;
        }
        ::execl(C_API_DOC_EXAMPLE_PATH, C_API_DOC_EXAMPLE_PATH, out_channel, in_channel,
                static_cast<char*>(nullptr));
        std::perror("execl c_api_doc_example");
        return 127;
    });
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
    Child child = run_doc_example(d, "cq");
    require_exited_ok(child, kWait);
    // It left the channel empty: it read back everything it wrote.
    Client client = connect_to(d);
    auto info = client.channel_info("cq");
    REQUIRE(info);
    CHECK(info->summary.stats.published >= 2); // in place (1 to 3) and copied
    CHECK(info->summary.stats.depth == 0);
}

TEST_CASE("the example of docs/c-api.md exchanges messages with a C++ program through shmbusd") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d);
    // The C++ side writes first: the queue keeps the messages until the example reads them.
    auto pub = client.open_publisher("doc-in");
    REQUIRE(pub);
    std::vector<std::string> sent;
    for (int i = 0; i < 4; ++i) {
        sent.push_back("from c++ " + std::to_string(i));
        REQUIRE(pub->try_send(std::as_bytes(std::span{sent.back()})));
    }
    auto sub = client.open_subscriber("doc-out");
    REQUIRE(sub);

    Pipe out = Pipe::make();
    Child child = run_doc_example(d, "doc-out", "doc-in", out.write_end.get());
    out.write_end.reset();
    require_exited_ok(child, kWait);

    // What it wrote, in place and then by copy, the C++ subscriber reads.
    std::vector<std::string> received;
    for (;;) {
        std::vector<std::byte> buf(64);
        auto got = sub->try_receive_copy(buf);
        if (!got) {
            REQUIRE(got.error().code == Errc::would_block);
            break;
        }
        received.emplace_back(reinterpret_cast<const char*>(buf.data()), got->size);
    }
    REQUIRE(received.size() >= 2);
    const std::size_t in_place = received.size() - 1;
    for (std::size_t i = 0; i < in_place; ++i) {
        CHECK(received[i] == "message " + std::to_string(i));
    }
    CHECK(received.back() == "hello");

    // It read as many of the C++ messages and printed them, in order.
    std::string printed;
    std::array<char, 4096> chunk{};
    for (ssize_t n = 0; (n = ::read(out.read_end.get(), chunk.data(), chunk.size())) > 0;) {
        printed.append(chunk.data(), static_cast<std::size_t>(n));
    }
    std::string expected;
    for (std::size_t i = 0; i <= in_place; ++i) {
        expected += "#" + std::to_string(i) + " " + sent[i] + "\n";
    }
    CHECK(printed == expected);
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
