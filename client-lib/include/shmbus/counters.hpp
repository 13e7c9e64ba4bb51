// Counters: named 64-bit atomic cells shared by every process of a channel, for statistics,
// flags and sequence allocation.
//
// A counters channel has room for slot_count cells. A cell is created by the first writer
// that asks for its name (cell()); its name never changes after that, and it is never
// removed while the channel lives. Readers find existing cells only; their mapping of the
// cells is read-only, so the channel's ACL (`publish` = may write) decides who may change a
// value, and the kernel enforces it.
//
// Values are unsigned 64-bit and wrap: fetch_add past 2^64 - 1 continues from 0, as unsigned
// arithmetic does (subtract by adding the two's complement, or use fetch_sub). Every write
// is a single atomic instruction on the cell, lock-free, and never waits for another
// process. Orderings: load() is an acquire, store() a release, and the read-modify-writes
// acq_rel, so a value written after other data publishes that data to a reader that loads it.
//
// Thread-safety: a Counters endpoint is used by one thread at a time while cells are looked
// up; the Counter handles it returns may be used from any thread concurrently while the
// Counters endpoint lives.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/detail/shared_word.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>
#include <shmbus/export.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus {

namespace detail {
struct EndpointHooks;
} // namespace detail

/// Longest counter name, in bytes ([A-Za-z0-9_.:/-], like channel names).
inline constexpr std::size_t kMaxCounterNameLength = 47;

/// One cell of a counters channel. A small handle: valid while the Counters endpoint that
/// returned it lives. Writes on a handle from a reader are Errc::permission_denied.
class Counter {
public:
    Counter() = default;

    /// The current value. acquire: sees what the writer of that value wrote before it.
    [[nodiscard]] std::uint64_t load() const noexcept {
        return detail::atom_load(*value_, std::memory_order_acquire);
    }
    /// Sets the value (release).
    [[nodiscard]] Result<void> store(std::uint64_t v) noexcept {
        if (!writable_) [[unlikely]] {
            return read_only();
        }
        detail::atom(*value_).store(v, std::memory_order_release);
        return ok();
    }
    /// Adds `delta` (wrapping mod 2^64); returns the value before.
    [[nodiscard]] Result<std::uint64_t> fetch_add(std::uint64_t delta) noexcept {
        if (!writable_) [[unlikely]] {
            return read_only();
        }
        return detail::atom(*value_).fetch_add(delta, std::memory_order_acq_rel);
    }
    /// Subtracts `delta` (wrapping mod 2^64); returns the value before.
    [[nodiscard]] Result<std::uint64_t> fetch_sub(std::uint64_t delta) noexcept {
        if (!writable_) [[unlikely]] {
            return read_only();
        }
        return detail::atom(*value_).fetch_sub(delta, std::memory_order_acq_rel);
    }
    /// Replaces the value with `desired` if it is `expected`: true then. Otherwise false,
    /// and `expected` holds the value found.
    [[nodiscard]] Result<bool> compare_exchange(std::uint64_t& expected,
                                                std::uint64_t desired) noexcept {
        if (!writable_) [[unlikely]] {
            return read_only();
        }
        return detail::atom(*value_).compare_exchange_strong(
            expected, desired, std::memory_order_acq_rel, std::memory_order_acquire);
    }
    /// Raises the value to `v` if it is below (unsigned); returns the value before.
    [[nodiscard]] Result<std::uint64_t> fetch_max(std::uint64_t v) noexcept {
        if (!writable_) [[unlikely]] {
            return read_only();
        }
        auto cell = detail::atom(*value_);
        // relaxed: the CAS below orders; each failure means another writer changed it.
        std::uint64_t seen = cell.load(std::memory_order_relaxed);
        while (seen < v && !cell.compare_exchange_weak(seen, v, std::memory_order_acq_rel,
                                                       std::memory_order_relaxed)) {
        }
        return seen;
    }
    /// The cell's position in the channel (stable for the channel's life).
    [[nodiscard]] std::uint64_t index() const noexcept { return index_; }

private:
    friend class Counters;
    friend struct detail::EndpointHooks; // the C ABI's shmbus_counter, to and from a Counter
    Counter(std::uint64_t* value, std::uint64_t index, bool writable) noexcept
        : value_{value}, index_{index}, writable_{writable} {}
    [[nodiscard]] static Error read_only() {
        return make_error(Errc::permission_denied,
                          "this counter was opened for reading: open the channel as a writer "
                          "to change it");
    }
    std::uint64_t* value_{nullptr};
    std::uint64_t index_{0};
    bool writable_{false};
};

/// A cell's name and value, as listed.
struct CounterValue {
    std::string name;
    std::uint64_t value{0};
    std::uint64_t index{0};
};

/// An endpoint of a counters channel.
class SHMBUS_EXPORT Counters {
public:
    /// Attaches to the counters channel in `files` as a writer (Role::publisher) or reader
    /// (Role::subscriber). Errc::invalid_argument if the channel is of another kind; other
    /// errors as Blackboard::attach().
    [[nodiscard]] static Result<Counters> attach(ChannelFiles files, Role role,
                                                 const EndpointOptions& options = {}) noexcept;

    Counters(Counters&&) noexcept;
    Counters& operator=(Counters&&) noexcept;
    Counters(const Counters&) = delete;
    Counters& operator=(const Counters&) = delete;
    ~Counters();

    /// The cell called `name`. A writer creates it (value 0) if it does not exist yet.
    /// Errors: Errc::invalid_argument for a bad name, Errc::not_found (reader, no such cell),
    /// Errc::limit_reached when all slot_count cells are taken, Errc::would_block when
    /// another writer is creating a cell and does not finish within a bounded wait,
    /// Errc::corrupted naming the cell whose state is damaged.
    [[nodiscard]] Result<Counter> cell(std::string_view name) noexcept;
    /// Every cell that exists, in creation order. Errc::corrupted naming a damaged cell.
    [[nodiscard]] Result<std::vector<CounterValue>> list() const noexcept;
    /// How many cells the channel can hold.
    [[nodiscard]] std::uint64_t capacity() const noexcept;

    [[nodiscard]] const ChannelInfo& info() const noexcept;
    [[nodiscard]] std::uint32_t endpoint_index() const noexcept;
    [[nodiscard]] Role role() const noexcept;

    struct Impl;

private:
    friend struct detail::EndpointHooks;
    explicit Counters(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

} // namespace shmbus
