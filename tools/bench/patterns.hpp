// Patterns: the measured loops, written once for every transport.
//
// Each transport supplies a Writer and a Reader with the same small interface, shaped after
// shmbus's zero-copy calls so that shmbus pays nothing for the abstraction (the patterns
// are templates; nothing is virtual):
//
//   Writer: acquire(n) -> k in 1..n slots, or 0 on error | slot(i) -> std::span<std::byte>
//           set_length(i, len) | publish() -> bool | error() -> const std::string&
//   Reader: take(n) -> k in 1..n messages, or 0 when none is ready (idle) or on error
//           | failed() -> bool | message(i) -> std::span<const std::byte>
//           | release() -> Released | error()
//
// For the fd baselines acquire() hands out a buffer in the process and publish() writes it
// (one write per publish); for shmbus acquire() reserves ring slots and publish() commits.
//
// Message contents: the first 8 bytes carry a sequence number (streams) or the send
// timestamp (ping-pong); the rest is one repeated byte. A writer fills every byte in
// place; a stream reader checksums every byte in place and compares with the expected sum,
// so corruption is counted and no reader can skip its work. kEndMarker in the first word
// ends a stream: the last writer to finish publishes one per reader.
//
// Every measured loop starts after StartGate::wait() and takes its CPU time and timestamps
// there, so attach and set-up costs never count.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace bench {

inline constexpr std::uint64_t kEndMarker = ~std::uint64_t{0};

/// What Reader::release() found.
enum class Released {
    ok,
    lost,  ///< overwritten while read (shmbus drop policy): the batch does not count
    error, ///< a failure; error() says which
};

/// What one role of a pattern needs to know.
struct PatternParams {
    std::uint64_t msg_size{128};
    std::size_t batch{1};
    std::int64_t duration_ns{0};
    std::size_t max_samples{0};
    std::uint32_t writers{1}; ///< writers that must finish before the end markers go out
    std::uint32_t markers{1}; ///< end markers the last writer publishes
    std::size_t warmup{200};  ///< ping-pongs not recorded (fewer if they are slow)
    /// Messages a sender sends in all, whatever the duration (Scenario::counted_messages());
    /// 0: as many as the duration allows. A counted stream's receiver ends its measured part
    /// at its last message, not at the end marker (as large as a message on a byte stream).
    std::uint64_t messages{0};
    Board* board{nullptr};
};

/// Fills `slot[0, len)`: `word` first, then the byte `word & 0xff`. len >= 8.
inline void fill_message(std::span<std::byte> slot, std::uint64_t len, std::uint64_t word) {
    std::memcpy(slot.data(), &word, sizeof word);
    std::memset(slot.data() + sizeof word, static_cast<int>(word & 0xff), len - sizeof word);
}

/// The first word of a message.
inline std::uint64_t first_word(std::span<const std::byte> msg) {
    std::uint64_t w = 0;
    std::memcpy(&w, msg.data(), std::min(sizeof w, msg.size()));
    return w;
}

/// Sum of every 8-byte word (and trailing byte) of `msg`: reads every byte once.
inline std::uint64_t checksum(std::span<const std::byte> msg) {
    const std::byte* p = msg.data();
    const std::size_t n = msg.size();
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::uint64_t c = 0;
    std::uint64_t d = 0;
    std::size_t i = 0;
    // Four independent sums keep the loads in flight; GCC does not reassociate for us.
    for (; i + 32 <= n; i += 32) {
        std::uint64_t w[4];
        std::memcpy(w, p + i, sizeof w);
        a += w[0];
        b += w[1];
        c += w[2];
        d += w[3];
    }
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, sizeof w);
        a += w;
    }
    for (; i < n; ++i) {
        a += static_cast<std::uint8_t>(p[i]);
    }
    return a + b + c + d;
}

/// The checksum fill_message() produces for `len` bytes starting with `word`.
inline std::uint64_t expected_checksum(std::uint64_t len, std::uint64_t word) {
    const std::uint64_t byte = word & 0xff;
    const std::uint64_t full_words = len / 8;
    return word + (full_words - 1) * (byte * 0x0101010101010101ULL) + (len % 8) * byte;
}

/// The parameters of `s` for one run with `settings`, coordinating through `board`.
inline PatternParams make_params(const Scenario& s, const RunSettings& settings, Board& board) {
    PatternParams p;
    p.msg_size = s.msg_size;
    p.batch = s.batch;
    p.duration_ns = settings.duration.count();
    p.max_samples = settings.max_samples;
    p.writers = s.publishers;
    p.messages = s.counted_messages();
    p.board = &board;
    const bool queue = s.kind == Kind::queue_spsc || s.kind == Kind::queue_mpmc;
    // On a queue each consumer needs its own marker; on a broadcast channel all see one.
    p.markers = queue ? s.subscribers : 1;
    return p;
}

namespace detail {

/// Publishes `count` end markers through `out`.
template <typename Writer>
bool publish_markers(Writer& out, const PatternParams& p, std::uint32_t count) {
    for (std::uint32_t m = 0; m < count; ++m) {
        if (out.acquire(1) == 0) {
            return false;
        }
        fill_message(out.slot(0), p.msg_size, kEndMarker);
        out.set_length(0, p.msg_size);
        if (!out.publish()) {
            return false;
        }
    }
    return true;
}

/// Marks this writer finished; the last one publishes the end markers.
template <typename Writer>
bool finish_writer(Writer& out, const PatternParams& p) {
    const std::uint32_t done =
        p.board->writers_done.fetch_add(1, std::memory_order_acq_rel) + 1; // pairs with peers
    return done < p.writers || publish_markers(out, p, p.markers);
}

/// Whether every writer is done, and so has published every message but the markers. A
/// reader that then finds its ring empty *on a later look* may stop: an empty look taken
/// before this returned true proves nothing (the last batch may have landed in between).
inline bool writers_finished(const PatternParams& p) {
    return p.board->writers_done.load(std::memory_order_acquire) >= p.writers; // pairs above
}

/// Records latency sample `ns`, taken at `t1` by the `i`-th exchange of a run, unless it is
/// warm-up (the first exchanges, or the first quarter of a run of slow ones) or `r` holds
/// max_samples already.
inline void record_sample(Report& r, const PatternParams& p, std::size_t i, std::int64_t t1,
                          std::int64_t ns) {
    const bool warm = i >= p.warmup || t1 - r.t_start_ns >= p.duration_ns / 4;
    if (warm && r.samples.size() < p.max_samples) {
        r.samples.push_back(
            static_cast<std::uint32_t>(std::clamp<std::int64_t>(ns, 0, std::int64_t{UINT32_MAX})));
    }
}

} // namespace detail

/// Ping-pong, pinger side: sends a timestamped ping, waits for the echo, records
/// (now - timestamp) / 2. Works with several pingers on one queue: the timestamp travels
/// in the message, so any pinger may take any pong.
template <typename Writer, typename Reader>
Report run_pinger(Writer& out, Reader& in, StartGate& gate, const PatternParams& p) {
    Report r;
    r.role = Report::Role::pinger;
    r.samples.reserve(std::min<std::size_t>(p.max_samples, 1U << 20));
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + p.duration_ns;
    for (std::size_t i = 0;; ++i) {
        const std::int64_t t0 = now_ns();
        if (out.acquire(1) == 0) {
            r.error = "ping: " + out.error();
            return r;
        }
        fill_message(out.slot(0), p.msg_size, static_cast<std::uint64_t>(t0));
        out.set_length(0, p.msg_size);
        if (!out.publish()) {
            r.error = "ping: " + out.error();
            return r;
        }
        while (in.take(1) == 0) {
            if (in.failed()) {
                r.error = "pong: " + in.error();
                return r;
            }
        }
        const std::int64_t t1 = now_ns();
        const auto stamp = static_cast<std::int64_t>(first_word(in.message(0)));
        if (in.release() == Released::error) {
            r.error = "pong: " + in.error();
            return r;
        }
        ++r.messages;
        detail::record_sample(r, p, i, t1, (t1 - stamp) / 2); // one way: half the trip
        if (t1 >= deadline || r.samples.size() >= p.max_samples) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    if (!detail::finish_writer(out, p)) {
        r.error = "end marker: " + out.error();
    }
    return r;
}

/// Ping-pong, ponger side: echoes every ping (copied into a fresh slot) until an end
/// marker, or until the pingers are done and nothing is left.
template <typename Writer, typename Reader>
Report run_ponger(Writer& out, Reader& in, StartGate& gate, const PatternParams& p) {
    Report r;
    r.role = Report::Role::ponger;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    bool finished = false;
    for (;;) {
        if (in.take(1) == 0) {
            if (in.failed()) {
                r.error = "ping: " + in.error();
                return r;
            }
            if (finished) {
                break; // empty although looked at after every writer was done
            }
            finished = detail::writers_finished(p);
            continue;
        }
        const std::span<const std::byte> msg = in.message(0);
        if (first_word(msg) == kEndMarker) {
            (void)in.release();
            break;
        }
        if (out.acquire(1) == 0) {
            r.error = "pong: " + out.error();
            return r;
        }
        std::memcpy(out.slot(0).data(), msg.data(), msg.size());
        out.set_length(0, msg.size());
        const bool sent = out.publish();
        if (in.release() == Released::error) {
            r.error = "ping: " + in.error();
            return r;
        }
        if (!sent) {
            r.error = "pong: " + out.error();
            return r;
        }
        ++r.messages;
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

/// Streams messages for the run's duration (or p.messages of them), `batch` per publish, then
/// finishes.
template <typename Writer>
Report run_sender(Writer& out, StartGate& gate, const PatternParams& p) {
    Report r;
    r.role = Report::Role::sender;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + p.duration_ns;
    // Reading the clock costs tens of nanoseconds: with one message per publish, look at
    // it every 64 publishes only.
    const std::uint64_t clock_mask = p.batch >= 16 ? 0 : 63;
    std::uint64_t seq = 0;
    for (std::uint64_t round = 0;; ++round) {
        const std::size_t want =
            p.messages == 0 ? p.batch : std::min<std::uint64_t>(p.batch, p.messages - seq);
        const std::size_t k = out.acquire(want);
        if (k == 0) {
            r.error = "send: " + out.error();
            return r;
        }
        for (std::size_t i = 0; i < k; ++i) {
            fill_message(out.slot(i), p.msg_size, seq++);
            out.set_length(i, p.msg_size);
        }
        if (!out.publish()) {
            r.error = "send: " + out.error();
            return r;
        }
        if (p.messages != 0 ? seq >= p.messages
                            : (round & clock_mask) == 0 && now_ns() >= deadline) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    r.messages = seq;
    if (!detail::finish_writer(out, p)) {
        r.error = "end marker: " + out.error();
    }
    return r;
}

/// Receives up to `batch` messages at a time, checksumming every byte in place, until an
/// end marker (or, for a queue with several consumers, the writers are done and the ring
/// is empty). `echo_none` listeners of a broadcast ping-pong use it too.
template <typename Reader>
Report run_receiver(Reader& in, StartGate& gate, const PatternParams& p,
                    Report::Role role = Report::Role::receiver) {
    Report r;
    r.role = role;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    std::int64_t last_ns = r.t_start_ns; // when the last message (not a marker) was read
    bool end = false;
    bool finished = false;
    while (!end) {
        const std::size_t k = in.take(p.batch);
        if (k == 0) {
            if (in.failed()) {
                r.error = "receive: " + in.error();
                return r;
            }
            // A counted stream's reader waits for all of its messages: one of them may take
            // longer than a receive's timeout to arrive (a bridge sends it in fragments).
            if (finished && (p.messages == 0 || r.messages >= p.messages)) {
                break; // empty although looked at after every writer was done
            }
            finished = detail::writers_finished(p);
            continue;
        }
        std::uint64_t good = 0;
        std::uint64_t corrupt = 0;
        for (std::size_t i = 0; i < k; ++i) {
            const std::span<const std::byte> msg = in.message(i);
            const std::uint64_t word = first_word(msg);
            if (word == kEndMarker) {
                end = true;
                continue;
            }
            if (role == Report::Role::receiver &&
                (msg.size() != p.msg_size ||
                 checksum(msg) != expected_checksum(p.msg_size, word))) {
                ++corrupt;
            }
            ++good;
        }
        const Released rel = in.release();
        if (rel == Released::error) {
            r.error = "release: " + in.error();
            return r;
        }
        if (rel == Released::ok) { // a lost batch was overwritten under us: none counts
            r.messages += good;
            r.corrupt += corrupt;
        }
        if (p.messages != 0 && good > 0) { // only counted streams: the clock costs
            last_ns = now_ns();
        }
    }
    r.t_end_ns = p.messages != 0 ? last_ns : now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

/// A paced channel's writer: publishes `ticks` timestamped messages (the first word is the
/// CLOCK_MONOTONIC time of the publish), one every `period_ns` on a fixed schedule from the
/// start (a tick that is late is sent at once, the next keeps its time), then finishes. The
/// sleep between ticks is the pace the row measures, not a synchronisation.
template <typename Writer>
Report run_ticker(Writer& out, StartGate& gate, const PatternParams& p, std::uint64_t ticks,
                  std::int64_t period_ns) {
    Report r;
    r.role = Report::Role::ticker;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    for (std::uint64_t i = 0; i < ticks; ++i) {
        const std::int64_t due = r.t_start_ns + static_cast<std::int64_t>(i) * period_ns;
        if (const std::int64_t wait = due - now_ns(); wait > 0) {
            std::this_thread::sleep_for(std::chrono::nanoseconds{wait});
        }
        if (out.acquire(1) == 0) {
            r.error = "tick: " + out.error();
            return r;
        }
        fill_message(out.slot(0), p.msg_size, static_cast<std::uint64_t>(now_ns()));
        out.set_length(0, p.msg_size);
        if (!out.publish()) {
            r.error = "tick: " + out.error();
            return r;
        }
        ++r.messages;
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    if (!detail::finish_writer(out, p)) {
        r.error = "end marker: " + out.error();
    }
    return r;
}

/// A paced channel's reader: records (now - timestamp) of every tick, one way (both ends
/// read the same CLOCK_MONOTONIC), until the end marker. The first `p.warmup` are not
/// recorded.
template <typename Reader>
Report run_clock_reader(Reader& in, StartGate& gate, const PatternParams& p) {
    Report r;
    r.role = Report::Role::clock_reader;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    bool finished = false;
    for (std::size_t i = 0;;) {
        if (in.take(1) == 0) {
            if (in.failed()) {
                r.error = "tick: " + in.error();
                return r;
            }
            if (finished) {
                break; // empty although looked at after the ticker was done
            }
            finished = detail::writers_finished(p);
            continue;
        }
        const std::int64_t t1 = now_ns();
        const std::uint64_t stamp = first_word(in.message(0));
        if (in.release() == Released::error) {
            r.error = "tick: " + in.error();
            return r;
        }
        if (stamp == kEndMarker) {
            break;
        }
        ++r.messages;
        if (i++ >= p.warmup && r.samples.size() < p.max_samples) {
            r.samples.push_back(static_cast<std::uint32_t>(std::clamp<std::int64_t>(
                t1 - static_cast<std::int64_t>(stamp), 0, std::int64_t{UINT32_MAX})));
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

/// The two ends of a path between two processes.
enum class Direction { forward, backward };

/// The two processes of a one-to-one scenario: for the latency test a pinger (writes forward,
/// reads backward) and a ponger (the other way round); otherwise a sender forward and its
/// receiver. Each child builds its own ends: `make_writer(direction)` and
/// `make_reader(direction)` return the transport's Writer and Reader (by value: they need
/// not be movable). Then runs the team for the scenario's duration plus set-up time. An
/// empty string, or why not.
template <typename MakeWriter, typename MakeReader>
std::string run_one_to_one(const Scenario& s, const RunSettings& settings, const PatternParams& p,
                           MakeWriter make_writer, MakeReader make_reader,
                           std::vector<Report>& reports) {
    Team team{settings.pin};
    std::string error;
    if (s.test == Test::latency) {
        error = team.spawn([&](StartGate& gate) {
            auto out = make_writer(Direction::forward);
            auto in = make_reader(Direction::backward);
            return run_pinger(out, in, gate, p);
        });
        if (error.empty()) {
            error = team.spawn([&](StartGate& gate) {
                auto out = make_writer(Direction::backward);
                auto in = make_reader(Direction::forward);
                return run_ponger(out, in, gate, p);
            });
        }
    } else {
        error = team.spawn([&](StartGate& gate) {
            auto out = make_writer(Direction::forward);
            return run_sender(out, gate, p);
        });
        if (error.empty()) {
            error = team.spawn([&](StartGate& gate) {
                auto in = make_reader(Direction::forward);
                return run_receiver(in, gate, p);
            });
        }
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + s.counted_allowance() + std::chrono::seconds{20}, reports);
}

} // namespace bench
