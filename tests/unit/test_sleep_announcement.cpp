// Sleep announcements (client-lib/src/shm/sleep_announcement.hpp): a ring endpoint counts
// itself among the sleepers of its side before its first sleep, and only then do the other
// side's commits and releases pay for the wake-up handshake. These tests pin that the count
// moves exactly when it should (never for an endpoint that does not sleep, once for one
// that does, back at detach and at the reclaim of a dead endpoint), the kernel facility the
// protocol rests on, and that no wake-up is lost to an endpoint announcing itself while the
// other side publishes.
#include "channel_endpoints.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include "shm/atomics.hpp"
#include "shm/segment.hpp"
#include "shm/sleep_announcement.hpp"

#include <shmbus/supervisor.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

/// The channel's control block, through a mapping of our own.
struct Control {
    detail::AttachedChannel ch;
    explicit Control(const ChannelFiles& f) {
        auto a = detail::attach_channel(f, detail::PayloadAccess::read_only);
        REQUIRE(a);
        ch = std::move(*a);
    }
    [[nodiscard]] std::uint32_t load(const std::uint32_t& word) const {
        return detail::atom_load(word, std::memory_order_acquire);
    }
    [[nodiscard]] std::uint32_t data_sleepers() const { return load(ch.control->data_sleepers); }
    [[nodiscard]] std::uint32_t space_sleepers() const { return load(ch.control->space_sleepers); }
    [[nodiscard]] std::uint32_t data_waiters() const { return load(ch.control->data_waiters); }
    [[nodiscard]] std::uint32_t space_waiters() const { return load(ch.control->space_waiters); }
};

/// Whether the endpoint watched by `count` (a waiter count) went to sleep before the
/// generous deadline: the sleeper counts itself in just before FUTEX_WAIT.
bool asleep(const std::function<std::uint32_t()>& count) {
    const Deadline deadline;
    while (count() == 0) {
        if (deadline.passed()) {
            return false;
        }
        std::this_thread::yield();
    }
    return true;
}

/// What receive_one() returns when the receive or the release failed.
constexpr std::uint64_t kFailed = ~std::uint64_t{0};

/// Receives one message, waiting as long as it takes; returns its sequence number, or
/// kFailed. No Catch2 assertion: other threads call it too, and Catch2 is not thread-safe.
std::uint64_t receive_one(Subscriber& sub) {
    auto r = sub.receive(1, std::chrono::nanoseconds::max());
    if (!r) {
        return kFailed;
    }
    const std::uint64_t seq = r->message(0).sequence;
    return sub.release(*r) ? seq : kFailed;
}

/// Sends one message stamped with `id`, waiting for room up to a generous deadline; whether
/// it went out. No Catch2 assertion, as receive_one().
bool send_quietly(Publisher& pub, std::uint64_t id) {
    std::byte msg[24];
    stamp(msg, id);
    return pub.send(msg, 30s).has_value();
}

} // namespace

TEST_CASE("the kernel offers the expedited global membarrier that wakers rely on to skip") {
    // What wakers_may_skip() registers for; a kernel without it makes every waker take the
    // handshake, which the other tests cover too.
    const long query = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0U, 0);
    REQUIRE(query >= 0);
    const bool offered = (query & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
    CHECK(detail::wakers_may_skip() == offered);
    const std::uint32_t count = 0;
    CHECK((*detail::skip_word(&count) == 0) == offered);
}

TEST_CASE("an endpoint that never sleeps never counts itself among the sleepers") {
    auto f = make(spec("announce-none", ChannelKind::queue, 32, 8));
    Control c{f};
    auto pub = publisher(f, WaitMode::spin);
    auto sub = subscriber(f, WaitMode::adaptive);
    for (std::uint64_t i = 0; i < 20; ++i) {
        send_id(pub, i);
        CHECK(receive_one(sub) == i);
    }
    CHECK(c.data_sleepers() == 0);
    CHECK(c.space_sleepers() == 0);
}

TEST_CASE("a subscriber's first sleep announces it once, and a commit wakes it") {
    auto f = make(spec("announce-sub", ChannelKind::queue, 32, 8));
    Control c{f};
    auto pub = publisher(f, WaitMode::spin);
    auto sub = subscriber(f, WaitMode::blocking);
    for (std::uint64_t round = 0; round < 3; ++round) {
        std::atomic<std::uint64_t> got{kFailed};
        std::thread reader{[&] { got = receive_one(sub); }};
        REQUIRE(asleep([&] { return c.data_waiters(); }));
        CHECK(c.data_sleepers() == 1); // announced at the first sleep, not again
        send_id(pub, round);
        reader.join();
        CHECK(got == round);
    }
    CHECK(c.space_sleepers() == 0);
}

TEST_CASE("a publisher's first sleep for room announces it, and a release wakes it") {
    auto f = make(spec("announce-pub", ChannelKind::queue, 32, 2));
    Control c{f};
    auto pub = publisher(f, WaitMode::blocking);
    auto sub = subscriber(f, WaitMode::spin);
    send_id(pub, 0);
    send_id(pub, 1); // the ring is full
    std::atomic<bool> sent{false};
    std::thread writer{[&] { sent = send_quietly(pub, 2); }};
    REQUIRE(asleep([&] { return c.space_waiters(); }));
    CHECK(c.space_sleepers() == 1);
    auto r = sub.try_receive();
    REQUIRE(r);
    REQUIRE(sub.release(*r));
    writer.join();
    CHECK(sent);
    CHECK(c.data_sleepers() == 0);
}

TEST_CASE("an endpoint that detaches withdraws its announcement") {
    auto f = make(spec("announce-detach", ChannelKind::broadcast, 32, 8, 1, 2));
    Control c{f};
    auto pub = publisher(f, WaitMode::spin);
    {
        auto sub = subscriber(f, WaitMode::blocking);
        CHECK_FALSE(sub.receive(1, 1ms)); // sleeps once, for nothing
        CHECK(c.data_sleepers() == 1);
    }
    CHECK(c.data_sleepers() == 0);
    // A second subscriber in the same entry starts unannounced.
    auto again = subscriber(f, WaitMode::spin);
    send_id(pub, 7);
    CHECK(receive_one(again) == 0);
    CHECK(c.data_sleepers() == 0);
}

TEST_CASE("the reclaim of a dead subscriber withdraws its announcement") {
    auto f = make(spec("announce-reclaim", ChannelKind::queue, 32, 8));
    Control c{f};
    Child child = Child::spawn([&] {
        auto sub = Subscriber::attach(*f.duplicate_for(Role::subscriber), {WaitMode::blocking});
        if (!sub) {
            return 1;
        }
        (void)sub->receive(1, std::chrono::nanoseconds::max()); // sleeps until killed
        return 0;
    });
    REQUIRE(asleep([&] { return c.data_waiters(); }));
    CHECK(c.data_sleepers() == 1);
    child.kill_and_wait();
    auto sup = ChannelSupervisor::attach(*f.duplicate_for(Role::publisher));
    REQUIRE(sup);
    REQUIRE(sup->reclaim_subscriber(0));
    CHECK(c.data_sleepers() == 0);
}

TEST_CASE("no wake-up is lost to a subscriber announcing itself while the publisher commits") {
    // The race the announcement closes: each round, a fresh blocking subscriber makes its
    // first sleep (and so its announcement) while a spinning publisher commits its one
    // message at about the same moment, without any handshake of its own until the count
    // says someone may sleep. A lost wake-up would leave the receive asleep past the deadline.
    const std::uint64_t rounds = scaled(300, 50);
    for (std::uint64_t round = 0; round < rounds; ++round) {
        auto f = make(spec("announce-race", ChannelKind::queue, 32, 8));
        auto pub = publisher(f, WaitMode::spin);
        auto sub = subscriber(f, WaitMode::blocking);
        std::atomic<bool> go{false};
        std::atomic<bool> sent{false};
        std::thread writer{[&] {
            while (!go.load(std::memory_order_acquire)) {
            }
            // Vary the moment of the commit against the announcement.
            for (std::uint64_t i = 0; i < (round % 17) * 50; ++i) {
                detail::cpu_relax();
            }
            sent = send_quietly(pub, round);
        }};
        go.store(true, std::memory_order_release);
        auto r = sub.receive(1, 30s);
        writer.join();
        REQUIRE(sent);
        REQUIRE(r);
        CHECK(r->message(0).sequence == 0);
        REQUIRE(sub.release(*r));
    }
}
