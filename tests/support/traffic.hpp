// Checksummed test traffic for the multi-process tests: what producers write, how readers
// verify it, and the ledger a reader sends to its parent so that the parent can prove
// exactly-once delivery (queue), every-message-in-order delivery (broadcast block) or exact
// loss accounting (broadcast drop).
//
// A message is identified by (producer id, per-producer counter). Its length varies with
// that pair (24 bytes up to the channel's largest message), its filler bytes are derived
// from it, and a checksum over everything else is stored in it: a torn, shifted, truncated
// or misdelivered message fails verification.
//
// A Ledger lives in one reader process. It is sent to the parent through a pipe (fixed
// summary first, then per-producer tallies, then optionally one bitmap per producer with a
// bit per counter) and compared there with what the producers say they published.
//
// run_producer() and run_reader() are the bodies of the children that play those roles,
// in any of the API's forms (zero-copy single or batched, copying).
#pragma once

#include "process.hpp"

#include <shmbus/shmbus.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shmbus::test {

/// The first bytes of every test message.
struct WireHeader {
    std::uint32_t producer;
    std::uint32_t length; // the whole message, header included
    std::uint64_t counter;
    std::uint64_t checksum; // over the message with this field left out
};
static_assert(sizeof(WireHeader) == 24);
inline constexpr std::size_t kWireHeaderSize = sizeof(WireHeader);

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash step.
inline constexpr std::uint64_t mix64(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

inline constexpr std::uint64_t message_key(std::uint32_t producer, std::uint64_t counter) {
    return mix64((std::uint64_t{producer} << 48) ^ counter ^ 0x7368'6d62'7573ULL);
}

/// Length of message (producer, counter) on a channel carrying at most `max_length` bytes.
inline constexpr std::size_t message_length(std::uint32_t producer, std::uint64_t counter,
                                            std::size_t max_length) {
    const std::size_t spread = max_length - kWireHeaderSize + 1;
    return kWireHeaderSize + static_cast<std::size_t>(message_key(producer, counter) % spread);
}

/// Checksum of a message: every byte but the checksum field.
inline std::uint64_t message_checksum(std::span<const std::byte> m) {
    WireHeader h;
    std::memcpy(&h, m.data(), sizeof h);
    std::uint64_t c = mix64(h.producer ^ (std::uint64_t{h.length} << 32) ^ 0x9e3779b97f4a7c15ULL);
    c = mix64(c ^ h.counter);
    std::size_t i = kWireHeaderSize;
    for (; i + 8 <= m.size(); i += 8) {
        std::uint64_t w;
        std::memcpy(&w, m.data() + i, 8);
        c = mix64(c ^ w);
    }
    if (i < m.size()) {
        std::uint64_t w = 0;
        std::memcpy(&w, m.data() + i, m.size() - i);
        c = mix64(c ^ w ^ (m.size() - i));
    }
    return c;
}

/// Writes message (producer, counter) at the start of `out`, which must hold `max_length`
/// bytes. Returns its length.
inline std::size_t write_message(std::span<std::byte> out, std::uint32_t producer,
                                 std::uint64_t counter, std::size_t max_length) {
    const std::size_t len = message_length(producer, counter, max_length);
    const std::uint64_t key = message_key(producer, counter);
    for (std::size_t i = kWireHeaderSize; i < len; ++i) {
        out[i] = static_cast<std::byte>(static_cast<std::uint8_t>((key >> ((i & 7) * 8)) + i));
    }
    WireHeader h{producer, static_cast<std::uint32_t>(len), counter, 0};
    std::memcpy(out.data(), &h, sizeof h);
    h.checksum = message_checksum(out.first(len));
    std::memcpy(out.data(), &h, sizeof h);
    return len;
}

struct MessageId {
    std::uint32_t producer;
    std::uint64_t counter;
};

/// The identity of `m` if it is an intact message of one of `producers` producers.
inline std::optional<MessageId> verify_message(std::span<const std::byte> m,
                                               std::uint32_t producers, std::size_t max_length) {
    if (m.size() < kWireHeaderSize || m.size() > max_length) {
        return std::nullopt;
    }
    WireHeader h;
    std::memcpy(&h, m.data(), sizeof h);
    if (h.producer >= producers || h.length != m.size() ||
        h.length != message_length(h.producer, h.counter, max_length) ||
        h.checksum != message_checksum(m)) {
        return std::nullopt;
    }
    return MessageId{h.producer, h.counter};
}

/// A producer that publishes until told to stop.
inline constexpr std::uint64_t kUnbounded = ~std::uint64_t{0};

/// What one reader saw from one producer.
struct ProducerTally {
    std::uint64_t count{0};        ///< intact messages
    std::uint64_t sum{0};          ///< of their counters (mod 2^64)
    std::uint64_t xor_all{0};      ///< of their counters
    std::uint64_t next{0};         ///< largest counter seen + 1
    std::uint64_t skipped{0};      ///< counters jumped over going forward
    std::uint64_t out_of_order{0}; ///< counters below one seen before
};

/// What one reader saw in all. Trivially copyable: it travels through a pipe.
struct LedgerSummary {
    std::uint64_t received{0};           ///< messages that verified
    std::uint64_t corrupted{0};          ///< messages that failed verification
    std::uint64_t duplicates{0};         ///< (producer, counter) seen before by this reader
    std::uint64_t sequence_skipped{0};   ///< sequence numbers jumped over, in all
    std::uint64_t sequence_backwards{0}; ///< messages whose sequence went backwards
    std::uint64_t announced_lost{0};     ///< lost_before sums + messages discarded as lost
    std::uint64_t discarded{0};          ///< read, then discarded because release said lost
    std::uint64_t loss_mismatches{0};    ///< lost_before differing from the sequence gap
    std::uint64_t library_lost{0};       ///< Subscriber::lost() at the end
    std::uint64_t next_sequence{0};      ///< the sequence after the last one seen
    std::uint64_t errors{0};             ///< unexpected error results from the library
    std::uint32_t endpoint_index{0};
    std::uint32_t producers{0};
};

/// A reader's record of everything it received.
class Ledger {
public:
    /// `totals[p]`: how many messages producer p publishes, kUnbounded if it streams until
    /// told to stop (its bitmap then grows). A reader that `joins_midstream` takes the first
    /// sequence number and the first counter of each producer it sees as where it started;
    /// otherwise it expects sequence 0 and counter 0 first.
    Ledger(std::vector<std::uint64_t> totals, bool keep_bitmaps, bool joins_midstream = false)
        : totals_{std::move(totals)}, tallies_(totals_.size()), midstream_{joins_midstream} {
        summary_.producers = static_cast<std::uint32_t>(totals_.size());
        if (keep_bitmaps) {
            for (std::uint64_t t : totals_) {
                bitmaps_.emplace_back(t == kUnbounded ? 0 : (t + 63) / 64, 0);
            }
        }
    }

    /// The next message (or batch) follows `lost` messages the library says were lost.
    void announce_loss(std::uint64_t lost) {
        pending_loss_ += lost;
        summary_.announced_lost += lost;
    }

    /// Records the message with sequence `seq` and bytes `m` (verified here). False if it
    /// failed verification.
    bool record(std::uint64_t seq, std::span<const std::byte> m, std::size_t max_length) {
        note_sequence(seq);
        auto id = verify_message(m, summary_.producers, max_length);
        if (!id || id->counter >= totals_[id->producer]) {
            ++summary_.corrupted; // damaged, or a counter its producer never published
            return false;
        }
        ++summary_.received;
        ProducerTally& t = tallies_[id->producer];
        if (midstream_ && t.count == 0) {
            t.next = id->counter;
        }
        ++t.count;
        t.sum += id->counter;
        t.xor_all ^= id->counter;
        if (id->counter >= t.next) {
            t.skipped += id->counter - t.next;
            t.next = id->counter + 1;
        } else {
            ++t.out_of_order;
        }
        if (!bitmaps_.empty()) {
            auto& bits = bitmaps_[id->producer];
            if (id->counter / 64 >= bits.size()) {
                bits.resize(static_cast<std::size_t>(id->counter / 64 + 1), 0);
            }
            std::uint64_t& word = bits[id->counter / 64];
            const std::uint64_t bit = std::uint64_t{1} << (id->counter % 64);
            summary_.duplicates += (word & bit) != 0 ? 1 : 0;
            word |= bit;
        }
        return true;
    }

    /// Messages `seq .. seq + n - 1` were read but must be discarded (release said lost).
    void discard(std::uint64_t seq, std::uint64_t n) {
        note_sequence(seq);
        summary_.next_sequence = seq + n;
        summary_.discarded += n;
        summary_.announced_lost += n;
    }

    void count_error() { ++summary_.errors; }
    void set_library_lost(std::uint64_t n) { summary_.library_lost = n; }
    void set_endpoint_index(std::uint32_t i) { summary_.endpoint_index = i; }

    [[nodiscard]] const LedgerSummary& summary() const { return summary_; }
    [[nodiscard]] const std::vector<ProducerTally>& tallies() const { return tallies_; }
    [[nodiscard]] const std::vector<std::vector<std::uint64_t>>& bitmaps() const {
        return bitmaps_;
    }

    /// Sends everything to the parent.
    bool send(int fd) const {
        if (!send_record(fd, summary_) || !send_vector(fd, tallies_)) {
            return false;
        }
        const std::uint64_t n = bitmaps_.size();
        if (!send_record(fd, n)) {
            return false;
        }
        for (const auto& b : bitmaps_) {
            if (!send_vector(fd, b)) {
                return false;
            }
        }
        return true;
    }

    /// What a reader's send() delivered.
    struct Received {
        LedgerSummary summary;
        std::vector<ProducerTally> tallies;
        std::vector<std::vector<std::uint64_t>> bitmaps;
    };

    static std::optional<Received> receive(int fd, const Deadline& deadline = Deadline{}) {
        Received r;
        auto s = receive_record<LedgerSummary>(fd, deadline);
        if (!s) {
            return std::nullopt;
        }
        r.summary = *s;
        auto t = receive_vector<ProducerTally>(fd, deadline);
        auto n = receive_record<std::uint64_t>(fd, deadline);
        if (!t || !n || *n > 1024) {
            return std::nullopt;
        }
        r.tallies = std::move(*t);
        for (std::uint64_t i = 0; i < *n; ++i) {
            auto b = receive_vector<std::uint64_t>(fd, deadline);
            if (!b) {
                return std::nullopt;
            }
            r.bitmaps.push_back(std::move(*b));
        }
        return r;
    }

private:
    void note_sequence(std::uint64_t seq) {
        if (midstream_ && !started_) {
            summary_.next_sequence = seq - std::min(seq, pending_loss_);
        }
        started_ = true;
        const std::uint64_t expected = summary_.next_sequence;
        if (seq >= expected) {
            summary_.sequence_skipped += seq - expected;
            if (seq - expected != pending_loss_) {
                ++summary_.loss_mismatches;
            }
        } else {
            ++summary_.sequence_backwards;
        }
        pending_loss_ = 0;
        summary_.next_sequence = seq + 1;
    }

    std::vector<std::uint64_t> totals_;
    std::vector<ProducerTally> tallies_;
    std::vector<std::vector<std::uint64_t>> bitmaps_;
    LedgerSummary summary_;
    std::uint64_t pending_loss_{0};
    bool midstream_{false};
    bool started_{false};
};

/// Sum and xor of 0 .. n-1, to compare with a tally.
inline std::uint64_t sum_below(std::uint64_t n) {
    return n % 2 == 0 ? (n / 2) * (n - 1) : n * ((n - 1) / 2);
}
inline std::uint64_t xor_below(std::uint64_t n) {
    // xor of 0..m follows the pattern m, 1, m+1, 0 for m % 4 == 0, 1, 2, 3.
    if (n == 0) {
        return 0;
    }
    const std::uint64_t m = n - 1;
    switch (m % 4) {
    case 0:
        return m;
    case 1:
        return 1;
    case 2:
        return m + 1;
    default:
        return 0;
    }
}

/// Number of set bits in a bitmap.
inline std::uint64_t popcount(const std::vector<std::uint64_t>& bits) {
    std::uint64_t n = 0;
    for (std::uint64_t w : bits) {
        n += static_cast<std::uint64_t>(std::popcount(w));
    }
    return n;
}

// ---- The two roles a test child plays ----

/// The limit of a blocking data-path call in these tests: none. A call must return because
/// what it waits for happened and it was woken, never because its timeout ran out and hid a
/// missed wake-up; if it never returns, the parent's deadline turns the hang into a failure.
inline constexpr std::chrono::nanoseconds kCallTimeout = std::chrono::nanoseconds::max();

/// How a producer writes.
enum class WriteForm {
    single, ///< zero-copy, one slot per reserve()
    batch,  ///< zero-copy, up to ProducerPlan::batch slots per reserve(), one commit
    copy,   ///< send()
};

/// How a reader reads.
enum class ReadForm {
    single, ///< zero-copy, one message per receive()
    batch,  ///< zero-copy, up to ReaderPlan::batch messages per receive(), one release
    copy,   ///< receive_copy()
};

struct ProducerPlan {
    std::uint32_t id{0};
    std::uint64_t count{0};
    WriteForm form{WriteForm::batch};
    std::size_t batch{32};
    EndpointOptions options{};
    int milestone_fd{-1}; ///< gets one byte once `milestone_at` messages are out
    std::uint64_t milestone_at{0};
    int stop_fd{-1}; ///< if set, publish (ignoring `count`) until a byte arrives here
};

/// What a producer child reports when it has published everything.
struct ProducerReport {
    std::uint64_t published{0};
    std::uint32_t endpoint_index{0};
    std::uint32_t pad{0};
};

/// Child body: attaches a publisher, publishes `plan.count` messages of producer `plan.id`,
/// then sends a ProducerReport to `report_fd`.
inline int run_producer(const ChannelFiles& files, const ProducerPlan& plan, std::size_t max_length,
                        int report_fd) {
    auto dup = files.duplicate_for(Role::publisher);
    if (!dup) {
        return child_failure("duplicate_for(publisher): " + dup.error().message());
    }
    auto pub = Publisher::attach(std::move(*dup), plan.options);
    if (!pub) {
        return child_failure("Publisher::attach: " + pub.error().message());
    }
    std::vector<std::byte> buf(max_length);
    std::uint64_t c = 0;
    bool milestone_sent = plan.milestone_fd < 0;
    std::uint64_t rounds = 0;
    auto more = [&] {
        if (plan.stop_fd < 0) {
            return c < plan.count;
        }
        return ++rounds % 64 != 0 || !readable_now(plan.stop_fd); // a poll() every 64 writes
    };
    while (more()) {
        if (plan.form == WriteForm::copy) {
            const std::size_t len = write_message(buf, plan.id, c, max_length);
            if (auto r = pub->send({buf.data(), len}, kCallTimeout); !r) {
                return child_failure("send of message " + std::to_string(c) + ": " +
                                     r.error().message());
            }
            ++c;
        } else {
            const std::size_t want =
                plan.form == WriteForm::single ? 1
                : plan.stop_fd >= 0
                    ? plan.batch
                    : static_cast<std::size_t>(std::min<std::uint64_t>(plan.batch, plan.count - c));
            auto b = pub->reserve(want, kCallTimeout);
            if (!b) {
                return child_failure("reserve at message " + std::to_string(c) + ": " +
                                     b.error().message());
            }
            for (std::size_t i = 0; i < b->size(); ++i) {
                b->set_length(i, write_message(b->data(i), plan.id, c + i, max_length));
            }
            const std::size_t n = b->size();
            if (auto r = pub->commit(*b); !r) {
                return child_failure("commit at message " + std::to_string(c) + ": " +
                                     r.error().message());
            }
            c += n;
        }
        if (!milestone_sent && c >= plan.milestone_at) {
            const std::byte one{1};
            milestone_sent = write_all(plan.milestone_fd, {&one, 1});
        }
    }
    ProducerReport rep;
    rep.published = c;
    rep.endpoint_index = pub->endpoint_index();
    return send_record(report_fd, rep) ? 0 : child_failure("cannot send the producer report");
}

struct ReaderPlan {
    ReadForm form{ReadForm::batch};
    std::size_t batch{32};
    std::vector<std::uint64_t> totals; ///< messages each producer publishes
    bool bitmaps{false};               ///< keep a bit per message (queues: exactly-once proof)
    /// Stop once every sequence number below this was received or counted lost. 0: read
    /// until a byte arrives on `stop_fd`, then until the channel is empty.
    std::uint64_t stop_at_sequence{0};
    int stop_fd{-1};
    int hold_fd{-1}; ///< wait for a byte here after attaching, before reading anything
    /// Drop policy: copy each batch out, release it, and verify the copies only if release
    /// did not report them overwritten (the seqlock protocol a zero-copy reader must follow).
    bool copy_then_release{false};
    std::uint32_t slow_rounds{0}; ///< extra hashing per message: a deliberately slow reader
    bool joins_midstream{false};  ///< attaches while producers already publish
    EndpointOptions options{};
};

/// Spends `rounds` hash steps: the extra work of a deliberately slow reader.
inline void burn(std::uint32_t rounds) {
    std::uint64_t x = rounds;
    for (std::uint32_t i = 0; i < rounds; ++i) {
        x = mix64(x);
    }
    asm volatile("" : : "r"(x));
}

/// Reads one message or batch in `plan.form`, waiting up to `timeout` (0: do not wait).
/// Returns how many messages it took, 0 if none came, -1 on an unexpected error.
inline int read_once(Subscriber& sub, const ReaderPlan& plan, Ledger& ledger,
                     std::size_t max_length, std::chrono::nanoseconds timeout,
                     std::vector<std::byte>& scratch) {
    const bool wait = timeout.count() > 0;
    auto unexpected = [&](const Error& e) {
        ledger.count_error();
        std::fprintf(stderr, "reader %d: %s\n", static_cast<int>(getpid()), e.message().c_str());
        return -1;
    };
    if (plan.form == ReadForm::copy) {
        auto r = wait ? sub.receive_copy(scratch, timeout) : sub.try_receive_copy(scratch);
        if (!r) {
            return r.code() == Errc::would_block || r.code() == Errc::timed_out
                       ? 0
                       : unexpected(r.error());
        }
        ledger.announce_loss(r->lost_before);
        ledger.record(r->sequence, {scratch.data(), static_cast<std::size_t>(r->size)}, max_length);
        burn(plan.slow_rounds);
        return 1;
    }
    const std::size_t want = plan.form == ReadForm::single ? 1 : plan.batch;
    auto r = wait ? sub.receive(want, timeout) : sub.try_receive(want);
    if (!r) {
        return r.code() == Errc::would_block || r.code() == Errc::timed_out ? 0
                                                                            : unexpected(r.error());
    }
    ReadBatch& b = *r;
    const std::size_t n = b.size();
    ledger.announce_loss(b.lost_before());
    if (!plan.copy_then_release) {
        for (std::size_t i = 0; i < n; ++i) {
            const Message m = b.message(i);
            ledger.record(m.sequence, m.data, max_length);
            burn(plan.slow_rounds);
        }
        if (auto rel = sub.release(b); !rel) {
            return unexpected(rel.error());
        }
        return static_cast<int>(n);
    }
    // Seqlock protocol: copy, release, and trust the copies only if release says so.
    std::vector<std::size_t> lengths(n);
    const std::uint64_t first = b.message(0).sequence;
    for (std::size_t i = 0; i < n; ++i) {
        const Message m = b.message(i);
        lengths[i] = m.data.size();
        std::memcpy(scratch.data() + i * max_length, m.data.data(), m.data.size());
        burn(plan.slow_rounds);
    }
    auto rel = sub.release(b);
    if (!rel && rel.code() != Errc::lost) {
        return unexpected(rel.error());
    }
    if (!rel) {
        ledger.discard(first, n);
        return static_cast<int>(n);
    }
    for (std::size_t i = 0; i < n; ++i) {
        ledger.record(first + i, {scratch.data() + i * max_length, lengths[i]}, max_length);
    }
    return static_cast<int>(n);
}

/// Child body: attaches a subscriber, sends its endpoint index to `report_fd` ("ready"),
/// reads as `plan` says, then sends its Ledger to `report_fd`.
inline int run_reader(const ChannelFiles& files, const ReaderPlan& plan, std::size_t max_length,
                      int report_fd) {
    auto dup = files.duplicate_for(Role::subscriber);
    if (!dup) {
        return child_failure("duplicate_for(subscriber): " + dup.error().message());
    }
    auto sub = Subscriber::attach(std::move(*dup), plan.options);
    if (!sub) {
        return child_failure("Subscriber::attach: " + sub.error().message());
    }
    Ledger ledger(plan.totals, plan.bitmaps, plan.joins_midstream);
    ledger.set_endpoint_index(sub->endpoint_index());
    if (!send_record(report_fd, sub->endpoint_index())) {
        return child_failure("cannot report ready");
    }
    if (plan.hold_fd >= 0) {
        std::byte go{};
        if (read_exact(plan.hold_fd, {&go, 1}, Deadline{}) != ReadOutcome::complete) {
            return child_failure("the signal to start reading never came");
        }
    }
    std::vector<std::byte> scratch(max_length * std::max<std::size_t>(plan.batch, 1));
    const bool until_told = plan.stop_at_sequence == 0;
    // Reading until told to stop: wait in short slices so that the stop byte is seen.
    const std::chrono::nanoseconds slice =
        until_told ? std::chrono::nanoseconds(std::chrono::milliseconds(20)) : kCallTimeout;
    bool stopping = false;
    Deadline idle_limit{kGenerousDeadline}; // a reader told when to stop gives up after this
    for (;;) {
        if (!until_told && ledger.summary().next_sequence >= plan.stop_at_sequence) {
            break;
        }
        if (until_told && !stopping && readable_now(plan.stop_fd)) {
            stopping = true; // everything is published: read until the channel is empty
        }
        const int got = read_once(*sub, plan, ledger, max_length,
                                  stopping ? std::chrono::nanoseconds(0) : slice, scratch);
        if (got < 0) {
            break; // counted in the ledger; the parent reports it
        }
        if (got > 0) {
            idle_limit = Deadline{kGenerousDeadline};
            continue;
        }
        if (stopping) {
            break;
        }
        if (!until_told || idle_limit.passed()) {
            ledger.count_error();
            std::fprintf(stderr, "reader %d: nothing arrived before the deadline\n",
                         static_cast<int>(getpid()));
            break;
        }
    }
    ledger.set_library_lost(sub->lost());
    return ledger.send(report_fd) ? 0 : child_failure("cannot send the ledger");
}

/// What is wrong with "every message producer p published (counters 0 .. published[p] - 1)
/// was received exactly once, intact, by `readers` together". Empty when it holds. The
/// readers must have kept bitmaps.
inline std::vector<std::string>
exactly_once_problems(const std::vector<const Ledger::Received*>& readers,
                      const std::vector<std::uint64_t>& published) {
    std::vector<std::string> problems;
    auto say = [&](const std::string& s) { problems.push_back(s); };
    for (std::size_t r = 0; r < readers.size(); ++r) {
        const LedgerSummary& s = readers[r]->summary;
        const std::string who = "reader " + std::to_string(r) + ": ";
        if (s.corrupted != 0) {
            say(who + std::to_string(s.corrupted) + " messages failed verification");
        }
        if (s.duplicates != 0) {
            say(who + std::to_string(s.duplicates) + " messages received twice by it");
        }
        if (s.errors != 0) {
            say(who + std::to_string(s.errors) + " unexpected errors");
        }
        if (readers[r]->tallies.size() != published.size() ||
            readers[r]->bitmaps.size() != published.size()) {
            say(who + "sent tallies or bitmaps for the wrong number of producers");
            return problems;
        }
    }
    for (std::size_t p = 0; p < published.size(); ++p) {
        const std::string who = "producer " + std::to_string(p) + ": ";
        std::uint64_t count = 0;
        std::uint64_t sum = 0;
        std::uint64_t xor_all = 0;
        std::uint64_t overlap = 0;
        std::vector<std::uint64_t> seen((published[p] + 63) / 64, 0);
        for (const auto* r : readers) {
            count += r->tallies[p].count;
            sum += r->tallies[p].sum;
            xor_all ^= r->tallies[p].xor_all;
            const auto& bits = r->bitmaps[p];
            if (bits.size() > seen.size()) {
                seen.resize(bits.size(), 0);
            }
            for (std::size_t w = 0; w < bits.size(); ++w) {
                overlap += static_cast<std::uint64_t>(std::popcount(seen[w] & bits[w]));
                seen[w] |= bits[w];
            }
        }
        std::uint64_t missing = 0;
        std::uint64_t extra = 0;
        for (std::size_t w = 0; w < seen.size(); ++w) {
            const std::uint64_t lo = w * 64;
            std::uint64_t want = 0;
            if (published[p] >= lo + 64) {
                want = ~std::uint64_t{0};
            } else if (published[p] > lo) {
                want = (std::uint64_t{1} << (published[p] - lo)) - 1;
            }
            missing += static_cast<std::uint64_t>(std::popcount(want & ~seen[w]));
            extra += static_cast<std::uint64_t>(std::popcount(~want & seen[w]));
        }
        if (missing != 0) {
            say(who + std::to_string(missing) + " of " + std::to_string(published[p]) +
                " messages never received");
        }
        if (extra != 0) {
            say(who + std::to_string(extra) + " messages received that it never published");
        }
        if (overlap != 0) {
            say(who + std::to_string(overlap) + " messages received by two readers");
        }
        if (count != published[p]) {
            say(who + std::to_string(count) + " messages received, " +
                std::to_string(published[p]) + " published");
        }
        if (sum != sum_below(published[p]) || xor_all != xor_below(published[p])) {
            say(who + "the sum or xor of the received counters is not that of 0 .. " +
                std::to_string(published[p]) + " - 1");
        }
    }
    return problems;
}

/// Joins problems into one line per problem, for INFO().
inline std::string joined(const std::vector<std::string>& problems) {
    std::string out;
    for (const auto& p : problems) {
        out += p + "\n";
    }
    return out;
}

} // namespace shmbus::test
