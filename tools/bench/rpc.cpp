// rpc round trips and calls per second: see rpc.hpp.
#include "rpc.hpp"

#include "patterns.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/rpc.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <unistd.h>

namespace bench {
namespace {

using namespace std::chrono_literals;

// A call that gets no reply for this long means the server is gone: fail the run.
constexpr std::chrono::nanoseconds kStuck = 10s;
// The server's blocking receive waits without limit (no kernel timer on each sleep, as the
// ping-pong receives): the end-marker call always comes, and the parent's deadline covers a
// caller that dies.
constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();
// Calls each caller may have in flight: one is used; the others leave room for a call
// given up under a slow machine to be answered late without failing the next.
constexpr std::uint64_t kDepth = 4;
// Requests one receive takes at most.
constexpr std::size_t kReceiveBatch = 16;

shmbus::EndpointOptions options_for(Wait w) {
    shmbus::EndpointOptions o;
    o.wait = w == Wait::spin    ? shmbus::WaitMode::spin
             : w == Wait::futex ? shmbus::WaitMode::blocking
                                : shmbus::WaitMode::adaptive;
    return o;
}

Report failure(Report::Role role, std::string what) {
    Report r;
    r.role = role;
    r.error = std::move(what);
    return r;
}

/// Answers every request with a copy of it, written in place, until the end marker.
Report serve(const shmbus::ChannelFiles& files, Wait wait, Report::Role role, StartGate& gate) {
    auto dup = files.duplicate_for(shmbus::Role::subscriber);
    if (!dup) {
        return failure(role, "duplicate for the server: " + dup.error().message());
    }
    auto server = shmbus::Server::attach(std::move(dup).value(), options_for(wait));
    if (!server) {
        return failure(role, "attach server: " + server.error().message());
    }
    const bool spin = wait == Wait::spin;
    Report r;
    r.role = role;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    bool end = false;
    while (!end) {
        auto batch =
            spin ? server->try_receive(kReceiveBatch) : server->receive(kReceiveBatch, kForever);
        if (!batch) {
            if (batch.code() == shmbus::Errc::would_block ||
                batch.code() == shmbus::Errc::timed_out) {
                continue;
            }
            r.error = "receive: " + batch.error().message();
            return r;
        }
        for (const shmbus::Request& req : *batch) {
            if (first_word(req.data) == kEndMarker) {
                end = true;
            } else {
                ++r.messages;
            }
            auto slot = server->reserve_reply(req);
            if (!slot) {
                r.error = "reserve_reply: " + slot.error().message();
                return r;
            }
            const std::size_t n = std::min(req.data.size(), slot->size());
            std::memcpy(slot->data(), req.data.data(), n);
            if (auto c = server->commit_reply(req, n); !c) {
                r.error = "commit_reply: " + c.error().message();
                return r;
            }
        }
    }
    // The end marker comes right after the last caller's last call: the end of the calls.
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

/// One caller's side of the run: `measure(caller, request, reply)` makes one measured call
/// and returns false on failure (r.error says why); it runs until the duration has passed.
/// The last caller to finish sends the end marker.
template <typename Measure>
Report call_loop(const shmbus::ChannelFiles& files, Wait wait, Report::Role role,
                 const PatternParams& p, StartGate& gate, Measure&& measure) {
    auto dup = files.duplicate_for(shmbus::Role::publisher);
    if (!dup) {
        return failure(role, "duplicate for a caller: " + dup.error().message());
    }
    auto caller = shmbus::Caller::attach(std::move(dup).value(), options_for(wait));
    if (!caller) {
        return failure(role, "attach caller: " + caller.error().message());
    }
    std::vector<std::byte> request(p.msg_size);
    std::vector<std::byte> reply(p.msg_size);
    Report r;
    r.role = role;
    if (role == Report::Role::pinger) {
        r.samples.reserve(std::min<std::size_t>(p.max_samples, 1U << 20));
    }
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + p.duration_ns;
    for (std::uint64_t i = 0;; ++i) {
        if (!measure(*caller, request, reply, r, i)) {
            return r;
        }
        // The clock every 64 calls only, where the call does not read it itself.
        if (role == Report::Role::pinger ? r.samples.size() >= p.max_samples || now_ns() >= deadline
                                         : (i & 63) == 63 && now_ns() >= deadline) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    const std::uint32_t done =
        p.board->writers_done.fetch_add(1, std::memory_order_acq_rel) + 1; // pairs with peers
    if (done == p.writers) {
        fill_message(request, p.msg_size, kEndMarker);
        if (auto e = caller->call(request, reply, kStuck); !e) {
            r.error = "end marker: " + e.error().message();
        }
    }
    return r;
}

/// One call the way the wait mode says: spin sends and then polls in a loop (the try_ form,
/// as the other spin rows); the other modes make the blocking call(), which waits as the
/// endpoint's WaitMode says. Fails after kStuck without a reply.
shmbus::Result<std::size_t> one_call(shmbus::Caller& c, bool spin, std::span<const std::byte> req,
                                     std::span<std::byte> reply) {
    if (!spin) {
        return c.call(req, reply, kStuck);
    }
    auto t = c.send_request(req);
    if (!t) {
        return t.take_error();
    }
    std::int64_t stuck_at = 0;
    for (std::uint64_t spins = 1;; ++spins) {
        auto r = c.poll(*t, reply);
        if (r || r.code() != shmbus::Errc::would_block) {
            return r;
        }
        if (spins % 4096 == 0) {
            const std::int64_t now = now_ns();
            stuck_at = stuck_at == 0 ? now + kStuck.count() : stuck_at;
            if (now >= stuck_at) {
                return c.receive_reply(*t, reply, std::chrono::nanoseconds{0}); // gives it up
            }
        }
    }
}

/// A call whose reply must echo the request: the length and the first word.
bool echoed(std::span<const std::byte> reply, std::size_t got, std::uint64_t word) {
    return got == reply.size() && first_word(reply) == word;
}

Report round_trip_caller(const shmbus::ChannelFiles& files, Wait wait, const PatternParams& p,
                         StartGate& gate) {
    return call_loop(files, wait, Report::Role::pinger, p, gate,
                     [&](shmbus::Caller& c, std::vector<std::byte>& req,
                         std::vector<std::byte>& reply, Report& r, std::uint64_t i) {
                         const std::int64_t t0 = now_ns();
                         fill_message(req, p.msg_size, static_cast<std::uint64_t>(t0));
                         auto got = one_call(c, wait == Wait::spin, req, reply);
                         const std::int64_t t1 = now_ns();
                         if (!got) {
                             r.error = "call: " + got.error().message();
                             return false;
                         }
                         if (!echoed(reply, *got, static_cast<std::uint64_t>(t0))) {
                             r.error = "a reply did not echo its request";
                             return false;
                         }
                         ++r.messages;
                         detail::record_sample(r, p, i, t1, t1 - t0); // the whole round trip
                         return true;
                     });
}

Report stream_caller(const shmbus::ChannelFiles& files, Wait wait, const PatternParams& p,
                     StartGate& gate) {
    return call_loop(files, wait, Report::Role::sender, p, gate,
                     [&](shmbus::Caller& c, std::vector<std::byte>& req,
                         std::vector<std::byte>& reply, Report& r, std::uint64_t i) {
                         fill_message(req, p.msg_size, i);
                         auto got = one_call(c, wait == Wait::spin, req, reply);
                         if (!got) {
                             r.error = "call: " + got.error().message();
                             return false;
                         }
                         if (!echoed(reply, *got, i)) {
                             ++r.corrupt;
                         }
                         ++r.messages;
                         return true;
                     });
}

} // namespace

std::string run_rpc(const Scenario& s, const RunSettings& settings, std::vector<Report>& reports) {
    if (s.subscribers != 1) {
        return "rpc rows have one server (the end marker reaches one)";
    }
    static int serial = 0;
    shmbus::ChannelSpec spec;
    spec.name = "bench.rpc." + std::to_string(::getpid()) + "." + std::to_string(++serial);
    spec.kind = shmbus::ChannelKind::rpc;
    spec.slot_size = s.msg_size;
    spec.reply_slot_size = s.msg_size;
    spec.slot_count = kDepth;
    spec.max_publishers = s.publishers;
    spec.max_subscribers = s.subscribers;
    auto channel = shmbus::create_channel(spec);
    if (!channel) {
        return "create rpc channel: " + channel.error().message();
    }
    const shmbus::ChannelFiles* files = &channel.value();
    SharedBoard board;
    if (!board.valid()) {
        return std::string{"mmap: "} + std::strerror(errno);
    }
    PatternParams p = make_params(s, settings, board.get());
    p.writers = s.publishers;
    const bool round_trip = s.test == Test::round_trip;
    Team team{settings.pin};
    // The server first, so that it and the first caller land on different cores.
    std::string error = team.spawn([&](StartGate& gate) {
        return serve(*files, s.wait, round_trip ? Report::Role::ponger : Report::Role::receiver,
                     gate);
    });
    for (std::uint32_t i = 0; i < s.publishers && error.empty(); ++i) {
        error = team.spawn([&](StartGate& gate) {
            return round_trip ? round_trip_caller(*files, s.wait, p, gate)
                              : stream_caller(*files, s.wait, p, gate);
        });
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{20}, reports);
}

} // namespace bench
