// Pool channels in one process (threads, and forked holders for SIGKILL): acquire, hand on,
// adopt, drop and release; generations that refuse stale handles; an exhausted pool; roles;
// many threads taking and passing blocks at once (no block ever out twice); the reclaim of a
// dead holder, including one killed between the two steps of an operation; and damaged
// free-list heads, links, state words and handles, each a clear error and never a crash.
#include "process.hpp"
#include "test_support.hpp"

#include "shm/pool_blocks.hpp"
#include "shm/segment.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
namespace sd = shmbus::detail;

namespace {

ChannelFiles make_pool(std::uint64_t block_size, std::uint64_t blocks, std::uint32_t writers = 2,
                       std::uint32_t readers = 4) {
    auto files =
        create_channel(spec("pool", ChannelKind::pool, block_size, blocks, writers, readers));
    REQUIRE(files);
    return std::move(*files);
}

Pool open(const ChannelFiles& f, Role role) {
    auto p = Pool::attach(*f.duplicate_for(role), role);
    REQUIRE(p);
    return std::move(*p);
}

/// The control words of a pool, through a writable mapping (what a scribbler sees).
struct PoolWords {
    explicit PoolWords(const ChannelFiles& f) {
        auto a = sd::attach_channel(f, sd::PayloadAccess::writable, sd::Prefault::no);
        REQUIRE(a);
        ch = std::move(*a);
    }
    std::uint64_t& head() const { return ch.pool->head; }
    std::uint64_t& state(std::uint32_t i) const { return ch.block_states[i]; }
    std::uint32_t& next(std::uint32_t i) const { return ch.block_next[i]; }
    sd::AttachedChannel ch;
};

void fill(PoolBlock& b, std::uint64_t word) {
    auto bytes = b.mutable_data();
    REQUIRE(bytes.size() >= 8);
    for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
        std::memcpy(bytes.data() + i, &word, 8);
    }
}

std::uint64_t first_word(const PoolBlock& b) {
    std::uint64_t w = 0;
    std::memcpy(&w, b.data().data(), 8);
    return w;
}

ChannelStats stats_of(const ChannelFiles& f) {
    auto s = read_stats(f);
    REQUIRE(s);
    return *s;
}

} // namespace

TEST_CASE("a block handed on by a writer is adopted and read by a reader, then returns") {
    auto f = make_pool(4096, 4);
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    CHECK(w.size() == 4);
    CHECK(w.block_size() == 4096);

    auto block = w.acquire();
    REQUIRE(block);
    CHECK(block->writable());
    CHECK(block->mutable_data().size() == 4096);
    fill(*block, 0xC0FFEE);
    auto handle = w.hand_on(std::move(*block));
    REQUIRE(handle);
    CHECK_FALSE(*block); // the reference is the handle's now
    CHECK(handle->pool == w.info().creation_id);

    auto got = r.adopt(*handle);
    REQUIRE(got);
    CHECK_FALSE(got->writable());
    CHECK(got->mutable_data().empty()); // a reader's mapping is read-only
    CHECK(first_word(*got) == 0xC0FFEE);
    CHECK(stats_of(f).depth == 1);
    REQUIRE(got->release());
    CHECK_FALSE(*got);

    const ChannelStats s = stats_of(f);
    CHECK(s.depth == 0);
    CHECK(s.published == 1);   // acquired
    CHECK(s.consumed == 1);    // returned to the free list
    CHECK(s.redelivered == 0); // nothing in transit
}

TEST_CASE("a pool's blocks start on page boundaries and are whole pages apart") {
    auto f = make_pool(5000, 3);
    auto w = open(f, Role::publisher);
    std::vector<PoolBlock> blocks;
    for (int i = 0; i < 3; ++i) {
        auto b = w.acquire();
        REQUIRE(b);
        CHECK(reinterpret_cast<std::uintptr_t>(b->data().data()) % 4096 == 0);
        blocks.push_back(std::move(*b));
    }
    auto info = inspect_channel(f);
    REQUIRE(info);
    CHECK(info->payload_bytes == 4096 + 3 * 8192);
}

TEST_CASE("an exhausted pool is would_block at once, and a timed acquire gets a block given back") {
    auto f = make_pool(64, 2);
    auto w = open(f, Role::publisher);
    auto a = w.acquire();
    auto b = w.acquire();
    REQUIRE(a);
    REQUIRE(b);
    auto none = w.acquire();
    REQUIRE_FALSE(none);
    CHECK(none.code() == Errc::would_block);
    CHECK(none.error().detail.find("all 2 blocks are in use") != std::string::npos);
    auto late = w.acquire(std::chrono::milliseconds{20});
    REQUIRE_FALSE(late);
    CHECK(late.code() == Errc::timed_out);

    // Another thread waits for a block; this one gives one back.
    std::atomic<bool> got{false};
    std::thread waiter([&] {
        auto c = w.acquire(std::chrono::seconds{60});
        got.store(static_cast<bool>(c), std::memory_order_release);
    });
    REQUIRE(a->release());
    waiter.join();
    CHECK(got.load(std::memory_order_acquire));
    CHECK(stats_of(f).data_waits >= 2); // the acquires that found the pool empty
}

TEST_CASE("a handle whose block was given back and reused is refused as not_found") {
    auto f = make_pool(64, 1);
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    auto first = w.acquire();
    REQUIRE(first);
    auto handle = w.hand_on(std::move(*first));
    REQUIRE(handle);
    REQUIRE(r.drop(*handle)); // the only reference: the block goes back
    auto again = w.acquire();
    REQUIRE(again);
    CHECK(again->handle().index == handle->index);
    CHECK(again->handle().generation == handle->generation + 1);
    auto stale = r.adopt(*handle);
    REQUIRE_FALSE(stale);
    CHECK(stale.code() == Errc::not_found);
    CHECK(stale.error().detail.find("stale") != std::string::npos);
    CHECK(r.drop(*handle).code() == Errc::not_found);
}

TEST_CASE("a handle carries one reference per copy: each adopt takes one, the last frees") {
    auto f = make_pool(64, 2, 1, 3);
    auto w = open(f, Role::publisher);
    std::vector<Pool> readers;
    for (int i = 0; i < 3; ++i) {
        readers.push_back(open(f, Role::subscriber));
    }
    auto block = w.acquire();
    REQUIRE(block);
    fill(*block, 7);
    auto handle = w.hand_on(std::move(*block), 3);
    REQUIRE(handle);
    auto b0 = readers[0].adopt(*handle);
    auto b1 = readers[1].adopt(*handle);
    REQUIRE(b0);
    REQUIRE(b1);
    CHECK(first_word(*b0) == 7);
    CHECK(stats_of(f).redelivered == 1); // one copy still in transit
    REQUIRE(readers[2].drop(*handle));   // ... given back unread
    auto none = readers[2].adopt(*handle);
    REQUIRE_FALSE(none);
    CHECK(none.code() == Errc::not_found);
    CHECK(none.error().detail.find("every copy") != std::string::npos);
    REQUIRE(b0->release());
    CHECK(stats_of(f).depth == 1); // b1 still holds it
    REQUIRE(b1->release());
    const ChannelStats s = stats_of(f);
    CHECK(s.depth == 0);
    CHECK(s.dropped == 1);
}

TEST_CASE("share keeps the holder's reference, and one endpoint holds a block once") {
    auto f = make_pool(64, 2);
    auto w = open(f, Role::publisher);
    auto block = w.acquire();
    REQUIRE(block);
    auto handle = w.share(*block);
    REQUIRE(handle);
    CHECK(*block);
    auto twice = w.adopt(*handle);
    REQUIRE_FALSE(twice);
    CHECK(twice.code() == Errc::already_exists);
    REQUIRE(w.drop(*handle)); // our own copy, given back: we still hold it
    CHECK(stats_of(f).depth == 1);
    CHECK(w.hand_on(std::move(*block), 0).code() == Errc::invalid_argument);
    CHECK(w.hand_on(std::move(*block), 256).code() == Errc::limit_reached);
    REQUIRE(block->release());
    CHECK(stats_of(f).depth == 0);
}

TEST_CASE("readers may not acquire, and handles of another pool or block are invalid") {
    auto f = make_pool(64, 2);
    auto other = make_pool(64, 2);
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    auto denied = r.acquire();
    REQUIRE_FALSE(denied);
    CHECK(denied.code() == Errc::permission_denied);

    auto ow = open(other, Role::publisher);
    auto foreign = ow.acquire();
    REQUIRE(foreign);
    auto fh = ow.hand_on(std::move(*foreign));
    REQUIRE(fh);
    auto wrong = r.adopt(*fh);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.code() == Errc::invalid_argument);
    CHECK(wrong.error().detail.find("another pool") != std::string::npos);
    BlockHandle beyond{w.info().creation_id, 2, 0};
    auto past = r.adopt(beyond);
    REQUIRE_FALSE(past);
    CHECK(past.code() == Errc::invalid_argument);
    CHECK(past.error().detail.find("beyond its 2") != std::string::npos);
    CHECK(r.drop(beyond).code() == Errc::invalid_argument);

    auto mine = w.acquire();
    REQUIRE(mine);
    CHECK(ow.hand_on(std::move(*mine)).code() == Errc::invalid_argument); // not its block
}

TEST_CASE("a pool is refused with more endpoints than a block state has holder bits") {
    auto too_many = create_channel(spec("pool", ChannelKind::pool, 64, 4, 16, 9));
    REQUIRE_FALSE(too_many);
    CHECK(too_many.code() == Errc::invalid_argument);
    CHECK(too_many.error().detail.find("max_publishers 16 + max_subscribers 9") !=
          std::string::npos);
    CHECK(create_channel(spec("pool", ChannelKind::pool, 64, 4, 16, 8)));
    // Blocks of up to 1 GiB: the geometry takes it (whether memory allows is create's part).
    CHECK(channel_bytes(spec("pool", ChannelKind::pool, kMaxSlotSize, 2, 1, 1)));
    CHECK_FALSE(channel_bytes(spec("pool", ChannelKind::pool, kMaxSlotSize + 1, 2, 1, 1)));
    auto drop = spec("pool", ChannelKind::pool, 64, 4);
    drop.overflow = Overflow::drop;
    CHECK(create_channel(drop).code() == Errc::invalid_argument);
}

TEST_CASE("threads taking and giving back blocks at once never share a block") {
    const std::uint64_t blocks = 8;
    auto f = make_pool(256, blocks, 8, 1);
    constexpr int kThreads = 4;
    const int rounds = scaled(20000);
    std::vector<Pool> pools;
    for (int t = 0; t < kThreads; ++t) {
        pools.push_back(open(f, Role::publisher));
    }
    std::atomic<int> overlaps{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            const std::uint64_t mark = 0x1000 + static_cast<std::uint64_t>(t);
            for (int i = 0; i < rounds; ++i) {
                auto b = pools[static_cast<std::size_t>(t)].acquire(std::chrono::seconds{60});
                if (!b) {
                    failures.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                auto bytes = b->mutable_data();
                std::memcpy(bytes.data(), &mark, 8);
                std::memcpy(bytes.data() + 248, &mark, 8);
                std::uint64_t a = 0;
                std::uint64_t z = 0;
                std::memcpy(&a, bytes.data(), 8);
                std::memcpy(&z, bytes.data() + 248, 8);
                if (a != mark || z != mark) {
                    overlaps.fetch_add(1, std::memory_order_relaxed);
                }
                if (!b->release()) {
                    failures.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    CHECK(overlaps.load() == 0);
    CHECK(failures.load() == 0);
    const ChannelStats s = stats_of(f);
    CHECK(s.depth == 0);
    CHECK(s.published == static_cast<std::uint64_t>(kThreads) * static_cast<std::uint64_t>(rounds));
    CHECK(s.consumed == s.published);
    CHECK(s.corrupted == 0);
    CHECK(s.high_water <= blocks);
}

TEST_CASE("threads pass blocks to each other by handle, each adopted exactly once") {
    auto f = make_pool(128, 16, 2, 2);
    const int total = scaled(20000);
    std::mutex m;
    std::deque<BlockHandle> handles; // the "message channel" between the threads
    std::atomic<int> errors{0};
    std::atomic<int> received{0};
    auto producer = [&](int id) {
        auto w = Pool::attach(*f.duplicate_for(Role::publisher), Role::publisher);
        if (!w) {
            errors.fetch_add(1);
            return;
        }
        for (int i = 0; i < total / 2; ++i) {
            auto b = w->acquire(std::chrono::seconds{60});
            if (!b) {
                errors.fetch_add(1);
                return;
            }
            const std::uint64_t v =
                (static_cast<std::uint64_t>(id) << 32) | static_cast<unsigned>(i);
            std::memcpy(b->mutable_data().data(), &v, 8);
            auto h = w->hand_on(std::move(*b));
            if (!h) {
                errors.fetch_add(1);
                return;
            }
            const std::lock_guard lock{m};
            handles.push_back(*h);
        }
    };
    auto consumer = [&] {
        auto r = Pool::attach(*f.duplicate_for(Role::subscriber), Role::subscriber);
        if (!r) {
            errors.fetch_add(1);
            return;
        }
        while (received.load() < total && errors.load() == 0) {
            std::optional<BlockHandle> h;
            {
                const std::lock_guard lock{m};
                if (!handles.empty()) {
                    h = handles.front();
                    handles.pop_front();
                }
            }
            if (!h) {
                std::this_thread::yield();
                continue;
            }
            auto b = r->adopt(*h);
            if (!b) {
                errors.fetch_add(1);
                return;
            }
            std::uint64_t v = 0;
            std::memcpy(&v, b->data().data(), 8);
            if ((v >> 32) > 1) {
                errors.fetch_add(1);
            }
            received.fetch_add(1);
        }
    };
    std::vector<std::thread> threads;
    threads.emplace_back(producer, 0);
    threads.emplace_back(producer, 1);
    threads.emplace_back(consumer);
    threads.emplace_back(consumer);
    for (auto& t : threads) {
        t.join();
    }
    CHECK(errors.load() == 0);
    CHECK(received.load() == total);
    const ChannelStats s = stats_of(f);
    CHECK(s.depth == 0);
    CHECK(s.redelivered == 0);
    CHECK(s.corrupted == 0);
}

TEST_CASE("the supervisor gives back every block a killed holder held, and only those") {
    auto f = make_pool(64, 8, 2, 2);
    auto keeper = open(f, Role::publisher);
    auto kept = keeper.acquire();
    REQUIRE(kept);
    auto sent = keeper.acquire();
    REQUIRE(sent);
    auto for_victim = keeper.hand_on(std::move(*sent));
    REQUIRE(for_victim);

    // A forked reader adopts the handle, a forked writer acquires three blocks and hands one
    // on; both are killed holding what they hold.
    // A pipe each: their records must not interleave.
    Pipe writer_ready = Pipe::make();
    Pipe reader_ready = Pipe::make();
    Child writer = Child::spawn([&] {
        auto w = Pool::attach(*f.duplicate_for(Role::publisher), Role::publisher);
        if (!w) {
            return 1;
        }
        std::vector<PoolBlock> held;
        for (int i = 0; i < 3; ++i) {
            auto b = w->acquire();
            if (!b) {
                return 2;
            }
            held.push_back(std::move(*b));
        }
        auto h = w->hand_on(std::move(held.back()));
        if (!h) {
            return 3;
        }
        (void)send_record(writer_ready.write_end.get(), w->endpoint_index());
        (void)send_record(writer_ready.write_end.get(), *h);
        for (;;) {
            ::pause();
        }
    });
    Child reader = Child::spawn([&] {
        auto r = Pool::attach(*f.duplicate_for(Role::subscriber), Role::subscriber);
        if (!r) {
            return 1;
        }
        auto b = r->adopt(*for_victim);
        if (!b) {
            return 2;
        }
        (void)send_record(reader_ready.write_end.get(), r->endpoint_index());
        for (;;) {
            ::pause();
        }
    });
    auto writer_index = receive_record<std::uint32_t>(writer_ready.read_end.get(), Deadline{});
    REQUIRE(writer_index);
    auto in_transit = receive_record<BlockHandle>(writer_ready.read_end.get(), Deadline{});
    REQUIRE(in_transit);
    auto reader_index = receive_record<std::uint32_t>(reader_ready.read_end.get(), Deadline{});
    REQUIRE(reader_index);
    writer.kill_and_wait(SIGKILL);
    reader.kill_and_wait(SIGKILL);
    CHECK(stats_of(f).depth == 5); // kept, the writer's 2, the one in transit, the reader's

    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    {
        const auto entries = sup->endpoints();
        std::uint64_t held_by_writer = 0;
        for (const auto& e : entries) {
            if (e.role == Role::publisher && e.index == *writer_index) {
                held_by_writer = e.held;
            }
        }
        CHECK(held_by_writer == 2);
    }
    auto wr = sup->reclaim_publisher(*writer_index);
    REQUIRE(wr);
    CHECK(wr->abandoned_slots == 2);
    auto rr = sup->reclaim_subscriber(*reader_index);
    REQUIRE(rr);
    CHECK(rr->abandoned_slots == 1);
    ChannelStats s = stats_of(f);
    CHECK(s.depth == 2); // what the keeper holds, and the handle the writer handed on
    CHECK(s.abandoned == 3);
    CHECK(s.redelivered == 1);

    // The handle the dead writer handed on is still good.
    auto r = open(f, Role::subscriber);
    auto adopted = r.adopt(*in_transit);
    REQUIRE(adopted);
    REQUIRE(adopted->release());
    REQUIRE(kept->release());
    s = stats_of(f);
    CHECK(s.depth == 0);
    CHECK(s.corrupted == 0);
}

TEST_CASE("an operation a holder announced and never finished is finished by the next one") {
    auto f = make_pool(64, 4, 3, 1);
    PoolWords words{f};
    auto w = open(f, Role::publisher); // holder slot 0
    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    // Holder slot 1 (publisher entry 1, as a killed process would leave it): it announced
    // taking block 0 from the head and died before marking the block as its own.
    auto victim = Pool::attach(*f.duplicate_for(Role::publisher), Role::publisher);
    REQUIRE(victim);
    REQUIRE(victim->endpoint_index() == 1);
    const std::uint64_t h = words.head();
    REQUIRE(sd::head_index(h) == 0);
    words.head() = sd::make_head(0, sd::PoolOp::taking, 1, sd::head_tag(h) + 1);

    auto b = w.acquire(); // finishes the victim's take first, then takes block 1
    REQUIRE(b);
    CHECK(b->handle().index == 1);
    CHECK(sd::block_holders(words.state(0)) == sd::holder_bit(1));

    // A giving announced by the victim of block 0, never finished: reclaim finishes it.
    const std::uint64_t h2 = words.head();
    words.next(0) = sd::head_index(h2);
    words.head() = sd::make_head(0, sd::PoolOp::giving, 1, sd::head_tag(h2) + 1);
    auto report = sup->reclaim_publisher(1);
    REQUIRE(report);
    CHECK(sd::block_is_free(words.state(0)));
    CHECK(sd::head_op(words.head()) == sd::PoolOp::none);
    // Block 0 is on the free list once: the pool hands out each block once.
    std::set<std::uint32_t> seen{b->handle().index};
    std::vector<PoolBlock> all;
    for (int i = 0; i < 3; ++i) {
        auto more = w.acquire();
        REQUIRE(more);
        CHECK(seen.insert(more->handle().index).second);
        all.push_back(std::move(*more));
    }
    CHECK(w.acquire().code() == Errc::would_block);
    CHECK(stats_of(f).corrupted == 0);
}

TEST_CASE("a damaged free list is a clear error naming the block, and the pool goes on") {
    auto f = make_pool(64, 4);
    PoolWords words{f};
    auto w = open(f, Role::publisher);

    SECTION("a head beyond the pool") {
        words.head() = sd::make_head(77, sd::PoolOp::none, 0, 5);
        auto b = w.acquire();
        REQUIRE_FALSE(b);
        CHECK(b.code() == Errc::corrupted);
        CHECK(b.error().detail.find("block 77") != std::string::npos);
        CHECK(w.acquire().code() == Errc::would_block); // the list was emptied, not followed
    }
    SECTION("a head announcing an operation of a holder that does not exist") {
        words.head() = sd::make_head(1, sd::PoolOp::taking, 30, 5);
        auto b = w.acquire();
        REQUIRE_FALSE(b);
        CHECK(b.code() == Errc::would_block); // the damaged head was dropped: nothing left
    }
    SECTION("a block on the free list that is in use") {
        words.state(0) = sd::free_block(3) | sd::holder_bit(5);
        auto b = w.acquire();
        REQUIRE_FALSE(b);
        CHECK(b.code() == Errc::corrupted);
        CHECK(b.error().detail.find("block 0 is on the free list but in use") != std::string::npos);
        auto next = w.acquire(); // block 0 was taken off the list; the rest go on
        REQUIRE(next);
        CHECK(next->handle().index == 1);
    }
    SECTION("a link beyond the pool") {
        words.next(0) = 1000;
        auto first = w.acquire();
        REQUIRE_FALSE(first);
        CHECK(first.code() == Errc::corrupted);
        CHECK(first.error().detail.find("links to a block beyond the pool") != std::string::npos);
        // The rest of the list is lost; the block taken is back on it, and then none.
        auto again = w.acquire();
        REQUIRE(again);
        CHECK(again->handle().index == 0);
        CHECK(w.acquire().code() == Errc::would_block);
    }
    SECTION("a link that makes a cycle") {
        words.next(1) = 0;
        std::set<std::uint32_t> seen;
        std::vector<PoolBlock> held;
        for (int i = 0; i < 4; ++i) {
            auto b = w.acquire();
            if (!b) {
                CHECK(b.code() == Errc::corrupted);
                continue;
            }
            CHECK(seen.insert(b->handle().index).second); // never the same block twice
            held.push_back(std::move(*b));
        }
        CHECK(seen.size() == 2);
    }
    CHECK(stats_of(f).corrupted >= 1);
}

TEST_CASE("a damaged block state or handle is a clear error, never a read of the block") {
    auto f = make_pool(64, 4);
    PoolWords words{f};
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    auto b = w.acquire();
    REQUIRE(b);
    const std::uint32_t i = b->handle().index;

    SECTION("the holder's bit cleared under it") {
        words.state(i) = sd::free_block(b->handle().generation) | sd::holder_bit(9);
        auto released = b->release();
        REQUIRE_FALSE(released);
        CHECK(released.code() == Errc::corrupted);
        CHECK(released.error().detail.find("is not held by this endpoint") != std::string::npos);
    }
    SECTION("the generation moved under the holder") {
        words.state(i) += std::uint64_t{1} << 32;
        CHECK(w.share(*b).code() == Errc::corrupted);
    }
    SECTION("a handle with a made-up generation") {
        auto h = w.hand_on(std::move(*b));
        REQUIRE(h);
        BlockHandle forged = *h;
        forged.generation += 12345;
        auto got = r.adopt(forged);
        REQUIRE_FALSE(got);
        CHECK(got.code() == Errc::not_found);
        REQUIRE(r.drop(*h));
    }
    SECTION("a holder the state names that never attached keeps the block out of the pool") {
        auto h = w.share(*b);
        REQUIRE(h);
        words.state(i) &= ~(std::uint64_t{0xFF} << 24); // transit cleared: we look like the last
        words.state(i) |= sd::holder_bit(20);           // but someone else holds it
        // Release by us then only clears our bit: the block is not given back under holder 20.
        REQUIRE(b->release());
        CHECK(sd::block_holders(words.state(i)) == sd::holder_bit(20));
    }
}

TEST_CASE("the head word and block state encodings keep their fields apart") {
    const std::uint64_t h = sd::make_head(sd::kNoBlock, sd::PoolOp::giving, 23, 0xFFFF'FFFF);
    CHECK(sd::head_index(h) == sd::kNoBlock);
    CHECK(sd::head_op(h) == sd::PoolOp::giving);
    CHECK(sd::head_slot(h) == 23);
    CHECK(sd::head_tag(h) == 0xFFFF'FFFF);
    const std::uint64_t s = sd::free_block(0xFFFF'FFFF) | (std::uint64_t{255} << 24) |
                            sd::holder_bit(0) | sd::holder_bit(23);
    CHECK(sd::block_generation(s) == 0xFFFF'FFFF);
    CHECK(sd::block_transit(s) == 255);
    CHECK(sd::block_holders(s) == ((1u << 23) | 1u));
    CHECK_FALSE(sd::block_is_free(s));
    CHECK(sd::block_is_free(sd::free_block(7)));
}

TEST_CASE("random scribbles over a pool's shared words never crash or hang its endpoints") {
    const std::uint64_t seed = test_seed();
    std::printf("test_pool scribble seed: %llu (rerun with SHMBUS_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    auto f = make_pool(64, 8, 2, 2);
    PoolWords words{f};
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    std::vector<PoolBlock> held;
    std::vector<BlockHandle> handles;
    std::uint64_t errors = 0;
    const std::uint64_t iterations = scaled(20000, 2000);
    for (std::uint64_t i = 0; i < iterations; ++i) {
        // One word of the free list or the block states gets a random or a nearby value.
        const std::uint32_t block = static_cast<std::uint32_t>(rng() % 8);
        const std::uint64_t value = rng() % 2 == 0 ? rng() : rng() % 64;
        switch (rng() % 8) {
        case 0:
            words.head() = value;
            break;
        case 1:
            words.next(block) = static_cast<std::uint32_t>(value);
            break;
        case 2:
            words.state(block) = value;
            break;
        default:
            break; // most rounds leave the words alone, so that operations also succeed
        }
        // Then whatever an application would do next; every call returns, ok or an error.
        switch (rng() % 5) {
        case 0: {
            auto b = w.acquire();
            errors += b ? 0 : 1;
            if (b) {
                held.push_back(std::move(*b));
            }
            break;
        }
        case 1:
            if (!held.empty()) {
                auto h = w.hand_on(std::move(held.back()));
                held.pop_back();
                errors += h ? 0 : 1;
                if (h) {
                    handles.push_back(*h);
                }
            }
            break;
        case 2:
            if (!handles.empty()) {
                auto b = r.adopt(handles.back());
                handles.pop_back();
                errors += b ? 0 : 1;
                if (b) {
                    held.push_back(std::move(*b));
                }
            }
            break;
        case 3:
            if (!handles.empty()) {
                errors += r.drop(handles.back()) ? 0 : 1;
                handles.pop_back();
            }
            break;
        default:
            if (!held.empty()) {
                errors += held.back().release() ? 0 : 1;
                held.pop_back();
            }
            break;
        }
        // Reading a held block stays inside the pool's mapping, whatever the words say.
        for (const PoolBlock& b : held) {
            CHECK(b.data().size() == 64);
        }
    }
    std::printf("test_pool scribbles: %llu iterations, %llu calls refused\n",
                static_cast<unsigned long long>(iterations),
                static_cast<unsigned long long>(errors));
    held.clear();
    auto info = inspect_channel(f);
    CHECK(info); // the headers were never touched
}
