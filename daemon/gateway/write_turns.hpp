// The write side of a bridge link, taken in turns: the highest priority first, and within a
// priority whoever asked first. docs/gateway.md, "Priorities".
//
// A link's frames are written whole, one writer at a time. With a plain std::mutex a thread
// that writes frame after frame (a stream sending a large message in fragments) may take
// the lock back before a waiting thread runs, and hold a small-message stream up for as long
// as it has fragments. WriteTurns queues the writers that wait, one queue per priority, and
// hands the link to the front of the highest non-empty queue when the writer before lets
// go. A writer asks again for each frame, at the back of its queue, so the streams of one
// priority write one frame per turn, round-robin (a message in fragments delays another
// stream's frame of its priority by at most the frames queued before it, one per writer),
// and a higher priority's frame waits for at most the one frame being written.
//
// Priorities 0..kMaxPriority are the exports' (their rules' `priority`); kControlPriority,
// above them all, is the session's own frames (offers, grants, credits, pings, goodbyes),
// which therefore never queue behind data: an importer's credits always get through, so
// strict priority cannot deadlock the link. A lower priority's frames wait while a higher one
// keeps the link busy; that is what priorities are for.
//
// Any thread; one Turn held at a time per thread.
#pragma once

#include "gateway/bridge_rules.hpp"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <mutex>

namespace shmbus::gateway {

class WriteTurns {
public:
    /// The levels: the exports' priorities, then the session's own frames.
    static constexpr std::size_t kLevels = std::size_t{kMaxPriority} + 2;
    static constexpr unsigned kControlPriority = kLevels - 1;

    /// How many writers wait at each level, now and at most since the link began.
    struct Waiting {
        std::array<std::uint32_t, kLevels> now{};
        std::array<std::uint32_t, kLevels> most{};
    };

    /// Waits for this writer's turn at `priority` (at most kControlPriority).
    void lock(unsigned priority) {
        std::unique_lock l{mu_};
        if (!busy_) {
            busy_ = true;
            return;
        }
        const std::size_t level = std::min<std::size_t>(priority, kControlPriority);
        const std::uint64_t ticket = next_++;
        auto& queue = queues_[level];
        queue.push_back(ticket);
        most_[level] =
            std::max<std::uint32_t>(most_[level], static_cast<std::uint32_t>(queue.size()));
        cv_.wait(l, [&] { return granted_ == ticket; });
    }

    /// Ends this writer's turn: the next writer of the highest priority waiting writes.
    void unlock() {
        {
            std::lock_guard l{mu_};
            for (std::size_t level = kLevels; level-- > 0;) {
                if (!queues_[level].empty()) {
                    granted_ = queues_[level].front(); // busy_ stays: the turn passes on
                    queues_[level].pop_front();
                    break;
                }
                if (level == 0) {
                    busy_ = false;
                    return;
                }
            }
        }
        cv_.notify_all();
    }

    [[nodiscard]] Waiting waiting() const {
        std::lock_guard l{mu_};
        Waiting w;
        for (std::size_t level = 0; level < kLevels; ++level) {
            w.now[level] = static_cast<std::uint32_t>(queues_[level].size());
            w.most[level] = most_[level];
        }
        return w;
    }

    /// A turn held for a scope (std::lock_guard with a priority).
    class Turn {
    public:
        Turn(WriteTurns& turns, unsigned priority) : turns_{turns} { turns_.lock(priority); }
        ~Turn() { turns_.unlock(); }
        Turn(const Turn&) = delete;
        Turn& operator=(const Turn&) = delete;

    private:
        WriteTurns& turns_;
    };

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool busy_{false};      ///< a writer holds the turn
    std::uint64_t next_{0}; ///< the next ticket handed out
    /// The ticket whose holder may write next; none at first.
    std::uint64_t granted_{std::numeric_limits<std::uint64_t>::max()};
    std::array<std::deque<std::uint64_t>, kLevels> queues_; ///< tickets waiting, per level
    std::array<std::uint32_t, kLevels> most_{};             ///< queues_' high-water marks
};

} // namespace shmbus::gateway
