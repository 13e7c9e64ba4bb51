// pool-handoff and queue-copy: see pool_handoff.hpp.
#include "pool_handoff.hpp"

#include <shmbus/shmbus.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <unistd.h>

namespace bench {

namespace {

using namespace std::chrono_literals;

/// How long one acquire, send or receive may wait before the run counts as failed.
constexpr std::chrono::nanoseconds kStall = 10s;
/// Blocks in the pool: enough for the sender to fill one while the receiver reads another.
constexpr std::uint64_t kPoolBlocks = 4;
/// The handle that ends a pool-handoff stream (no pool has index UINT32_MAX).
constexpr shmbus::BlockHandle kEndHandle{0, std::numeric_limits<std::uint32_t>::max(), 0};
/// The first word that ends a queue-copy stream.
constexpr std::uint64_t kEndWord = ~std::uint64_t{0};

std::string channel_name(const char* what) {
    static int serial = 0;
    return std::string{"bench."} + what + "." + std::to_string(::getpid()) + "." +
           std::to_string(++serial);
}

shmbus::Result<shmbus::ChannelFiles> make(shmbus::ChannelKind kind, std::uint64_t slot_size,
                                          std::uint64_t count, const char* what) {
    shmbus::ChannelSpec spec;
    spec.name = channel_name(what);
    spec.kind = kind;
    spec.slot_size = slot_size;
    spec.slot_count = count;
    // Room for both channels of the run under the default ceiling of one channel.
    return shmbus::create_channel(spec, std::uint64_t{4} << 30);
}

Report failed(Report::Role role, std::string why) {
    Report r;
    r.role = role;
    r.error = std::move(why);
    return r;
}

void stamp(std::span<std::byte> payload, std::uint64_t word) {
    std::memcpy(payload.data(), &word, 8);
    std::memcpy(payload.data() + payload.size() - 8, &word, 8);
}

/// The stamp, if the first and last words agree; else 0 (no payload is numbered 0).
std::uint64_t stamp_of(std::span<const std::byte> payload) {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::memcpy(&first, payload.data(), 8);
    std::memcpy(&last, payload.data() + payload.size() - 8, 8);
    return first == last ? first : 0;
}

template <typename T>
std::span<const std::byte> bytes_of(const T& v) {
    return std::as_bytes(std::span{&v, 1});
}

template <typename T>
std::span<std::byte> writable_bytes_of(T& v) {
    return std::as_writable_bytes(std::span{&v, 1});
}

/// What one step of a measured loop did.
enum class Step { next, end, failed };

/// After the gate, runs `step(seq, report)` for seq = 1, 2, ... until it says end or failed
/// or, for a sender (`duration_ns` > 0), once the run's time is up after a step; counts each
/// `next` as one payload and times the loop. A failed step leaves its error in the report.
template <typename StepFn>
Report measured(Report::Role role, StartGate& gate, std::int64_t duration_ns, StepFn&& step) {
    Report r;
    r.role = role;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + duration_ns;
    for (std::uint64_t seq = 1;; ++seq) {
        const Step done = step(seq, r);
        if (done == Step::failed) {
            return r;
        }
        if (done == Step::end) {
            break;
        }
        ++r.messages;
        if (duration_ns > 0 && now_ns() >= deadline) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

/// A step's failure: `what` and the error, into the report.
Step failure(Report& r, const char* what, const shmbus::Error& e) {
    r.error = std::string{what} + ": " + e.message();
    return Step::failed;
}

Report pool_sender(const shmbus::ChannelFiles& pool_files, const shmbus::ChannelFiles& queue,
                   StartGate& gate, const RunSettings& settings) {
    const auto role = Report::Role::sender;
    auto pool = shmbus::Pool::attach(*pool_files.duplicate_for(shmbus::Role::publisher),
                                     shmbus::Role::publisher);
    auto out = shmbus::Publisher::attach(*queue.duplicate_for(shmbus::Role::publisher));
    if (!pool || !out) {
        return failed(role, (!pool ? pool.error() : out.error()).message());
    }
    Report r = measured(role, gate, settings.duration.count(), [&](std::uint64_t seq, Report& rep) {
        auto block = pool->acquire(kStall);
        if (!block) {
            return failure(rep, "acquire", block.error());
        }
        stamp(block->mutable_data(), seq);
        auto handle = pool->hand_on(std::move(*block));
        if (!handle) {
            return failure(rep, "hand on", handle.error());
        }
        auto sent = out->send(bytes_of(*handle), kStall);
        return sent ? Step::next : failure(rep, "send", sent.error());
    });
    if (auto sent = out->send(bytes_of(kEndHandle), kStall); !sent && r.error.empty()) {
        r.error = "end marker: " + sent.error().message();
    }
    return r;
}

Report pool_receiver(const shmbus::ChannelFiles& pool_files, const shmbus::ChannelFiles& queue,
                     StartGate& gate) {
    const auto role = Report::Role::receiver;
    auto pool = shmbus::Pool::attach(*pool_files.duplicate_for(shmbus::Role::subscriber),
                                     shmbus::Role::subscriber);
    auto in = shmbus::Subscriber::attach(*queue.duplicate_for(shmbus::Role::subscriber));
    if (!pool || !in) {
        return failed(role, (!pool ? pool.error() : in.error()).message());
    }
    return measured(role, gate, 0, [&](std::uint64_t seq, Report& rep) {
        shmbus::BlockHandle h{};
        auto got = in->receive_copy(writable_bytes_of(h), kStall);
        if (!got) {
            return failure(rep, "receive", got.error());
        }
        if (h.index == kEndHandle.index) {
            return Step::end;
        }
        auto block = pool->adopt(h);
        if (!block) {
            return failure(rep, "adopt", block.error());
        }
        rep.corrupt += stamp_of(block->data()) == seq ? 0 : 1;
        auto released = block->release();
        return released ? Step::next : failure(rep, "release", released.error());
    });
}

Report copy_sender(const shmbus::ChannelFiles& queue, std::uint64_t size, StartGate& gate,
                   const RunSettings& settings) {
    const auto role = Report::Role::sender;
    auto out = shmbus::Publisher::attach(*queue.duplicate_for(shmbus::Role::publisher));
    if (!out) {
        return failed(role, out.error().message());
    }
    std::vector<std::byte> payload(size, std::byte{0x5a});
    Report r = measured(role, gate, settings.duration.count(), [&](std::uint64_t seq, Report& rep) {
        stamp(payload, seq);
        auto sent = out->send(payload, kStall);
        return sent ? Step::next : failure(rep, "send", sent.error());
    });
    if (auto sent = out->send(bytes_of(kEndWord), kStall); !sent && r.error.empty()) {
        r.error = "end marker: " + sent.error().message();
    }
    return r;
}

Report copy_receiver(const shmbus::ChannelFiles& queue, std::uint64_t size, StartGate& gate) {
    const auto role = Report::Role::receiver;
    auto in = shmbus::Subscriber::attach(*queue.duplicate_for(shmbus::Role::subscriber));
    if (!in) {
        return failed(role, in.error().message());
    }
    std::vector<std::byte> payload(size);
    return measured(role, gate, 0, [&](std::uint64_t seq, Report& rep) {
        auto got = in->receive_copy(payload, kStall);
        if (!got) {
            return failure(rep, "receive", got.error());
        }
        if (got->size == sizeof kEndWord) {
            return Step::end;
        }
        rep.corrupt += got->size == size && stamp_of(payload) == seq ? 0 : 1;
        return Step::next;
    });
}

} // namespace

std::string run_payload_handoff(const Scenario& s, const RunSettings& settings,
                                std::vector<Report>& reports) {
    const bool pool = s.transport == Transport::pool_handoff;
    // pool-handoff: 16-byte handles in a deep ring; queue-copy: two payload-sized slots.
    auto queue = pool ? make(shmbus::ChannelKind::queue, sizeof(shmbus::BlockHandle), 64, "handles")
                      : make(shmbus::ChannelKind::queue, s.msg_size, 2, "copies");
    if (!queue) {
        return "queue: " + queue.error().message();
    }
    shmbus::Result<shmbus::ChannelFiles> blocks =
        pool ? make(shmbus::ChannelKind::pool, s.msg_size, kPoolBlocks, "pool")
             : shmbus::Result<shmbus::ChannelFiles>{shmbus::ChannelFiles{}};
    if (!blocks) {
        return "pool: " + blocks.error().message();
    }
    const shmbus::ChannelFiles& q = *queue;
    const shmbus::ChannelFiles& p = *blocks;
    const std::uint64_t size = s.msg_size;
    Team team{settings.pin};
    std::string error = team.spawn([&](StartGate& gate) {
        return pool ? pool_sender(p, q, gate, settings) : copy_sender(q, size, gate, settings);
    });
    if (error.empty()) {
        error = team.spawn([&](StartGate& gate) {
            return pool ? pool_receiver(p, q, gate) : copy_receiver(q, size, gate);
        });
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{30}, reports);
}

} // namespace bench
