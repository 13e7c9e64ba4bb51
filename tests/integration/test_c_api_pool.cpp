// The C ABI of pool channels (shmbus.h, "Pool channels") against the real shmbusd: a C11
// program (c_api_pool_client.c, built with -pedantic -Werror) checks roles, errors, stale
// handles and block lifetimes on its own, and passes blocks by handle through a queue to the
// C++ API of this process, each way. The pool has 4 blocks and each way moves 200, so every
// block is given back and reused many times, the writer waiting for the reader's releases.
//
// Synchronisation is on events only: READY=1, handles arriving, the child exiting.
#include "c_program.hpp"
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "process.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#if !defined(C_API_POOL_CLIENT_PATH)
#error "C_API_POOL_CLIENT_PATH must name the C program"
#endif

using namespace shmbus;
using namespace shmbus::test;

namespace {

const std::string kChannels = channels_yaml({
    {.name = "frames",
     .kind = "pool",
     .slot_size = 4096,
     .slot_count = 4,
     .max_publishers = 2,
     .max_subscribers = 2},
    {.name = "handles", .kind = "queue", .slot_size = 16},
    {.name = "other", .kind = "queue"},
});

constexpr std::uint64_t kBlocks = 200;
constexpr auto kWait = std::chrono::seconds{60};

Child run_pool_program(const DaemonProcess& d, std::vector<std::string> args) {
    return run_c_program(C_API_POOL_CLIENT_PATH, d, std::move(args));
}

Client connect_to(const DaemonProcess& d) {
    auto c = Client::connect(client_options(d, "test_c_api_pool"));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

/// The NUL-terminated text at the start of `block`.
std::string text_in(const PoolBlock& block) {
    const auto* text = reinterpret_cast<const char*>(block.data().data());
    return std::string(text, ::strnlen(text, block.data().size()));
}

/// What the pool's counters say once every block is back: none in use.
void require_every_block_back(Client& c) {
    auto info = c.channel_info("frames");
    INFO((info ? std::string{} : info.error().message()));
    REQUIRE(info);
    CHECK(info->summary.stats.depth == 0);
}

} // namespace

TEST_CASE("a C program checks pool roles, errors, stale handles and block lifetimes") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Child child = run_pool_program(d, {"selftest"});
    require_exited_ok(child, kWait);
    Client c = connect_to(d);
    require_every_block_back(c);
}

TEST_CASE("blocks a C writer hands on through a queue are read by a C++ reader") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto pool = c.open_pool("frames", Role::subscriber);
    REQUIRE(pool);
    auto handles = c.open_subscriber("handles");
    REQUIRE(handles);
    Child child = run_pool_program(d, {"send", std::to_string(kBlocks)});
    for (std::uint64_t n = 0; n < kBlocks; ++n) {
        BlockHandle h{};
        const auto got = while_program_runs(child, n, kWait, [&](auto timeout) {
            return handles->receive_copy(std::as_writable_bytes(std::span{&h, 1}), timeout);
        });
        REQUIRE(got->size == sizeof h);
        auto block = pool->adopt(h);
        INFO("block " << n << ": " << (block ? std::string{} : block.error().message()));
        REQUIRE(block);
        REQUIRE(text_in(*block) == "c block " + std::to_string(n));
        REQUIRE(block->release());
    }
    require_exited_ok(child, kWait);
    require_every_block_back(c);
}

TEST_CASE("blocks a C++ writer hands on through a queue are read by a C reader") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto pool = c.open_pool("frames", Role::publisher);
    REQUIRE(pool);
    auto handles = c.open_publisher("handles");
    REQUIRE(handles);
    Child child = run_pool_program(d, {"receive", std::to_string(kBlocks)});
    for (std::uint64_t n = 0; n < kBlocks; ++n) {
        // A block comes back once the C reader has released one: wait for it while it runs.
        auto block = while_program_runs(child, n, kWait,
                                        [&](auto timeout) { return pool->acquire(timeout); });
        const std::string text = "cpp block " + std::to_string(n);
        std::memcpy(block->mutable_data().data(), text.c_str(), text.size() + 1);
        auto h = pool->hand_on(std::move(*block));
        REQUIRE(h);
        REQUIRE(while_program_runs(child, n, kWait, [&](auto timeout) {
            return handles->send(std::as_bytes(std::span{&*h, 1}), timeout);
        }));
    }
    require_exited_ok(child, kWait);
    require_every_block_back(c);
}
