// Tests of client-lib/src/client against a scripted daemon: a listening socket in a private
// temporary directory, played by the test itself with the same seqpacket helpers the real
// shmbusd uses. This pins what the Client sends and how it reacts to each kind of answer
// (errors, silence, stale replies, a wrong version, a restart) without depending on the
// daemon's implementation; tests/integration/test_client.cpp runs it against the real one.
//
// The Client blocks in its requests, so each request runs on a std::async thread and the
// test thread plays the daemon; only the test thread uses Catch2 assertions. Every wait has
// a generous deadline and ends on the event itself (a datagram, a connection, a future).
#include "log_lines.hpp"
#include "protocol/seqpacket.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace shmbus::proto {
namespace {

constexpr auto kGenerous = 60s;

/// A private directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern =
            std::string{base != nullptr && *base == '/' ? base : "/tmp"} + "/shmbus-client-XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

/// One accepted control connection, seen from the daemon's side.
struct Connection {
    UniqueFd fd;

    /// The next datagram; fails the test if none arrives in time.
    Received next() {
        auto r = receive_message(fd.get(), std::chrono::steady_clock::now() + kGenerous);
        INFO((r ? std::string{} : r.error().message()));
        REQUIRE(r);
        return std::move(*r);
    }

    /// The next datagram, which must be a T. Stores its request id in `id`.
    template <typename T>
    T expect(std::uint32_t& id, std::vector<UniqueFd>* fds = nullptr) {
        Received got = next();
        INFO("got " << msg_type_name(type_of(got.message.body)));
        REQUIRE(std::holds_alternative<T>(got.message.body));
        id = got.message.request_id;
        if (fds != nullptr) {
            *fds = std::move(got.fds);
        }
        return std::get<T>(std::move(got.message.body));
    }

    void reply(std::uint32_t id, Body body, std::span<const int> fds = {}) {
        auto sent = send_message(fd.get(), Message{id, std::move(body)}, fds);
        INFO((sent ? std::string{} : sent.error().message()));
        REQUIRE(sent);
    }

    /// Answers the Client's hello as shmbusd would.
    Hello greet(std::uint64_t client_id = 7) {
        std::uint32_t id = 0;
        Hello hello = expect<Hello>(id);
        reply(id, HelloReply{kProtocolMajor, kProtocolMinor, kLayoutVersion,
                             static_cast<std::uint32_t>(::getpid()), client_id, "fake"});
        return hello;
    }

    /// True once the Client has closed its end and every datagram it sent has been read.
    bool closed_by_client() {
        auto r = receive_message(fd.get(), std::chrono::steady_clock::now() + kGenerous);
        return !r && r.code() == Errc::closed;
    }
};

/// The daemon's listening socket at `dir`/d.sock.
class ScriptedDaemon {
public:
    explicit ScriptedDaemon(const TempDir& dir) : path_{(dir.path() / "d.sock").string()} {
        start();
    }

    [[nodiscard]] const std::string& path() const { return path_; }

    void start() {
        listener_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        REQUIRE(listener_);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(path_.size() < sizeof(addr.sun_path));
        path_.copy(addr.sun_path, path_.size());
        ::unlink(path_.c_str());
        REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
        REQUIRE(::listen(listener_.get(), 8) == 0);
    }

    /// As a crashed daemon: the socket file stays, nobody listens (ECONNREFUSED).
    void crash() { listener_.reset(); }

    Connection accept() {
        pollfd p{listener_.get(), POLLIN, 0};
        REQUIRE(::poll(&p, 1, static_cast<int>(kGenerous / 1ms)) == 1);
        UniqueFd c{::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        REQUIRE(c);
        REQUIRE(size_socket_buffers(c.get()));
        return Connection{std::move(c)};
    }

private:
    std::string path_;
    UniqueFd listener_;
};

ClientOptions options_for(const ScriptedDaemon& d, std::chrono::milliseconds timeout = 30s) {
    ClientOptions o;
    o.socket_path = d.path();
    o.request_timeout = timeout;
    return o;
}

/// A Client connected to `d`, the hello answered by `conn` (returned through `conn`).
Client connected(ScriptedDaemon& d, Connection& conn, std::chrono::milliseconds timeout = 30s,
                 std::uint64_t client_id = 7, std::function<void(std::string_view)> log = {}) {
    ClientOptions options = options_for(d, timeout);
    options.log = std::move(log);
    auto pending =
        std::async(std::launch::async, [o = std::move(options)] { return Client::connect(o); });
    conn = d.accept();
    conn.greet(client_id);
    auto client = pending.get();
    INFO((client ? std::string{} : client.error().message()));
    REQUIRE(client);
    return std::move(*client);
}

template <typename F>
auto in_background(F f) {
    return std::async(std::launch::async, std::move(f));
}

template <typename T>
T ready(std::future<T>& f) {
    REQUIRE(f.wait_for(kGenerous) == std::future_status::ready);
    return f.get();
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

ino_t inode_of(int fd) {
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    return st.st_ino;
}

/// A real channel, as the daemon would create it, and the reply that hands it out.
struct Handout {
    ChannelFiles files;
    ChannelInfo info;

    static Handout make(std::uint32_t max_endpoints = 4) {
        auto files = create_channel(
            test::spec("client", ChannelKind::broadcast, 64, 8, max_endpoints, max_endpoints));
        REQUIRE(files);
        auto info = inspect_channel(*files);
        REQUIRE(info);
        return Handout{std::move(*files), std::move(*info)};
    }

    /// Sends OpenReply{info, index} with descriptors for `role`.
    void send(Connection& conn, std::uint32_t id, Role role, std::uint32_t index) const {
        auto copy = files.duplicate_for(role);
        REQUIRE(copy);
        const std::array<int, 2> fds{copy->control.get(), copy->payload.get()};
        conn.reply(id, OpenReply{info, index}, fds);
    }
};

} // namespace

TEST_CASE("connect names the socket path when no daemon listens there") {
    TempDir dir;
    ClientOptions o;
    o.socket_path = (dir.path() / "nobody.sock").string();
    auto c = Client::connect(o);
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::not_found);
    CHECK(c.error().detail == "no shmbusd is listening on " + o.socket_path + " (is it running?)");
}

TEST_CASE("connect to a socket file left by a dead daemon is not_found") {
    TempDir dir;
    ScriptedDaemon d{dir};
    d.crash();
    auto c = Client::connect(options_for(d));
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::not_found);
    CHECK(contains(c.error().detail, d.path()));
}

TEST_CASE("connect to a socket this user may not open is permission_denied") {
    if (::geteuid() == 0) {
        SUCCEED("root bypasses file permissions; nothing to check");
        return;
    }
    TempDir dir;
    ScriptedDaemon d{dir};
    REQUIRE(::chmod(d.path().c_str(), 0) == 0);
    auto c = Client::connect(options_for(d));
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::permission_denied);
}

TEST_CASE("connect says hello with both versions and its name, and learns its client id") {
    TempDir dir;
    ScriptedDaemon d{dir};
    auto o = options_for(d);
    o.client_name = "sensor-reader";
    auto pending = in_background([o] { return Client::connect(o); });
    Connection conn = d.accept();
    const Hello hello = conn.greet(1234);
    auto client = ready(pending);
    REQUIRE(client);
    CHECK(hello.major == kProtocolMajor);
    CHECK(hello.minor == kProtocolMinor);
    CHECK(hello.layout_version == kLayoutVersion);
    CHECK(hello.client_name == "sensor-reader");
    CHECK(client->client_id() == 1234);
    CHECK(client->socket_path() == d.path());
}

TEST_CASE("without a client name the program's name is sent") {
    TempDir dir;
    ScriptedDaemon d{dir};
    auto pending = in_background([o = options_for(d)] { return Client::connect(o); });
    Connection conn = d.accept();
    const Hello hello = conn.greet();
    REQUIRE(ready(pending));
    CHECK(hello.client_name == program_invocation_short_name);
}

TEST_CASE("a daemon of another protocol major is refused naming both versions") {
    TempDir dir;
    ScriptedDaemon d{dir};
    auto pending = in_background([o = options_for(d)] { return Client::connect(o); });
    Connection conn = d.accept();
    std::uint32_t id = 0;
    (void)conn.expect<Hello>(id);
    conn.reply(id, HelloReply{2, 5, kLayoutVersion, 1, 1, "future"});
    auto c = ready(pending);
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::version_mismatch);
    CHECK(c.error().detail == "shmbusd at " + d.path() +
                                  " speaks control protocol 2.5, this library 1." +
                                  std::to_string(proto::kProtocolMinor));
}

TEST_CASE("a daemon whose header is of another major is refused naming both versions") {
    TempDir dir;
    ScriptedDaemon d{dir};
    auto pending = in_background([o = options_for(d)] { return Client::connect(o); });
    Connection conn = d.accept();
    std::uint32_t id = 0;
    (void)conn.expect<Hello>(id);
    auto bytes = encode(Message{id, HelloReply{}});
    REQUIRE(bytes);
    (*bytes)[4] = std::byte{3}; // protocol major 3 in the header
    REQUIRE(::send(conn.fd.get(), bytes->data(), bytes->size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes->size()));
    auto c = ready(pending);
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::version_mismatch);
    CHECK(c.error().detail ==
          "shmbusd at " + d.path() + ": the peer speaks control protocol 3, this side speaks 1");
}

TEST_CASE("a daemon refusing the hello is reported with the daemon's code and words") {
    TempDir dir;
    ScriptedDaemon d{dir};
    auto pending = in_background([o = options_for(d)] { return Client::connect(o); });
    Connection conn = d.accept();
    std::uint32_t id = 0;
    (void)conn.expect<Hello>(id);
    conn.reply(0, ErrorReply{Errc::version_mismatch, "client speaks 1, daemon speaks 2"});
    auto c = ready(pending);
    REQUIRE_FALSE(c);
    CHECK(c.code() == Errc::version_mismatch);
    CHECK(c.error().detail == "shmbusd at " + d.path() + ": client speaks 1, daemon speaks 2");
}

TEST_CASE("an error reply becomes the request's Error with the daemon's code and message") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    // would_block too: only an open or a create asks again (see below).
    const Errc code = GENERATE(Errc::permission_denied, Errc::would_block);
    auto pending = in_background([&] { return client.reload(); });
    std::uint32_t id = 0;
    (void)conn.expect<Reload>(id);
    conn.reply(id, ErrorReply{code, "reload is for admins"});
    auto r = ready(pending);
    REQUIRE_FALSE(r);
    CHECK(r.code() == code);
    CHECK(r.error().detail == "reload is for admins");
}

TEST_CASE("each request gets its typed reply") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    std::uint32_t id = 0;

    auto channels = in_background([&] { return client.list_channels(); });
    (void)conn.expect<ListChannels>(id);
    ChannelSummary s;
    s.info.name = "telemetry";
    s.dynamic = true;
    conn.reply(id, ChannelList{{s}});
    auto list = ready(channels);
    REQUIRE(list);
    REQUIRE(list->size() == 1);
    CHECK((*list)[0].info.name == "telemetry");

    auto detail = in_background([&] { return client.channel_info("telemetry"); });
    CHECK(conn.expect<ChannelInfoRequest>(id).channel == "telemetry");
    ChannelDetail cd;
    cd.summary = s;
    cd.endpoints.push_back(EndpointDetail{Role::subscriber, 3, 7, 1, 2, "r", 4, 5});
    conn.reply(id, cd);
    auto info = ready(detail);
    REQUIRE(info);
    CHECK(info->endpoints.at(0).index == 3);

    auto clients = in_background([&] { return client.list_clients(); });
    (void)conn.expect<ListClients>(id);
    conn.reply(id, ClientList{{ClientSummary{7, 1, 2, 3, "me", 0, 0}}});
    auto cl = ready(clients);
    REQUIRE(cl);
    CHECK(cl->at(0).name == "me");

    auto status = in_background([&] { return client.status(); });
    (void)conn.expect<Status>(id);
    DaemonStatus ds;
    ds.daemon_version = "9.9.9";
    conn.reply(id, ds);
    auto st = ready(status);
    REQUIRE(st);
    CHECK(st->daemon_version == "9.9.9");

    auto create = in_background([&] {
        ChannelSpec spec;
        spec.name = "dyn";
        return client.create_channel(spec);
    });
    CHECK(conn.expect<Create>(id).spec.name == "dyn");
    conn.reply(id, Ok{});
    CHECK(ready(create));

    auto reload = in_background([&] { return client.reload(); });
    (void)conn.expect<Reload>(id);
    conn.reply(id, Ok{"1 channel added"});
    auto rl = ready(reload);
    REQUIRE(rl);
    CHECK(*rl == "1 channel added");

    auto ping = in_background([&] { return client.ping(); });
    const Ping p = conn.expect<Ping>(id);
    conn.reply(id, Pong{p.token});
    auto rtt = ready(ping);
    REQUIRE(rtt);
    CHECK(rtt->count() > 0);
}

TEST_CASE("request ids increase from one request to the next") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    std::uint32_t previous = 0;
    for (int i = 0; i < 3; ++i) {
        auto ping = in_background([&] { return client.ping(); });
        std::uint32_t id = 0;
        const Ping p = conn.expect<Ping>(id);
        CHECK(id > previous);
        previous = id;
        conn.reply(id, Pong{p.token});
        REQUIRE(ready(ping));
    }
}

TEST_CASE("a reply of the wrong type is a protocol error naming both") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    auto ping = in_background([&] { return client.ping(); });
    std::uint32_t id = 0;
    (void)conn.expect<Ping>(id);
    conn.reply(id, Ok{});
    auto r = ready(ping);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(r.error().detail == "shmbusd at " + d.path() + " answered 'ping' with ok");
}

TEST_CASE("a request the daemon leaves unanswered times out naming it") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn, 100ms);
    auto status = in_background([&] { return client.status(); });
    std::uint32_t id = 0;
    (void)conn.expect<Status>(id);
    auto r = ready(status);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::timed_out);
    CHECK(r.error().detail == "shmbusd at " + d.path() + " did not answer 'status' within 100 ms");

    SECTION("and its late reply is not taken for the next request's") {
        conn.reply(id, DaemonStatus{});
        auto ping = in_background([&] { return client.ping(); });
        std::uint32_t ping_id = 0;
        const Ping p = conn.expect<Ping>(ping_id);
        CHECK(ping_id != id);
        conn.reply(ping_id, Pong{p.token});
        CHECK(ready(ping));
    }
}

TEST_CASE("an error with request id 0 answers the current request") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    auto ping = in_background([&] { return client.ping(); });
    std::uint32_t id = 0;
    (void)conn.expect<Ping>(id);
    conn.reply(0, ErrorReply{Errc::protocol_error, "ping: field 'token' is truncated"});
    auto r = ready(ping);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
}

TEST_CASE("open_publisher attaches at the endpoint index the daemon assigned") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    const Handout channel = Handout::make();
    EndpointOptions eo;
    eo.wait = WaitMode::blocking;
    auto pending = in_background([&] { return client.open_publisher(channel.info.name, eo); });
    std::uint32_t id = 0;
    const Open open = conn.expect<Open>(id);
    CHECK(open.channel == channel.info.name);
    CHECK(open.role == Role::publisher);
    CHECK(open.wait_mode == static_cast<std::uint32_t>(WaitMode::blocking));
    channel.send(conn, id, Role::publisher, 2);
    auto pub = ready(pending);
    INFO((pub ? std::string{} : pub.error().message()));
    REQUIRE(pub);
    CHECK(pub->endpoint_index() == 2);
    CHECK(pub->info().creation_id == channel.info.creation_id);

    // It is a working endpoint: a subscriber attached beside it sees its message.
    auto sub = Subscriber::attach(*channel.files.duplicate_for(Role::subscriber));
    REQUIRE(sub);
    const std::byte msg[3]{std::byte{1}, std::byte{2}, std::byte{3}};
    REQUIRE(pub->try_send(msg));
    std::byte buf[8]{};
    auto got = sub->try_receive_copy(buf);
    REQUIRE(got);
    CHECK(got->size == 3);
}

TEST_CASE("open_subscriber attaches through the read-only descriptor it is given") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    const Handout channel = Handout::make();
    auto pending = in_background([&] { return client.open_subscriber(channel.info.name); });
    std::uint32_t id = 0;
    CHECK(conn.expect<Open>(id).role == Role::subscriber);
    channel.send(conn, id, Role::subscriber, 3);
    auto sub = ready(pending);
    INFO((sub ? std::string{} : sub.error().message()));
    REQUIRE(sub);
    CHECK(sub->endpoint_index() == 3);
}

TEST_CASE("open reports the daemon's refusal") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    auto pending = in_background([&] { return client.open_publisher("nope"); });
    std::uint32_t id = 0;
    (void)conn.expect<Open>(id);
    conn.reply(id, ErrorReply{Errc::not_found, "no channel 'nope'"});
    auto r = ready(pending);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::not_found);
    CHECK(r.error().detail == "no channel 'nope'");
}

TEST_CASE("an assigned endpoint the client cannot attach is handed back with close") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    const Handout channel = Handout::make(1);
    auto pending = in_background([&] { return client.open_publisher(channel.info.name); });
    std::uint32_t id = 0;
    (void)conn.expect<Open>(id);
    channel.send(conn, id, Role::publisher, 5); // the table has 1 entry: index 5 is invalid
    auto r = ready(pending);
    REQUIRE_FALSE(r);
    const Close close = conn.expect<Close>(id);
    CHECK(close.channel == channel.info.name);
    CHECK(close.role == Role::publisher);
    CHECK(close.endpoint_index == 5);
}

TEST_CASE("destroying an endpoint sends close with its channel, role and index") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    const Handout channel = Handout::make();
    auto pending = in_background([&] { return client.open_subscriber(channel.info.name); });
    std::uint32_t id = 0;
    (void)conn.expect<Open>(id);
    channel.send(conn, id, Role::subscriber, 1);
    {
        auto sub = ready(pending);
        REQUIRE(sub);
    }
    std::uint32_t close_id = 0;
    const Close close = conn.expect<Close>(close_id);
    CHECK(close_id > id);
    CHECK(close.channel == channel.info.name);
    CHECK(close.role == Role::subscriber);
    CHECK(close.endpoint_index == 1);

    SECTION("and the reply to the close is passed over by the next request") {
        conn.reply(close_id, Ok{});
        auto ping = in_background([&] { return client.ping(); });
        std::uint32_t ping_id = 0;
        const Ping p = conn.expect<Ping>(ping_id);
        conn.reply(ping_id, Pong{p.token});
        CHECK(ready(ping));
    }
}

TEST_CASE("endpoints destroyed on another thread during requests each send one close") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    constexpr std::uint32_t kEndpoints = 8;
    constexpr int kPings = 200;
    const Handout channel = Handout::make(kEndpoints);
    std::vector<Publisher> pubs;
    for (std::uint32_t i = 0; i < kEndpoints; ++i) {
        auto pending = in_background([&] { return client.open_publisher(channel.info.name); });
        std::uint32_t id = 0;
        (void)conn.expect<Open>(id);
        channel.send(conn, id, Role::publisher, i);
        auto pub = ready(pending);
        REQUIRE(pub);
        pubs.push_back(std::move(*pub));
    }

    auto pinger = in_background([&]() -> std::optional<Error> {
        for (int i = 0; i < kPings; ++i) {
            if (auto r = client.ping(); !r) {
                return r.take_error();
            }
        }
        return std::nullopt;
    });
    auto destroyer = in_background([&] {
        while (!pubs.empty()) {
            pubs.pop_back();
        }
    });

    std::vector<int> closed(kEndpoints, 0);
    int pongs = 0;
    std::uint32_t closes = 0;
    while (pongs < kPings || closes < kEndpoints) {
        Received got = conn.next();
        if (const auto* p = std::get_if<Ping>(&got.message.body)) {
            conn.reply(got.message.request_id, Pong{p->token});
            ++pongs;
        } else {
            const auto* c = std::get_if<Close>(&got.message.body);
            REQUIRE(c != nullptr);
            REQUIRE(c->endpoint_index < kEndpoints);
            ++closed[c->endpoint_index];
            ++closes;
            conn.reply(got.message.request_id, Ok{});
        }
    }
    ready(destroyer);
    const std::optional<Error> failure = ready(pinger);
    INFO((failure ? failure->message() : std::string{}));
    CHECK_FALSE(failure);
    CHECK(std::all_of(closed.begin(), closed.end(), [](int n) { return n == 1; }));
}

TEST_CASE("an endpoint that outlives its Client keeps the connection until it closes") {
    // The daemon reclaims what a connection held when it closes: closing it under a live
    // endpoint would let the daemon hand that endpoint's table entry to someone else.
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    const Handout channel = Handout::make();
    std::optional<Publisher> pub;
    {
        Client client = connected(d, conn);
        auto pending = in_background([&] { return client.open_publisher(channel.info.name); });
        std::uint32_t id = 0;
        (void)conn.expect<Open>(id);
        channel.send(conn, id, Role::publisher, 0);
        auto p = ready(pending);
        REQUIRE(p);
        pub.emplace(std::move(*p));
    }
    const std::byte msg[1]{std::byte{9}};
    CHECK(pub->try_send(msg));
    pub.reset();
    std::uint32_t id = 0;
    const Close close = conn.expect<Close>(id); // the connection was still there to say so
    CHECK(close.endpoint_index == 0);
    CHECK(conn.closed_by_client()); // and it closes with the last endpoint
}

TEST_CASE("after a daemon restart a request reconnects, offers back its endpoints, retries") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn, 30s, 7);
    const Handout channel = Handout::make();
    auto pending = in_background([&] { return client.open_publisher(channel.info.name); });
    std::uint32_t id = 0;
    (void)conn.expect<Open>(id);
    channel.send(conn, id, Role::publisher, 2);
    auto pub = ready(pending);
    REQUIRE(pub);

    SECTION("between two requests") {
        conn.fd.reset(); // the daemon dies...
        d.crash();
        d.start(); // ...and a new one listens on the same path
    }
    SECTION("while a request waits for its reply") {
        auto ping = in_background([&] { return client.ping(); });
        (void)conn.expect<Ping>(id);
        conn.fd.reset();
        d.crash();
        d.start();
        Connection again = d.accept();
        again.greet(8);
        std::vector<UniqueFd> fds;
        (void)again.expect<ReclaimOffer>(id, &fds);
        again.reply(id, Ok{});
        const Ping p = again.expect<Ping>(id);
        again.reply(id, Pong{p.token});
        REQUIRE(ready(ping));
        conn = std::move(again);
        conn.fd.reset(); // and once more, for the common part below
        d.crash();
        d.start();
    }

    auto ping = in_background([&] { return client.ping(); });
    Connection again = d.accept();
    again.greet(99);
    std::vector<UniqueFd> fds;
    const ReclaimOffer offer = again.expect<ReclaimOffer>(id, &fds);
    CHECK(offer.channel == channel.info.name);
    CHECK(offer.creation_id == channel.info.creation_id);
    CHECK(offer.role == Role::publisher);
    CHECK(offer.endpoint_index == 2);
    REQUIRE(fds.size() == 2);
    CHECK(inode_of(fds[0].get()) == inode_of(channel.files.control.get()));
    CHECK(inode_of(fds[1].get()) == inode_of(channel.files.payload.get()));
    again.reply(id, Ok{});
    const Ping p = again.expect<Ping>(id);
    again.reply(id, Pong{p.token});
    auto rtt = ready(ping);
    INFO((rtt ? std::string{} : rtt.error().message()));
    REQUIRE(rtt);
    CHECK(client.client_id() == 99);

    // The endpoint never noticed: it still publishes.
    const std::byte msg[1]{std::byte{1}};
    CHECK(pub->try_send(msg));
}

TEST_CASE("a refused offer is logged naming channel, role and why, counted, and not offered "
          "again") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    test::LogLines said;
    Client client = connected(d, conn, 30s, 7, said.sink());
    const Handout channel = Handout::make();
    const std::string& name = channel.info.name;
    std::uint32_t id = 0;
    auto opening_pub = in_background([&] { return client.open_publisher(name); });
    (void)conn.expect<Open>(id);
    channel.send(conn, id, Role::publisher, 2);
    auto pub = ready(opening_pub);
    REQUIRE(pub);
    auto opening_sub = in_background([&] { return client.open_subscriber(name); });
    (void)conn.expect<Open>(id);
    channel.send(conn, id, Role::subscriber, 0);
    auto sub = ready(opening_sub);
    REQUIRE(sub);
    conn.fd.reset();
    d.crash();
    d.start();

    // The request or the background thread, whichever comes first, reconnects and offers.
    auto status = in_background([&] { return client.status(); });
    Connection again = d.accept();
    again.greet(8);
    std::vector<UniqueFd> fds;
    CHECK(again.expect<ReclaimOffer>(id, &fds).role == Role::publisher);
    again.reply(id, Ok{});
    CHECK(again.expect<ReclaimOffer>(id, &fds).role == Role::subscriber);
    again.reply(id, ErrorReply{Errc::not_found,
                               "the daemon has no channel '" + name + "' with creation id 5"});
    (void)again.expect<Status>(id);
    again.reply(id, DaemonStatus{});
    CHECK(ready(status)); // a refusal does not fail the request
    INFO(said.all());
    CHECK(said.wait_for("shmbusd at " + d.path() +
                        " refused to take back the subscriber (endpoint 0) " + "of channel '" +
                        name + "': not_found: the daemon has no channel '" + name +
                        "' with creation id 5"));
    CHECK(said.wait_for("reconnected to shmbusd at " + d.path() +
                        " as client 8: 1 endpoint taken back, 1 refused"));

    // The daemon does not know the refused endpoint: it is not offered again, and its
    // destruction sends no close.
    again.fd.reset();
    d.crash();
    d.start();
    auto ping = in_background([&] { return client.ping(); });
    Connection third = d.accept();
    third.greet(9);
    CHECK(third.expect<ReclaimOffer>(id, &fds).role == Role::publisher);
    third.reply(id, Ok{});
    const Ping p = third.expect<Ping>(id);
    third.reply(id, Pong{p.token});
    CHECK(ready(ping));
    CHECK(said.wait_for("as client 9: 1 endpoint taken back, 0 refused"));
    sub = make_error(Errc::closed); // the subscriber goes first, then the publisher
    pub = make_error(Errc::closed);
    const Close close = third.expect<Close>(id);
    CHECK(close.role == Role::publisher);
    // The Client goes while the daemon's end is still open: closing that end first would
    // start a restore on the background thread that could still be logging to `said` when
    // it is destroyed.
    { const Client gone = std::move(client); }
}

TEST_CASE("an open the daemon answers with would_block is asked again until it succeeds") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    const Handout channel = Handout::make();
    auto pending = in_background([&] { return client.open_subscriber(channel.info.name); });
    std::uint32_t first = 0;
    std::uint32_t id = 0;
    (void)conn.expect<Open>(first);
    conn.reply(first, ErrorReply{Errc::would_block, "channel is being taken back"});
    (void)conn.expect<Open>(id);
    CHECK(id > first);
    conn.reply(id, ErrorReply{Errc::would_block, "channel is being taken back"});
    const Open again = conn.expect<Open>(id);
    CHECK(again.channel == channel.info.name);
    CHECK(again.role == Role::subscriber);
    channel.send(conn, id, Role::subscriber, 0);
    auto sub = ready(pending);
    INFO((sub ? std::string{} : sub.error().message()));
    CHECK(sub);
}

TEST_CASE("an open the daemon keeps answering with would_block times out with its reason") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn, 300ms);
    auto pending = in_background([&] { return client.open_publisher("jobs"); });
    int asked = 0;
    while (pending.wait_for(0s) != std::future_status::ready) {
        auto got = receive_message(conn.fd.get(), std::chrono::steady_clock::now() + 50ms);
        if (!got) {
            continue;
        }
        REQUIRE(std::holds_alternative<Open>(got->message.body));
        ++asked;
        conn.reply(got->message.request_id,
                   ErrorReply{Errc::would_block, "channel 'jobs' is being taken back"});
    }
    auto pub = ready(pending);
    REQUIRE_FALSE(pub);
    CHECK(pub.code() == Errc::timed_out);
    CHECK(contains(pub.error().detail, "shmbusd at " + d.path() +
                                           " still answered 'open' with would_block after 300 ms"
                                           ": channel 'jobs' is being taken back"));
    CHECK(asked >= 2);
}

TEST_CASE("a daemon that does not come back makes the request fail at its deadline") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn, 300ms);
    conn.fd.reset();
    d.crash();
    const auto start = std::chrono::steady_clock::now();
    auto r = client.ping();
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::closed);
    CHECK(contains(r.error().detail, "the connection to shmbusd at " + d.path() +
                                         " was lost and could not be restored within 300 ms"));
    CHECK(contains(r.error().detail, "(is it running?)"));
    CHECK(took >= 250ms);
    CHECK(took < 30s);
}

TEST_CASE("a moved-from Client refuses requests instead of crashing") {
    TempDir dir;
    ScriptedDaemon d{dir};
    Connection conn;
    Client client = connected(d, conn);
    Client other = std::move(client);
    // NOLINTNEXTLINE(bugprone-use-after-move): what a moved-from Client does is under test.
    auto r = client.ping();
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::closed);
    CHECK(client.socket_path().empty());
    CHECK(other.socket_path() == d.path());
}

TEST_CASE("default_socket_path prefers SHMBUS_SOCKET, then the user's runtime directory") {
    TempDir dir;
    struct Restore {
        std::string name;
        std::optional<std::string> value;
        ~Restore() {
            if (value) {
                ::setenv(name.c_str(), value->c_str(), 1);
            } else {
                ::unsetenv(name.c_str());
            }
        }
    };
    auto saved = [](const char* name) {
        const char* v = std::getenv(name);
        return Restore{name, v != nullptr ? std::optional<std::string>{v} : std::nullopt};
    };
    const Restore shmbus_socket = saved("SHMBUS_SOCKET");
    const Restore xdg = saved("XDG_RUNTIME_DIR");

    ::setenv("SHMBUS_SOCKET", "/somewhere/else.sock", 1);
    CHECK(default_socket_path() == "/somewhere/else.sock");

    ::unsetenv("SHMBUS_SOCKET");
    ::setenv("XDG_RUNTIME_DIR", dir.path().c_str(), 1);
    CHECK(default_socket_path() == "/run/shmbusd/shmbusd.sock"); // no user daemon there

    std::filesystem::create_directory(dir.path() / "shmbus");
    std::ofstream{dir.path() / "shmbus" / "shmbusd.sock"} << "";
    CHECK(default_socket_path() == (dir.path() / "shmbus" / "shmbusd.sock").string());
}

} // namespace shmbus::proto
