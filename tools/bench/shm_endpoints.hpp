// Writer and Reader (patterns.hpp) over shmbus endpoints, for every transport that moves
// messages through shmbus channels: the anonymous channels of the shmbus transport
// (attached from ChannelFiles) and the daemon's channels of the bridge rows (opened through
// a shmbus::Client). In spin mode they call the try_ forms and retry on Errc::would_block; in
// adaptive and futex (WaitMode::blocking) modes they call the blocking forms, so the
// library decides how to wait.
#pragma once

#include "patterns.hpp"
#include "scenario.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string>

namespace bench {

/// A blocking call that waits this long for room means a peer is gone: fail the run.
inline constexpr std::chrono::nanoseconds kStuck = std::chrono::seconds{10};

/// The library's wait mode for `w` ("futex" is WaitMode::blocking).
inline shmbus::WaitMode wait_mode(Wait w) {
    switch (w) {
    case Wait::spin:
        return shmbus::WaitMode::spin;
    case Wait::futex:
        return shmbus::WaitMode::blocking;
    default:
        return shmbus::WaitMode::adaptive;
    }
}

/// Replaces `slot` with what `make()` returns, constructed in place. The writer and reader
/// keep their batch between calls (the patterns reserve, fill and commit in separate calls);
/// moving a batch out of its Result into a member copies it through the stack, and GCC
/// reloads that copy with loads that straddle the stores that made it, which cannot be
/// forwarded: each then waits for every older store to reach the cache, the slot stores of
/// the previous message included, as a fence would. An application that fills the batch
/// where try_reserve() returned it pays nothing of the kind, nor should the benchmark.
template <typename T, typename Make>
T& remake(T& slot, Make&& make) {
    std::destroy_at(&slot);
    return *::new (static_cast<void*>(&slot)) T(make()); // make()'s result is built in `slot`
}

/// A Writer over a Publisher: zero-copy reserve, fill in place, commit.
class ShmWriter {
public:
    ShmWriter(shmbus::Publisher pub, bool spin) : pub_{std::move(pub)}, spin_{spin} {}
    /// Attaches a publisher to a channel created in this process tree (no daemon).
    static shmbus::Result<ShmWriter> open(const shmbus::ChannelFiles& files, Wait wait) {
        auto dup = files.duplicate_for(shmbus::Role::publisher);
        if (!dup) {
            return dup.take_error();
        }
        auto pub = shmbus::Publisher::attach(std::move(dup).value(),
                                             shmbus::EndpointOptions{.wait = wait_mode(wait)});
        if (!pub) {
            return pub.take_error();
        }
        return ShmWriter{std::move(pub).value(), wait == Wait::spin};
    }

    std::size_t acquire(std::size_t n) {
        std::int64_t stuck_at = 0;
        for (std::uint64_t spins = 1;; ++spins) {
            auto& r = remake(batch_,
                             [&] { return spin_ ? pub_.try_reserve(n) : pub_.reserve(n, kStuck); });
            if (r) {
                return r->size();
            }
            if (r.code() != shmbus::Errc::would_block) {
                error_ = r.error().message();
                return 0;
            }
            // Spinning on a full ring: give up as the blocking form would, after kStuck.
            if (spins % 4096 == 0) {
                const std::int64_t now = now_ns();
                stuck_at = stuck_at == 0 ? now + kStuck.count() : stuck_at;
                if (now >= stuck_at) {
                    error_ = "no free slot for " + std::to_string(kStuck.count() / 1'000'000) +
                             " ms (is a reader gone?)";
                    return 0;
                }
            }
        }
    }
    std::span<std::byte> slot(std::size_t i) { return batch_->data(i); }
    void set_length(std::size_t i, std::uint64_t len) { batch_->set_length(i, len); }
    bool publish() {
        auto r = pub_.commit(*batch_);
        if (!r) {
            error_ = r.error().message();
            return false;
        }
        return true;
    }
    const std::string& error() const { return error_; }

private:
    shmbus::Publisher pub_;
    shmbus::Result<shmbus::WriteBatch> batch_{shmbus::make_error(shmbus::Errc::would_block)};
    bool spin_;
    std::string error_;
};

/// A Reader over a Subscriber: zero-copy receive, read in place, release. Blocking forms
/// wait at most `timeout` per call.
class ShmReader {
public:
    ShmReader(shmbus::Subscriber sub, bool spin, std::chrono::nanoseconds timeout)
        : sub_{std::move(sub)}, spin_{spin}, timeout_{timeout} {}
    /// Attaches a subscriber to a channel created in this process tree (no daemon).
    static shmbus::Result<ShmReader> open(const shmbus::ChannelFiles& files, Wait wait,
                                          std::chrono::nanoseconds timeout) {
        auto dup = files.duplicate_for(shmbus::Role::subscriber);
        if (!dup) {
            return dup.take_error();
        }
        auto sub = shmbus::Subscriber::attach(std::move(dup).value(),
                                              shmbus::EndpointOptions{.wait = wait_mode(wait)});
        if (!sub) {
            return sub.take_error();
        }
        return ShmReader{std::move(sub).value(), wait == Wait::spin, timeout};
    }

    /// Messages ready now (spin) or within the timeout (blocking forms); 0 when none.
    std::size_t take(std::size_t n) {
        auto& r =
            remake(batch_, [&] { return spin_ ? sub_.try_receive(n) : sub_.receive(n, timeout_); });
        if (r) {
            return r->size();
        }
        if (r.code() != shmbus::Errc::would_block && r.code() != shmbus::Errc::timed_out) {
            error_ = r.error().message();
        }
        return 0;
    }
    bool failed() const { return !error_.empty(); }
    std::span<const std::byte> message(std::size_t i) const { return batch_->message(i).data; }
    Released release() {
        auto r = sub_.release(*batch_);
        if (r) {
            return Released::ok;
        }
        if (r.code() == shmbus::Errc::lost) {
            return Released::lost;
        }
        error_ = r.error().message();
        return Released::error;
    }
    const std::string& error() const { return error_; }

private:
    shmbus::Subscriber sub_;
    shmbus::Result<shmbus::ReadBatch> batch_{shmbus::make_error(shmbus::Errc::would_block)};
    bool spin_;
    std::chrono::nanoseconds timeout_;
    std::string error_;
};

} // namespace bench
