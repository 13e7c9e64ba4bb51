// A million messages through a bridge between two real shmbusd processes (TCP loopback,
// configured in their YAML), each carrying its sequence number and a checksum of its bytes,
// in lengths that vary from message to message: every one arrives on the far side once, in
// order and intact, and neither the subscriber nor the bridge counts a loss. The channels are
// broadcast with the block policy at both ends, and the export blocks on congestion, so a slow
// side holds the other back and nothing may be dropped anywhere on the way. SHMBUS_TEST_SCALE
// scales the count (sanitizer builds run fewer).
#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMinBytes = 16; // the sequence and the checksum
constexpr std::size_t kMaxBytes = 128;
constexpr std::size_t kBatch = 64;

/// The channel at both ends: deep enough for many batches in flight.
TestChannel bulk() {
    return {.name = "bulk",
            .kind = "broadcast",
            .slot_size = kMaxBytes,
            .slot_count = 1024,
            .max_subscribers = 2};
}

/// How long message `seq` is: every length from kMinBytes to kMaxBytes comes round.
std::size_t length_of(std::uint64_t seq) {
    return kMinBytes + static_cast<std::size_t>((seq * 7919) % (kMaxBytes - kMinBytes + 1));
}

/// FNV-1a over `bytes`.
std::uint64_t checksum(std::span<const std::byte> bytes) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::byte b : bytes) {
        h = (h ^ static_cast<std::uint64_t>(b)) * 0x100000001b3ULL;
    }
    return h;
}

/// Message `seq`: its stamp (the sequence first, then bytes derived from it), its last 8
/// bytes the checksum of the others.
void fill(std::span<std::byte> out, std::uint64_t seq) {
    stamp(out.first(out.size() - 8), seq);
    const std::uint64_t sum = checksum(out.first(out.size() - 8));
    std::memcpy(out.data() + out.size() - 8, &sum, 8);
}

/// The sequence of an intact message, or UINT64_MAX if its length or checksum is wrong.
std::uint64_t check(std::span<const std::byte> in) {
    if (in.size() < kMinBytes) {
        return UINT64_MAX;
    }
    std::uint64_t sum = 0;
    std::memcpy(&sum, in.data() + in.size() - 8, 8);
    std::uint64_t seq = 0;
    std::memcpy(&seq, in.data(), 8);
    if (sum != checksum(in.first(in.size() - 8)) || in.size() != length_of(seq)) {
        return UINT64_MAX;
    }
    return seq;
}

} // namespace

TEST_CASE("a million messages cross a bridge with none lost, none reordered, none corrupted") {
    TempDir dir;
    const std::string key = make_secret(dir);
    DaemonProcess ground{channels_yaml({bulk()}) +
                         "bridges:\n"
                         "  - name: robot\n"
                         "    listen: tcp://127.0.0.1:0\n"
                         "    secret_file: " +
                         key + "\n    import: [bulk]\n"};
    REQUIRE(ground.start());
    const auto port = std::to_string(listening_port(ground, "robot"));
    DaemonProcess robot{
        channels_yaml({bulk()}) +
        "bridges:\n"
        "  - name: ground\n"
        "    connect: tcp://127.0.0.1:" +
        port + "\n    secret_file: " + key +
        "\n    export: [{channel: bulk, on_congestion: block, block_timeout: 1h}]\n"};
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "ground", 1));

    const std::uint64_t count = scaled(1'000'000);
    auto receiver = Client::connect(options_for(ground));
    REQUIRE(receiver.has_value());
    auto sub = receiver.value().open_subscriber("bulk");
    REQUIRE(sub.has_value());

    std::atomic<bool> publisher_failed{false};
    std::thread publisher{[&] {
        auto sender = Client::connect(options_for(robot));
        auto pub =
            sender ? sender.value().open_publisher("bulk") : Result<Publisher>{sender.take_error()};
        if (!pub) {
            publisher_failed.store(true);
            return;
        }
        for (std::uint64_t seq = 0; seq < count;) {
            auto batch = pub.value().reserve(std::min<std::uint64_t>(kBatch, count - seq), 60s);
            if (!batch) {
                publisher_failed.store(true);
                return;
            }
            WriteBatch& w = batch.value();
            for (std::size_t i = 0; i < w.size(); ++i, ++seq) {
                fill(w.data(i).first(length_of(seq)), seq);
                w.set_length(i, length_of(seq));
            }
            if (!pub.value().commit(w)) {
                publisher_failed.store(true);
                return;
            }
        }
    }};

    std::uint64_t next = 0;
    std::uint64_t out_of_order = 0; // wrong sequence, or corrupted
    std::uint64_t lost = 0;
    while (next < count && out_of_order == 0) {
        auto batch = sub.value().receive(kBatch, 60s);
        if (!batch) {
            break; // nothing for a minute: the checks below say how far it came
        }
        ReadBatch& b = batch.value();
        lost += b.lost_before();
        for (std::size_t i = 0; i < b.size(); ++i) {
            if (check(b.message(i).data) == next) {
                ++next;
            } else {
                ++out_of_order;
            }
        }
        REQUIRE(sub.value().release(b).has_value());
    }
    publisher.join();
    CHECK_FALSE(publisher_failed.load());
    CHECK(next == count);
    CHECK(out_of_order == 0);
    CHECK(lost == 0);
    CHECK(sub.value().lost() == 0);

    // The bridge saw it the same way at both ends: everything moved, nothing lost. (A stream
    // counts a batch once it has handed it on, which may be just after the subscriber got it.)
    for (const auto& [daemon, bridge] :
         {std::pair{&robot, "ground"}, std::pair{&ground, "robot"}}) {
        std::optional<BridgeSummary> b;
        CHECK(wait_until([&] {
            b = bridge_of(*daemon, bridge);
            return b && b->streams.size() == 1 && b->streams[0].messages == count;
        }));
        REQUIRE(b.has_value());
        REQUIRE(b->streams.size() == 1);
        CHECK(b->streams[0].lost == 0);
    }
}
