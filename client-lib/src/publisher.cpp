// Publisher: the writing side of every channel kind.
//
// Three algorithms, chosen once at attach from the channel's shape:
//  - spsc: queue with one producer and one consumer, in <shmbus/detail/spsc_ring.hpp>, whose
//    functions the inline path of endpoint.hpp and this file both call. What is left here is
//    what the inline path hands over: re-reading the consumer's position when the cached
//    one says the ring is full (and checking it), recording a new ring depth, and the errors.
//  - mpmc: queue with several producers or consumers. A slot is claimed by one CAS on its
//    claim state in the control region (free(p) -> reserved(p, me)) and `head` is then
//    advanced by CAS, by the claimer or by any producer that finds it lagging. Committing is
//    reserved(p, me) -> committed(p). Because ownership is in the claim state, a third party
//    can abandon exactly the slots of a dead producer.
//  - broadcast: the claim state lives in the slot header in the payload (subscribers cannot
//    write it); a slot is claimable when it holds the previous lap's committed message and,
//    under the block policy, when every subscriber's cursor has passed it. The state doubles
//    as a seqlock: a subscriber that sees it change while reading knows the data was torn.
//    The sole publisher of a block channel (max_publishers 1) claims nothing: nobody else
//    writes the ring and no subscriber reads a slot it may write, so it runs the SPSC
//    algorithm, inline, with the slowest subscriber's cursor as the consumer position
//    (`sole_writer`).
//
// Every length and index read from the segment is untrusted: a bad one is an Errc::corrupted
// naming it. What this file asserts (SHMBUS_ASSERT) is only its own bookkeeping.
//
// Memory ordering: the SPSC pairs are listed once in spsc_ring.hpp ([slot], [room], [head],
// [sleep]); waking is wake_sleepers()'s handshake (endpoint_table.hpp); the claimed
// algorithms' pairs are said at each site below.
//
// Thread-safety: one thread at a time per Publisher. At most one batch outstanding.
#include <shmbus/endpoint.hpp>

#include "assert.hpp"
#include "endpoint_hooks.hpp"
#include "endpoint_waiting.hpp"
#include "shm/endpoint_table.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>

namespace shmbus {

using namespace detail;

namespace {
constexpr int kMaxClaimAttempts = 1 << 16;
// An MPMC publisher samples the ring depth for the high-water statistic once in this many
// positions (reserve_claimed()).
constexpr std::uint64_t kDepthSample = 64;

/// Frees what calloc() gave.
struct FreeWords {
    void operator()(std::uint64_t* p) const noexcept { std::free(p); }
};
} // namespace

struct Publisher::Impl : EndpointCore {

    // In `port` (EndpointCore): pos, the next position to write (spsc: only we write head);
    // cached_peer, the consumer_pos last seen (spsc); high_water, the largest depth reported;
    // the outstanding batch.
    std::uint64_t cached_min{0}; // broadcast block: last slowest-subscriber cursor seen
    // The bits of port.fitting, one per slot of the ring: calloc'd, so that the pages of a
    // large ring's map are touched only as far as batches reach.
    std::unique_ptr<std::uint64_t, FreeWords> fitting;
    // The sole publisher of a block broadcast channel: it runs the SPSC algorithm (see the
    // top of this file). Set at attach.
    bool sole_writer{false};

    /// Whether this publisher runs the SPSC algorithm: a queue's one producer, or the sole
    /// publisher of a block broadcast channel.
    [[nodiscard]] bool owns_ring() const noexcept { return algo == Algorithm::spsc || sole_writer; }
    // Peer events and the wait handle. Declared last: its relay stops before the rest goes.
    EndpointWaiting waiting;

    ~Impl() {
        waiting.relay.reset(); // stop reading the segment before we leave the table
        if (ch.control == nullptr || getpid() != attached_by) {
            return;
        }
        if (port.pending && !owns_ring()) {
            for (std::size_t i = 0; i < port.pending_count; ++i) {
                finish(port.pending_first + i, kOwnerAbandoned);
            }
            // relaxed: a statistic.
            atom(ch.control->abandoned).fetch_add(port.pending_count, std::memory_order_relaxed);
            wake_sleepers(data_wait(ch.control));
        }
        withdraw_sleeper(ch.control->space_sleepers, ch.publishers[index]);
        release_endpoint(ch.publishers[index]);
        if (on_detach) {
            on_detach();
        }
    }

    std::uint64_t& claim_word(std::uint64_t pos) const noexcept {
        return algo == Algorithm::broadcast ? ch.slot(pos)->state : ch.cell(pos);
    }

    /// reserved(pos, me) -> committed(pos, tag). False if someone reclaimed our slot.
    bool finish(std::uint64_t pos, std::uint32_t tag) noexcept {
        std::uint64_t expected = make_state(pos, SlotPhase::reserved, owner);
        // release: the slot's bytes and length happen-before a reader's acquire of the state
        // (take_mpmc()'s, take_broadcast()'s).
        return atom(claim_word(pos))
            .compare_exchange_strong(expected, make_state(pos, SlotPhase::committed, tag),
                                     std::memory_order_release, std::memory_order_relaxed);
    }

    /// Fetches, for writing, the first lines of the slot at `pos`: the one this publisher most
    /// likely fills next. A claimed commit is a compare-and-swap, which waits for every store
    /// before it, and the fill's stores go to lines a consumer read last, a lap ago: fetched
    /// now, while the caller does something else, they are at hand when the next commit comes
    /// (docs/benchmarks.md, "The next slot taken ahead"). At most 256 bytes: the hardware's
    /// own prefetcher follows the fill of a larger message.
    void take_next_slot_for_writing(std::uint64_t pos) const noexcept {
        const auto* first = reinterpret_cast<const char*>(ch.slot(pos));
        const std::size_t bytes = std::min<std::size_t>(ch.geo.stride, kTakenAheadBytes);
        for (std::size_t off = 0; off < bytes; off += kCacheLine) {
            prefetch_for_write(first + off);
        }
    }
    static constexpr std::size_t kTakenAheadBytes = 256;

    /// Publishes the reserved slot at `pos` as a gap record (Publisher::record_gap()): its
    /// state committed with the tag kOwnerGap. False if a supervisor reclaimed us meanwhile
    /// (claimed algorithm); the sole writer has no claim to lose.
    bool commit_gap(std::uint64_t pos) noexcept {
        if (!sole_writer) {
            return finish(pos, kOwnerGap);
        }
        // release: [slot] of spsc_ring.hpp, as publish() for the one slot.
        port.word(pos, port.state_offset)
            .store(make_state(pos, SlotPhase::committed, kOwnerGap), std::memory_order_release);
        port.pos = pos + 1;
        atom(*port.head).store(port.pos, std::memory_order_release); // [head]
        return true;
    }

    /// Records a ring depth in the channel's high-water statistic if it is a new maximum.
    /// The SPSC inline path reserves without coming here only below the recorded mark
    /// (DataPort::room_within_high_water()), which therefore never exceeds the capacity.
    void note_depth(std::uint64_t depth) noexcept {
        SHMBUS_ASSERT(depth <= cap, "a ring depth is at most the ring's capacity");
        if (depth > port.high_water) {
            port.high_water = depth;
            // relaxed: a statistic for tools.
            atom(ch.control->high_water).store(depth, std::memory_order_relaxed);
        }
    }

    /// Broadcast block: slowest active subscriber cursor, or `fallback` if none.
    std::uint64_t slowest_cursor(std::uint64_t fallback) const noexcept {
        std::uint64_t min = fallback;
        for (std::uint32_t i = 0; i < ch.geo.max_subscribers; ++i) {
            const EndpointRecord& r = ch.subscribers[i];
            // seq_cst, both loads: the publisher half of the join handshake whose subscriber
            // half (seq_cst stores of the cursor around a re-read of head) is in
            // Subscriber::attach(), which explains it.
            if (atom_load(r.state, std::memory_order_seq_cst) !=
                static_cast<std::uint32_t>(EndpointState::active)) {
                continue;
            }
            const std::uint64_t c = atom_load(r.cursor, std::memory_order_seq_cst);
            // A cursor ahead of the claim index is garbage (or a subscriber racing its own
            // join); it cannot hold us back.
            if (c < min) {
                min = c;
            }
        }
        return min;
    }

    [[gnu::cold, gnu::noinline]] Error consumer_outside(std::uint64_t t) const {
        return corrupted("consumer_pos " + std::to_string(t) + " is outside the ring [" +
                         std::to_string(port.pos > cap ? port.pos - cap : 0) + ", " +
                         std::to_string(port.pos) + "]");
    }

    [[gnu::cold, gnu::noinline]] Error too_large(std::uint64_t len) const {
        return make_error(Errc::message_too_large,
                          "channel '" + ch.info.name + "': message of " + std::to_string(len) +
                              " bytes does not fit its slot size of " +
                              std::to_string(ch.geo.slot_size) + " bytes (raise slot_size)");
    }

    /// The sole broadcast writer's consumer position: the slowest subscriber's cursor, or our
    /// own position without one. A cursor more than a ring behind belongs to a subscriber
    /// joining right now (it stores a stale head first, then the current one; see
    /// Subscriber::attach()): no room until it has stored the second, which wakes us.
    [[nodiscard]] std::optional<std::uint64_t> slowest_reader() const noexcept {
        // The publisher half of the join handshake of Subscriber::attach(). seq_cst
        // read-modify-write of head, its value unchanged (we are its only writer): it and the
        // scan's seq_cst loads are in the single total order with the joining subscriber's
        // seq_cst store of its cursor and its load of head, and it reads (so carries) the last
        // head we stored. If the scan misses that cursor, the subscriber's load of head comes
        // after this RMW in the order and reads this head or a later one. (A seq_cst fence
        // would do as well, but GCC's ThreadSanitizer does not support fences.)
        atom(*port.head).fetch_add(0, std::memory_order_seq_cst);
        const std::uint64_t t = slowest_cursor(port.pos);
        if (!port.consumer_pos_plausible(t)) {
            return std::nullopt;
        }
        return t;
    }

    /// The SPSC reservation the inline path left to us: the cached consumer position says
    /// the ring is full (re-read it), or the reservation reaches a depth to record.
    Result<std::size_t> reserve_spsc(std::size_t max_count) noexcept {
        if (port.depth_by_cache() == cap) {
            // Every slot we know to be free is handed out: look at the consumer again.
            std::uint64_t t = 0;
            if (sole_writer) {
                const auto slowest = slowest_reader();
                if (!slowest) {
                    return make_error(Errc::would_block);
                }
                t = *slowest;
            } else {
                t = port.load_consumer_pos();
                if (!port.consumer_pos_plausible(t)) {
                    return consumer_outside(t);
                }
            }
            port.cached_peer = t; // >= cached_peer: plausible, and pos == cached_peer + cap
            if (port.depth_by_cache() == cap) {
                return make_error(Errc::would_block);
            }
        }
        port.pending_first = port.pos;
        note_depth(port.depth_by_cache() + 1);
        return port.reservable(max_count);
    }

    /// Claims up to `max_count` consecutive positions (mpmc and broadcast): slot by slot, each
    /// by a CAS on its state, then `head` once past them all (advance_index()).
    Result<std::size_t> reserve_claimed(std::size_t max_count) noexcept {
        std::uint64_t& head_word = ch.payload->head;
        std::size_t got = 0;
        std::uint64_t seen_head = 0; // head as we read it before the first claim
        bool full = false;           // the slot after our claims still holds an unread message
        for (int attempt = 0; attempt < kMaxClaimAttempts && got < max_count; ++attempt) {
            // The first claim starts where head says (acquire: pairs with other claimers'
            // release advance of head, so we see their claims); the next ones follow ours.
            const std::uint64_t p =
                got == 0 ? (seen_head = atom(head_word).load(std::memory_order_acquire))
                         : port.pending_first + got;
            if (algo == Algorithm::broadcast && !drop && p - cached_min >= cap) {
                cached_min = slowest_cursor(p);
                if (p - cached_min >= cap) {
                    break; // the slowest subscriber has not released slot p - cap yet
                }
            }
            std::uint64_t& word = claim_word(p);
            // acquire: pairs with the release that last wrote the state (a consumer freeing
            // the cell, a publisher's commit); it only selects, the CAS below decides.
            std::uint64_t s = atom(word).load(std::memory_order_acquire);
            const std::int64_t d = state_distance(s, p);
            const SlotPhase phase = state_phase(s);
            const bool claimable =
                (d == 0 && phase == SlotPhase::free && state_owner(s) == 0) ||
                (algo == Algorithm::broadcast && d == -static_cast<std::int64_t>(cap) &&
                 phase == SlotPhase::committed);
            if (claimable) {
                // acq_rel on success: we own the slot. Acquire pairs with the consumer's
                // release that freed it (release_cell()) or the last commit; it also keeps our
                // rewrite of a broadcast slot after the state change that a reader's seqlock
                // check (Subscriber's release()) looks for.
                if (atom(word).compare_exchange_strong(s, make_state(p, SlotPhase::reserved, owner),
                                                       std::memory_order_acq_rel,
                                                       std::memory_order_relaxed)) {
                    if (got == 0) {
                        port.pending_first = p;
                    }
                    ++got;
                } else if (got != 0) {
                    break; // another publisher took our next position: the batch ends here
                }
                continue;
            }
            if (got != 0) {
                // Our next position is taken, or its slot still holds an unread message.
                full = d == -static_cast<std::int64_t>(cap);
                break;
            }
            if (d == 0 || (d > 0 && d % static_cast<std::int64_t>(cap) == 0)) {
                // Position p is already claimed (or long done): help head past it.
                advance_index(head_word, p, p + 1);
                continue;
            }
            if (d == -static_cast<std::int64_t>(cap)) {
                // The previous lap's message is still unread (queue) or still being written.
                // Re-read head (acquire, as at the top) to tell a full ring from a lost race.
                if (atom(head_word).load(std::memory_order_acquire) == p) {
                    full = true;
                    break;
                }
                continue;
            }
            // A state from no lap we can be at: damaged, unless head moved on (acquire, as at
            // the top) and we merely read a stale position.
            if (atom(head_word).load(std::memory_order_acquire) == p) {
                return corrupted("claim state of slot " + std::to_string(p & (cap - 1)) +
                                 " refers to position " + std::to_string(state_pos(s)) +
                                 " while the writers are at " + std::to_string(p));
            }
        }
        if (got != 0) {
            advance_index(head_word, seen_head, port.pending_first + got);
        }
        if (algo != Algorithm::broadcast && full) {
            note_depth(cap); // the high-water statistic is exact when the ring fills
        }
        if (got == 0) {
            return make_error(Errc::would_block);
        }
        // The depth for the statistic needs the consumers' position, the line they CAS at
        // every take: reading it at every reservation took that line from them each time. So
        // the depth is sampled when the claims cross a multiple of kDepthSample positions.
        const std::uint64_t h = port.pending_first + got;
        if (algo != Algorithm::broadcast && port.pending_first / kDepthSample != h / kDepthSample) {
            // relaxed: only for the high-water statistic; an implausible value is ignored.
            const std::uint64_t c = atom(ch.control->consumer_pos).load(std::memory_order_relaxed);
            if (h >= c && h - c <= cap) {
                note_depth(h - c);
            }
        }
        return got;
    }

    Result<WriteBatch> try_reserve(std::size_t max_count) noexcept {
        if (refused()) [[unlikely]] {
            return refusal();
        }
        if (max_count == 0) {
            return misuse("try_reserve: max_count must be at least 1");
        }
        if (port.pending) {
            return misuse(
                "try_reserve: a reserved batch is outstanding; commit or abandon it first");
        }
        auto got = owns_ring() ? reserve_spsc(max_count) : reserve_claimed(max_count);
        if (!got) {
            return got.take_error();
        }
        SHMBUS_ASSERT(*got >= 1 && *got <= max_count && *got <= cap,
                      "a reservation hands out between 1 and max_count slots of the ring");
        port.begin_write_batch(port.pending_first, *got);
        return WriteBatch{port, port.pending_first, port.pending_count};
    }

    [[gnu::cold, gnu::noinline]] Error unset_length(std::size_t i, const WriteBatch& b) const {
        return make_error(Errc::invalid_argument,
                          "channel '" + ch.info.name + "': commit: message " + std::to_string(i) +
                              " of the batch (sequence " + std::to_string(b.sequence(i)) +
                              ") has no length; call set_length() for every reserved slot");
    }

    Result<void> commit(WriteBatch& b) noexcept {
        if (!port.is_outstanding(b.first_, b.count_)) {
            return misuse("commit: this batch is not the outstanding reservation");
        }
        if (refused()) [[unlikely]] {
            abandon(b); // nobody serves the segment: nothing more is published on it
            return refusal();
        }
        if (const std::size_t i = port.first_unfit_length(b.count_); i != b.count_) {
            // relaxed: our own store, read back. A length that fits with its bit clear was
            // never set for this batch: it is the one the slot held a lap before.
            const std::uint64_t len =
                port.word(b.first_ + i, port.length_offset).load(std::memory_order_relaxed);
            return len <= port.slot_size ? unset_length(i, b) : too_large(len);
        }
        port.end_batch();
        if (owns_ring()) {
            port.publish(b.count_);
        } else {
            bool reclaimed = false;
            for (std::size_t i = 0; i < b.count_; ++i) {
                reclaimed |= !finish(b.first_ + i, 0);
            }
            if (reclaimed) {
                wake_sleepers(peer_wait(*this, Role::publisher));
                return make_error(Errc::closed, "channel '" + ch.info.name +
                                                    "': this publisher was reclaimed as dead; "
                                                    "its reservation was abandoned");
            }
            if (algo == Algorithm::mpmc) {
                take_next_slot_for_writing(b.first_ + b.count_);
            }
        }
        wake_sleepers(peer_wait(*this, Role::publisher));
        b.count_ = 0;
        return ok();
    }

    void abandon(WriteBatch& b) noexcept {
        if (!port.is_outstanding(b.first_, b.count_)) {
            return;
        }
        port.end_batch();
        if (!owns_ring()) {
            for (std::size_t i = 0; i < b.count_; ++i) {
                finish(b.first_ + i, kOwnerAbandoned);
            }
            // relaxed: a statistic.
            atom(ch.control->abandoned).fetch_add(b.count_, std::memory_order_relaxed);
            wake_sleepers(peer_wait(*this, Role::publisher));
        }
        b.count_ = 0;
    }

    /// True when try_reserve() may succeed now: wait_until()'s condition. Its loads are
    /// acquire, pairing with the stores a reader makes before waking us (wake_sleepers()'s
    /// handshake); the broadcast scan keeps its seq_cst (slowest_cursor()).
    bool room_hint() const noexcept { return room_hint_at(port.pos); }

    /// room_hint() for a writer at `pos` (spsc). Reads only shared memory and the constants
    /// of the attach, so the wait relay's thread may call it.
    bool room_hint_at(std::uint64_t pos) const noexcept {
        switch (algo) {
        case Algorithm::spsc:
            return pos - port.load_consumer_pos() < cap; // acquire: [room]
        case Algorithm::mpmc: {
            // acquire: pairs with the claimers' release CAS of head and a consumer's release
            // of the cell (release_cell()).
            const std::uint64_t p = atom(ch.payload->head).load(std::memory_order_acquire);
            return state_distance(atom(ch.cell(p)).load(std::memory_order_acquire), p) !=
                   -static_cast<std::int64_t>(cap);
        }
        case Algorithm::broadcast: {
            if (sole_writer) {
                return pos - slowest_cursor(pos) < cap; // seq_cst loads, as the scan's
            }
            // acquire: pairs with the claimers' release CAS of head.
            const std::uint64_t p = atom(ch.payload->head).load(std::memory_order_acquire);
            return drop || p - slowest_cursor(p) < cap;
        }
        }
        return true;
    }

    /// What the wait relay watches: room, if the ring is full now (a writer that waits
    /// sleeps on space_waiters, so readers wake it), and events when asked for (on the event
    /// ring's own futex while we want no room, so that readers pay nothing for it).
    Watch watch_now() const noexcept {
        Watch w;
        w.pos = port.pos;
        w.events = waiting.cursor.next;
        w.want_events = options.peer_events;
        w.local_events = waiting.local_pending(0);
        w.want_room = !room_hint();
        if (w.want_room) {
            w.channel = own_wait(*this, Role::publisher);
        } else if (w.want_events) {
            w.channel = event_wait(ch.events);
        }
        return w;
    }

    bool ready(const Watch& w) const noexcept {
        return (w.want_room && room_hint_at(w.pos)) || events_ready(ch, w);
    }
};

Publisher::Publisher(std::unique_ptr<Impl> impl) noexcept
    : impl_{std::move(impl)}, port_{&impl_->port} {}
Publisher::Publisher(Publisher&& other) noexcept
    : impl_{std::move(other.impl_)}, port_{std::exchange(other.port_, nullptr)} {}
Publisher& Publisher::operator=(Publisher&& other) noexcept {
    impl_ = std::move(other.impl_);
    port_ = std::exchange(other.port_, nullptr);
    return *this;
}
Publisher::~Publisher() = default;

void EndpointHooks::set_on_detach(Publisher& endpoint, std::function<void()> hook) noexcept {
    endpoint.impl_->on_detach = std::move(hook);
}

std::shared_ptr<EndpointLink> EndpointHooks::link(Publisher& endpoint) {
    return link_of(*endpoint.impl_);
}

Result<Publisher> Publisher::attach(ChannelFiles files, const EndpointOptions& options) noexcept {
    auto impl = std::make_unique<Impl>();
    if (auto opened = open_endpoint(*impl, files, Role::publisher, options); !opened) {
        return opened.take_error();
    }
    if (!is_ring_kind(impl->ch.info.kind)) {
        return wrong_kind_for_ring(impl->ch.info);
    }
    const std::uint64_t words = (impl->cap + 63) / 64;
    impl->fitting.reset(static_cast<std::uint64_t*>(std::calloc(words, sizeof(std::uint64_t))));
    if (!impl->fitting) {
        return make_error(Errc::no_memory, "channel '" + impl->ch.info.name +
                                               "': no memory for the length bits of " +
                                               std::to_string(impl->cap) + " slots");
    }
    impl->port.fitting = impl->fitting.get();
    impl->waiting.start(*impl);
    impl->sole_writer =
        impl->algo == Algorithm::broadcast && !impl->drop && impl->ch.geo.max_publishers == 1;
    if (impl->owns_ring()) {
        // We are the only writer: resume from the published index, past any slots a
        // predecessor committed but died before announcing in head (readers may already
        // have read them). Its uncommitted reservation is simply overwritten.
        DataPort& p = impl->port;
        // acquire: [head], the predecessor's last publish().
        p.pos = atom(*p.head).load(std::memory_order_acquire);
        const std::uint64_t t = impl->sole_writer ? 0 : p.load_consumer_pos();
        for (std::uint64_t i = 0; i < impl->cap && p.is_committed(p.pos); ++i) {
            ++p.pos;
        }
        if (impl->sole_writer) {
            // A subscriber joining now may hold us back: then the ring counts as full until
            // the first reservation looks again.
            p.cached_peer =
                impl->slowest_reader().value_or(p.pos > impl->cap ? p.pos - impl->cap : 0);
        } else if (!p.consumer_pos_plausible(t)) {
            return impl->corrupted("publish index " + std::to_string(p.pos) + " and consumer_pos " +
                                   std::to_string(t) + " are inconsistent");
        } else {
            p.cached_peer = t;
        }
        p.spsc = true;
    }
    return Publisher{std::move(impl)};
}

Result<WriteBatch> Publisher::reserve_slow(std::size_t max_count) noexcept {
    auto r = impl_->try_reserve(max_count);
    if (!r && impl_->waiting.relay && r.code() == Errc::would_block) [[unlikely]] {
        impl_->waiting.rearm(impl_->watch_now());
    }
    return r;
}

std::size_t Publisher::events(std::span<PeerEvent> out) noexcept {
    Impl& p = *impl_;
    return p.waiting.read(p, Role::publisher, 0, out, p.watch_now());
}

Result<int> Publisher::wait_handle() noexcept {
    Impl& p = *impl_;
    return p.waiting.handle([&p](const Watch& w) { return p.ready(w); }, p.watch_now());
}

Result<WriteBatch> Publisher::reserve(std::size_t max_count,
                                      std::chrono::nanoseconds timeout) noexcept {
    auto r = try_reserve(max_count);
    if (r || r.code() != Errc::would_block) {
        return r; // room at once: no clock read for the deadline
    }
    const Deadline deadline = Deadline::after(timeout);
    for (;; r = try_reserve(max_count)) {
        if (r || r.code() != Errc::would_block) {
            return r;
        }
        // The hint can say "room" while the attempt says "would block" (a drop channel whose
        // next slot a dead publisher still holds, a damaged segment): the deadline is
        // checked here, not only while waiting.
        if (deadline.passed() ||
            !wait_until([this] { return impl_->refused() || impl_->room_hint(); },
                        own_wait(*impl_, Role::publisher), impl_->options.wait,
                        impl_->options.spin_iterations, deadline)) {
            return make_error(Errc::timed_out, "channel '" + impl_->ch.info.name +
                                                   "': no free slot within the timeout "
                                                   "(the ring is full: readers are behind)");
        }
    }
}

Result<void> Publisher::commit_slow(WriteBatch& batch) noexcept {
    return impl_->commit(batch);
}

void Publisher::wake_readers() noexcept {
    wake_sleepers(peer_wait(*impl_, Role::publisher));
}

void Publisher::abandon(WriteBatch& batch) noexcept {
    impl_->abandon(batch);
}

namespace {
Result<void> copy_and_commit(Publisher& pub, Result<WriteBatch> r,
                             std::span<const std::byte> message) noexcept {
    if (!r) {
        return r.take_error();
    }
    WriteBatch& b = *r;
    if (!message.empty()) {
        std::memcpy(b.data(0).data(), message.data(), message.size());
    }
    b.set_length(0, message.size());
    return pub.commit(b);
}
} // namespace

Result<void> Publisher::try_send(std::span<const std::byte> message) noexcept {
    if (message.size() > impl_->ch.geo.slot_size) {
        return make_error(Errc::message_too_large,
                          "channel '" + impl_->ch.info.name + "': message of " +
                              std::to_string(message.size()) +
                              " bytes does not fit its slot size of " +
                              std::to_string(impl_->ch.geo.slot_size) + " bytes (raise slot_size)");
    }
    return copy_and_commit(*this, try_reserve(1), message);
}

Result<void> Publisher::send(std::span<const std::byte> message,
                             std::chrono::nanoseconds timeout) noexcept {
    if (message.size() > impl_->ch.geo.slot_size) {
        return try_send(message); // same error, one place that words it
    }
    return copy_and_commit(*this, reserve(1, timeout), message);
}

Result<void> Publisher::record_gap(std::uint64_t count, std::chrono::nanoseconds timeout) noexcept {
    if (impl_->algo != Algorithm::broadcast) {
        return make_error(Errc::invalid_argument,
                          "channel '" + impl_->ch.info.name +
                              "': record_gap: only a broadcast channel's subscribers count loss");
    }
    if (count == 0 || count > (std::uint64_t{1} << 47)) {
        return make_error(Errc::invalid_argument,
                          "channel '" + impl_->ch.info.name + "': record_gap: a gap of " +
                              std::to_string(count) + " messages (1 to 2^47)");
    }
    auto r = reserve(1, timeout);
    if (!r) {
        return r.take_error();
    }
    WriteBatch& b = *r;
    impl_->port.end_batch();
    // relaxed: the length word is ours until finish() publishes it (release).
    impl_->port.word(b.first_, impl_->port.length_offset).store(count, std::memory_order_relaxed);
    b.count_ = 0;
    const bool ours = impl_->commit_gap(b.first_);
    wake_sleepers(peer_wait(*impl_, Role::publisher));
    if (!ours) {
        return make_error(Errc::closed, "channel '" + impl_->ch.info.name +
                                            "': this publisher was reclaimed as dead; "
                                            "its reservation was abandoned");
    }
    return ok();
}

const ChannelInfo& Publisher::info() const noexcept {
    return impl_->ch.info;
}
std::uint32_t Publisher::endpoint_index() const noexcept {
    return impl_->index;
}

} // namespace shmbus
