// The gateway measured: see bridge_transport.hpp.

#include "bridge_transport.hpp"

#include "control_plane.hpp"
#include "patterns.hpp"
#include "runner.hpp"
#include "shm_endpoints.hpp"
#include "shmbusd_process.hpp"
#include "team.hpp"

#include <shmbus/client.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace bench {
namespace {

using namespace std::chrono_literals;

// The channels of both daemons (bridge_transport.hpp).
constexpr std::uint32_t kForward = 0;  // near -> far
constexpr std::uint32_t kBackward = 1; // far -> near
constexpr std::uint32_t kLoad = 2;     // near -> far, the isolation rows' stream
constexpr std::uint32_t kLocal = 3;    // near only
static_assert(kLocal < kBridgeChannels);

// Bounds a bridge that never connects; it never paces anything.
constexpr std::chrono::seconds kConnectDeadline{30};
// How often the parent looks at the bridges' state while waiting for them.
constexpr std::chrono::milliseconds kStatePoll{2};
// Readers of bridged channels: the longest wait of one receive (see the header).
constexpr std::chrono::nanoseconds kBridgedPoll = 1s;
// Set-up (two daemons, the clients) and drain allowance on top of the run's duration.
constexpr std::chrono::seconds kSetupAllowance{30};
constexpr std::uint32_t kMaxClients = 64;

// Shared by the two daemons of one run on this machine only; a file of mode 0600, as the
// configuration requires.
constexpr std::string_view kSecret = "shmbus-bench: the loopback bridge of one benchmark run";

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

/// Writes the shared secret into `dir`; its path, or empty with `error` set.
std::string write_secret(const std::filesystem::path& dir, std::string& error) {
    const std::filesystem::path path = dir / "bridge.key";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = errno_text("create " + path.native());
        return {};
    }
    const bool written =
        ::write(fd, kSecret.data(), kSecret.size()) == static_cast<ssize_t>(kSecret.size());
    if (!written) {
        error = errno_text("write " + path.native());
    }
    ::close(fd);
    return written ? path.native() : std::string{};
}

std::string yaml_list(std::initializer_list<std::uint32_t> channels) {
    std::string out = "[";
    for (std::uint32_t c : channels) {
        out += (out.size() > 1 ? ", " : "") + yaml_quoted(channel_name(c));
    }
    return out + "]";
}

/// Export rules of `channels` that hold their publishers rather than drop while the peer
/// catches up (`on_congestion: block`): the rows measure what crosses the bridge whole, and
/// the default (drop_oldest) would let a sender outrun the far end by dropping.
std::string yaml_exports(std::initializer_list<std::uint32_t> channels) {
    std::string out = "[";
    for (std::uint32_t c : channels) {
        out += (out.size() > 1 ? ", " : "") + std::string{"{channel: "} +
               yaml_quoted(channel_name(c)) + ", on_congestion: block}";
    }
    return out + "]";
}

/// The `bridges:` section of the far daemon (`port` 0: it listens) or the near one (it
/// connects to `port`), with `nice` when given.
ConfigExtra bridge_section(std::uint16_t port, std::optional<int> nice) {
    return [port, nice](const std::filesystem::path& dir, std::string& error) {
        const std::string key = write_secret(dir, error);
        if (key.empty()) {
            return std::string{};
        }
        const bool far = port == 0;
        return "bridges:\n"
               "  - name: bench\n"
               "    " +
               (far ? std::string{"listen: tcp://127.0.0.1:0"}
                    : "connect: tcp://127.0.0.1:" + std::to_string(port)) +
               "\n    secret_file: " + yaml_quoted(key) + "\n    export: " +
               (far ? yaml_exports({kBackward}) : yaml_exports({kForward, kLoad})) +
               "\n    import: " + (far ? yaml_list({kForward, kLoad}) : yaml_list({kBackward})) +
               (nice ? "\n    nice: " + std::to_string(*nice) : std::string{}) + "\n";
    };
}

/// The two daemons of one run and the bridge between them.
class DaemonPair {
public:
    /// Starts the far daemon, then the near one connected to it, and waits until the bridge
    /// streams every channel both ways. Returns an error sentence, or empty.
    std::string start(const std::string& binary, const ChannelSet& channels,
                      std::optional<int> nice) {
        if (std::string e = far_.start(binary, channels, kMaxClients, bridge_section(0, nice));
            !e.empty()) {
            return "the listening shmbusd: " + e;
        }
        std::uint16_t port = 0;
        if (std::string e = wait_for(far_, "listening",
                                     [&](const shmbus::BridgeSummary& b) {
                                         port = b.listening_port;
                                         return port != 0;
                                     });
            !e.empty()) {
            return e;
        }
        if (std::string e = near_.start(binary, channels, kMaxClients, bridge_section(port, nice));
            !e.empty()) {
            return "the connecting shmbusd: " + e;
        }
        for (ShmbusdProcess* d : {&near_, &far_}) {
            if (std::string e = wait_for(*d, "connected, every stream granted", streaming);
                !e.empty()) {
                return e;
            }
        }
        return {};
    }

    /// Stops the near daemon, then the far one; the first error sentence, or empty.
    std::string stop() {
        std::string e = near_.stop();
        std::string f = far_.stop();
        return e.empty() ? f : e;
    }

    [[nodiscard]] const ShmbusdProcess& near() const noexcept { return near_; }
    [[nodiscard]] const ShmbusdProcess& far() const noexcept { return far_; }

private:
    /// Whether the bridge is connected with its three streams, each exporting one holding
    /// credits (its peer has granted it: what is published now is sent).
    static bool streaming(const shmbus::BridgeSummary& b) {
        if (b.state != "connected" || b.streams.size() != 3) {
            return false;
        }
        return std::all_of(b.streams.begin(), b.streams.end(),
                           [](const auto& s) { return !s.exporting || s.credits > 0; });
    }

    /// Polls the bridge of `d` until `ready` holds, or the deadline. An error sentence
    /// naming what was awaited and what the bridge said, or empty.
    template <typename Ready>
    static std::string wait_for(const ShmbusdProcess& d, const std::string& what, Ready ready) {
        auto client = shmbus::Client::connect(client_options(d.socket_path()));
        if (!client) {
            return "connect to shmbusd: " + client.error().message();
        }
        const auto deadline = std::chrono::steady_clock::now() + kConnectDeadline;
        std::string last = "no bridge";
        while (std::chrono::steady_clock::now() < deadline) {
            auto bridges = client.value().list_bridges();
            if (!bridges) {
                return "list_bridges: " + bridges.error().message();
            }
            for (const shmbus::BridgeSummary& b : bridges.value()) {
                if (ready(b)) {
                    return {};
                }
                last = b.state + (b.last_error.empty() ? "" : " (" + b.last_error + ")");
            }
            std::this_thread::sleep_for(kStatePoll);
        }
        return "the bridge was not " + what + " within " +
               std::to_string(kConnectDeadline.count()) + " s: " + last + "; " + d.log_tail();
    }

    ShmbusdProcess far_;
    ShmbusdProcess near_; // destroyed first: its bridge is the one that reconnects
};

shmbus::EndpointOptions adaptive() {
    return shmbus::EndpointOptions{.wait = wait_mode(Wait::adaptive)};
}

/// No channel, for spawn_client().
constexpr std::uint32_t kNone = ~std::uint32_t{0};

/// A Team child connected to the daemon at `socket`, with a writer on channel `out` and a
/// reader on channel `in` (either may be kNone), running `fn(writer*, reader*, gate)`.
template <typename Fn>
std::string spawn_client(Team& team, const std::string& socket, std::uint32_t out, std::uint32_t in,
                         Fn fn) {
    return team.spawn([=](StartGate& gate) {
        Report r;
        shmbus::ClientOptions options = client_options(socket);
        options.reconnect_in_background = false;
        auto client = shmbus::Client::connect(options);
        if (!client) {
            r.error = "connect " + socket + ": " + client.error().message();
            return r;
        }
        std::optional<ShmWriter> writer;
        std::optional<ShmReader> reader;
        if (out != kNone) {
            auto pub = client.value().open_publisher(channel_name(out), adaptive());
            if (!pub) {
                r.error = "open_publisher " + channel_name(out) + ": " + pub.error().message();
                return r;
            }
            writer.emplace(std::move(pub).value(), false);
        }
        if (in != kNone) {
            auto sub = client.value().open_subscriber(channel_name(in), adaptive());
            if (!sub) {
                r.error = "open_subscriber " + channel_name(in) + ": " + sub.error().message();
                return r;
            }
            reader.emplace(std::move(sub).value(), false, kBridgedPoll);
        }
        return fn(writer ? &*writer : nullptr, reader ? &*reader : nullptr, gate);
    });
}

/// Spawns the sender (on the near daemon) and the receiver (on the far one) of a stream
/// through the bridge on `channel`.
std::string spawn_stream(Team& team, const DaemonPair& pair, std::uint32_t channel,
                         const PatternParams& p) {
    std::string e = spawn_client(
        team, pair.near().socket_path(), channel, kNone,
        [p](ShmWriter* out, ShmReader*, StartGate& gate) { return run_sender(*out, gate, p); });
    if (!e.empty()) {
        return e;
    }
    return spawn_client(
        team, pair.far().socket_path(), kNone, channel,
        [p](ShmWriter*, ShmReader* in, StartGate& gate) { return run_receiver(*in, gate, p); });
}

/// The isolation rows' load: 128 B, 64 per publish, for the run's duration.
Scenario load_stream() {
    return Scenario{
        Transport::bridge, Kind::broadcast_block, Wait::adaptive, Test::throughput, 128, 64, 1, 1};
}

/// The paced rows' large stream: kLargeBeside bytes, one per publish.
Scenario large_stream() {
    return Scenario{Transport::bridge,
                    Kind::broadcast_block,
                    Wait::adaptive,
                    Test::bandwidth,
                    kLargeBeside,
                    1,
                    1,
                    1};
}

/// Ring geometry: as the shmbus transport's (shmbus_transport.cpp) for the same test. The
/// paced rows (idle or not) have small rings but for kLoad's, which carries the large stream
/// in the Load::large row: both rows run on daemons configured alike.
ChannelSet channels_for(const Scenario& s) {
    ChannelSet c;
    c.count = kBridgeChannels;
    c.slot_size = s.msg_size;
    if (s.rate_hz != 0) {
        c.slot_count = 64;
        const ChannelSet large = channels_for(large_stream());
        c.rings.push_back({kLoad, large.slot_size, large.slot_count});
    } else if (s.test == Test::bandwidth) {
        // Messages above 1 MiB (sent in fragments): 2 slots, so that the four channels of
        // 64 MiB messages stay within a daemon's default max_total_segment_bytes (1 GiB).
        const std::uint64_t least = s.msg_size > (1ULL << 20) ? 2 : 4;
        c.slot_count =
            std::bit_floor(std::clamp<std::uint64_t>((2ULL << 20) / s.msg_size, least, 1024));
    } else if (s.test == Test::latency) {
        c.slot_count = 64;
    } else {
        c.slot_count = std::max<std::uint64_t>(1024, 16ULL * s.batch);
    }
    return c;
}

/// The daemons' CPU time so far, if /proc says.
struct PairCpu {
    std::optional<ProcessCpu> near;
    std::optional<ProcessCpu> far;
};
PairCpu read_pair_cpu(const DaemonPair& pair) {
    return PairCpu{read_cpu(pair.near().pid()), read_cpu(pair.far().pid())};
}

/// The daemons' CPU per message sent over the run, onto `r`.
void add_daemon_cpu(const PairCpu& before, const PairCpu& after, const std::vector<Report>& reports,
                    RunResult& r) {
    std::uint64_t sent = 0;
    for (const Report& rep : reports) {
        sent += rep.role == Report::Role::sender ? rep.messages : 0;
    }
    if (sent == 0) {
        return;
    }
    const auto per_message = [sent](const std::optional<ProcessCpu>& a,
                                    const std::optional<ProcessCpu>& b) -> std::optional<double> {
        if (!a || !b) {
            return std::nullopt;
        }
        return static_cast<double>(b->cpu_ns - a->cpu_ns) / static_cast<double>(sent);
    };
    r.bridge_out_cpu_ns_per_msg = per_message(before.near, after.near);
    r.bridge_in_cpu_ns_per_msg = per_message(before.far, after.far);
}

/// Rows through the bridge.
RunResult run_through(const Scenario& s, const RunSettings& settings, const DaemonPair& pair) {
    RunResult r;
    SharedBoard board;
    if (!board.valid()) {
        r.error = errno_text("mmap");
        return r;
    }
    const PatternParams p = make_params(s, settings, board.get());
    Team team{settings.pin};
    std::string error;
    if (s.test == Test::latency) {
        error = spawn_client(team, pair.near().socket_path(), kForward, kBackward,
                             [p](ShmWriter* out, ShmReader* in, StartGate& gate) {
                                 return run_pinger(*out, *in, gate, p);
                             });
        if (error.empty()) {
            error = spawn_client(team, pair.far().socket_path(), kBackward, kForward,
                                 [p](ShmWriter* out, ShmReader* in, StartGate& gate) {
                                     return run_ponger(*out, *in, gate, p);
                                 });
        }
    } else {
        error = spawn_stream(team, pair, kForward, p);
    }
    if (!error.empty()) {
        r.error = error;
        return r;
    }
    PairCpu before;
    std::vector<Report> reports;
    r.error = team.run(settings.duration + kSetupAllowance + s.counted_allowance(), reports,
                       [&] { before = read_pair_cpu(pair); });
    const PairCpu after = read_pair_cpu(pair);
    if (!r.ok()) {
        return r;
    }
    r = reduce_reports(s, reports);
    if (s.test != Test::latency) {
        add_daemon_cpu(before, after, reports, r);
    }
    return r;
}

/// The boards of a run with a stream beside the measured clients: theirs and the stream's.
struct RunBoards {
    SharedBoard measured;
    SharedBoard stream;
    [[nodiscard]] bool valid() const noexcept { return measured.valid() && stream.valid(); }
};

/// Isolation rows: opens or a local ping-pong on the near daemon, its bridge idle or busy.
RunResult run_isolation(const Scenario& s, const RunSettings& settings, const DaemonPair& pair) {
    RunResult r;
    const RunBoards boards;
    if (!boards.valid()) {
        r.error = errno_text("mmap");
        return r;
    }
    const PatternParams p = make_params(s, settings, boards.measured.get());
    const std::string near = pair.near().socket_path();
    Team team{settings.pin};
    std::string error;
    if (s.test == Test::control_open) {
        const shmbus::ClientOptions options = client_options(near);
        const std::string channel = channel_name(kLocal);
        error = team.spawn([options, channel, &settings](StartGate& gate) {
            return run_opener(options, channel, gate, settings);
        });
    } else {
        error = spawn_client(team, near, kForward, kLocal,
                             [p](ShmWriter* out, ShmReader* in, StartGate& gate) {
                                 return run_pinger(*out, *in, gate, p);
                             });
        if (error.empty()) {
            error = spawn_client(team, near, kLocal, kForward,
                                 [p](ShmWriter* out, ShmReader* in, StartGate& gate) {
                                     return run_ponger(*out, *in, gate, p);
                                 });
        }
    }
    if (error.empty() && s.load == Load::streaming) {
        error = spawn_stream(team, pair, kLoad,
                             make_params(load_stream(), settings, boards.stream.get()));
    }
    if (!error.empty()) {
        r.error = error;
        return r;
    }
    std::vector<Report> reports;
    r.error = team.run(settings.duration + kSetupAllowance, reports);
    if (!r.ok()) {
        return r;
    }
    // Both reductions take only their own roles' reports (openers, pingers), never the load's.
    if (s.test == Test::control_open) {
        // The daemon's CPU would count its bridge's threads too: not a cost of the opens.
        return reduce_opens(reports, std::nullopt);
    }
    return reduce_reports(s, reports);
}

/// Ticks of a paced row: the run's duration of them at `s.rate_hz`, kMinTicks at least.
constexpr std::uint64_t kMinTicks = 300;
// Ticks not recorded: the first publishes touch fresh pages.
constexpr std::size_t kTickWarmup = 10;

/// Paced rows: a ticker on the near daemon publishes on kForward at `s.rate_hz`, a clock
/// reader on the far one records each tick's one-way latency; for Load::large, a sender on
/// the near daemon streams kLargeBeside-byte messages on kLoad to a receiver on the far one
/// (checksummed) for as long as the ticks last, so every tick shares the link with it.
RunResult run_paced(const Scenario& s, const RunSettings& settings, const DaemonPair& pair) {
    RunResult r;
    const RunBoards boards;
    if (!boards.valid()) {
        r.error = errno_text("mmap");
        return r;
    }
    const std::int64_t period_ns = 1'000'000'000 / s.rate_hz;
    const std::uint64_t ticks = std::max<std::uint64_t>(
        kMinTicks, static_cast<std::uint64_t>(settings.duration.count() / period_ns));
    PatternParams p = make_params(s, settings, boards.measured.get());
    p.warmup = kTickWarmup;
    Team team{settings.pin};
    std::string error =
        spawn_client(team, pair.near().socket_path(), kForward, kNone,
                     [p, ticks, period_ns](ShmWriter* out, ShmReader*, StartGate& gate) {
                         return run_ticker(*out, gate, p, ticks, period_ns);
                     });
    if (error.empty()) {
        error = spawn_client(team, pair.far().socket_path(), kNone, kForward,
                             [p](ShmWriter*, ShmReader* in, StartGate& gate) {
                                 return run_clock_reader(*in, gate, p);
                             });
    }
    const std::chrono::nanoseconds ticking{static_cast<std::int64_t>(ticks) * period_ns};
    if (error.empty() && s.load == Load::large) {
        // Duration-bound, over the ticks' time: the stream runs while every tick is sent.
        PatternParams large = make_params(large_stream(), settings, boards.stream.get());
        large.messages = 0;
        large.duration_ns = ticking.count();
        error = spawn_stream(team, pair, kLoad, large);
    }
    if (!error.empty()) {
        r.error = error;
        return r;
    }
    std::vector<Report> reports;
    r.error = team.run(ticking + kSetupAllowance + large_stream().counted_allowance(), reports);
    if (!r.ok()) {
        return r;
    }
    return reduce_reports(s, reports); // the clock reader's samples only
}

} // namespace

RunResult run_bridge(const Scenario& s, const RunSettings& settings) {
    DaemonPair pair;
    RunResult r;
    r.error = pair.start(settings.shmbusd, channels_for(s), settings.bridge_nice);
    if (r.ok()) {
        r = s.rate_hz != 0         ? run_paced(s, settings, pair)
            : s.load == Load::none ? run_through(s, settings, pair)
                                   : run_isolation(s, settings, pair);
    }
    if (std::string stopped = pair.stop(); r.ok()) {
        r.error = stopped;
    }
    return r;
}

} // namespace bench
