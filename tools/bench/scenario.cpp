// Scenarios and suites: see scenario.hpp. The suite lists below are the benchmark's
// published method; docs/benchmarks.md describes them, so change both together.

#include "scenario.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace bench {
namespace {

constexpr std::array kTransportNames{
    std::pair{Transport::shmbus, "shmbus"},
    std::pair{Transport::shmbus_c, "shmbus-c"},
    std::pair{Transport::python, "python"},
    std::pair{Transport::fifo, "fifo"},
    std::pair{Transport::uds_stream, "uds-stream"},
    std::pair{Transport::uds_seqpacket, "uds-seqpacket"},
    std::pair{Transport::tcp, "tcp"},
    std::pair{Transport::posix_mq, "posix-mq"},
    std::pair{Transport::futex_raw, "futex-raw"},
    std::pair{Transport::memory_copy, "memcpy"},
    std::pair{Transport::raw_ring, "raw-ring"},
    std::pair{Transport::shmbusd, "shmbusd"},
    std::pair{Transport::blackboard_read, "blackboard-read"},
    std::pair{Transport::local_read, "local-read"},
    std::pair{Transport::bridge, "bridge"},
    std::pair{Transport::pool_handoff, "pool-handoff"},
    std::pair{Transport::queue_copy, "queue-copy"},
    std::pair{Transport::nats, "nats"},
    std::pair{Transport::nats_raw, "nats-raw"},
};
constexpr std::array kKindNames{
    std::pair{Kind::none, ""},
    std::pair{Kind::queue_spsc, "queue-spsc"},
    std::pair{Kind::queue_mpmc, "queue-mpmc"},
    std::pair{Kind::broadcast_block, "broadcast-block"},
    std::pair{Kind::broadcast_drop, "broadcast-drop"},
    std::pair{Kind::rpc, "rpc"},
};
constexpr std::array kWaitNames{
    std::pair{Wait::none, ""},
    std::pair{Wait::spin, "spin"},
    std::pair{Wait::adaptive, "adaptive"},
    std::pair{Wait::futex, "futex"},
};
constexpr std::array kTestNames{
    std::pair{Test::latency, "latency"},
    std::pair{Test::round_trip, "round-trip"},
    std::pair{Test::throughput, "throughput"},
    std::pair{Test::bandwidth, "bandwidth"},
    std::pair{Test::control_open, "control-open"},
    std::pair{Test::daemon_rss, "daemon-rss"},
    std::pair{Test::daemon_idle_cpu, "daemon-idle-cpu"},
};

constexpr std::array kLoadNames{
    std::pair{Load::none, ""},
    std::pair{Load::idle, "idle"},
    std::pair{Load::streaming, "streaming"},
    std::pair{Load::large, "large-stream"},
};

template <typename E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, const char*>, N>& table, E e) noexcept {
    for (const auto& [value, name] : table) {
        if (value == e) {
            return name;
        }
    }
    return "?";
}

template <typename E, std::size_t N>
std::optional<E> value_of(const std::array<std::pair<E, const char*>, N>& table,
                          std::string_view s) noexcept {
    for (const auto& [value, name] : table) {
        if (!s.empty() && s == name) {
            return value;
        }
    }
    return std::nullopt;
}

constexpr std::uint64_t kKiB = 1024ULL;
constexpr std::uint64_t kMiB = 1024 * kKiB;

// The fd baselines that carry a message stream.
constexpr std::array kBaselines{Transport::fifo, Transport::uds_stream, Transport::uds_seqpacket,
                                Transport::tcp, Transport::posix_mq};

Scenario shm(Kind kind, Wait wait, Test test, std::uint64_t size, std::uint32_t batch = 1,
             std::uint32_t subscribers = 1) {
    Scenario s{Transport::shmbus, kind, wait, test, size, batch, subscribers, 1};
    if (kind == Kind::queue_mpmc) {
        s.publishers = 2;
        s.subscribers = 2;
    }
    return s;
}

/// The C ABI's row beside the C++ one: a single-producer single-consumer stream.
Scenario shm_c(Wait wait, std::uint64_t size, std::uint32_t batch) {
    return Scenario{
        Transport::shmbus_c, Kind::queue_spsc, wait, Test::throughput, size, batch, 1, 1};
}

/// The Python package's row beside the C++ one (shmbus queue-spsc adaptive, the same size
/// and batch): Python's blocking calls wait adaptively, as that row does.
Scenario python_stream(std::uint64_t size, std::uint32_t batch) {
    return Scenario{
        Transport::python, Kind::queue_spsc, Wait::adaptive, Test::throughput, size, batch, 1, 1};
}

/// An rpc channel with one server and `callers` callers, 128 B requests and replies.
Scenario rpc(Wait wait, Test test, std::uint32_t callers) {
    return Scenario{Transport::shmbus, Kind::rpc, wait, test, 128, 1, 1, callers};
}

Scenario base(Transport t, Test test, std::uint64_t size, std::uint32_t batch = 1) {
    return Scenario{t, Kind::none, Wait::none, test, size, batch, 1, 1};
}

Scenario futex_calibration() {
    return Scenario{Transport::futex_raw, Kind::none, Wait::none, Test::latency, 0, 1, 1, 1};
}

Scenario raw_ring(Test test, std::uint64_t size, std::uint32_t batch = 1) {
    return Scenario{Transport::raw_ring, Kind::none, Wait::none, test, size, batch, 1, 1};
}

Scenario memcpy_calibration(std::uint64_t size) {
    return Scenario{Transport::memory_copy, Kind::none, Wait::none, Test::bandwidth, size, 1, 0, 1};
}

/// Reads per second of one `size`-byte blackboard element (`local`: of local memory).
Scenario state_read(bool local, std::uint64_t size) {
    return Scenario{local ? Transport::local_read : Transport::blackboard_read,
                    Kind::none,
                    Wait::none,
                    Test::throughput,
                    size,
                    1,
                    0,
                    1};
}

/// Through the gateway: a publisher on one daemon, a subscriber on the other, the two
/// daemons joined by a bridge over TCP loopback; broadcast channels with the block policy at
/// both ends, so nothing is lost on the way.
Scenario bridged(Test test, std::uint64_t size, std::uint32_t batch = 1) {
    return Scenario{
        Transport::bridge, Kind::broadcast_block, Wait::adaptive, test, size, batch, 1, 1};
}

/// The gateway's isolation, on the exporting daemon while its bridge is idle or streams at
/// full rate: channel opens (control-open, one opener), or a local ping-pong whose ping
/// channel the bridge exports (latency, 128 B).
Scenario bridge_isolation(Test test, Load load) {
    Scenario s = bridged(test, 128);
    s.load = load;
    if (test == Test::control_open) {
        s.kind = Kind::none;
        s.wait = Wait::none;
        s.channels = kBridgeChannels;
        s.clients = 1;
    }
    return s;
}

/// Messages larger than one data frame, sent in fragments (docs/gateway.md, "Fragments"):
/// 1 MiB (and with `huge`, 64 MiB) through the bridge, beside tcp's bandwidth for the same
/// size.
void add_bridge_large_rows(std::vector<Scenario>& v, bool huge) {
    for (std::uint64_t size : {kMiB, kLargeBeside}) {
        if (size == kLargeBeside && !huge) {
            continue;
        }
        v.push_back(bridged(Test::bandwidth, size));
        const Scenario tcp = base(Transport::tcp, Test::bandwidth, size);
        const bool listed = std::any_of(v.begin(), v.end(), [&](const Scenario& o) {
            return o.transport == tcp.transport && o.test == tcp.test && o.msg_size == tcp.msg_size;
        });
        if (!listed) { // the full suite has tcp's 1 MiB row already
            v.push_back(tcp);
        }
    }
}

/// A 100 Hz channel of 128 B messages read one way through the bridge, while the bridge is
/// otherwise idle (Load::none) or carries kLargeBeside-byte messages on another channel
/// (Load::large).
Scenario bridge_paced(Load load) {
    Scenario s = bridged(Test::latency, 128);
    s.rate_hz = 100;
    s.load = load;
    return s;
}

/// Every bridge row: the figures (128 B latency, 128 B at 1 and 64 per publish,
/// 64 KiB, 1 MiB), then the isolation pairs; with `large`, the 64 MiB rows too (each moves
/// kCountedBytes: seconds, not a quarter of one) and the 100 Hz channel idle and beside a
/// 64 MiB stream.
void add_bridge_rows(std::vector<Scenario>& v, bool large) {
    v.push_back(bridged(Test::latency, 128));
    for (std::uint32_t batch : {1U, 64U}) {
        v.push_back(bridged(Test::throughput, 128, batch));
    }
    v.push_back(bridged(Test::bandwidth, 64 * kKiB));
    add_bridge_large_rows(v, large);
    for (Load load : {Load::idle, Load::streaming}) {
        v.push_back(bridge_isolation(Test::control_open, load));
        v.push_back(bridge_isolation(Test::latency, load));
    }
    if (large) {
        v.push_back(bridge_paced(Load::none));
        v.push_back(bridge_paced(Load::large));
    }
}
/// Payloads per second of `size` bytes between two processes: handed through a pool by handle
/// (`pool`), or copied through a queue with `size`-byte slots.
Scenario payload_handoff(bool pool, std::uint64_t size) {
    return Scenario{pool ? Transport::pool_handoff : Transport::queue_copy,
                    Kind::none,
                    Wait::none,
                    Test::throughput,
                    size,
                    1,
                    1,
                    1};
}

/// The large payload: a 16 MiB frame.
constexpr std::uint64_t kHandoffSize = 16 * kMiB;

/// The NATS path and its libnats baseline, side by side: streams of 128 B and 4 KiB, and
/// ping-pong of 128 B.
void add_nats(std::vector<Scenario>& v) {
    for (Transport t : {Transport::nats, Transport::nats_raw}) {
        v.push_back(base(t, Test::latency, 128));
        v.push_back(base(t, Test::throughput, 128));
        v.push_back(base(t, Test::throughput, 4 * kKiB));
    }
}

// The channels of the control-plane tests have 1 KiB slots (the configuration's default).
constexpr std::uint64_t kControlSlotSize = kKiB;

/// `openers` processes, each opening and closing a subscriber in a loop, against a daemon
/// with `channels` channels.
Scenario control_open(std::uint32_t channels, std::uint32_t openers) {
    Scenario s{Transport::shmbusd, Kind::none, Wait::none, Test::control_open,
               kControlSlotSize,   1,          openers,    0};
    s.channels = channels;
    s.clients = openers;
    return s;
}

/// `clients` clients connected to a daemon with `channels` channels: the first of them
/// publish (one per channel), the others subscribe, one endpoint each.
Scenario daemon_footprint(Test test, std::uint32_t channels, std::uint32_t clients) {
    const std::uint32_t publishers = std::min(channels, clients);
    Scenario s{Transport::shmbusd, Kind::none, Wait::none,           test,
               kControlSlotSize,   1,          clients - publishers, publishers};
    s.channels = channels;
    s.clients = clients;
    return s;
}

// The figures: 100 channels and 200 connected clients.
constexpr std::uint32_t kTargetChannels = 100;
constexpr std::uint32_t kTargetClients = 200;

std::vector<Scenario> tiny_suite() {
    return {
        shm(Kind::queue_spsc, Wait::spin, Test::latency, 128),
        shm(Kind::queue_spsc, Wait::adaptive, Test::latency, 128),
        base(Transport::fifo, Test::latency, 128),
        raw_ring(Test::latency, 128),
        futex_calibration(),
        rpc(Wait::spin, Test::round_trip, 1),
        shm(Kind::queue_spsc, Wait::spin, Test::throughput, 128, 64),
        base(Transport::uds_stream, Test::throughput, 128, 1),
        raw_ring(Test::throughput, 128, 1),
        shm(Kind::queue_spsc, Wait::spin, Test::bandwidth, 64 * kKiB),
        memcpy_calibration(64 * kKiB),
        bridged(Test::latency, 128),
        bridged(Test::throughput, 128, 64),
        payload_handoff(true, kHandoffSize),
        payload_handoff(false, kHandoffSize),
        control_open(1, 1),
        daemon_footprint(Test::daemon_rss, 4, 8),
        daemon_footprint(Test::daemon_idle_cpu, 4, 8),
    };
}

std::vector<Scenario> quick_suite() {
    std::vector<Scenario> v;
    v.reserve(32);
    constexpr std::array kWaits{Wait::spin, Wait::adaptive, Wait::futex};
    constexpr std::array kQuickBaselines{Transport::fifo, Transport::uds_seqpacket, Transport::tcp};
    for (Wait w : kWaits) {
        v.push_back(shm(Kind::queue_spsc, w, Test::latency, 128));
    }
    for (Transport t : kQuickBaselines) {
        v.push_back(base(t, Test::latency, 128));
    }
    v.push_back(futex_calibration());
    v.push_back(raw_ring(Test::latency, 128));
    // rpc round trips beside the queue's ping-pong above, and calls per second.
    v.push_back(rpc(Wait::spin, Test::round_trip, 1));
    v.push_back(rpc(Wait::futex, Test::round_trip, 1));
    v.push_back(rpc(Wait::spin, Test::throughput, 1));
    v.push_back(rpc(Wait::adaptive, Test::throughput, 1));
    v.push_back(rpc(Wait::adaptive, Test::throughput, 4));
    for (std::uint32_t batch : {1U, 64U}) {
        for (Wait w : kWaits) {
            v.push_back(shm(Kind::queue_spsc, w, Test::throughput, 128, batch));
        }
        for (Transport t : kQuickBaselines) {
            v.push_back(base(t, Test::throughput, 128, batch));
        }
        v.push_back(raw_ring(Test::throughput, 128, batch));
    }
    v.push_back(shm_c(Wait::spin, 128, 1)); // beside shmbus queue-spsc spin, 1 per publish
    v.push_back(python_stream(128, 64));    // beside shmbus queue-spsc adaptive, batches of 64
    // The other kinds against the SPSC queue (adaptive), 1 and 64 per publish, and fan-out.
    for (std::uint32_t batch : {1U, 64U}) {
        v.push_back(shm(Kind::broadcast_block, Wait::adaptive, Test::throughput, 128, batch));
        v.push_back(shm(Kind::queue_mpmc, Wait::adaptive, Test::throughput, 128, batch));
    }
    v.push_back(shm(Kind::broadcast_block, Wait::adaptive, Test::throughput, 128, 1, 3));
    v.push_back(shm(Kind::queue_spsc, Wait::spin, Test::bandwidth, 64 * kKiB));
    v.push_back(raw_ring(Test::bandwidth, 64 * kKiB));
    v.push_back(base(Transport::tcp, Test::bandwidth, 64 * kKiB)); // beside the bridge's
    v.push_back(memcpy_calibration(64 * kKiB));
    v.push_back(memcpy_calibration(64 * kMiB));
    add_bridge_rows(v, false);
    v.push_back(state_read(false, 64));
    v.push_back(state_read(true, 64));
    v.push_back(payload_handoff(true, kHandoffSize));
    v.push_back(payload_handoff(false, kHandoffSize));
    v.push_back(control_open(1, 1));
    v.push_back(daemon_footprint(Test::daemon_rss, kTargetChannels, kTargetClients));
    v.push_back(daemon_footprint(Test::daemon_idle_cpu, kTargetChannels, kTargetClients));
    add_nats(v);
    return v;
}

std::vector<Scenario> full_suite() {
    std::vector<Scenario> v;
    v.reserve(256);
    constexpr std::array kWaits{Wait::spin, Wait::adaptive, Wait::futex};
    constexpr std::array<std::uint64_t, 6> kLatencySizes{8, 128, kKiB, 4 * kKiB, 64 * kKiB, kMiB};
    constexpr std::array<std::uint64_t, 3> kThroughputSizes{8, 128, kKiB};
    constexpr std::array<std::uint64_t, 3> kBandwidthSizes{4 * kKiB, 64 * kKiB, kMiB};
    constexpr std::array kMulti{Kind::queue_mpmc, Kind::broadcast_block, Kind::broadcast_drop};

    // Latency: every transport over the size range, then the multi-endpoint kinds.
    for (std::uint64_t size : kLatencySizes) {
        for (Wait w : kWaits) {
            v.push_back(shm(Kind::queue_spsc, w, Test::latency, size));
        }
        for (Transport t : kBaselines) {
            v.push_back(base(t, Test::latency, size));
        }
        v.push_back(raw_ring(Test::latency, size));
    }
    v.push_back(futex_calibration());
    for (Kind k : kMulti) {
        for (Wait w : kWaits) {
            if (k == Kind::queue_mpmc) {
                v.push_back(shm(k, w, Test::latency, 128));
                continue;
            }
            for (std::uint32_t subs : {1U, 2U, 3U}) {
                v.push_back(shm(k, w, Test::latency, 128, 1, subs));
            }
        }
    }

    // Throughput: one message per publish and 64 per publish.
    for (std::uint32_t batch : {1U, 64U}) {
        for (std::uint64_t size : kThroughputSizes) {
            for (Wait w : kWaits) {
                v.push_back(shm(Kind::queue_spsc, w, Test::throughput, size, batch));
            }
            for (Transport t : kBaselines) {
                v.push_back(base(t, Test::throughput, size, batch));
            }
            v.push_back(raw_ring(Test::throughput, size, batch));
        }
        for (Kind k : kMulti) {
            for (Wait w : kWaits) {
                if (k == Kind::queue_mpmc) {
                    v.push_back(shm(k, w, Test::throughput, 128, batch));
                    continue;
                }
                for (std::uint32_t subs : {1U, 2U, 3U}) {
                    v.push_back(shm(k, w, Test::throughput, 128, batch, subs));
                }
            }
        }
    }

    v.push_back(shm_c(Wait::spin, 128, 1)); // beside shmbus queue-spsc spin, 1 per publish
    v.push_back(python_stream(128, 64));    // beside shmbus queue-spsc adaptive, batches of 64

    // rpc: round trips in every wait mode, calls per second with 1 and 4 callers.
    for (Wait w : kWaits) {
        v.push_back(rpc(w, Test::round_trip, 1));
    }
    v.push_back(rpc(Wait::spin, Test::throughput, 1));
    for (Wait w : {Wait::adaptive, Wait::futex}) {
        for (std::uint32_t callers : {1U, 4U}) {
            v.push_back(rpc(w, Test::throughput, callers));
        }
    }

    // Large messages: zero-copy in shmbus, write()/read() for the baselines.
    for (std::uint64_t size : kBandwidthSizes) {
        for (Wait w : kWaits) {
            v.push_back(shm(Kind::queue_spsc, w, Test::bandwidth, size));
        }
        for (Transport t : kBaselines) {
            v.push_back(base(t, Test::bandwidth, size));
        }
        v.push_back(raw_ring(Test::bandwidth, size));
        v.push_back(memcpy_calibration(size));
    }
    v.push_back(memcpy_calibration(64 * kMiB));
    v.push_back(state_read(false, 64));
    v.push_back(state_read(true, 64));
    v.push_back(payload_handoff(true, kHandoffSize));
    v.push_back(payload_handoff(false, kHandoffSize));

    // The gateway, beside the tcp rows above.
    add_bridge_rows(v, true);

    // The control plane: one opener, several at once, and one against a fuller daemon.
    for (std::uint32_t openers : {1U, 2U, 4U}) {
        v.push_back(control_open(1, openers));
    }
    v.push_back(control_open(kTargetChannels, 1));
    v.push_back(daemon_footprint(Test::daemon_rss, kTargetChannels, kTargetClients));
    v.push_back(daemon_footprint(Test::daemon_idle_cpu, kTargetChannels, kTargetClients));
    add_nats(v);
    return v;
}

template <typename T>
bool admits(const std::vector<T>& allowed, T value) {
    return allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

} // namespace

std::string_view to_string(Transport t) noexcept {
    return name_of(kTransportNames, t);
}
std::string_view to_string(Kind k) noexcept {
    return name_of(kKindNames, k);
}
std::string_view to_string(Wait w) noexcept {
    return name_of(kWaitNames, w);
}
std::string_view to_string(Test t) noexcept {
    return name_of(kTestNames, t);
}
std::string_view to_string(Load l) noexcept {
    return name_of(kLoadNames, l);
}

std::optional<Transport> transport_from_string(std::string_view s) noexcept {
    return value_of(kTransportNames, s);
}
std::optional<Kind> kind_from_string(std::string_view s) noexcept {
    return value_of(kKindNames, s);
}
std::optional<Wait> wait_from_string(std::string_view s) noexcept {
    return value_of(kWaitNames, s);
}
std::optional<Test> test_from_string(std::string_view s) noexcept {
    return value_of(kTestNames, s);
}

std::string Scenario::label() const {
    if (transport == Transport::bridge && rate_hz != 0) {
        // Measured through the bridge, one way, alone on it or beside a large stream.
        return "bridge " + std::string{to_string(kind)} + " " + std::string{to_string(wait)} +
               ", " + std::to_string(rate_hz) + " Hz" +
               (load == Load::large ? ", beside " + std::to_string(kLargeBeside >> 20) + " MiB"
                                    : std::string{", bridge otherwise idle"});
    }
    if (transport == Transport::bridge && load != Load::none) {
        // Measured on the exporting daemon, beside its bridge, not through it.
        const std::string beside = ", bridge " + std::string{to_string(load)};
        if (test == Test::control_open) {
            return "shmbusd" + beside;
        }
        return "shmbus " + std::string{to_string(kind)} + " " + std::string{to_string(wait)} +
               ", exported" + beside;
    }
    std::string s{to_string(transport)};
    if (kind != Kind::none) {
        s += ' ';
        s += to_string(kind);
    }
    if (wait != Wait::none) {
        s += ' ';
        s += to_string(wait);
    }
    return s;
}

std::uint32_t Scenario::processes() const noexcept {
    switch (transport) {
    case Transport::memory_copy:
    case Transport::blackboard_read:
    case Transport::local_read:
        return 1;
    case Transport::shmbusd:
        if (test == Test::control_open) {
            return clients;
        }
        return (clients + kClientsPerHolder - 1) / kClientsPerHolder;
    case Transport::bridge: {
        // The stream beside the measured clients: its sender and its receiver.
        const std::uint32_t streaming = load == Load::streaming || load == Load::large ? 2 : 0;
        return (test == Test::control_open ? clients : 2) + streaming;
    }
    case Transport::shmbus:
        if (test == Test::latency && kind == Kind::queue_mpmc) {
            return 4; // two pingers, two pongers
        }
        return publishers + subscribers;
    default:
        return 2;
    }
}

std::uint32_t Scenario::deliveries() const noexcept {
    const bool broadcast = kind == Kind::broadcast_block || kind == Kind::broadcast_drop;
    return broadcast ? subscribers : 1;
}

std::uint64_t Scenario::counted_messages() const noexcept {
    if (test != Test::bandwidth || msg_size < kCountedFrom || solo()) {
        return 0;
    }
    return std::max<std::uint64_t>(1, kCountedBytes / msg_size);
}

std::chrono::nanoseconds Scenario::counted_allowance() const noexcept {
    return std::chrono::seconds{counted_messages() * msg_size / kSlowestRate};
}

std::optional<Suite> make_suite(std::string_view name) {
    Suite suite;
    suite.name = std::string{name};
    if (name == "tiny") {
        suite.scenarios = tiny_suite();
        suite.settings.duration = std::chrono::milliseconds{40};
    } else if (name == "quick") {
        suite.scenarios = quick_suite();
        suite.settings.duration = std::chrono::milliseconds{250};
    } else if (name == "full") {
        suite.scenarios = full_suite();
        suite.settings.duration = std::chrono::milliseconds{400};
    } else {
        return std::nullopt;
    }
    return suite;
}

std::vector<Scenario> apply_filters(const std::vector<Scenario>& scenarios,
                                    const Filters& filters) {
    std::vector<Scenario> out;
    for (const Scenario& s : scenarios) {
        if (admits(filters.transports, s.transport) && admits(filters.kinds, s.kind) &&
            admits(filters.waits, s.wait) && admits(filters.tests, s.test) &&
            admits(filters.sizes, s.msg_size)) {
            out.push_back(s);
        }
    }
    return out;
}

std::optional<std::string> skip_reason(const Scenario& s, unsigned cores, bool have_shmbusd,
                                       std::string_view no_python, std::string_view no_nats) {
    const bool daemon = s.control_plane() || s.transport == Transport::shmbus_c ||
                        s.transport == Transport::bridge || s.transport == Transport::python ||
                        s.transport == Transport::nats;
    if (daemon && !have_shmbusd) {
        return "no shmbusd binary (build the target shmbusd, or give --shmbusd PATH)";
    }
    if (s.transport == Transport::python && !no_python.empty()) {
        return std::string{no_python};
    }
    if ((s.transport == Transport::nats || s.transport == Transport::nats_raw) &&
        !no_nats.empty()) {
        return std::string{no_nats};
    }
    const bool spins = s.wait == Wait::spin || s.transport == Transport::raw_ring;
    if (spins && s.processes() > cores) {
        return "busy-spinning needs one core per process (" + std::to_string(s.processes()) +
               " processes, " + std::to_string(cores) + " cores)";
    }
    if (s.transport == Transport::posix_mq && s.batch > 1) {
        return "POSIX message queues have no batched send";
    }
    if (s.transport == Transport::posix_mq && s.msg_size > 8 * kKiB) {
        return "larger than the default POSIX mq message limit (fs.mqueue.msgsize_max, 8 KiB)";
    }
    if (s.transport == Transport::uds_seqpacket && s.msg_size > 64 * kKiB) {
        return "a datagram this large exceeds the default socket send buffer";
    }
    if (s.msg_size < 8 && s.transport != Transport::futex_raw) {
        return "messages carry an 8-byte sequence or timestamp: 8 bytes at least";
    }
    return std::nullopt;
}

} // namespace bench
