// Broadcast channels through the public API, in one process: fan-out, join at the newest
// message, block and drop policies, exact loss accounting, and dead-subscriber detach.
#include "channel_endpoints.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

std::uint64_t receive_id(Subscriber& s, std::uint64_t* lost_before = nullptr) {
    std::byte buf[64];
    auto r = s.try_receive_copy(buf);
    REQUIRE(r);
    if (lost_before != nullptr) {
        *lost_before = r->lost_before;
    }
    return check_stamp({buf, r->size});
}

} // namespace

TEST_CASE("every subscriber of a broadcast channel sees every message") {
    auto f = make(spec("fanout", ChannelKind::broadcast, 32, 16, 1, 3));
    auto pub = publisher(f);
    std::vector<Subscriber> subs;
    for (int i = 0; i < 3; ++i) {
        subs.push_back(subscriber(f));
    }
    for (std::uint64_t id = 0; id < 10; ++id) {
        send_id(pub, id);
    }
    for (auto& s : subs) {
        for (std::uint64_t id = 0; id < 10; ++id) {
            CHECK(receive_id(s) == id);
        }
        CHECK(s.try_receive().code() == Errc::would_block);
    }
}

TEST_CASE("a subscriber that joins late starts at the next message published") {
    auto f = make(spec("late", ChannelKind::broadcast, 32, 8, 1, 2));
    auto pub = publisher(f);
    auto early = subscriber(f);
    send_id(pub, 1);
    send_id(pub, 2);
    auto late = subscriber(f);
    CHECK(late.try_receive().code() == Errc::would_block);
    send_id(pub, 3);
    CHECK(receive_id(late) == 3);
    CHECK(receive_id(early) == 1);
}

TEST_CASE("a block-policy publisher waits for the slowest subscriber") {
    auto f = make(spec("block", ChannelKind::broadcast, 32, 4, 1, 2));
    auto pub = publisher(f);
    auto fast = subscriber(f);
    auto slow = subscriber(f);
    for (std::uint64_t id = 0; id < 4; ++id) {
        send_id(pub, id);
    }
    for (std::uint64_t id = 0; id < 4; ++id) {
        CHECK(receive_id(fast) == id);
    }
    std::byte msg[24];
    stamp(msg, 4);
    CHECK(pub.try_send(msg).code() == Errc::would_block);
    CHECK(receive_id(slow) == 0);
    CHECK(pub.try_send(msg));
}

TEST_CASE("a block-policy publisher is released when a dead subscriber is reclaimed") {
    auto f = make(spec("block-dead", ChannelKind::broadcast, 32, 4, 1, 2));
    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    auto pub = publisher(f, WaitMode::blocking);
    auto live = subscriber(f);
    auto dead = subscriber(f);
    for (std::uint64_t id = 0; id < 4; ++id) {
        send_id(pub, id);
        CHECK(receive_id(live) == id);
    }
    std::byte msg[24];
    stamp(msg, 4);
    // A thread blocks on the full ring; the reclaim must wake it.
    std::atomic<int> result{-1};
    std::thread waiter([&] { result = pub.send(msg, 30s) ? 1 : 0; });
    REQUIRE(sup->reclaim_subscriber(dead.endpoint_index()));
    waiter.join();
    CHECK(result.load() == 1);
    CHECK(receive_id(live) == 4);
}

TEST_CASE("a lapped drop-policy subscriber is told exactly how many messages it lost") {
    auto f = make(spec("drop", ChannelKind::broadcast, 32, 8, 1, 1, Overflow::drop));
    auto pub = publisher(f);
    auto sub = subscriber(f);
    for (std::uint64_t id = 0; id < 20; ++id) {
        send_id(pub, id); // never blocks: the oldest messages are overwritten
    }
    std::uint64_t lost = 0;
    const std::uint64_t first = receive_id(sub, &lost);
    CHECK(first == 12); // the ring holds the newest 8 of 20
    CHECK(lost == 12);
    for (std::uint64_t id = 13; id < 20; ++id) {
        CHECK(receive_id(sub, &lost) == id);
        CHECK(lost == 0);
    }
    CHECK(sub.lost() == 12);
    auto st = read_stats(f);
    REQUIRE(st);
    CHECK(st->dropped == 12);
}

TEST_CASE("a drop-policy zero-copy read overwritten before release reports lost") {
    auto f = make(spec("torn", ChannelKind::broadcast, 32, 4, 1, 1, Overflow::drop));
    auto pub = publisher(f);
    auto sub = subscriber(f);
    send_id(pub, 0);
    auto b = sub.try_receive();
    REQUIRE(b);
    for (std::uint64_t id = 1; id < 6; ++id) {
        send_id(pub, id); // laps slot 0 while it is held
    }
    auto rel = sub.release(*b);
    REQUIRE_FALSE(rel);
    CHECK(rel.code() == Errc::lost);
    CHECK(rel.error().detail.find("1 of 1") != std::string::npos);
    CHECK(sub.lost() >= 1);
}

TEST_CASE("two publishers on one broadcast channel interleave without loss") {
    auto f = make(spec("two-pubs", ChannelKind::broadcast, 32, 64, 2, 2));
    auto a = publisher(f);
    auto b = publisher(f);
    auto s1 = subscriber(f);
    auto s2 = subscriber(f);
    for (std::uint64_t id = 0; id < 20; ++id) {
        send_id(id % 2 == 0 ? a : b, id);
    }
    for (auto* s : {&s1, &s2}) {
        for (std::uint64_t id = 0; id < 20; ++id) {
            CHECK(receive_id(*s) == id);
        }
    }
}

TEST_CASE("a dead broadcast publisher's reservation is abandoned and subscribers pass it") {
    auto f = make(spec("dead-pub", ChannelKind::broadcast, 32, 8, 2, 1));
    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    auto sub = subscriber(f);
    auto dead = publisher(f);
    auto live = publisher(f);
    auto held = dead.try_reserve();
    REQUIRE(held);
    send_id(live, 7);
    CHECK(sub.try_receive().code() == Errc::would_block);
    auto report = sup->reclaim_publisher(dead.endpoint_index());
    REQUIRE(report);
    CHECK(report->abandoned_slots == 1);
    CHECK(receive_id(sub) == 7);
}

TEST_CASE("threads on a block broadcast channel: every subscriber gets every message in order") {
    auto f = make(spec("bthreads", ChannelKind::broadcast, 32, 64, 1, 3));
    const std::uint64_t n = scaled(100000);
    std::vector<Subscriber> subs;
    for (int i = 0; i < 3; ++i) {
        subs.push_back(subscriber(f));
    }
    auto pub = publisher(f);
    std::atomic<bool> failed{false};
    // What each thread saw go wrong first (each writes only its own entry).
    std::vector<std::string> why(4);
    std::vector<std::uint64_t> counts(3, 0);
    std::vector<std::thread> threads;
    const Deadline deadline;
    for (int i = 0; i < 3; ++i) {
        threads.emplace_back([&, i] {
            std::uint64_t expect = 0;
            std::byte buf[32];
            const std::string who = "subscriber " + std::to_string(i) + ": ";
            while (expect < n && !failed.load()) {
                if (deadline.passed()) {
                    why[i] = who + "id " + std::to_string(expect) + " never arrived";
                    break;
                }
                auto r = subs[i].receive_copy(buf, 100ms);
                if (!r && r.code() == Errc::timed_out) {
                    continue;
                }
                if (!r) {
                    why[i] = who + "waiting for id " + std::to_string(expect) + ": " +
                             r.error().message();
                } else if (r->lost_before != 0) {
                    why[i] = who + std::to_string(r->lost_before) + " lost before id " +
                             std::to_string(expect);
                } else if (const auto id = check_stamp({buf, r->size}); id != expect) {
                    why[i] = who + "id " + std::to_string(id) + " where " + std::to_string(expect) +
                             " was due";
                }
                if (!why[i].empty()) {
                    failed = true;
                    break;
                }
                ++expect;
            }
            counts[i] = expect;
        });
    }
    threads.emplace_back([&] {
        std::byte msg[32];
        for (std::uint64_t id = 0; id < n && !failed.load(); ++id) {
            stamp(msg, id);
            if (auto r = pub.send(msg, 10s); !r) {
                why[3] = "publisher: sending id " + std::to_string(id) + ": " + r.error().message();
                failed = true;
            }
        }
    });
    for (auto& t : threads) {
        t.join();
    }
    for (const auto& w : why) {
        INFO(w);
        CHECK(w.empty());
    }
    for (auto c : counts) {
        CHECK(c == n);
    }
}
