// The write side of a bridge link, taken in turns: whoever asked first writes first.
//
// A link's frames are written whole, one writer at a time. With a plain std::mutex a thread
// that writes frame after frame (a stream sending a large message in fragments) may take
// the lock back before a waiting thread runs, and hold a small-message stream up for as long
// as it has fragments. WriteTurns hands the link out first come, first served (a ticket
// lock), so every stream with something to send writes one frame per turn, round-robin among
// those waiting: a message in fragments delays another stream's frame by at most the frames
// queued before it, one per writer. Meets BasicLockable (std::lock_guard).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace shmbus::gateway {

class WriteTurns {
public:
    void lock() {
        std::unique_lock l{mu_};
        const std::uint64_t ticket = next_++;
        cv_.wait(l, [&] { return serving_ == ticket; });
    }

    void unlock() {
        {
            std::lock_guard l{mu_};
            ++serving_;
        }
        cv_.notify_all();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::uint64_t next_{0};    ///< the next ticket handed out
    std::uint64_t serving_{0}; ///< the ticket whose holder may write
};

} // namespace shmbus::gateway
