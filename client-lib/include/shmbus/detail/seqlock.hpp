// The seqlock technique for data in shared memory, correct under the C++ memory model.
// Internal to shmbus: public only because the inline read path of <shmbus/blackboard.hpp>
// uses it.
//
// A seqlock reader copies data that a writer may be changing at the same moment, then
// checks the sequence word and throws the copy away if it moved. Copying with plain loads
// would be a data race (undefined behaviour, and what ThreadSanitizer reports); so the data
// is copied as relaxed atomic 64-bit words, which compile to the same plain moves. The
// orderings follow H.-J. Boehm, "Can seqlocks get along with programming language memory
// models?" (MSPC 2012):
//   writer: take the word (RMW, acquire) -> seqlock_write_fence() -> relaxed data stores
//           -> release store of the new word
//   reader: acquire load of the word -> relaxed data loads -> seqlock_read_fence()
//           -> relaxed re-load of the word; the copy is good if the word is unchanged.
// The fences make "the reader saw a data store of a write" imply "its re-load sees that
// write's lock (or later)". On x86, loads are not reordered with loads nor stores with
// stores, so a compiler barrier is the whole fence there (and GCC's ThreadSanitizer does
// not support atomic_thread_fence); elsewhere it is the real fence.
#pragma once

#include <shmbus/detail/shared_word.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shmbus::detail {

/// Orders the relaxed data loads of a seqlock reader before its re-load of the word.
inline void seqlock_read_fence() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    std::atomic_signal_fence(std::memory_order_acquire);
#else
    std::atomic_thread_fence(std::memory_order_acquire);
#endif
}

/// Orders a seqlock writer's taking of the word before its relaxed data stores.
inline void seqlock_write_fence() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    std::atomic_signal_fence(std::memory_order_release);
#else
    std::atomic_thread_fence(std::memory_order_release);
#endif
}

/// Copies `n` bytes out of shared memory at `src` (8-byte aligned, readable up to
/// `n` rounded up to 8) into `dst`, as relaxed atomic words.
inline void seqlock_copy_out(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
    const auto* words = reinterpret_cast<const std::uint64_t*>(src);
    std::size_t i = 0;
    // Four words at a time: the compiler keeps atomic loads one by one, so the loop's own
    // count, compare and branch per word would cost as much as the copy of a small element.
    for (; i + 32 <= n; i += 32) {
        // relaxed: validated by the caller's re-load of the sequence word (see above).
        const std::uint64_t w0 = atom_load(words[i / 8], std::memory_order_relaxed);
        const std::uint64_t w1 = atom_load(words[i / 8 + 1], std::memory_order_relaxed);
        const std::uint64_t w2 = atom_load(words[i / 8 + 2], std::memory_order_relaxed);
        const std::uint64_t w3 = atom_load(words[i / 8 + 3], std::memory_order_relaxed);
        std::memcpy(dst + i, &w0, 8);
        std::memcpy(dst + i + 8, &w1, 8);
        std::memcpy(dst + i + 16, &w2, 8);
        std::memcpy(dst + i + 24, &w3, 8);
    }
    for (; i + 8 <= n; i += 8) {
        // relaxed: validated by the caller's re-load of the sequence word (see above).
        const std::uint64_t w = atom_load(words[i / 8], std::memory_order_relaxed);
        std::memcpy(dst + i, &w, 8);
    }
    if (i < n) {
        const std::uint64_t w = atom_load(words[i / 8], std::memory_order_relaxed);
        std::memcpy(dst + i, &w, n - i);
    }
}

/// Copies `n` bytes from `src` into shared memory at `dst` (8-byte aligned, writable up to
/// `n` rounded up to 8; the bytes past `n` in the last word become zeros), as relaxed
/// atomic words.
inline void seqlock_copy_in(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
    auto* words = reinterpret_cast<std::uint64_t*>(dst);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, src + i, 8);
        // relaxed: published by the writer's release store of the sequence word.
        atom(words[i / 8]).store(w, std::memory_order_relaxed);
    }
    if (i < n) {
        std::uint64_t w = 0;
        std::memcpy(&w, src + i, n - i);
        atom(words[i / 8]).store(w, std::memory_order_relaxed);
    }
}

/// Sets `n` bytes (rounded up to 8) of shared memory at `dst` to zero, as relaxed words.
inline void seqlock_zero(std::byte* dst, std::size_t n) noexcept {
    auto* words = reinterpret_cast<std::uint64_t*>(dst);
    for (std::size_t i = 0; i < (n + 7) / 8; ++i) {
        atom(words[i]).store(0, std::memory_order_relaxed); // published as above
    }
}

} // namespace shmbus::detail
