// Blackboard channels in one process (and forked writers for SIGKILL): reads and writes of
// elements and ranges, reads in place, no torn element under concurrent writers, bounded
// retries, the torn mark a dead writer leaves and the write that repairs it, damaged state
// words, and roles.
#include "process.hpp"
#include "test_support.hpp"

#include "shm/segment.hpp"
#include "shm/shared_state.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
namespace sd = shmbus::detail;

namespace {

ChannelFiles make_board(std::uint64_t element_size, std::uint64_t count, std::uint32_t writers = 2,
                        std::uint32_t readers = 4) {
    auto files = create_channel(
        spec("board", ChannelKind::blackboard, element_size, count, writers, readers));
    REQUIRE(files);
    return std::move(*files);
}

Blackboard open(const ChannelFiles& f, Role role) {
    auto b = Blackboard::attach(*f.duplicate_for(role), role);
    REQUIRE(b);
    return std::move(*b);
}

std::vector<std::byte> filled(std::size_t n, std::uint64_t word) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
        std::memcpy(v.data() + i, &word, 8);
    }
    return v;
}

/// The state word of element `i`, through a writable mapping of the payload of `f`.
struct StateWords {
    explicit StateWords(const ChannelFiles& f) {
        auto a = sd::attach_channel(f, sd::PayloadAccess::writable, sd::Prefault::no);
        REQUIRE(a);
        ch = std::move(*a);
    }
    std::uint64_t& operator[](std::uint64_t i) const { return ch.element(i)->state; }
    sd::AttachedChannel ch;
};

/// A price level as an order book keeps it: the fields a reader picks out of a larger element.
struct Level {
    double price;
    std::uint32_t quantity;
    std::uint32_t orders;
};

} // namespace

TEST_CASE("a blackboard reader gets what a writer wrote, element by element and as a range") {
    auto f = make_board(64, 10);
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    CHECK(r.size() == 10);
    CHECK(r.element_size() == 64);
    std::vector<std::byte> out(64);
    auto first = r.read(3, out);
    REQUIRE(first);
    CHECK(*first == 0); // never written: version 0, zeros
    CHECK(out == std::vector<std::byte>(64));

    REQUIRE(w.write(3, filled(64, 0x1111)));
    auto v = r.read(3, out);
    REQUIRE(v);
    CHECK(*v == 1);
    CHECK(out == filled(64, 0x1111));

    std::vector<std::byte> range;
    for (std::uint64_t i = 0; i < 4; ++i) {
        const auto e = filled(64, 0x100 + i);
        range.insert(range.end(), e.begin(), e.end());
    }
    REQUIRE(w.write_range(6, range));
    std::vector<std::byte> back(range.size());
    REQUIRE(r.read_range(6, back));
    CHECK(back == range);
}

TEST_CASE("a blackboard read copies every byte of an element of any size, and none past it") {
    // Sizes around the copy's four-word steps, its single words and its partial tail word.
    for (std::uint64_t size = 1; size <= 100; ++size) {
        CAPTURE(size);
        auto f = make_board(size, 2);
        auto w = open(f, Role::publisher);
        auto r = open(f, Role::subscriber);
        std::vector<std::byte> data(size);
        for (std::uint64_t i = 0; i < size; ++i) {
            data[i] = static_cast<std::byte>(i * 7 + size);
        }
        REQUIRE(w.write(1, data));
        std::vector<std::byte> out(size + 8, std::byte{0xEE});
        REQUIRE(r.read(1, std::span{out}.first(size)));
        CHECK(std::vector<std::byte>(out.begin(),
                                     out.begin() + static_cast<std::ptrdiff_t>(size)) == data);
        CHECK(std::vector<std::byte>(out.begin() + static_cast<std::ptrdiff_t>(size), out.end()) ==
              std::vector<std::byte>(8, std::byte{0xEE}));
    }
}

TEST_CASE("a short blackboard write zero-fills the rest of the element") {
    auto f = make_board(20, 2); // not a multiple of 8: the tail word is partial
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    REQUIRE(w.write(1, filled(20, ~std::uint64_t{0})));
    const std::byte three[3]{std::byte{1}, std::byte{2}, std::byte{3}};
    REQUIRE(w.write(1, three));
    std::vector<std::byte> out(20, std::byte{0x55});
    auto v = r.read(1, out);
    REQUIRE(v);
    CHECK(*v == 2);
    std::vector<std::byte> expected(20);
    std::memcpy(expected.data(), three, 3);
    CHECK(out == expected);
}

TEST_CASE("blackboard arguments out of range are refused naming what is wrong") {
    auto f = make_board(64, 4);
    auto w = open(f, Role::publisher);
    std::vector<std::byte> small(63);
    std::vector<std::byte> big(65);
    std::vector<std::byte> right(64);
    auto past = w.read(4, right);
    REQUIRE_FALSE(past);
    CHECK(past.code() == Errc::invalid_argument);
    CHECK(past.error().detail.find("beyond its 4") != std::string::npos);
    auto too_small = w.read(0, small);
    REQUIRE_FALSE(too_small);
    CHECK(too_small.error().detail.find("has 64 bytes") != std::string::npos);
    auto too_big = w.write(0, big);
    REQUIRE_FALSE(too_big);
    CHECK(too_big.code() == Errc::message_too_large);
    auto ragged = w.write_range(0, small);
    REQUIRE_FALSE(ragged);
    CHECK(ragged.code() == Errc::invalid_argument);
    auto over_end = w.write_range(3, std::vector<std::byte>(128));
    REQUIRE_FALSE(over_end);
    CHECK(over_end.code() == Errc::invalid_argument);
}

TEST_CASE("a blackboard reader may not write, and ring endpoints may not attach to it") {
    auto f = make_board(64, 4);
    auto r = open(f, Role::subscriber);
    auto denied = r.write(0, filled(64, 1));
    REQUIRE_FALSE(denied);
    CHECK(denied.code() == Errc::permission_denied);
    CHECK_FALSE(r.update(0, [](std::span<std::byte>) {}));
    auto pub = Publisher::attach(*f.duplicate_for(Role::publisher));
    REQUIRE_FALSE(pub);
    CHECK(pub.code() == Errc::invalid_argument);
    CHECK(pub.error().detail.find("open_blackboard") != std::string::npos);
    auto wrong = Counters::attach(*f.duplicate_for(Role::subscriber), Role::subscriber);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.code() == Errc::invalid_argument);
}

TEST_CASE("update changes an element in place under its writer lock") {
    auto f = make_board(16, 1);
    auto w = open(f, Role::publisher);
    for (int i = 0; i < 5; ++i) {
        REQUIRE(w.update(0, [](std::span<std::byte> bytes) {
            std::uint64_t n;
            std::memcpy(&n, bytes.data(), 8);
            ++n;
            std::memcpy(bytes.data(), &n, 8);
        }));
    }
    std::vector<std::byte> out(16);
    auto v = w.read(0, out);
    REQUIRE(v);
    CHECK(*v == 5);
    std::uint64_t n = 0;
    std::memcpy(&n, out.data(), 8);
    CHECK(n == 5);
}

TEST_CASE("readers never see a torn element while two writers rewrite it") {
    constexpr std::uint64_t kSize = 256; // 32 words: a torn copy would mix two patterns
    auto f = make_board(kSize, 2, 2, 2);
    const std::uint64_t writes = scaled(50'000, 2'000);
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> good{0};
    std::atomic<std::uint64_t> torn{0};
    std::vector<std::thread> writers;
    for (std::uint64_t id = 1; id <= 2; ++id) {
        writers.emplace_back([&, id] {
            // No Catch2 assertion on these threads: Catch2 is not thread-safe.
            auto w = Blackboard::attach(*f.duplicate_for(Role::publisher), Role::publisher);
            if (!w) {
                torn.fetch_add(1);
                return;
            }
            for (std::uint64_t i = 0; i < writes; ++i) {
                const auto data = filled(kSize, (id << 32) | i);
                // Both elements, so that writers contend on each.
                for (std::uint64_t e = 0; e < 2; ++e) {
                    for (;;) {
                        auto wrote = w->write(e, data);
                        if (wrote) {
                            break;
                        }
                        if (wrote.code() != Errc::would_block) {
                            torn.fetch_add(1); // any other error fails the test
                            break;
                        }
                        // would_block: the other writer held it all the while; try again
                    }
                }
            }
        });
    }
    std::vector<std::thread> readers;
    for (int k = 0; k < 2; ++k) {
        readers.emplace_back([&] {
            auto r = Blackboard::attach(*f.duplicate_for(Role::subscriber), Role::subscriber);
            if (!r) {
                torn.fetch_add(1);
                return;
            }
            std::vector<std::byte> out(kSize);
            std::uint64_t last_version = 0;
            // One more round once the writers are done, so that a reader that only started
            // then (a loaded machine) still reads each element at least once.
            for (bool finished = false; !finished;) {
                finished = done.load(std::memory_order_acquire);
                for (std::uint64_t e = 0; e < 2; ++e) {
                    auto v = r->read(e, out);
                    if (!v) {
                        if (v.code() != Errc::would_block) {
                            torn.fetch_add(1);
                        }
                        continue;
                    }
                    std::uint64_t w0;
                    std::memcpy(&w0, out.data(), 8);
                    bool same = true;
                    for (std::size_t i = 8; i < kSize; i += 8) {
                        std::uint64_t wi;
                        std::memcpy(&wi, out.data() + i, 8);
                        same = same && wi == w0;
                    }
                    (same ? good : torn).fetch_add(1);
                    if (e == 0) {
                        if (*v < last_version) {
                            torn.fetch_add(1); // versions only grow
                        }
                        last_version = *v;
                    }
                }
            }
        });
    }
    for (auto& t : writers) {
        t.join();
    }
    done.store(true, std::memory_order_release);
    for (auto& t : readers) {
        t.join();
    }
    CHECK(torn.load() == 0);
    CHECK(good.load() > 0);
    std::vector<std::byte> out(kSize);
    auto r = open(f, Role::subscriber);
    auto v = r.read(0, out);
    REQUIRE(v);
    CHECK(*v == 2 * writes); // every write counted once
}

TEST_CASE("a reader that keeps losing to a writer gets would_block after bounded retries") {
    auto f = make_board(64, 2, 2);
    auto r = open(f, Role::subscriber);
    StateWords words{f};
    // Writer entry 0 holds element 1 and never lets go (as a stalled writer would).
    sd::atom(words[1]).store((std::uint64_t{7} << 32) | 1, std::memory_order_release);
    std::vector<std::byte> out(64);
    auto v = r.read(1, out);
    REQUIRE_FALSE(v);
    CHECK(v.code() == Errc::would_block);
    CHECK(v.error().detail.find("element 1") != std::string::npos);
    CHECK(r.read(0, out)); // the other element is unaffected
    // A second writer gives up too instead of spinning for ever.
    auto w = open(f, Role::publisher);
    REQUIRE(w.endpoint_index() == 0);
    auto w2 = open(f, Role::publisher);
    auto blocked = w2.write(1, filled(64, 1));
    REQUIRE_FALSE(blocked);
    CHECK(blocked.code() == Errc::would_block);
}

TEST_CASE("an element whose writer died mid-update reads as torn until the next write") {
    auto f = make_board(64, 4);
    std::vector<std::byte> out(64);
    auto r = open(f, Role::subscriber);
    {
        auto w = open(f, Role::publisher);
        REQUIRE(w.write(2, filled(64, 42)));
    }
    // A forked writer stops inside update() (element 2 locked) and is killed there.
    Pipe ready = Pipe::make();
    Child victim = Child::spawn([&] {
        auto w = Blackboard::attach(*f.duplicate_for(Role::publisher), Role::publisher);
        if (!w) {
            return 1;
        }
        const std::uint32_t index = w->endpoint_index();
        (void)w->update(2, [&](std::span<std::byte> bytes) {
            std::memset(bytes.data(), 0xEE, 8); // half of what it meant to write
            (void)send_record(ready.write_end.get(), index);
            for (;;) {
                ::pause();
            }
        });
        return 2;
    });
    auto index = receive_record<std::uint32_t>(ready.read_end.get(), Deadline{});
    REQUIRE(index);
    victim.kill_and_wait(SIGKILL);
    // Until someone reclaims the dead writer, readers see the element as being written.
    auto busy = r.read(2, out);
    REQUIRE_FALSE(busy);
    CHECK(busy.code() == Errc::would_block);

    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    auto report = sup->reclaim_publisher(*index);
    REQUIRE(report);
    CHECK(report->abandoned_slots == 1);
    auto torn = r.read(2, out);
    REQUIRE_FALSE(torn);
    CHECK(torn.code() == Errc::corrupted);
    CHECK(torn.error().detail.find("element 2 is torn") != std::string::npos);
    CHECK(r.read(1, out)); // only that element

    auto w = open(f, Role::publisher);
    REQUIRE(w.write(2, filled(64, 43)));
    auto v = r.read(2, out);
    REQUIRE(v);
    CHECK(out == filled(64, 43));
    CHECK(*v == 3); // the write, the tear, the repair
}

TEST_CASE("a damaged element state word is a clear error for readers and repaired by writers") {
    auto f = make_board(64, 3, 2);
    StateWords words{f};
    auto r = open(f, Role::subscriber);
    auto w = open(f, Role::publisher);
    std::vector<std::byte> out(64);
    for (const std::uint64_t garbage : {std::uint64_t{3}, std::uint64_t{0xFFFF'FFFE},
                                        ~std::uint64_t{0} - 1, (std::uint64_t{5} << 32) | 1000}) {
        INFO("state word " << garbage);
        sd::atom(words[0]).store(garbage, std::memory_order_release);
        auto v = r.read(0, out);
        REQUIRE_FALSE(v);
        CHECK(v.code() == Errc::corrupted);
        CHECK(v.error().detail.find("element 0") != std::string::npos);
        REQUIRE(w.write(0, filled(64, garbage)));
        auto again = r.read(0, out);
        REQUIRE(again);
        CHECK(out == filled(64, garbage));
    }
    // The supervisor's reclaim leaves words that are not the dead writer's alone.
    sd::atom(words[1]).store(~std::uint64_t{0}, std::memory_order_release);
    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    auto report = sup->reclaim_publisher(w.endpoint_index());
    REQUIRE(report);
    CHECK(report->abandoned_slots == 0);
    CHECK(sd::atom(words[1]).load(std::memory_order_acquire) == ~std::uint64_t{0});
}

TEST_CASE("blackboard geometry: any element count from 1, sizes checked") {
    ChannelSpec s = spec("geo", ChannelKind::blackboard, 64, 3, 1, 1);
    CHECK(create_channel(s));
    s.slot_count = 0;
    auto none = create_channel(s);
    REQUIRE_FALSE(none);
    CHECK(none.error().detail.find("slot_count 0") != std::string::npos);
    s.slot_count = 1;
    s.overflow = Overflow::drop;
    auto drop = create_channel(s);
    REQUIRE_FALSE(drop);
    CHECK(drop.error().detail.find("overflow 'drop'") != std::string::npos);
}

TEST_CASE("read_in_place gives a reader the fields it asks for, as the last write left them") {
    auto f = make_board(4096, 3);
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    std::vector<std::byte> element(4096);
    const Level level{101.25, 300, 4};
    std::memcpy(element.data() + 2048, &level, sizeof level);
    std::memcpy(element.data() + 4090, "tail!!", 6);
    REQUIRE(w.write(2, element));

    Level seen{};
    std::string tail(6, '\0');
    std::uint64_t size = 0;
    int calls = 0;
    auto v = r.read_in_place(2, [&](const ElementView& e) {
        ++calls;
        size = e.size();
        seen = e.get<Level>(2048);
        e.copy(4090, std::as_writable_bytes(std::span{tail.data(), tail.size()}));
    });
    REQUIRE(v);
    CHECK(*v == 1);
    CHECK(calls == 1); // nobody wrote meanwhile
    CHECK(size == 4096);
    CHECK(seen.price == 101.25);
    CHECK(seen.quantity == 300);
    CHECK(seen.orders == 4);
    CHECK(tail == "tail!!");
}

TEST_CASE("a view reads zeros past its element and nothing of the next") {
    auto f = make_board(20, 2); // not a multiple of 8: the last word is partial
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    REQUIRE(w.write(0, std::vector<std::byte>(20, std::byte{0xFF})));
    REQUIRE(w.write(1, filled(20, 0x2222222222222222ULL)));
    std::vector<std::byte> out(16, std::byte{0x55});
    REQUIRE(r.read_in_place(0, [&](const ElementView& e) { e.copy(12, out); }));
    // Bytes 12..19 are the element's; 20..27 are beyond it and read as zeros.
    CHECK(out[0] == std::byte{0xFF});
    CHECK(out[7] == std::byte{0xFF});
    CHECK(out[8] == std::byte{0});
    CHECK(out[15] == std::byte{0});
    std::uint64_t far = 1;
    REQUIRE(r.read_in_place(0, [&](const ElementView& e) { far = e.get<std::uint64_t>(1000); }));
    CHECK(far == 0);
}

TEST_CASE("read_in_place never accepts a view of two writes while writers rewrite the element") {
    constexpr std::uint64_t kSize = 512;
    auto f = make_board(kSize, 1);
    const std::uint64_t writes = scaled(50'000, 2'000);
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> mixed{0};
    std::atomic<std::uint64_t> good{0};
    std::atomic<std::uint64_t> retried{0};
    std::thread writer([&] {
        // No Catch2 assertion on these threads: Catch2 is not thread-safe.
        auto w = Blackboard::attach(*f.duplicate_for(Role::publisher), Role::publisher);
        if (!w) {
            mixed.fetch_add(1);
            return;
        }
        for (std::uint64_t i = 1; i <= writes; ++i) {
            if (!w->write(0, filled(kSize, i))) {
                mixed.fetch_add(1);
            }
        }
    });
    std::thread reader([&] {
        auto r = Blackboard::attach(*f.duplicate_for(Role::subscriber), Role::subscriber);
        if (!r) {
            mixed.fetch_add(1);
            return;
        }
        // One more read once the writer is done, so that a reader that only started then
        // (a loaded machine) still reads the element at least once.
        for (bool finished = false; !finished;) {
            finished = done.load(std::memory_order_acquire);
            // The first and the last word of the element, read in place: one write's if ok.
            std::uint64_t first = 0;
            std::uint64_t last = 0;
            int calls = 0;
            auto v = r->read_in_place(0, [&](const ElementView& e) {
                ++calls;
                first = e.get<std::uint64_t>(0);
                last = e.get<std::uint64_t>(kSize - 8);
            });
            if (!v) {
                if (v.code() != Errc::would_block) {
                    mixed.fetch_add(1);
                }
                continue;
            }
            (first == last && first == *v ? good : mixed).fetch_add(1);
            retried.fetch_add(calls > 1 ? 1 : 0);
        }
    });
    writer.join();
    done.store(true, std::memory_order_release);
    reader.join();
    CHECK(mixed.load() == 0);
    CHECK(good.load() > 0);
    std::printf("read_in_place: %llu good reads, %llu of them retried\n",
                static_cast<unsigned long long>(good.load()),
                static_cast<unsigned long long>(retried.load()));
}

TEST_CASE("read_in_place reports a held, a torn and an absent element as read() does") {
    auto f = make_board(64, 2);
    auto r = open(f, Role::subscriber);
    StateWords words{f};
    int calls = 0;
    auto count = [&](const ElementView&) { ++calls; };

    // Writer entry 0 holds element 1 and never lets go: bounded retries, then would_block.
    sd::atom(words[1]).store((std::uint64_t{3} << 32) | 1, std::memory_order_release);
    auto held = r.read_in_place(1, count);
    REQUIRE_FALSE(held);
    CHECK(held.code() == Errc::would_block);
    CHECK(calls == 0); // never called on a locked element

    sd::atom(words[1]).store((std::uint64_t{4} << 32) | sd::kElementTorn,
                             std::memory_order_release);
    auto torn = r.read_in_place(1, count);
    REQUIRE_FALSE(torn);
    CHECK(torn.code() == Errc::corrupted);
    CHECK(torn.error().detail.find("element 1 is torn") != std::string::npos);

    auto past = r.read_in_place(2, count);
    REQUIRE_FALSE(past);
    CHECK(past.code() == Errc::invalid_argument);
    CHECK(calls == 0);
}
