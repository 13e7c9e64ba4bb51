// Blackboard: shared state that every process reads and writes in place.
//
// A blackboard channel is an array of slot_count elements of slot_size bytes each (a sensor
// table, a parameter block, the levels of an order book). Writers replace one element or a
// range; readers copy an element out and always get one that some writer wrote whole, never
// a mix of two writes. Each element carries its own sequence word (a seqlock): a reader
// copies, then checks that the word did not move, and tries again if it did. Readers never
// block writers and never write to shared memory at all (their mapping is read-only).
//
// A reader that needs a few fields of a large element reads them in place instead
// (read_in_place()): a function of the reader's gets a view of the element in shared memory,
// takes what it needs, and the element's word is checked after it returns, as after a copy;
// if a writer moved it, the function runs again.
//
// Consistency is per element: a range is written and read element by element.
//
// Writers: several may write one channel (max_publishers). Each element has a writer lock
// inside its sequence word, naming the writer's table entry; a second writer of the same
// element at the same moment spins briefly, then gets Errc::would_block. A writer that dies
// mid-update leaves the element locked; once the daemon learns of the death (its control
// connection closed) it marks the element torn: readers then get Errc::corrupted naming the
// element until the next write, which repairs it.
//
// Thread-safety: one Blackboard is used by one thread at a time; open one per thread.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/detail/seqlock.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>
#include <shmbus/export.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <type_traits>

namespace shmbus {

namespace detail {
struct EndpointHooks;
} // namespace detail

/// How many times a read tries again when a writer moves the element under it before it
/// gives up with Errc::would_block.
inline constexpr std::uint32_t kBlackboardReadAttempts = 256;

/// One blackboard element as it lies in shared memory, for Blackboard::read_in_place(). Its
/// reads are relaxed atomic words, so reading while a writer writes is not a data race; what
/// they return belongs to one write only once read_in_place() has checked the element after
/// the function returned. Valid during that function only.
class ElementView {
public:
    /// Bytes in the element.
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
    /// Copies bytes [offset, offset + out.size()) of the element into `out`. Bytes beyond the
    /// element read as zeros: a read never leaves it.
    void copy(std::uint64_t offset, std::span<std::byte> out) const noexcept {
        for (std::uint64_t i = 0; i < out.size(); ++i) {
            out[i] = std::byte{0};
        }
        if (offset >= size_) {
            return;
        }
        const std::uint64_t n = out.size() < size_ - offset ? out.size() : size_ - offset;
        const auto* words = reinterpret_cast<const std::uint64_t*>(data_);
        for (std::uint64_t done = 0; done < n;) {
            const std::uint64_t at = offset + done;
            // relaxed: validated by read_in_place()'s re-load of the sequence word (seqlock.hpp).
            const std::uint64_t w = detail::atom_load(words[at / 8], std::memory_order_relaxed);
            const std::uint64_t skip = at % 8;
            const std::uint64_t take = 8 - skip < n - done ? 8 - skip : n - done;
            std::memcpy(out.data() + done, reinterpret_cast<const std::byte*>(&w) + skip, take);
            done += take;
        }
    }
    /// The `T` at byte `offset` of the element (as copy() reads it).
    template <typename T>
    [[nodiscard]] T get(std::uint64_t offset) const noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        std::array<std::byte, sizeof(T)> bytes;
        copy(offset, bytes);
        return std::bit_cast<T>(bytes);
    }

private:
    friend class Blackboard;
    ElementView(const std::byte* data, std::uint64_t size) noexcept : data_{data}, size_{size} {}
    const std::byte* data_;
    std::uint64_t size_;
};
/// How many times a write tries to take an element another writer holds before it gives up
/// with Errc::would_block.
inline constexpr std::uint32_t kBlackboardLockAttempts = 1u << 16;

class SHMBUS_EXPORT Blackboard {
public:
    /// Attaches to the blackboard in `files` as a writer (Role::publisher: writable payload
    /// required) or a reader (Role::subscriber), taking an entry of that role's table.
    /// Errc::invalid_argument if the channel is not a blackboard, Errc::limit_reached when
    /// the table is full, Errc::corrupted / version_mismatch when its headers fail validation.
    [[nodiscard]] static Result<Blackboard> attach(ChannelFiles files, Role role,
                                                   const EndpointOptions& options = {}) noexcept;

    Blackboard(Blackboard&&) noexcept;
    Blackboard& operator=(Blackboard&&) noexcept;
    Blackboard(const Blackboard&) = delete;
    Blackboard& operator=(const Blackboard&) = delete;
    ~Blackboard();

    /// Number of elements.
    [[nodiscard]] std::uint64_t size() const noexcept;
    /// Bytes per element.
    [[nodiscard]] std::uint64_t element_size() const noexcept;

    /// Copies element `index` into `out` (at least element_size() bytes; only that many are
    /// written) and returns its version: how many writes it has had (mod 2^32). Errors:
    /// Errc::invalid_argument (index out of range, buffer too small), Errc::would_block when
    /// writers moved the element kBlackboardReadAttempts times in a row or one holds it,
    /// Errc::corrupted naming the element when its writer died mid-update (torn) or its
    /// state word is damaged.
    [[nodiscard]] Result<std::uint64_t> read(std::uint64_t index,
                                             std::span<std::byte> out) const noexcept {
        // The uncontended case runs inline: one acquire load, the copy, one re-load.
        if (index < count_ && out.size() >= element_size_) [[likely]] {
            const std::byte* e = base_ + index * stride_;
            const auto& word = *reinterpret_cast<const std::uint64_t*>(e + kStateOffset);
            // acquire: pairs with the release store that ended the last write, so the copy
            // below sees at least that write's data.
            const std::uint64_t before = detail::atom_load(word, std::memory_order_acquire);
            if ((before & 0xFFFF'FFFFULL) == 0) [[likely]] {
                detail::seqlock_copy_out(out.data(), e + kDataOffset,
                                         static_cast<std::size_t>(element_size_));
                detail::seqlock_read_fence();
                // relaxed: ordered after the copy by the fence (seqlock.hpp).
                if (detail::atom_load(word, std::memory_order_relaxed) == before) [[likely]] {
                    return before >> 32;
                }
            }
        }
        return read_slow(index, out);
    }
    /// Reads element `index` in place: calls `read(const ElementView&)`, which takes what it
    /// needs of the element, then checks that no writer changed the element meanwhile; if one
    /// did, calls `read` again, up to kBlackboardReadAttempts times. On success returns the
    /// element's version, and what the last call of `read` saw is one whole write. Until
    /// then `read` may see parts of two writes: it must only keep what it read (in variables
    /// its caller uses after a success), not act on it, and must not throw. Errors as read().
    template <typename Read>
    [[nodiscard]] Result<std::uint64_t> read_in_place(std::uint64_t index,
                                                      Read&& read) const noexcept {
        return read_in_place_with(
            index,
            [](const ElementView& view, void* ctx) noexcept {
                (*static_cast<std::remove_reference_t<Read>*>(ctx))(view);
            },
            &read);
    }
    /// Copies `out.size() / element_size()` elements starting at `first`, each consistent on
    /// its own. Errors as read(), naming the element; `out.size()` must be a multiple of the
    /// element size.
    [[nodiscard]] Result<void> read_range(std::uint64_t first,
                                          std::span<std::byte> out) const noexcept;

    /// Replaces element `index` with `data` (at most element_size() bytes; the rest of the
    /// element becomes zeros). Errors: Errc::permission_denied for a reader,
    /// Errc::invalid_argument (index or size), Errc::would_block when another writer holds
    /// the element for kBlackboardLockAttempts tries.
    [[nodiscard]] Result<void> write(std::uint64_t index, std::span<const std::byte> data) noexcept;
    /// Writes `data.size() / element_size()` consecutive elements from `first`, element by
    /// element. `data.size()` must be a multiple of the element size. Errors as write().
    [[nodiscard]] Result<void> write_range(std::uint64_t first,
                                           std::span<const std::byte> data) noexcept;
    /// Read-modify-write of element `index` under its writer lock: `edit` gets the element's
    /// current bytes and changes them in place; they are then published as one write.
    /// `edit` must not throw. Errors as write().
    template <typename Edit>
    [[nodiscard]] Result<void> update(std::uint64_t index, Edit&& edit) noexcept {
        return update_with(
            index,
            [](std::span<std::byte> bytes, void* ctx) noexcept {
                (*static_cast<std::remove_reference_t<Edit>*>(ctx))(bytes);
            },
            &edit);
    }

    /// The channel.
    [[nodiscard]] const ChannelInfo& info() const noexcept;
    /// This endpoint's entry in its role's table.
    [[nodiscard]] std::uint32_t endpoint_index() const noexcept;
    /// Role::publisher for a writer, Role::subscriber for a reader.
    [[nodiscard]] Role role() const noexcept;

    struct Impl;

private:
    friend struct detail::EndpointHooks;
    explicit Blackboard(std::unique_ptr<Impl> impl) noexcept;
    [[nodiscard]] Result<std::uint64_t> read_slow(std::uint64_t index,
                                                  std::span<std::byte> out) const noexcept;
    [[nodiscard]] Result<void>
    update_with(std::uint64_t index, void (*edit)(std::span<std::byte>, void*), void* ctx) noexcept;
    [[nodiscard]] Result<std::uint64_t> read_in_place_with(std::uint64_t index,
                                                           void (*read)(const ElementView&, void*),
                                                           void* ctx) const noexcept;
    // Where an element's sequence word and data sit (shm/shared_state.hpp checks these).
    static constexpr std::size_t kStateOffset = 8;
    static constexpr std::size_t kDataOffset = 16;
    std::unique_ptr<Impl> impl_;
    // Copies of the validated geometry, for the inline read path.
    const std::byte* base_{nullptr};
    std::uint64_t stride_{0};
    std::uint64_t count_{0};
    std::uint64_t element_size_{0};
};

} // namespace shmbus
