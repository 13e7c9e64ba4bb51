// A block broadcast channel with one publisher runs the SPSC algorithm (publisher.cpp: the
// sole writer), and its subscribers read on the inline path with their cursor as the
// consumer position. What that must keep from the claimed algorithm: a subscriber joining
// mid-stream loses nothing from its first message on, a gap record reaches the batch after
// it even when a poll found the gap alone, a successor publisher resumes after its
// predecessor, and the high-water mark is the depth behind the slowest subscriber.
#include "channel_endpoints.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include <shmbus/supervisor.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

TEST_CASE("a gap a subscriber polled alone is reported with the next message's batch") {
    auto f = make(spec("sole-gap", ChannelKind::broadcast, 32, 8, 1, 1));
    auto pub = publisher(f, WaitMode::spin);
    auto sub = subscriber(f, WaitMode::spin);
    REQUIRE(pub.record_gap(5, 1s));
    // The poll counts the gap but has no message to report it with.
    CHECK(sub.try_receive().code() == Errc::would_block);
    CHECK(sub.lost() == 5);
    send_id(pub, 9);
    auto batch = sub.try_receive(4);
    REQUIRE(batch);
    CHECK(batch->size() == 1);
    CHECK(batch->lost_before() == 5);
    CHECK(check_stamp(batch->message(0).data) == 9);
    REQUIRE(sub.release(*batch));
    // Reported once: the next batch has no loss before it.
    send_id(pub, 10);
    auto next = sub.try_receive();
    REQUIRE(next);
    CHECK(next->lost_before() == 0);
    REQUIRE(sub.release(*next));
}

TEST_CASE("a successor sole publisher resumes after what its predecessor published") {
    auto f = make(spec("sole-successor", ChannelKind::broadcast, 32, 4, 1, 1));
    auto sub = subscriber(f, WaitMode::spin);
    {
        auto first = publisher(f, WaitMode::spin);
        send_id(first, 1);
        send_id(first, 2);
    }
    auto second = publisher(f, WaitMode::spin);
    send_id(second, 3);
    std::byte buf[32];
    for (std::uint64_t id = 1; id <= 3; ++id) {
        auto r = sub.try_receive_copy(buf);
        REQUIRE(r);
        CHECK(r->sequence == id - 1);
        CHECK(check_stamp({buf, r->size}) == id);
        CHECK(r->lost_before == 0);
    }
    CHECK(sub.try_receive().code() == Errc::would_block);
}

TEST_CASE("the high-water mark of a block broadcast channel is the depth behind the slowest "
          "subscriber") {
    auto f = make(spec("sole-high-water", ChannelKind::broadcast, 32, 8, 1, 2));
    auto pub = publisher(f, WaitMode::spin);
    auto fast = subscriber(f, WaitMode::spin);
    auto slow = subscriber(f, WaitMode::spin);
    for (std::uint64_t id = 0; id < 5; ++id) {
        send_id(pub, id);
        auto r = fast.try_receive();
        REQUIRE(r);
        REQUIRE(fast.release(*r));
    }
    auto st = read_stats(f);
    REQUIRE(st);
    CHECK(st->high_water == 5);
    // Full behind the slow subscriber: the next send waits for it.
    for (std::uint64_t id = 5; id < 8; ++id) {
        send_id(pub, id);
    }
    std::byte msg[24];
    stamp(msg, 8);
    CHECK(pub.try_send(msg).code() == Errc::would_block);
    st = read_stats(f);
    REQUIRE(st);
    CHECK(st->high_water == 8);
}

TEST_CASE("a subscriber joining while the sole publisher streams gets every message from its "
          "first on") {
    // The join handshake (Subscriber::attach) against a publisher that scans the cursors only
    // when its cached view says the ring is full: a small ring, so that it scans often.
    const std::uint64_t n = scaled(200000, 20000);
    for (int round = 0; round < 4; ++round) {
        auto f = make(spec("sole-join", ChannelKind::broadcast, 32, 8, 1, 2));
        auto pub = publisher(f, WaitMode::adaptive);
        auto early = subscriber(f, WaitMode::adaptive);
        std::atomic<std::uint64_t> sent{0};
        std::string why; // the publisher thread's, read after join
        std::thread writer{[&] {
            std::byte msg[32];
            for (std::uint64_t id = 0; id < n; ++id) {
                stamp(msg, id);
                if (auto r = pub.send(msg, 60s); !r) {
                    why = "sending id " + std::to_string(id) + ": " + r.error().message();
                    return;
                }
                sent.store(id + 1, std::memory_order_release);
            }
        }};
        // The early subscriber drains from another thread so that the publisher keeps going.
        std::string early_why;
        std::thread drain{[&] {
            std::byte buf[32];
            for (std::uint64_t expect = 0; expect < n; ++expect) {
                auto r = early.receive_copy(buf, 60s);
                if (!r || check_stamp({buf, r->size}) != expect) {
                    early_why =
                        "early subscriber: id " + std::to_string(expect) + " did not arrive";
                    return;
                }
            }
        }};
        // Join at a moment that varies with the round, while messages flow.
        const std::uint64_t join_at = n / 8 * static_cast<std::uint64_t>(round + 1);
        const Deadline deadline;
        while (sent.load(std::memory_order_acquire) < join_at && !deadline.passed()) {
            std::this_thread::yield();
        }
        auto late = subscriber(f, WaitMode::adaptive);
        std::byte buf[32];
        auto first = late.receive_copy(buf, 60s);
        REQUIRE(first);
        CHECK(first->lost_before == 0);
        std::uint64_t expect = check_stamp({buf, first->size}) + 1;
        REQUIRE(expect <= n);
        for (; expect < n; ++expect) {
            auto r = late.receive_copy(buf, 60s);
            REQUIRE(r);
            REQUIRE(r->lost_before == 0);
            REQUIRE(check_stamp({buf, r->size}) == expect);
        }
        writer.join();
        drain.join();
        CHECK(why.empty());
        CHECK(early_why.empty());
    }
}
