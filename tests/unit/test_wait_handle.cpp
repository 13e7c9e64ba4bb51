// Wait handles in one process, without a daemon: the descriptor becomes readable when the
// endpoint has something to do and quiet once a call finds nothing left, under every wait
// mode and channel algorithm; a blocked publisher's handle reports room; peer events make a
// handle readable; and a writer pays a wake-up only while the reader's handle is armed
// (the waits/wakes counters of the segment prove it); an inherited copy in a child of fork()
// is destroyed harmlessly. The epoll loop over shmbusd is in
// tests/integration/test_wait_handle_epoll.cpp.
#include "local_endpoints.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <optional>
#include <poll.h>
#include <thread>

using namespace shmbus;
using namespace shmbus::test;

namespace {

ChannelStats stats_of(const ChannelFiles& f) {
    auto s = read_stats(f);
    REQUIRE(s);
    return *s;
}

void send_one(Publisher& p, std::uint64_t id) {
    std::byte msg[16];
    stamp(msg, id);
    REQUIRE(p.try_send(msg));
}

std::uint64_t receive_one(Subscriber& s) {
    std::byte buf[32];
    auto r = s.try_receive_copy(buf);
    INFO((r ? std::string{} : r.error().message()));
    REQUIRE(r);
    return check_stamp({buf, r->size});
}

} // namespace

TEST_CASE("a subscriber's wait handle is readable while a message waits, in every wait mode") {
    const WaitMode mode = GENERATE(WaitMode::spin, WaitMode::adaptive, WaitMode::blocking);
    const auto kind = GENERATE(as<std::string>{}, "spsc", "mpmc", "broadcast");
    CAPTURE(to_string(mode), kind);
    const ChannelSpec s = kind == "spsc"   ? spec("wh-spsc", ChannelKind::queue, 16, 8)
                          : kind == "mpmc" ? spec("wh-mpmc", ChannelKind::queue, 16, 8, 2, 2)
                                           : spec("wh-bc", ChannelKind::broadcast, 16, 8);
    auto f = make_channel(s);
    EndpointOptions o;
    o.wait = mode;
    auto pub = attach_publisher(f, o);
    auto sub = attach_subscriber(f, o);
    const int fd = handle_of(sub);
    CHECK(!readable_now(fd));

    // From another thread, as a writer in another process would.
    std::thread writer{[&] {
        std::byte msg[16];
        stamp(msg, 7);
        (void)pub.try_send(msg);
    }};
    writer.join();
    REQUIRE(becomes_readable(fd));
    CHECK(readable_now(fd)); // level: stays readable until the subscriber has drained
    CHECK(receive_one(sub) == 7);
    std::byte buf[32];
    auto empty = sub.try_receive_copy(buf);
    REQUIRE_FALSE(empty);
    CHECK(empty.code() == Errc::would_block);
    CHECK(!readable_now(fd)); // the receive that found nothing re-armed it

    // And again: the handle works for more than one round.
    send_one(pub, 8);
    REQUIRE(becomes_readable(fd));
    CHECK(receive_one(sub) == 8);
}

TEST_CASE("a publisher's wait handle reports room once the ring was full") {
    const WaitMode mode = GENERATE(WaitMode::spin, WaitMode::adaptive, WaitMode::blocking);
    const bool broadcast = GENERATE(false, true);
    CAPTURE(to_string(mode), broadcast);
    auto f = make_channel(broadcast ? spec("wh-room-bc", ChannelKind::broadcast, 16, 4)
                                    : spec("wh-room-q", ChannelKind::queue, 16, 4));
    EndpointOptions o;
    o.wait = mode;
    auto pub = attach_publisher(f, o);
    auto sub = attach_subscriber(f, o);
    const int fd = handle_of(pub);
    CHECK(!readable_now(fd)); // room, nothing asked for: nothing to do
    std::byte msg[16]{};
    for (int i = 0; i < 4; ++i) {
        REQUIRE(pub.try_send(msg));
    }
    auto full = pub.try_send(msg);
    REQUIRE_FALSE(full);
    CHECK(full.code() == Errc::would_block);
    CHECK(!readable_now(fd));

    std::thread reader{[&] {
        std::byte buf[32];
        (void)sub.try_receive_copy(buf);
    }};
    reader.join();
    REQUIRE(becomes_readable(fd));
    CHECK(pub.try_send(msg));
}

TEST_CASE("a writer wakes a reader's handle only while it is armed") {
    auto f = make_channel(spec("wh-wakes", ChannelKind::queue, 16, 64));
    auto pub = attach_publisher(f);
    auto sub = attach_subscriber(f);
    // Without a handle, and nobody waiting, writers never wake anyone.
    send_one(pub, 0);
    CHECK(receive_one(sub) == 0);
    CHECK(stats_of(f).data_wakes == 0);

    const int fd = handle_of(sub);
    // The relay arms the handle on the futex in its own time: wait until it sleeps.
    const Deadline deadline;
    while (stats_of(f).data_waits == 0 && !deadline.passed()) {
        std::this_thread::yield();
    }
    REQUIRE(stats_of(f).data_waits == 1);
    send_one(pub, 1);
    REQUIRE(becomes_readable(fd));
    const std::uint64_t wakes = stats_of(f).data_wakes;
    CHECK(wakes == 1);
    // Fired and not re-armed: the writer's data path has nobody to wake.
    for (std::uint64_t i = 2; i < 40; ++i) {
        send_one(pub, i);
    }
    CHECK(stats_of(f).data_wakes == wakes);
    for (std::uint64_t i = 1; i < 40; ++i) {
        CHECK(receive_one(sub) == i);
    }
    std::byte buf[32];
    CHECK_FALSE(sub.try_receive_copy(buf)); // re-arms
    send_one(pub, 40);
    REQUIRE(becomes_readable(fd));
    CHECK(receive_one(sub) == 40);
}

TEST_CASE("peer events make a handle readable, for a subscriber and an idle publisher") {
    auto f = make_channel(spec("wh-events", ChannelKind::broadcast, 16, 8, 2, 2));
    auto sup = attach_supervisor(f);
    EndpointOptions o;
    o.peer_events = true;
    auto pub = attach_publisher(f, o);
    auto sub = attach_subscriber(f, o);
    const int sub_fd = handle_of(sub);
    const int pub_fd = handle_of(pub);
    CHECK(!readable_now(sub_fd));
    CHECK(!readable_now(pub_fd));

    REQUIRE(sup.post_event(EventKind::attached, Role::subscriber, 1, 99));
    REQUIRE(becomes_readable(sub_fd));
    REQUIRE(becomes_readable(pub_fd));
    std::array<PeerEvent, 4> events;
    REQUIRE(sub.events(events) == 1);
    CHECK(events[0].pid == 99);
    CHECK(!readable_now(sub_fd)); // events() ran out: re-armed
    REQUIRE(pub.events(events) == 1);
    CHECK(events[0].pid == 99);
    CHECK(!readable_now(pub_fd));

    // The idle publisher waits for events on the event ring's own futex: readers releasing
    // messages have nobody to wake on the space futex.
    for (std::uint64_t i = 0; i < 6; ++i) {
        send_one(pub, i);
        CHECK(receive_one(sub) == i);
    }
    CHECK(stats_of(f).space_wakes == 0);
}

TEST_CASE("an endpoint with an armed wait handle is destroyed without waiting for a writer") {
    auto f = make_channel(spec("wh-destroy", ChannelKind::queue, 16, 8));
    auto pub = attach_publisher(f);
    {
        auto sub = attach_subscriber(f);
        const int fd = handle_of(sub);
        CHECK(!readable_now(fd));
    } // the relay sleeps on the futex: the destructor must wake it and join
    auto again = attach_subscriber(f);
    send_one(pub, 3);
    CHECK(receive_one(again) == 3);
}

TEST_CASE("a child of fork() that destroys an inherited endpoint leaves the parent's handle "
          "working") {
    auto f = make_channel(spec("wh-fork", ChannelKind::queue, 16, 8));
    auto pub = attach_publisher(f);
    std::optional<Subscriber> sub{attach_subscriber(f)};
    const int fd = handle_of(*sub);
    auto child = Child::spawn([&sub]() -> int {
        sub.reset(); // no relay thread here: must neither join nor touch the parent's
        return 0;
    });
    auto status = child.wait();
    REQUIRE(status);
    CHECK(status->exited_ok());
    send_one(pub, 5);
    REQUIRE(becomes_readable(fd));
    CHECK(receive_one(*sub) == 5);
}
