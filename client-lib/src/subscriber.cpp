// Subscriber: the reading side of every channel kind (a consumer, on a queue).
//
//  - spsc: queue with one producer and one consumer, in <shmbus/detail/spsc_ring.hpp>, whose
//    functions the inline path of endpoint.hpp and this file both call. What is left here is
//    what the inline path hands over: a slot that is not ready and does not look empty (read
//    the producer's `head` to tell an empty ring from a damaged state), skipping a damaged
//    message, and waking a producer that sleeps.
//  - mpmc: a message is taken by one CAS on its claim state, committed(p) -> reading(p, me),
//    then the shared dequeue position is advanced by CAS (by us or by whoever finds it
//    lagging); releasing stores free(p + slot_count). A dead consumer's taken messages are
//    turned into committed(p, redeliver) by the supervisor and picked up here again.
//  - broadcast: each subscriber has its own cursor in its subscriber-table entry. A message
//    is ready when the slot's state is committed(cursor). A state from a later lap means we
//    were overrun (drop policy): we count exactly the positions we skip. The state is
//    re-read after reading (seqlock) so torn data is never passed off as a message.
//
// Every length and index read from the segment is checked before it is used; a bad message
// is skipped, counted in `corrupted`, and reported once as Errc::corrupted. What this file
// asserts (SHMBUS_ASSERT) is only its own bookkeeping.
//
// Memory ordering: the SPSC pairs are listed once in spsc_ring.hpp ([slot], [room], [head],
// [sleep]); waking is wake_sleepers()'s handshake (endpoint_table.hpp); the other
// algorithms' pairs are said at each site below.
//
// Thread-safety: one thread at a time per Subscriber. At most one batch outstanding.
#include <shmbus/endpoint.hpp>

#include "assert.hpp"
#include "endpoint_hooks.hpp"
#include "endpoint_waiting.hpp"
#include "shm/endpoint_table.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <unistd.h>

namespace shmbus {

using namespace detail;

namespace {
constexpr int kMaxAttempts = 1 << 16;
} // namespace

struct Subscriber::Impl : EndpointCore {

    // In `port` (EndpointCore): pos, the next position to read (spsc) or the cursor
    // (broadcast); the outstanding batch.
    std::uint64_t lost_total{0};
    std::uint64_t lost_pending{0}; // lost since the last message handed out
    // Peer events and the wait handle. Declared last: its relay stops before the rest goes.
    EndpointWaiting waiting;

    ~Impl() {
        waiting.relay.reset(); // stop reading the segment before we leave the table
        if (ch.control == nullptr || getpid() != attached_by) {
            return;
        }
        if (algo == Algorithm::mpmc) {
            // Messages we took and never released go back to the other consumers.
            redeliver_taken(ch, owner);
        }
        withdraw_sleeper(ch.control->data_sleepers, ch.subscribers[index]);
        release_endpoint(ch.subscribers[index]);
        wake_sleepers(space_wait(ch.control)); // a block publisher may be waiting for us
        if (on_detach) {
            on_detach();
        }
    }

    EndpointRecord& record() const noexcept { return ch.subscribers[index]; }

    /// The length word of `pos`'s slot: untrusted. relaxed: read after the acquire of the
    /// slot's state that made the message ours (or, broadcast, seqlock-checked after).
    std::uint64_t length_of(std::uint64_t pos) const noexcept {
        return atom(ch.slot(pos)->length).load(std::memory_order_relaxed);
    }

    [[gnu::cold, gnu::noinline]] Error bad_length(std::uint64_t pos, std::uint64_t len) const {
        return corrupted("message " + std::to_string(pos) + ": length " + std::to_string(len) +
                         " exceeds the slot size " + std::to_string(ch.geo.slot_size) +
                         "; the message was skipped");
    }

    /// SPSC: frees `count` slots from our position for the producer and wakes it if it
    /// sleeps for room.
    void consume_spsc(std::size_t count) noexcept {
        port.consume(count);
        wake_sleepers(peer_wait(*this, Role::subscriber)); // [sleep]
    }

    /// Broadcast: publishes our cursor in our entry and wakes writers that wait for room.
    void publish_cursor(std::uint64_t pos) noexcept {
        SHMBUS_ASSERT(algo == Algorithm::broadcast, "only a broadcast subscriber has a cursor");
        if (drop) {
            // Nobody waits for a drop-policy subscriber; the cursor is for tools only, which
            // read it relaxed (the release is kept from the block case; nothing pairs with it).
            atom(record().cursor).store(pos, std::memory_order_release);
            return;
        }
        // release: our reads of the slots happen-before the block publisher's reclaim of
        // them (the seq_cst loads of slowest_cursor(), which acquire). wake_sleepers() below
        // orders it before the waiter check.
        atom(record().cursor).store(pos, std::memory_order_release);
        wake_sleepers(peer_wait(*this, Role::subscriber));
    }

    void count_lost(std::uint64_t n) noexcept {
        lost_total += n;
        lost_pending += n;
        // relaxed: statistics for tools.
        atom(record().lost).store(lost_total, std::memory_order_relaxed);
        atom(ch.control->dropped).fetch_add(n, std::memory_order_relaxed);
    }

    // ---- spsc ----
    /// Whether the producer has announced position `pos` (its head is past it, within a
    /// ring): the producer marks states before it stores head, so a slot at such a position
    /// that is not committed is damaged. acquire: [head].
    bool producer_announced(std::uint64_t pos, std::uint64_t& h) const noexcept {
        h = atom(*port.head).load(std::memory_order_acquire);
        return h > pos && h - pos <= cap;
    }

    [[gnu::always_inline]] Result<std::size_t> take_spsc(std::size_t max_count) noexcept {
        const std::size_t n = port.ready(max_count);
        if (n != 0) [[likely]] {
            port.pending_first = port.pos;
            return n;
        }
        // Nothing good at our position. Empty, unless the slot holds a committed message too
        // long for it, or the producer has announced positions past it.
        std::uint64_t h = 0;
        if (!producer_announced(port.pos, h) && !port.is_committed(port.pos)) [[likely]] {
            return make_error(Errc::would_block);
        }
        return spsc_anomaly(max_count);
    }

    /// take_spsc() found no message at our position although the slot or head says there is
    /// one.
    [[gnu::cold, gnu::noinline]] Result<std::size_t> spsc_anomaly(std::size_t max_count) noexcept {
        if (port.is_committed(port.pos)) {
            const std::uint64_t len = length_of(port.pos);
            if (len > ch.geo.slot_size) {
                consume_spsc(1);
                return bad_length(port.pos - 1, len);
            }
            return take_spsc(max_count); // committed meanwhile
        }
        std::uint64_t h = 0;
        if (!producer_announced(port.pos, h)) {
            return make_error(Errc::would_block); // both looked again and now agree: empty
        }
        consume_spsc(1);
        return corrupted("state of slot " + std::to_string((port.pos - 1) & (cap - 1)) +
                         " does not mark message " + std::to_string(port.pos - 1) +
                         " committed although the producer is at " + std::to_string(h) +
                         "; the message was skipped");
    }

    // ---- mpmc ----
    /// Takes one message that a dead consumer left behind, if there is any.
    Result<std::size_t> take_redelivered() noexcept {
        for (std::uint64_t i = 0; i < cap; ++i) {
            std::uint64_t& w = ch.cells[i];
            // acquire: pairs with the release half of the CAS that returned it (the
            // supervisor's rewrite_states(), or copy_one()); it only selects, the CAS decides.
            std::uint64_t s = atom(w).load(std::memory_order_acquire);
            if (state_phase(s) != SlotPhase::committed || state_owner(s) != kOwnerRedeliver) {
                continue;
            }
            const std::uint64_t pos = state_pos(s);
            // acq_rel: take it; pairs with the supervisor's CAS that returned it.
            if (atom(w).compare_exchange_strong(s, make_state(pos, SlotPhase::reading, owner),
                                                std::memory_order_acq_rel)) {
                // relaxed: a hint only; the cells are the truth (see below).
                atom(ch.control->redeliver_pending).fetch_sub(1, std::memory_order_relaxed);
                // The 48-bit position addresses the same slot; sequence numbers of redelivered
                // messages are reported modulo 2^48.
                const std::uint64_t len = length_of(pos);
                if (len > ch.geo.slot_size) {
                    release_cell(pos);
                    return bad_length(pos, len);
                }
                port.pending_first = pos;
                return std::size_t{1};
            }
        }
        // Found none: a count not yet matched by a visible cell belongs to a message being
        // returned or taken right now. Never reset it: a reset here could erase the count of
        // a message returned behind this scan, which nobody would then look for again. The
        // count is exact (each return adds one after its CAS, each take subtracts one after
        // its CAS), so it comes back to zero by itself.
        return std::size_t{0};
    }

    void release_cell(std::uint64_t pos) noexcept {
        // release: our reads of the slot happen-before a producer's claim of the next lap
        // (the acquire half of its CAS in reserve_claimed()).
        atom(ch.cell(pos)).store(make_state(pos + cap, SlotPhase::free), std::memory_order_release);
    }

    Result<std::size_t> take_mpmc(std::size_t max_count) noexcept {
        // relaxed: a hint whether to scan; take_redelivered()'s acquire loads decide.
        if (atom(ch.control->redeliver_pending).load(std::memory_order_relaxed) != 0) {
            auto r = take_redelivered();
            if (!r || *r != 0) {
                return r;
            }
        }
        std::uint64_t& dq = ch.control->consumer_pos;
        // The first take starts where the dequeue position says (acquire: pairs with the
        // other consumers' release advance of it) and walks past the slots other consumers
        // have taken (`cursor`), reading their states only, where it used to help the
        // dequeue position past each of them with a CAS on that shared line. Each take then
        // moves the position past its slot (advance_index()).
        std::uint64_t seen_dq = atom(dq).load(std::memory_order_acquire);
        std::uint64_t cursor = seen_dq;
        std::size_t got = 0;
        for (int attempt = 0; attempt < kMaxAttempts && got < max_count; ++attempt) {
            const std::uint64_t p = got == 0 ? cursor : port.pending_first + got;
            std::uint64_t& word = ch.cell(p);
            // acquire: pairs with the producer's release in finish() (committed) or another
            // consumer's release_cell(); it only selects, the CAS below decides.
            std::uint64_t s = atom(word).load(std::memory_order_acquire);
            const std::int64_t d = state_distance(s, p);
            const SlotPhase phase = state_phase(s);
            if (d == 0 && phase == SlotPhase::committed) {
                const std::uint32_t tag = state_owner(s);
                // acq_rel: the acquire half pairs with the producer's release in finish(), so
                // the slot's bytes are complete; the release half with a supervisor that
                // returns the message if we die (rewrite_states()).
                if (!atom(word).compare_exchange_strong(s, make_state(p, SlotPhase::reading, owner),
                                                        std::memory_order_acq_rel,
                                                        std::memory_order_relaxed)) {
                    if (got != 0) {
                        break; // another consumer took our next position: the batch ends
                    }
                    continue; // look at it again: taken, it is passed over below
                }
                const std::uint64_t len = length_of(p);
                if (tag == kOwnerAbandoned || len > ch.geo.slot_size) {
                    // Abandoned by a dead producer (already counted), or corrupt: skip it,
                    // and move the dequeue position past it now.
                    release_cell(p);
                    advance_index(dq, seen_dq, p + 1);
                    wake_sleepers(peer_wait(*this, Role::subscriber));
                    if (tag != kOwnerAbandoned) {
                        if (got != 0) {
                            break;
                        }
                        return bad_length(p, len);
                    }
                    if (got != 0) {
                        break;
                    }
                    cursor = p + 1;
                    continue;
                }
                if (got == 0) {
                    port.pending_first = p;
                }
                advance_index(dq, seen_dq, p + 1);
                seen_dq = p + 1;
                ++got;
                continue;
            }
            if (got != 0) {
                break; // our next position is taken, or not committed yet
            }
            if ((d == 0 && phase == SlotPhase::reading) ||
                (d == static_cast<std::int64_t>(cap) && phase == SlotPhase::free)) {
                ++cursor; // taken by another consumer, or taken and released: pass over it
                continue;
            }
            if (d == 0 || d == -static_cast<std::int64_t>(cap)) {
                break; // not committed yet (free or being written)
            }
            // A state from no lap we can be at: damaged, unless the dequeue position moved
            // past it (acquire, as at the top) and we merely read a stale one.
            const std::uint64_t now = atom(dq).load(std::memory_order_acquire);
            if (now <= p) {
                return corrupted("claim state of slot " + std::to_string(p & (cap - 1)) +
                                 " refers to position " + std::to_string(state_pos(s)) +
                                 " while the consumers are at " + std::to_string(p));
            }
            cursor = seen_dq = now;
        }
        return got;
    }

    // ---- broadcast ----
    Result<std::size_t> take_broadcast(std::size_t max_count) noexcept {
        const auto icap = static_cast<std::int64_t>(cap);
        std::size_t got = 0;
        for (int attempt = 0; attempt < kMaxAttempts && got < max_count; ++attempt) {
            const std::uint64_t p = port.pos + got;
            // acquire: pairs with the publisher's release of committed(p).
            const std::uint64_t s = atom(ch.slot(p)->state).load(std::memory_order_acquire);
            const std::int64_t d = state_distance(s, p);
            const SlotPhase phase = state_phase(s);
            if (d == 0 && phase == SlotPhase::committed) {
                const std::uint64_t len = length_of(p);
                const std::uint32_t tag = state_owner(s);
                if (drop && len > ch.geo.slot_size && tag != kOwnerGap && overwritten(p, 1) != 0) {
                    // A publisher lapped us between the state and the length (it marks the
                    // length of a slot it claims unset): an overrun, not damage, which the
                    // next round counts as lost.
                    if (got != 0) {
                        break;
                    }
                    continue;
                }
                if (tag == kOwnerAbandoned || tag == kOwnerGap || len > ch.geo.slot_size) {
                    if (got != 0) {
                        break; // hand out what we have; deal with this one next call
                    }
                    if (tag == kOwnerGap && drop && state_changed(p, s)) {
                        continue; // lapped while we read the count: the overrun counts it
                    }
                    ++port.pos;
                    publish_cursor(port.pos);
                    if (tag == kOwnerGap) {
                        // Messages lost upstream (Publisher::record_gap()); the count is
                        // untrusted, so it is bounded as record_gap() bounds it.
                        count_lost(std::min(len, std::uint64_t{1} << 47));
                        continue;
                    }
                    if (tag != kOwnerAbandoned) {
                        return bad_length(p, len);
                    }
                    continue;
                }
                ++got;
                continue;
            }
            if ((d == 0 && phase != SlotPhase::committed) || d == -icap) {
                break; // not published yet
            }
            if (d > 0 && got == 0) {
                // Overrun: the slot already holds a later lap. Everything from `tail` up to
                // the oldest position still in the ring is lost. acquire: pairs with the
                // claimers' release CAS of head.
                const std::uint64_t h = atom(ch.payload->head).load(std::memory_order_acquire);
                std::uint64_t resume = h > cap ? h - cap : 0;
                if (resume <= port.pos) {
                    resume = port.pos + 1;
                }
                if (resume - port.pos > (std::uint64_t{1} << 47)) {
                    return corrupted("publish index " + std::to_string(h) +
                                     " is far ahead of cursor " + std::to_string(port.pos));
                }
                count_lost(resume - port.pos);
                port.pos = resume;
                publish_cursor(port.pos);
                continue;
            }
            if (got != 0) {
                break;
            }
            ++port.pos;
            publish_cursor(port.pos);
            return corrupted("state of slot " + std::to_string(p & (cap - 1)) +
                             " refers to position " + std::to_string(state_pos(s)) +
                             " while this subscriber reads " + std::to_string(p) +
                             "; the message was skipped");
        }
        port.pending_first = port.pos;
        return got;
    }

    Result<ReadBatch> try_receive(std::size_t max_count) noexcept {
        if (refused()) [[unlikely]] {
            return refusal();
        }
        if (max_count == 0) {
            return misuse("try_receive: max_count must be at least 1");
        }
        if (port.pending) {
            return misuse("try_receive: a received batch is outstanding; release it first");
        }
        Result<std::size_t> got = algo == Algorithm::spsc   ? take_spsc(max_count)
                                  : algo == Algorithm::mpmc ? take_mpmc(max_count)
                                                            : take_broadcast(max_count);
        // A loss counted now (a gap record) goes out with the next batch, which the inline
        // path must then leave to us.
        port.defer_to_library = lost_pending != 0;
        if (!got) {
            return got.take_error();
        }
        if (*got == 0) {
            return make_error(Errc::would_block);
        }
        SHMBUS_ASSERT(*got <= max_count && *got <= cap,
                      "a receive hands out at most max_count messages of the ring");
        port.defer_to_library = false; // the loss goes out with this batch
        port.begin_batch(port.pending_first, *got);
        return ReadBatch{port, port.pending_first, port.pending_count,
                         std::exchange(lost_pending, 0)};
    }

    /// Broadcast drop: how many of the `count` positions from `first` no longer hold their
    /// message (a publisher lapped us). The seqlock check: called after the slots were read;
    /// seqlock_read_fence() orders those reads before the re-read of the states. It pairs
    /// with the publisher's claim CAS (acq_rel, reserve_claimed()), after which it rewrites
    /// the slot: a rewrite we may have seen implies a state we see changed.
    std::size_t overwritten(std::uint64_t first, std::size_t count) const noexcept {
        seqlock_read_fence();
        std::size_t n = 0;
        for (std::size_t i = 0; i < count; ++i) {
            // relaxed: ordered by the fence above.
            if (atom(ch.slot(first + i)->state).load(std::memory_order_relaxed) !=
                make_state(first + i, SlotPhase::committed)) {
                ++n;
            }
        }
        return n;
    }

    /// Broadcast drop: whether slot `pos` no longer holds state `s` (the seqlock check of
    /// overwritten(), for a slot whose state is not a plain commit).
    bool state_changed(std::uint64_t pos, std::uint64_t s) const noexcept {
        seqlock_read_fence();
        // relaxed: ordered by the fence above.
        return atom(ch.slot(pos)->state).load(std::memory_order_relaxed) != s;
    }

    /// Whether message `pos`, handed out in place, may have been torn by a publisher.
    bool torn(std::uint64_t pos) const noexcept {
        return algo == Algorithm::broadcast && drop && overwritten(pos, 1) != 0;
    }

    Result<void> release(ReadBatch& b) noexcept {
        if (!port.is_outstanding(b.first_, b.count_)) {
            return misuse("release: this batch is not the outstanding one");
        }
        if (refused()) [[unlikely]] {
            // The batch is freed all the same, so that the endpoint's bookkeeping stays whole.
            (void)free_batch(b);
            return refusal();
        }
        return free_batch(b);
    }

    /// release()'s work on the outstanding batch `b`.
    Result<void> free_batch(ReadBatch& b) noexcept {
        port.end_batch();
        const std::size_t n = b.count_;
        b.count_ = 0;
        switch (algo) {
        case Algorithm::spsc:
            consume_spsc(n);
            return ok();
        case Algorithm::mpmc:
            for (std::size_t i = 0; i < n; ++i) {
                release_cell(b.first_ + i);
            }
            wake_sleepers(peer_wait(*this, Role::subscriber));
            return ok();
        case Algorithm::broadcast: {
            const std::size_t lapped = drop ? overwritten(b.first_, n) : 0;
            port.pos += n;
            publish_cursor(port.pos);
            if (lapped != 0) {
                // The caller must discard the whole batch (it cannot tell which messages were
                // torn), so the whole batch is what it lost.
                count_lost(n);
                lost_pending -= n; // reported here, not again with the next batch
                return make_error(Errc::lost, "channel '" + ch.info.name +
                                                  "': " + std::to_string(lapped) + " of " +
                                                  std::to_string(n) +
                                                  " messages were overwritten while being read; "
                                                  "the batch is discarded and counted as lost");
            }
            return ok();
        }
        }
        return ok();
    }

    /// True when try_receive() may find something: wait_until()'s condition. Its loads are
    /// acquire, pairing with the stores a writer makes before waking us (wake_sleepers()'s
    /// handshake).
    bool data_hint() const noexcept { return data_hint_at(port.pos); }

    /// data_hint() for a reader at `pos` (spsc, broadcast). Reads only shared memory and the
    /// constants of the attach, so the wait relay's thread may call it.
    bool data_hint_at(std::uint64_t pos) const noexcept {
        switch (algo) {
        case Algorithm::spsc:
            return port.is_committed(pos); // acquire: [slot]
        case Algorithm::mpmc: {
            // acquire: pairs with the release increments of redeliver_taken() and copy_one().
            if (atom(ch.control->redeliver_pending).load(std::memory_order_acquire) != 0) {
                return true;
            }
            // acquire: pairs with the consumers' release CAS of the dequeue position, and the
            // producer's release in finish().
            const std::uint64_t p = atom(ch.control->consumer_pos).load(std::memory_order_acquire);
            const std::uint64_t s = atom(ch.cell(p)).load(std::memory_order_acquire);
            const std::int64_t d = state_distance(s, p);
            const SlotPhase phase = state_phase(s);
            const bool unwritten =
                d == 0 && (phase == SlotPhase::free || phase == SlotPhase::reserved);
            return !unwritten && d != -static_cast<std::int64_t>(cap);
        }
        case Algorithm::broadcast: {
            // acquire: pairs with the publisher's release in finish().
            const std::uint64_t s = atom(ch.slot(pos)->state).load(std::memory_order_acquire);
            const std::int64_t d = state_distance(s, pos);
            return !((d == 0 && state_phase(s) != SlotPhase::committed) ||
                     d == -static_cast<std::int64_t>(cap));
        }
        }
        return true;
    }

    /// What the wait relay watches now that we found nothing to do: messages past our
    /// position, and events when asked for. A writer wakes the relay through data_waiters.
    Watch watch_now() const noexcept {
        Watch w;
        w.channel = own_wait(*this, Role::subscriber);
        w.pos = port.pos;
        w.events = waiting.cursor.next;
        w.want_events = options.peer_events;
        w.local_events = waiting.local_pending(lost_total);
        return w;
    }

    bool ready(const Watch& w) const noexcept { return data_hint_at(w.pos) || events_ready(ch, w); }
};

Subscriber::Subscriber(std::unique_ptr<Impl> impl) noexcept
    : impl_{std::move(impl)}, port_{&impl_->port} {}
Subscriber::Subscriber(Subscriber&& other) noexcept
    : impl_{std::move(other.impl_)}, port_{std::exchange(other.port_, nullptr)} {}
Subscriber& Subscriber::operator=(Subscriber&& other) noexcept {
    impl_ = std::move(other.impl_);
    port_ = std::exchange(other.port_, nullptr);
    return *this;
}
Subscriber::~Subscriber() = default;

void EndpointHooks::set_on_detach(Subscriber& endpoint, std::function<void()> hook) noexcept {
    endpoint.impl_->on_detach = std::move(hook);
}

std::shared_ptr<EndpointLink> EndpointHooks::link(Subscriber& endpoint) {
    return link_of(*endpoint.impl_);
}

Result<Subscriber> Subscriber::attach(ChannelFiles files, const EndpointOptions& options) noexcept {
    auto impl = std::make_unique<Impl>();
    if (auto opened = open_endpoint(*impl, files, Role::subscriber, options); !opened) {
        return opened.take_error();
    }
    if (!is_ring_kind(impl->ch.info.kind)) {
        return wrong_kind_for_ring(impl->ch.info);
    }
    Impl& s = *impl;
    s.waiting.start(s);
    if (s.algo == Algorithm::broadcast) {
        // Join at the newest message. Announce a cursor first, then re-read the claim index:
        // the seq_cst pair with the publishers' slowest_cursor() scan guarantees that either
        // they see us, or we start beyond anything they could overwrite unseen. This is the
        // one comment on that handshake; slowest_cursor()'s seq_cst loads point here. All
        // four accesses are seq_cst, so they and the scan's loads are in one total order. The
        // sole publisher of a block channel stores head (the published index, release) and
        // takes it with a seq_cst read-modify-write before its scan (Publisher's
        // slowest_reader()): if its scan misses our cursor, that RMW precedes our second load
        // of head in the total order, which then sees every head it stored before the scan,
        // and it overwrites nothing at or beyond that.
        std::uint64_t& cursor = s.record().cursor;
        atom(cursor).store(atom(s.ch.payload->head).load(std::memory_order_seq_cst),
                           std::memory_order_seq_cst);
        s.port.pos = atom(s.ch.payload->head).load(std::memory_order_seq_cst);
        atom(cursor).store(s.port.pos, std::memory_order_seq_cst);
        atom(s.record().lost).store(0, std::memory_order_relaxed); // a statistic
        if (!s.drop) {
            // Between claiming the entry and the stores above, a block publisher may have
            // read the cursor the entry's previous owner left (or 0) and gone to sleep for
            // lack of room: our real cursor just gave it room, so wake it.
            wake_sleepers(space_wait(s.ch.control));
            // Under the block policy no publisher writes a slot we have not passed, so
            // reading is the SPSC consumer's work: the inline path, with our cursor as the
            // consumer position it releases to ([room] pairs with the publishers' scans).
            // Loss (drop policy) needs the library's check at every release.
            s.port.consumer_pos = &cursor;
            s.port.spsc = true;
        }
    } else if (s.algo == Algorithm::spsc) {
        // acquire: the position our predecessor left (its consume(), a [room] release).
        const std::uint64_t t = atom(*s.port.consumer_pos).load(std::memory_order_acquire);
        // acquire: [head].
        const std::uint64_t h = atom(*s.port.head).load(std::memory_order_acquire);
        // t may run ahead of h by slots a dead producer committed but never announced.
        if (t > h + s.cap || (h > t && h - t > s.cap)) {
            return s.corrupted("consumer_pos " + std::to_string(t) + " and publish index " +
                               std::to_string(h) + " are inconsistent");
        }
        s.port.pos = t;
        s.port.spsc = true;
    }
    return Subscriber{std::move(impl)};
}

Result<ReadBatch> Subscriber::receive_slow(std::size_t max_count) noexcept {
    auto r = impl_->try_receive(max_count);
    if (!r && impl_->waiting.relay && r.code() == Errc::would_block) [[unlikely]] {
        impl_->waiting.rearm(impl_->watch_now());
    }
    return r;
}

std::size_t Subscriber::events(std::span<PeerEvent> out) noexcept {
    Impl& s = *impl_;
    return s.waiting.read(s, Role::subscriber, s.lost_total, out, s.watch_now());
}

Result<int> Subscriber::wait_handle() noexcept {
    Impl& s = *impl_;
    auto fd = s.waiting.handle([&s](const Watch& w) { return s.ready(w); }, s.watch_now());
    if (fd) {
        // The inline SPSC path answers most empty polls without calling us, and calling us is
        // how the handle is re-armed: with a handle, every call takes the library's path (the
        // same algorithm, out of line), so the inline code stays as it is for everyone else.
        atom(s.port.spsc).store(false, std::memory_order_relaxed); // a refusal may clear it too
    }
    return fd;
}

Result<ReadBatch> Subscriber::receive(std::size_t max_count,
                                      std::chrono::nanoseconds timeout) noexcept {
    auto r = try_receive(max_count);
    if (r || r.code() != Errc::would_block) {
        return r; // a message at once: no clock read for the deadline
    }
    const Deadline deadline = Deadline::after(timeout);
    for (;; r = try_receive(max_count)) {
        if (r || r.code() != Errc::would_block) {
            return r;
        }
        // The hint can say "ready" while the attempt says "would block" (a damaged segment,
        // a slot held by a dead writer): the deadline is checked here, not only while waiting.
        if (deadline.passed() ||
            !wait_until([this] { return impl_->refused() || impl_->data_hint(); },
                        own_wait(*impl_, Role::subscriber), impl_->options.wait,
                        impl_->options.spin_iterations, deadline)) {
            return make_error(Errc::timed_out, "channel '" + impl_->ch.info.name +
                                                   "': no message within the timeout");
        }
    }
}

Result<void> Subscriber::release_slow(ReadBatch& batch) noexcept {
    return impl_->release(batch);
}

void Subscriber::wake_writers() noexcept {
    wake_sleepers(peer_wait(*impl_, Role::subscriber));
}

namespace {
/// Copies the one message of `r` into `buffer` and releases it; loops over torn reads.
template <typename Take>
Result<Received> copy_one(Subscriber& sub, Subscriber::Impl& impl, std::span<std::byte> buffer,
                          Take&& take) noexcept {
    std::uint64_t lost = 0;
    for (;;) {
        auto r = take();
        if (!r) {
            return r.take_error();
        }
        ReadBatch& b = *r;
        lost += b.lost_before();
        const Message m = b.message(0);
        const bool fits = m.data.size() <= buffer.size();
        // A length that does not fit may be a publisher's rewrite of a lapped slot (drop
        // policy): then it is not the message's, and release() below reports it lost.
        if (!fits && !impl.torn(m.sequence)) {
            // Keep the message for a larger buffer: give the batch back unreleased.
            impl.port.end_batch();
            if (impl.algo == Algorithm::mpmc) {
                std::uint64_t s = make_state(m.sequence, SlotPhase::reading, impl.owner);
                // Count it only if we returned it (a supervisor that reclaimed us may have
                // returned it already, and counted it then). acq_rel: as rewrite_states(),
                // whose returns this is one more of.
                if (atom(impl.ch.cell(m.sequence))
                        .compare_exchange_strong(
                            s, make_state(m.sequence, SlotPhase::committed, kOwnerRedeliver),
                            std::memory_order_acq_rel)) {
                    // release: as redeliver_taken()'s increment.
                    atom(impl.ch.control->redeliver_pending)
                        .fetch_add(1, std::memory_order_release);
                }
            }
            return make_error(Errc::message_too_large,
                              "channel '" + impl.ch.info.name + "': message " +
                                  std::to_string(m.sequence) + " has " +
                                  std::to_string(m.data.size()) + " bytes, the buffer only " +
                                  std::to_string(buffer.size()));
        }
        if (fits && !m.data.empty()) {
            std::memcpy(buffer.data(), m.data.data(), m.data.size());
        }
        auto rel = sub.release(b);
        if (rel) {
            SHMBUS_ASSERT(fits, "a message found torn is never released as intact");
            return Received{m.data.size(), m.sequence, lost};
        }
        if (rel.code() != Errc::lost) {
            return rel.take_error();
        }
        ++lost; // torn: overwritten while we copied it; read the next one
    }
}
} // namespace

Result<Received> Subscriber::try_receive_copy(std::span<std::byte> buffer) noexcept {
    return copy_one(*this, *impl_, buffer, [this] { return try_receive(1); });
}

Result<Received> Subscriber::receive_copy(std::span<std::byte> buffer,
                                          std::chrono::nanoseconds timeout) noexcept {
    const Deadline deadline = Deadline::after(timeout);
    return copy_one(*this, *impl_, buffer, [this, &deadline] {
        return receive(1, deadline.remaining().count() < 0 ? std::chrono::nanoseconds::max()
                                                           : deadline.remaining());
    });
}

std::uint64_t Subscriber::lost() const noexcept {
    return impl_->lost_total;
}
const ChannelInfo& Subscriber::info() const noexcept {
    return impl_->ch.info;
}
std::uint32_t Subscriber::endpoint_index() const noexcept {
    return impl_->index;
}

} // namespace shmbus
