// examples/event-loop/asio_loop.cpp against the real shmbusd: the example serves an rpc
// channel and follows a broadcast channel from one asio io_context, through the wait
// handles; calls made here get their echo, a message published here is printed, and SIGINT
// ends it with status 0. Where asio was not found the example is not built: the test skips.
//
// Synchronisation is on events: READY=1, the example's "ready" line, replies, its output
// lines, its exit.
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "process.hpp"
#include "skip.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <unistd.h>

#ifndef SHMBUS_ASIO_EXAMPLE_PATH
#define SHMBUS_ASIO_EXAMPLE_PATH "" // not built: no standalone asio
#endif

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = R"(channels:
  - {name: svc, kind: rpc}
  - {name: telemetry, kind: broadcast, slot_size: 64, slot_count: 16}
)";

/// Reads what `fd` gives until `want` appears in it, or the deadline; returns all read.
std::string read_until(int fd, const std::string& want, std::string& so_far) {
    const Deadline deadline;
    while (so_far.find(want) == std::string::npos && !deadline.passed()) {
        if (!becomes_readable(fd, deadline)) {
            break;
        }
        char buf[512];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        so_far.append(buf, static_cast<std::size_t>(n));
    }
    return so_far;
}

} // namespace

TEST_CASE("the asio example serves calls and prints messages from one io_context") {
    if (std::string{SHMBUS_ASIO_EXAMPLE_PATH}.empty()) {
        SHMBUS_SKIP("standalone asio (libasio-dev) is not installed: the example was not built");
    }
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Pipe out = Pipe::make();
    const std::string socket = d.socket_path().native();
    const int out_fd = out.write_end.get();
    Child example = Child::spawn([&socket, out_fd] {
        ::dup2(out_fd, STDOUT_FILENO);
        ::execl(SHMBUS_ASIO_EXAMPLE_PATH, SHMBUS_ASIO_EXAMPLE_PATH, "--socket", socket.c_str(),
                "--serve", "svc", "telemetry", static_cast<char*>(nullptr));
        std::perror("execl shmbus-asio-example");
        return 127;
    });
    out.write_end.reset();
    std::string printed;
    REQUIRE_THAT(read_until(out.read_end.get(), "ready\n", printed),
                 Catch::Matchers::Contains("ready\n"));

    auto client = Client::connect(client_options(d, "asio-test"));
    REQUIRE(client);
    auto caller = client->open_caller("svc");
    REQUIRE(caller);
    for (int i = 0; i < 100; ++i) {
        const std::string request = "call " + std::to_string(i);
        auto reply = caller->call(bytes_of(request), 30s);
        INFO("call " << i << ": " << (reply ? std::string{} : reply.error().message()));
        REQUIRE(reply);
        CHECK(text_of(reply->data) == request);
    }
    auto pub = client->open_publisher("telemetry");
    REQUIRE(pub);
    REQUIRE(pub->send(bytes_of("hello"), 30s));
    CHECK_THAT(read_until(out.read_end.get(), "telemetry #0: 5 bytes\n", printed),
               Catch::Matchers::Contains("telemetry #0: 5 bytes\n"));
    // Its peer events: this caller attached to the rpc channel, the publisher to the other.
    CHECK_THAT(read_until(out.read_end.get(), "svc: publisher", printed),
               Catch::Matchers::Contains("svc: publisher"));

    REQUIRE(::kill(example.pid(), SIGINT) == 0);
    auto status = example.wait();
    REQUIRE(status);
    INFO("the example " << status->describe() << "; it printed:\n" << printed);
    CHECK(status->exited_ok());
}
