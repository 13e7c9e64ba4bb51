// Per-uid quotas and what a user who is not an admin is shown, against the real shmbusd.
//
// The control socket is open to every local user, so one user must not be able to lock the
// others out: its connections, endpoints, dynamic channels and their segment bytes are
// counted per uid (limits.per_uid), root and the admins keep limits.admin_reserve
// connections nobody else may use, a connection that never says hello is closed after
// limits.hello_timeout, and the refusals are logged one line per uid per interval. A user
// who is not an admin sees only the channels it may open, and the pids and names of its own
// uid's clients only.
//
// The other users are forked children that drop to uids 65534 and 65533 (needs root: the
// tests skip otherwise); the daemon runs as the test's user, root, who with its admins is
// never counted. Children report what they saw through pipes; every wait has a deadline.
#include "daemon_process.hpp"
#include "process.hpp"
#include "skip.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#ifndef SHMBUSCTL_PATH
#error "SHMBUSCTL_PATH must name the shmbusctl binary under test"
#endif

using namespace shmbus;
using namespace shmbus::test;

namespace {

constexpr uid_t kHog = 65534;
constexpr uid_t kNeighbour = 65533;

/// The built-in defaults of limits.per_uid.max_connections and limits.admin_reserve, which
/// these configurations leave alone; max_clients leaves the hog's quota and two more
/// connections to everyone else, and then the admins' reserve.
constexpr std::uint32_t kPerUidConnections = 64;
constexpr std::uint32_t kAdminReserve = 8;
constexpr std::uint32_t kMaxClients = kPerUidConnections + 2 + kAdminReserve;

const std::string kOpenChannel = R"(
channels:
  - name: shared
    kind: broadcast
    slot_size: 64
    slot_count: 16
    max_publishers: 4
    max_subscribers: 1024
    acl:
      publish:   {users: ["*"]}
      subscribe: {users: ["*"]}
  - name: private
    kind: queue
    slot_size: 64
    slot_count: 16
)";

bool root() {
    return ::geteuid() == 0;
}

/// Starts `d` and opens its private directory, so that other uids reach its socket.
void start_for_everyone(DaemonProcess& d) {
    REQUIRE(d.start());
    REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
}

/// In a forked child: drops to `uid` (its own group only), runs `body`, exits with its
/// result; what the child writes to `report` the parent reads with read_report().
Child as_user(uid_t uid, std::function<int()> body) {
    return Child::spawn([uid, body = std::move(body)] {
        const gid_t gid = uid;
        if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
            std::fprintf(stderr, "cannot drop to uid %u\n", static_cast<unsigned>(uid));
            return 125;
        }
        return body();
    });
}

/// Writes one line of a child's report.
void report(int fd, const std::string& line) {
    const std::string text = line + "\n";
    (void)write_all(fd, std::as_bytes(std::span{text}));
}

/// Everything written to `fd` until its writers closed it (or the deadline passed).
std::string read_report(int fd, const Deadline& deadline = Deadline{}) {
    std::string out;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, deadline.poll_ms()) <= 0) {
            return out + "(deadline passed)";
        }
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return out;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
}

/// Connects and says hello: the connection, or the daemon's refusal as "code: message".
std::variant<UniqueFd, std::string> greet(const std::filesystem::path& socket) {
    UniqueFd fd = connect_control(socket);
    if (!fd) {
        return std::string{"connect failed"};
    }
    proto::Hello hello;
    hello.client_name = "greeter";
    auto r = request(fd.get(), hello);
    if (!r && r.code() == Errc::closed) {
        // Refused with the hello unread: the kernel reports the reset first, then hands
        // over the refusal the daemon sent before closing.
        r = proto::receive_message(fd.get(), generous_deadline());
    }
    if (!r) {
        return r.error().message();
    }
    if (const auto* e = std::get_if<proto::ErrorReply>(&r->message.body)) {
        return std::string{errc_name(e->code)} + ": " + e->message;
    }
    return fd;
}

/// As many connections as the daemon admits; the refusal that ended them, or "".
struct Held {
    std::vector<UniqueFd> connections;
    std::string refusal;
};
Held connect_until_refused(const std::filesystem::path& socket, std::size_t at_most) {
    Held h;
    while (h.connections.size() < at_most) {
        auto got = greet(socket);
        if (auto* refusal = std::get_if<std::string>(&got)) {
            h.refusal = *refusal;
            break;
        }
        h.connections.push_back(std::move(std::get<UniqueFd>(got)));
    }
    return h;
}

/// Runs shmbusctl with `args` against `socket`; its exit code and standard output.
std::pair<int, std::string> shmbusctl(const std::filesystem::path& socket,
                                      std::vector<std::string> args) {
    Pipe out = Pipe::make();
    Child ctl = Child::spawn([&] {
        out.read_end.reset();
        ::dup2(out.write_end.get(), STDOUT_FILENO);
        ::setenv("SHMBUS_SOCKET", socket.c_str(), 1);
        std::vector<std::string> text{SHMBUSCTL_PATH};
        text.insert(text.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : text) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        return 127;
    });
    out.write_end.reset();
    std::string text = read_report(out.read_end.get());
    auto st = ctl.wait();
    const int code = st && WIFEXITED(st->raw) ? WEXITSTATUS(st->raw) : -1;
    return {code, text};
}

ClientOptions options_for(const DaemonProcess& d, const std::string& name) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(kDaemonDeadline);
    o.reconnect_in_background = false;
    return o;
}

/// Occurrences of `needle` in `text`.
std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

} // namespace

TEST_CASE("a uid holding every connection it can get stops neither root's shmbusctl list nor "
          "another uid within its own quota") {
    if (!root()) {
        SHMBUS_SKIP("needs root to run clients as other uids");
    }
    DaemonProcess d{"limits:\n  max_clients: " + std::to_string(kMaxClients) + "\n" + kOpenChannel};
    d.with_stderr_file();
    start_for_everyone(d);

    // The hog takes what it can, says what stopped it, and holds on until told to let go.
    Pipe hog_report = Pipe::make();
    Pipe let_go = Pipe::make(); // end of file: the test is done, the children let go
    Child hog = as_user(kHog, [&] {
        hog_report.read_end.reset();
        let_go.write_end.reset();
        Held held = connect_until_refused(d.socket_path(), 1000);
        report(hog_report.write_end.get(), std::to_string(held.connections.size()));
        report(hog_report.write_end.get(), held.refusal);
        // Knocking again and again costs the journal one line (checked below).
        for (int i = 0; i < 5; ++i) {
            (void)greet(d.socket_path());
        }
        hog_report.write_end.reset();
        char byte = 0;
        (void)::read(let_go.read_end.get(), &byte, 1);
        return 0;
    });
    hog_report.write_end.reset();
    const std::string hogged = read_report(hog_report.read_end.get());
    INFO(hogged);
    CHECK(hogged == std::to_string(kPerUidConnections) + "\nlimit_reached: uid " +
                        std::to_string(kHog) + " has " + std::to_string(kPerUidConnections) +
                        " connections open; limits.per_uid.max_connections is " +
                        std::to_string(kPerUidConnections) + "\n");

    // Another uid still gets its connections, up to what is left outside the reserve.
    Pipe neighbour_report = Pipe::make();
    Child neighbour = as_user(kNeighbour, [&] {
        neighbour_report.read_end.reset();
        let_go.write_end.reset();
        Held held = connect_until_refused(d.socket_path(), 1000);
        report(neighbour_report.write_end.get(), std::to_string(held.connections.size()));
        report(neighbour_report.write_end.get(), held.refusal);
        neighbour_report.write_end.reset();
        char byte = 0;
        (void)::read(let_go.read_end.get(), &byte, 1); // holds its connections meanwhile
        return 0;
    });
    neighbour_report.write_end.reset();
    let_go.read_end.reset();
    const std::string neighboured = read_report(neighbour_report.read_end.get());
    INFO(neighboured);
    CHECK(neighboured == "2\nlimit_reached: the daemon serves " +
                             std::to_string(kMaxClients - kAdminReserve) +
                             " clients; limits.max_clients is " + std::to_string(kMaxClients) +
                             ", of which limits.admin_reserve (" + std::to_string(kAdminReserve) +
                             ") are kept for root and the admins\n");

    // Root reaches the daemon that the others have filled, through the reserve.
    Client kept = [&] {
        auto c = Client::connect(options_for(d, "kept-by-root"));
        REQUIRE(c);
        return std::move(*c);
    }();
    const auto [code, listed] = shmbusctl(d.socket_path(), {"list"});
    INFO(listed);
    CHECK(code == 0);
    CHECK_THAT(listed, Catch::Contains("shared"));

    let_go.write_end.reset();
    for (Child* c : {&hog, &neighbour}) {
        auto done = c->wait();
        REQUIRE(done);
        CHECK(done->exited_ok());
    }

    // Six refusals of the hog's uid: the first logged at once, the other five counted in the
    // one summary the stop writes out.
    REQUIRE(d.stop());
    const std::string log = d.stderr_text();
    INFO(log);
    // Lines of their own: the hog's first refusal and the neighbour's.
    CHECK(count_of(log, "warning refused a connection from") == 2);
    CHECK_THAT(log,
               Catch::Contains("uid " + std::to_string(kHog) + ": 5 more refusals in the last"));
}

TEST_CASE("a connection that never says hello is told timed_out naming limits.hello_timeout "
          "and closed, and a greeted one stays") {
    DaemonProcess d{kOpenChannel};
    d.with_stderr_file();
    REQUIRE(d.start());
    UniqueFd greeted = connect_and_greet(d.socket_path(), "greeted");
    REQUIRE(greeted);
    UniqueFd silent = connect_control(d.socket_path());
    REQUIRE(silent);

    // The daemon hangs up once the timeout passes; its answer is queued before the end.
    pollfd p{silent.get(), POLLRDHUP, 0};
    REQUIRE(::poll(&p, 1, ms_left(generous_deadline())) == 1);
    auto got = proto::receive_message(silent.get(), generous_deadline());
    REQUIRE(got);
    const auto* error = std::get_if<proto::ErrorReply>(&got->message.body);
    REQUIRE(error != nullptr);
    CHECK(error->code == Errc::timed_out);
    CHECK(error->message ==
          "no hello within limits.hello_timeout (5000 ms); the daemon closed the connection");
    CHECK(proto::receive_message(silent.get(), generous_deadline()).code() == Errc::closed);
    CHECK(d.wait_for_stderr("no hello within limits.hello_timeout", generous_deadline()));

    // The greeted connection was accepted earlier, so its timeout passed too: it stays.
    auto pong = request(greeted.get(), proto::Ping{7});
    REQUIRE(pong);
    CHECK(std::holds_alternative<proto::Pong>(pong->message.body));
}

TEST_CASE("a uid's endpoints over all its clients stop at limits.per_uid.max_open_channels, "
          "and root is not counted") {
    if (!root()) {
        SHMBUS_SKIP("needs root to run clients as other uids");
    }
    DaemonProcess d{kOpenChannel};
    start_for_everyone(d);
    constexpr std::uint32_t kPerUid = 256;   // limits.per_uid.max_open_channels' default
    constexpr std::uint32_t kPerClient = 64; // limits.per_client.max_open_channels' default

    Pipe out = Pipe::make();
    Child user = as_user(kHog, [&] {
        out.read_end.reset();
        std::vector<Client> clients;
        std::vector<Subscriber> held;
        for (;;) {
            if (held.size() % kPerClient == 0) {
                auto c = Client::connect(options_for(d, "opener"));
                if (!c) {
                    report(out.write_end.get(), "connect: " + c.error().message());
                    return 2;
                }
                clients.push_back(std::move(*c));
            }
            auto sub = clients.back().open_subscriber("shared");
            if (!sub) {
                report(out.write_end.get(), std::to_string(held.size()));
                report(out.write_end.get(), sub.error().message());
                return 0;
            }
            held.push_back(std::move(*sub));
        }
    });
    out.write_end.reset();
    const std::string seen = read_report(out.read_end.get());
    CHECK(seen == std::to_string(kPerUid) + "\nlimit_reached: uid " + std::to_string(kHog) +
                      " has " + std::to_string(kPerUid) +
                      " endpoints open; limits.per_uid.max_open_channels is " +
                      std::to_string(kPerUid) + "\n");
    auto done = user.wait();
    REQUIRE(done);
    CHECK(done->exited_ok());

    // Root holds as many as it likes (up to its per-client limit).
    auto c = Client::connect(options_for(d, "root"));
    REQUIRE(c);
    CHECK(c->open_subscriber("shared"));
}

TEST_CASE("a uid's dynamic channels stop at limits.per_uid.max_dynamic_channels and "
          "limits.per_uid.max_segment_bytes, naming the key") {
    if (!root()) {
        SHMBUS_SKIP("needs root to run clients as other uids");
    }
    DaemonProcess d{"dynamic_channels:\n  users: [\"*\"]\n" + kOpenChannel};
    start_for_everyone(d);
    constexpr std::uint32_t kPerUid = 32;    // limits.per_uid.max_dynamic_channels' default
    constexpr std::uint32_t kPerClient = 16; // limits.per_client.max_dynamic_channels' default

    Pipe out = Pipe::make();
    Child user = as_user(kHog, [&] {
        out.read_end.reset();
        // One channel larger than the uid's 256 MiB of segments on its own.
        auto first = Client::connect(options_for(d, "creator"));
        if (!first) {
            report(out.write_end.get(), "connect: " + first.error().message());
            return 2;
        }
        ChannelRequest big{"big"};
        big.slot_size = std::uint64_t{1} << 20;
        big.slot_count = 512;
        auto refused = first->create_channel(big);
        report(out.write_end.get(), refused ? "big: created" : refused.error().message());

        std::vector<Client> clients;
        for (std::uint32_t made = 0;; ++made) {
            if (made % kPerClient == 0) {
                auto c = Client::connect(options_for(d, "creator"));
                if (!c) {
                    report(out.write_end.get(), "connect: " + c.error().message());
                    return 2;
                }
                clients.push_back(std::move(*c));
            }
            ChannelRequest small{"small-" + std::to_string(made)};
            small.kind = ChannelKind::queue;
            small.slot_size = 64;
            small.slot_count = 16;
            if (auto r = clients.back().create_channel(small); !r) {
                report(out.write_end.get(), std::to_string(made));
                report(out.write_end.get(), r.error().message());
                return 0;
            }
        }
    });
    out.write_end.reset();
    const std::string seen = read_report(out.read_end.get());
    INFO(seen);
    CHECK_THAT(seen, Catch::StartsWith("limit_reached: cannot create channel 'big': it needs "));
    CHECK_THAT(seen, Catch::Contains(", the channels uid " + std::to_string(kHog) +
                                     " created hold 0 and limits.per_uid.max_segment_bytes is " +
                                     std::to_string(std::uint64_t{256} << 20) + "\n"));
    CHECK_THAT(seen, Catch::EndsWith("\n" + std::to_string(kPerUid) +
                                     "\nlimit_reached: cannot create channel 'small-" +
                                     std::to_string(kPerUid) + "': uid " + std::to_string(kHog) +
                                     " has created " + std::to_string(kPerUid) +
                                     " channels; limits.per_uid.max_dynamic_channels is " +
                                     std::to_string(kPerUid) + "\n"));
    auto done = user.wait();
    REQUIRE(done);
    CHECK(done->exited_ok());
}

TEST_CASE("a user who is not an admin is shown only the channels it may open and only its "
          "own clients' pids and names, and root is shown everything") {
    if (!root()) {
        SHMBUS_SKIP("needs root to run clients as other uids");
    }
    DaemonProcess d{kOpenChannel};
    start_for_everyone(d);
    auto admin = Client::connect(options_for(d, "root-client"));
    REQUIRE(admin);
    auto root_sub = admin->open_subscriber("shared");
    REQUIRE(root_sub);
    auto root_queue = admin->open_subscriber("private");
    REQUIRE(root_queue);

    // The other user holds a publisher on 'shared' while the root client looks.
    Pipe out = Pipe::make();
    Pipe let_go = Pipe::make();
    Child user = as_user(kHog, [&] {
        out.read_end.reset();
        let_go.write_end.reset();
        auto c = Client::connect(options_for(d, "nobody-client"));
        if (!c) {
            report(out.write_end.get(), "connect: " + c.error().message());
            return 2;
        }
        auto pub = c->open_publisher("shared");
        if (!pub) {
            report(out.write_end.get(), "open: " + pub.error().message());
            return 2;
        }
        auto channels = c->list_channels();
        auto shared = c->channel_info("shared");
        if (!channels || !shared) {
            report(out.write_end.get(), "list or info failed");
            return 2;
        }
        std::string listed = "listed:";
        for (const auto& ch : *channels) {
            listed += " " + ch.info.name;
        }
        report(out.write_end.get(), listed);
        const auto me = static_cast<std::uint32_t>(::getpid());
        for (const auto& e : shared->endpoints) {
            report(out.write_end.get(), std::string{"endpoint "} + std::string{to_string(e.role)} +
                                            " uid " + std::to_string(e.uid) + " pid " +
                                            std::to_string(e.pid) + " name '" + e.client_name +
                                            "' own " + (e.pid == me ? "yes" : "no"));
        }
        for (const char* hidden : {"private", "nonexistent"}) {
            auto info = c->channel_info(hidden);
            report(out.write_end.get(), info ? std::string{"info: shown"} : info.error().message());
        }
        out.write_end.reset();
        char byte = 0;
        (void)::read(let_go.read_end.get(), &byte, 1);
        return 0;
    });
    out.write_end.reset();
    let_go.read_end.reset();
    const std::string seen = read_report(out.read_end.get());
    CHECK(seen == "listed: shared\n"
                  "endpoint subscriber uid 0 pid 0 name '' own no\n"
                  "endpoint publisher uid 65534 pid " +
                      std::to_string(user.pid()) +
                      " name 'nobody-client' own yes\n"
                      "not_found: no channel 'private' that uid 65534 may open\n"
                      "not_found: no channel 'nonexistent' that uid 65534 may open\n");

    // Root sees every channel and every endpoint's pid and name.
    auto listed = admin->list_channels();
    REQUIRE(listed);
    CHECK(listed->size() == 2);
    auto info = admin->channel_info("shared");
    REQUIRE(info);
    REQUIRE(info->endpoints.size() == 2);
    const auto theirs =
        std::find_if(info->endpoints.begin(), info->endpoints.end(),
                     [](const EndpointDetail& e) { return e.role == Role::publisher; });
    REQUIRE(theirs != info->endpoints.end());
    CHECK(theirs->pid == static_cast<std::uint32_t>(user.pid()));
    CHECK(theirs->client_name == "nobody-client");

    let_go.write_end.reset();
    auto done = user.wait();
    REQUIRE(done);
    CHECK(done->exited_ok());
}
