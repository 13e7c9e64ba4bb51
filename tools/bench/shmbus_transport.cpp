// The shmbus transport: see shmbus_transport.hpp. Ring geometry per test:
//   latency     up to 64 slots, at most ~4 MiB per ring (messages go one at a time),
//   throughput  1024 slots (room for 16 batches of 64),
//   bandwidth   ~2 MiB of slots, at least 4: large enough that the writer runs ahead of
//               the reader, small enough to stay in the shared cache as zero-copy intends.

#include "shmbus_transport.hpp"

#include "patterns.hpp"
#include "shm_endpoints.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <optional>

#include <unistd.h>

namespace bench {
namespace {

using namespace std::chrono_literals;

// Stream readers' blocking receives return this often when idle, so that the readers of a
// queue with several consumers see the writers finish even without an end marker.
constexpr std::chrono::nanoseconds kIdlePoll = 2ms;
// Ping-pong receives wait without limit: a finite timeout arms a kernel timer on every
// sleep (a VM exit on many hypervisors), which the raw futex floor does not pay either.
// Every ponger gets its own end marker, so these waits always end; the parent's deadline
// covers a peer that dies.
constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();

std::uint64_t ring_slots(std::uint64_t slot_size, std::uint64_t ring_bytes, std::uint64_t lo,
                         std::uint64_t hi) {
    const std::uint64_t want = std::clamp<std::uint64_t>(ring_bytes / slot_size, lo, hi);
    return std::bit_floor(want);
}

bool is_broadcast(Kind k) {
    return k == Kind::broadcast_block || k == Kind::broadcast_drop;
}

shmbus::ChannelSpec spec_for(Kind kind, std::uint64_t slot_size, std::uint64_t slot_count,
                             std::uint32_t publishers, std::uint32_t subscribers) {
    static int serial = 0;
    shmbus::ChannelSpec spec;
    spec.name = "bench." + std::to_string(::getpid()) + "." + std::to_string(++serial);
    spec.kind = is_broadcast(kind) ? shmbus::ChannelKind::broadcast : shmbus::ChannelKind::queue;
    spec.overflow = kind == Kind::broadcast_drop ? shmbus::Overflow::drop : shmbus::Overflow::block;
    spec.slot_size = slot_size;
    spec.slot_count = slot_count;
    spec.max_publishers = publishers;
    spec.max_subscribers = subscribers;
    return spec;
}

/// Spawns a child that opens a writer and a reader (either may be absent) and runs `fn`.
template <typename Fn>
std::string spawn_role(Team& team, const shmbus::ChannelFiles* out_files,
                       const shmbus::ChannelFiles* in_files, Wait wait,
                       std::chrono::nanoseconds timeout, Fn fn) {
    return team.spawn([=](StartGate& gate) {
        std::optional<ShmWriter> out;
        std::optional<ShmReader> in;
        if (out_files != nullptr) {
            auto w = ShmWriter::open(*out_files, wait);
            if (!w) {
                Report r;
                r.error = "attach publisher: " + w.error().message();
                return r;
            }
            out.emplace(std::move(w).value());
        }
        if (in_files != nullptr) {
            auto rd = ShmReader::open(*in_files, wait, timeout);
            if (!rd) {
                Report r;
                r.error = "attach subscriber: " + rd.error().message();
                return r;
            }
            in.emplace(std::move(rd).value());
        }
        return fn(out ? &*out : nullptr, in ? &*in : nullptr, gate);
    });
}

std::string run_latency(const Scenario& s, const RunSettings& settings, const PatternParams& p,
                        std::vector<Report>& reports) {
    const std::uint64_t slots = ring_slots(s.msg_size, 4ULL << 20, 4, 64);
    const bool mpmc = s.kind == Kind::queue_mpmc;
    const std::uint32_t pingers = mpmc ? 2 : 1;
    const std::uint32_t pongers = mpmc ? 2 : 1;
    auto ping = shmbus::create_channel(spec_for(s.kind, s.msg_size, slots, pingers, s.subscribers));
    if (!ping) {
        return "create ping channel: " + ping.error().message();
    }
    auto pong = shmbus::create_channel(spec_for(s.kind, s.msg_size, slots, pongers, pingers));
    if (!pong) {
        return "create pong channel: " + pong.error().message();
    }
    const shmbus::ChannelFiles* ping_files = &ping.value();
    const shmbus::ChannelFiles* pong_files = &pong.value();

    Team team{settings.pin};
    std::string error;
    // Spawn order sets the cores: a pinger and its ponger get different ones.
    for (std::uint32_t i = 0; i < pongers && error.empty(); ++i) {
        error = spawn_role(team, ping_files, pong_files, s.wait, kForever,
                           [p](ShmWriter* out, ShmReader* in, StartGate& gate) {
                               return run_pinger(*out, *in, gate, p);
                           });
        if (error.empty()) {
            error = spawn_role(team, pong_files, ping_files, s.wait, kForever,
                               [p](ShmWriter* out, ShmReader* in, StartGate& gate) {
                                   return run_ponger(*out, *in, gate, p);
                               });
        }
    }
    for (std::uint32_t i = 1; i < s.subscribers && !mpmc && error.empty(); ++i) {
        error = spawn_role(team, nullptr, ping_files, s.wait, kForever,
                           [p](ShmWriter*, ShmReader* in, StartGate& gate) {
                               return run_receiver(*in, gate, p, Report::Role::listener);
                           });
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{20}, reports);
}

std::string run_stream(const Scenario& s, const RunSettings& settings, const PatternParams& p,
                       std::vector<Report>& reports) {
    const std::uint64_t slots = s.test == Test::bandwidth
                                    ? ring_slots(s.msg_size, 2ULL << 20, 4, 1024)
                                    : std::max<std::uint64_t>(1024, 16ULL * s.batch);
    auto channel =
        shmbus::create_channel(spec_for(s.kind, s.msg_size, slots, s.publishers, s.subscribers));
    if (!channel) {
        return "create channel: " + channel.error().message();
    }
    const shmbus::ChannelFiles* files = &channel.value();
    Team team{settings.pin};
    std::string error;
    // Alternate writers and readers so that each pair lands on different cores.
    const std::uint32_t roles = std::max(s.publishers, s.subscribers);
    for (std::uint32_t i = 0; i < roles && error.empty(); ++i) {
        if (i < s.publishers) {
            error = spawn_role(team, files, nullptr, s.wait, kIdlePoll,
                               [p](ShmWriter* out, ShmReader*, StartGate& gate) {
                                   return run_sender(*out, gate, p);
                               });
        }
        if (i < s.subscribers && error.empty()) {
            error = spawn_role(team, nullptr, files, s.wait, kIdlePoll,
                               [p](ShmWriter*, ShmReader* in, StartGate& gate) {
                                   return run_receiver(*in, gate, p);
                               });
        }
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{20}, reports);
}

} // namespace

std::string run_shmbus(const Scenario& s, const RunSettings& settings,
                       std::vector<Report>& reports) {
    SharedBoard board;
    if (!board.valid()) {
        return std::string{"mmap: "} + std::strerror(errno);
    }
    PatternParams p = make_params(s, settings, board.get());
    if (s.test == Test::latency) {
        if (s.kind == Kind::queue_mpmc) {
            p.writers = 2; // the pingers
            p.markers = 2; // one per ponger
        } else {
            p.writers = 1;
            p.markers = 1;
        }
        return run_latency(s, settings, p, reports);
    }
    return run_stream(s, settings, p, reports);
}

} // namespace bench
