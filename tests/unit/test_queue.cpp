// Queue channels through the public API, in one process: every API form, ordering,
// sequence numbers, full and empty rings, oversize messages, and threaded exactly-once
// delivery (the multi-process versions live in tests/integration).
//
// The threaded tests end at a deadline, not at the ctest timeout: a consumer that has not
// seen every message by then stops, and the test fails naming the ids that never arrived.
#include "process.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

struct QueuePair {
    Publisher pub;
    Subscriber sub;
};

QueuePair open_pair(const ChannelSpec& s, WaitMode wait = WaitMode::adaptive) {
    auto files = create_channel(s);
    REQUIRE(files);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher), {wait});
    REQUIRE(pub);
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber), {wait});
    REQUIRE(sub);
    return {std::move(*pub), std::move(*sub)};
}

/// Counts how often each id was delivered: proves nothing is lost or read twice.
class DeliveryLedger {
public:
    void saw(std::uint64_t id) { ++seen_[id]; }
    [[nodiscard]] bool each_exactly_once(std::uint64_t first, std::uint64_t count) const {
        if (seen_.size() != count) {
            return false;
        }
        for (std::uint64_t id = first; id < first + count; ++id) {
            auto it = seen_.find(id);
            if (it == seen_.end() || it->second != 1) {
                return false;
            }
        }
        return true;
    }
    [[nodiscard]] std::size_t distinct() const { return seen_.size(); }
    /// The ids in [first, first + count) seen other than once, as "id 7 never arrived, id 9
    /// arrived 2 times", at most `at_most` of them and how many more; empty if none.
    [[nodiscard]] std::string anomalies(std::uint64_t first, std::uint64_t count,
                                        std::size_t at_most = 8) const {
        std::string text;
        std::size_t found = 0;
        for (std::uint64_t id = first; id < first + count; ++id) {
            const auto it = seen_.find(id);
            const int times = it == seen_.end() ? 0 : it->second;
            if (times == 1) {
                continue;
            }
            if (++found <= at_most) {
                text += (text.empty() ? "" : ", ") + std::string{"id "} + std::to_string(id) +
                        (times == 0 ? " never arrived"
                                    : " arrived " + std::to_string(times) + " times");
            }
        }
        if (found > at_most) {
            text += ", and " + std::to_string(found - at_most) + " more";
        }
        return text;
    }

private:
    std::map<std::uint64_t, int> seen_;
};

} // namespace

TEST_CASE("a message sent on an SPSC queue is received intact with sequence 0") {
    auto q = open_pair(spec("spsc-one", ChannelKind::queue, 64, 8));
    REQUIRE(q.pub.try_send(bytes_of("hello")));
    std::byte buf[64];
    auto r = q.sub.try_receive_copy(buf);
    REQUIRE(r);
    CHECK(r->size == 5);
    CHECK(r->sequence == 0);
    CHECK(r->lost_before == 0);
    CHECK(text_of({buf, r->size}) == "hello");
}

TEST_CASE("an empty queue reports would_block and a blocking receive times out") {
    auto q = open_pair(spec("empty", ChannelKind::queue, 64, 8), WaitMode::blocking);
    CHECK(q.sub.try_receive().code() == Errc::would_block);
    std::byte buf[8];
    CHECK(q.sub.try_receive_copy(buf).code() == Errc::would_block);
    auto r = q.sub.receive(1, 5ms);
    CHECK(r.code() == Errc::timed_out);
}

TEST_CASE("a full queue refuses the next message and accepts it after one is released") {
    auto q = open_pair(spec("full", ChannelKind::queue, 16, 4));
    for (int i = 0; i < 4; ++i) {
        REQUIRE(q.pub.try_send(bytes_of("m" + std::to_string(i))));
    }
    CHECK(q.pub.try_send(bytes_of("x")).code() == Errc::would_block);
    CHECK(q.pub.send(bytes_of("x"), 2ms).code() == Errc::timed_out);
    auto b = q.sub.try_receive();
    REQUIRE(b);
    CHECK(text_of(b->message(0).data) == "m0");
    REQUIRE(q.sub.release(*b));
    CHECK(q.pub.try_send(bytes_of("m4")));
}

TEST_CASE("a message larger than the slot is refused naming both sizes") {
    auto q = open_pair(spec("too-big", ChannelKind::queue, 16, 4));
    std::vector<std::byte> big(17);
    auto r = q.pub.try_send(big);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::message_too_large);
    CHECK(r.error().detail.find("17 bytes") != std::string::npos);
    CHECK(r.error().detail.find("16 bytes") != std::string::npos);
    auto w = q.pub.try_reserve();
    REQUIRE(w);
    w->set_length(0, 17);
    CHECK(q.pub.commit(*w).code() == Errc::message_too_large);
    w->set_length(0, 16);
    CHECK(q.pub.commit(*w));
}

TEST_CASE("a receive buffer too small keeps the message for a larger one") {
    auto q = open_pair(spec("small-buf", ChannelKind::queue, 64, 4));
    REQUIRE(q.pub.try_send(bytes_of("0123456789")));
    std::byte small[4];
    CHECK(q.sub.try_receive_copy(small).code() == Errc::message_too_large);
    std::byte large[16];
    auto r = q.sub.try_receive_copy(large);
    REQUIRE(r);
    CHECK(text_of({large, r->size}) == "0123456789");
}

TEST_CASE("zero-length messages are delivered with their sequence numbers") {
    auto q = open_pair(spec("zero", ChannelKind::queue, 8, 4));
    REQUIRE(q.pub.try_send({}));
    REQUIRE(q.pub.try_send({}));
    std::byte buf[1];
    auto a = q.sub.try_receive_copy(buf);
    auto b = q.sub.try_receive_copy(buf);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->size == 0);
    CHECK(b->sequence == a->sequence + 1);
}

TEST_CASE("a batch reserve publishes all its slots with one commit, in order") {
    auto q = open_pair(spec("batch", ChannelKind::queue, 32, 16));
    auto w = q.pub.try_reserve(10);
    REQUIRE(w);
    REQUIRE(w->size() == 10);
    for (std::size_t i = 0; i < w->size(); ++i) {
        stamp(w->data(i).first(24), i);
        w->set_length(i, 24);
    }
    CHECK(q.sub.try_receive().code() == Errc::would_block); // nothing visible before commit
    REQUIRE(q.pub.commit(*w));
    auto b = q.sub.try_receive(64);
    REQUIRE(b);
    REQUIRE(b->size() == 10);
    for (std::size_t i = 0; i < b->size(); ++i) {
        CHECK(b->message(i).sequence == i);
        CHECK(check_stamp(b->message(i).data) == i);
    }
    REQUIRE(q.sub.release(*b));
}

TEST_CASE("a batch reserve on a nearly full ring returns only the free slots") {
    auto q = open_pair(spec("partial", ChannelKind::queue, 8, 8));
    for (int i = 0; i < 5; ++i) {
        REQUIRE(q.pub.try_send(bytes_of("x")));
    }
    auto w = q.pub.try_reserve(8);
    REQUIRE(w);
    CHECK(w->size() == 3);
    q.pub.abandon(*w);
}

TEST_CASE("a second reserve or receive while a batch is outstanding is refused") {
    auto q = open_pair(spec("outstanding", ChannelKind::queue, 8, 8));
    auto w = q.pub.try_reserve();
    REQUIRE(w);
    CHECK(q.pub.try_reserve().code() == Errc::invalid_argument);
    w->set_length(0, 0);
    REQUIRE(q.pub.commit(*w));
    REQUIRE(q.pub.try_send({}));
    auto b = q.sub.try_receive();
    REQUIRE(b);
    CHECK(q.sub.try_receive().code() == Errc::invalid_argument);
    REQUIRE(q.sub.release(*b));
    CHECK(q.sub.release(*b).code() == Errc::invalid_argument);
}

TEST_CASE("an abandoned MPMC reservation is skipped by consumers and counted") {
    auto files = create_channel(spec("abandon", ChannelKind::queue, 16, 8, 2, 2));
    REQUIRE(files);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    auto sup = ChannelSupervisor::attach(*files->duplicate_for(Role::publisher));
    REQUIRE(pub);
    REQUIRE(sub);
    REQUIRE(sup);
    auto w = pub->try_reserve();
    REQUIRE(w);
    pub->abandon(*w);
    REQUIRE(pub->try_send(bytes_of("after")));
    std::byte buf[16];
    auto r = sub->try_receive_copy(buf);
    REQUIRE(r);
    CHECK(text_of({buf, r->size}) == "after");
    CHECK(r->sequence == 1);
    CHECK(sup->stats().abandoned == 1);
}

TEST_CASE("the supervisor abandons a dead producer's reservation so consumers pass it") {
    auto files = create_channel(spec("dead-prod", ChannelKind::queue, 16, 8, 2, 1));
    REQUIRE(files);
    auto sup = ChannelSupervisor::attach(*files->duplicate_for(Role::publisher));
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    auto live = Publisher::attach(*files->duplicate_for(Role::publisher));
    REQUIRE(sup);
    REQUIRE(sub);
    REQUIRE(live);
    // The "dead" producer: an endpoint that reserved and will never commit. We keep its
    // object alive (so its destructor cannot help) and reclaim its entry as the daemon would.
    auto dead = Publisher::attach(*files->duplicate_for(Role::publisher));
    REQUIRE(dead);
    auto held = dead->try_reserve();
    REQUIRE(held);
    REQUIRE(live->try_send(bytes_of("behind")));
    CHECK(sub->try_receive().code() == Errc::would_block); // stuck behind the reservation
    auto report = sup->reclaim_publisher(dead->endpoint_index());
    REQUIRE(report);
    CHECK(report->abandoned_slots == 1);
    std::byte buf[16];
    auto r = sub->try_receive_copy(buf);
    REQUIRE(r);
    CHECK(text_of({buf, r->size}) == "behind");
    CHECK(sup->reclaim_publisher(dead->endpoint_index()).code() == Errc::not_found);
    // The reclaimed producer learns it was reclaimed instead of corrupting the ring.
    held->set_length(0, 1);
    CHECK(dead->commit(*held).code() == Errc::closed);
}

TEST_CASE("the supervisor returns a dead consumer's taken messages to the others") {
    auto files = create_channel(spec("dead-cons", ChannelKind::queue, 16, 8, 1, 2));
    REQUIRE(files);
    auto sup = ChannelSupervisor::attach(*files->duplicate_for(Role::publisher));
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    auto dead = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    auto live = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(sup);
    REQUIRE(pub);
    REQUIRE(dead);
    REQUIRE(live);
    REQUIRE(pub->try_send(bytes_of("first")));
    REQUIRE(pub->try_send(bytes_of("second")));
    auto taken = dead->try_receive();
    REQUIRE(taken);
    REQUIRE(text_of(taken->message(0).data) == "first");
    auto report = sup->reclaim_subscriber(dead->endpoint_index());
    REQUIRE(report);
    CHECK(report->redelivered_slots == 1);
    std::vector<std::string> got;
    std::byte buf[16];
    for (int i = 0; i < 2; ++i) {
        auto r = live->try_receive_copy(buf);
        REQUIRE(r);
        got.push_back(text_of({buf, r->size}));
    }
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::string>{"first", "second"});
    CHECK(sup->stats().redelivered == 1);
}

TEST_CASE("channel statistics count published and consumed messages and the high-water mark") {
    auto files = create_channel(spec("stats", ChannelKind::queue, 16, 16));
    REQUIRE(files);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(pub);
    REQUIRE(sub);
    for (int i = 0; i < 10; ++i) {
        REQUIRE(pub->try_send(bytes_of("s")));
    }
    std::byte buf[16];
    for (int i = 0; i < 4; ++i) {
        REQUIRE(sub->try_receive_copy(buf));
    }
    auto st = read_stats(*files);
    REQUIRE(st);
    CHECK(st->published == 10);
    CHECK(st->consumed == 4);
    CHECK(st->depth == 6);
    CHECK(st->high_water >= 6);
    CHECK(st->publishers == 1);
    CHECK(st->subscribers == 1);
}

namespace {

/// Producers send ids [p * per, (p+1) * per); consumers record what they get.
void run_threaded_queue(std::uint32_t producers, std::uint32_t consumers, std::uint64_t per,
                        WaitMode wait) {
    auto files = create_channel(spec("threads", ChannelKind::queue, 32, 64, producers, consumers));
    REQUIRE(files);
    std::vector<Subscriber> subs;
    for (std::uint32_t c = 0; c < consumers; ++c) {
        auto s = Subscriber::attach(*files->duplicate_for(Role::subscriber), {wait});
        REQUIRE(s);
        subs.push_back(std::move(*s));
    }
    std::vector<Publisher> pubs;
    for (std::uint32_t p = 0; p < producers; ++p) {
        auto pb = Publisher::attach(*files->duplicate_for(Role::publisher), {wait});
        REQUIRE(pb);
        pubs.push_back(std::move(*pb));
    }
    const std::uint64_t total = per * producers;
    std::atomic<std::uint64_t> received{0};
    std::atomic<bool> failed{false};
    std::mutex why_mutex;
    std::string why; // the first failure of a thread, for the report
    const auto fail = [&](std::string what) {
        std::lock_guard lock(why_mutex);
        if (why.empty()) {
            why = std::move(what);
        }
        failed = true;
    };
    std::vector<std::vector<std::uint64_t>> seen(consumers);
    std::vector<std::thread> threads;
    const Deadline deadline;
    for (std::uint32_t c = 0; c < consumers; ++c) {
        threads.emplace_back([&, c] {
            while (received.load() < total && !failed.load() && !deadline.passed()) {
                auto b = subs[c].receive(8, 20ms);
                if (!b) {
                    if (b.code() != Errc::timed_out) {
                        fail("consumer " + std::to_string(c) + ": " + b.error().message());
                    }
                    continue;
                }
                for (std::size_t i = 0; i < b->size(); ++i) {
                    seen[c].push_back(check_stamp(b->message(i).data));
                }
                received += b->size();
                if (auto r = subs[c].release(*b); !r) {
                    fail("consumer " + std::to_string(c) + ": release: " + r.error().message());
                }
            }
        });
    }
    for (std::uint32_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            std::byte msg[32];
            for (std::uint64_t k = 0; k < per && !failed.load(); ++k) {
                const std::uint64_t id = p * per + k;
                stamp(msg, id);
                if (auto r = pubs[p].send(msg, 10s); !r) {
                    fail("producer " + std::to_string(p) + ": sending id " + std::to_string(id) +
                         ": " + r.error().message());
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    DeliveryLedger ledger;
    for (const auto& v : seen) {
        for (auto id : v) {
            ledger.saw(id);
        }
    }
    INFO(received.load() << " of " << total << " messages received before the deadline ("
                         << kGenerousDeadline.count() << " s)" << (why.empty() ? "" : "; ") << why
                         << "; " << ledger.anomalies(0, total));
    REQUIRE_FALSE(failed.load());
    CHECK(ledger.distinct() == total);
    CHECK(ledger.each_exactly_once(0, total));
    if (producers == 1) {
        for (const auto& v : seen) {
            CHECK(std::is_sorted(v.begin(), v.end())); // one producer: FIFO per consumer
        }
    }
}

} // namespace

TEST_CASE("threads on an SPSC queue deliver every message exactly once, in order") {
    run_threaded_queue(1, 1, scaled(200000), WaitMode::spin);
}

TEST_CASE("threads on an MPMC queue deliver every message exactly once") {
    run_threaded_queue(2, 2, scaled(100000), WaitMode::adaptive);
}

TEST_CASE("threads on an MPSC queue with futex waits deliver every message exactly once") {
    run_threaded_queue(3, 1, scaled(50000), WaitMode::blocking);
}
