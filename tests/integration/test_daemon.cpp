// shmbusd as a whole: the real binary, started per test on its own socket, state directory
// and configuration (tests/support/daemon_process.hpp), spoken to over the real control
// protocol, with real client processes where a process boundary matters (ACL by uid,
// kill -9 of a client).
//
// Synchronisation is always on an event: READY=1 / STATUS= on the notify socket, a reply on
// the control socket, a byte on a pipe, a process exit. No sleeps.
#include "daemon_process.hpp"
#include "other_user.hpp"
#include "skip.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <array>
#include <thread>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

/// `telemetry` publishable by root (uid 0) only; `jobs` with no acl (root and the daemon's
/// user only).
TestChannel root_publishes(TestChannel c) {
    c.publishers = {"0"};
    return c;
}
TestChannel without_acl(TestChannel c) {
    c.publishers.clear();
    c.subscribers.clear();
    return c;
}
const std::string kTwoChannels =
    channels_yaml({root_publishes(telemetry_channel()), without_acl(jobs_channel())});

template <typename T>
const T* body_as(const Result<proto::Received>& r) {
    return r ? std::get_if<T>(&r->message.body) : nullptr;
}

Errc error_code(const Result<proto::Received>& r) {
    if (!r) {
        return r.code();
    }
    if (const auto* e = std::get_if<proto::ErrorReply>(&r->message.body)) {
        return e->code;
    }
    return Errc{};
}

std::string error_message(const Result<proto::Received>& r) {
    if (!r) {
        return r.error().message();
    }
    if (const auto* e = std::get_if<proto::ErrorReply>(&r->message.body)) {
        return e->message;
    }
    return {};
}

/// Opens `channel` through the daemon and returns the reply and its descriptors.
Result<proto::Received> open_endpoint(int fd, const std::string& channel, Role role,
                                      std::uint32_t id = 7) {
    return request(fd, proto::Open{channel, role, 0}, id);
}

ChannelFiles files_of(proto::Received& r) {
    return ChannelFiles{std::move(r.fds.at(0)), std::move(r.fds.at(1))};
}

/// Sends a raw datagram on `fd`.
void send_raw(int fd, std::span<const std::byte> bytes) {
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
}

bool peer_closed(int fd, std::chrono::steady_clock::time_point deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0) {
        return false;
    }
    char b;
    return ::recv(fd, &b, 1, MSG_DONTWAIT) == 0 || (p.revents & POLLHUP) != 0;
}

} // namespace

TEST_CASE("shmbusd --version prints the version and exits 0") {
    std::string err;
    const Exit e = run_shmbusd({"--version"}, &err);
    CHECK(e.code == 0);
}

TEST_CASE("shmbusd --check-config exits 0 for a valid configuration") {
    TempDir dir;
    write_file(dir.path() / "ok.yaml", kTwoChannels);
    std::string err;
    const Exit e =
        run_shmbusd({"--check-config", "--config", (dir.path() / "ok.yaml").native()}, &err);
    CHECK(e.code == 0);
}

TEST_CASE("shmbusd --check-config exits 78 and prints every error as file:line:column") {
    TempDir dir;
    const auto file = dir.path() / "bad.yaml";
    write_file(file, "channels:\n  - name: x\n    kind: queu\n    slot_sise: 3\n");
    std::string err;
    const Exit e = run_shmbusd({"--check-config", "--config", file.native()}, &err);
    CHECK(e.code == 78);
    CHECK_THAT(err, Catch::Contains(file.native() + ":3:11: error: unknown channel kind 'queu'"));
    CHECK_THAT(err, Catch::Contains(file.native() + ":4:5: error: unknown key 'slot_sise'"));
}

TEST_CASE("starting with a bad configuration exits 78 with the same messages") {
    TempDir dir;
    const auto file = dir.path() / "bad.yaml";
    write_file(file, "limits:\n  max_clients: many\n");
    std::string err;
    const Exit e = run_shmbusd(
        {"--config", file.native(), "--socket", (dir.path() / "s.sock").native()}, &err);
    CHECK(e.code == 78);
    CHECK_THAT(err, Catch::Contains(file.native() + ":2:16: error:"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "s.sock"));
}

TEST_CASE("the daemon reports READY=1 and a STATUS= line once its socket and channels exist") {
    DaemonProcess d{kTwoChannels};
    std::string why;
    REQUIRE(d.start(&why));
    CHECK(std::filesystem::is_socket(d.socket_path()));
    CHECK(d.wait_for_notification("STATUS=0 clients, 2 channels", generous_deadline()));
}

TEST_CASE("graceful stop on SIGTERM or SIGINT sends STOPPING=1, removes the socket and exits 0") {
    const int sig = GENERATE(SIGTERM, SIGINT);
    DaemonProcess d{kTwoChannels};
    d.with_stderr_file();
    REQUIRE(d.start());
    UniqueFd client = connect_and_greet(d.socket_path(), "bystander");
    REQUIRE(client);
    auto e = d.signal_and_wait(sig);
    REQUIRE(e);
    CHECK(e->code == 0);
    CHECK(e->signal == 0);
    CHECK(d.wait_for_notification("STOPPING=1", generous_deadline()));
    CHECK_FALSE(std::filesystem::exists(d.socket_path()));
    // Read from the signal descriptor, with the sender named; the loop closed cleanly.
    CHECK_THAT(d.stderr_text(),
               Catch::Contains(std::string{"received "} + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                               " from pid " + std::to_string(::getpid())));
    CHECK_THAT(d.stderr_text(), Catch::Contains("stopped"));
}

TEST_CASE("hello, ping, status and list_channels are answered") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_control(d.socket_path());
    REQUIRE(fd);

    proto::Hello hello;
    hello.layout_version = kLayoutVersion;
    hello.client_name = "prober";
    auto hr = request(fd.get(), hello, 1);
    const auto* h = body_as<proto::HelloReply>(hr);
    REQUIRE(h != nullptr);
    CHECK(hr->message.request_id == 1);
    CHECK(h->major == proto::kProtocolMajor);
    CHECK(h->daemon_pid == static_cast<std::uint32_t>(d.pid()));
    CHECK(h->client_id != 0);

    auto pr = request(fd.get(), proto::Ping{42}, 2);
    const auto* pong = body_as<proto::Pong>(pr);
    REQUIRE(pong != nullptr);
    CHECK(pong->token == 42);
    CHECK(pr->message.request_id == 2);

    auto sr = request(fd.get(), proto::Status{}, 3);
    const auto* st = body_as<proto::StatusReply>(sr);
    REQUIRE(st != nullptr);
    CHECK(st->channels == 2);
    CHECK(st->clients == 1);
    CHECK(st->socket_path == d.socket_path().native());

    auto lr = request(fd.get(), proto::ListChannels{}, 4);
    const auto* list = body_as<proto::ChannelList>(lr);
    REQUIRE(list != nullptr);
    REQUIRE(list->channels.size() == 2);
    CHECK(list->channels[0].info.name == "jobs");
    CHECK(list->channels[1].info.name == "telemetry");
    CHECK(list->channels[1].info.kind == ChannelKind::broadcast);
}

TEST_CASE("a request before hello is refused with protocol_error") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_control(d.socket_path());
    auto r = request(fd.get(), proto::ListChannels{});
    CHECK(error_code(r) == Errc::protocol_error);
    CHECK_THAT(error_message(r), Catch::Contains("hello"));
}

TEST_CASE("a client of another protocol major is refused naming both versions") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_control(d.socket_path());
    proto::Hello hello;
    hello.major = proto::kProtocolMajor + 1;
    auto r = request(fd.get(), hello);
    CHECK(error_code(r) == Errc::version_mismatch);
    CHECK_THAT(error_message(r), Catch::Contains(std::to_string(proto::kProtocolMajor + 1)) &&
                                     Catch::Contains(std::to_string(proto::kProtocolMajor)));
}

TEST_CASE("open passes two descriptors, a subscriber's payload is read-only, and messages flow") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "flow");
    REQUIRE(fd);

    auto sr = open_endpoint(fd.get(), "telemetry", Role::subscriber, 10);
    const auto* sub_reply = body_as<proto::OpenReply>(sr);
    REQUIRE(sub_reply != nullptr);
    REQUIRE(sr->fds.size() == 2);
    CHECK(sub_reply->info.name == "telemetry");
    CHECK((::fcntl(sr->fds[1].get(), F_GETFL) & O_ACCMODE) == O_RDONLY);
    CHECK((::fcntl(sr->fds[0].get(), F_GETFL) & O_ACCMODE) == O_RDWR);

    auto pr = open_endpoint(fd.get(), "telemetry", Role::publisher, 11);
    const auto* pub_reply = body_as<proto::OpenReply>(pr);
    REQUIRE(pub_reply != nullptr);
    CHECK((::fcntl(pr->fds[1].get(), F_GETFL) & O_ACCMODE) == O_RDWR);

    EndpointOptions so;
    so.endpoint_index = static_cast<std::int32_t>(sub_reply->endpoint_index);
    auto sub = Subscriber::attach(files_of(*sr), so);
    REQUIRE(sub);
    EndpointOptions po;
    po.endpoint_index = static_cast<std::int32_t>(pub_reply->endpoint_index);
    auto pub = Publisher::attach(files_of(*pr), po);
    REQUIRE(pub);

    const std::array<std::byte, 5> hello{std::byte{'h'}, std::byte{'e'}, std::byte{'l'},
                                         std::byte{'l'}, std::byte{'o'}};
    REQUIRE(pub->send(hello, 10s));
    std::array<std::byte, 256> buf{};
    auto got = sub->receive_copy(buf, 10s);
    REQUIRE(got);
    CHECK(got->size == 5);

    auto info = request(fd.get(), proto::ChannelInfoRequest{"telemetry"}, 12);
    const auto* detail = body_as<proto::ChannelDetail>(info);
    REQUIRE(detail != nullptr);
    REQUIRE(detail->endpoints.size() == 2);
    CHECK(detail->endpoints[0].client_name == "flow");
    CHECK(detail->summary.stats.published == 1);
}

TEST_CASE("endpoint indices are the lowest free ones, and the table's size is a clear limit") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "indices");
    auto a = open_endpoint(fd.get(), "jobs", Role::subscriber, 1);
    auto b = open_endpoint(fd.get(), "jobs", Role::subscriber, 2);
    auto c = open_endpoint(fd.get(), "jobs", Role::subscriber, 3);
    REQUIRE(body_as<proto::OpenReply>(a) != nullptr);
    REQUIRE(body_as<proto::OpenReply>(b) != nullptr);
    CHECK(body_as<proto::OpenReply>(a)->endpoint_index == 0);
    CHECK(body_as<proto::OpenReply>(b)->endpoint_index == 1);
    CHECK(error_code(c) == Errc::limit_reached);
    CHECK_THAT(error_message(c), Catch::Contains("max_subscribers"));
    CHECK(c->fds.empty());

    // Closing (never attached: the entry is free) gives the index back.
    auto closed = request(fd.get(), proto::Close{"jobs", Role::subscriber, 0}, 4);
    CHECK(body_as<proto::Ok>(closed) != nullptr);
    auto again = open_endpoint(fd.get(), "jobs", Role::subscriber, 5);
    REQUIRE(body_as<proto::OpenReply>(again) != nullptr);
    CHECK(body_as<proto::OpenReply>(again)->endpoint_index == 0);
}

TEST_CASE("opening an unknown channel is not_found and passes no descriptor") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "lost");
    auto r = open_endpoint(fd.get(), "nonesuch", Role::subscriber);
    CHECK(error_code(r) == Errc::not_found);
    CHECK_THAT(error_message(r), Catch::Contains("nonesuch"));
    CHECK(r->fds.empty());
}

TEST_CASE("garbage, truncated and oversized messages get protocol_error and disturb no other "
          "client") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd bystander = connect_and_greet(d.socket_path(), "bystander");
    REQUIRE(bystander);
    UniqueFd bad = connect_and_greet(d.socket_path(), "vandal");
    REQUIRE(bad);

    SECTION("garbage") {
        const std::array<std::byte, 7> junk{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                            std::byte{5}, std::byte{6}, std::byte{7}};
        send_raw(bad.get(), junk);
    }
    SECTION("a truncated open") {
        auto bytes = proto::encode(proto::Message{9, proto::Open{"telemetry", Role::publisher, 0}});
        REQUIRE(bytes);
        send_raw(bad.get(), std::span{*bytes}.first(bytes->size() - 3));
    }
    SECTION("an oversized datagram") {
        std::vector<std::byte> big(proto::kMaxMessageBytes + 4096, std::byte{0x53});
        const int sndbuf = static_cast<int>(4 * big.size());
        ::setsockopt(bad.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        send_raw(bad.get(), big);
    }
    auto reply = proto::receive_message(bad.get(), generous_deadline());
    CHECK(error_code(reply) == Errc::protocol_error);

    // The vandal's connection still works, and so does everyone else's.
    CHECK(body_as<proto::Pong>(request(bad.get(), proto::Ping{1})) != nullptr);
    CHECK(body_as<proto::Pong>(request(bystander.get(), proto::Ping{2})) != nullptr);
}

TEST_CASE("descriptors passed beside a request are closed and that client disconnected") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd bystander = connect_and_greet(d.socket_path(), "bystander");
    UniqueFd bad = connect_and_greet(d.socket_path(), "fd-pusher");
    REQUIRE(bad);
    const std::size_t fds_before = d.open_descriptors();

    auto bytes = proto::encode(proto::Message{3, proto::Ping{3}});
    REQUIRE(bytes);
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    UniqueFd p0{pipe_fds[0]};
    UniqueFd p1{pipe_fds[1]};
    // Past send_message(), which would refuse descriptors beside a ping.
    REQUIRE(proto::send_datagram(bad.get(), *bytes, pipe_fds));

    auto reply = proto::receive_message(bad.get(), generous_deadline());
    CHECK(error_code(reply) == Errc::protocol_error);
    CHECK(peer_closed(bad.get(), generous_deadline()));
    // The pipe's ends went back: the daemon holds one descriptor less (the vandal's socket).
    CHECK(body_as<proto::Pong>(request(bystander.get(), proto::Ping{4})) != nullptr);
    CHECK(d.open_descriptors() == fds_before - 1);
}

TEST_CASE("a user outside a channel's acl gets permission_denied and no descriptor") {
    if (::geteuid() != 0) {
        SHMBUS_SKIP("needs root to run a client as another uid");
    }
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    // nobody must be able to reach the socket inside the test's private directory.
    REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
    if (auto why = unreachable_by(65534, {{d.socket_path(), W_OK}})) {
        SHMBUS_SKIP(*why);
    }

    int report[2];
    REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
    UniqueFd report_read{report[0]};
    UniqueFd report_write{report[1]};
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // As nobody: subscribing is open to "*", publishing only to uid 0.
        if (!drop_to_uid(65534)) {
            _exit(2);
        }
        UniqueFd fd = connect_and_greet(d.socket_path(), "nobody");
        if (!fd) {
            _exit(3);
        }
        auto sub = open_endpoint(fd.get(), "telemetry", Role::subscriber, 1);
        auto pub = open_endpoint(fd.get(), "telemetry", Role::publisher, 2);
        auto jobs = open_endpoint(fd.get(), "jobs", Role::subscriber, 3);
        // The read-only payload cannot be reopened for writing through /proc by another uid.
        bool reopen_refused = false;
        if (sub && sub->fds.size() == 2) {
            const std::string path = "/proc/self/fd/" + std::to_string(sub->fds[1].get());
            const int rw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
            reopen_refused = rw < 0 && errno == EACCES;
            if (rw >= 0) {
                ::close(rw);
            }
        }
        char result[5] = {
            static_cast<char>(body_as<proto::OpenReply>(sub) != nullptr && sub->fds.size() == 2),
            static_cast<char>(error_code(pub) == Errc::permission_denied && pub->fds.empty()),
            static_cast<char>(error_code(jobs) == Errc::permission_denied && jobs->fds.empty()),
            static_cast<char>(error_message(pub).find("uid 65534") != std::string::npos),
            static_cast<char>(reopen_refused)};
        (void)!::write(report_write.get(), result, sizeof result);
        _exit(0);
    }
    report_write.reset();
    char result[5]{};
    pollfd p{report_read.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, ms_left(generous_deadline())) == 1);
    REQUIRE(::read(report_read.get(), result, sizeof result) == 5);
    auto exit = wait_for_exit(child, generous_deadline());
    REQUIRE(exit);
    CHECK(exit->code == 0);
    CHECK(result[0] == 1); // subscribe: allowed to everyone
    CHECK(result[1] == 1); // publish: denied, no descriptors
    CHECK(result[2] == 1); // a channel without acl: only root and the daemon's user
    CHECK(result[3] == 1); // the message names the uid
    CHECK(result[4] == 1); // the read-only payload cannot be reopened read-write
}

TEST_CASE("kill -9 of a subscriber while a block publisher streams: the publisher resumes") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "publisher");
    auto pr = open_endpoint(fd.get(), "telemetry", Role::publisher);
    const auto* pub_reply = body_as<proto::OpenReply>(pr);
    REQUIRE(pub_reply != nullptr);
    EndpointOptions po;
    po.endpoint_index = static_cast<std::int32_t>(pub_reply->endpoint_index);
    auto pub = Publisher::attach(files_of(*pr), po);
    REQUIRE(pub);

    // The subscriber: attaches through its own connection, says it is ready, reads nothing.
    int ready[2];
    REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
    UniqueFd ready_read{ready[0]};
    UniqueFd ready_write{ready[1]};
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        UniqueFd cfd = connect_and_greet(d.socket_path(), "stalled-subscriber");
        auto sr = open_endpoint(cfd.get(), "telemetry", Role::subscriber);
        const auto* reply = body_as<proto::OpenReply>(sr);
        if (reply == nullptr) {
            _exit(3);
        }
        EndpointOptions so;
        so.endpoint_index = static_cast<std::int32_t>(reply->endpoint_index);
        auto sub =
            Subscriber::attach(ChannelFiles{std::move(sr->fds[0]), std::move(sr->fds[1])}, so);
        if (!sub) {
            _exit(4);
        }
        (void)!::write(ready_write.get(), "r", 1);
        for (;;) {
            ::pause();
        }
    }
    ready_write.reset();
    pollfd p{ready_read.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, ms_left(generous_deadline())) == 1);
    char r = 0;
    REQUIRE(::read(ready_read.get(), &r, 1) == 1);

    // Fill the ring: the stalled subscriber holds the block-policy publisher back.
    const std::array<std::byte, 8> msg{};
    int sent = 0;
    while (pub->try_send(msg)) {
        ++sent;
    }
    CHECK(sent == 8);
    CHECK(pub->try_send(msg).code() == Errc::would_block);

    ::kill(child, SIGKILL);
    auto exit = wait_for_exit(child, generous_deadline());
    REQUIRE(exit);
    CHECK(exit->signal == SIGKILL);
    // The daemon reclaims the dead subscriber; the publisher then has room again.
    for (int i = 0; i < 100; ++i) {
        REQUIRE(pub->send(msg, 30s));
    }
}

TEST_CASE("10,000 connect/open/close cycles leak no descriptor in the daemon") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd probe = connect_and_greet(d.socket_path(), "probe");
    REQUIRE(probe);
    // The first subscriber open of a channel makes its read-only payload descriptor, kept
    // for the next ones: count from after one open of each.
    for (const char* name : {"telemetry", "jobs"}) {
        auto warm = open_endpoint(probe.get(), name, Role::subscriber);
        const auto* reply = body_as<proto::OpenReply>(warm);
        REQUIRE(reply != nullptr);
        REQUIRE(body_as<proto::Ok>(request(
                    probe.get(), proto::Close{name, Role::subscriber, reply->endpoint_index})) !=
                nullptr);
    }
    const std::size_t before = d.open_descriptors();
    const int cycles = std::getenv("SHMBUS_TEST_SCALE") != nullptr ? 1000 : 10000;
    for (int i = 0; i < cycles; ++i) {
        UniqueFd fd = connect_and_greet(d.socket_path(), "cycle");
        REQUIRE(fd);
        auto r = open_endpoint(fd.get(), i % 2 == 0 ? "telemetry" : "jobs", Role::subscriber);
        const auto* reply = body_as<proto::OpenReply>(r);
        REQUIRE(reply != nullptr);
        auto c = request(fd.get(), proto::Close{i % 2 == 0 ? "telemetry" : "jobs", Role::subscriber,
                                                reply->endpoint_index});
        REQUIRE(body_as<proto::Ok>(c) != nullptr);
    }
    // The last connection closed; a round trip on the probe orders its teardown before this.
    auto st = request(probe.get(), proto::Status{});
    const auto* status = body_as<proto::StatusReply>(st);
    REQUIRE(status != nullptr);
    // Closing is noticed by the daemon asynchronously; wait on the client count itself.
    const auto deadline = generous_deadline();
    std::uint32_t clients = status->clients;
    while (clients != 1 && std::chrono::steady_clock::now() < deadline) {
        auto again = request(probe.get(), proto::Status{});
        REQUIRE(body_as<proto::StatusReply>(again) != nullptr);
        clients = body_as<proto::StatusReply>(again)->clients;
    }
    CHECK(clients == 1);
    CHECK(d.open_descriptors() == before);
}

TEST_CASE("a dead client's endpoints are reclaimed and their indices reused") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd watcher = connect_and_greet(d.socket_path(), "watcher");
    {
        UniqueFd fd = connect_and_greet(d.socket_path(), "short-lived");
        auto a = open_endpoint(fd.get(), "jobs", Role::subscriber, 1);
        auto b = open_endpoint(fd.get(), "jobs", Role::subscriber, 2);
        REQUIRE(body_as<proto::OpenReply>(b) != nullptr);
        auto sub = Subscriber::attach(files_of(*a), {});
        REQUIRE(sub);
    } // connection closed, subscriber detached; the other index was never attached
    const auto deadline = generous_deadline();
    bool free_again = false;
    while (!free_again && std::chrono::steady_clock::now() < deadline) {
        auto info = request(watcher.get(), proto::ChannelInfoRequest{"jobs"});
        REQUIRE(body_as<proto::ChannelDetail>(info) != nullptr);
        free_again = body_as<proto::ChannelDetail>(info)->endpoints.empty();
    }
    CHECK(free_again);
    auto again = open_endpoint(watcher.get(), "jobs", Role::subscriber);
    REQUIRE(body_as<proto::OpenReply>(again) != nullptr);
    CHECK(body_as<proto::OpenReply>(again)->endpoint_index == 0);
}

TEST_CASE("a dynamic channel is created on request within the limits") {
    DaemonProcess d{"limits:\n  per_client:\n    max_dynamic_channels: 1\n"};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "creator");
    ChannelSpec spec;
    spec.name = "scratch";
    spec.kind = ChannelKind::queue;
    spec.slot_size = 128;
    spec.slot_count = 16;
    CHECK(body_as<proto::Ok>(request(fd.get(), proto::Create{spec}, 1)) != nullptr);
    auto dup = request(fd.get(), proto::Create{spec}, 2);
    CHECK(error_code(dup) == Errc::limit_reached);
    spec.name = "scratch2";
    spec.slot_size = std::uint64_t{1} << 30;
    CHECK(error_code(request(fd.get(), proto::Create{spec}, 3)) == Errc::limit_reached);
    auto r = open_endpoint(fd.get(), "scratch", Role::publisher, 4);
    CHECK(body_as<proto::OpenReply>(r) != nullptr);
}

TEST_CASE("reload on SIGHUP adds a channel, and a bad file keeps the running configuration") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "reloader");

    write_file(d.config_path(), kTwoChannels + R"(
  - name: extra
    kind: queue
)");
    d.send_signal(SIGHUP);
    REQUIRE(d.wait_for_notification("RELOADING=1", generous_deadline()));
    REQUIRE(d.wait_for_notification("READY=1", generous_deadline()));
    auto r = open_endpoint(fd.get(), "extra", Role::subscriber);
    CHECK(body_as<proto::OpenReply>(r) != nullptr);

    write_file(d.config_path(), "channels:\n  - name: broken\n    kind: nope\n");
    auto reload = request(fd.get(), proto::Reload{});
    CHECK(error_code(reload) == Errc::invalid_argument);
    CHECK_THAT(error_message(reload), Catch::Contains(":3:11: error: unknown channel kind"));
    auto still = open_endpoint(fd.get(), "jobs", Role::subscriber);
    CHECK(body_as<proto::OpenReply>(still) != nullptr);
}

TEST_CASE("reload refuses a geometry change of a channel in use and keeps it running") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "holder");
    auto held = open_endpoint(fd.get(), "jobs", Role::subscriber);
    REQUIRE(body_as<proto::OpenReply>(held) != nullptr);
    TestChannel wider = without_acl(jobs_channel());
    wider.slot_size = 128;
    write_file(d.config_path(), channels_yaml({root_publishes(telemetry_channel()), wider}));
    auto reload = request(fd.get(), proto::Reload{});
    const auto* ok = body_as<proto::Ok>(reload);
    REQUIRE(ok != nullptr);
    CHECK_THAT(ok->message, Catch::Contains("'jobs' not changed (slot_size 64 -> 128)"));
    auto info = request(fd.get(), proto::ChannelInfoRequest{"jobs"});
    REQUIRE(body_as<proto::ChannelDetail>(info) != nullptr);
    CHECK(body_as<proto::ChannelDetail>(info)->summary.info.slot_size == 64);
}

TEST_CASE("a socket passed by the service manager (LISTEN_FDS) is used instead of binding") {
    TempDir dir;
    const auto path = dir.path() / "activated.sock";
    UniqueFd listener{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener.get(), 16) == 0);

    DaemonProcess d{kTwoChannels};
    d.with_args({"--socket", path.native()}).with_listen_fd(listener.get());
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(path, "activated");
    REQUIRE(fd);
    CHECK(body_as<proto::Pong>(request(fd.get(), proto::Ping{5})) != nullptr);
    auto e = d.stop();
    REQUIRE(e);
    CHECK(e->code == 0);
    // The socket belongs to the service manager: the daemon leaves it in place.
    CHECK(std::filesystem::exists(path));
}

TEST_CASE("WATCHDOG=1 arrives when the service manager asks for a watchdog") {
    DaemonProcess d{kTwoChannels};
    d.with_env({"WATCHDOG_USEC=200000"});
    REQUIRE(d.start());
    CHECK(d.wait_for_notification("WATCHDOG=1", generous_deadline()));
}

TEST_CASE("a stale socket file is replaced, a live daemon's socket is not taken") {
    DaemonProcess first{kTwoChannels};
    REQUIRE(first.start());
    std::string err;
    const Exit second = run_shmbusd({"--config", first.config_path().native(), "--socket",
                                     first.socket_path().native(), "--state-dir",
                                     (first.dir() / "state2").native()},
                                    &err);
    CHECK(second.code != 0);
    CHECK_THAT(err, Catch::Contains("another daemon is listening"));
    UniqueFd still = connect_and_greet(first.socket_path(), "still-there");
    CHECK(still);

    // After kill -9 the file stays behind; the next daemon replaces it.
    REQUIRE(first.kill_hard());
    CHECK(std::filesystem::exists(first.socket_path()));
    DaemonProcess next{kTwoChannels};
    next.with_args({"--socket", first.socket_path().native()}).without_own_socket();
    REQUIRE(next.start());
    CHECK(connect_and_greet(first.socket_path(), "after-restart"));
}

TEST_CASE("under systemd, channels survive a daemon restart through the descriptor store") {
    DaemonProcess first{kTwoChannels};
    REQUIRE(first.start());
    UniqueFd fd = connect_and_greet(first.socket_path(), "survivor");
    auto pr = open_endpoint(fd.get(), "telemetry", Role::publisher, 1);
    auto sr = open_endpoint(fd.get(), "telemetry", Role::subscriber, 2);
    REQUIRE(body_as<proto::OpenReply>(pr) != nullptr);
    REQUIRE(body_as<proto::OpenReply>(sr) != nullptr);
    const std::uint64_t creation_id = body_as<proto::OpenReply>(pr)->info.creation_id;
    const std::uint32_t sub_index = body_as<proto::OpenReply>(sr)->endpoint_index;
    // Keep a copy of the subscriber's descriptors to offer back, as libshmbus does.
    ChannelFiles sub_files = files_of(*sr);
    auto offered = sub_files.duplicate_for(Role::subscriber);
    REQUIRE(offered);
    EndpointOptions po;
    po.endpoint_index = static_cast<std::int32_t>(body_as<proto::OpenReply>(pr)->endpoint_index);
    auto pub = Publisher::attach(files_of(*pr), po);
    EndpointOptions so;
    so.endpoint_index = static_cast<std::int32_t>(sub_index);
    auto sub = Subscriber::attach(std::move(sub_files), so);
    REQUIRE(pub);
    REQUIRE(sub);

    auto stored = first.stored_fds();
    REQUIRE(stored.size() == 4); // two channels, two regions each
    REQUIRE(first.kill_hard());
    fd.reset();

    std::vector<std::pair<int, std::string>> passed;
    for (const auto& [name, sfd] : stored) {
        passed.emplace_back(sfd.get(), name);
    }
    DaemonProcess second{kTwoChannels};
    second.with_passed_fds(passed).with_stderr_file();
    REQUIRE(second.start());

    // Messages flowed all along; the new daemon serves the very same segments.
    const std::array<std::byte, 8> msg{};
    REQUIRE(pub->send(msg, 10s));
    std::array<std::byte, 256> buf{};
    REQUIRE(sub->receive_copy(buf, 10s));
    UniqueFd again = connect_and_greet(second.socket_path(), "survivor-again");
    auto info = request(again.get(), proto::ChannelInfoRequest{"telemetry"});
    const auto* detail = body_as<proto::ChannelDetail>(info);
    REQUIRE(detail != nullptr);
    CHECK(detail->summary.info.creation_id == creation_id);
    CHECK(detail->summary.stats.subscribers == 1);
    // A new subscriber does not get the index the surviving one still holds.
    auto newcomer = open_endpoint(again.get(), "telemetry", Role::subscriber, 3);
    REQUIRE(body_as<proto::OpenReply>(newcomer) != nullptr);
    CHECK(body_as<proto::OpenReply>(newcomer)->endpoint_index != sub_index);

    SECTION("offering the segments back re-associates the endpoint") {
        const int offer_fds[2] = {offered->control.get(), offered->payload.get()};
        REQUIRE(
            proto::send_message(again.get(),
                                proto::Message{4, proto::ReclaimOffer{"telemetry", creation_id,
                                                                      Role::subscriber, sub_index}},
                                offer_fds));
        auto reply = proto::receive_message(again.get(), generous_deadline());
        CHECK(body_as<proto::Ok>(reply) != nullptr);
    }
    SECTION("an offer of other files is refused") {
        auto other = create_channel(
            ChannelSpec{"impostor", ChannelKind::queue, 64, 8, Overflow::block, 1, 1});
        REQUIRE(other);
        const int offer_fds[2] = {other->control.get(), other->payload.get()};
        REQUIRE(
            proto::send_message(again.get(),
                                proto::Message{5, proto::ReclaimOffer{"telemetry", creation_id,
                                                                      Role::subscriber, sub_index}},
                                offer_fds));
        auto reply = proto::receive_message(again.get(), generous_deadline());
        CHECK(error_code(reply) == Errc::permission_denied);
    }
    SECTION("endpoints nobody claims are reclaimed when the grace period ends") {
        // No state file says they exist: the segment's own endpoint table does.
        const auto deadline = generous_deadline();
        ChannelStats stats;
        do {
            auto info = request(again.get(), proto::ChannelInfoRequest{"telemetry"}, 7);
            REQUIRE(body_as<proto::ChannelDetail>(info) != nullptr);
            stats = body_as<proto::ChannelDetail>(info)->summary.stats;
            if (stats.publishers == 0 && stats.subscribers == 0) {
                break;
            }
            // Wait for the next status change rather than spinning on requests.
            (void)second.wait_for_notification("STATUS=", deadline_in(500ms));
        } while (std::chrono::steady_clock::now() < deadline);
        CHECK(stats.publishers == 0);
        CHECK(stats.subscribers == 0);
        CHECK_THAT(second.stderr_text(),
                   Catch::Contains("no client claimed it during the grace period"));
    }
}

TEST_CASE("opening and closing endpoints leaves the state file alone") {
    DaemonProcess d{kTwoChannels};
    REQUIRE(d.start());
    UniqueFd fd = connect_and_greet(d.socket_path(), "steady");
    auto st = request(fd.get(), proto::Status{}); // the start-up write is done by now
    REQUIRE(body_as<proto::StatusReply>(st) != nullptr);
    const auto file = d.state_dir() / "shmbusd.state";
    struct stat before {};
    REQUIRE(::stat(file.c_str(), &before) == 0);
    for (std::uint32_t i = 0; i < 4; ++i) {
        auto r = open_endpoint(fd.get(), "telemetry", Role::subscriber, 10 + 2 * i);
        const auto* reply = body_as<proto::OpenReply>(r);
        REQUIRE(reply != nullptr);
        REQUIRE(body_as<proto::Ok>(request(
                    fd.get(), proto::Close{"telemetry", Role::subscriber, reply->endpoint_index},
                    11 + 2 * i)) != nullptr);
    }
    fd.reset();
    UniqueFd other = connect_and_greet(d.socket_path(), "after");
    REQUIRE(body_as<proto::StatusReply>(request(other.get(), proto::Status{})) != nullptr);
    struct stat after {};
    REQUIRE(::stat(file.c_str(), &after) == 0);
    // Written by rename: an unchanged inode means no write.
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
}

TEST_CASE("without systemd, a restarted daemon takes a channel back from a client's offer and "
          "reclaims the endpoints nobody claims") {
    DaemonProcess first{kTwoChannels};
    REQUIRE(first.start());
    UniqueFd fd = connect_and_greet(first.socket_path(), "keeper");
    auto pr = open_endpoint(fd.get(), "telemetry", Role::publisher, 1);
    auto sr = open_endpoint(fd.get(), "telemetry", Role::subscriber, 2);
    REQUIRE(body_as<proto::OpenReply>(pr) != nullptr);
    REQUIRE(body_as<proto::OpenReply>(sr) != nullptr);
    const std::uint64_t creation_id = body_as<proto::OpenReply>(pr)->info.creation_id;
    const std::uint32_t pub_index = body_as<proto::OpenReply>(pr)->endpoint_index;
    ChannelFiles pub_files = files_of(*pr);
    auto offered = pub_files.duplicate_for(Role::publisher);
    REQUIRE(offered);
    EndpointOptions po;
    po.endpoint_index = static_cast<std::int32_t>(pub_index);
    auto pub = Publisher::attach(std::move(pub_files), po);
    EndpointOptions so;
    so.endpoint_index = static_cast<std::int32_t>(body_as<proto::OpenReply>(sr)->endpoint_index);
    auto sub = Subscriber::attach(files_of(*sr), so); // its owner will never come back
    REQUIRE(pub);
    REQUIRE(sub);
    REQUIRE(first.kill_hard());
    fd.reset();

    // The same state directory, no descriptor store: the state file is all it has.
    DaemonProcess second{kTwoChannels};
    second.with_state_dir(first.state_dir());
    REQUIRE(second.start());
    UniqueFd again = connect_and_greet(second.socket_path(), "keeper-again");
    const int offer_fds[2] = {offered->control.get(), offered->payload.get()};
    REQUIRE(proto::send_message(again.get(),
                                proto::Message{3, proto::ReclaimOffer{"telemetry", creation_id,
                                                                      Role::publisher, pub_index}},
                                offer_fds));
    auto reply = proto::receive_message(again.get(), generous_deadline());
    INFO(error_message(reply));
    REQUIRE(body_as<proto::Ok>(reply) != nullptr);

    // New subscribers meet the old publisher on the very same segments.
    auto newcomer = open_endpoint(again.get(), "telemetry", Role::subscriber, 4);
    const auto* nr = body_as<proto::OpenReply>(newcomer);
    REQUIRE(nr != nullptr);
    CHECK(nr->info.creation_id == creation_id);

    // The subscriber nobody claimed is reclaimed when the grace period ends: the daemon's
    // table then shows only the claimed publisher and the newcomer.
    const auto deadline = generous_deadline();
    std::uint32_t attached = 0;
    do {
        auto info = request(again.get(), proto::ChannelInfoRequest{"telemetry"}, 5);
        REQUIRE(body_as<proto::ChannelDetail>(info) != nullptr);
        attached = body_as<proto::ChannelDetail>(info)->summary.stats.subscribers;
        if (attached == 0) {
            break;
        }
        // Wait for the next status change rather than spinning on requests.
        (void)second.wait_for_notification("STATUS=", deadline_in(500ms));
    } while (std::chrono::steady_clock::now() < deadline);
    CHECK(attached == 0);
    const std::array<std::byte, 8> msg{};
    for (int i = 0; i < 20; ++i) {
        REQUIRE(pub->send(msg, 30s)); // the dead subscriber no longer holds the block policy
    }
}
