// Scenarios: what one benchmark configuration is, and which ones a suite runs.
//
// A Scenario names a transport (shmbus or a baseline), the channel kind and wait mode for
// shmbus, the test pattern and the message geometry. The control-plane tests (transport
// "shmbusd") name instead how many channels the daemon has and how many clients connect.
// Suites are fixed lists of scenarios; the command line filters them. Nothing here measures
// anything: this module is plain data and pure functions, so the plan can be printed (--list) and
// tested without running it.
//
// Names are the ones the JSON output and the documentation use ("uds-seqpacket",
// "broadcast-drop", "futex"), parsed back by the from_string functions for the filters.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

enum class Transport {
    shmbus,
    shmbus_c, ///< shmbus through the C ABI (shmbus.h), endpoints opened through a shmbusd
    python,   ///< shmbus through the Python package, one python3 process on each side
    fifo,
    uds_stream,
    uds_seqpacket,
    tcp,
    posix_mq,
    futex_raw,       ///< calibration: raw futex ping-pong between two processes
    memory_copy,     ///< calibration: single-core memcpy bandwidth
    raw_ring,        ///< calibration: a minimal busy-polled SPSC ring in plain shared memory
    shmbusd,         ///< the control plane: a real shmbusd started for the run
    blackboard_read, ///< an uncontended consistent read of one blackboard element
    local_read,      ///< baseline of blackboard_read: a plain read from local memory
    bridge,          ///< two shmbusd joined by a bridge over TCP loopback (bridge_transport.hpp)
    pool_handoff,    ///< a large payload made in a pool block, its handle sent through a queue
    queue_copy,      ///< baseline of pool_handoff: the payload copied through a queue's slots
    nats,            ///< shmbusd -> NATS bridge -> nats-server -> NATS bridge -> shmbusd
    nats_raw,        ///< baseline of nats: the same messages through libnats directly
};

/// What a bridge row's daemon is doing besides the measured work: Load::none for the rows
/// measured *through* the bridge; idle or streaming for the isolation rows, measured on the
/// exporting daemon while its bridge is connected and idle, or streams at full rate; large
/// for a paced channel measured through the bridge while another channel of the same bridge
/// carries a stream of kLargeBeside-byte messages.
enum class Load { none, idle, streaming, large };

/// The messages of the stream beside a paced channel (Load::large): 64 MiB.
inline constexpr std::uint64_t kLargeBeside = std::uint64_t{64} << 20;

/// The shmbus channel kind and variant; none for baselines and calibrations. On an rpc
/// channel `publishers` are the callers and `subscribers` the servers.
enum class Kind { none, queue_spsc, queue_mpmc, broadcast_block, broadcast_drop, rpc };

/// The shmbus wait mode; "futex" is WaitMode::blocking. none for everything else.
enum class Wait { none, spin, adaptive, futex };

enum class Test {
    latency,         ///< ping-pong, one-way = RTT / 2, full sample sets
    round_trip,      ///< rpc: one call's whole round trip (request and reply), full sample sets
    throughput,      ///< one-way stream of small messages, one or `batch` per publish
    bandwidth,       ///< one-way stream of large messages filled and checksummed in place
    control_open,    ///< shmbusd: connect, hello, open, fd received, mapped, close; repeated
    daemon_rss,      ///< shmbusd: its memory with `channels` channels and `clients` clients
    daemon_idle_cpu, ///< shmbusd: its CPU time while those clients are connected and idle
};

[[nodiscard]] std::string_view to_string(Transport t) noexcept;
[[nodiscard]] std::string_view to_string(Kind k) noexcept;
[[nodiscard]] std::string_view to_string(Wait w) noexcept;
[[nodiscard]] std::string_view to_string(Test t) noexcept;
[[nodiscard]] std::string_view to_string(Load l) noexcept;
[[nodiscard]] std::optional<Transport> transport_from_string(std::string_view s) noexcept;
[[nodiscard]] std::optional<Kind> kind_from_string(std::string_view s) noexcept;
[[nodiscard]] std::optional<Wait> wait_from_string(std::string_view s) noexcept;
[[nodiscard]] std::optional<Test> test_from_string(std::string_view s) noexcept;

/// Clients one process keeps connected in the daemon-rss and daemon-idle-cpu tests: each
/// client holds its socket and, per endpoint, the mapped segments' descriptors and the
/// duplicates the library keeps to offer back after a daemon restart, so 50 stay far below
/// the usual limit of 1024 descriptors per process.
inline constexpr std::uint32_t kClientsPerHolder = 50;

/// Channels in each daemon of a bridge row (bridge_transport.hpp says what each carries).
inline constexpr std::uint32_t kBridgeChannels = 4;

/// One measured configuration.
struct Scenario {
    Transport transport{Transport::fifo};
    Kind kind{Kind::none};
    Wait wait{Wait::none};
    Test test{Test::latency};
    std::uint64_t msg_size{128};
    std::uint32_t batch{1};       ///< messages per publish (per write() for baselines)
    std::uint32_t subscribers{1}; ///< readers (consumers on a queue)
    std::uint32_t publishers{1};  ///< writers (producers on a queue)
    // Control plane (transport shmbusd) only; 0 elsewhere.
    std::uint32_t channels{0}; ///< channels in the daemon's configuration
    std::uint32_t clients{0};  ///< connected clients: openers (control-open) or held open
    Load load{Load::none};     ///< bridge isolation rows only
    /// Messages per second of a paced latency row (a ticker publishing timestamped messages,
    /// read one way at the far end); 0 for ping-pong and for everything else.
    std::uint32_t rate_hz{0};

    /// Whether this is a control-plane test (transport shmbusd).
    [[nodiscard]] bool control_plane() const noexcept { return transport == Transport::shmbusd; }
    /// Whether the test measures a daemon's control plane (control-open, daemon-rss,
    /// daemon-idle-cpu), whichever transport runs it: its rows count channels and clients.
    [[nodiscard]] bool control_test() const noexcept {
        return test == Test::control_open || test == Test::daemon_rss ||
               test == Test::daemon_idle_cpu;
    }

    /// "shmbus queue-spsc spin", "fifo", "memcpy": the row label of tables and plots.
    [[nodiscard]] std::string label() const;
    /// Processes this scenario forks.
    [[nodiscard]] std::uint32_t processes() const noexcept;
    /// One process alone on one core (memcpy, blackboard-read, local-read): no second core,
    /// so no line round trip, and one Report to reduce.
    [[nodiscard]] bool solo() const noexcept {
        return transport == Transport::memory_copy || transport == Transport::blackboard_read ||
               transport == Transport::local_read;
    }
    /// How many readers see each message: subscribers on a broadcast channel, else 1.
    [[nodiscard]] std::uint32_t deliveries() const noexcept;
    /// Messages of a fixed count a bandwidth stream of this scenario sends, whatever the
    /// run's duration, or 0 when it runs for the duration. Streams of messages of
    /// kCountedFrom bytes or more move kCountedBytes: at a few hundred MB/s a quarter-second run
    /// would hold one or two such messages, and a byte stream's end marker is as large again.
    [[nodiscard]] std::uint64_t counted_messages() const noexcept;
    /// Time allowed for a counted stream on top of the run's duration and set-up: its bytes
    /// at kSlowestRate. Zero for the others.
    [[nodiscard]] std::chrono::nanoseconds counted_allowance() const noexcept;
};

/// Streams of messages this large or larger are counted (Scenario::counted_messages()).
inline constexpr std::uint64_t kCountedFrom = std::uint64_t{16} << 20;
/// The bytes a counted stream moves: 8 messages of 64 MiB.
inline constexpr std::uint64_t kCountedBytes = std::uint64_t{512} << 20;
/// The slowest rate a counted stream is allowed before its run is taken for hung (bytes/s).
inline constexpr std::uint64_t kSlowestRate = std::uint64_t{10} << 20;

/// How long and how often each scenario runs.
struct RunSettings {
    std::chrono::nanoseconds duration{std::chrono::milliseconds{300}}; ///< per run
    std::uint32_t runs{3};
    bool pin{true};
    std::size_t max_samples{std::size_t{1} << 22}; ///< latency samples kept per pinger
    std::string shmbusd;       ///< the daemon the control-plane and bridge tests start; empty: none
    std::string python;        ///< python3 for the Python row; empty: it cannot run (find_python())
    std::string python_script; ///< tools/bench/python_rate.py
    std::string python_path;   ///< PYTHONPATH under which python3 imports shmbus
    std::string nats_server;   ///< the nats-server the NATS rows start; empty: none
    /// The bridge rows' `nice` for both daemons' bridges; none: the daemon's default.
    std::optional<int> bridge_nice;
};

/// A suite: its scenarios and its default run settings.
struct Suite {
    std::string name;
    std::vector<Scenario> scenarios;
    RunSettings settings;
};

/// "tiny" (smoke test, a few seconds), "quick" (under a minute), "full" (a few minutes).
[[nodiscard]] std::optional<Suite> make_suite(std::string_view name);

/// Command-line filters; an empty list lets everything through.
struct Filters {
    std::vector<Transport> transports;
    std::vector<Kind> kinds;
    std::vector<Wait> waits;
    std::vector<Test> tests;
    std::vector<std::uint64_t> sizes;
};

[[nodiscard]] std::vector<Scenario> apply_filters(const std::vector<Scenario>& scenarios,
                                                  const Filters& filters);

/// Why `s` cannot run on `cores` usable cores (busy-spinning needs one core per process, a
/// baseline has a size limit, a control-plane, bridge or NATS test needs a shmbusd binary and
/// `have_shmbusd` says there is none, a Python row cannot run for the reason `no_python`, a
/// NATS row for the reason `no_nats`: no libnats in this build, no nats-server), or nullopt if
/// it can.
[[nodiscard]] std::optional<std::string> skip_reason(const Scenario& s, unsigned cores,
                                                     bool have_shmbusd = true,
                                                     std::string_view no_python = {},
                                                     std::string_view no_nats = {});

} // namespace bench
