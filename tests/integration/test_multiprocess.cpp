// Messages between processes: every channel shape under sustained load, with forked
// producers and readers (fork without exec: each child inherits the channel's descriptors
// and attaches its own endpoint), checksummed messages and sequence checks.
//
// The parent only orchestrates. It creates the channel, forks the readers first and waits
// until each reports that it is attached (a broadcast subscriber starts at the next message
// published), forks the producers, waits for them to finish, then tells readers that read
// "until told" to empty the channel and stop. Each reader sends its ledger (see
// support/traffic.hpp) and the parent proves the property of the configuration:
//   - queue: every message (producer id + counter) received exactly once across consumers
//     (bitmaps, counts, sums and xors), intact, in per-producer order for each consumer;
//   - broadcast block: every subscriber received every message, intact, in order, with
//     consecutive sequence numbers;
//   - broadcast drop: every sequence number was either received intact or announced as
//     lost (lost_before, Errc::lost from release, Received::lost_before), the announced
//     total equals Subscriber::lost(), and no torn message was ever accepted.
//
// Messages published per configuration at SHMBUS_TEST_SCALE=1 (scaled down for sanitizer
// runs, which use 0.05 - 0.1):
//   queue SPSC 1/1 ........................ 12 000 000
//   queue MPSC 2/1 ........................ 2 x 6 000 000
//   queue SPMC 1/2 ........................ 12 000 000
//   queue MPMC 2/2 ........................ 2 x 6 000 000
//   broadcast block 1 pub / 3 subs ........ 10 000 000 (30 000 000 deliveries)
//   broadcast block 2 pubs / 2 subs ....... 2 x 5 000 000 (20 000 000 deliveries)
//   broadcast drop 1 pub / 2 subs ......... 10 000 000, one subscriber deliberately slow
#include "process.hpp"
#include "test_support.hpp"
#include "traffic.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;

namespace {

// 24..48-byte messages: with the 16-byte slot header, one 64-byte line per slot.
constexpr std::uint64_t kSlotSize = 48;
constexpr std::uint64_t kSlotCount = 4096;

struct Traffic {
    ChannelSpec spec;
    std::vector<ProducerPlan> producers;
    std::vector<ReaderPlan> readers;
    /// Drop test: reader `held_reader` starts only once producer 0 has published
    /// `hold_until` messages, so that it is certainly overrun.
    int held_reader{-1};
    std::uint64_t hold_until{0};
};

struct Outcome {
    std::vector<ProducerReport> producers;
    std::vector<Ledger::Received> readers;
};

std::string describe(const LedgerSummary& s) {
    std::ostringstream o;
    o << "received " << s.received << ", corrupted " << s.corrupted << ", duplicates "
      << s.duplicates << ", sequence skipped " << s.sequence_skipped << ", backwards "
      << s.sequence_backwards << ", announced lost " << s.announced_lost << ", discarded "
      << s.discarded << ", loss mismatches " << s.loss_mismatches << ", Subscriber::lost() "
      << s.library_lost << ", next sequence " << s.next_sequence << ", errors " << s.errors;
    return o.str();
}

std::vector<std::uint64_t> totals_of(const std::vector<ProducerPlan>& producers) {
    std::vector<std::uint64_t> t;
    for (const auto& p : producers) {
        t.push_back(p.count);
    }
    return t;
}

/// Runs `t` to the end and collects what every child reported. REQUIREs that every child
/// did its part and exited cleanly.
Outcome run_traffic(Traffic t) {
    auto files = create_channel(t.spec);
    REQUIRE(files);
    const std::size_t max_length = t.spec.slot_size;

    std::optional<Pipe> hold;
    if (t.held_reader >= 0) {
        hold = Pipe::make();
        t.readers[static_cast<std::size_t>(t.held_reader)].hold_fd = hold->read_end.get();
        t.producers[0].milestone_fd = hold->write_end.get();
        t.producers[0].milestone_at = t.hold_until;
    }

    std::vector<Child> readers;
    std::vector<Pipe> reader_reports;
    std::vector<Pipe> stops;
    for (auto& plan : t.readers) {
        reader_reports.push_back(Pipe::make());
        stops.push_back(Pipe::make());
        if (plan.stop_at_sequence == 0) {
            plan.stop_fd = stops.back().read_end.get();
        }
        const int report_fd = reader_reports.back().write_end.get();
        readers.push_back(Child::spawn([&files, &plan, max_length, report_fd] {
            return run_reader(*files, plan, max_length, report_fd);
        }));
        reader_reports.back().write_end.reset();
    }
    for (std::size_t i = 0; i < readers.size(); ++i) {
        INFO("reader " << i << " reports that it is attached");
        ReadOutcome why{};
        REQUIRE(receive_record<std::uint32_t>(reader_reports[i].read_end.get(), Deadline{}, &why));
    }

    std::vector<Child> producers;
    std::vector<Pipe> producer_reports;
    for (const auto& plan : t.producers) {
        producer_reports.push_back(Pipe::make());
        const int report_fd = producer_reports.back().write_end.get();
        producers.push_back(Child::spawn([&files, &plan, max_length, report_fd] {
            return run_producer(*files, plan, max_length, report_fd);
        }));
        producer_reports.back().write_end.reset();
    }
    hold.reset();

    Outcome out;
    for (std::size_t i = 0; i < producers.size(); ++i) {
        ReadOutcome why{};
        auto rep =
            receive_record<ProducerReport>(producer_reports[i].read_end.get(), Deadline{}, &why);
        INFO("producer " << i << ": report " << to_string(why));
        REQUIRE(rep);
        auto st = producers[i].wait();
        REQUIRE(st);
        INFO("producer " << i << " " << st->describe());
        REQUIRE(st->exited_ok());
        out.producers.push_back(*rep);
    }
    for (auto& s : stops) {
        const std::byte stop{1};
        REQUIRE(write_all(s.write_end.get(), {&stop, 1}));
    }
    for (std::size_t i = 0; i < readers.size(); ++i) {
        auto ledger = Ledger::receive(reader_reports[i].read_end.get());
        INFO("reader " << i << " sends its ledger");
        REQUIRE(ledger);
        auto st = readers[i].wait();
        REQUIRE(st);
        INFO("reader " << i << " " << st->describe());
        REQUIRE(st->exited_ok());
        out.readers.push_back(std::move(*ledger));
    }
    return out;
}

void check_producers_published(const Outcome& o, const std::vector<std::uint64_t>& totals) {
    REQUIRE(o.producers.size() == totals.size());
    for (std::size_t p = 0; p < totals.size(); ++p) {
        CHECK(o.producers[p].published == totals[p]);
    }
}

/// Queue: every message received exactly once across all consumers, intact; each consumer
/// saw each producer's messages in order.
void check_exactly_once(const Outcome& o, const std::vector<std::uint64_t>& totals) {
    check_producers_published(o, totals);
    std::vector<const Ledger::Received*> readers;
    for (std::size_t r = 0; r < o.readers.size(); ++r) {
        readers.push_back(&o.readers[r]);
        const auto& s = o.readers[r].summary;
        INFO("consumer " << r << ": " << describe(s));
        CHECK(s.sequence_backwards == 0); // positions are taken in increasing order
        CHECK(s.announced_lost == 0);
        for (std::size_t p = 0; p < totals.size(); ++p) {
            INFO("producer " << p);
            CHECK(o.readers[r].tallies[p].out_of_order == 0);
        }
    }
    const auto problems = exactly_once_problems(readers, totals);
    INFO(joined(problems));
    CHECK(problems.empty());
}

/// Broadcast block: every subscriber received every message once, intact, in order.
void check_every_subscriber_got_everything(const Outcome& o,
                                           const std::vector<std::uint64_t>& totals) {
    check_producers_published(o, totals);
    std::uint64_t all = 0;
    for (std::uint64_t t : totals) {
        all += t;
    }
    for (std::size_t r = 0; r < o.readers.size(); ++r) {
        const auto& s = o.readers[r].summary;
        INFO("subscriber " << r << ": " << describe(s));
        CHECK(s.corrupted == 0);
        CHECK(s.errors == 0);
        CHECK(s.received == all);
        CHECK(s.sequence_skipped == 0);
        CHECK(s.sequence_backwards == 0);
        CHECK(s.next_sequence == all);
        CHECK(s.announced_lost == 0);
        CHECK(s.library_lost == 0);
        for (std::size_t p = 0; p < totals.size(); ++p) {
            const ProducerTally& t = o.readers[r].tallies[p];
            INFO("producer " << p);
            CHECK(t.count == totals[p]);
            CHECK(t.next == totals[p]);
            CHECK(t.skipped == 0);
            CHECK(t.out_of_order == 0);
            CHECK(t.sum == sum_below(totals[p]));
            CHECK(t.xor_all == xor_below(totals[p]));
        }
    }
}

/// Broadcast drop, one publisher: every sequence number below `total` was received intact
/// or announced lost, and the announcements add up to Subscriber::lost().
void check_loss_accounted(const Outcome& o, std::uint64_t total) {
    check_producers_published(o, {total});
    for (std::size_t r = 0; r < o.readers.size(); ++r) {
        const auto& s = o.readers[r].summary;
        const ProducerTally& t = o.readers[r].tallies[0];
        INFO("subscriber " << r << ": " << describe(s));
        CHECK(s.corrupted == 0); // no torn message was ever accepted
        CHECK(s.errors == 0);
        CHECK(s.duplicates == 0);
        CHECK(s.sequence_backwards == 0);
        CHECK(s.loss_mismatches == 0); // each gap was announced by exactly its size
        CHECK(s.next_sequence == total);
        CHECK(s.received + s.sequence_skipped + s.discarded == total);
        CHECK(s.announced_lost == s.sequence_skipped + s.discarded);
        CHECK(s.library_lost == s.announced_lost);
        CHECK(t.count == s.received);
        CHECK(t.out_of_order == 0);
        CHECK(t.skipped == s.sequence_skipped + s.discarded); // one producer: counter = seq
    }
}

ReaderPlan queue_reader(ReadForm form, const std::vector<std::uint64_t>& totals, bool until_told) {
    ReaderPlan r;
    r.form = form;
    r.totals = totals;
    r.bitmaps = true;
    if (!until_told) {
        for (std::uint64_t t : totals) {
            r.stop_at_sequence += t; // a single consumer sees every position
        }
    }
    return r;
}

ReaderPlan broadcast_reader(ReadForm form, const std::vector<std::uint64_t>& totals) {
    ReaderPlan r;
    r.form = form;
    r.totals = totals;
    for (std::uint64_t t : totals) {
        r.stop_at_sequence += t;
    }
    return r;
}

ProducerPlan producer(std::uint32_t id, std::uint64_t count, WriteForm form,
                      WaitMode wait = WaitMode::adaptive) {
    ProducerPlan p;
    p.id = id;
    p.count = count;
    p.form = form;
    p.options.wait = wait;
    return p;
}

} // namespace

TEST_CASE("an SPSC queue between two processes delivers every message once, intact, in order") {
    Traffic t;
    t.spec = spec("mp-spsc", ChannelKind::queue, kSlotSize, kSlotCount, 1, 1);
    t.producers = {producer(0, scaled(12'000'000), WriteForm::batch)};
    const auto totals = totals_of(t.producers);
    t.readers = {queue_reader(ReadForm::batch, totals, false)};
    const Outcome o = run_traffic(t);
    check_exactly_once(o, totals);
    CHECK(o.readers[0].summary.sequence_skipped == 0); // one consumer sees every position
}

TEST_CASE("an MPSC queue fed by two processes delivers every message once to its consumer") {
    Traffic t;
    t.spec = spec("mp-mpsc", ChannelKind::queue, kSlotSize, kSlotCount, 2, 1);
    t.producers = {producer(0, scaled(6'000'000), WriteForm::copy),
                   producer(1, scaled(6'000'000), WriteForm::single, WaitMode::blocking)};
    const auto totals = totals_of(t.producers);
    t.readers = {queue_reader(ReadForm::copy, totals, false)};
    t.readers[0].options.wait = WaitMode::adaptive;
    const Outcome o = run_traffic(t);
    check_exactly_once(o, totals);
    CHECK(o.readers[0].summary.sequence_skipped == 0);
}

TEST_CASE("an SPMC queue shares every message between two consumer processes exactly once") {
    Traffic t;
    t.spec = spec("mp-spmc", ChannelKind::queue, kSlotSize, kSlotCount, 1, 2);
    t.producers = {producer(0, scaled(12'000'000), WriteForm::single)};
    const auto totals = totals_of(t.producers);
    t.readers = {queue_reader(ReadForm::batch, totals, true),
                 queue_reader(ReadForm::copy, totals, true)};
    check_exactly_once(run_traffic(t), totals);
}

TEST_CASE("an MPMC queue between four processes delivers every message exactly once") {
    Traffic t;
    t.spec = spec("mp-mpmc", ChannelKind::queue, kSlotSize, kSlotCount, 2, 2);
    t.producers = {producer(0, scaled(6'000'000), WriteForm::batch),
                   producer(1, scaled(6'000'000), WriteForm::copy)};
    const auto totals = totals_of(t.producers);
    t.readers = {queue_reader(ReadForm::single, totals, true),
                 queue_reader(ReadForm::batch, totals, true)};
    check_exactly_once(run_traffic(t), totals);
}

TEST_CASE("a block broadcast from one process reaches each of three subscriber processes whole") {
    Traffic t;
    t.spec = spec("mp-bcast-1x3", ChannelKind::broadcast, kSlotSize, kSlotCount, 1, 3);
    t.producers = {producer(0, scaled(10'000'000), WriteForm::batch)};
    const auto totals = totals_of(t.producers);
    t.readers = {broadcast_reader(ReadForm::batch, totals),
                 broadcast_reader(ReadForm::copy, totals),
                 broadcast_reader(ReadForm::single, totals)};
    check_every_subscriber_got_everything(run_traffic(t), totals);
}

TEST_CASE("a block broadcast from two publisher processes reaches two subscribers whole") {
    Traffic t;
    t.spec = spec("mp-bcast-2x2", ChannelKind::broadcast, kSlotSize, kSlotCount, 2, 2);
    t.producers = {producer(0, scaled(5'000'000), WriteForm::copy),
                   producer(1, scaled(5'000'000), WriteForm::single)};
    const auto totals = totals_of(t.producers);
    t.readers = {broadcast_reader(ReadForm::batch, totals),
                 broadcast_reader(ReadForm::copy, totals)};
    check_every_subscriber_got_everything(run_traffic(t), totals);
}

TEST_CASE("a drop broadcast tells each subscriber process exactly how many messages it lost") {
    Traffic t;
    t.spec =
        spec("mp-bcast-drop", ChannelKind::broadcast, kSlotSize, kSlotCount, 1, 2, Overflow::drop);
    const std::uint64_t total = scaled(10'000'000, 64 * kSlotCount);
    t.producers = {producer(0, total, WriteForm::batch)};
    const auto totals = totals_of(t.producers);
    // A fast zero-copy reader (copy out, release, then verify) and a slow copying one that
    // starts only when the publisher is four rings ahead, then does extra work per message.
    ReaderPlan fast = broadcast_reader(ReadForm::batch, totals);
    fast.copy_then_release = true;
    ReaderPlan slow = broadcast_reader(ReadForm::copy, totals);
    slow.slow_rounds = 64;
    t.readers = {fast, slow};
    t.held_reader = 1;
    t.hold_until = 4 * kSlotCount;
    const Outcome o = run_traffic(t);
    check_loss_accounted(o, total);
    INFO("slow subscriber: " << describe(o.readers[1].summary));
    // It started four rings behind: at least three rings were overwritten before it read.
    CHECK(o.readers[1].summary.announced_lost >= 3 * kSlotCount);
}

// The reduced case of what the drop test above found: release() said Errc::lost for a batch
// (so its data must be discarded) but counted only the overwritten messages, leaving the
// rest of the batch neither delivered nor counted.
TEST_CASE("a drop-policy batch overwritten in part is discarded whole and counted whole as lost") {
    auto files = create_channel(
        spec("torn-batch", ChannelKind::broadcast, kSlotSize, 4, 1, 1, Overflow::drop));
    REQUIRE(files);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(pub);
    REQUIRE(sub);
    std::vector<std::byte> buf(kSlotSize);
    auto publish = [&](std::uint64_t counter) {
        const std::size_t len = write_message(buf, 0, counter, kSlotSize);
        REQUIRE(pub->try_send({buf.data(), len}));
    };
    for (std::uint64_t c = 0; c < 4; ++c) {
        publish(c);
    }
    auto batch = sub->try_receive(4);
    REQUIRE(batch);
    REQUIRE(batch->size() == 4);
    publish(4); // overwrites message 0 while the batch is held; 1..3 are untouched
    auto rel = sub->release(*batch);
    REQUIRE(rel.code() == Errc::lost);
    INFO(rel.error().message());
    CHECK(rel.error().detail.find("1 of 4") != std::string::npos);
    // The reader had to throw away all four: all four are lost to it.
    CHECK(sub->lost() == 4);
    auto next = sub->try_receive_copy(buf);
    REQUIRE(next);
    CHECK(next->sequence == 4);
    CHECK(next->lost_before == 0); // already reported by release()
    const std::uint64_t delivered = 1;
    CHECK(delivered + sub->lost() == 5); // every sequence 0..4 delivered or counted lost
}
