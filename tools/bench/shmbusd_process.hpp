// ShmbusdProcess: a real shmbusd started for one benchmark run, and what /proc says about it.
//
// The daemon runs exactly as a user would run it, on a configuration of its own: start()
// makes a fresh temporary directory, writes shmbusd.yaml there (its own control socket and
// state directory inside, the channels the test needs, and whatever more the caller adds,
// such as a bridge and its secret) and execs the binary with --config.
// Readiness is the daemon's own word, never a sleep: the benchmark binds a datagram socket
// and passes it as NOTIFY_SOCKET, as systemd does, and start() returns once READY=1 has
// arrived, or fails at once if the daemon exits first, or after a deadline. A small forked
// process drains that socket for the rest of the run (the daemon sends a STATUS= line on
// every connection and change; a datagram socket nobody reads fills after ten and would
// block the daemon's notifications), so the daemon pays what it pays under systemd.
//
// Ownership: a ShmbusdProcess owns the daemon, the draining process (both die with the
// benchmark: PR_SET_PDEATHSIG) and the temporary directory. stop() sends SIGTERM and waits
// for a clean exit; the destructor SIGKILLs whatever still runs, by its pid, and removes
// the directory with everything in it. The daemon's stdout and stderr go to shmbusd.log in
// that directory, whose last lines an error message quotes.
//
// The figures come from /proc: VmRSS, VmHWM and their parts from /proc/PID/status, CPU time
// and times scheduled in from every thread's /proc/PID/task/TID/schedstat (the same CPU
// time as utime + stime of /proc/PID/stat, in nanoseconds instead of clock ticks; stat is
// the fallback on kernels without schedstat).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace bench {

/// The channels of the daemon's configuration: `count` channels named bench/ch000,
/// bench/ch001, ..., broadcast with one publisher, or queues (one producer and
/// max_subscribers consumers) when `queue`.
struct ChannelSet {
    std::uint32_t count{1};
    std::uint64_t slot_size{1024};
    std::uint64_t slot_count{256};
    std::uint32_t max_subscribers{16};
    bool queue{false};
    /// Channels whose ring is not the set's: {index, slot_size, slot_count}.
    struct Ring {
        std::uint32_t channel;
        std::uint64_t slot_size;
        std::uint64_t slot_count;
    };
    std::vector<Ring> rings;
};

/// The name of channel `index` of a ChannelSet.
[[nodiscard]] std::string channel_name(std::uint32_t index);

/// `s` as a YAML single-quoted scalar (a path, a name), safe whatever it holds.
[[nodiscard]] std::string yaml_quoted(const std::string& s);

/// More configuration for ShmbusdProcess::start(): called with the run's directory before the
/// configuration is written, it may put files there (a bridge's secret) and returns YAML to
/// append to the configuration (top-level keys, such as `bridges:`), or an error sentence
/// through `error`.
using ConfigExtra =
    std::function<std::string(const std::filesystem::path& dir, std::string& error)>;

/// One queue channel (channel_name(0)) for a single-producer single-consumer stream of
/// `msg_size`-byte messages, `batch` per publish, with the C++ transport's stream geometry
/// (shmbus_transport.cpp): the channel of the rows that open endpoints through a daemon.
[[nodiscard]] ChannelSet spsc_stream_channel(std::uint64_t msg_size, std::uint32_t batch);

/// The shmbusd binary to run: `explicit_path` if given (must be executable), else the one
/// built beside the benchmark, else `shmbusd` on PATH. Empty if there is none; `error`
/// then says why when an explicit path was given.
[[nodiscard]] std::string find_shmbusd(const std::string& explicit_path, std::string& error);

/// A process's memory, in bytes, from /proc/PID/status.
struct ProcessMemory {
    std::uint64_t rss{0};   ///< VmRSS
    std::uint64_t hwm{0};   ///< VmHWM: the largest VmRSS since it started
    std::uint64_t anon{0};  ///< RssAnon: heap, stacks
    std::uint64_t file{0};  ///< RssFile: the binary and its libraries
    std::uint64_t shmem{0}; ///< RssShmem: shared memory it has mapped and touched
};

/// A process's CPU use so far, summed over its threads.
struct ProcessCpu {
    std::int64_t cpu_ns{0};               ///< user + system time
    std::optional<std::uint64_t> wakeups; ///< times scheduled in (absent without schedstat)
};

[[nodiscard]] std::optional<ProcessMemory> read_memory(pid_t pid);
[[nodiscard]] std::optional<ProcessCpu> read_cpu(pid_t pid);

class ShmbusdProcess {
public:
    ShmbusdProcess() = default;
    ShmbusdProcess(const ShmbusdProcess&) = delete;
    ShmbusdProcess& operator=(const ShmbusdProcess&) = delete;
    ~ShmbusdProcess();

    /// Writes the configuration (`channels`, room for `max_clients` clients, and what `extra`
    /// adds) and starts `binary` on it; returns once it is ready. Returns an error sentence,
    /// or empty.
    [[nodiscard]] std::string start(const std::string& binary, const ChannelSet& channels,
                                    std::uint32_t max_clients, const ConfigExtra& extra = {});

    /// SIGTERM, then waits for the exit. An error sentence unless it exited with status 0.
    [[nodiscard]] std::string stop();

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] std::string socket_path() const { return (dir_ / "shmbusd.sock").native(); }
    /// "its log says: ..." with the last lines of its log, for an error sentence.
    [[nodiscard]] std::string log_tail() const;

private:
    [[nodiscard]] std::string start_drain(int notify_fd, int ready_fd);
    void kill_all() noexcept;

    std::filesystem::path dir_;
    pid_t pid_{-1};
    int pidfd_{-1};
    pid_t drain_pid_{-1};
};

} // namespace bench
