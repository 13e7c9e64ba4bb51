// Counters channels in one process (and forked writers for SIGKILL): cells created on first
// use, the atomic operations and their wrapping, concurrent creation of one name, readers
// that may not write, a writer killed while naming a cell, and damaged cells.
#include "process.hpp"
#include "test_support.hpp"

#include "shm/segment.hpp"
#include "shm/shared_state.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
namespace sd = shmbus::detail;

namespace {

ChannelFiles make_counters(std::uint64_t cells, std::uint32_t writers = 4) {
    auto files =
        create_channel(spec("ctr", ChannelKind::counters, kCounterSlotSize, cells, writers, 4));
    REQUIRE(files);
    return std::move(*files);
}

Counters open(const ChannelFiles& f, Role role) {
    auto c = Counters::attach(*f.duplicate_for(role), role);
    REQUIRE(c);
    return std::move(*c);
}

} // namespace

TEST_CASE("a counter cell is created by the first writer that names it, and found by readers") {
    auto f = make_counters(8);
    auto w = open(f, Role::publisher);
    auto r = open(f, Role::subscriber);
    auto absent = r.cell("requests");
    REQUIRE_FALSE(absent);
    CHECK(absent.code() == Errc::not_found);
    CHECK(absent.error().detail.find("'requests'") != std::string::npos);

    auto c = w.cell("requests");
    REQUIRE(c);
    CHECK(c->load() == 0);
    REQUIRE(c->fetch_add(5));
    auto seen = r.cell("requests");
    REQUIRE(seen);
    CHECK(seen->load() == 5);
    CHECK(seen->index() == c->index());
    auto again = w.cell("requests");
    REQUIRE(again);
    CHECK(again->index() == c->index()); // the same cell, not a second one
    REQUIRE(w.cell("errors"));
    auto all = r.list();
    REQUIRE(all);
    REQUIRE(all->size() == 2);
    CHECK((*all)[0].name == "requests");
    CHECK((*all)[0].value == 5);
    CHECK((*all)[1].name == "errors");
    CHECK(r.capacity() == 8);
}

TEST_CASE("counter operations: add, sub, store, compare-exchange and fetch-max, wrapping") {
    auto f = make_counters(4);
    auto w = open(f, Role::publisher);
    auto c = w.cell("x");
    REQUIRE(c);
    REQUIRE(c->store(std::numeric_limits<std::uint64_t>::max()));
    auto before = c->fetch_add(2);
    REQUIRE(before);
    CHECK(*before == std::numeric_limits<std::uint64_t>::max());
    CHECK(c->load() == 1); // wrapped past 2^64 - 1
    auto sub = c->fetch_sub(2);
    REQUIRE(sub);
    CHECK(c->load() == std::numeric_limits<std::uint64_t>::max());
    REQUIRE(c->store(10));
    std::uint64_t expected = 9;
    auto swapped = c->compare_exchange(expected, 20);
    REQUIRE(swapped);
    CHECK_FALSE(*swapped);
    CHECK(expected == 10);
    swapped = c->compare_exchange(expected, 20);
    REQUIRE(swapped);
    CHECK(*swapped);
    CHECK(c->load() == 20);
    auto m = c->fetch_max(15);
    REQUIRE(m);
    CHECK(*m == 20);
    CHECK(c->load() == 20);
    m = c->fetch_max(30);
    REQUIRE(m);
    CHECK(c->load() == 30);
}

TEST_CASE("a counters reader may not write, and its mapping is read-only") {
    auto f = make_counters(4);
    auto w = open(f, Role::publisher);
    REQUIRE(w.cell("x"));
    auto r = open(f, Role::subscriber);
    auto c = r.cell("x");
    REQUIRE(c);
    auto denied = c->fetch_add(1);
    REQUIRE_FALSE(denied);
    CHECK(denied.code() == Errc::permission_denied);
    CHECK_FALSE(c->store(1));
    std::uint64_t e = 0;
    CHECK_FALSE(c->compare_exchange(e, 1));
    CHECK_FALSE(c->fetch_max(1));
    CHECK(c->load() == 0);
    // The kernel agrees: the reader's descriptor cannot be mapped for writing.
    auto writable = sd::attach_channel(*f.duplicate_for(Role::subscriber),
                                       sd::PayloadAccess::writable, sd::Prefault::no);
    REQUIRE_FALSE(writable);
    CHECK(writable.code() == Errc::permission_denied);
}

TEST_CASE("counter names are checked and the cells run out with a clear error") {
    auto f = make_counters(2);
    auto w = open(f, Role::publisher);
    CHECK(w.cell("").code() == Errc::invalid_argument);
    CHECK(w.cell(std::string(48, 'a')).code() == Errc::invalid_argument);
    CHECK(w.cell("bad name").code() == Errc::invalid_argument);
    REQUIRE(w.cell(std::string(47, 'a')));
    REQUIRE(w.cell("b"));
    auto full = w.cell("c");
    REQUIRE_FALSE(full);
    CHECK(full.code() == Errc::limit_reached);
    CHECK(full.error().detail.find("raise slot_count") != std::string::npos);
}

TEST_CASE("writers racing to create the same names get one cell per name") {
    auto f = make_counters(64, 4);
    constexpr int kNames = 16;
    const std::uint64_t adds = scaled(5'000, 500);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            auto w = Counters::attach(*f.duplicate_for(Role::publisher), Role::publisher);
            if (!w) {
                return;
            }
            for (std::uint64_t i = 0; i < adds; ++i) {
                auto c = w->cell("n" + std::to_string(i % kNames));
                if (c) {
                    (void)c->fetch_add(1);
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    auto r = open(f, Role::subscriber);
    auto all = r.list();
    REQUIRE(all);
    CHECK(all->size() == kNames);
    std::set<std::string> names;
    std::uint64_t total = 0;
    for (const auto& c : *all) {
        names.insert(c.name);
        total += c.value;
    }
    CHECK(names.size() == kNames);
    CHECK(total == 4 * adds);
}

TEST_CASE("a cell a writer was naming when killed is freed by the reclaim") {
    auto f = make_counters(4);
    sd::AttachedChannel ch = [&] {
        auto a = sd::attach_channel(f, sd::PayloadAccess::writable, sd::Prefault::no);
        REQUIRE(a);
        return std::move(*a);
    }();
    Pipe ready = Pipe::make();
    Child victim = Child::spawn([&] {
        auto w = Counters::attach(*f.duplicate_for(Role::publisher), Role::publisher);
        if (!w) {
            return 1;
        }
        // Stop exactly where a writer naming a cell could die: the cell taken, its name not
        // written. (The naming itself is a few stores; this is that moment, held.)
        std::uint64_t expected = sd::kCellFree;
        sd::atom(ch.element(0)->state)
            .compare_exchange_strong(expected, sd::kCellNaming | (w->endpoint_index() + 1));
        (void)send_record(ready.write_end.get(), w->endpoint_index());
        for (;;) {
            ::pause();
        }
    });
    auto index = receive_record<std::uint32_t>(ready.read_end.get(), Deadline{});
    REQUIRE(index);
    victim.kill_and_wait(SIGKILL);
    auto w = open(f, Role::publisher);
    // While the dead writer is not reclaimed, a writer waits a bounded time, then says why.
    auto waiting = w.cell("x");
    REQUIRE_FALSE(waiting);
    CHECK(waiting.code() == Errc::would_block);
    CHECK(waiting.error().detail.find("being named") != std::string::npos);

    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    auto report = sup->reclaim_publisher(*index);
    REQUIRE(report);
    CHECK(report->abandoned_slots == 1);
    auto c = w.cell("x");
    REQUIRE(c);
    CHECK(c->index() == 0); // the freed cell, reused
}

TEST_CASE("a damaged counter cell is a clear error, never a crash or a hang") {
    auto f = make_counters(4);
    auto w = open(f, Role::publisher);
    REQUIRE(w.cell("a"));
    auto a = sd::attach_channel(f, sd::PayloadAccess::writable, sd::Prefault::no);
    REQUIRE(a);
    auto& state = a->element(0)->state;
    char* name = reinterpret_cast<char*>(a->element(0)) + sd::kSlotDataOffset;
    auto r = open(f, Role::subscriber);
    SECTION("a state word that is no state") {
        for (const std::uint64_t garbage :
             {std::uint64_t{1}, sd::kCellNaming, sd::kCellNaming | 999, ~std::uint64_t{0}}) {
            INFO("state " << garbage);
            sd::atom(state).store(garbage);
            auto found = r.cell("a");
            REQUIRE_FALSE(found);
            CHECK(found.code() == Errc::corrupted);
            CHECK(found.error().detail.find("cell 0") != std::string::npos);
            auto listed = r.list();
            REQUIRE_FALSE(listed);
            CHECK(listed.code() == Errc::corrupted);
        }
    }
    SECTION("a name without its terminator or with a bad character") {
        for (const char fill : {'x', '\n'}) {
            std::memset(name, fill, kCounterSlotSize);
            auto found = r.cell("a");
            REQUIRE_FALSE(found);
            CHECK(found.code() == Errc::corrupted);
            CHECK(found.error().detail.find("cell 0") != std::string::npos);
            CHECK(r.list().code() == Errc::corrupted);
        }
    }
}
