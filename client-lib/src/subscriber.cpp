// Subscriber: the reading side of every channel kind (a consumer, on a queue).
//
//  - spsc: the consumer owns `consumer_pos` (control) and keeps it in a local; a message is
//    ready when its slot's state says committed(position), so the consumer polls a line the
//    producer writes anyway; the producer's `head` is read only to tell empty from damaged.
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
// is skipped, counted in `corrupted`, and reported once as Errc::corrupted.
//
// Thread-safety: one thread at a time per Subscriber. At most one batch outstanding.
#include <shmbus/endpoint.hpp>

#include "endpoint_hooks.hpp"
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

    ~Impl() {
        if (ch.control == nullptr || getpid() != attached_by) {
            return;
        }
        if (algo == Algorithm::mpmc) {
            // Messages we took and never released go back to the other consumers.
            redeliver_taken(ch, owner);
        }
        release_endpoint(ch.subscribers[index]);
        wake_sleepers(space_wait(ch.control)); // a block publisher may be waiting for us
        if (on_detach) {
            on_detach();
        }
    }

    EndpointRecord& record() const noexcept { return ch.subscribers[index]; }

    std::uint64_t length_of(std::uint64_t pos) const noexcept {
        return atom(ch.slot(pos)->length).load(std::memory_order_relaxed);
    }

    [[gnu::cold, gnu::noinline]] Error bad_length(std::uint64_t pos, std::uint64_t len) const {
        return corrupted("message " + std::to_string(pos) + ": length " + std::to_string(len) +
                         " exceeds the slot size " + std::to_string(ch.geo.slot_size) +
                         "; the message was skipped");
    }

    /// Publishes our cursor (spsc: consumer_pos; broadcast: our entry) and wakes writers
    /// that wait for room.
    void publish_cursor(std::uint64_t pos) noexcept {
        std::uint64_t& word = algo == Algorithm::spsc ? ch.control->consumer_pos : record().cursor;
        if (algo == Algorithm::broadcast && drop) {
            // Nobody waits for a drop-policy subscriber; the cursor is for tools only.
            atom(word).store(pos, std::memory_order_release);
            return;
        }
        // release: our reads of the slots happen-before the writer's acquire of the cursor.
        // wake_sleepers() below orders it before the waiter check.
        atom(word).store(pos, std::memory_order_release);
        wake_sleepers(space_wait(ch.control));
    }

    void count_lost(std::uint64_t n) noexcept {
        lost_total += n;
        lost_pending += n;
        atom(record().lost).store(lost_total, std::memory_order_relaxed);
        atom(ch.control->dropped).fetch_add(n, std::memory_order_relaxed);
    }

    // ---- spsc ----
    /// The messages committed from `tail` on, up to `max_count`, whose lengths fit: the
    /// whole of a receive in the common case, kept small so that it is inlined.
    std::size_t committed_spsc(std::size_t max_count) const noexcept {
        std::size_t n = 0;
        for (; n < max_count; ++n) {
            const std::uint64_t p = port.pos + n;
            // acquire: pairs with the producer's release of committed(p); the slot is full.
            if (atom(ch.slot(p)->state).load(std::memory_order_acquire) !=
                    make_state(p, SlotPhase::committed) ||
                length_of(p) > ch.geo.slot_size) {
                break;
            }
        }
        return n;
    }

    [[gnu::always_inline]] Result<std::size_t> take_spsc(std::size_t max_count) noexcept {
        const std::size_t n = committed_spsc(max_count);
        if (n != 0) [[likely]] {
            port.pending_first = port.pos;
            return n;
        }
        // Nothing good at tail. Empty, unless the slot holds a committed message too long
        // for it, or the producer has announced positions past it: then (its state stores
        // precede head's) the slot state is damaged.
        const std::uint64_t h = atom(ch.payload->head).load(std::memory_order_acquire);
        if (h <= port.pos || h - port.pos > cap) {
            if (atom(ch.slot(port.pos)->state).load(std::memory_order_acquire) !=
                make_state(port.pos, SlotPhase::committed)) [[likely]] {
                return make_error(Errc::would_block);
            }
        }
        return spsc_anomaly(max_count);
    }

    /// take_spsc() found no message at tail although the slot or head says there is one.
    [[gnu::cold, gnu::noinline]] Result<std::size_t> spsc_anomaly(std::size_t max_count) noexcept {
        const std::uint64_t s = atom(ch.slot(port.pos)->state).load(std::memory_order_acquire);
        if (s == make_state(port.pos, SlotPhase::committed)) {
            const std::uint64_t len = length_of(port.pos);
            if (len > ch.geo.slot_size) {
                ++port.pos;
                publish_cursor(port.pos);
                return bad_length(port.pos - 1, len);
            }
            return take_spsc(max_count); // committed meanwhile
        }
        const std::uint64_t h = atom(ch.payload->head).load(std::memory_order_acquire);
        if (h <= port.pos || h - port.pos > cap) {
            return make_error(Errc::would_block); // both looked again and now agree: empty
        }
        ++port.pos;
        publish_cursor(port.pos);
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
            std::uint64_t s = atom(w).load(std::memory_order_acquire);
            if (state_phase(s) != SlotPhase::committed || state_owner(s) != kOwnerRedeliver) {
                continue;
            }
            const std::uint64_t pos = state_pos(s);
            // acq_rel: take it; pairs with the supervisor's CAS that returned it.
            if (atom(w).compare_exchange_strong(s, make_state(pos, SlotPhase::reading, owner),
                                                std::memory_order_acq_rel)) {
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
        // release: our reads of the slot happen-before a producer's claim of the next lap.
        atom(ch.cell(pos)).store(make_state(pos + cap, SlotPhase::free), std::memory_order_release);
    }

    Result<std::size_t> take_mpmc(std::size_t max_count) noexcept {
        if (atom(ch.control->redeliver_pending).load(std::memory_order_relaxed) != 0) {
            auto r = take_redelivered();
            if (!r || *r != 0) {
                return r;
            }
        }
        std::uint64_t& dq = ch.control->consumer_pos;
        std::size_t got = 0;
        for (int attempt = 0; attempt < kMaxAttempts && got < max_count; ++attempt) {
            const std::uint64_t p = atom(dq).load(std::memory_order_acquire);
            if (got != 0 && p != port.pending_first + got) {
                break;
            }
            std::uint64_t& word = ch.cell(p);
            std::uint64_t s = atom(word).load(std::memory_order_acquire);
            const std::int64_t d = state_distance(s, p);
            const SlotPhase phase = state_phase(s);
            if (d == 0 && phase == SlotPhase::committed) {
                const std::uint32_t tag = state_owner(s);
                // acq_rel: pairs with the producer's release of the committed state.
                if (!atom(word).compare_exchange_strong(s, make_state(p, SlotPhase::reading, owner),
                                                        std::memory_order_acq_rel,
                                                        std::memory_order_relaxed)) {
                    continue;
                }
                std::uint64_t expected = p;
                atom(dq).compare_exchange_strong(expected, p + 1, std::memory_order_release,
                                                 std::memory_order_relaxed);
                const std::uint64_t len = length_of(p);
                if (tag == kOwnerAbandoned || len > ch.geo.slot_size) {
                    // Abandoned by a dead producer (already counted), or corrupt: skip it.
                    release_cell(p);
                    wake_sleepers(space_wait(ch.control));
                    if (tag != kOwnerAbandoned) {
                        if (got != 0) {
                            break;
                        }
                        return bad_length(p, len);
                    }
                    if (got != 0) {
                        break;
                    }
                    continue;
                }
                if (got == 0) {
                    port.pending_first = p;
                }
                ++got;
                continue;
            }
            if ((d == 0 && phase == SlotPhase::reading) ||
                (d == static_cast<std::int64_t>(cap) && phase == SlotPhase::free)) {
                // Taken by another consumer, or taken and released: help dq along.
                std::uint64_t expected = p;
                atom(dq).compare_exchange_strong(expected, p + 1, std::memory_order_release,
                                                 std::memory_order_relaxed);
                continue;
            }
            if (d == 0 || d == -static_cast<std::int64_t>(cap)) {
                break; // not committed yet (free or being written)
            }
            if (atom(dq).load(std::memory_order_acquire) == p) {
                if (got != 0) {
                    break;
                }
                return corrupted("claim state of slot " + std::to_string(p & (cap - 1)) +
                                 " refers to position " + std::to_string(state_pos(s)) +
                                 " while the consumers are at " + std::to_string(p));
            }
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
                if (state_owner(s) == kOwnerAbandoned || len > ch.geo.slot_size) {
                    if (got != 0) {
                        break; // hand out what we have; deal with this one next call
                    }
                    ++port.pos;
                    publish_cursor(port.pos);
                    if (state_owner(s) != kOwnerAbandoned) {
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
                // the oldest position still in the ring is lost.
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
        if (max_count == 0) {
            return misuse("try_receive: max_count must be at least 1");
        }
        if (port.pending) {
            return misuse("try_receive: a received batch is outstanding; release it first");
        }
        Result<std::size_t> got = algo == Algorithm::spsc   ? take_spsc(max_count)
                                  : algo == Algorithm::mpmc ? take_mpmc(max_count)
                                                            : take_broadcast(max_count);
        if (!got) {
            return got.take_error();
        }
        if (*got == 0) {
            return make_error(Errc::would_block);
        }
        port.pending = true;
        port.pending_count = *got;
        return ReadBatch{port, port.pending_first, port.pending_count,
                         std::exchange(lost_pending, 0)};
    }

    Result<void> release(ReadBatch& b) noexcept {
        if (!port.pending || b.first_ != port.pending_first || b.count_ != port.pending_count) {
            return misuse("release: this batch is not the outstanding one");
        }
        port.pending = false;
        const std::size_t n = b.count_;
        b.count_ = 0;
        switch (algo) {
        case Algorithm::spsc:
            port.pos += n;
            publish_cursor(port.pos);
            return ok();
        case Algorithm::mpmc:
            for (std::size_t i = 0; i < n; ++i) {
                release_cell(b.first_ + i);
            }
            wake_sleepers(space_wait(ch.control));
            return ok();
        case Algorithm::broadcast: {
            std::uint64_t overwritten = 0;
            if (drop) {
                // Seqlock check: pairs with the publisher's release fence before it rewrote
                // a slot; if the state moved on, what we read may be torn.
                seqlock_read_fence();
                for (std::size_t i = 0; i < n; ++i) {
                    const std::uint64_t p = b.first_ + i;
                    const std::uint64_t s = atom(ch.slot(p)->state).load(std::memory_order_relaxed);
                    if (s != make_state(p, SlotPhase::committed)) {
                        ++overwritten;
                    }
                }
            }
            port.pos += n;
            publish_cursor(port.pos);
            if (overwritten != 0) {
                // The caller must discard the whole batch (it cannot tell which messages were
                // torn), so the whole batch is what it lost.
                count_lost(n);
                lost_pending -= n; // reported here, not again with the next batch
                return make_error(Errc::lost, "channel '" + ch.info.name +
                                                  "': " + std::to_string(overwritten) + " of " +
                                                  std::to_string(n) +
                                                  " messages were overwritten while being read; "
                                                  "the batch is discarded and counted as lost");
            }
            return ok();
        }
        }
        return ok();
    }

    /// True when try_receive() may find something (used while waiting).
    bool data_hint() noexcept {
        switch (algo) {
        case Algorithm::spsc:
            return atom(ch.slot(port.pos)->state).load(std::memory_order_seq_cst) ==
                   make_state(port.pos, SlotPhase::committed);
        case Algorithm::mpmc: {
            if (atom(ch.control->redeliver_pending).load(std::memory_order_seq_cst) != 0) {
                return true;
            }
            const std::uint64_t p = atom(ch.control->consumer_pos).load(std::memory_order_seq_cst);
            const std::uint64_t s = atom(ch.cell(p)).load(std::memory_order_seq_cst);
            const std::int64_t d = state_distance(s, p);
            const SlotPhase phase = state_phase(s);
            const bool unwritten =
                d == 0 && (phase == SlotPhase::free || phase == SlotPhase::reserved);
            return !unwritten && d != -static_cast<std::int64_t>(cap);
        }
        case Algorithm::broadcast: {
            const std::uint64_t s = atom(ch.slot(port.pos)->state).load(std::memory_order_seq_cst);
            const std::int64_t d = state_distance(s, port.pos);
            return !((d == 0 && state_phase(s) != SlotPhase::committed) ||
                     d == -static_cast<std::int64_t>(cap));
        }
        }
        return true;
    }
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

Result<Subscriber> Subscriber::attach(ChannelFiles files, const EndpointOptions& options) noexcept {
    auto impl = std::make_unique<Impl>();
    if (auto opened = open_endpoint(*impl, files, Role::subscriber, options); !opened) {
        return opened.take_error();
    }
    Impl& s = *impl;
    if (s.algo == Algorithm::broadcast) {
        // Join at the newest message. Announce a cursor first, then re-read the claim index:
        // the seq_cst pair with the publishers' slowest_cursor() scan guarantees that either
        // they see us, or we start beyond anything they could overwrite unseen.
        std::uint64_t& cursor = s.record().cursor;
        atom(cursor).store(atom(s.ch.payload->head).load(std::memory_order_seq_cst),
                           std::memory_order_seq_cst);
        s.port.pos = atom(s.ch.payload->head).load(std::memory_order_seq_cst);
        atom(cursor).store(s.port.pos, std::memory_order_seq_cst);
        atom(s.record().lost).store(0, std::memory_order_relaxed);
        if (!s.drop) {
            // Between claiming the entry and the stores above, a block publisher may have
            // read the cursor the entry's previous owner left (or 0) and gone to sleep for
            // lack of room: our real cursor just gave it room, so wake it.
            wake_sleepers(space_wait(s.ch.control));
        }
    } else if (s.algo == Algorithm::spsc) {
        const std::uint64_t t = atom(s.ch.control->consumer_pos).load(std::memory_order_acquire);
        const std::uint64_t h = atom(s.ch.payload->head).load(std::memory_order_acquire);
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
    return impl_->try_receive(max_count);
}

Result<ReadBatch> Subscriber::receive(std::size_t max_count,
                                      std::chrono::nanoseconds timeout) noexcept {
    const Deadline deadline = Deadline::after(timeout);
    for (;;) {
        auto r = try_receive(max_count);
        if (r || r.code() != Errc::would_block) {
            return r;
        }
        // The hint can say "ready" while the attempt says "would block" (a damaged segment,
        // a slot held by a dead writer): the deadline is checked here, not only while waiting.
        if (deadline.passed() ||
            !wait_until([this] { return impl_->data_hint(); }, data_wait(impl_->ch.control),
                        impl_->options.wait, impl_->options.spin_iterations, deadline)) {
            return make_error(Errc::timed_out, "channel '" + impl_->ch.info.name +
                                                   "': no message within the timeout");
        }
    }
}

Result<void> Subscriber::release_slow(ReadBatch& batch) noexcept {
    return impl_->release(batch);
}

void Subscriber::wake_writers() noexcept {
    wake_sleepers(space_wait(impl_->ch.control));
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
        if (m.data.size() > buffer.size()) {
            // Keep the message for a larger buffer: give the batch back unreleased.
            impl.port.pending = false;
            if (impl.algo == Algorithm::mpmc) {
                std::uint64_t s = make_state(m.sequence, SlotPhase::reading, impl.owner);
                // Count it only if we returned it (a supervisor that reclaimed us may have
                // returned it already, and counted it then).
                if (atom(impl.ch.cell(m.sequence))
                        .compare_exchange_strong(
                            s, make_state(m.sequence, SlotPhase::committed, kOwnerRedeliver),
                            std::memory_order_acq_rel)) {
                    atom(impl.ch.control->redeliver_pending)
                        .fetch_add(1, std::memory_order_seq_cst);
                }
            }
            return make_error(Errc::message_too_large,
                              "channel '" + impl.ch.info.name + "': message " +
                                  std::to_string(m.sequence) + " has " +
                                  std::to_string(m.data.size()) + " bytes, the buffer only " +
                                  std::to_string(buffer.size()));
        }
        if (!m.data.empty()) {
            std::memcpy(buffer.data(), m.data.data(), m.data.size());
        }
        auto rel = sub.release(b);
        if (rel) {
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
