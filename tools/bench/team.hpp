// Team: the forked processes of one benchmark run, and how they report back.
//
// Every cross-process figure comes from separate processes, never threads. The parent
// prepares the shared resources (channels, pipes, sockets) and then spawns each role as a
// child pinned to its own core (cores are handed out in order from the parent's affinity
// mask; --no-pin leaves scheduling to the kernel). A child sets up its endpoint, then
// waits at the StartGate; once every child has arrived the parent opens the gate (by
// closing the pipe they all block on), so all roles start together and set-up cost is
// never measured.
//
// Each child sends one Report back over its own pipe and exits with _exit(): it never
// returns into the parent's code, never flushes the parent's stdio buffers, never runs its
// static destructors. The parent collects the reports with a deadline and kills every child
// (SIGKILL) when it passes, so a transport that hangs fails that run and nothing else.
// Children also die with the parent (PR_SET_PDEATHSIG).
//
// Some figures are the parent's to take while the children hold still (the daemon's memory
// with every client connected): Team::run calls an optional function right after it opens
// the gate, and the children wait on a Board word (futex_wait) until the parent releases
// them (futex_wake).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench {

/// Monotonic time (CLOCK_MONOTONIC via steady_clock), comparable across processes.
[[nodiscard]] std::int64_t now_ns() noexcept;
/// User + system CPU time of the calling process (getrusage RUSAGE_SELF).
[[nodiscard]] std::int64_t cpu_time_ns() noexcept;
/// CPUs this process may run on, from its affinity mask.
[[nodiscard]] std::vector<int> usable_cpus();

/// What a child role did during a run. Plain data, sent to the parent as bytes.
struct Report {
    enum class Role : std::uint8_t {
        pinger,
        ponger,
        listener,
        sender,
        receiver,
        solo,
        opener,       ///< opens channels through shmbusd, one sample per open
        holder,       ///< keeps clients connected to shmbusd until released
        ticker,       ///< publishes timestamped messages at a fixed rate
        clock_reader, ///< reads them, one-way latency samples (now - timestamp)
    };
    Role role{Role::solo};
    std::string error;                  ///< empty on success
    std::int64_t t_start_ns{0};         ///< when the measured part started (after the gate)
    std::int64_t t_end_ns{0};           ///< when it ended
    std::int64_t cpu_ns{0};             ///< CPU time spent in between
    std::uint64_t messages{0};          ///< sent, received or copied
    std::uint64_t corrupt{0};           ///< received messages whose checksum did not match
    std::vector<std::uint32_t> samples; ///< one-way latency samples, nanoseconds
};

/// A child's side of the start barrier.
class StartGate {
public:
    StartGate(int ready_fd, int go_fd) noexcept : ready_fd_{ready_fd}, go_fd_{go_fd} {}
    /// Tells the parent this child is set up, then blocks until every child is.
    void wait() noexcept;
    /// Whether wait() has been called.
    [[nodiscard]] bool passed() const noexcept { return passed_; }

private:
    int ready_fd_;
    int go_fd_;
    bool passed_{false};
};

/// A small shared page for coordinating roles in a run (which writers finished).
struct Board {
    std::atomic<std::uint32_t> writers_done{0};
    std::atomic<std::uint32_t> futex_word{0}; ///< the raw futex calibration's word
    std::atomic<std::uint32_t> released{0};   ///< 1 once holders may let go (control plane)
    /// The line-RTT probe's word, on a cache line of its own (see measure_line_rtt()).
    alignas(64) std::atomic<std::uint64_t> line{0};
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free); // shared across processes
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t)); // a futex word

/// Sleeps while `word` holds `expected` (FUTEX_WAIT; may return early, so re-check). The
/// word is shared between processes, so the call is not FUTEX_PRIVATE.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept;
/// Wakes up to `count` processes sleeping on `word` (FUTEX_WAKE).
void futex_wake(std::atomic<std::uint32_t>& word, int count = 1) noexcept;

/// Owns a Board in a MAP_SHARED anonymous mapping that forked children inherit.
class SharedBoard {
public:
    SharedBoard();
    SharedBoard(const SharedBoard&) = delete;
    SharedBoard& operator=(const SharedBoard&) = delete;
    ~SharedBoard();
    [[nodiscard]] Board& get() const noexcept { return *board_; }
    [[nodiscard]] bool valid() const noexcept { return board_ != nullptr; }

private:
    Board* board_{nullptr};
};

/// The body of one child: sets up, calls gate.wait(), measures, returns its Report.
using RoleBody = std::function<Report(StartGate&)>;

/// The children of one run. Not copyable; kills any child still alive on destruction.
class Team {
public:
    explicit Team(bool pin);
    Team(const Team&) = delete;
    Team& operator=(const Team&) = delete;
    ~Team();

    /// Forks a child running `body`, pinned to the next usable core when pinning.
    /// Returns an error sentence, or empty.
    [[nodiscard]] std::string spawn(const RoleBody& body);

    /// Opens the gate once every child is ready, calls `on_open` (if any) right after, and
    /// collects every Report, waiting at most `limit` in all. `reports` is in spawn order.
    /// Returns an error sentence, or empty.
    [[nodiscard]] std::string run(std::chrono::nanoseconds limit, std::vector<Report>& reports,
                                  const std::function<void()>& on_open = {});

private:
    struct Child {
        int pid{-1};
        int result_fd{-1};
    };
    void kill_all() noexcept;

    bool pin_;
    std::vector<int> cpus_;
    std::vector<Child> children_;
    int ready_r_{-1};
    int ready_w_{-1};
    int go_r_{-1};
    int go_w_{-1};
};

} // namespace bench
