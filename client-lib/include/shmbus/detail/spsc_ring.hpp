// The single-producer single-consumer queue: the one implementation of its algorithm.
// Internal to shmbus: public only because the inline fast path of <shmbus/endpoint.hpp>
// runs it in the application's code; the library's out-of-line path (src/publisher.cpp,
// src/subscriber.cpp) calls the same functions for everything the inline path leaves to it.
//
// The ring (see docs/memory-layout.md): slots `stride` bytes apart, each starting with a
// length word and a state word. The producer keeps its position `pos` in a local; it fills
// slots, then marks each committed(p) in the slot's state — the slot's first line, which it
// writes anyway — and stores the publish index `head` once per batch. The consumer keeps its
// position in a local too and polls the state of the slot at it: a message costs no cache
// line beyond its slot's. Releasing is one store of `consumer_pos`, which the producer reads
// only when its cached copy `cached_peer` says the ring is full (rigtorp's SPSCQueue).
//
// How positions are spelled in a state word (the encoding of src/shm/atomics.hpp) comes from
// the library at attach, in DataPort's state_* fields, never from constants compiled into the
// application: a change of encoding is made in atomics.hpp alone.
//
// Memory ordering, the pairs every SPSC site refers to:
//   [slot]   publish()'s release store of committed(p) -> is_committed()'s acquire load: the
//            slot's bytes and length, written before, are visible to the consumer after.
//   [room]   consume()'s release store of consumer_pos -> load_consumer_pos()'s acquire
//            load: the consumer's reads of the slots it released happen before the producer
//            overwrites them.
//   [head]   publish()'s release store of head -> the acquire loads of head by the consumer
//            (telling an empty ring from a damaged state) and by a successor producer at
//            attach. No reader polls it for data.
//   [sleep]  peer_asleep()'s read-modify-write of the other side's waiter count, after the
//            store above that made the new state visible: the handshake with a sleeper
//            described at wake_sleepers() in src/shm/endpoint_table.hpp. Taken only while
//            the other side has endpoints that announced they may sleep (`peer_sleepers`);
//            why the plain load of that count is enough is src/shm/sleep_announcement.hpp.
//
// Trust: every word read from the segment is untrusted. The inline path only compares what
// it reads with the one value it expects and hands anything else to the library, which
// bounds-checks it and reports Errc::corrupted; nothing here indexes memory by such a value.
//
// Thread-safety: a DataPort belongs to one endpoint, used by one thread at a time.
#pragma once

#include <shmbus/detail/shared_word.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shmbus::detail {

/// The part of an endpoint that the inline data path works on. The library fills it at
/// attach and keeps its own batch bookkeeping here, for every channel kind. The inline code
/// takes only the common case of the single-producer single-consumer algorithm (`spsc`: an
/// SPSC queue, or a block broadcast channel's sole publisher and its subscribers, whose
/// rings follow the same rules) with room or a message ready, and calls into the library
/// for everything else: the other algorithms, a full or empty ring, a sleeper to wake, a
/// value that fails its check, a new depth to record, and every error. What it knows of the segment
/// (where the slots are, how a committed state is spelled) it reads from here: a library with
/// another layout fills in other values, or leaves `spsc` false. Part of the ABI of libshmbus.so.0:
/// the fields, their order and their meaning.
struct DataPort {
    // Set at attach, constant after.
    std::byte* slots{nullptr};
    std::uint64_t stride{0};
    std::uint64_t mask{0}; // slot_count - 1
    std::uint64_t slot_size{0};
    std::uint64_t* head{nullptr};         // the publish index, in the payload region
    std::uint64_t* consumer_pos{nullptr}; // the consumer's position, in the control region
    std::uint32_t* peer_waiters{nullptr}; // how many of those this side wakes are asleep
    std::uint64_t state_pos_mask{0};      // committed state of position p:
    std::uint64_t state_committed{0};     //   ((p & state_pos_mask) << state_shift)
    std::uint32_t state_shift{0};         //   | state_committed; as created: | state_free
    std::uint64_t state_free{0};
    std::uint32_t length_offset{0}; // offsets of the fields of a slot
    std::uint32_t state_offset{0};
    std::uint32_t data_offset{0};
    // The inline path applies to this endpoint: an SPSC queue's producer or consumer, the
    // sole publisher of a block broadcast channel (the slowest subscriber is its consumer),
    // or a subscriber of one (its cursor is its consumer position). Set at attach, before
    // the endpoint is used;
    // cleared at most once, possibly from another thread, when the library takes every
    // later call of this endpoint (a daemon refused it back): read it with inline_path().
    bool spsc{false};
    // Changed by the data path, inline or not.
    bool pending{false}; // a batch is outstanding
    std::size_t pending_count{0};
    std::uint64_t pending_first{0};
    std::uint64_t pos{0}; // SPSC publisher: next to write; SPSC or broadcast reader: next to read
    std::uint64_t cached_peer{0}; // SPSC publisher: the consumer position last read
    std::uint64_t high_water{0};  // publisher: the largest ring depth recorded (<= capacity)
    std::uint64_t empty_polls{0}; // SPSC reader: try_receive() calls that found nothing
    // Set at attach, constant after (last, so that the fields above keep their offsets): how
    // many endpoints of the other side may sleep, or a constant 1 in a process whose wakers
    // must always take the handshake.
    const std::uint32_t* peer_sleepers{nullptr};
    // Reader: the library holds something for the next receive (messages lost just before
    // it, which the batch must report), so the inline path leaves that receive to it.
    bool defer_to_library{false};
    // Writer: one bit per slot of the outstanding batch, set by set_length() while the
    // slot's length fits it, so that commit refuses a slot whose length was never set rather
    // than publish the length it held a lap before. In the endpoint's own memory (set at
    // attach, ceil(capacity / 64) words), never in the segment: the check stores nothing into
    // the ring's lines. Cleared for each batch by begin_write_batch().
    std::uint64_t* fitting{nullptr};

    /// Whether the inline path applies (`spsc`). relaxed: an atomic load only because
    /// another thread may clear the flag, which costs nothing over a plain load of a byte;
    /// the library orders what it needs (the reason for the change) by an acquire of its
    /// own.
    [[nodiscard]] bool inline_path() const noexcept {
        return atom_load(spsc, std::memory_order_relaxed);
    }

    // ---- where things are ----
    [[nodiscard]] std::uint64_t capacity() const noexcept { return mask + 1; }
    [[nodiscard]] std::byte* slot(std::uint64_t p) const noexcept {
        return slots + (p & mask) * stride;
    }
    [[nodiscard]] std::atomic_ref<std::uint64_t> word(std::uint64_t p,
                                                      std::uint32_t offset) const noexcept {
        return atom(*reinterpret_cast<std::uint64_t*>(slot(p) + offset));
    }
    /// The state word of position p's slot once p is committed.
    [[nodiscard]] constexpr std::uint64_t committed(std::uint64_t p) const noexcept {
        return ((p & state_pos_mask) << state_shift) | state_committed;
    }
    /// The state word of position p's slot as the channel was created (first lap).
    [[nodiscard]] constexpr std::uint64_t unwritten(std::uint64_t p) const noexcept {
        return ((p & state_pos_mask) << state_shift) | state_free;
    }

    // ---- the batch outstanding (every algorithm) ----
    void begin_batch(std::uint64_t first, std::size_t count) noexcept {
        pending = true;
        pending_first = first;
        pending_count = count;
    }
    void end_batch() noexcept { pending = false; }
    /// Whether the batch starting at `first` with `count` slots is the one outstanding.
    [[nodiscard]] bool is_outstanding(std::uint64_t first, std::size_t count) const noexcept {
        return pending && first == pending_first && count == pending_count;
    }
    /// Begins a writer's batch: as begin_batch(), with no length set yet.
    void begin_write_batch(std::uint64_t first, std::size_t count) noexcept {
        begin_batch(first, count);
        std::fill_n(fitting, (count + 63) / 64, std::uint64_t{0});
    }
    /// Whether every one of the `count` slots of the outstanding batch has a length set that
    /// fits it (its bit in `fitting`).
    [[nodiscard]] bool lengths_fit(std::size_t count) const noexcept {
        const std::size_t whole = count / 64;
        for (std::size_t w = 0; w < whole; ++w) {
            if (fitting[w] != ~std::uint64_t{0}) {
                return false;
            }
        }
        const std::size_t rest = count % 64;
        const std::uint64_t want = (std::uint64_t{1} << rest) - 1;
        return rest == 0 || (fitting[whole] & want) == want;
    }
    /// Index of the first of the outstanding batch's `count` slots without a fitting length
    /// set, or `count` if every one has one.
    [[nodiscard]] std::size_t first_unfit_length(std::size_t count) const noexcept {
        for (std::size_t i = 0; i < count; ++i) {
            if ((fitting[i / 64] >> (i % 64) & 1U) == 0) {
                return i;
            }
        }
        return count;
    }

    // ---- SPSC producer ----
    /// Ring depth by the cached consumer position: an upper bound of the real depth, since
    /// the consumer only moves forward.
    [[nodiscard]] std::uint64_t depth_by_cache() const noexcept { return pos - cached_peer; }
    /// The inline reservation's condition: the depth by the cached consumer position is below
    /// the recorded high-water mark. The statistic takes part because the high-water mark
    /// (never above the capacity) both proves room — at least one slot is free by the cache,
    /// with no read of the consumer's line — and says that this reservation reaches no depth
    /// the channel's `high_water` counter has not recorded, so that no store to it is due.
    /// When it is false, the library's reserve does what is due: re-read the consumer
    /// position, or record the new depth.
    [[nodiscard]] bool room_within_high_water() const noexcept {
        return depth_by_cache() < high_water;
    }
    /// How many slots a reservation of up to `max_count` gets, by the cached position.
    [[nodiscard]] std::size_t reservable(std::size_t max_count) const noexcept {
        return static_cast<std::size_t>(
            std::min<std::uint64_t>(max_count, capacity() - depth_by_cache()));
    }
    /// The consumer's position; untrusted (check with consumer_pos_plausible()).
    [[nodiscard]] std::uint64_t load_consumer_pos() const noexcept {
        // acquire: [room]; the slots below it are no longer being read.
        return atom(*consumer_pos).load(std::memory_order_acquire);
    }
    /// Whether consumer position `t` lies within one ring behind the producer.
    [[nodiscard]] bool consumer_pos_plausible(std::uint64_t t) const noexcept {
        return t <= pos && pos - t <= capacity();
    }
    /// Publishes `count` filled slots from `pos`: marks each committed, advances `pos` and
    /// stores `head`. The caller ends the batch and then checks peer_asleep().
    void publish(std::size_t count) noexcept {
        for (std::size_t i = 0; i < count; ++i) {
            // release: [slot]; each slot's bytes and length happen before the consumer's
            // acquire of its state.
            word(pos + i, state_offset).store(committed(pos + i), std::memory_order_release);
        }
        pos += count;
        // release: [head]; for tools, the consumer's emptiness check and a successor.
        atom(*head).store(pos, std::memory_order_release);
    }

    // ---- SPSC consumer ----
    /// Whether position p's slot holds its committed message (its length not yet checked).
    [[nodiscard]] bool is_committed(std::uint64_t p) const noexcept {
        // acquire: [slot]; the slot's bytes and length are complete.
        return word(p, state_offset).load(std::memory_order_acquire) == committed(p);
    }
    /// Messages committed from `pos` on, at most `max_count`, whose lengths fit their slot.
    [[nodiscard]] std::size_t ready(std::size_t max_count) const noexcept {
        std::size_t n = 0;
        for (; n < max_count; ++n) {
            const std::uint64_t p = pos + n;
            // relaxed length: ordered after is_committed()'s acquire.
            if (!is_committed(p) ||
                word(p, length_offset).load(std::memory_order_relaxed) > slot_size) {
                break;
            }
        }
        return n;
    }
    /// Whether the slot at `pos` still holds the previous lap's message, or is as the
    /// channel was created: the ring is then empty without a doubt, and nobody needs to look
    /// at the producer's index. Anything else (a message too long, a damaged state) is for
    /// the library to tell apart.
    [[nodiscard]] bool looks_empty() const noexcept {
        // relaxed: only compared; nothing is read on the strength of it.
        const std::uint64_t s = word(pos, state_offset).load(std::memory_order_relaxed);
        return s == committed(pos - capacity()) || s == unwritten(pos);
    }
    /// Frees `count` slots from `pos` (read, or skipped as damaged) for the producer. The
    /// caller then checks peer_asleep().
    void consume(std::size_t count) noexcept {
        pos += count;
        // release: [room]; our reads of the slots happen before the producer's acquire.
        atom(*consumer_pos).store(pos, std::memory_order_release);
    }

    // ---- both sides ----
    /// Whether the other side has sleepers to wake. Call after the store that made the new
    /// state visible: [sleep].
    [[nodiscard]] bool peer_asleep() const noexcept {
        // The store before stays before the load below in the code we run, so that a
        // membarrier in an announcing sleeper can order them ([sleep]); no fence here.
        std::atomic_signal_fence(std::memory_order_seq_cst);
        // relaxed: [sleep]; a count of 0 means that nobody on the other side can be asleep.
        if (atom_load(*peer_sleepers, std::memory_order_relaxed) == 0) [[likely]] {
            return false;
        }
        // acq_rel read-modify-write: [sleep].
        return atom(*peer_waiters).fetch_add(0, std::memory_order_acq_rel) != 0;
    }
    /// The bytes of position p's slot.
    [[nodiscard]] std::byte* data(std::uint64_t p) const noexcept { return slot(p) + data_offset; }
    /// The length of the message at position p, received by this reader: validated at
    /// receipt and clamped here again, so that a writer that scribbles on it later cannot
    /// make the reader overrun the slot.
    [[nodiscard]] std::uint64_t length(std::uint64_t p) const noexcept {
        // relaxed: read after the acquire of the slot's state at receipt; a later change by
        // a writer is clamped here and reported by the release (drop policy).
        return std::min(word(p, length_offset).load(std::memory_order_relaxed), slot_size);
    }

    // ---- the inline calls ----
    // Each takes the common case whole or changes nothing and says that the library must
    // take the call. The C++ endpoints (endpoint.hpp) and the C ABI's data path (in the
    // library) both run these, so that the inline rules live here alone. "SPSC" is the
    // algorithm: an SPSC queue's endpoints, a block broadcast channel's sole publisher and
    // its subscribers (`spsc`).

    /// SPSC writer: reserves up to `max_count` slots from `pos` when the inline path applies
    /// and the cache proves room (room_within_high_water()), and begins the batch; returns how
    /// many, or 0 for the library.
    [[nodiscard]] std::size_t reserve_inline(std::size_t max_count) noexcept {
        if (inline_path() && !pending && max_count != 0 && room_within_high_water()) [[likely]] {
            const std::size_t n = reservable(max_count);
            begin_write_batch(pos, n);
            return n;
        }
        return 0;
    }
    /// SPSC writer: publishes the batch of `count` slots from `first` if it is the one
    /// outstanding and every length fits (was set), and ends it: true; the caller then wakes
    /// a sleeping reader if peer_asleep(). False for the library (which names what is wrong).
    [[nodiscard]] bool commit_inline(std::uint64_t first, std::size_t count) noexcept {
        if (inline_path() && is_outstanding(first, count) && lengths_fit(count)) [[likely]] {
            publish(count);
            end_batch();
            return true;
        }
        return false;
    }
    /// What receive_inline() returns when the ring is empty without a doubt: the call would
    /// block.
    static constexpr std::size_t kEmpty = ~std::size_t{0};
    /// SPSC reader: takes up to `max_count` messages ready from `pos` and begins the batch;
    /// returns how many, kEmpty when none is ready and the ring is surely empty, or 0 for the
    /// library (also when it holds a loss that this receive must report: defer_to_library).
    [[nodiscard]] std::size_t receive_inline(std::size_t max_count) noexcept {
        if (inline_path() && !pending && !defer_to_library && max_count != 0) [[likely]] {
            const std::size_t n = ready(max_count);
            if (n != 0) [[likely]] {
                begin_batch(pos, n);
                return n;
            }
            // Every 256th empty poll goes to the library even when the slot looks empty, so
            // that a damaged state that merely looks old is found too; the library also
            // reads the producer's index. Any other empty poll touches only the one line the
            // producer writes next.
            if ((++empty_polls & 255) != 0 && looks_empty()) [[likely]] {
                return kEmpty;
            }
        }
        return 0;
    }
    /// SPSC reader: frees the batch of `count` messages from `first` if it is the one
    /// outstanding, and ends it: true; the caller then wakes a sleeping writer if
    /// peer_asleep(). False for the library.
    [[nodiscard]] bool release_inline(std::uint64_t first, std::size_t count) noexcept {
        if (inline_path() && is_outstanding(first, count)) [[likely]] {
            end_batch();
            consume(count);
            return true;
        }
        return false;
    }
};

} // namespace shmbus::detail
