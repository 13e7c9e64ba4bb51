// Restarting shmbusd without systemd: what the state file lets a new daemon take back, that it
// never keeps a new client waiting, and that daemons on different sockets never share it.
//
// The daemon is the built binary (tests/support/daemon_process.hpp), restarted on the same
// socket and state directory as "the same" daemon in a new process. Clients are shmbus::Client
// objects in this process, whose library reconnects and offers its endpoints back on its own,
// and `shmbusctl tail` as a separate consumer process that the test stops and resumes.
//
// Synchronisation is on events: READY=1, a line in the daemon's log, a reply, a process exit.
// The daemons' grace period (2 s) is not waited out anywhere: each step waits for the event
// it needs, which comes within a reconnect backoff step.
#include "daemon_process.hpp"
#include "process.hpp"
#include "skip.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <sched.h>
#include <sys/mount.h>

#include <algorithm>
#include <csignal>

#ifndef SHMBUSCTL_PATH
#error "SHMBUSCTL_PATH must name the shmbusctl binary under test"
#endif

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = standard_channels_yaml();

Client connect_to(const std::filesystem::path& socket, const std::string& name) {
    ClientOptions o;
    o.socket_path = socket.native();
    o.client_name = name;
    o.request_timeout = 30s;
    auto c = Client::connect(o);
    INFO("connecting to " << socket.native() << ": " << (c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

std::vector<std::string> channel_names(Client& c) {
    auto list = c.list_channels();
    INFO((list ? std::string{} : list.error().message()));
    REQUIRE(list);
    std::vector<std::string> names;
    for (const auto& s : *list) {
        names.push_back(s.info.name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

/// The same daemon as `first` (socket, state directory) in a new process, logging to a file.
std::unique_ptr<DaemonProcess> successor_of(const DaemonProcess& first) {
    auto next = std::make_unique<DaemonProcess>(kChannels);
    next->with_state_dir(first.state_dir())
        .with_args({"--socket", first.socket_path().native()})
        .without_own_socket()
        .with_stderr_file();
    return next;
}

/// Waits until `channel` has `subscribers` attached, as the daemon's table says.
bool wait_for_subscribers(DaemonProcess& d, Client& probe, const std::string& channel,
                          std::uint32_t subscribers) {
    const auto deadline = generous_deadline();
    do {
        auto info = probe.channel_info(channel);
        if (info && info->summary.stats.subscribers == subscribers) {
            return true;
        }
        // Wait for the next status change rather than spinning on requests.
        (void)d.wait_for_notification("STATUS=", deadline_in(200ms));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
}

/// `shmbusctl tail` as a process of its own, its stdout kept in a pipe until it exits.
struct Tail {
    Child child;
    UniqueFd out;

    Tail(const std::filesystem::path& socket, const std::string& channel, std::uint64_t count) {
        Pipe p = Pipe::make();
        const int write_end = p.write_end.get();
        child = Child::spawn([&] {
            ::dup2(write_end, STDOUT_FILENO);
            std::vector<std::string> args{SHMBUSCTL_PATH, "--socket", socket.native(),      "tail",
                                          channel,        "--count",  std::to_string(count)};
            std::vector<char*> argv;
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            return 127;
        });
        p.write_end.reset();
        out = std::move(p.read_end);
    }

    /// Waits for the exit and reads what it printed.
    std::pair<std::optional<ExitStatus>, std::string> finish() {
        std::string text;
        const Deadline deadline;
        char buf[4096];
        for (;;) {
            pollfd p{out.get(), POLLIN, 0};
            if (::poll(&p, 1, deadline.poll_ms()) <= 0) {
                break;
            }
            const ssize_t n = ::read(out.get(), buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            text.append(buf, static_cast<std::size_t>(n));
        }
        return {child.wait(deadline), text};
    }
};

bool can_make_mount_namespace() {
    Child c = Child::spawn([] { return ::unshare(CLONE_NEWNS) == 0 ? 0 : 1; });
    const auto st = c.wait();
    return st && st->exited_ok();
}

} // namespace

TEST_CASE("after a graceful stop with no endpoint held, the next start lists and opens every "
          "configured channel at once, start after start") {
    DaemonProcess d{kChannels};
    d.with_stderr_file();
    const auto state_file = d.state_dir() / "shmbusd.state";
    for (int round = 0; round < 3; ++round) {
        INFO("start " << round + 1);
        REQUIRE(d.start());
        {
            Client c = connect_to(d.socket_path(), "lister");
            CHECK(channel_names(c) == std::vector<std::string>{"jobs", "telemetry"});
            {
                auto sub = c.open_subscriber("jobs");
                INFO((sub ? std::string{} : sub.error().message()));
                REQUIRE(sub);
                auto pub = c.open_publisher("telemetry");
                REQUIRE(pub);
            } // closed: the daemon has handled the closes once the next reply arrives
            REQUIRE(c.status());
            const auto stopped = d.stop();
            REQUIRE(stopped);
            CHECK(stopped->code == 0);
        }
        // Nothing a client could offer back: nothing to take back.
        CHECK_FALSE(std::filesystem::exists(state_file));
    }
    CHECK_THAT(d.stderr_text(), !Catch::Contains("grace period") && !Catch::Contains("stand-in"));
}

TEST_CASE("a graceful stop while a client holds an endpoint keeps that channel for the next "
          "daemon, which gives it back to the client") {
    DaemonProcess first{kChannels};
    REQUIRE(first.start());
    Client keeper = connect_to(first.socket_path(), "keeper");
    auto pub = keeper.open_publisher("telemetry");
    REQUIRE(pub);
    REQUIRE(first.stop());
    auto saved = first.state_dir() / "shmbusd.state";
    REQUIRE(std::filesystem::exists(saved));

    auto second = successor_of(first);
    REQUIRE(second->start());
    REQUIRE(second->wait_for_stderr("gave channel 'telemetry' back", generous_deadline()));
    // The channel nobody held was not waited for: it was there from the start.
    CHECK_THAT(second->stderr_text(), !Catch::Contains("stand-in for channel 'jobs'"));
    Client reader = connect_to(first.socket_path(), "reader");
    auto sub = reader.open_subscriber("telemetry");
    REQUIRE(sub);
    const std::array<std::byte, 8> msg{std::byte{42}};
    REQUIRE(pub->send(msg, 30s));
    std::array<std::byte, 256> buf{};
    auto got = sub->receive_copy(buf, 30s);
    REQUIRE(got);
    CHECK(buf[0] == std::byte{42});
}

TEST_CASE("after a restart whose previous clients are gone, a new client opens the channels at "
          "once") {
    DaemonProcess first{kChannels};
    REQUIRE(first.start());
    {
        Client gone = connect_to(first.socket_path(), "gone");
        auto sub = gone.open_subscriber("jobs");
        REQUIRE(sub);
        auto pub = gone.open_publisher("telemetry");
        REQUIRE(pub);
        REQUIRE(first.kill_hard());
    } // the clients of the previous run are gone, and the segments with them

    auto second = successor_of(first);
    REQUIRE(second->start());
    Client fresh = connect_to(first.socket_path(), "fresh");
    // Listed and opened at once, during the grace period: no would_block, no waiting.
    CHECK(channel_names(fresh) == std::vector<std::string>{"jobs", "telemetry"});
    auto pub = fresh.open_publisher("jobs");
    INFO((pub ? std::string{} : pub.error().message()));
    REQUIRE(pub);
    auto sub = fresh.open_subscriber("jobs");
    REQUIRE(sub);
    const std::array<std::byte, 8> msg{std::byte{7}};
    REQUIRE(pub->send(msg, 30s));
    std::array<std::byte, 64> buf{};
    auto got = sub->receive_copy(buf, 30s);
    REQUIRE(got);
    CHECK(buf[0] == std::byte{7});
    CHECK_THAT(second->stderr_text(), Catch::Contains("created a stand-in for channel 'jobs'"));
}

TEST_CASE("two kill -9 of shmbusd inside the grace period while a consumer is stopped: once it "
          "resumes it receives every message published afterwards") {
    DaemonProcess first{kChannels};
    first.with_stderr_file();
    REQUIRE(first.start());
    constexpr std::uint64_t kMessages = 5;
    Tail consumer{first.socket_path(), "jobs", kMessages};
    {
        Client probe = connect_to(first.socket_path(), "probe");
        REQUIRE(wait_for_subscribers(first, probe, "jobs", 1));
    }
    // Another channel whose client comes back at once: each new daemon rewrites its state
    // file when it is given back.
    Client keeper = connect_to(first.socket_path(), "keeper");
    auto telemetry = keeper.open_publisher("telemetry");
    REQUIRE(telemetry);

    REQUIRE(::kill(consumer.child.pid(), SIGSTOP) == 0);
    REQUIRE(first.kill_hard());
    auto second = successor_of(first);
    REQUIRE(second->start());
    REQUIRE(second->wait_for_stderr("gave channel 'telemetry' back", generous_deadline()));
    REQUIRE(second->kill_hard()); // inside its grace period: 'jobs' was never offered back
    auto third = successor_of(first);
    REQUIRE(third->start());
    REQUIRE(third->wait_for_stderr("gave channel 'telemetry' back", generous_deadline()));

    REQUIRE(::kill(consumer.child.pid(), SIGCONT) == 0);
    INFO(third->stderr_text());
    REQUIRE(third->wait_for_stderr("gave channel 'jobs' back", generous_deadline()));
    auto jobs = keeper.open_publisher("jobs");
    REQUIRE(jobs);
    for (std::uint64_t i = 0; i < kMessages; ++i) {
        const std::string text = "job-" + std::to_string(i);
        REQUIRE(jobs->send(std::as_bytes(std::span{text.data(), text.size()}), 30s));
    }
    auto [status, printed] = consumer.finish();
    INFO("shmbusctl tail printed:\n" << printed);
    REQUIRE(status);
    CHECK(status->exited_ok());
    for (std::uint64_t i = 0; i < kMessages; ++i) {
        CHECK_THAT(printed, Catch::Contains("job-" + std::to_string(i)));
    }
}

TEST_CASE("daemons on different sockets keep different state files, also with XDG_RUNTIME_DIR "
          "set and as root") {
    // Both daemons see the same runtime directory: XDG_RUNTIME_DIR for a user; for root, a
    // directory of this test mounted over /run in their own mount namespace, so that the
    // machine's /run is never touched.
    TempDir runtime;
    const bool root = ::geteuid() == 0;
    if (root && !can_make_mount_namespace()) {
        SHMBUS_SKIP("cannot make a mount namespace as root: the system runtime directory "
                    "cannot be stood in for");
    }
    const std::string run_dir = runtime.path().native();
    auto configure = [&](DaemonProcess& d) {
        d.without_state_dir().with_env({"XDG_RUNTIME_DIR=" + run_dir}).with_stderr_file();
        if (root) {
            d.with_child_setup([run_dir] {
                if (::unshare(CLONE_NEWNS) != 0 ||
                    ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                    ::mount(run_dir.c_str(), "/run", nullptr, MS_BIND, nullptr) != 0) {
                    std::perror("standing in for /run");
                    ::_exit(126);
                }
            });
        }
    };
    DaemonProcess a{kChannels};
    configure(a);
    REQUIRE(a.start());
    Client keeper = connect_to(a.socket_path(), "keeper");
    auto sub = keeper.open_subscriber("jobs");
    REQUIRE(sub);
    auto a_status = keeper.status();
    REQUIRE(a_status);
    REQUIRE(a.kill_hard());

    // Another daemon on another socket starts meanwhile, and stops again.
    DaemonProcess b{kChannels};
    configure(b);
    REQUIRE(b.start());
    {
        Client other = connect_to(b.socket_path(), "other");
        auto b_status = other.status();
        REQUIRE(b_status);
        CHECK(b_status->state_directory != a_status->state_directory);
    }
    CHECK_THAT(b.stderr_text(), !Catch::Contains("after the restart"));
    REQUIRE(b.stop());

    // The first one comes back on its socket and finds its own state: the consumer's channel
    // is given back to it.
    DaemonProcess again{kChannels};
    configure(again);
    again.with_args({"--socket", a.socket_path().native()}).without_own_socket();
    REQUIRE(again.start());
    INFO(again.stderr_text());
    REQUIRE(again.wait_for_stderr("gave channel 'jobs' back", generous_deadline()));
}

TEST_CASE("a second daemon that would share a state file refuses to start, naming the first") {
    DaemonProcess first{kChannels};
    REQUIRE(first.start());
    // Another socket of the same name in another directory, told to keep its state where the
    // first one keeps its own.
    TempDir elsewhere;
    DaemonProcess second{kChannels};
    second.with_state_dir(first.state_dir())
        .with_args({"--socket", (elsewhere.path() / "shmbusd.sock").native()})
        .without_own_socket()
        .with_stderr_file();
    second.launch();
    const auto exited = second.signal_and_wait(0); // no signal: waits for it to leave
    REQUIRE(exited);
    CHECK(exited->code == 1);
    CHECK_THAT(second.stderr_text(),
               Catch::Contains("another shmbusd (pid " + std::to_string(first.pid())) &&
                   Catch::Contains(first.socket_path().native()));
    CHECK_FALSE(std::filesystem::exists(elsewhere.path() / "shmbusd.sock"));
}
