// Peer events and wait handles of rpc endpoints, in one process, without a daemon: the
// channel's supervisor writes the event ring as shmbusd does. A caller learns that a server
// is gone (server_gone after the server's detached or died, also when it does not fit in
// one read); a server's handle is readable while a request waits, a caller's while an
// outcome waits or a server went, under every wait mode, and quiet again once drained. The
// daemon's side (real processes, kill -9) is in tests/integration/test_rpc_events.cpp.
#include "event_reading.hpp"
#include "local_endpoints.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include "shm/layout.hpp"
#include "shm/segment.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 30s; // generous: only reached when something is broken

ChannelSpec rpc_spec(const std::string& stem, std::uint32_t callers = 2,
                     std::uint32_t servers = 2) {
    ChannelSpec s = spec(stem, ChannelKind::rpc, 64, 4, callers, servers);
    s.reply_slot_size = 64;
    return s;
}

EndpointOptions options(WaitMode mode = WaitMode::adaptive, bool events = false) {
    EndpointOptions o;
    o.wait = mode;
    o.peer_events = events;
    return o;
}

/// Marks server entry `index` attached by hand, as a server whose process is then killed
/// leaves it for the daemon's reclaim.
void attach_by_hand(const ChannelFiles& f, std::uint32_t index) {
    auto raw = detail::attach_channel(f, detail::PayloadAccess::writable);
    REQUIRE(raw);
    detail::atom(raw->subscribers[index].state)
        .store(static_cast<std::uint32_t>(detail::EndpointState::active));
}

std::span<const std::byte> bytes(const char* s) {
    return std::as_bytes(std::span{s, std::strlen(s)});
}

} // namespace

TEST_CASE("an rpc caller gets server_gone after a server's detached or died, in order") {
    auto f = make_channel(rpc_spec("rpc-ev-gone"));
    auto sup = attach_supervisor(f);
    auto caller = attach_caller(f, options(WaitMode::adaptive, true));
    const std::uint32_t other = caller.endpoint_index() == 0 ? 1 : 0;
    REQUIRE(sup.post_event(EventKind::attached, Role::subscriber, 0, 500));
    REQUIRE(sup.post_event(EventKind::attached, Role::publisher, other, 600)); // a caller
    REQUIRE(sup.post_event(EventKind::detached, Role::publisher, other, 600)); // not a server
    REQUIRE(sup.post_event(EventKind::detached, Role::subscriber, 0, 500));
    attach_by_hand(f, 1);
    REQUIRE(sup.reclaim_subscriber(1)); // posts died

    const auto events = drain_events(caller);
    REQUIRE(events.size() == 7);
    CHECK(events[0].kind == EventKind::attached);
    CHECK(events[1].kind == EventKind::attached);
    CHECK(events[2].kind == EventKind::detached);
    CHECK(events[2].role == Role::publisher);
    CHECK(events[3].kind == EventKind::detached);
    CHECK(events[3].role == Role::subscriber);
    CHECK(events[4].kind == EventKind::server_gone);
    CHECK(events[4].role == Role::subscriber);
    CHECK(events[4].endpoint_index == 0);
    CHECK(events[4].pid == 500);
    CHECK(events[4].sequence == events[3].sequence);
    CHECK(events[5].kind == EventKind::died);
    CHECK(events[5].endpoint_index == 1);
    CHECK(events[6].kind == EventKind::server_gone);
    CHECK(events[6].endpoint_index == 1);
    CHECK(events[6].sequence == events[5].sequence);
    CHECK(to_string(EventKind::server_gone) == "server_gone");
}

TEST_CASE("a server_gone that does not fit in one read comes first in the next") {
    auto f = make_channel(rpc_spec("rpc-ev-carry"));
    auto sup = attach_supervisor(f);
    auto caller = attach_caller(f, options(WaitMode::adaptive, true));
    REQUIRE(sup.post_event(EventKind::detached, Role::subscriber, 1, 77));
    REQUIRE(sup.post_event(EventKind::attached, Role::subscriber, 1, 78));
    const auto events = drain_events(caller, 1); // one event per read
    REQUIRE(events.size() == 3);
    CHECK(events[0].kind == EventKind::detached);
    CHECK(events[1].kind == EventKind::server_gone);
    CHECK(events[1].pid == 77);
    CHECK(events[2].kind == EventKind::attached);
    CHECK(events[2].pid == 78);
}

TEST_CASE("servers hear of callers and of each other, but get no server_gone") {
    auto f = make_channel(rpc_spec("rpc-ev-server"));
    auto sup = attach_supervisor(f);
    auto server = attach_server(f, options(WaitMode::adaptive, true));
    const std::uint32_t other = server.endpoint_index() == 0 ? 1 : 0;
    REQUIRE(sup.post_event(EventKind::attached, Role::publisher, 0, 10));
    REQUIRE(sup.post_event(EventKind::detached, Role::subscriber, other, 11));
    const auto events = drain_events(server);
    REQUIRE(events.size() == 2);
    CHECK(events[0].kind == EventKind::attached);
    CHECK(events[0].role == Role::publisher);
    CHECK(events[1].kind == EventKind::detached);
    CHECK(events[1].role == Role::subscriber);
}

TEST_CASE("a server's wait handle is readable while a request waits, in every wait mode") {
    const WaitMode mode = GENERATE(WaitMode::spin, WaitMode::adaptive, WaitMode::blocking);
    CAPTURE(to_string(mode));
    auto f = make_channel(rpc_spec("rpc-wh-server"));
    auto server = attach_server(f, options(mode));
    auto caller = attach_caller(f, options(mode));
    const int fd = handle_of(server);
    CHECK(!readable_now(fd));

    for (int round = 0; round < 2; ++round) { // the handle works for more than one round
        std::optional<Ticket> ticket;
        // From another thread, as a caller in another process would.
        std::thread other{[&] {
            auto t = caller.send_request(bytes("req"));
            if (t) {
                ticket = *t;
            }
        }};
        other.join();
        REQUIRE(ticket);
        REQUIRE(becomes_readable(fd));
        CHECK(readable_now(fd)); // level: stays readable until the server has drained
        auto batch = server.try_receive(4);
        REQUIRE(batch);
        REQUIRE(batch->size() == 1);
        REQUIRE(server.respond((*batch)[0], bytes("rep")));
        auto none = server.try_receive(4);
        REQUIRE_FALSE(none);
        CHECK(none.code() == Errc::would_block);
        CHECK(!readable_now(fd)); // the receive that found nothing re-armed it
        REQUIRE(caller.receive_reply(*ticket, kWait));
    }
}

TEST_CASE("a caller's wait handle is readable while an outcome waits, in every wait mode") {
    const WaitMode mode = GENERATE(WaitMode::spin, WaitMode::adaptive, WaitMode::blocking);
    CAPTURE(to_string(mode));
    auto f = make_channel(rpc_spec("rpc-wh-caller"));
    auto server = attach_server(f, options(mode));
    auto caller = attach_caller(f, options(mode));
    const int fd = handle_of(caller);
    CHECK(!readable_now(fd));

    auto first = caller.send_request(bytes("one"));
    auto second = caller.send_request(bytes("two"));
    REQUIRE(first);
    REQUIRE(second);
    CHECK(!readable_now(fd)); // sent, nothing answered
    std::array<std::byte, 16> reply{};
    auto early = caller.poll(*first, reply);
    REQUIRE_FALSE(early);
    CHECK(early.code() == Errc::would_block);

    std::thread answering{[&] {
        auto batch = server.try_receive(1); // one of the two
        if (batch) {
            (void)server.respond((*batch)[0], (*batch)[0].data);
        }
    }};
    answering.join();
    REQUIRE(becomes_readable(fd));
    auto a = caller.poll(*first, reply);
    auto b = caller.poll(*second, reply);
    CHECK((a.has_value() != b.has_value())); // exactly one was answered
    CHECK(!readable_now(fd)); // the polls re-armed it: the other call is still pending

    auto batch = server.try_receive(1);
    REQUIRE(batch);
    REQUIRE(server.respond((*batch)[0], (*batch)[0].data));
    REQUIRE(becomes_readable(fd));
    const Ticket& rest = a ? *second : *first;
    auto got = caller.poll(rest, reply);
    REQUIRE(got);
    CHECK(!readable_now(fd)); // nothing left to collect
}

TEST_CASE("a caller's wait handle fires when the last server leaves a call untaken, and for "
          "server_gone") {
    const WaitMode mode = GENERATE(WaitMode::spin, WaitMode::blocking);
    CAPTURE(to_string(mode));
    auto f = make_channel(rpc_spec("rpc-wh-gone"));
    auto sup = attach_supervisor(f);
    auto caller = attach_caller(f, options(mode, true));
    const int fd = handle_of(caller);
    std::optional<Ticket> ticket;
    {
        auto server = attach_server(f, options(mode));
        auto t = caller.send_request(bytes("never taken"));
        REQUIRE(t);
        ticket = *t;
        CHECK(!readable_now(fd));
    } // the only server leaves
    REQUIRE(becomes_readable(fd));
    auto r = caller.poll(*ticket);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::not_found);
    CHECK(!readable_now(fd));

    // The daemon's detach of that server, as an event: server_gone, and the handle fires.
    REQUIRE(sup.post_event(EventKind::detached, Role::subscriber, 0, 1234));
    REQUIRE(becomes_readable(fd));
    const auto events = drain_events(caller);
    REQUIRE(events.size() == 2);
    CHECK(events[1].kind == EventKind::server_gone);
    CHECK(!readable_now(fd)); // events() ran out: re-armed
}
