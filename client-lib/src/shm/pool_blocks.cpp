// The pool's free list and block references (pool_blocks.hpp has the design and the pairs
// of memory orderings every site below refers to).
#include "shm/pool_blocks.hpp"

#include "shm/endpoint_table.hpp"

#include <bit>
#include <optional>

namespace shmbus::detail {
namespace {

std::uint64_t& state_of(const AttachedChannel& ch, std::uint32_t index) noexcept {
    return ch.block_states[index];
}

PoolStatus fail(PoolFault& fault, const char* what, std::uint64_t block, std::uint64_t word,
                const AttachedChannel& ch) noexcept {
    fault = {what, block, word};
    // relaxed: a statistic.
    atom(ch.control->corrupted).fetch_add(1, std::memory_order_relaxed);
    return PoolStatus::corrupted;
}

/// The next head word after `h` with the given fields: the tag always moves on.
std::uint64_t next_head(std::uint64_t h, std::uint32_t index, PoolOp op = PoolOp::none,
                        std::uint32_t slot = 0) noexcept {
    return make_head(index, op, slot, head_tag(h) + 1);
}

/// The link after `index` as the list holds it, or kNoBlock when it is out of range (the
/// rest of the list is then lost: reported by the caller).
bool read_link(const AttachedChannel& ch, std::uint32_t index, std::uint32_t& next) noexcept {
    // relaxed: ordered after the caller's acquire of the head ([link]).
    next = atom(ch.block_next[index]).load(std::memory_order_relaxed);
    if (next != kNoBlock && next >= ch.geo.slot_count) {
        next = kNoBlock;
        return false;
    }
    return true;
}

void count_taken(const AttachedChannel& ch) noexcept {
    PoolControl& p = *ch.pool;
    // relaxed: statistics. The high-water mark is an estimate from two counters read
    // apart; it is only shown to operators.
    const std::uint64_t taken = atom(p.acquired).fetch_add(1, std::memory_order_relaxed) + 1;
    const std::uint64_t back = atom(p.returned).load(std::memory_order_relaxed);
    const std::uint64_t out = taken >= back ? taken - back : 0;
    std::uint64_t seen = atom(p.high_water).load(std::memory_order_relaxed);
    while (out > seen &&
           !atom(p.high_water).compare_exchange_weak(seen, out, std::memory_order_relaxed)) {
    }
}

/// Completes the operation announced in head word `h` (see pool_blocks.hpp). Returns
/// `corrupted` (with `fault`) when the announced block's state fits no completion; the block
/// is then taken off the list so that the pool goes on without it.
PoolStatus complete(const AttachedChannel& ch, std::uint64_t h, PoolFault& fault) noexcept {
    PoolControl& p = *ch.pool;
    const std::uint32_t i = head_index(h);
    const PoolOp op = head_op(h);
    const std::uint32_t k = head_slot(h);
    const std::uint32_t slots = ch.geo.max_publishers + ch.geo.max_subscribers;
    if (i >= ch.geo.slot_count || k >= slots || op == PoolOp::none || op > PoolOp::giving) {
        // Nothing here names a block we may touch: empty the list rather than loop on it.
        std::uint64_t expected = h;
        // acq_rel: a repair, ordered like every change of the head (pool_blocks.hpp) so that
        // the head's release sequence, which carries [link] and [help] to its next reader,
        // stays unbroken; it publishes nothing of its own. A failed CAS: someone else moved
        // the head on, and there is nothing left to repair.
        atom(p.head).compare_exchange_strong(expected, next_head(h, kNoBlock),
                                             std::memory_order_acq_rel);
        return fail(fault, "the pool's free-list head names no block it can have", i, h, ch);
    }
    std::uint64_t& word = state_of(ch, i);
    PoolStatus status = PoolStatus::ok;
    bool skip = false; // take block i off the list without completing: its state is damaged
    for (std::uint32_t attempt = 0;; ++attempt) {
        if (attempt == kPoolAttempts) {
            return PoolStatus::contended;
        }
        // acquire: [data] pairs with the last CAS of the block's previous holders.
        std::uint64_t s = atom(word).load(std::memory_order_acquire);
        // Decide only while the operation is still announced: then nobody but its holder
        // slot may have changed the block ([help]), so `s` is one of the states it passes.
        if (atom(p.head).load(std::memory_order_acquire) != h) {
            return PoolStatus::ok;
        }
        const std::uint64_t mine = free_block(block_generation(s)) | holder_bit(k);
        if (op == PoolOp::taking) {
            if (s == mine) {
                break; // taken already
            }
            if (!block_is_free(s)) {
                status = fail(fault, "is on the free list but in use", i, s, ch);
                skip = true;
                break;
            }
            // acq_rel: [data] acquires the previous holders' last CAS; [help] releases.
            if (atom(word).compare_exchange_weak(s, mine, std::memory_order_acq_rel,
                                                 std::memory_order_relaxed)) {
                count_taken(ch);
                break;
            }
        } else {
            if (block_is_free(s)) {
                break; // given back already
            }
            if (s != mine) {
                status = fail(fault, "was given back while others hold references to it", i, s, ch);
                skip = true;
                break;
            }
            // acq_rel: [data] releases the giver's accesses to the next taker; [help].
            if (atom(word).compare_exchange_weak(s, free_block(block_generation(s) + 1),
                                                 std::memory_order_acq_rel,
                                                 std::memory_order_relaxed)) {
                atom(p.returned).fetch_add(1, std::memory_order_relaxed); // a statistic
                break;
            }
        }
    }
    // Move the head on: past the taken block, or to the given block as a plain top.
    std::uint32_t top = i;
    if (op == PoolOp::taking || skip) {
        if (!read_link(ch, i, top)) {
            status =
                fail(fault, "links to a block beyond the pool; the rest of the free list is lost",
                     i, atom(ch.block_next[i]).load(std::memory_order_relaxed), ch);
        }
    }
    std::uint64_t expected = h;
    // acq_rel: [help] releases the state change above; the acquire half keeps the chain of
    // [link] and [data] for whoever reads the head next.
    atom(p.head).compare_exchange_strong(expected, next_head(h, top), std::memory_order_acq_rel);
    return status;
}

/// The loop of a take and a give: up to kPoolAttempts times (then `contended`), finds the
/// head with no operation announced in it and hands it to `attempt(h)`, whose outcome ends
/// the loop, or nothing, which tries again. Another holder's operation announced in the head
/// is finished first, which spends that attempt; corruption found in it is counted and
/// reported to that holder, not to us, and the list is usable again either way.
template <typename Attempt>
PoolStatus on_quiet_head(const AttachedChannel& ch, Attempt attempt) noexcept {
    for (std::uint32_t n = 0; n < kPoolAttempts; ++n) {
        // acquire: [link], [help].
        const std::uint64_t h = atom(ch.pool->head).load(std::memory_order_acquire);
        if (head_op(h) != PoolOp::none) {
            PoolFault theirs;
            (void)complete(ch, h, theirs);
            continue;
        }
        if (const std::optional<PoolStatus> done = attempt(h)) {
            return *done;
        }
    }
    return PoolStatus::contended;
}

/// Puts block `index`, which holder `slot` alone holds, back on the free list.
PoolStatus give_block(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                      PoolFault& fault) noexcept {
    PoolControl& p = *ch.pool;
    return on_quiet_head(ch, [&](std::uint64_t h) -> std::optional<PoolStatus> {
        // relaxed: [link] published by the announcing CAS below.
        atom(ch.block_next[index]).store(head_index(h), std::memory_order_relaxed);
        std::uint64_t expected = h;
        const std::uint64_t announced = next_head(h, index, PoolOp::giving, slot);
        // acq_rel: [link] releases the link; acquires the head's previous changes.
        if (!atom(p.head).compare_exchange_weak(expected, announced, std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
            return std::nullopt;
        }
        const PoolStatus done = complete(ch, announced, fault);
        wake_sleepers(space_wait(ch.control)); // takers asleep on an empty pool
        return done == PoolStatus::contended ? PoolStatus::ok : done;
    });
}

/// Whether holder `slot` holds a reference to the block of `generation` whose state word is
/// `s` (release and add_transit need one).
bool holds(std::uint64_t s, std::uint32_t slot, std::uint32_t generation) noexcept {
    return block_generation(s) == generation && (block_holders(s) & holder_bit(slot)) != 0;
}

/// Why a handle of `generation` can take no reference in transit from the block whose state
/// word is `s` (adopt and drop need one): `stale` (the block was reused) or `no_reference`.
std::optional<PoolStatus> no_transit_for(std::uint64_t s, std::uint32_t generation) noexcept {
    if (block_generation(s) != generation) {
        return PoolStatus::stale;
    }
    if (block_transit(s) == 0) {
        return PoolStatus::no_reference;
    }
    return std::nullopt;
}

/// What a reference operation decides about a block's state word in one round of
/// update_state(): the operation's outcome with the word left as it is, or the word's next
/// value.
struct Step {
    std::uint64_t next{0};
    PoolStatus outcome{PoolStatus::ok};
    bool move{false};

    static Step move_to(std::uint64_t next) noexcept { return {next, PoolStatus::ok, true}; }
    static Step finish(PoolStatus outcome) noexcept { return {0, outcome, false}; }
};

/// The loop of the reference operations (release, add_transit, adopt, drop) on block
/// `index`'s state word: `decide(s)` looks at the word and returns a Step; a word moved to
/// the Step's value ends the operation with `moved(s)` (`s`: the word before the move), and
/// a word that changed under the CAS is decided again, kPoolAttempts times at most (then
/// `contended`). `read` orders the first load and the reload of a failed CAS alike; each
/// operation says why its own is enough.
template <typename Decide, typename Moved>
PoolStatus update_state(const AttachedChannel& ch, std::uint32_t index, std::memory_order read,
                        Decide decide, Moved moved) noexcept {
    std::uint64_t& word = state_of(ch, index);
    std::uint64_t s = atom(word).load(read);
    for (std::uint32_t attempt = 0; attempt < kPoolAttempts; ++attempt) {
        const Step step = decide(s);
        if (!step.move) {
            return step.outcome;
        }
        // acq_rel: [data]; what it releases and acquires, each operation's decide() says.
        if (atom(word).compare_exchange_weak(s, step.next, std::memory_order_acq_rel, read)) {
            return moved(s);
        }
    }
    return PoolStatus::contended;
}

} // namespace

void init_pool_free_list(const AttachedChannel& ch) noexcept {
    const auto n = static_cast<std::uint32_t>(ch.geo.slot_count);
    for (std::uint32_t i = 0; i < n; ++i) {
        ch.block_next[i] = i + 1 < n ? i + 1 : kNoBlock;
    }
    ch.pool->head = make_head(n == 0 ? kNoBlock : 0, PoolOp::none, 0, 0);
}

PoolStatus take_block(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t& index,
                      std::uint32_t& generation, PoolFault& fault) noexcept {
    PoolControl& p = *ch.pool;
    return on_quiet_head(ch, [&](std::uint64_t h) -> std::optional<PoolStatus> {
        const std::uint32_t i = head_index(h);
        if (i == kNoBlock) {
            atom(p.exhausted).fetch_add(1, std::memory_order_relaxed); // a statistic
            return PoolStatus::empty;
        }
        if (i >= ch.geo.slot_count) {
            std::uint64_t expected = h;
            // acq_rel: a repair of the head, ordered as the one in complete() says.
            atom(p.head).compare_exchange_strong(expected, next_head(h, kNoBlock),
                                                 std::memory_order_acq_rel);
            return fail(fault, "is named by the free-list head but is beyond the pool", i, h, ch);
        }
        // A block on top of the list with no operation announced is free: whatever took it
        // would have moved the head on first. Read its state while the head stays put, so
        // that what we read is the state of the block as it sits there.
        // acquire: [data] pairs with the last CAS of its previous holders.
        const std::uint64_t s = atom(state_of(ch, i)).load(std::memory_order_acquire);
        // acquire: [help], as in complete(): a head moved on meanwhile may have moved the
        // block's state on too, so `s` is used only while the head is still `h`.
        if (atom(p.head).load(std::memory_order_acquire) != h) {
            return std::nullopt;
        }
        if (!block_is_free(s)) {
            // Damaged (or a cycle in the links back to a block in use): take it off the list
            // rather than hand it out twice.
            std::uint32_t top = kNoBlock;
            (void)read_link(ch, i, top);
            std::uint64_t expected = h;
            // acq_rel: a repair of the head, ordered as the one in complete() says; `top` was
            // read after our acquire of the head ([link]).
            atom(p.head).compare_exchange_strong(expected, next_head(h, top),
                                                 std::memory_order_acq_rel);
            return fail(fault, "is on the free list but in use", i, s, ch);
        }
        std::uint64_t expected = h;
        const std::uint64_t announced = next_head(h, i, PoolOp::taking, slot);
        // acq_rel: acquires the head's previous changes ([link]); releases the announcement.
        if (!atom(p.head).compare_exchange_weak(expected, announced, std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
            return std::nullopt;
        }
        // Our own operation: nobody but us changes the block until it is complete, so
        // `contended` can only be a process scribbling on its word; bounded all the same.
        PoolStatus done = PoolStatus::contended;
        for (std::uint32_t round = 0; round < 16 && done == PoolStatus::contended; ++round) {
            done = complete(ch, announced, fault);
        }
        // Whoever completed it, the block is ours now and nobody else changes its word.
        // acquire: [help], [data].
        const std::uint64_t mine = atom(state_of(ch, i)).load(std::memory_order_acquire);
        const bool taken = (mine & kReferencesMask) == holder_bit(slot);
        if (done != PoolStatus::ok) {
            if (taken && done == PoolStatus::corrupted) {
                // The rest of the list was damaged, not the block: back on the (now
                // repaired) list with it, so that nothing is lost; the caller hears of the
                // damage.
                PoolFault ignored;
                (void)give_block(ch, slot, i, ignored);
            }
            return done;
        }
        if (!taken) {
            return fail(fault, "was taken from the free list but its state does not name the taker",
                        i, mine, ch);
        }
        index = i;
        generation = block_generation(mine);
        return PoolStatus::ok;
    });
}

PoolStatus release_reference(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                             std::uint32_t generation, PoolFault& fault) noexcept {
    // acquire: [data] (only for the give below; a plain release needs no acquire).
    return update_state(
        ch, index, std::memory_order_acquire,
        [&](std::uint64_t s) {
            if (!holds(s, slot, generation)) {
                return Step::finish(
                    fail(fault, "is not held by this endpoint any more", index, s, ch));
            }
            if ((s & kReferencesMask) == holder_bit(slot)) {
                // The last reference: nobody else can add one now (only holders share, and
                // nothing is in transit), so the block goes back to the free list.
                return Step::finish(give_block(ch, slot, index, fault));
            }
            // [data]: the CAS releases our accesses to the block to the last holder's give.
            return Step::move_to(s & ~holder_bit(slot));
        },
        [](std::uint64_t) { return PoolStatus::ok; });
}

PoolStatus add_transit(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                       std::uint32_t generation, std::uint32_t copies, bool keep,
                       PoolFault& fault) noexcept {
    // relaxed: the CAS decides.
    return update_state(
        ch, index, std::memory_order_relaxed,
        [&](std::uint64_t s) {
            if (!holds(s, slot, generation)) {
                return Step::finish(
                    fail(fault, "is not held by this endpoint any more", index, s, ch));
            }
            if (block_transit(s) + copies > kMaxTransit) {
                return Step::finish(PoolStatus::too_many);
            }
            const std::uint64_t next = s + copies * kTransitOne;
            // [data]: the CAS releases what the holder wrote to whoever adopts.
            return Step::move_to(keep ? next : next & ~holder_bit(slot));
        },
        [&](std::uint64_t) {
            atom(ch.pool->handed_on).fetch_add(copies, std::memory_order_relaxed); // statistic
            return PoolStatus::ok;
        });
}

PoolStatus adopt_reference(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                           std::uint32_t generation, PoolFault& fault) noexcept {
    (void)fault;
    // relaxed: the CAS decides (and acquires).
    return update_state(
        ch, index, std::memory_order_relaxed,
        [&](std::uint64_t s) {
            if (const auto refused = no_transit_for(s, generation)) {
                return Step::finish(*refused);
            }
            if ((block_holders(s) & holder_bit(slot)) != 0) {
                return Step::finish(PoolStatus::held_already);
            }
            // [data]: the CAS acquires the bytes the hander-on wrote.
            return Step::move_to((s - kTransitOne) | holder_bit(slot));
        },
        [&](std::uint64_t) {
            atom(ch.pool->adopted).fetch_add(1, std::memory_order_relaxed); // a statistic
            return PoolStatus::ok;
        });
}

PoolStatus drop_reference(const AttachedChannel& ch, std::uint32_t slot, std::uint32_t index,
                          std::uint32_t generation, PoolFault& fault) noexcept {
    const auto last = [](std::uint64_t s) { return (s & kReferencesMask) == kTransitOne; };
    // relaxed: the CAS decides (and acquires).
    return update_state(
        ch, index, std::memory_order_relaxed,
        [&](std::uint64_t s) {
            if (const auto refused = no_transit_for(s, generation)) {
                return Step::finish(*refused);
            }
            // The last reference is adopted first, so that giving the block back has a
            // holder that a reclaim can find if this process dies in between.
            // [data] as adopt_reference() (the give below releases again).
            return Step::move_to(last(s) ? (s - kTransitOne) | holder_bit(slot) : s - kTransitOne);
        },
        [&](std::uint64_t was) {
            atom(ch.pool->dropped).fetch_add(1, std::memory_order_relaxed); // a statistic
            return last(was) ? give_block(ch, slot, index, fault) : PoolStatus::ok;
        });
}

std::uint64_t reclaim_holder(const AttachedChannel& ch, std::uint32_t slot) noexcept {
    PoolFault fault;
    // An operation the dead holder announced and nobody completed yet: complete it first,
    // so that a block it was taking shows its bit below and one it was giving is free.
    // acquire: [link], [help].
    const std::uint64_t h = atom(ch.pool->head).load(std::memory_order_acquire);
    if (head_op(h) != PoolOp::none) {
        (void)complete(ch, h, fault);
    }
    std::uint64_t n = 0;
    for (std::uint64_t i = 0; i < ch.geo.slot_count; ++i) {
        const auto index = static_cast<std::uint32_t>(i);
        // relaxed: only selects; release_reference() decides with its own loads and CAS.
        const std::uint64_t s = atom(state_of(ch, index)).load(std::memory_order_relaxed);
        if ((block_holders(s) & holder_bit(slot)) == 0) {
            continue;
        }
        if (release_reference(ch, slot, index, block_generation(s), fault) == PoolStatus::ok) {
            ++n;
        }
    }
    if (n != 0) {
        atom(ch.pool->reclaimed).fetch_add(n, std::memory_order_relaxed); // a statistic
        wake_sleepers(space_wait(ch.control));
    }
    return n;
}

PoolUsage pool_usage(const AttachedChannel& ch) {
    PoolUsage u;
    u.held.assign(ch.geo.max_publishers + ch.geo.max_subscribers, 0);
    for (std::uint64_t i = 0; i < ch.geo.slot_count; ++i) {
        // relaxed: a snapshot for tools; nothing is addressed by it.
        const std::uint64_t s = atom_load(ch.block_states[i], std::memory_order_relaxed);
        if (block_is_free(s)) {
            continue;
        }
        ++u.in_use;
        u.in_transit += block_transit(s);
        for (std::uint32_t bits = block_holders(s); bits != 0; bits &= bits - 1) {
            const auto k = static_cast<std::size_t>(std::countr_zero(bits));
            if (k < u.held.size()) {
                ++u.held[k];
            }
        }
    }
    return u;
}

} // namespace shmbus::detail
