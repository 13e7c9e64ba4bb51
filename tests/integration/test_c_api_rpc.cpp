// rpc channels through the C ABI against the real shmbusd: a C11 program
// (c_api_rpc_client.c, built with -pedantic -Werror) checks errors, a zero-copy reply, lost
// replies, wait handles and server_gone on its own, serves calls made from C++ and calls a
// C++ server.
//
// Synchronisation is on events only: READY=1, replies arriving, the child exiting.
#include "c_program.hpp"
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#ifndef C_API_RPC_CLIENT_PATH
#error "C_API_RPC_CLIENT_PATH must name the C program"
#endif

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = R"(channels:
  - {name: crpc, kind: rpc}
  - {name: c_serves, kind: rpc}
  - {name: cpp_serves, kind: rpc}
  - {name: plain, kind: queue}
)";

constexpr int kCalls = 200;
constexpr auto kWait = std::chrono::seconds{60};

Child run_rpc_program(const DaemonProcess& d, std::vector<std::string> args) {
    return run_c_program(C_API_RPC_CLIENT_PATH, d, std::move(args));
}

} // namespace

TEST_CASE("a C program checks rpc errors, replies, wait handles and server_gone") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Child c = run_rpc_program(d, {"selftest", "crpc", "plain"});
    require_exited_ok(c, kWait);
}

TEST_CASE("a C server answers calls made from C++, in place") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    auto client = Client::connect(client_options(d, "cpp-caller"));
    REQUIRE(client);
    auto caller = client->open_caller("c_serves", {}, true); // the C server may come later
    REQUIRE(caller);
    Child server = run_rpc_program(d, {"serve", "c_serves", std::to_string(kCalls)});
    int matched = 0;
    for (int i = 0; i < kCalls; ++i) {
        const std::string request = "cpp-" + std::to_string(i);
        auto reply = caller->call(bytes_of(request), kWait);
        INFO("call " << i << ": " << (reply ? std::string{} : reply.error().message()));
        REQUIRE(reply);
        matched += text_of(reply->data) == "c:" + request ? 1 : 0;
    }
    CHECK(matched == kCalls);
    require_exited_ok(server, kWait);
}

TEST_CASE("a C caller calls a C++ server, waiting and polling") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    auto client = Client::connect(client_options(d, "cpp-server"));
    REQUIRE(client);
    auto server = client->open_server("cpp_serves");
    REQUIRE(server);
    Child c = run_rpc_program(d, {"call", "cpp_serves", std::to_string(kCalls)});
    // Serve on this thread until the C program has had its answers and ended.
    int served = 0;
    int failed = 0;
    const Deadline deadline{kWait};
    while (!c.wait(Deadline{std::chrono::nanoseconds::zero()}) && !deadline.passed()) {
        auto batch = server->receive(16, 20ms);
        if (!batch) {
            continue;
        }
        for (const Request& r : *batch) {
            if (server->respond(r, bytes_of("cpp:" + text_of(r.data)))) {
                ++served;
            } else {
                ++failed;
            }
        }
    }
    CHECK(served == kCalls);
    CHECK(failed == 0);
    require_exited_ok(c, kWait);
}
