// Atomic access to integers that live in shared memory. Internal to shmbus: public only
// because the inline data path of <shmbus/endpoint.hpp> uses it.
//
// Segment memory is not a C++ object of any one process, so its fields are plain integers
// reached through std::atomic_ref. Every call site names the ordering it needs and says
// whom it pairs with; these helpers only shorten the spelling.
#pragma once

#include <atomic>

namespace shmbus::detail {

/// An atomic view of a word in shared memory.
template <typename T>
[[nodiscard]] inline std::atomic_ref<T> atom(T& field) noexcept {
    return std::atomic_ref<T>(field);
}

/// Loads a word in shared memory reached through a const path (a read-only mapping, a
/// const accessor). std::atomic_ref<T> wants a T& even to load, and C++20 has no
/// atomic_ref<const T>: this is the one place where the const is cast away for it, and it
/// only ever loads.
template <typename T>
[[nodiscard]] inline T atom_load(const T& field, std::memory_order order) noexcept {
    return std::atomic_ref<T>(const_cast<T&>(field)).load(order);
}

} // namespace shmbus::detail
