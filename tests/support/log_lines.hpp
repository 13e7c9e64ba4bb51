// LogLines: what a Client says through ClientOptions::log, kept for a test to wait on.
//
// Threads: the sink runs on the Client's threads (the caller's, and the background reconnect
// thread); the test thread reads and waits. Every wait has a deadline and ends on the line
// itself, never on a sleep.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::test {

class LogLines {
public:
    /// How long wait_for() waits by default (sanitizer builds on a loaded machine are slow).
    static constexpr std::chrono::seconds kWait{60};

    /// The function to give as ClientOptions::log. `this` must outlive the Client.
    [[nodiscard]] std::function<void(std::string_view)> sink() {
        return [this](std::string_view line) {
            const std::lock_guard lock{mutex_};
            lines_.emplace_back(line);
            changed_.notify_all();
        };
    }
    /// Waits until `count` lines containing `needle` have been said; false at the deadline.
    bool wait_for(std::string_view needle, std::size_t count = 1,
                  std::chrono::steady_clock::duration wait = kWait) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, wait, [&] { return count_locked(needle) >= count; });
    }
    [[nodiscard]] std::size_t count(std::string_view needle) {
        const std::lock_guard lock{mutex_};
        return count_locked(needle);
    }
    /// Whether a line containing `needle` has been said.
    [[nodiscard]] bool contains(std::string_view needle) { return count(needle) > 0; }
    /// Every line said so far, in order.
    [[nodiscard]] std::vector<std::string> lines() {
        const std::lock_guard lock{mutex_};
        return lines_;
    }
    /// Every line said so far, one per line.
    [[nodiscard]] std::string all() {
        const std::lock_guard lock{mutex_};
        std::string out;
        for (const auto& l : lines_) {
            out += l + "\n";
        }
        return out;
    }

private:
    std::size_t count_locked(std::string_view needle) const {
        return static_cast<std::size_t>(
            std::count_if(lines_.begin(), lines_.end(), [&](const std::string& l) {
                return l.find(needle) != std::string::npos;
            }));
    }
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> lines_;
};

} // namespace shmbus::test
