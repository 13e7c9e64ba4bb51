// shmbus-stream: the traffic of the soak campaign (tests/soak/soak.sh) and of the systemd
// container test (tests/systemd/test-systemd.sh). Ordinary client processes of the public
// API, through a running shmbusd, so that what they check is what an application sees:
//
//   pub    publishes COUNT messages at RATE a second, each carrying its sequence number
//          and a checksum, waiting (block policy) whenever the ring is full; it may create
//          the channel first and wait for its subscribers to attach;
//   sub    receives until COUNT messages came and checks each: the sequence numbers must
//          follow each other (a gap is a loss, an old number a duplicate), and every byte
//          must be the one sent (SIZE bytes, derived from the sequence number). It reports the rate
//          and the longest time without a message;
//   churn  CYCLES times: a child connects, opens CHANNEL as a subscriber, says so, and is
//          killed with SIGKILL; at most PER_MINUTE cycles a minute.
//
// Each prints one line of `key=value` figures and exits 0 only when nothing was lost,
// duplicated, damaged or late: 1 for a failed check, 2 for an error (the line says which).
// The library restores the control connection by itself across daemon restarts; the data
// path never needed it.
#include "traffic.hpp"

#include <shmbus/shmbus.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kExitOk = 0;
constexpr int kExitCheckFailed = 1;
constexpr int kExitError = 2;

struct Options {
    std::string socket;
    std::string channel;
    std::uint64_t count{100000};
    double rate{0};
    std::uint64_t size{64};
    std::string create; // "", "broadcast" or "queue"
    std::uint64_t slot_count{1024};
    double timeout_s{30};
    std::string ready_file;
    std::uint32_t subscribers{0};
    std::uint64_t cycles{100};
    double per_minute{1000};
};

/// The bytes of message `seq` past its first 16 (sequence number and checksum).
std::byte filler(std::uint64_t seq, std::size_t i) {
    return static_cast<std::byte>((seq * 31 + i) & 0xff);
}

int error(const std::string& what, const shmbus::Error& e) {
    std::printf("error=\"%s: %s\"\n", what.c_str(), e.message().c_str());
    return kExitError;
}

shmbus::Result<shmbus::Client> connect(const Options& o, const std::string& name) {
    shmbus::ClientOptions co;
    co.socket_path = o.socket;
    co.client_name = name;
    co.wait_for_daemon = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
    co.log = [](std::string_view line) {
        std::fprintf(stderr, "shmbus-stream: %.*s\n", static_cast<int>(line.size()), line.data());
    };
    return shmbus::Client::connect(co);
}

void touch(const std::string& path) {
    if (!path.empty()) {
        std::ofstream(path).put('\n');
    }
}

/// --create: makes CHANNEL a dynamic channel (block policy) unless it exists.
int create_if_asked(shmbus::Client& client, const Options& o) {
    if (o.create.empty()) {
        return kExitOk;
    }
    shmbus::ChannelRequest request;
    request.name = o.channel;
    request.kind =
        o.create == "queue" ? shmbus::ChannelKind::queue : shmbus::ChannelKind::broadcast;
    request.slot_size = std::max<std::uint64_t>(o.size, 16);
    request.slot_count = o.slot_count;
    request.overflow = shmbus::Overflow::block;
    if (auto made = client.create_channel(request);
        !made && made.code() != shmbus::Errc::already_exists) {
        return error("create '" + o.channel + "'", made.error());
    }
    return kExitOk;
}

/// --subscribers N: waits until the channel has N subscribers, so that a broadcast
/// subscriber started after the publisher still sees the first message.
int wait_for_subscribers(shmbus::Client& client, const Options& o) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(o.timeout_s);
    while (o.subscribers > 0) {
        auto info = client.channel_info(o.channel);
        if (!info) {
            return error("channel_info '" + o.channel + "'", info.error());
        }
        if (info->summary.stats.subscribers >= o.subscribers) {
            return kExitOk;
        }
        if (Clock::now() > deadline) {
            std::printf("error=\"'%s' has %u of %u subscribers after the timeout\"\n",
                        o.channel.c_str(), info->summary.stats.subscribers, o.subscribers);
            return kExitError;
        }
        std::this_thread::sleep_for(10ms);
    }
    return kExitOk;
}

int run_pub(const Options& o) {
    auto client = connect(o, "shmbus-stream pub");
    if (!client) {
        return error("connect", client.error());
    }
    if (const int rc = create_if_asked(*client, o); rc != kExitOk) {
        return rc;
    }
    auto pub = client->open_publisher(o.channel);
    if (!pub) {
        return error("open_publisher '" + o.channel + "'", pub.error());
    }
    touch(o.ready_file);
    if (const int rc = wait_for_subscribers(*client, o); rc != kExitOk) {
        return rc;
    }
    std::vector<std::byte> message(std::max<std::uint64_t>(o.size, 16));
    const auto timeout = std::chrono::nanoseconds(static_cast<std::int64_t>(o.timeout_s * 1e9));
    const auto start = Clock::now();
    for (std::uint64_t seq = 0; seq < o.count; ++seq) {
        const std::uint64_t check = shmbus::test::mix64(seq);
        std::memcpy(message.data(), &seq, 8);
        std::memcpy(message.data() + 8, &check, 8);
        for (std::size_t i = 16; i < message.size(); ++i) {
            message[i] = filler(seq, i);
        }
        if (auto sent = pub->send(message, timeout); !sent) {
            std::printf("sent=%llu ", static_cast<unsigned long long>(seq));
            return error("send #" + std::to_string(seq), sent.error());
        }
        // Pace to the rate, a thousand messages at a time: a rate limiter, not a wait.
        if (o.rate > 0 && seq % 1000 == 999) {
            const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>((seq + 1) / o.rate));
            std::this_thread::sleep_until(due);
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("sent=%llu seconds=%.2f rate=%.0f\n", static_cast<unsigned long long>(o.count),
                seconds, static_cast<double>(o.count) / seconds);
    return kExitOk;
}

int run_sub(const Options& o) {
    auto client = connect(o, "shmbus-stream sub");
    if (!client) {
        return error("connect", client.error());
    }
    if (const int rc = create_if_asked(*client, o); rc != kExitOk) {
        return rc;
    }
    auto sub = client->open_subscriber(o.channel);
    if (!sub) {
        return error("open_subscriber '" + o.channel + "'", sub.error());
    }
    touch(o.ready_file);
    std::vector<std::byte> buffer(static_cast<std::size_t>(sub->info().slot_size));
    std::uint64_t received = 0, expected = 0, lost = 0, duplicated = 0, corrupt = 0;
    Clock::duration longest_gap{};
    Clock::time_point first{}, last = Clock::now(); // `last`: the start, until a message came
    const auto give_up_after = std::chrono::duration<double>(o.timeout_s);
    while (received + lost < o.count) {
        auto got = sub->receive_copy(buffer, 100ms);
        const auto now = Clock::now();
        if (!got) {
            if (got.code() != shmbus::Errc::timed_out) {
                return error("receive", got.error());
            }
            if (now - last > give_up_after) {
                break;
            }
            continue;
        }
        if (received == 0) {
            first = now;
        } else {
            longest_gap = std::max(longest_gap, now - last);
        }
        last = now;
        ++received;
        std::uint64_t seq = 0, check = 0;
        std::memcpy(&seq, buffer.data(), 8);
        std::memcpy(&check, buffer.data() + 8, 8);
        lost += got->lost_before;
        bool exact =
            got->size == std::max<std::uint64_t>(o.size, 16) && check == shmbus::test::mix64(seq);
        for (std::size_t i = 16; exact && i < got->size; ++i) {
            exact = buffer[i] == filler(seq, i);
        }
        if (!exact) {
            ++corrupt;
        } else if (seq < expected) {
            ++duplicated;
        } else {
            lost += seq - expected;
            expected = seq + 1;
        }
    }
    const double seconds = received > 1 ? std::chrono::duration<double>(last - first).count() : 0;
    const bool ok = received == o.count && lost == 0 && duplicated == 0 && corrupt == 0;
    std::printf("received=%llu expected=%llu lost=%llu duplicated=%llu corrupt=%llu "
                "seconds=%.2f rate=%.0f longest_gap_ms=%.1f%s\n",
                static_cast<unsigned long long>(received), static_cast<unsigned long long>(o.count),
                static_cast<unsigned long long>(lost), static_cast<unsigned long long>(duplicated),
                static_cast<unsigned long long>(corrupt), seconds,
                seconds > 0 ? static_cast<double>(received) / seconds : 0.0,
                std::chrono::duration<double, std::milli>(longest_gap).count(),
                received + lost < o.count ? " error=\"no message for the timeout\"" : "");
    return ok ? kExitOk : kExitCheckFailed;
}

/// The child of one churn cycle: connect, open, tell the parent, wait to be killed.
[[noreturn]] void churn_child(const Options& o, int ready_fd) {
    auto client = connect(o, "shmbus-stream churn");
    if (!client) {
        _exit(kExitError);
    }
    auto sub = client->open_subscriber(o.channel);
    if (!sub) {
        _exit(kExitError);
    }
    const char byte = 1;
    (void)!write(ready_fd, &byte, 1);
    pause();
    _exit(kExitOk);
}

int run_churn(const Options& o) {
    const auto start = Clock::now();
    std::uint64_t failed = 0;
    for (std::uint64_t cycle = 0; cycle < o.cycles; ++cycle) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) {
            return error("pipe", shmbus::make_error(shmbus::Errc::system_error, "", errno));
        }
        const pid_t child = fork();
        if (child == 0) {
            close(fds[0]);
            churn_child(o, fds[1]);
        }
        close(fds[1]);
        char byte = 0;
        const bool opened = child > 0 && read(fds[0], &byte, 1) == 1;
        close(fds[0]);
        if (child > 0) {
            kill(child, SIGKILL);
            waitpid(child, nullptr, 0);
        }
        if (!opened) {
            ++failed;
        }
        if (o.per_minute > 0) {
            std::this_thread::sleep_until(
                start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>((cycle + 1) * 60.0 / o.per_minute)));
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("cycles=%llu failed=%llu seconds=%.1f per_minute=%.0f\n",
                static_cast<unsigned long long>(o.cycles), static_cast<unsigned long long>(failed),
                seconds, static_cast<double>(o.cycles) * 60.0 / seconds);
    return failed == 0 ? kExitOk : kExitCheckFailed;
}

} // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Options o;
    CLI::App app{"shmbus-stream: sequence-numbered traffic through shmbusd, checked end to end"};
    app.require_subcommand(1);
    app.add_option("--socket", o.socket, "control socket (default: the library's)");
    app.add_option("--timeout", o.timeout_s, "seconds to wait for the daemon, room or a message")
        ->check(CLI::PositiveNumber);
    auto* pub = app.add_subcommand("pub", "publish sequence-numbered messages");
    auto* sub = app.add_subcommand("sub", "receive and check them");
    auto* churn = app.add_subcommand("churn", "connect, open and SIGKILL a child, again and again");
    for (auto* cmd : {pub, sub, churn}) {
        cmd->add_option("channel", o.channel, "channel name")->required();
    }
    for (auto* cmd : {pub, sub}) {
        cmd->add_option("--count", o.count, "messages")->check(CLI::PositiveNumber);
        cmd->add_option("--ready", o.ready_file, "file to create once the endpoint is open");
        cmd->add_option("--create", o.create, "create the channel first (a dynamic channel)")
            ->check(CLI::IsMember({"broadcast", "queue"}));
        cmd->add_option("--size", o.size, "bytes per message (at least 16)");
        cmd->add_option("--slot-count", o.slot_count, "ring depth of a channel it creates");
    }
    pub->add_option("--subscribers", o.subscribers, "wait for this many subscribers first");
    pub->add_option("--rate", o.rate, "messages per second (0: as fast as the ring allows)");
    churn->add_option("--cycles", o.cycles, "cycles to run")->check(CLI::PositiveNumber);
    churn->add_option("--per-minute", o.per_minute, "at most this many cycles a minute");
    CLI11_PARSE(app, argc, argv);
    if (pub->parsed()) {
        return run_pub(o);
    }
    if (sub->parsed()) {
        return run_sub(o);
    }
    return run_churn(o);
}
