// Publisher: the writing side of every channel kind.
//
// Three algorithms, chosen once at attach from the channel's shape:
//  - spsc: queue with one producer and one consumer. The producer keeps `head` in a local
//    and reads the consumer's `consumer_pos` only when its cached copy says the ring is full
//    (the rigtorp/SPSCQueue cached-index idea). Committing marks each slot's state
//    committed(p) in the slot header (a line written anyway) and then stores `head` once per
//    batch, for tools and a successor. No compare-and-swap anywhere.
//  - mpmc: queue with several producers or consumers. A slot is claimed by one CAS on its
//    claim state in the control region (free(p) -> reserved(p, me)) and `head` is then
//    advanced by CAS, by the claimer or by any producer that finds it lagging. Committing is
//    reserved(p, me) -> committed(p). Because ownership is in the claim state, a third party
//    can abandon exactly the slots of a dead producer.
//  - broadcast: the claim state lives in the slot header in the payload (subscribers cannot
//    write it); a slot is claimable when it holds the previous lap's committed message and,
//    under the block policy, when every subscriber's cursor has passed it. The state doubles
//    as a seqlock: a subscriber that sees it change while reading knows the data was torn.
//
// Thread-safety: one thread at a time per Publisher. At most one batch outstanding.
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
constexpr int kMaxClaimAttempts = 1 << 16;
} // namespace

struct Publisher::Impl : EndpointCore {

    // In `port` (EndpointCore): pos, the next position to write (spsc: only we write head);
    // cached_peer, the consumer_pos last seen (spsc); high_water, the largest depth reported;
    // the outstanding batch.
    std::uint64_t cached_min{0}; // broadcast block: last slowest-subscriber cursor seen

    ~Impl() {
        if (ch.control == nullptr || getpid() != attached_by) {
            return;
        }
        if (port.pending && algo != Algorithm::spsc) {
            for (std::size_t i = 0; i < port.pending_count; ++i) {
                finish(port.pending_first + i, kOwnerAbandoned);
            }
            atom(ch.control->abandoned).fetch_add(port.pending_count, std::memory_order_relaxed);
            wake_sleepers(data_wait(ch.control));
        }
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
        // release: the slot's bytes and length happen-before a reader's acquire of the state.
        return atom(claim_word(pos))
            .compare_exchange_strong(expected, make_state(pos, SlotPhase::committed, tag),
                                     std::memory_order_release, std::memory_order_relaxed);
    }

    void note_depth(std::uint64_t depth) noexcept {
        if (depth > port.high_water) {
            port.high_water = depth;
            atom(ch.control->high_water).store(depth, std::memory_order_relaxed);
        }
    }

    /// Broadcast block: slowest active subscriber cursor, or `fallback` if none.
    std::uint64_t slowest_cursor(std::uint64_t fallback) const noexcept {
        std::uint64_t min = fallback;
        for (std::uint32_t i = 0; i < ch.geo.max_subscribers; ++i) {
            const EndpointRecord& r = ch.subscribers[i];
            if (atom(const_cast<std::uint32_t&>(r.state)).load(std::memory_order_seq_cst) !=
                static_cast<std::uint32_t>(EndpointState::active)) {
                continue;
            }
            const std::uint64_t c =
                atom(const_cast<std::uint64_t&>(r.cursor)).load(std::memory_order_seq_cst);
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

    Result<std::size_t> reserve_spsc(std::size_t max_count) noexcept {
        std::uint64_t free = cap - (port.pos - port.cached_peer);
        if (free == 0) {
            // acquire: pairs with the consumer's exchange of consumer_pos; the slots below it
            // are no longer being read.
            const std::uint64_t t = atom(ch.control->consumer_pos).load(std::memory_order_acquire);
            if (t > port.pos || port.pos - t > cap) {
                return consumer_outside(t);
            }
            port.cached_peer = t;
            free = cap - (port.pos - t);
            if (free == 0) {
                return make_error(Errc::would_block);
            }
        }
        port.pending_first = port.pos;
        note_depth(cap - free + 1);
        return std::min<std::uint64_t>(max_count, free);
    }

    /// Claims up to `max_count` consecutive positions (mpmc and broadcast).
    Result<std::size_t> reserve_claimed(std::size_t max_count) noexcept {
        std::uint64_t& head_word = ch.payload->head;
        std::size_t got = 0;
        for (int attempt = 0; attempt < kMaxClaimAttempts && got < max_count; ++attempt) {
            // acquire: pairs with other claimers' CAS of head, so we see their claims.
            const std::uint64_t p = atom(head_word).load(std::memory_order_acquire);
            if (got != 0 && p != port.pending_first + got) {
                break; // someone took the next position: the batch ends here
            }
            if (algo == Algorithm::broadcast && !drop && p - cached_min >= cap) {
                cached_min = slowest_cursor(p);
                if (p - cached_min >= cap) {
                    break; // the slowest subscriber has not released slot p - cap yet
                }
            }
            std::uint64_t& word = claim_word(p);
            std::uint64_t s = atom(word).load(std::memory_order_acquire);
            const std::int64_t d = state_distance(s, p);
            const SlotPhase phase = state_phase(s);
            const bool claimable =
                (d == 0 && phase == SlotPhase::free && state_owner(s) == 0) ||
                (algo == Algorithm::broadcast && d == -static_cast<std::int64_t>(cap) &&
                 phase == SlotPhase::committed);
            if (claimable) {
                // acq_rel on success: we own the slot; pairs with the reader that freed it.
                if (atom(word).compare_exchange_strong(s, make_state(p, SlotPhase::reserved, owner),
                                                       std::memory_order_acq_rel,
                                                       std::memory_order_relaxed)) {
                    std::uint64_t expected = p;
                    atom(head_word).compare_exchange_strong(
                        expected, p + 1, std::memory_order_release, std::memory_order_relaxed);
                    if (got == 0) {
                        port.pending_first = p;
                    }
                    ++got;
                }
                continue;
            }
            if (d == 0 || (d > 0 && d % static_cast<std::int64_t>(cap) == 0)) {
                // Position p is already claimed (or long done): help head past it.
                std::uint64_t expected = p;
                atom(head_word).compare_exchange_strong(expected, p + 1, std::memory_order_release,
                                                        std::memory_order_relaxed);
                continue;
            }
            if (d == -static_cast<std::int64_t>(cap)) {
                // The previous lap's message is still unread (queue) or still being written.
                if (atom(head_word).load(std::memory_order_acquire) == p) {
                    break;
                }
                continue;
            }
            if (atom(head_word).load(std::memory_order_acquire) == p) {
                return got != 0 ? Result<std::size_t>(got)
                                : corrupted("claim state of slot " + std::to_string(p & (cap - 1)) +
                                            " refers to position " + std::to_string(state_pos(s)) +
                                            " while the writers are at " + std::to_string(p));
            }
        }
        if (got == 0) {
            return make_error(Errc::would_block);
        }
        if (algo != Algorithm::broadcast) {
            const std::uint64_t c = atom(ch.control->consumer_pos).load(std::memory_order_relaxed);
            const std::uint64_t h = port.pending_first + got;
            if (h >= c && h - c <= cap) {
                note_depth(h - c);
            }
        }
        return got;
    }

    Result<WriteBatch> try_reserve(std::size_t max_count) noexcept {
        if (max_count == 0) {
            return misuse("try_reserve: max_count must be at least 1");
        }
        if (port.pending) {
            return misuse(
                "try_reserve: a reserved batch is outstanding; commit or abandon it first");
        }
        auto got = algo == Algorithm::spsc ? reserve_spsc(max_count) : reserve_claimed(max_count);
        if (!got) {
            return got.take_error();
        }
        port.pending = true;
        port.pending_count = *got;
        return WriteBatch{port, port.pending_first, port.pending_count};
    }

    bool outstanding(const WriteBatch& b) const noexcept {
        return port.pending && b.first_ == port.pending_first && b.count_ == port.pending_count;
    }

    Result<void> commit(WriteBatch& b) noexcept {
        if (!outstanding(b)) {
            return misuse("commit: this batch is not the outstanding reservation");
        }
        for (std::size_t i = 0; i < b.count_; ++i) {
            const std::uint64_t len =
                atom(ch.slot(b.first_ + i)->length).load(std::memory_order_relaxed);
            if (len > ch.geo.slot_size) {
                return too_large(len);
            }
        }
        port.pending = false;
        if (algo == Algorithm::spsc) {
            // release: each slot's bytes happen-before the consumer's acquire of its state.
            // The consumer polls the state in the slot header, a line we write anyway, so a
            // message costs no extra cache-line transfer for an index.
            for (std::size_t i = 0; i < b.count_; ++i) {
                atom(ch.slot(port.pos + i)->state)
                    .store(make_state(port.pos + i, SlotPhase::committed),
                           std::memory_order_release);
            }
            port.pos += b.count_;
            // head is for tools and for a successor producer; wake_sleepers() below orders
            // the stores before the waiter check.
            atom(ch.payload->head).store(port.pos, std::memory_order_release);
        } else {
            bool reclaimed = false;
            for (std::size_t i = 0; i < b.count_; ++i) {
                reclaimed |= !finish(b.first_ + i, 0);
            }
            if (reclaimed) {
                wake_sleepers(data_wait(ch.control));
                return make_error(Errc::closed, "channel '" + ch.info.name +
                                                    "': this publisher was reclaimed as dead; "
                                                    "its reservation was abandoned");
            }
        }
        wake_sleepers(data_wait(ch.control));
        b.count_ = 0;
        return ok();
    }

    void abandon(WriteBatch& b) noexcept {
        if (!outstanding(b)) {
            return;
        }
        port.pending = false;
        if (algo != Algorithm::spsc) {
            for (std::size_t i = 0; i < b.count_; ++i) {
                finish(b.first_ + i, kOwnerAbandoned);
            }
            atom(ch.control->abandoned).fetch_add(b.count_, std::memory_order_relaxed);
            wake_sleepers(data_wait(ch.control));
        }
        b.count_ = 0;
    }

    /// True when try_reserve() may succeed now (used while waiting; seq_cst loads pair with
    /// the readers' seq_cst release and wake).
    bool room_hint() noexcept {
        switch (algo) {
        case Algorithm::spsc:
            return port.pos - atom(ch.control->consumer_pos).load(std::memory_order_seq_cst) < cap;
        case Algorithm::mpmc: {
            const std::uint64_t p = atom(ch.payload->head).load(std::memory_order_seq_cst);
            return state_distance(atom(ch.cell(p)).load(std::memory_order_seq_cst), p) !=
                   -static_cast<std::int64_t>(cap);
        }
        case Algorithm::broadcast: {
            const std::uint64_t p = atom(ch.payload->head).load(std::memory_order_seq_cst);
            return drop || p - slowest_cursor(p) < cap;
        }
        }
        return true;
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

Result<Publisher> Publisher::attach(ChannelFiles files, const EndpointOptions& options) noexcept {
    auto impl = std::make_unique<Impl>();
    if (auto opened = open_endpoint(*impl, files, Role::publisher, options); !opened) {
        return opened.take_error();
    }
    if (impl->algo == Algorithm::spsc) {
        // We are the only producer: resume from the published index, past any slots a
        // predecessor committed but died before announcing in head (consumers may already
        // have read them). Its uncommitted reservation is simply overwritten.
        std::uint64_t h = atom(impl->ch.payload->head).load(std::memory_order_acquire);
        const std::uint64_t t =
            atom(impl->ch.control->consumer_pos).load(std::memory_order_acquire);
        for (std::uint64_t i = 0; i < impl->cap; ++i) {
            if (atom(impl->ch.slot(h)->state).load(std::memory_order_acquire) !=
                make_state(h, SlotPhase::committed)) {
                break;
            }
            ++h;
        }
        if (t > h || h - t > impl->cap) {
            return impl->corrupted("publish index " + std::to_string(h) + " and consumer_pos " +
                                   std::to_string(t) + " are inconsistent");
        }
        impl->port.pos = h;
        impl->port.cached_peer = t;
        impl->port.spsc = true;
    }
    return Publisher{std::move(impl)};
}

Result<WriteBatch> Publisher::reserve_slow(std::size_t max_count) noexcept {
    return impl_->try_reserve(max_count);
}

Result<WriteBatch> Publisher::reserve(std::size_t max_count,
                                      std::chrono::nanoseconds timeout) noexcept {
    const Deadline deadline = Deadline::after(timeout);
    for (;;) {
        auto r = try_reserve(max_count);
        if (r || r.code() != Errc::would_block) {
            return r;
        }
        // The hint can say "room" while the attempt says "would block" (a drop channel whose
        // next slot a dead publisher still holds, a damaged segment): the deadline is
        // checked here, not only while waiting.
        if (deadline.passed() ||
            !wait_until([this] { return impl_->room_hint(); }, space_wait(impl_->ch.control),
                        impl_->options.wait, impl_->options.spin_iterations, deadline)) {
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
    wake_sleepers(data_wait(impl_->ch.control));
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

const ChannelInfo& Publisher::info() const noexcept {
    return impl_->ch.info;
}
std::uint32_t Publisher::endpoint_index() const noexcept {
    return impl_->index;
}

} // namespace shmbus
