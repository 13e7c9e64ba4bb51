// Peer events in one process, without a daemon: the channel's supervisor writes the event
// ring as shmbusd does, endpoints read it. Order, filtering of an endpoint's own events,
// lost and damaged records, the lapped event of a broadcast drop subscriber, and the died
// event of a reclaim. The daemon's side (attach, detach, death of real processes) is in
// tests/integration/test_peer_events.cpp.
#include "event_reading.hpp"
#include "local_endpoints.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include "shm/layout.hpp"
#include "shm/segment.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <unistd.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;

namespace {

EndpointOptions with_events(std::int32_t index = -1) {
    EndpointOptions o;
    o.peer_events = true;
    o.endpoint_index = index;
    return o;
}

} // namespace

TEST_CASE("an endpoint reads the events posted after it attached, in order, but not its own") {
    auto f = make_channel(spec("events-order", ChannelKind::broadcast, 32, 8, 2, 2));
    auto sup = attach_supervisor(f);
    REQUIRE(sup.post_event(EventKind::attached, Role::publisher, 1, 4000)); // before: not ours
    auto sub = attach_subscriber(f, with_events(0));
    REQUIRE(sup.post_event(EventKind::attached, Role::subscriber, 0, 4001)); // about itself
    REQUIRE(sup.post_event(EventKind::attached, Role::publisher, 0, 4242));
    REQUIRE(sup.post_event(EventKind::attached, Role::subscriber, 1, 4343));
    REQUIRE(sup.post_event(EventKind::detached, Role::publisher, 0, 4242));

    const auto events = drain_events(sub);
    REQUIRE(events.size() == 3);
    CHECK(events[0].kind == EventKind::attached);
    CHECK(events[0].role == Role::publisher);
    CHECK(events[0].endpoint_index == 0);
    CHECK(events[0].pid == 4242);
    CHECK(events[1].kind == EventKind::attached);
    CHECK(events[1].role == Role::subscriber);
    CHECK(events[1].endpoint_index == 1);
    CHECK(events[1].pid == 4343);
    CHECK(events[2].kind == EventKind::detached);
    CHECK(events[2].role == Role::publisher);
    CHECK(events[0].sequence < events[1].sequence);
    CHECK(events[1].sequence < events[2].sequence);
    CHECK(drain_events(sub).empty());
}

TEST_CASE("an endpoint that did not ask for peer events reads none") {
    auto f = make_channel(spec("events-off", ChannelKind::queue, 32, 8));
    auto sup = attach_supervisor(f);
    auto sub = attach_subscriber(f, EndpointOptions{});
    REQUIRE(sup.post_event(EventKind::attached, Role::publisher, 0, 1));
    CHECK(drain_events(sub).empty());
}

TEST_CASE("the supervisor posts only attach and detach by hand, within the tables") {
    auto f = make_channel(spec("events-post", ChannelKind::queue, 32, 8));
    auto sup = attach_supervisor(f);
    auto died = sup.post_event(EventKind::died, Role::publisher, 0, 1);
    REQUIRE_FALSE(died);
    CHECK(died.code() == Errc::invalid_argument);
    auto beyond = sup.post_event(EventKind::attached, Role::subscriber, 1, 1);
    REQUIRE_FALSE(beyond);
    CHECK(beyond.code() == Errc::invalid_argument);
    CHECK(beyond.error().message().find("beyond the table of 1") != std::string::npos);
}

TEST_CASE("events overwritten before they were read are reported first, as events_lost") {
    auto f = make_channel(spec("events-lost", ChannelKind::broadcast, 32, 8, 1, 2));
    auto sup = attach_supervisor(f);
    auto sub = attach_subscriber(f, with_events(0));
    const std::uint64_t ring = detail::kEventRecords;
    const std::uint64_t posted = ring + 10;
    for (std::uint64_t i = 0; i < posted; ++i) {
        REQUIRE(sup.post_event(i % 2 == 0 ? EventKind::attached : EventKind::detached,
                               Role::publisher, 0, static_cast<std::uint32_t>(i)));
    }
    const auto events = drain_events(sub);
    REQUIRE(events.size() == ring + 1);
    CHECK(events[0].kind == EventKind::events_lost);
    CHECK(events[0].count == posted - ring);
    // The ones kept are the newest, in order.
    CHECK(events[1].pid == posted - ring);
    CHECK(events.back().pid == posted - 1);
}

TEST_CASE("a damaged event record is counted as lost, never handed out") {
    auto f = make_channel(spec("events-damaged", ChannelKind::broadcast, 32, 8, 1, 2));
    auto sup = attach_supervisor(f);
    auto sub = attach_subscriber(f, with_events(0));
    REQUIRE(sup.post_event(EventKind::attached, Role::publisher, 0, 10));
    REQUIRE(sup.post_event(EventKind::attached, Role::subscriber, 1, 11));
    REQUIRE(sup.post_event(EventKind::detached, Role::subscriber, 1, 11));
    // A hostile participant scribbles on the second and third records.
    auto ch = detail::attach_channel(f, detail::PayloadAccess::writable);
    REQUIRE(ch);
    const std::uint64_t head = ch->events->head;
    ch->events->records[(head - 2) % detail::kEventRecords].endpoint_index = 999; // beyond 2
    ch->events->records[(head - 1) % detail::kEventRecords].kind = 77;            // unknown kind

    const auto events = drain_events(sub);
    REQUIRE(events.size() == 2);
    CHECK(events[0].kind == EventKind::events_lost);
    CHECK(events[0].count == 2);
    CHECK(events[1].kind == EventKind::attached);
    CHECK(events[1].pid == 10);
}

TEST_CASE("a read that fills the buffer leaves events lost on the way for the next one") {
    auto f = make_channel(spec("events-full", ChannelKind::broadcast, 32, 8, 1, 2));
    auto sup = attach_supervisor(f);
    auto sub = attach_subscriber(f, with_events(0));
    for (std::uint32_t pid = 1; pid <= 5; ++pid) {
        REQUIRE(sup.post_event(EventKind::attached, Role::publisher, 0, pid));
    }
    auto ch = detail::attach_channel(f, detail::PayloadAccess::writable);
    REQUIRE(ch);
    const std::uint64_t head = ch->events->head;
    ch->events->records[(head - 4) % detail::kEventRecords].kind = 77; // the second: damaged

    // Four good events fill a buffer of four; the one lost on the way must not be written
    // beside them, past its end.
    std::array<PeerEvent, 5> room{};
    room[4].pid = 0xdead;
    const std::size_t n = sub.events(std::span{room}.first(4));
    REQUIRE(n == 4);
    CHECK(room[4].pid == 0xdead);
    CHECK(room[0].pid == 1);
    CHECK(room[3].pid == 5);
    const auto rest = drain_events(sub);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].kind == EventKind::events_lost);
    CHECK(rest[0].count == 1);
}

TEST_CASE("a broadcast drop subscriber that was lapped gets a lapped event with what it lost") {
    auto f =
        make_channel(spec("events-lapped", ChannelKind::broadcast, 32, 8, 1, 1, Overflow::drop));
    auto pub = attach_publisher(f);
    auto sub = attach_subscriber(f, with_events());
    std::byte msg[16]{};
    for (int i = 0; i < 8 + 5; ++i) {
        REQUIRE(pub.try_send(msg));
    }
    std::byte buf[32];
    auto r = sub.try_receive_copy(buf);
    REQUIRE(r);
    REQUIRE(r->lost_before == 5);
    const auto events = drain_events(sub);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == EventKind::lapped);
    CHECK(events[0].count == 5);
    CHECK(drain_events(sub).empty()); // reported once
}

TEST_CASE("reclaiming a dead endpoint tells the others that it died") {
    auto f = make_channel(spec("events-died", ChannelKind::queue, 32, 8, 1, 1));
    auto sup = attach_supervisor(f);
    auto sub = attach_subscriber(f, with_events());
    // A publisher whose process ends without detaching.
    auto child = Child::spawn([&]() -> int {
        auto p = Publisher::attach(*f.duplicate_for(Role::publisher));
        ::_exit(p ? 0 : 1); // no destructor: the entry stays attached
    });
    auto status = child.wait();
    REQUIRE(status);
    REQUIRE(status->exited_ok());
    REQUIRE(sup.reclaim_publisher(0));
    const auto events = drain_events(sub);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == EventKind::died);
    CHECK(events[0].role == Role::publisher);
    CHECK(events[0].endpoint_index == 0);
    CHECK(events[0].pid == static_cast<std::uint32_t>(child.pid()));
}
