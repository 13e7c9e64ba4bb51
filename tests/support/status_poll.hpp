// Waiting on a status that has no event to wait on (a bridge's state, its counters): the
// one place a test polls, briefly, up to the generous deadline.
#pragma once

#include "daemon_process.hpp"

#include <chrono>
#include <thread>

namespace shmbus::test {

/// Whether `pred` became true before the generous deadline.
template <typename Pred>
bool wait_until(Pred pred) {
    const auto deadline = generous_deadline();
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    return false;
}

} // namespace shmbus::test
