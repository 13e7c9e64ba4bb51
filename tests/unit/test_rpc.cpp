// rpc channels without a daemon: a channel created in this process, its Servers and Callers
// attached from its descriptors. What is pinned here: correlation (every reply to the call
// that asked), each request served once, the give-up paths (timeout, cancel, a caller or
// server that leaves), the supervisor's reclaim, and that damage to any shared field of the
// rpc layout is a clear error and never a crash or a hang.
#include <shmbus/rpc.hpp>
#include <shmbus/supervisor.hpp>

#include <catch2/catch.hpp>

#include "shm/rpc_calls.hpp"
#include "shm/segment.hpp"
#include "test_support.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 30s; // generous: only reached when something is broken

ChannelSpec rpc_spec(const std::string& name, std::uint64_t depth = 8, std::uint32_t callers = 4,
                     std::uint32_t servers = 2) {
    ChannelSpec s;
    s.name = name;
    s.kind = ChannelKind::rpc;
    s.slot_size = 128;
    s.reply_slot_size = 256;
    s.slot_count = depth;
    s.max_publishers = callers;
    s.max_subscribers = servers;
    return s;
}

ChannelFiles make(const ChannelSpec& spec) {
    auto files = create_channel(spec);
    INFO((files ? std::string{} : files.error().message()));
    REQUIRE(files);
    return std::move(*files);
}

template <typename T>
T attached(const ChannelFiles& files, Role role) {
    auto dup = files.duplicate_for(role);
    REQUIRE(dup);
    auto e = T::attach(std::move(*dup));
    INFO((e ? std::string{} : e.error().message()));
    REQUIRE(e);
    return std::move(*e);
}
Server server_of(const ChannelFiles& f) {
    return attached<Server>(f, Role::subscriber);
}
Caller caller_of(const ChannelFiles& f) {
    return attached<Caller>(f, Role::publisher);
}
/// For a thread other than the test's: Catch assertions are not thread-safe, so a failure
/// is an empty result, which the thread reports through its counters.
std::optional<Server> server_in_thread(const ChannelFiles& f) {
    auto dup = f.duplicate_for(Role::subscriber);
    if (!dup) {
        return std::nullopt;
    }
    auto s = Server::attach(std::move(*dup));
    if (!s) {
        return std::nullopt;
    }
    return std::move(*s);
}

/// Answers every request with "re:" + the request, until `stop`.
void echo_until(Server& s, const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {
        auto batch = s.receive(16, 10ms);
        if (!batch) {
            continue;
        }
        for (const Request& r : *batch) {
            (void)s.respond(r, bytes_of("re:" + text_of(r.data)));
        }
    }
}

/// Maps the channel's regions writable, as a hostile participant could.
detail::AttachedChannel hostile(const ChannelFiles& f) {
    auto ch = detail::attach_channel(f, detail::PayloadAccess::writable);
    REQUIRE(ch);
    return std::move(*ch);
}

} // namespace

TEST_CASE("an rpc channel records its request and reply sizes in both headers") {
    const ChannelFiles f = make(rpc_spec("rpc.info"));
    auto info = inspect_channel(f);
    REQUIRE(info);
    CHECK(info->kind == ChannelKind::rpc);
    CHECK(info->slot_size == 128);
    CHECK(info->reply_slot_size == 256);
    CHECK(info->slot_count == 8);
}

TEST_CASE("rpc channel specs are validated") {
    ChannelSpec s = rpc_spec("rpc.bad");
    s.overflow = Overflow::drop;
    auto r = create_channel(s);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);

    ChannelSpec q;
    q.name = "queue.with.reply";
    q.reply_slot_size = 64;
    r = create_channel(q);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("reply_slot_size applies to rpc channels only") !=
          std::string::npos);
}

TEST_CASE("publishers and subscribers refuse an rpc channel, servers and callers anything else") {
    const ChannelFiles f = make(rpc_spec("rpc.kinds"));
    auto dup = f.duplicate_for(Role::publisher);
    REQUIRE(dup);
    auto pub = Publisher::attach(std::move(*dup));
    REQUIRE_FALSE(pub);
    CHECK(pub.error().code == Errc::invalid_argument);

    ChannelSpec q;
    q.name = "rpc.not";
    auto qf = create_channel(q);
    REQUIRE(qf);
    auto qdup = qf->duplicate_for(Role::subscriber);
    REQUIRE(qdup);
    auto srv = Server::attach(std::move(*qdup));
    REQUIRE_FALSE(srv);
    CHECK(srv.error().code == Errc::invalid_argument);
}

TEST_CASE("a call gets the reply its server wrote, with its correlation id") {
    const ChannelFiles f = make(rpc_spec("rpc.call"));
    Server s = server_of(f);
    Caller c = caller_of(f);
    auto ticket = c.send_request(bytes_of("ping"));
    REQUIRE(ticket);
    CHECK(c.in_flight() == 1);
    auto none = c.poll(*ticket);
    REQUIRE_FALSE(none);
    CHECK(none.error().code == Errc::would_block);

    auto batch = s.try_receive(4);
    REQUIRE(batch);
    REQUIRE(batch->size() == 1);
    const Request& req = (*batch)[0];
    CHECK(text_of(req.data) == "ping");
    CHECK(req.id == ticket->id);
    // Zero-copy reply: written in place, then committed.
    auto slot = s.reserve_reply(req);
    REQUIRE(slot);
    CHECK(slot->size() == 256);
    std::memcpy(slot->data(), "pong!", 5);
    REQUIRE(s.commit_reply(req, 5));

    auto reply = c.receive_reply(*ticket, kWait);
    REQUIRE(reply);
    CHECK(text_of(reply->data) == "pong!");
    CHECK(reply->id == ticket->id);
    CHECK(c.in_flight() == 0);
    // A spent ticket is refused, as is a request the server no longer holds.
    CHECK(c.poll(*ticket).error().code == Errc::invalid_argument);
    CHECK(s.respond(req, bytes_of("again")).error().code == Errc::invalid_argument);

    auto stats = read_stats(f);
    REQUIRE(stats);
    CHECK(stats->published == 1); // calls
    CHECK(stats->consumed == 1);  // replies
    CHECK(stats->depth == 0);     // in flight
}

TEST_CASE("poll and receive_reply copy a reply into the caller's buffer, refusing one too small") {
    const ChannelFiles f = make(rpc_spec("rpc.buffer"));
    Server s = server_of(f);
    Caller c = caller_of(f);
    auto answer = [&](const std::string& reply) {
        auto batch = s.try_receive(1);
        REQUIRE(batch);
        REQUIRE(s.respond((*batch)[0], bytes_of(reply)));
    };
    std::array<std::byte, 8> buffer{};

    auto t1 = c.send_request(bytes_of("a"));
    REQUIRE(t1);
    auto pending = c.poll(*t1, buffer);
    REQUIRE_FALSE(pending);
    CHECK(pending.error().code == Errc::would_block);
    answer("reply-a");
    auto got = c.poll(*t1, buffer);
    REQUIRE(got);
    CHECK(text_of(std::span{buffer}.first(*got)) == "reply-a");

    auto t2 = c.send_request(bytes_of("b"));
    REQUIRE(t2);
    answer("b");
    auto waited = c.receive_reply(*t2, buffer, kWait);
    REQUIRE(waited);
    CHECK(text_of(std::span{buffer}.first(*waited)) == "b");

    // Too small: the reply is lost, named with both sizes, and the ticket spent.
    auto t3 = c.send_request(bytes_of("c"));
    REQUIRE(t3);
    answer("a reply of 22 bytes...");
    auto small = c.poll(*t3, buffer);
    REQUIRE_FALSE(small);
    CHECK(small.error().code == Errc::message_too_large);
    CHECK(small.error().message().find("reply of 22 bytes, buffer of 8") != std::string::npos);
    CHECK(c.in_flight() == 0);
}

TEST_CASE("a call without a server fails at once with not_found unless the caller waits") {
    const ChannelFiles f = make(rpc_spec("rpc.noserver"));
    Caller c = caller_of(f);
    auto r = c.call(bytes_of("x"), kWait);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::not_found);
    CHECK(c.in_flight() == 0);

    c.set_wait_for_server(true);
    std::atomic<bool> stop{false};
    auto ticket = c.send_request(bytes_of("later"));
    REQUIRE(ticket);
    std::thread serving{[&] {
        if (auto s = server_in_thread(f)) {
            echo_until(*s, stop);
        }
    }};
    auto reply = c.receive_reply(*ticket, kWait);
    stop = true;
    serving.join();
    REQUIRE(reply);
    CHECK(text_of(reply->data) == "re:later");
}

TEST_CASE("a call still waiting when the last server leaves fails with not_found") {
    const ChannelFiles f = make(rpc_spec("rpc.lastserver"));
    Caller c = caller_of(f);
    std::optional<Server> s{server_of(f)};
    auto ticket = c.send_request(bytes_of("x"));
    REQUIRE(ticket);
    s.reset(); // leaves without taking it
    auto r = c.receive_reply(*ticket, kWait);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::not_found);
}

TEST_CASE("oversized requests and replies are refused naming both sizes") {
    const ChannelFiles f = make(rpc_spec("rpc.sizes"));
    Server s = server_of(f);
    Caller c = caller_of(f);
    const std::vector<std::byte> big(129);
    auto r = c.send_request(big);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::message_too_large);
    CHECK(r.error().message().find("129") != std::string::npos);
    CHECK(r.error().message().find("128") != std::string::npos);

    auto ticket = c.send_request(bytes_of("q"));
    REQUIRE(ticket);
    auto batch = s.try_receive();
    REQUIRE(batch);
    const Request req = (*batch)[0];
    const std::vector<std::byte> huge(257);
    auto resp = s.respond(req, huge);
    REQUIRE_FALSE(resp);
    CHECK(resp.error().code == Errc::message_too_large);
    REQUIRE(s.respond(req, bytes_of("fits"))); // the call stayed taken
    auto reply = c.receive_reply(*ticket, kWait);
    REQUIRE(reply);
    CHECK(text_of(reply->data) == "fits");
}

TEST_CASE("one caller keeps depth calls in flight and collects them in any order") {
    const ChannelFiles f = make(rpc_spec("rpc.async", 8));
    Server s = server_of(f);
    Caller c = caller_of(f);
    std::vector<Ticket> tickets;
    for (int i = 0; i < 8; ++i) {
        auto t = c.send_request(bytes_of("n" + std::to_string(i)));
        REQUIRE(t);
        tickets.push_back(*t);
    }
    auto full = c.send_request(bytes_of("one too many"));
    REQUIRE_FALSE(full);
    CHECK(full.error().code == Errc::would_block);

    auto batch = s.try_receive(100);
    REQUIRE(batch);
    REQUIRE(batch->size() == 8);
    // Answer in reverse order.
    std::vector<Request> held(batch->begin(), batch->end());
    for (auto it = held.rbegin(); it != held.rend(); ++it) {
        REQUIRE(s.respond(*it, bytes_of("re:" + text_of(it->data))));
    }
    for (int i = 0; i < 8; ++i) {
        auto reply = c.receive_reply(tickets[static_cast<std::size_t>(i)], kWait);
        REQUIRE(reply);
        CHECK(text_of(reply->data) == "re:n" + std::to_string(i));
    }
}

TEST_CASE("a reply to a call its caller gave up is dropped and counted") {
    const ChannelFiles f = make(rpc_spec("rpc.late"));
    Server s = server_of(f);
    Caller c = caller_of(f);
    auto ticket = c.send_request(bytes_of("slow"));
    REQUIRE(ticket);
    auto batch = s.try_receive();
    REQUIRE(batch);
    const Request req = (*batch)[0];
    auto r = c.receive_reply(*ticket, 1ms); // the server is too slow
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::timed_out);
    auto late = s.respond(req, bytes_of("too late"));
    REQUIRE_FALSE(late);
    CHECK(late.error().code == Errc::lost);
    auto stats = read_stats(f);
    REQUIRE(stats);
    CHECK(stats->dropped == 1);
    CHECK(stats->depth == 0);
    // The slot is free again: all depth slots can be used.
    for (int i = 0; i < 8; ++i) {
        REQUIRE(c.send_request(bytes_of("again")));
    }
}

TEST_CASE("a call not yet taken is withdrawn on timeout and never served") {
    const ChannelFiles f = make(rpc_spec("rpc.withdraw"));
    Server s = server_of(f);
    Caller c = caller_of(f);
    auto r = c.call(bytes_of("nobody takes me"), 1ms);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::timed_out);
    auto batch = s.try_receive();
    REQUIRE_FALSE(batch);
    CHECK(batch.error().code == Errc::would_block);
}

TEST_CASE("several servers share the requests and serve each exactly once") {
    const ChannelFiles f = make(rpc_spec("rpc.share", 16, 4, 2));
    constexpr int kCallsPerCaller = 2000;
    std::atomic<bool> stop{false};
    std::atomic<int> served[2] = {0, 0};
    // The callers start once both servers are attached (or failed to): a call made before
    // any server is attached fails at once with not_found, as it should, and is not served.
    std::latch servers_ready{2};
    std::atomic<int> attached_servers{0};
    std::vector<std::thread> servers;
    for (int i = 0; i < 2; ++i) {
        servers.emplace_back([&, i] {
            auto s = server_in_thread(f);
            attached_servers.fetch_add(s ? 1 : 0);
            servers_ready.count_down();
            while (s && !stop.load(std::memory_order_relaxed)) {
                auto batch = s->receive(8, 10ms);
                if (!batch) {
                    continue;
                }
                for (const Request& r : *batch) {
                    served[i].fetch_add(1);
                    (void)s->respond(r, r.data); // echo
                }
            }
        });
    }
    servers_ready.wait();
    if (attached_servers.load() != 2) {
        stop = true;
        for (auto& t : servers) {
            t.join();
        }
        FAIL("a server thread could not attach to the channel");
    }
    std::vector<Caller> callers;
    for (int i = 0; i < 4; ++i) {
        callers.push_back(caller_of(f));
    }
    std::atomic<int> matched{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&, i] {
            Caller& c = callers[static_cast<std::size_t>(i)];
            for (int n = 0; n < kCallsPerCaller; ++n) {
                const std::string req = std::to_string(i) + ":" + std::to_string(n);
                auto reply = c.call(bytes_of(req), kWait);
                if (reply && text_of(reply->data) == req) {
                    matched.fetch_add(1);
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    stop = true;
    for (auto& t : servers) {
        t.join();
    }
    CHECK(matched.load() == 4 * kCallsPerCaller);
    CHECK(served[0].load() + served[1].load() == 4 * kCallsPerCaller);
}

TEST_CASE(
    "a server that leaves holding calls fails them with closed, and the others keep serving") {
    const ChannelFiles f = make(rpc_spec("rpc.serverleaves"));
    Caller c = caller_of(f);
    Server keeper = server_of(f);
    std::vector<Ticket> tickets;
    for (int i = 0; i < 4; ++i) {
        auto t = c.send_request(bytes_of("q" + std::to_string(i)));
        REQUIRE(t);
        tickets.push_back(*t);
    }
    {
        Server quitter = server_of(f);
        auto batch = quitter.try_receive(2);
        REQUIRE(batch);
        REQUIRE(batch->size() == 2);
    } // leaves holding two calls
    auto rest = keeper.try_receive(8);
    REQUIRE(rest);
    CHECK(rest->size() == 2);
    for (const Request& r : *rest) {
        REQUIRE(keeper.respond(r, r.data));
    }
    int closed = 0;
    int replied = 0;
    for (const Ticket& t : tickets) {
        auto r = c.receive_reply(t, kWait);
        if (r) {
            ++replied;
        } else if (r.error().code == Errc::closed) {
            ++closed;
        }
    }
    CHECK(closed == 2);
    CHECK(replied == 2);
    auto stats = read_stats(f);
    REQUIRE(stats);
    CHECK(stats->abandoned == 2); // failed calls
}

TEST_CASE("the supervisor's reclaim of a dead server fails its calls and wakes their caller") {
    const ChannelFiles f = make(rpc_spec("rpc.reclaim"));
    auto sup_files = f.duplicate();
    REQUIRE(sup_files);
    auto sup = ChannelSupervisor::attach(std::move(*sup_files));
    REQUIRE(sup);
    Caller c = caller_of(f);
    // A server that "dies": its process would be gone, so nothing of it runs again. Here its
    // table entry and claims are made by hand, as a killed server leaves them.
    detail::AttachedChannel raw = hostile(f);
    detail::atom(raw.subscribers[0].state)
        .store(static_cast<std::uint32_t>(detail::EndpointState::active));
    auto ticket = c.send_request(bytes_of("held"));
    REQUIRE(ticket);
    const detail::CallSlot slot = detail::call_slot(raw, c.endpoint_index(), ticket->slot);
    std::uint64_t w = detail::atom(*slot.state).load();
    REQUIRE(detail::call_phase(w) == detail::CallPhase::requested);
    detail::atom(*slot.state)
        .store(
            detail::make_call(detail::call_id(w), detail::CallPhase::taken, detail::owner_tag(0)));

    bool reclaimed = false;
    std::thread reclaimer{[&] { reclaimed = sup->reclaim_subscriber(0).has_value(); }};
    auto r = c.receive_reply(*ticket, kWait);
    reclaimer.join();
    CHECK(reclaimed);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::closed);
}

TEST_CASE("a caller polls the outcome stamp, and the reclaim of a server that answered without "
          "stamping stamps the call") {
    const ChannelFiles f = make(rpc_spec("rpc.stamp"));
    auto sup_files = f.duplicate();
    REQUIRE(sup_files);
    auto sup = ChannelSupervisor::attach(std::move(*sup_files));
    REQUIRE(sup);
    Caller c = caller_of(f);
    Server keeper = server_of(f); // attached, so a call without a stamp is still pending
    // Server entry 1 "dies" right after its CAS to replied and before its stamp: the word,
    // the reply and its length as it leaves them, made by hand.
    detail::AttachedChannel raw = hostile(f);
    const std::uint32_t dead = keeper.endpoint_index() == 0 ? 1 : 0;
    detail::atom(raw.subscribers[dead].state)
        .store(static_cast<std::uint32_t>(detail::EndpointState::active));
    auto ticket = c.send_request(bytes_of("asked"));
    REQUIRE(ticket);
    const detail::CallSlot slot = detail::call_slot(raw, c.endpoint_index(), ticket->slot);
    const std::string answer = "answered";
    std::memcpy(reinterpret_cast<std::byte*>(slot.reply) + detail::kSlotDataOffset, answer.data(),
                answer.size());
    detail::atom(slot.reply->length).store(answer.size());
    detail::atom(*slot.state).store(detail::make_call(ticket->id, detail::CallPhase::replied));

    auto before = c.poll(*ticket);
    REQUIRE_FALSE(before);
    CHECK(before.error().code == Errc::would_block); // no stamp yet: not looked at

    REQUIRE(sup->reclaim_subscriber(dead));
    auto after = c.poll(*ticket);
    REQUIRE(after);
    CHECK(text_of(after->data) == answer);
    CHECK(after->id == ticket->id);
}

TEST_CASE("a caller that leaves gives its calls up, and the reply to a taken one is dropped") {
    const ChannelFiles f = make(rpc_spec("rpc.callerleaves"));
    Server s = server_of(f);
    Request held;
    {
        Caller c = caller_of(f);
        REQUIRE(c.send_request(bytes_of("taken")));
        REQUIRE(c.send_request(bytes_of("not taken")));
        auto batch = s.try_receive(1);
        REQUIRE(batch);
        held = (*batch)[0];
    }
    auto stats = read_stats(f);
    REQUIRE(stats);
    CHECK(stats->depth == 0);
    CHECK(stats->publishers == 0);
    auto late = s.respond(held, bytes_of("nobody listens"));
    REQUIRE_FALSE(late);
    CHECK(late.error().code == Errc::lost);
    auto none = s.try_receive(4); // the withdrawn call is not served
    REQUIRE_FALSE(none);
    CHECK(none.error().code == Errc::would_block);
    stats = read_stats(f);
    REQUIRE(stats);
    CHECK(stats->dropped == 1);
}

TEST_CASE("the supervisor's reclaim of a dead caller frees what its entry held") {
    const ChannelFiles f = make(rpc_spec("rpc.callerdies"));
    auto sup_files = f.duplicate();
    REQUIRE(sup_files);
    auto sup = ChannelSupervisor::attach(std::move(*sup_files));
    REQUIRE(sup);
    // A caller entry as a killed process leaves it: active, one call posted, one answered.
    detail::AttachedChannel raw = hostile(f);
    detail::atom(raw.publishers[2].state)
        .store(static_cast<std::uint32_t>(detail::EndpointState::active));
    const detail::CallSlot posted = detail::call_slot(raw, 2, 3);
    const detail::CallSlot answered = detail::call_slot(raw, 2, 5);
    detail::atom(*posted.state).store(detail::make_call(77, detail::CallPhase::requested));
    detail::atom(*answered.state).store(detail::make_call(78, detail::CallPhase::replied));
    auto rep = sup->reclaim_publisher(2);
    REQUIRE(rep);
    CHECK(rep->abandoned_slots == 2);
    CHECK(detail::call_phase(detail::atom(*posted.state).load()) == detail::CallPhase::free);
    CHECK(detail::call_phase(detail::atom(*answered.state).load()) == detail::CallPhase::free);
    CHECK(sup->stats().publishers == 0);
}

TEST_CASE("damage to the rpc layout's shared fields is a clear error, never a crash or hang") {
    const ChannelFiles f = make(rpc_spec("rpc.damage"));
    Server s = server_of(f);
    Caller c = caller_of(f);
    detail::AttachedChannel raw = hostile(f);

    SECTION("a reply length beyond reply_slot_size") {
        auto t = c.send_request(bytes_of("q"));
        REQUIRE(t);
        auto batch = s.try_receive();
        REQUIRE(batch);
        REQUIRE(s.respond((*batch)[0], bytes_of("ok")));
        const detail::CallSlot slot = detail::call_slot(raw, c.endpoint_index(), t->slot);
        detail::atom(slot.reply->length).store(~std::uint64_t{0});
        auto r = c.receive_reply(*t, kWait);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::corrupted);
        CHECK(r.error().message().find("reply_slot_size") != std::string::npos);
    }
    SECTION("a request length beyond slot_size") {
        auto t = c.send_request(bytes_of("q"));
        REQUIRE(t);
        const detail::CallSlot slot = detail::call_slot(raw, c.endpoint_index(), t->slot);
        detail::atom(slot.request->length).store(1u << 20);
        auto batch = s.try_receive();
        REQUIRE_FALSE(batch);
        CHECK(batch.error().code == Errc::corrupted);
        CHECK(batch.error().message().find("slot_size") != std::string::npos);
        auto r = c.receive_reply(*t, kWait);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::closed);
    }
    SECTION("a call word in no phase, or with another id") {
        // No outcome is ever stamped for such a call: the caller finds the damage in the
        // claim word when it gives the call up, at its timeout.
        auto t = c.send_request(bytes_of("q"));
        REQUIRE(t);
        const detail::CallSlot slot = detail::call_slot(raw, c.endpoint_index(), t->slot);
        detail::atom(*slot.state)
            .store(detail::make_call(t->id, detail::CallPhase::requested) |
                   (std::uint64_t{0x7F} << 16));
        auto r = c.receive_reply(*t, 100ms);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::corrupted);
        auto t2 = c.send_request(bytes_of("q2"));
        REQUIRE(t2);
        const detail::CallSlot slot2 = detail::call_slot(raw, c.endpoint_index(), t2->slot);
        detail::atom(*slot2.state).store(detail::make_call(t2->id + 5, detail::CallPhase::replied));
        auto r2 = c.receive_reply(*t2, 100ms);
        REQUIRE_FALSE(r2);
        CHECK(r2.error().code == Errc::corrupted);
    }
    SECTION("doorbells that lie") {
        // Rung with nothing behind it: the server looks once, then times out instead of
        // spinning for ever.
        for (std::uint32_t i = 0; i < raw.geo.max_publishers; ++i) {
            detail::atom(raw.rpc_callers[i].calls).store(~std::uint64_t{0});
        }
        auto none = s.receive(4, 20ms);
        REQUIRE_FALSE(none);
        CHECK(none.error().code == Errc::timed_out);
        // Put back after a request was posted, so the server sees no change: the last look
        // of a receive that times out still finds it.
        std::uint64_t& bell = raw.rpc_callers[c.endpoint_index()].calls;
        auto t = c.send_request(bytes_of("hidden"));
        REQUIRE(t);
        detail::atom(bell).store(~std::uint64_t{0});
        auto batch = s.receive(4, 50ms);
        REQUIRE(batch);
        CHECK(text_of((*batch)[0].data) == "hidden");
    }
    SECTION("a respond() with a forged handle") {
        Request forged;
        forged.caller = 1000;
        forged.slot = 3;
        CHECK(s.respond(forged, bytes_of("x")).error().code == Errc::invalid_argument);
        forged.caller = 0;
        forged.slot = 100000;
        CHECK(s.respond(forged, bytes_of("x")).error().code == Errc::invalid_argument);
    }
    SECTION("a header whose reply_slot_size was changed") {
        auto* h = reinterpret_cast<detail::RegionHeader*>(raw.control_map.data());
        h->reply_slot_size = 64;
        auto dup = f.duplicate_for(Role::publisher);
        REQUIRE(dup);
        auto again = Caller::attach(std::move(*dup));
        REQUIRE_FALSE(again);
        CHECK(again.error().code == Errc::corrupted);
        CHECK(again.error().message().find("reply_slot_size") != std::string::npos);
    }
}
