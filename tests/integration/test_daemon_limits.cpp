// shmbusd at its edges: every configured limit hit by real clients, reload refused to a
// non-admin uid, socket activation through systemd's own systemd-socket-activate, entries in
// journald's native protocol, and a daemon that stays asleep while its clients work.
//
// Each test starts the built daemon on its own temporary directory, socket and configuration
// (tests/support/daemon_process.hpp) and speaks to it through shmbus::Client as applications
// do; where a uid matters, a forked child drops to it and reports through its exit code.
//
// Synchronisation is always on an event: READY=1 on the notify socket, a reply, a datagram on
// the journal socket, a file appearing (inotify), a process exit. Where the daemon's state is
// visible only by asking (a count of clients, a /proc file), the test asks again until the
// answer comes or a generous deadline passes. Nothing is timed.
//
// What needs root (another uid, a mount namespace standing in for journald's socket) is
// skipped (ctest: not run, with the reason) when the test does not run as root, as is socket
// activation when systemd-socket-activate is not installed.
#include "daemon_process.hpp"
#include "other_user.hpp"
#include "process.hpp"
#include "skip.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = standard_channels_yaml();

/// One small configured channel, for tests about room for more.
const std::string kOneChannel =
    "channels:\n  - name: configured\n    kind: queue\n    slot_size: 64\n    slot_count: 16\n";

/// The uids a child drops to: not root, not the daemon's user (root), not listed anywhere
/// unless a test's configuration lists them. Numeric ids are not looked up.
constexpr uid_t kOutsider = 65534;
constexpr uid_t kListedAdmin = 65533;

ClientOptions options_for(const std::filesystem::path& socket, const std::string& name) {
    ClientOptions o;
    o.socket_path = socket.native();
    o.client_name = name;
    o.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(kDaemonDeadline);
    return o;
}

Client connect_to(const DaemonProcess& d, const std::string& name) {
    auto c = Client::connect(options_for(d.socket_path(), name));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

/// Asks `question` again until it returns true or the deadline passes: for daemon state that
/// is visible only by asking (each call is a round trip to the daemon or a read of /proc).
template <typename F>
bool eventually(F question, std::chrono::steady_clock::time_point deadline = generous_deadline()) {
    while (!question()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
    }
    return true;
}

std::uint32_t clients_of(Client& c) {
    auto s = c.status();
    return s ? s->clients : 0;
}

bool has_channel(Client& c, const std::string& name) {
    auto list = c.list_channels();
    return list && std::any_of(list->begin(), list->end(),
                               [&](const ChannelSummary& s) { return s.info.name == name; });
}

/// `r` is a refusal with limit_reached and exactly `detail`.
template <typename T>
void check_limit_reached(const Result<T>& r, const std::string& detail) {
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::limit_reached);
    CHECK(r.error().detail == detail);
}

ChannelSpec small_queue(const std::string& name) {
    ChannelSpec s;
    s.name = name;
    s.kind = ChannelKind::queue;
    s.slot_size = 64;
    s.slot_count = 16;
    return s;
}

/// In a forked child: drops to `uid` (and its own group only), runs `body`, exits with its
/// result. Only for tests that run as root.
Child as_user(uid_t uid, std::function<int()> body) {
    return Child::spawn([uid, body = std::move(body)] {
        if (!drop_to_uid(uid)) {
            return child_failure("cannot drop to uid " + std::to_string(uid));
        }
        return body();
    });
}

/// In a child: says on stderr why it fails and returns `code`, the exit code that names the step.
int child_exit(int code, const std::string& why) {
    (void)child_failure(why);
    return code;
}

/// The absolute path of `program` on $PATH, or nothing.
std::optional<std::filesystem::path> find_program(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs{path != nullptr ? path : "/usr/bin:/bin"};
    for (std::string dir; std::getline(dirs, dir, ':');) {
        const std::filesystem::path candidate = std::filesystem::path{dir} / program;
        if (!dir.empty() && dir.front() == '/' && ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return std::nullopt;
}

std::filesystem::path executable_of(pid_t pid) {
    std::error_code ec;
    return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
}

// ---- journald's native protocol ----------------------------------------------------------

/// One entry as journald reads it from its native socket: "KEY=value\n" per field, or, for
/// a value that contains a newline, "KEY\n", its length (64-bit little-endian), the bytes
/// and "\n". Nothing if the datagram is not well formed.
std::optional<std::multimap<std::string, std::string>> parse_journal_entry(std::string_view d) {
    std::multimap<std::string, std::string> fields;
    while (!d.empty()) {
        const auto nl = d.find('\n');
        if (nl == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view line = d.substr(0, nl);
        const auto eq = line.find('=');
        if (eq != std::string_view::npos) {
            fields.emplace(std::string{line.substr(0, eq)}, std::string{line.substr(eq + 1)});
            d.remove_prefix(nl + 1);
            continue;
        }
        d.remove_prefix(nl + 1);
        std::uint64_t size = 0;
        if (d.size() < 8) {
            return std::nullopt;
        }
        for (int i = 7; i >= 0; --i) {
            size = (size << 8) | static_cast<unsigned char>(d[static_cast<std::size_t>(i)]);
        }
        d.remove_prefix(8);
        if (d.size() < size + 1 || d[size] != '\n') {
            return std::nullopt;
        }
        fields.emplace(std::string{line}, std::string{d.substr(0, size)});
        d.remove_prefix(size + 1);
    }
    return fields;
}

std::string field(const std::multimap<std::string, std::string>& entry, const std::string& key) {
    const auto it = entry.find(key);
    return it == entry.end() ? std::string{"(absent)"} : it->second;
}

/// True if this process may make a mount namespace (root with CAP_SYS_ADMIN, not in a
/// container that forbids it).
bool can_unshare_mounts() {
    Child probe = Child::spawn([] { return ::unshare(CLONE_NEWNS) == 0 ? 0 : 1; });
    auto st = probe.wait();
    return st && st->exited_ok();
}

/// Child setup that makes `journal_dir` appear as /run/systemd/journal to the daemon alone:
/// sd_journal_send() always sends to /run/systemd/journal/socket, and libsystemd has no
/// variable to point it elsewhere. A private mount namespace with a tmpfs on /run changes
/// nothing outside the daemon's process.
std::function<void()> journal_at(const std::filesystem::path& journal_dir) {
    return [dir = journal_dir.native()] {
        auto fail = [](const char* what) {
            std::perror(what);
            _exit(125);
        };
        if (::unshare(CLONE_NEWNS) != 0) {
            fail("unshare(CLONE_NEWNS)");
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            fail("making / private");
        }
        // Held open across the tmpfs mount, in case the directory is below /run itself.
        const int keep = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (keep < 0) {
            fail("opening the journal directory");
        }
        if (::mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") != 0) {
            fail("mounting a tmpfs on /run");
        }
        if (::mkdir("/run/systemd", 0755) != 0 || ::mkdir("/run/systemd/journal", 0755) != 0) {
            fail("mkdir /run/systemd/journal");
        }
        const std::string source = "/proc/self/fd/" + std::to_string(keep);
        if (::mount(source.c_str(), "/run/systemd/journal", nullptr, MS_BIND, nullptr) != 0) {
            fail("binding the journal directory");
        }
        ::close(keep);
    };
}

/// A daemon whose stderr is the "journal stream" (JOURNAL_STREAM names it) and whose
/// /run/systemd/journal/socket is `journal`, a socket this test reads.
struct JournaledDaemon {
    DaemonProcess daemon;
    std::optional<DatagramSink> journal;

    explicit JournaledDaemon(const std::string& config) : daemon{config} {
        daemon.with_stderr_file();
        struct stat st {};
        REQUIRE(::stat(daemon.stderr_path().c_str(), &st) == 0);
        const auto dir = daemon.dir() / "journal";
        std::filesystem::create_directory(dir);
        journal.emplace(dir / "socket");
        daemon
            .with_env(
                {"JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)})
            .with_child_setup(journal_at(dir));
    }

    /// The next entry whose datagram contains `needle`, parsed.
    std::multimap<std::string, std::string> entry_with(const std::string& needle) {
        auto raw = journal->wait_for(needle, generous_deadline());
        INFO("awaited a journal entry containing '" << needle << "'");
        REQUIRE(raw);
        auto entry = parse_journal_entry(*raw);
        INFO("datagram: " << *raw);
        REQUIRE(entry);
        return *entry;
    }
};

// ---- /proc: is the daemon asleep, and did it run? ----------------------------------------

/// What /proc says a process has done: context switches of all its threads, CPU ticks.
struct Activity {
    std::uint64_t voluntary_switches{0};
    std::uint64_t involuntary_switches{0};
    std::uint64_t cpu_ticks{0}; // utime + stime of the whole process
    bool operator==(const Activity&) const = default;
};

std::uint64_t status_value(const std::filesystem::path& status, const std::string& key) {
    std::ifstream in(status);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(key + ":", 0) == 0) {
            return std::stoull(line.substr(key.size() + 1));
        }
    }
    return 0;
}

Activity activity_of(pid_t pid) {
    const std::filesystem::path proc = "/proc/" + std::to_string(pid);
    Activity a;
    for (const auto& task : std::filesystem::directory_iterator(proc / "task")) {
        a.voluntary_switches += status_value(task.path() / "status", "voluntary_ctxt_switches");
        a.involuntary_switches +=
            status_value(task.path() / "status", "nonvoluntary_ctxt_switches");
    }
    // /proc/PID/stat: "pid (comm) state ..." — comm may hold spaces; fields after ')' are
    // state(3) ... utime(14) stime(15).
    std::ifstream in(proc / "stat");
    std::string stat{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
    std::istringstream rest{stat.substr(stat.rfind(')') + 2)};
    std::vector<std::string> fields{std::istream_iterator<std::string>{rest},
                                    std::istream_iterator<std::string>{}};
    a.cpu_ticks = std::stoull(fields.at(11)) + std::stoull(fields.at(12));
    return a;
}

/// The single thread of `pid` is blocked in epoll_wait()/epoll_pwait() with no timeout:
/// nothing but an event on one of its descriptors (or a signal) can wake it.
bool asleep_without_timeout(pid_t pid) {
    const std::filesystem::path proc = "/proc/" + std::to_string(pid);
    std::size_t threads = 0;
    for ([[maybe_unused]] const auto& t : std::filesystem::directory_iterator(proc / "task")) {
        ++threads;
    }
    std::ifstream in(proc / "syscall");
    long number = -1;
    std::string args[4];
    in >> number >> args[0] >> args[1] >> args[2] >> args[3];
    if (threads != 1 || !in) {
        return false; // "running", or a thread we know nothing about
    }
    const bool epoll = false
#ifdef SYS_epoll_wait
                       || number == SYS_epoll_wait
#endif
                       || number == SYS_epoll_pwait;
    // The timeout is an int: -1 in the low 32 bits of the register, whatever is above.
    const auto timeout = static_cast<std::uint32_t>(std::stoull(args[3], nullptr, 16));
    return epoll && timeout == 0xffffffffU;
}

/// Stops our child `pid` (SIGSTOP) and returns once it is stopped.
void stop(pid_t pid) {
    ::kill(pid, SIGSTOP);
    int raw = 0;
    REQUIRE(::waitpid(pid, &raw, WUNTRACED) == pid);
    REQUIRE(WIFSTOPPED(raw));
}

/// The (main thread of) process `pid` is blocked in poll() or ppoll().
bool waits_in_poll(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
    long number = -1;
    in >> number;
    return in && (false
#ifdef SYS_poll
                  || number == SYS_poll
#endif
                  || number == SYS_ppoll);
}

} // namespace

// ---- limits.max_clients --------------------------------------------------------------------

TEST_CASE("a client beyond limits.max_clients is refused, and admitted once another has left") {
    DaemonProcess d{"limits:\n  max_clients: 2\n" + kChannels};
    REQUIRE(d.start());
    Client first = connect_to(d, "first");
    std::optional<Client> second{connect_to(d, "second")};

    // What the refused client is told is checked below, on the socket and through Client.
    CHECK_FALSE(Client::connect(options_for(d.socket_path(), "third")));
    // The refusal cost the two admitted clients nothing.
    CHECK(first.ping());
    CHECK(second->ping());

    second.reset();
    REQUIRE(eventually([&] { return clients_of(first) == 1; }));
    auto again = Client::connect(options_for(d.socket_path(), "third"));
    INFO((again ? std::string{} : again.error().message()));
    CHECK(again);
}

TEST_CASE("a connection beyond limits.max_clients is told limit_reached before it says "
          "anything, and the error stays readable after the daemon closed it") {
    DaemonProcess d{"limits:\n  max_clients: 1\n"};
    REQUIRE(d.start());
    UniqueFd admitted = connect_and_greet(d.socket_path(), "admitted");
    REQUIRE(admitted);

    UniqueFd refused = connect_control(d.socket_path());
    REQUIRE(refused);
    // Wait for the daemon to hang up: by then its error datagram is queued before the end.
    pollfd p{refused.get(), POLLRDHUP, 0};
    REQUIRE(::poll(&p, 1, ms_left(generous_deadline())) == 1);
    REQUIRE((p.revents & (POLLRDHUP | POLLHUP)) != 0);

    // A client that sends only now (its hello) finds the connection closed (EPIPE)...
    proto::Hello hello;
    hello.client_name = "late";
    CHECK_FALSE(proto::send_message(refused.get(), proto::Message{1, hello}));
    // ...but the kernel still hands it the daemon's answer, which names the limit.
    auto got = proto::receive_message(refused.get(), generous_deadline());
    REQUIRE(got);
    const auto* error = std::get_if<proto::ErrorReply>(&got->message.body);
    REQUIRE(error != nullptr);
    CHECK(got->message.request_id == 0);
    CHECK(error->code == Errc::limit_reached);
    CHECK(error->message == "the daemon serves 1 clients, limits.max_clients is 1");
    char b;
    CHECK(::recv(refused.get(), &b, 1, MSG_DONTWAIT) == 0); // then the end of the connection
}

TEST_CASE("a refused client whose hello was already queued reads a reset first, then the "
          "refusal") {
    DaemonProcess d{"limits:\n  max_clients: 1\n"};
    REQUIRE(d.start());
    UniqueFd admitted = connect_and_greet(d.socket_path(), "admitted");
    REQUIRE(admitted);

    // Stopped, the daemon cannot accept before the hello is in the new connection's queue,
    // as it often is for a real client, which sends hello right after connect().
    stop(d.pid());
    UniqueFd refused = connect_control(d.socket_path());
    REQUIRE(refused);
    proto::Hello hello;
    hello.client_name = "eager";
    REQUIRE(proto::send_message(refused.get(), proto::Message{1, hello}));
    d.send_signal(SIGCONT);

    pollfd p{refused.get(), POLLRDHUP, 0};
    REQUIRE(::poll(&p, 1, ms_left(generous_deadline())) == 1);
    // The daemon closed a connection with an unread message: the kernel reports
    // ECONNRESET once...
    auto reset = proto::receive_message(refused.get(), generous_deadline());
    REQUIRE_FALSE(reset);
    CHECK(reset.code() == Errc::closed);
    CHECK(reset.error().sys_errno == ECONNRESET);
    // ...and then delivers what the daemon had sent before closing.
    auto got = proto::receive_message(refused.get(), generous_deadline());
    REQUIRE(got);
    const auto* error = std::get_if<proto::ErrorReply>(&got->message.body);
    REQUIRE(error != nullptr);
    CHECK(error->code == Errc::limit_reached);
    CHECK(error->message == "the daemon serves 1 clients, limits.max_clients is 1");
}

// Client::connect() sends hello; the daemon closes the refused connection with the hello
// unread (as the test above shows), so the receive fails with ECONNRESET or the send with
// EPIPE, while the daemon's limit_reached is still queued: the handshake reads it on. Whether
// a client meets this is a race with the daemon's close; the test takes the losing side
// every time: the client is held stopped, its hello queued, until the daemon has refused and
// closed.
TEST_CASE("Client::connect beyond limits.max_clients reports limit_reached naming the limit") {
    DaemonProcess d{"limits:\n  max_clients: 1\n"};
    d.with_stderr_file();
    REQUIRE(d.start());
    Client first = connect_to(d, "first");

    stop(d.pid());
    // Exit codes: 0 limit_reached naming the limit, 2 admitted, 3 another error.
    Child second = Child::spawn([&] {
        auto c = Client::connect(options_for(d.socket_path(), "second"));
        if (c) {
            return 2;
        }
        if (c.code() != Errc::limit_reached ||
            c.error().detail != "the daemon serves 1 clients, limits.max_clients is 1") {
            return child_exit(3, c.error().message());
        }
        return 0;
    });
    // Its hello is queued once it waits in poll() for the answer.
    REQUIRE(eventually([&] { return waits_in_poll(second.pid()); }));
    stop(second.pid());
    ::kill(d.pid(), SIGCONT);
    REQUIRE(d.wait_for_stderr("refused a connection", generous_deadline()));
    // The daemon refuses and closes in one callback: once it answers another request, the
    // refused connection is closed.
    REQUIRE(first.ping());
    ::kill(second.pid(), SIGCONT);
    auto st = second.wait();
    REQUIRE(st);
    CHECK(st->describe() == "exited with status 0");
}

// ---- per-client limits ---------------------------------------------------------------------

TEST_CASE("an open beyond limits.per_client.max_open_channels is limit_reached naming the "
          "limit, and closing an endpoint makes room") {
    DaemonProcess d{"limits:\n  per_client:\n    max_open_channels: 2\n" + kChannels};
    REQUIRE(d.start());
    Client client = connect_to(d, "opener");
    std::optional<Publisher> pub;
    {
        auto p = client.open_publisher("jobs");
        REQUIRE(p);
        pub.emplace(std::move(*p));
    }
    auto sub = client.open_subscriber("telemetry");
    REQUIRE(sub);

    auto third = client.open_subscriber("jobs");
    check_limit_reached(
        third, "this client has 2 endpoints open; limits.per_client.max_open_channels is 2");

    // The limit is this client's: another one opens the same channel.
    Client other = connect_to(d, "other");
    CHECK(other.open_subscriber("jobs"));

    // The Close goes out before the next request on the same connection.
    pub.reset();
    auto after_close = client.open_subscriber("jobs");
    INFO((after_close ? std::string{} : after_close.error().message()));
    CHECK(after_close);
}

TEST_CASE("a client that does not read its replies has at most "
          "limits.per_client.max_inflight_requests of them held, stalls only itself, and gets "
          "every reply in order once it reads") {
    DaemonProcess d{"limits:\n  per_client:\n    max_inflight_requests: 4\n" + kChannels};
    d.with_stderr_file();
    REQUIRE(d.start());
    UniqueFd deaf = connect_and_greet(d.socket_path(), "deaf");
    REQUIRE(deaf);
    REQUIRE(::fcntl(deaf.get(), F_SETFL, ::fcntl(deaf.get(), F_GETFL) | O_NONBLOCK) == 0);

    // Pings without reading a reply, until the daemon says it stopped reading this client.
    // A send that would block waits for room or for a new line on the daemon's stderr.
    UniqueFd watch{::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)};
    REQUIRE(watch);
    REQUIRE(::inotify_add_watch(watch.get(), d.stderr_path().c_str(), IN_MODIFY) >= 0);
    const std::string stalled = "'deaf') has 4 replies it does not read "
                                "(limits.per_client.max_inflight_requests is 4)";
    const auto deadline = generous_deadline();
    std::uint32_t sent = 0;
    while (d.stderr_text().find(stalled) == std::string::npos) {
        auto s = proto::send_message(deaf.get(), proto::Message{sent + 10, proto::Ping{sent}});
        if (s) {
            ++sent;
            continue;
        }
        REQUIRE(s.code() == Errc::would_block);
        std::array<pollfd, 2> p{pollfd{deaf.get(), POLLOUT, 0}, pollfd{watch.get(), POLLIN, 0}};
        REQUIRE(::poll(p.data(), p.size(), ms_left(deadline)) > 0);
        alignas(inotify_event) std::array<char, 4096> events{};
        while (::read(watch.get(), events.data(), events.size()) > 0) {
        }
    }
    INFO("pings sent before the daemon stopped reading: " << sent);
    CHECK(sent > 4);

    // Another client is served meanwhile.
    UniqueFd other = connect_and_greet(d.socket_path(), "other");
    REQUIRE(other);
    auto pong = request(other.get(), proto::Ping{77}, 5);
    REQUIRE(pong);
    const auto* other_pong = std::get_if<proto::Pong>(&pong->message.body);
    REQUIRE(other_pong != nullptr);
    CHECK(other_pong->token == 77);

    // Reading, the deaf client gets every reply, in order, and is read again.
    for (std::uint32_t k = 0; k < sent; ++k) {
        auto r = proto::receive_message(deaf.get(), deadline);
        REQUIRE(r);
        CHECK(r->message.request_id == k + 10);
        const auto* p = std::get_if<proto::Pong>(&r->message.body);
        REQUIRE(p != nullptr);
        CHECK(p->token == k);
    }
    CHECK(d.wait_for_stderr("'deaf') read its replies; reading its requests again", deadline));
    REQUIRE(::fcntl(deaf.get(), F_SETFL, ::fcntl(deaf.get(), F_GETFL) & ~O_NONBLOCK) == 0);
    auto last = request(deaf.get(), proto::Ping{sent}, 9);
    REQUIRE(last);
    CHECK(last->message.request_id == 9);
    CHECK(std::holds_alternative<proto::Pong>(last->message.body));
}

TEST_CASE("a dynamic channel taken back from the descriptor store admits its creator's uid "
          "again, and no other") {
    if (::geteuid() != 0) {
        SHMBUS_SKIP("needs root to run a client as another uid");
    }
    DaemonProcess d{"dynamic_channels:\n  users: [\"*\"]\n" + kChannels};
    REQUIRE(d.start());
    REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
    for (const uid_t uid : {kOutsider, kListedAdmin}) {
        if (auto why = unreachable_by(uid, {{d.socket_path(), W_OK}})) {
            SHMBUS_SKIP(*why);
        }
    }
    Client root = connect_to(d, "root");

    // The creator, another uid, stays connected until root holds the channel too, so that
    // the channel outlives it. Exit codes: 0 created, 2 no connection, 3 create refused.
    std::array<int, 2> go{};
    REQUIRE(::pipe2(go.data(), O_CLOEXEC) == 0);
    UniqueFd go_read{go[0]};
    UniqueFd go_write{go[1]};
    Child creator = as_user(kOutsider, [&] {
        go_write.reset();
        auto c = Client::connect(options_for(d.socket_path(), "creator"));
        if (!c) {
            return child_exit(2, c.error().message());
        }
        ChannelSpec spec = small_queue("theirs");
        spec.max_subscribers = 4;
        if (auto made = c->create_channel(spec); !made) {
            return child_exit(3, made.error().message());
        }
        char byte = 0;
        (void)::read(go_read.get(), &byte, 1); // end of file: the parent holds the channel
        return 0;
    });
    go_read.reset();
    REQUIRE(eventually([&] { return has_channel(root, "theirs"); }));
    auto held = root.open_subscriber("theirs");
    REQUIRE(held);
    go_write.reset();
    auto created = creator.wait();
    REQUIRE(created);
    REQUIRE(created->describe() == "exited with status 0");

    // Restart under "systemd": the stored descriptors come back, the state file stays.
    auto stored = d.stored_fds();
    std::vector<std::pair<int, std::string>> passed;
    for (const auto& [name, fd] : stored) {
        passed.emplace_back(fd.get(), name);
    }
    REQUIRE(d.kill_hard());
    d.with_passed_fds(passed);
    REQUIRE(d.start());
    REQUIRE(root.status()); // reconnects and offers its subscriber back first

    // Exit codes: 0 as expected, 2 no connection, 3 an unexpected outcome.
    auto open_as = [&](uid_t uid, bool expect_admitted) {
        return as_user(uid, [&, expect_admitted] {
            auto c = Client::connect(options_for(d.socket_path(), "after-restart"));
            if (!c) {
                return child_exit(2, c.error().message());
            }
            auto sub = c->open_subscriber("theirs");
            if (expect_admitted) {
                return sub ? 0 : child_exit(3, sub.error().message());
            }
            return !sub && sub.code() == Errc::permission_denied
                       ? 0
                       : child_exit(3, sub ? std::string{"admitted"} : sub.error().message());
        });
    };
    auto again = open_as(kOutsider, true).wait();
    REQUIRE(again);
    CHECK(again->describe() == "exited with status 0");
    auto other = open_as(kListedAdmin, false).wait();
    REQUIRE(other);
    CHECK(other->describe() == "exited with status 0");
}

TEST_CASE("a create beyond limits.per_client.max_dynamic_channels is limit_reached naming the "
          "limit, and every client has its own allowance") {
    DaemonProcess d{"limits:\n  per_client:\n    max_dynamic_channels: 1\n"};
    REQUIRE(d.start());
    Client alice = connect_to(d, "alice");
    REQUIRE(alice.create_channel(small_queue("alice-1")));
    auto refused = alice.create_channel(small_queue("alice-2"));
    check_limit_reached(
        refused, "this client has created 1 channels; limits.per_client.max_dynamic_channels is 1");
    CHECK_FALSE(has_channel(alice, "alice-2"));

    Client bob = connect_to(d, "bob");
    auto bobs = bob.create_channel(small_queue("bob-1"));
    INFO((bobs ? std::string{} : bobs.error().message()));
    CHECK(bobs);
}

// ---- daemon-wide limits --------------------------------------------------------------------

TEST_CASE("a create beyond limits.max_channels is limit_reached naming the limit, and a "
          "dynamic channel that goes makes room") {
    DaemonProcess d{"limits:\n  max_channels: 2\n" + kOneChannel};
    REQUIRE(d.start());
    Client observer = connect_to(d, "observer");
    std::optional<Client> creator{connect_to(d, "creator")};
    REQUIRE(creator->create_channel(small_queue("scratch")));

    auto refused = observer.create_channel(small_queue("one-too-many"));
    check_limit_reached(refused, "cannot create channel 'one-too-many': the daemon has 2 "
                                 "channels, limits.max_channels is 2");
    CHECK_FALSE(has_channel(observer, "one-too-many"));

    // A dynamic channel goes when its creator has gone and nobody holds it.
    creator.reset();
    REQUIRE(eventually([&] { return !has_channel(observer, "scratch"); }));
    auto now = observer.create_channel(small_queue("one-too-many"));
    INFO((now ? std::string{} : now.error().message()));
    CHECK(now);
}

TEST_CASE("a create beyond limits.max_total_segment_bytes is limit_reached naming the numbers, "
          "and a channel that fits is created") {
    DaemonProcess d{"limits:\n  max_total_segment_bytes: 64KiB\n" + kOneChannel};
    REQUIRE(d.start());
    Client client = connect_to(d, "creator");
    auto before = client.status();
    REQUIRE(before);
    REQUIRE(before->segment_bytes > 0);

    ChannelSpec big = small_queue("big");
    big.slot_size = 1024;
    big.slot_count = 64; // 64 KiB of slots alone: more than is left
    auto refused = client.create_channel(big);
    REQUIRE_FALSE(refused);
    CHECK(refused.code() == Errc::limit_reached);
    CHECK_THAT(refused.error().detail, Catch::StartsWith("cannot create channel 'big': it needs "));
    CHECK_THAT(refused.error().detail,
               Catch::EndsWith(std::to_string(before->segment_bytes) +
                               " are in use and limits.max_total_segment_bytes is 65536"));
    auto after = client.status();
    REQUIRE(after);
    CHECK(after->segment_bytes == before->segment_bytes);

    auto fits = client.create_channel(small_queue("small"));
    INFO((fits ? std::string{} : fits.error().message()));
    CHECK(fits);
}

TEST_CASE("a reload adding a channel beyond limits.max_channels creates none and says why") {
    const std::string limits = "limits:\n  max_channels: 2\n";
    DaemonProcess d{limits + kOneChannel};
    REQUIRE(d.start());
    Client client = connect_to(d, "admin");
    REQUIRE(client.create_channel(small_queue("scratch")));

    // Two configured channels are within the limit, so the file is valid; with the dynamic
    // one there is no room for the second.
    write_file(d.config_path(),
               limits + kOneChannel + "  - name: added\n    kind: queue\n    slot_size: 64\n");
    auto reloaded = client.reload();
    INFO((reloaded ? std::string{} : reloaded.error().message()));
    REQUIRE(reloaded);
    CHECK_THAT(*reloaded,
               Catch::Contains("channel 'added' not created: limit_reached: cannot create "
                               "channel 'added': the daemon has 2 channels, "
                               "limits.max_channels is 2"));
    CHECK_FALSE(has_channel(client, "added"));
    CHECK(has_channel(client, "configured"));
    CHECK(has_channel(client, "scratch"));
}

// DaemonState::apply() judges each added channel by the new configuration's limits, not the
// running ones it is about to replace.
TEST_CASE("a reload that raises limits.max_channels and adds a channel creates it under the new "
          "limit") {
    DaemonProcess d{"limits:\n  max_channels: 1\n" + kOneChannel};
    REQUIRE(d.start());
    Client client = connect_to(d, "admin");
    write_file(d.config_path(), "limits:\n  max_channels: 2\n" + kOneChannel +
                                    "  - name: added\n    kind: queue\n    slot_size: 64\n");
    auto reloaded = client.reload();
    REQUIRE(reloaded);
    INFO(*reloaded);
    CHECK_THAT(*reloaded, Catch::Contains("channel 'added' created"));
    CHECK(has_channel(client, "added"));
}

// ---- reload is for admins --------------------------------------------------------------------

TEST_CASE("reload by a uid that is not an admin is permission_denied and changes nothing, an "
          "admin's reload applies") {
    if (::geteuid() != 0) {
        SHMBUS_SKIP("needs root to run a client as another uid");
    }
    const std::string admins =
        "daemon:\n  admin:\n    users: [\"" + std::to_string(kListedAdmin) + "\"]\n";
    DaemonProcess d{admins + kChannels};
    REQUIRE(d.start());
    // The other uids must be able to reach the socket inside the test's private directory.
    REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
    for (const uid_t uid : {kOutsider, kListedAdmin}) {
        if (auto why = unreachable_by(uid, {{d.socket_path(), W_OK}})) {
            SHMBUS_SKIP(*why);
        }
    }
    Client root = connect_to(d, "root");
    write_file(d.config_path(), admins + kChannels + "  - name: added\n    kind: queue\n");

    // Exit codes: 0 refused as expected, 2 no connection, 3 reload accepted, 4 another error.
    Child outsider = as_user(kOutsider, [&] {
        auto c = Client::connect(options_for(d.socket_path(), "outsider"));
        if (!c) {
            return child_exit(2, c.error().message());
        }
        auto r = c->reload();
        if (r) {
            return 3;
        }
        if (r.code() != Errc::permission_denied ||
            r.error().detail != "reload is an admin operation; uid " + std::to_string(kOutsider) +
                                    " is not root, the daemon's user, or in daemon.admin") {
            return child_exit(4, r.error().message());
        }
        return 0;
    });
    auto refused = outsider.wait();
    REQUIRE(refused);
    CHECK(refused->describe() == "exited with status 0");
    CHECK_FALSE(has_channel(root, "added"));

    // Exit codes: 0 reloaded and the summary names the new channel, 2 no connection, 3 refused,
    // 4 an unexpected summary.
    Child admin = as_user(kListedAdmin, [&] {
        auto c = Client::connect(options_for(d.socket_path(), "listed-admin"));
        if (!c) {
            return child_exit(2, c.error().message());
        }
        auto r = c->reload();
        if (!r) {
            return child_exit(3, r.error().message());
        }
        if (r->find("channel 'added' created") == std::string::npos) {
            return child_exit(4, "summary: " + *r);
        }
        return 0;
    });
    auto accepted = admin.wait();
    REQUIRE(accepted);
    CHECK(accepted->describe() == "exited with status 0");
    CHECK(has_channel(root, "added"));

    // Root is always an admin.
    auto again = root.reload();
    INFO((again ? std::string{} : again.error().message()));
    CHECK(again);
}

// ---- socket activation -----------------------------------------------------------------------

TEST_CASE("through systemd-socket-activate, shmbusd starts at the first client and serves on "
          "the socket it was passed") {
    const auto tool = find_program("systemd-socket-activate");
    if (!tool) {
        SHMBUS_SKIP("systemd-socket-activate is not installed (Debian package systemd)");
    }
    DaemonProcess d{kChannels};
    const auto socket = d.dir() / "activated.sock";
    // As shmbusd.socket would: the service manager owns the socket; shmbusd is told its path.
    d.with_launcher({tool->native(), "--seqpacket", "--listen=" + socket.native(),
                     "--fdname=shmbusd.socket",
                     "--setenv=NOTIFY_SOCKET=" + d.notify_path().native()})
        .with_args({"--socket", socket.native()})
        .without_own_socket()
        .with_stderr_file();
    d.launch();
    REQUIRE(wait_for_path(socket, generous_deadline()));
    // Nobody has connected yet: the launcher has not exec'd shmbusd.
    CHECK(std::filesystem::equivalent(executable_of(d.pid()), *tool));

    ClientOptions o = options_for(socket, "first-client");
    o.wait_for_daemon = std::chrono::duration_cast<std::chrono::milliseconds>(kDaemonDeadline);
    auto client = Client::connect(o);
    INFO((client ? std::string{} : client.error().message()));
    REQUIRE(client);
    REQUIRE(d.wait_for_notification("READY=1", generous_deadline()));
    CHECK(std::filesystem::equivalent(executable_of(d.pid()), SHMBUSD_PATH));

    auto status = client->status();
    REQUIRE(status);
    CHECK(status->pid == static_cast<std::uint32_t>(d.pid())); // exec'd in place
    CHECK(status->socket_path == socket.native());
    auto sub = client->open_subscriber("jobs");
    INFO((sub ? std::string{} : sub.error().message()));
    CHECK(sub);
    CHECK_THAT(d.stderr_text(),
               Catch::Contains("info using the listening socket passed by the service manager "
                               "('shmbusd.socket')"));

    auto e = d.stop();
    REQUIRE(e);
    CHECK(e->code == 0);
    // The socket belongs to the service manager: the daemon leaves it in place.
    CHECK(std::filesystem::exists(socket));
}

// ---- journald --------------------------------------------------------------------------------

TEST_CASE("with JOURNAL_STREAM on its stderr, the daemon sends native journal entries with the "
          "client's fields") {
    if (::geteuid() != 0 || !can_unshare_mounts()) {
        SHMBUS_SKIP("needs root and a mount namespace for a stand-in journal socket");
    }
    JournaledDaemon j{kChannels};
    REQUIRE(j.daemon.start());
    Client client = connect_to(j.daemon, "journal-reader");
    auto sub = client.open_subscriber("jobs");
    REQUIRE(sub);

    const auto opened = j.entry_with("opened 'jobs' as subscriber");
    CHECK_THAT(field(opened, "MESSAGE"),
               Catch::EndsWith("(pid " + std::to_string(::getpid()) + ", uid " +
                               std::to_string(::geteuid()) +
                               ", 'journal-reader') opened 'jobs' as subscriber 0"));
    CHECK(field(opened, "PRIORITY") == "6"); // info
    CHECK(field(opened, "SYSLOG_IDENTIFIER") == "shmbusd");
    CHECK(field(opened, "CHANNEL") == "jobs");
    CHECK(field(opened, "CLIENT_PID") == std::to_string(::getpid()));
    CHECK(field(opened, "CLIENT_UID") == std::to_string(::geteuid()));
    CHECK(field(opened, "CLIENT_NAME") == "journal-reader");

    // A warning, about a client but no channel: no CHANNEL= at all.
    UniqueFd raw = connect_and_greet(j.daemon.socket_path(), "scribbler");
    REQUIRE(raw);
    const std::array<std::byte, 20> garbage{};
    REQUIRE(::send(raw.get(), garbage.data(), garbage.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(garbage.size()));
    const auto warned = j.entry_with("sent a malformed message");
    CHECK(field(warned, "PRIORITY") == "4"); // warning
    CHECK(field(warned, "CLIENT_NAME") == "scribbler");
    CHECK(warned.count("CHANNEL") == 0);

    // The entries went to the journal instead of stderr, not as well.
    CHECK_THAT(j.daemon.stderr_text(), !Catch::Contains("opened 'jobs'"));
}

TEST_CASE("a client name full of printf directives reaches the journal verbatim and the daemon "
          "keeps running") {
    if (::geteuid() != 0 || !can_unshare_mounts()) {
        SHMBUS_SKIP("needs root and a mount namespace for a stand-in journal socket");
    }
    JournaledDaemon j{kChannels};
    REQUIRE(j.daemon.start());
    // Printable, so the daemon keeps it as it is; a format string would read and write
    // through pointers that were never passed.
    const std::string name = "100% %s%s%s%s %n%n %x %1$s";
    {
        Client hostile = connect_to(j.daemon, name);
        const auto connected = j.entry_with("connected (protocol");
        CHECK(field(connected, "CLIENT_NAME") == name);
        CHECK_THAT(field(connected, "MESSAGE"), Catch::Contains("'" + name + "') connected"));
    }
    Client after = connect_to(j.daemon, "after");
    CHECK(after.ping());
}

// ---- an idle daemon --------------------------------------------------------------------------

TEST_CASE("an idle daemon sleeps in epoll_wait without a timeout and does not run while its "
          "clients exchange messages") {
    DaemonProcess d{kChannels};
    REQUIRE(d.start());
    Client producer = connect_to(d, "producer");
    Client consumer = connect_to(d, "consumer");
    Client idle = connect_to(d, "idle");
    auto pub = producer.open_publisher("jobs");
    REQUIRE(pub);
    auto sub = consumer.open_subscriber("jobs");
    REQUIRE(sub);
    REQUIRE(idle.ping());

    // The daemon is done with the last request once it blocks again; without a timer it
    // blocks with no timeout (watchdog and grace-period timers are off in this test).
    INFO("the daemon's /proc/PID/syscall: the single thread blocked in epoll_wait, timeout -1");
    REQUIRE(eventually([&] { return asleep_without_timeout(d.pid()); }));
    const Activity before = activity_of(d.pid());

    // The window: messages through shared memory. None of this involves the daemon.
    const std::uint64_t count = scaled(20000, 2000);
    std::vector<std::byte> out(64);
    std::vector<std::byte> in(64);
    std::uint64_t intact = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        stamp(out, i);
        if (auto sent = pub->send(out, 60s); !sent) {
            FAIL_CHECK("message " << i << ": " << sent.error().message());
            break;
        }
        auto got = sub->receive_copy(in, 60s);
        if (!got) {
            FAIL_CHECK("message " << i << ": " << got.error().message());
            break;
        }
        intact += check_stamp(std::span{in}.first(got->size)) == i ? 1 : 0;
    }
    CHECK(intact == count);

    const Activity after = activity_of(d.pid());
    CHECK(after.voluntary_switches == before.voluntary_switches);
    CHECK(after.involuntary_switches == before.involuntary_switches);
    CHECK(after.cpu_ticks == before.cpu_ticks);
    CHECK(asleep_without_timeout(d.pid()));
    // And it still answers at once.
    CHECK(idle.ping());
}
