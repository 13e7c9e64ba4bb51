// Futex waits and wakes on words inside a shared segment (never FUTEX_PRIVATE: the waiters
// are in other processes).
#pragma once

#include <chrono>
#include <cstdint>

namespace shmbus::detail {

/// Sleeps while `*word == expected`, at most `timeout` (negative: no limit). Returns false
/// only if the timeout elapsed; spurious wakes, EINTR and EAGAIN return true.
bool futex_wait(std::uint32_t* word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept;
/// Wakes every sleeper on `word`.
void futex_wake_all(std::uint32_t* word) noexcept;

} // namespace shmbus::detail
