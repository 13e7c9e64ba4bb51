// rpc channels through the real shmbusd: configured with only a name and a kind, opened
// with Client::open_server / open_caller, served by forked server processes, and the
// daemon's reclaim when a server or a caller is killed with SIGKILL mid-call.
//
// Every wait is on the event itself (a reply, a pipe record, the daemon's table) with a
// generous deadline. The one bound that is a requirement — the calls a killed server held
// resolve within 50 ms of its death — is measured from the moment the kernel reports the
// server dead (its pidfd readable) to the last of those calls failing.
#include "daemon_process.hpp"
#include "process.hpp"
#include "test_support.hpp"

#include <shmbus/client.hpp>
#include <shmbus/rpc.hpp>

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 30s; // generous: reached only when something is broken
constexpr auto kReclaimBound = 50ms;

/// `svc`: every key left to its default. `wide`: room for 8 callers and 2 servers.
const std::string kConfig = R"(channels:
  - {name: svc, kind: rpc}
  - name: wide
    kind: rpc
    request_size: 128
    reply_size: 160
    depth: 128
    max_servers: 2
    max_callers: 8
)";

ClientOptions options_for(const DaemonProcess& d, const std::string& name) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.request_timeout = 30s;
    // A forked child must not start threads (and this process forks).
    o.reconnect_in_background = false;
    return o;
}

Client connect_to(const DaemonProcess& d, const std::string& name) {
    auto c = Client::connect(options_for(d, name));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

/// A forked server that echoes "<tag>:" + request until it is killed. It reports one byte on
/// `ready` once attached.
Child spawn_echo_server(const DaemonProcess& d, const std::string& channel, const std::string& tag,
                        Pipe& ready) {
    const int ready_fd = ready.write_end.get();
    Child child = Child::spawn([&d, channel, tag, ready_fd] {
        auto client = Client::connect(options_for(d, "server-" + tag));
        if (!client) {
            return 2;
        }
        auto server = client->open_server(channel);
        if (!server) {
            std::fprintf(stderr, "server: %s\n", server.error().message().c_str());
            return 3;
        }
        if (!send_record(ready_fd, std::uint8_t{1})) {
            return 4;
        }
        for (;;) {
            auto batch = server->receive(16, std::chrono::hours(1));
            if (!batch) {
                continue;
            }
            for (const Request& r : *batch) {
                (void)server->respond(r, bytes_of(tag + ":" + text_of(r.data)));
            }
        }
    });
    ready.write_end.reset();
    return child;
}

/// Waits until the daemon lists `want` callers (publishers) on `channel`.
bool wait_for_callers(Client& c, const std::string& channel, std::uint32_t want) {
    const auto until = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < until) {
        auto info = c.channel_info(channel);
        if (info && info->summary.stats.publishers == want) {
            return true;
        }
        std::this_thread::yield();
    }
    return false;
}

} // namespace

TEST_CASE("an rpc channel configured with only name and kind takes every default") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client client = connect_to(d, "defaults");
    auto caller = client.open_caller("svc");
    INFO((caller ? std::string{} : caller.error().message()));
    REQUIRE(caller);
    const ChannelInfo& i = caller->info();
    CHECK(i.kind == ChannelKind::rpc);
    CHECK(i.slot_size == 1024);       // request_size
    CHECK(i.reply_slot_size == 1024); // reply_size
    CHECK(i.slot_count == 16);        // depth
    CHECK(i.max_publishers == 16);    // max_callers
    CHECK(i.max_subscribers == 4);    // max_servers

    // No server attached: the call fails at once.
    auto r = caller->call(bytes_of("anyone?"), kWait);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::not_found);

    // A queue's roles are refused on it, and its roles on a queue would be too.
    auto pub = client.open_publisher("svc");
    REQUIRE_FALSE(pub);
    CHECK(pub.error().code == Errc::invalid_argument);
}

TEST_CASE("8 callers x 1000 concurrent calls against 2 server processes: every reply matched") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Pipe ready[2] = {Pipe::make(), Pipe::make()};
    Child servers[2] = {spawn_echo_server(d, "wide", "a", ready[0]),
                        spawn_echo_server(d, "wide", "b", ready[1])};
    for (auto& r : ready) {
        REQUIRE(receive_record<std::uint8_t>(r.read_end.get()));
    }
    Client client = connect_to(d, "callers");
    constexpr int kCallers = 8;
    constexpr int kCalls = 1000;
    constexpr std::size_t kInFlight = 32;
    std::vector<Caller> callers;
    for (int i = 0; i < kCallers; ++i) {
        auto c = client.open_caller("wide");
        INFO((c ? std::string{} : c.error().message()));
        REQUIRE(c);
        callers.push_back(std::move(*c));
    }
    std::atomic<int> matched{0};
    std::atomic<int> mismatched{0};
    std::atomic<int> served_by[2] = {0, 0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kCallers; ++i) {
        threads.emplace_back([&, i] {
            Caller& c = callers[static_cast<std::size_t>(i)];
            struct Pending {
                Ticket ticket;
                std::string request;
            };
            std::vector<Pending> pending;
            int sent = 0;
            while (sent < kCalls || !pending.empty()) {
                while (sent < kCalls && pending.size() < kInFlight) {
                    std::string req = std::to_string(i) + "/" + std::to_string(sent);
                    auto t = c.send_request(bytes_of(req));
                    if (!t) {
                        mismatched.fetch_add(1);
                        return;
                    }
                    pending.push_back({*t, std::move(req)});
                    ++sent;
                }
                // Collect the oldest; the others stay in flight meanwhile.
                auto reply = c.receive_reply(pending.front().ticket, kWait);
                const std::string got = reply ? text_of(reply->data) : std::string{};
                const std::string& want = pending.front().request;
                if (reply && reply->id == pending.front().ticket.id && got.size() > 2 &&
                    got.substr(2) == want) {
                    matched.fetch_add(1);
                    served_by[got[0] == 'a' ? 0 : 1].fetch_add(1);
                } else {
                    mismatched.fetch_add(1);
                }
                pending.erase(pending.begin());
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (auto& s : servers) {
        s.kill_and_wait();
    }
    CHECK(mismatched.load() == 0);
    CHECK(matched.load() == kCallers * kCalls);
    auto info = client.channel_info("wide");
    REQUIRE(info);
    CHECK(info->summary.stats.published == std::uint64_t{kCallers * kCalls}); // calls
    CHECK(info->summary.stats.consumed == std::uint64_t{kCallers * kCalls});  // replies
    CHECK(info->summary.stats.depth == 0);                                    // in flight
}

TEST_CASE("kill -9 of a server: the calls it held fail with closed within 50 ms, the rest "
          "are served by the other") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client client = connect_to(d, "caller");
    auto caller = client.open_caller("wide");
    REQUIRE(caller);
    constexpr int kCalls = 8;
    constexpr int kHeld = 4;
    // The victim must be attached before the calls, or they would fail with not_found.
    Pipe victim_report = Pipe::make();
    Pipe go = Pipe::make();
    const int report_fd = victim_report.write_end.get();
    const int go_fd = go.read_end.get();
    Child victim = Child::spawn([&d, report_fd, go_fd] {
        auto c = Client::connect(options_for(d, "victim"));
        if (!c) {
            return 2;
        }
        auto server = c->open_server("wide");
        if (!server || !send_record(report_fd, std::uint32_t{0})) {
            return 3;
        }
        if (!receive_record<std::uint8_t>(go_fd)) { // the calls are posted
            return 4;
        }
        // Take exactly kHeld requests and hold them for ever.
        std::vector<Request> held;
        while (held.size() < kHeld) {
            auto batch = server->receive(kHeld - held.size(), 1s);
            if (batch) {
                held.insert(held.end(), batch->begin(), batch->end());
            }
        }
        if (!send_record(report_fd, static_cast<std::uint32_t>(held.size()))) {
            return 5;
        }
        for (;;) {
            ::pause();
        }
    });
    victim_report.write_end.reset();
    go.read_end.reset();
    REQUIRE(receive_record<std::uint32_t>(victim_report.read_end.get()));

    std::vector<Ticket> tickets;
    for (int i = 0; i < kCalls; ++i) {
        auto t = caller->send_request(bytes_of("call " + std::to_string(i)));
        REQUIRE(t);
        tickets.push_back(*t);
    }
    REQUIRE(send_record(go.write_end.get(), std::uint8_t{1}));
    auto held = receive_record<std::uint32_t>(victim_report.read_end.get());
    REQUIRE(held);
    REQUIRE(*held == kHeld);

    // The survivor serves what the victim did not take.
    Pipe ready = Pipe::make();
    Child survivor = spawn_echo_server(d, "wide", "s", ready);
    REQUIRE(receive_record<std::uint8_t>(ready.read_end.get()));

    // Kill the victim; its death is when its pidfd turns readable.
    const UniqueFd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, victim.pid(), 0))};
    REQUIRE(pidfd);
    ::kill(victim.pid(), SIGKILL);
    pollfd p{pidfd.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 30000) == 1);
    const auto died = std::chrono::steady_clock::now();

    int closed = 0;
    int replied = 0;
    std::chrono::steady_clock::time_point last_closed{};
    for (const Ticket& t : tickets) {
        auto r = caller->receive_reply(t, kWait);
        if (r) {
            CHECK(text_of(r->data).rfind("s:call ", 0) == 0);
            ++replied;
        } else {
            INFO(r.error().message());
            CHECK(r.error().code == Errc::closed);
            ++closed;
            last_closed = std::chrono::steady_clock::now();
        }
    }
    CHECK(closed == kHeld);
    CHECK(replied == kCalls - kHeld);
    const auto resolved =
        std::chrono::duration_cast<std::chrono::microseconds>(std::max(last_closed, died) - died);
    INFO("the held calls resolved " << resolved.count() << " us after the server died");
    CHECK(resolved <= kReclaimBound);

    // The channel keeps working with the survivor.
    auto after = caller->call(bytes_of("after"), kWait);
    REQUIRE(after);
    CHECK(text_of(after->data) == "s:after");
    survivor.kill_and_wait();
    auto info = client.channel_info("wide");
    REQUIRE(info);
    CHECK(info->summary.stats.abandoned == std::uint64_t{kHeld}); // failed calls
    CHECK(info->summary.stats.depth == 0);
}

TEST_CASE("kill -9 of a caller mid-call: the server's reply is dropped and counted, nothing "
          "leaks") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client client = connect_to(d, "server");
    auto server = client.open_server("svc");
    REQUIRE(server);

    Pipe report = Pipe::make();
    const int report_fd = report.write_end.get();
    Child victim = Child::spawn([&d, report_fd] {
        auto c = Client::connect(options_for(d, "victim-caller"));
        if (!c) {
            return 2;
        }
        auto caller = c->open_caller("svc");
        if (!caller) {
            return 3;
        }
        auto t = caller->send_request(bytes_of("never collected"));
        if (!t || !send_record(report_fd, t->id)) {
            return 4;
        }
        (void)caller->receive_reply(*t, std::chrono::hours(1)); // killed while waiting
        return 5;
    });
    report.write_end.reset();
    REQUIRE(receive_record<std::uint64_t>(report.read_end.get()));
    auto batch = server->receive(1, kWait);
    REQUIRE(batch);
    const Request req = (*batch)[0];
    CHECK(text_of(req.data) == "never collected");

    victim.kill_and_wait();
    REQUIRE(wait_for_callers(client, "svc", 0)); // the daemon reclaimed it
    auto late = server->respond(req, bytes_of("for the dead"));
    REQUIRE_FALSE(late);
    CHECK(late.error().code == Errc::lost);

    auto info = client.channel_info("svc");
    REQUIRE(info);
    CHECK(info->summary.stats.dropped == 1); // late replies
    CHECK(info->summary.stats.depth == 0);   // nothing in flight

    // Nothing leaked: a new caller in the same entry can fill every call slot.
    auto caller = client.open_caller("svc");
    REQUIRE(caller);
    for (std::uint64_t i = 0; i < caller->info().slot_count; ++i) {
        REQUIRE(caller->send_request(bytes_of("fresh")));
    }
    auto all = server->receive(64, kWait);
    REQUIRE(all);
    CHECK(all->size() >= 1);
}
