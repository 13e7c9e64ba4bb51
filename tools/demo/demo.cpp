// shmbus-demo: one publisher process and several subscriber processes exchange messages
// through a broadcast channel in shared memory, and print what they send and receive,
// the rate, and the one-way latency measured from timestamps inside the messages.
//
// By default the demo creates the channel itself and hands its descriptors to its children
// by fork(). With --via-daemon, every process connects to shmbusd on its own (shmbus::Client)
// and opens the configured channel 'demo' by name, as applications do; the channel's
// overflow policy is then the configuration's (block, in config/shmbusd.yaml: lossless;
// under drop the subscribers report exactly what they lost). It uses only the public API.
#include <shmbus/shmbus.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <type_traits>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
    std::uint64_t messages = 1'000'000;
    std::uint32_t subscribers = 2;
    std::uint64_t size = 64;
    shmbus::WaitMode wait = shmbus::WaitMode::adaptive;
    bool via_daemon = false;
    std::string socket; ///< --socket: shmbusd's control socket; empty: the default
};

struct Stamp {
    std::uint64_t seq;
    std::int64_t sent_ns;
};

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

[[noreturn]] void usage(const char* argv0, int code) {
    std::fprintf(code == 0 ? stdout : stderr,
                 "usage: %s [--messages N] [--subscribers N] [--size BYTES] "
                 "[--wait spin|adaptive|blocking] [--via-daemon [--socket PATH]]\n",
                 argv0);
    std::exit(code);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "shmbus-demo: %s needs a value\n", argv[i]);
                usage(argv[0], 2);
            }
            return argv[++i];
        };
        auto number = [&](std::string_view v) {
            char* end = nullptr;
            const std::string s{v};
            const unsigned long long n = std::strtoull(s.c_str(), &end, 10);
            if (end == s.c_str() || *end != '\0' || n == 0) {
                std::fprintf(stderr, "shmbus-demo: '%s' is not a positive number\n", s.c_str());
                usage(argv[0], 2);
            }
            return static_cast<std::uint64_t>(n);
        };
        if (a == "--messages") {
            o.messages = number(value());
        } else if (a == "--subscribers") {
            o.subscribers =
                static_cast<std::uint32_t>(std::min<std::uint64_t>(number(value()), 16));
        } else if (a == "--size") {
            o.size = std::max<std::uint64_t>(number(value()), sizeof(Stamp));
        } else if (a == "--wait") {
            const auto v = value();
            if (v == "spin") {
                o.wait = shmbus::WaitMode::spin;
            } else if (v == "adaptive") {
                o.wait = shmbus::WaitMode::adaptive;
            } else if (v == "blocking") {
                o.wait = shmbus::WaitMode::blocking;
            } else {
                std::fprintf(stderr, "shmbus-demo: unknown wait mode '%.*s'\n",
                             static_cast<int>(v.size()), v.data());
                usage(argv[0], 2);
            }
        } else if (a == "--via-daemon") {
            o.via_daemon = true;
        } else if (a == "--socket") {
            o.socket = std::string{value()};
        } else if (a == "--help" || a == "-h") {
            usage(argv[0], 0);
        } else {
            std::fprintf(stderr, "shmbus-demo: unknown option '%s'\n", argv[i]);
            usage(argv[0], 2);
        }
    }
    return o;
}

int fail(const char* who, const shmbus::Error& e) {
    std::fprintf(stderr, "shmbus-demo: %s: %s\n", who, e.message().c_str());
    return 1;
}

int run_subscriber(shmbus::Subscriber sub, std::uint32_t id, const Options& o) {
    std::vector<std::int64_t> latency;
    latency.reserve(o.messages);
    std::uint64_t next = 0;
    std::uint64_t lost = 0;
    std::uint64_t bad = 0;
    const bool may_drop = sub.info().overflow == shmbus::Overflow::drop;
    const auto start = Clock::now();
    // Under the drop policy a batch read in place may be overwritten while it is read; the
    // copying receive never returns a torn message and says how many were lost before each.
    std::vector<std::byte> copy(may_drop ? o.size : 0);
    while (next < o.messages) {
        if (may_drop) {
            auto r = sub.receive_copy(copy, 10s);
            if (!r) {
                return fail("subscriber", r.error());
            }
            const std::int64_t t = now_ns();
            lost += r->lost_before;
            Stamp s{};
            std::memcpy(&s, copy.data(), sizeof s);
            if (s.seq != next + r->lost_before) {
                ++bad;
            }
            next = s.seq + 1;
            latency.push_back(t - s.sent_ns);
            if (s.seq < 3) {
                std::printf("  subscriber %u (pid %d) received #%" PRIu64 " (%" PRIu64
                            " bytes) after %.1f us\n",
                            id, getpid(), s.seq, r->size,
                            static_cast<double>(t - s.sent_ns) / 1000.0);
            }
            continue;
        }
        auto batch = sub.receive(64, 10s);
        if (!batch) {
            return fail("subscriber", batch.error());
        }
        lost += batch->lost_before();
        const std::int64_t t = now_ns();
        for (std::size_t i = 0; i < batch->size(); ++i) {
            const shmbus::Message m = batch->message(i);
            Stamp s{};
            std::memcpy(&s, m.data.data(), sizeof s);
            if (s.seq != next) {
                ++bad;
            }
            next = s.seq + 1;
            latency.push_back(t - s.sent_ns);
            if (s.seq < 3) {
                std::printf("  subscriber %u (pid %d) received #%" PRIu64
                            " (%zu bytes) after %.1f us\n",
                            id, getpid(), s.seq, m.data.size(),
                            static_cast<double>(t - s.sent_ns) / 1000.0);
            }
        }
        if (auto r = sub.release(*batch); !r) {
            return fail("subscriber", r.error());
        }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::sort(latency.begin(), latency.end());
    auto pct = [&](double p) {
        return static_cast<double>(
                   latency[static_cast<std::size_t>(p * static_cast<double>(latency.size() - 1))]) /
               1000.0;
    };
    std::printf("  subscriber %u: %zu messages in %.3f s (%.2f M msg/s), latency p50 %.2f us, "
                "p99 %.2f us, lost %" PRIu64 ", out of order %" PRIu64 "\n",
                id, latency.size(), secs, static_cast<double>(latency.size()) / secs / 1e6,
                pct(0.5), pct(0.99), lost, bad);
    return (lost == 0 || may_drop) && bad == 0 ? 0 : 1;
}

shmbus::ClientOptions client_options(const Options& o, const char* name) {
    shmbus::ClientOptions c;
    c.socket_path = o.socket;
    c.client_name = name;
    c.wait_for_daemon = std::chrono::seconds{10}; // start in any order with shmbusd
    return c;
}

/// Opens the daemon's channel 'demo' in this process. The Client is kept for the process's
/// life, like an application's connection.
template <typename Endpoint>
shmbus::Result<Endpoint> open_via_daemon(const Options& o, shmbus::Role role,
                                         std::optional<shmbus::Client>& client) {
    auto c = shmbus::Client::connect(
        client_options(o, role == shmbus::Role::publisher ? "demo-publisher" : "demo-subscriber"));
    if (!c) {
        return c.take_error();
    }
    client.emplace(std::move(*c));
    if constexpr (std::is_same_v<Endpoint, shmbus::Publisher>) {
        return client->open_publisher("demo", {o.wait});
    } else {
        return client->open_subscriber("demo", {o.wait});
    }
}

int run_publisher(shmbus::Publisher pub, const Options& o) {
    const auto start = Clock::now();
    for (std::uint64_t seq = 0; seq < o.messages;) {
        auto batch = pub.reserve(std::min<std::uint64_t>(16, o.messages - seq), 10s);
        if (!batch) {
            return fail("publisher", batch.error());
        }
        for (std::size_t i = 0; i < batch->size(); ++i, ++seq) {
            const Stamp s{seq, now_ns()};
            std::memcpy(batch->data(i).data(), &s, sizeof s);
            batch->set_length(i, o.size);
            if (seq < 3) {
                std::printf("  publisher (pid %d) sent #%" PRIu64 "\n", getpid(), seq);
            }
        }
        if (auto r = pub.commit(*batch); !r) {
            return fail("publisher", r.error());
        }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("  publisher: %" PRIu64 " messages of %" PRIu64 " bytes in %.3f s (%.2f M msg/s)\n",
                o.messages, o.size, secs, static_cast<double>(o.messages) / secs / 1e6);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    shmbus::ChannelSpec spec;
    spec.name = "demo";
    spec.kind = shmbus::ChannelKind::broadcast;
    spec.slot_size = o.size;
    spec.slot_count = 1024;
    spec.overflow = shmbus::Overflow::block;
    spec.max_subscribers = o.subscribers;
    std::optional<shmbus::ChannelFiles> files;
    if (o.via_daemon) {
        auto client = shmbus::Client::connect(client_options(o, "demo"));
        if (!client) {
            return fail("connecting to shmbusd", client.error());
        }
        auto detail = client->channel_info("demo");
        if (!detail) {
            return fail("looking up channel 'demo'", detail.error());
        }
        const shmbus::ChannelInfo& info = detail->summary.info;
        std::printf("shmbus %s demo through shmbusd at %s: channel 'demo' (%s, %s, %" PRIu64
                    " slots of %" PRIu64 " bytes), 1 publisher, %u subscribers, %" PRIu64
                    " messages of %" PRIu64 " bytes, wait mode %s\n",
                    shmbus::library_version(), client->socket_path().c_str(),
                    std::string(shmbus::to_string(info.kind)).c_str(),
                    std::string(shmbus::to_string(info.overflow)).c_str(), info.slot_count,
                    info.slot_size, o.subscribers, o.messages, o.size,
                    std::string(shmbus::to_string(o.wait)).c_str());
        if (o.size > info.slot_size || o.size < sizeof(Stamp)) {
            std::fprintf(stderr, "shmbus-demo: --size must be between %zu and %" PRIu64 "\n",
                         sizeof(Stamp), info.slot_size);
            return 2;
        }
    } else {
        auto created = shmbus::create_channel(spec);
        if (!created) {
            return fail("creating channel", created.error());
        }
        files.emplace(std::move(*created));
        std::printf("shmbus %s demo: channel '%s' (broadcast, block), 1 publisher, %u "
                    "subscribers, %" PRIu64 " messages of %" PRIu64 " bytes, wait mode %s\n",
                    shmbus::library_version(), spec.name.c_str(), o.subscribers, o.messages, o.size,
                    std::string(shmbus::to_string(o.wait)).c_str());
    }
    std::fflush(stdout);

    // Each subscriber attaches in its own process, and says so through a pipe before the
    // publisher starts, so that every subscriber sees every message.
    int ready[2];
    if (pipe(ready) != 0) {
        std::perror("shmbus-demo: pipe");
        return 1;
    }
    std::vector<pid_t> children;
    for (std::uint32_t i = 0; i < o.subscribers; ++i) {
        const pid_t pid = fork();
        if (pid == 0) {
            close(ready[0]);
            std::optional<shmbus::Client> client;
            auto sub = [&]() -> shmbus::Result<shmbus::Subscriber> {
                if (o.via_daemon) {
                    return open_via_daemon<shmbus::Subscriber>(o, shmbus::Role::subscriber, client);
                }
                auto dup = files->duplicate_for(shmbus::Role::subscriber);
                if (!dup) {
                    return dup.take_error();
                }
                return shmbus::Subscriber::attach(std::move(*dup), {o.wait});
            }();
            if (!sub) {
                _exit(fail("attaching subscriber", sub.error()));
            }
            const char one = 1;
            if (write(ready[1], &one, 1) != 1) {
                _exit(1);
            }
            close(ready[1]);
            const int rc = run_subscriber(std::move(*sub), i + 1, o);
            std::fflush(stdout);
            _exit(rc);
        }
        children.push_back(pid);
    }
    close(ready[1]);
    for (std::uint32_t i = 0; i < o.subscribers; ++i) {
        char c = 0;
        if (read(ready[0], &c, 1) != 1) {
            std::fprintf(stderr, "shmbus-demo: a subscriber failed to start\n");
            for (pid_t pid : children) {
                waitpid(pid, nullptr, 0);
            }
            return 1;
        }
    }
    close(ready[0]);
    const pid_t pub_pid = fork();
    if (pub_pid == 0) {
        std::optional<shmbus::Client> client;
        auto pub = [&]() -> shmbus::Result<shmbus::Publisher> {
            if (o.via_daemon) {
                return open_via_daemon<shmbus::Publisher>(o, shmbus::Role::publisher, client);
            }
            auto dup = files->duplicate_for(shmbus::Role::publisher);
            if (!dup) {
                return dup.take_error();
            }
            return shmbus::Publisher::attach(std::move(*dup), {o.wait});
        }();
        if (!pub) {
            _exit(fail("attaching publisher", pub.error()));
        }
        const int rc = run_publisher(std::move(*pub), o);
        std::fflush(stdout);
        _exit(rc);
    }
    children.push_back(pub_pid);
    int failures = 0;
    for (pid_t pid : children) {
        int status = 0;
        waitpid(pid, &status, 0);
        failures += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    if (failures != 0) {
        std::fprintf(stderr, "shmbus-demo: %d process(es) failed\n", failures);
        return 1;
    }
    if (o.via_daemon) {
        std::printf("demo finished: every subscriber read up to message #%" PRIu64
                    " in order; losses, if any, are the drop policy's and counted above\n",
                    o.messages - 1);
    } else {
        std::printf("demo finished: every subscriber received all %" PRIu64
                    " messages, none lost\n",
                    o.messages);
    }
    return 0;
}
