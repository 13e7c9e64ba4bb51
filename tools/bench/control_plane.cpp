// The control plane: see control_plane.hpp.

#include "control_plane.hpp"

#include "shmbusd_process.hpp"

#include <shmbus/client.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <limits>
#include <string>
#include <thread>

namespace bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kOpenWarmup = 20;
// Connecting 200 clients, and closing them, on a loaded machine: the set-up allowance of a
// run on top of its duration. It bounds a hang; it never paces anything.
constexpr std::chrono::seconds kSetupAllowance{60};
constexpr double kNsPerS = 1e9;

/// connect, hello, open, descriptors received, mapped; then close and disconnect. Returns
/// an error sentence, or empty.
std::string open_cycle(const shmbus::ClientOptions& options, const std::string& channel) {
    auto client = shmbus::Client::connect(options);
    if (!client) {
        return "connect: " + client.error().message();
    }
    auto sub = client->open_subscriber(channel);
    if (!sub) {
        return "open_subscriber " + channel + ": " + sub.error().message();
    }
    return {}; // the Subscriber, then the Client, close here
}

/// Connects clients [first, first + count) and opens one endpoint on each, holds them
/// until the parent releases the board, then closes them all.
Report run_holder(const shmbus::ClientOptions& options, const Scenario& s, std::uint32_t first,
                  std::uint32_t count, Board& board, StartGate& gate) {
    Report r;
    r.role = Report::Role::holder;
    std::vector<shmbus::Client> clients;
    std::vector<shmbus::Publisher> publishers;
    std::vector<shmbus::Subscriber> subscribers;
    clients.reserve(count);
    for (std::uint32_t k = first; k < first + count; ++k) {
        auto client = shmbus::Client::connect(options);
        if (!client) {
            r.error = "connect client " + std::to_string(k) + ": " + client.error().message();
            return r;
        }
        const std::string channel = channel_name(k % s.channels);
        if (k < s.publishers) {
            auto pub = client->open_publisher(channel);
            if (!pub) {
                r.error = "open_publisher " + channel + ": " + pub.error().message();
                return r;
            }
            publishers.push_back(std::move(pub).value());
        } else {
            auto sub = client->open_subscriber(channel);
            if (!sub) {
                r.error = "open_subscriber " + channel + ": " + sub.error().message();
                return r;
            }
            subscribers.push_back(std::move(sub).value());
        }
        clients.push_back(std::move(client).value());
    }
    gate.wait();
    // Pairs with the parent's release store: nothing else is read, so only the wait matters.
    while (board.released.load(std::memory_order_acquire) == 0) {
        futex_wait(board.released, 0);
    }
    r.messages = count;
    return r;
}

RunResult run_opens(const Scenario& s, const RunSettings& settings, const ShmbusdProcess& daemon) {
    RunResult r;
    const shmbus::ClientOptions options = client_options(daemon.socket_path());
    const std::string channel = channel_name(0);
    Team team{settings.pin};
    for (std::uint32_t i = 0; i < s.clients; ++i) {
        std::string e = team.spawn([&options, &channel, &settings](StartGate& gate) {
            return run_opener(options, channel, gate, settings);
        });
        if (!e.empty()) {
            r.error = e;
            return r;
        }
    }
    std::optional<ProcessCpu> before;
    std::vector<Report> reports;
    r.error = team.run(settings.duration + kSetupAllowance, reports,
                       [&] { before = read_cpu(daemon.pid()); });
    const std::optional<ProcessCpu> after = read_cpu(daemon.pid());
    if (!r.ok()) {
        return r;
    }
    std::optional<std::int64_t> daemon_cpu;
    if (before && after) {
        daemon_cpu = after->cpu_ns - before->cpu_ns;
    }
    return reduce_opens(reports, daemon_cpu);
}

RunResult run_footprint(const Scenario& s, const RunSettings& settings,
                        const ShmbusdProcess& daemon) {
    RunResult r;
    if (const auto base = read_memory(daemon.pid()); base && s.test == Test::daemon_rss) {
        r.rss_base_bytes = static_cast<double>(base->rss);
    }
    SharedBoard board;
    if (!board.valid()) {
        r.error = "cannot map the coordination page";
        return r;
    }
    const shmbus::ClientOptions options = client_options(daemon.socket_path());
    Team team{settings.pin};
    for (std::uint32_t first = 0; first < s.clients; first += kClientsPerHolder) {
        const std::uint32_t count = std::min(kClientsPerHolder, s.clients - first);
        std::string e = team.spawn([&, first, count](StartGate& gate) {
            return run_holder(options, s, first, count, board.get(), gate);
        });
        if (!e.empty()) {
            r.error = e;
            return r;
        }
    }
    std::string measure_error;
    const auto measure = [&] {
        if (s.test == Test::daemon_rss) {
            if (const auto m = read_memory(daemon.pid())) {
                r.rss_bytes = static_cast<double>(m->rss);
                r.hwm_bytes = static_cast<double>(m->hwm);
                r.rss_anon_bytes = static_cast<double>(m->anon);
                r.rss_file_bytes = static_cast<double>(m->file);
                r.rss_shmem_bytes = static_cast<double>(m->shmem);
            } else {
                measure_error = "cannot read the memory of shmbusd from /proc";
            }
        } else {
            const auto c0 = read_cpu(daemon.pid());
            const std::int64_t t0 = now_ns();
            // The measured interval itself: the daemon is left alone for its duration.
            std::this_thread::sleep_for(settings.duration);
            const auto c1 = read_cpu(daemon.pid());
            const double seconds = static_cast<double>(now_ns() - t0) / kNsPerS;
            if (c0 && c1 && seconds > 0) {
                r.cpu_percent =
                    static_cast<double>(c1->cpu_ns - c0->cpu_ns) / kNsPerS / seconds * 100.0;
                if (c0->wakeups && c1->wakeups) {
                    r.wakeups_per_s = static_cast<double>(*c1->wakeups - *c0->wakeups) / seconds;
                }
            } else {
                measure_error = "cannot read the CPU time of shmbusd from /proc";
            }
        }
        // Pairs with the holders' acquire loads.
        board.get().released.store(1, std::memory_order_release);
        futex_wake(board.get().released, INT_MAX);
    };
    std::vector<Report> reports;
    r.error = team.run(settings.duration + kSetupAllowance, reports, measure);
    if (r.ok()) {
        r.error = measure_error;
    }
    return r;
}

} // namespace

shmbus::ClientOptions client_options(const std::string& socket) {
    shmbus::ClientOptions o;
    o.socket_path = socket;
    o.client_name = "shmbus-bench";
    return o;
}

Report run_opener(const shmbus::ClientOptions& options, const std::string& channel, StartGate& gate,
                  const RunSettings& settings) {
    Report r;
    r.role = Report::Role::opener;
    for (std::size_t i = 0; i < kOpenWarmup; ++i) {
        if (std::string e = open_cycle(options, channel); !e.empty()) {
            r.error = e;
            return r;
        }
    }
    r.samples.reserve(std::min<std::size_t>(settings.max_samples, 1U << 16));
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + settings.duration.count();
    for (;;) {
        const std::int64_t t0 = now_ns();
        if (std::string e = open_cycle(options, channel); !e.empty()) {
            r.error = e;
            break;
        }
        const std::int64_t t1 = now_ns();
        ++r.messages;
        if (r.samples.size() < settings.max_samples) {
            r.samples.push_back(static_cast<std::uint32_t>(
                std::clamp<std::int64_t>(t1 - t0, 0, std::int64_t{UINT32_MAX})));
        }
        if (t1 >= deadline) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

RunResult reduce_opens(std::vector<Report>& reports, std::optional<std::int64_t> daemon_cpu_ns) {
    RunResult r;
    std::vector<std::uint32_t> samples;
    std::int64_t start = std::numeric_limits<std::int64_t>::max();
    std::int64_t end = 0;
    std::uint64_t opens = 0;
    std::int64_t client_cpu = 0;
    for (Report& rep : reports) {
        if (rep.role != Report::Role::opener) {
            continue;
        }
        start = std::min(start, rep.t_start_ns);
        end = std::max(end, rep.t_end_ns);
        opens += rep.messages;
        client_cpu += rep.cpu_ns;
        samples.insert(samples.end(), rep.samples.begin(), rep.samples.end());
        std::vector<std::uint32_t>().swap(rep.samples);
    }
    if (opens == 0 || samples.empty() || end <= start) {
        r.error = "no channel was opened";
        return r;
    }
    summarise_latency(samples, r);
    const auto n = static_cast<double>(opens);
    r.opens_per_s = n / (static_cast<double>(end - start) / kNsPerS);
    r.client_cpu_ns_per_open = static_cast<double>(client_cpu) / n;
    if (daemon_cpu_ns) {
        r.daemon_cpu_ns_per_open = static_cast<double>(*daemon_cpu_ns) / n;
    }
    return r;
}

RunResult run_control_plane(const Scenario& s, const RunSettings& settings) {
    ChannelSet channels;
    channels.count = std::max<std::uint32_t>(1, s.channels);
    channels.slot_size = s.msg_size;
    if (s.test == Test::control_open) {
        // Room for every opener's endpoint and for the ones whose close is still on its way.
        channels.max_subscribers = std::max<std::uint32_t>(16, 8 * s.clients);
    } else {
        channels.max_subscribers =
            std::max<std::uint32_t>(4, (s.subscribers + channels.count - 1) / channels.count);
    }
    const std::uint32_t max_clients = std::max<std::uint32_t>(256, s.clients + 16);
    ShmbusdProcess daemon;
    RunResult r;
    r.error = daemon.start(settings.shmbusd, channels, max_clients);
    if (!r.ok()) {
        return r;
    }
    r = s.test == Test::control_open ? run_opens(s, settings, daemon)
                                     : run_footprint(s, settings, daemon);
    if (std::string stopped = daemon.stop(); r.ok()) {
        r.error = stopped;
    }
    return r;
}

} // namespace bench
