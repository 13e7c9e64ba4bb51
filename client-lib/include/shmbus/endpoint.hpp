// Publishers and subscribers: the data path.
//
// Every data-path call is noexcept, makes no system call unless it has to sleep or wake a
// sleeper, and copies nothing unless asked to (send / receive_copy). Zero-copy writes:
// try_reserve() -> fill data(i) and set_length(i) -> commit(). Zero-copy reads:
// try_receive() -> read message(i) in place -> release().
//
// The common case of a single-producer single-consumer queue runs inline, in the caller's
// code, through the one implementation of that algorithm (detail::DataPort in
// <shmbus/detail/spsc_ring.hpp>, which the library's out-of-line path calls too); every other
// case calls into the library.
//
// Thread-safety: one endpoint is used by one thread at a time. Several endpoints of one
// channel, in one or several processes, may run concurrently within the channel's
// max_publishers / max_subscribers.
//
// An endpoint belongs to the process that attached it. A child that inherits it through
// fork() must not use it (attach its own from the ChannelFiles instead), and destroying the
// inherited copy does not detach the parent's table entry.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/detail/spsc_ring.hpp>
#include <shmbus/error.hpp>
#include <shmbus/events.hpp>
#include <shmbus/export.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace shmbus {

namespace detail {
struct EndpointHooks; // internal (src/endpoint_hooks.hpp): the Client's detach hook
} // namespace detail

/// How an endpoint waits in its blocking calls (receive, and reserve/send on a full ring).
enum class WaitMode : std::uint32_t {
    spin = 0,     ///< busy-poll: lowest latency, one core at 100 % while waiting
    adaptive = 1, ///< spin briefly (yielding now and then), then yield, then sleep on a futex
    blocking = 2, ///< sleep on the futex at once: no CPU while idle
};

[[nodiscard]] SHMBUS_EXPORT std::string_view to_string(WaitMode mode) noexcept;

/// Options of one endpoint.
struct EndpointOptions {
    WaitMode wait{WaitMode::adaptive};
    /// Spin iterations before yielding (adaptive) — 0 picks the default.
    std::uint32_t spin_iterations{0};
    /// Endpoint table entry to take, as assigned by the daemon; -1 takes any free entry.
    std::int32_t endpoint_index{-1};
    /// Report peer events (events()) from attach on, and count them in the wait handle.
    bool peer_events{false};
};

/// Slots reserved by Publisher::try_reserve(), to fill in place and then commit().
/// A view into the ring: valid until commit() or the Publisher's destruction.
class WriteBatch {
public:
    /// An empty batch (size 0), to move a reserved one into.
    WriteBatch() = default;
    /// Number of slots reserved (>= 1).
    [[nodiscard]] std::size_t size() const noexcept { return count_; }
    /// Bytes each slot can hold (the channel's slot size).
    [[nodiscard]] std::uint64_t capacity() const noexcept { return slot_size_; }
    /// Writable bytes of slot `i` (i < size()).
    [[nodiscard]] std::span<std::byte> data(std::size_t i) const noexcept {
        return {slot(i) + data_offset_, static_cast<std::size_t>(slot_size_)};
    }
    /// Sets the length of message `i`; must be <= capacity() (checked by commit()). Every
    /// message of the batch needs one: commit() refuses a batch with a message whose length
    /// was never set (or does not fit), rather than publish the length that slot had a lap
    /// before. For that, each call also notes in the publisher's own memory (one bit per
    /// slot, not in the ring) whether the length fits, so that neither try_reserve() nor
    /// commit() touches the ring's lines to check.
    void set_length(std::size_t i, std::uint64_t length) const noexcept {
        // relaxed: the length word belongs to this writer until commit() publishes it.
        detail::atom(*reinterpret_cast<std::uint64_t*>(slot(i) + length_offset_))
            .store(length, std::memory_order_relaxed);
        std::uint64_t& word = fitting_[i / 64];
        const std::uint64_t bit = std::uint64_t{1} << (i % 64);
        word = length <= slot_size_ ? (word | bit) : (word & ~bit);
    }
    /// Sequence number message `i` will carry.
    [[nodiscard]] std::uint64_t sequence(std::size_t i) const noexcept { return first_ + i; }

private:
    friend class Publisher;
    friend struct detail::EndpointHooks; // the C ABI's batch, rebuilt from the DataPort
    WriteBatch(const detail::DataPort& p, std::uint64_t first, std::size_t count) noexcept
        : base_{p.slots}, stride_{p.stride}, mask_{p.mask},
          slot_size_{p.slot_size}, first_{first}, fitting_{p.fitting}, data_offset_{p.data_offset},
          length_offset_{p.length_offset}, count_{count} {}
    [[nodiscard]] std::byte* slot(std::size_t i) const noexcept {
        return base_ + ((first_ + i) & mask_) * stride_;
    }
    std::byte* base_{nullptr};
    std::uint64_t stride_{0};
    std::uint64_t mask_{0};
    std::uint64_t slot_size_{0};
    std::uint64_t first_{0};
    std::uint64_t* fitting_{nullptr}; // the publisher's DataPort::fitting
    std::uint32_t data_offset_{0};
    std::uint32_t length_offset_{0};
    std::size_t count_{0};
};

/// One message read in place.
struct Message {
    std::span<const std::byte> data;
    std::uint64_t sequence{0};
};

/// Messages taken by Subscriber::try_receive(), read in place until release().
class ReadBatch {
public:
    /// An empty batch (size 0), to move a received one into.
    ReadBatch() = default;
    /// Number of messages (>= 1).
    [[nodiscard]] std::size_t size() const noexcept { return count_; }
    /// Message `i` (i < size()). Its length was validated on receipt and is clamped again
    /// here, so a writer that scribbles on it later cannot make a reader overrun its slot.
    [[nodiscard]] Message message(std::size_t i) const noexcept {
        const std::byte* s = base_ + ((first_ + i) & mask_) * stride_;
        // relaxed: validated after the acquire of the slot's state at receipt; a later
        // change by a writer is clamped here and reported by release() (drop policy).
        const std::uint64_t len =
            std::min(detail::atom_load(*reinterpret_cast<const std::uint64_t*>(s + length_offset_),
                                       std::memory_order_relaxed),
                     slot_size_);
        return {{s + data_offset_, static_cast<std::size_t>(len)}, first_ + i};
    }
    /// Messages this subscriber lost (overwritten, drop policy) just before this batch.
    [[nodiscard]] std::uint64_t lost_before() const noexcept { return lost_before_; }

private:
    friend class Subscriber;
    friend struct detail::EndpointHooks; // the C ABI's batch, rebuilt from the DataPort
    ReadBatch(const detail::DataPort& p, std::uint64_t first, std::size_t count,
              std::uint64_t lost_before) noexcept
        : base_{p.slots}, stride_{p.stride}, mask_{p.mask}, slot_size_{p.slot_size}, first_{first},
          lost_before_{lost_before}, data_offset_{p.data_offset},
          length_offset_{p.length_offset}, count_{count} {}
    const std::byte* base_{nullptr};
    std::uint64_t stride_{0};
    std::uint64_t mask_{0};
    std::uint64_t slot_size_{0};
    std::uint64_t first_{0};
    std::uint64_t lost_before_{0};
    std::uint32_t data_offset_{0};
    std::uint32_t length_offset_{0};
    std::size_t count_{0};
};

/// What receive_copy() delivered.
struct Received {
    std::uint64_t size{0};        ///< bytes copied into the buffer
    std::uint64_t sequence{0};    ///< the message's sequence number
    std::uint64_t lost_before{0}; ///< messages lost just before this one (drop policy)
};

/// Writes messages into a channel (a producer, on a queue).
class SHMBUS_EXPORT Publisher {
public:
    /// Attaches to the channel in `files` (writable payload required) and takes an entry in
    /// its publisher table. Errc::limit_reached when max_publishers are attached,
    /// Errc::corrupted / Errc::version_mismatch when the segment fails validation.
    [[nodiscard]] static Result<Publisher> attach(ChannelFiles files,
                                                  const EndpointOptions& options = {}) noexcept;

    Publisher(Publisher&&) noexcept;
    Publisher& operator=(Publisher&&) noexcept;
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;
    /// Leaves the publisher table. A reservation not committed is published as abandoned.
    ~Publisher();

    /// Reserves up to `max_count` consecutive slots (at least one), each with its length
    /// unset (see WriteBatch::set_length()). Errc::would_block when the ring is full (block
    /// policy), Errc::invalid_argument for max_count 0 or while a batch is outstanding,
    /// Errc::corrupted naming the field if the segment is damaged.
    [[nodiscard]] Result<WriteBatch> try_reserve(std::size_t max_count = 1) noexcept {
        detail::DataPort& p = *port_;
        if (const std::size_t n = p.reserve_inline(max_count); n != 0) [[likely]] {
            return WriteBatch{p, p.pos, n};
        }
        return reserve_slow(max_count);
    }
    /// As try_reserve(), waiting up to `timeout` for room; Errc::timed_out then.
    [[nodiscard]] Result<WriteBatch> reserve(std::size_t max_count,
                                             std::chrono::nanoseconds timeout) noexcept;
    /// Publishes every slot of `batch`, with one index update where the algorithm allows,
    /// and wakes sleeping readers. Nothing is published, and the batch stays outstanding
    /// (set the length and commit again, or abandon it), on Errc::message_too_large (naming
    /// the sizes) when a length exceeds the slot size and on Errc::invalid_argument (naming
    /// the message) when a message's length was never set.
    [[nodiscard]] Result<void> commit(WriteBatch& batch) noexcept {
        detail::DataPort& p = *port_;
        if (p.commit_inline(batch.first_, batch.count_)) [[likely]] {
            batch.count_ = 0;
            if (p.peer_asleep()) [[unlikely]] {
                wake_readers();
            }
            return {};
        }
        return commit_slow(batch);
    }
    /// Gives the reserved slots back unpublished (readers skip them, counted as abandoned).
    void abandon(WriteBatch& batch) noexcept;

    /// Copies `message` into a slot and publishes it. Errc::message_too_large names both
    /// sizes; Errc::would_block when the ring is full.
    [[nodiscard]] Result<void> try_send(std::span<const std::byte> message) noexcept;
    /// As try_send(), waiting up to `timeout` for room.
    [[nodiscard]] Result<void> send(std::span<const std::byte> message,
                                    std::chrono::nanoseconds timeout) noexcept;

    /// Records that `count` messages were lost before they reached this publisher (a
    /// bridge's link was cut, its source overwrote them): it takes one slot, waiting up to
    /// `timeout` for room like send(), and every subscriber that reads past it counts
    /// `count` lost messages there, exactly as if a publisher had overwritten them
    /// (ReadBatch::lost_before(), Received::lost_before, lost(), the channel's dropped
    /// counter). Broadcast channels only: Errc::invalid_argument on a queue, or for a count of
    /// 0 or above 2^47; Errc::timed_out, Errc::invalid_argument while a batch is outstanding.
    [[nodiscard]] Result<void> record_gap(std::uint64_t count,
                                          std::chrono::nanoseconds timeout) noexcept;
    /// Reads up to `out.size()` peer events into `out` and returns how many (0 when none
    /// waits, or when the endpoint did not ask for them with EndpointOptions::peer_events).
    /// No system call; re-arms the wait handle when it returns fewer than `out.size()`.
    [[nodiscard]] std::size_t events(std::span<PeerEvent> out) noexcept;
    /// A descriptor that becomes readable when this publisher has something to do: room
    /// after a try_reserve()/try_send() found the ring full (block policy), or peer events.
    /// It stays readable until a call finds nothing left to do (a reserve that would block,
    /// an events() that runs out); poll it only while you have messages waiting to go, or
    /// call events() after each wake-up. For epoll, poll, select, libuv's uv_poll, asio, Qt.
    /// Owned by the publisher (do not close it); the first call starts a relay thread
    /// (docs/events-and-waiting.md). Errc::system_error if it cannot.
    [[nodiscard]] Result<int> wait_handle() noexcept;

    /// The channel this publisher writes to.
    [[nodiscard]] const ChannelInfo& info() const noexcept;
    /// This publisher's entry in the channel's publisher table.
    [[nodiscard]] std::uint32_t endpoint_index() const noexcept;

    struct Impl;

private:
    friend struct detail::EndpointHooks;
    explicit Publisher(std::unique_ptr<Impl> impl) noexcept;
    // The out-of-line data path: every algorithm, every case the inline one leaves.
    [[nodiscard]] Result<WriteBatch> reserve_slow(std::size_t max_count) noexcept;
    [[nodiscard]] Result<void> commit_slow(WriteBatch& batch) noexcept;
    void wake_readers() noexcept;
    std::unique_ptr<Impl> impl_;
    detail::DataPort* port_{nullptr}; // inside *impl_
};

/// Reads messages from a channel: every message of a broadcast channel from its own cursor,
/// or its share of a queue's messages (a consumer, on a queue).
class SHMBUS_EXPORT Subscriber {
public:
    /// Attaches to the channel in `files` and takes an entry in its subscriber table. On a
    /// broadcast channel the subscriber starts at the next message to be published.
    /// Errc::limit_reached when max_subscribers are attached.
    [[nodiscard]] static Result<Subscriber> attach(ChannelFiles files,
                                                   const EndpointOptions& options = {}) noexcept;

    Subscriber(Subscriber&&) noexcept;
    Subscriber& operator=(Subscriber&&) noexcept;
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;
    /// Leaves the subscriber table; on a queue, messages taken but not released are
    /// returned for another consumer.
    ~Subscriber();

    /// Takes up to `max_count` consecutive messages to read in place. Errc::would_block when
    /// none is ready; Errc::corrupted (naming sequence and field) for a message that fails
    /// validation, which is then skipped and counted.
    [[nodiscard]] Result<ReadBatch> try_receive(std::size_t max_count = 1) noexcept {
        detail::DataPort& p = *port_;
        const std::size_t n = p.receive_inline(max_count);
        if (n - 1 < detail::DataPort::kEmpty - 1) [[likely]] { // neither 0 nor kEmpty
            return ReadBatch{p, p.pos, n, 0};
        }
        if (n == detail::DataPort::kEmpty) {
            return make_error(Errc::would_block);
        }
        return receive_slow(max_count);
    }
    /// As try_receive(), waiting up to `timeout`; Errc::timed_out then.
    [[nodiscard]] Result<ReadBatch> receive(std::size_t max_count,
                                            std::chrono::nanoseconds timeout) noexcept;
    /// Frees the batch's slots. With the drop policy, Errc::lost if a publisher overwrote
    /// any of them while they were read: the data read must then be discarded, and every
    /// message of the batch is counted as lost (lost(), the channel's dropped counter).
    [[nodiscard]] Result<void> release(ReadBatch& batch) noexcept {
        detail::DataPort& p = *port_;
        if (p.release_inline(batch.first_, batch.count_)) [[likely]] {
            batch.count_ = 0;
            if (p.peer_asleep()) [[unlikely]] {
                wake_writers();
            }
            return {};
        }
        return release_slow(batch);
    }

    /// Copies the next message into `buffer` and releases it. Never returns a torn message:
    /// on the drop policy a message overwritten during the copy counts as lost and the next
    /// one is read. Errc::message_too_large (message kept) if `buffer` is too small.
    [[nodiscard]] Result<Received> try_receive_copy(std::span<std::byte> buffer) noexcept;
    /// As try_receive_copy(), waiting up to `timeout`.
    [[nodiscard]] Result<Received> receive_copy(std::span<std::byte> buffer,
                                                std::chrono::nanoseconds timeout) noexcept;

    /// Reads up to `out.size()` peer events into `out` and returns how many (0 when none
    /// waits, or when the endpoint did not ask for them with EndpointOptions::peer_events).
    /// A broadcast drop subscriber that was overrun gets a `lapped` event, once the receive
    /// that found the overrun has counted it. No system call; re-arms the wait handle when it
    /// returns fewer than `out.size()`.
    [[nodiscard]] std::size_t events(std::span<PeerEvent> out) noexcept;
    /// A descriptor that becomes readable when this subscriber has something to do: a
    /// message to receive, or peer events when asked for. It stays readable until a call
    /// finds nothing left to do (a receive that would block, an events() that runs out), so
    /// drain the endpoint on each wake-up. For epoll, poll, select, libuv's uv_poll, asio,
    /// Qt. Owned by the subscriber (do not close it); the first call starts a relay thread
    /// (docs/events-and-waiting.md). Errc::system_error if it cannot.
    [[nodiscard]] Result<int> wait_handle() noexcept;

    /// Messages this subscriber has lost in all (drop policy).
    [[nodiscard]] std::uint64_t lost() const noexcept;
    /// The channel this subscriber reads from.
    [[nodiscard]] const ChannelInfo& info() const noexcept;
    /// This subscriber's entry in the channel's subscriber table.
    [[nodiscard]] std::uint32_t endpoint_index() const noexcept;

    struct Impl;

private:
    friend struct detail::EndpointHooks;
    explicit Subscriber(std::unique_ptr<Impl> impl) noexcept;
    // The out-of-line data path: every algorithm, every case the inline one leaves.
    [[nodiscard]] Result<ReadBatch> receive_slow(std::size_t max_count) noexcept;
    [[nodiscard]] Result<void> release_slow(ReadBatch& batch) noexcept;
    void wake_writers() noexcept;
    std::unique_ptr<Impl> impl_;
    detail::DataPort* port_{nullptr}; // inside *impl_
};

/// Aliases for the queue roles.
using Producer = Publisher;
using Consumer = Subscriber;

} // namespace shmbus
