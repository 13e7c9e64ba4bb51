// TLS under the bridge frames, between two real shmbusd processes over TCP loopback: a bridge
// over TLS (with and without the shared secret) moves a channel; a certificate from another
// CA, an expired one, one that does not carry the configured peer_subject, and a plaintext
// peer against a TLS listener (and the other way round) are each refused, with a reason in
// the log of both ends, and move nothing, and the listening end then takes a good peer as if
// nothing had happened; `require: either` admits a plaintext peer that knows the secret and
// a TLS peer without one; credentials that do not fit stop the bridge with the file named.
// The CA and certificates are made by each test (TestPki).
#include "bridge_test.hpp"
#include "daemon_process.hpp"
#include "log_lines.hpp"
#include "test_pki.hpp"
#include "test_support.hpp"

#include "gateway/bridge_runner.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace shmbus;
using namespace shmbus::gateway;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "robot and ground share this";

/// Two daemons, a CA, and the certificates of a robot and a ground station.
struct TlsFixture {
    TlsFixture() {
        robot.start();
        ground.start();
    }
    DaemonProcess robot{channels_yaml({bridged("telemetry")})};
    DaemonProcess ground{channels_yaml({bridged("robot1/telemetry")})};
    TempDir dir;
    TestPki pki{dir.path(), "fleet", "fleet CA"};
    TestPki::Issued robot_cert = pki.issue("robot1", "robot1");
    TestPki::Issued ground_cert = pki.issue("ground", "ground.example");
    LogLines robot_log;
    LogLines ground_log;
};

/// The ground's end: listens, imports robot1/*, TLS (expecting the robot's name) and the secret.
BridgeConfig ground_end(const TlsFixture& f) {
    BridgeConfig c;
    c.name = "from-robot";
    c.listen = true;
    c.address = parse_link("tcp://127.0.0.1:0").value();
    c.secret = kSecret;
    c.tls = f.pki.credentials(f.ground_cert, "robot1");
    c.imports = {{"robot1/*", "", LinkDownPolicy::drop}};
    return c;
}

/// The robot's end: connects to `port`, exports telemetry, TLS (expecting the ground's name)
/// and the secret.
BridgeConfig robot_end(const TlsFixture& f, std::uint16_t port) {
    BridgeConfig c;
    c.name = "to-ground";
    c.listen = false;
    c.address = parse_link("tcp://127.0.0.1:" + std::to_string(port)).value();
    c.secret = kSecret;
    c.tls = f.pki.credentials(f.robot_cert, "ground.example");
    c.exports = {{"telemetry", "robot1/telemetry", LinkDownPolicy::drop}};
    c.backoff_first = 50ms;
    c.backoff_cap = 200ms;
    return c;
}

std::unique_ptr<BridgeRunner> start_ground(TlsFixture& f, BridgeConfig config) {
    auto r = std::make_unique<BridgeRunner>(std::move(config), options_for(f.ground), "ground",
                                            0x2002, f.ground_log.sink());
    r->start();
    REQUIRE(wait_until([&] { return r->status().listening_port != 0; }));
    return r;
}

std::unique_ptr<BridgeRunner> start_robot(TlsFixture& f, BridgeConfig config) {
    auto r = std::make_unique<BridgeRunner>(std::move(config), options_for(f.robot), "robot1",
                                            0x1001, f.robot_log.sink());
    r->start();
    return r;
}

/// Waits until `log` has a line with `needle`; fails showing both ends' logs if it never does.
void require_line(TlsFixture& f, LogLines& log, const std::string& needle) {
    if (!log.wait_for(needle)) {
        FAIL("no line with: " << needle << "\nrobot:\n"
                              << f.robot_log.all() << "ground:\n"
                              << f.ground_log.all());
    }
}

/// Waits until `robot` streams; fails showing both ends' logs if it never does.
void require_exporting(TlsFixture& f, const BridgeRunner& robot) {
    if (!wait_until([&] { return exporting(robot); })) {
        FAIL("the robot never streamed\nrobot:\n"
             << f.robot_log.all() << "ground:\n"
             << f.ground_log.all());
    }
}

/// Waits until the ground has refused the robot with `ground_says` and the robot has logged
/// `robot_says` about it; then checks that nothing was ever connected, and that the ground's
/// bridge takes a well-configured robot and moves its channel.
void check_refused(TlsFixture& f, BridgeRunner& ground, std::unique_ptr<BridgeRunner> robot,
                   const std::string& ground_says, const std::string& robot_says) {
    require_line(f, f.ground_log, "bridge 'from-robot': peer 127.0.0.1:");
    require_line(f, f.ground_log, ground_says);
    require_line(f, f.robot_log, robot_says);
    CHECK_THAT(robot->status().last_error + " / " + ground.status().last_error,
               Catch::Contains(robot_says) || Catch::Contains(ground_says));
    robot->stop();
    CHECK_FALSE(f.robot_log.contains("connected:"));
    CHECK_FALSE(f.ground_log.contains("connected:"));
    CHECK(robot->status().session.streams.empty());
    CHECK(ground.status().session.streams.empty());

    auto good = start_robot(f, robot_end(f, ground.status().listening_port));
    require_exporting(f, *good);
    check_flow(f.robot, f.ground, 50);
}

} // namespace

TEST_CASE("a bridge over TLS with a shared secret moves a channel and names the TLS session") {
    TlsFixture f;
    auto ground = start_ground(f, ground_end(f));
    auto robot = start_robot(f, robot_end(f, ground->status().listening_port));
    require_exporting(f, *robot);
    check_flow(f.robot, f.ground, 2000);
    CHECK(f.robot_log.contains("connected: 127.0.0.1:"));
    CHECK(f.robot_log.contains("(ground) over TLSv1.3"));
    CHECK(f.robot_log.contains("peer CN=ground.example,O=shmbus tests"));
    CHECK(f.ground_log.contains("peer CN=robot1,O=shmbus tests"));
    CHECK(robot->status().peer_node == "ground");
}

TEST_CASE("a bridge over TLS alone, without a secret, moves a channel") {
    TlsFixture f;
    auto g = ground_end(f);
    g.secret.reset();
    auto ground = start_ground(f, g);
    auto r = robot_end(f, ground->status().listening_port);
    r.secret.reset();
    auto robot = start_robot(f, r);
    require_exporting(f, *robot);
    check_flow(f.robot, f.ground, 500);
}

TEST_CASE("a peer whose certificate another CA issued is refused on both ends") {
    TlsFixture f;
    TestPki rogue{f.dir.path(), "rogue", "rogue CA"};
    const auto forged = rogue.issue("robot1-forged", "robot1");
    auto ground = start_ground(f, ground_end(f));
    auto r = robot_end(f, ground->status().listening_port);
    r.tls->cert_pem = rogue.credentials(forged).cert_pem;
    r.tls->key_pem = rogue.credentials(forged).key_pem; // still trusts the fleet CA itself
    check_refused(f, *ground, start_robot(f, r),
                  "the peer's certificate (CN=robot1,O=shmbus tests) was refused: unable to get "
                  "local issuer certificate (it was not issued by the CA of this bridge's tls.ca)",
                  "the peer refused this end's certificate: TLS alert 'unknown CA'");
}

TEST_CASE("a peer with an expired certificate is refused on both ends") {
    TlsFixture f;
    const auto expired = f.pki.issue("ground-expired", "ground.example", std::nullopt, -48h, -1h);
    auto g = ground_end(f);
    g.tls = f.pki.credentials(expired, "robot1");
    auto ground = start_ground(f, g);
    auto robot = start_robot(f, robot_end(f, ground->status().listening_port));
    require_line(f, f.robot_log,
                 "the peer's certificate (CN=ground.example,O=shmbus tests) was refused: "
                 "certificate has expired (on ");
    require_line(f, f.ground_log,
                 "the peer refused this end's certificate: TLS alert 'certificate "
                 "expired'");
    robot->stop();
    ground->stop();
    CHECK_FALSE(f.robot_log.contains("connected:"));
    CHECK_FALSE(f.ground_log.contains("connected:"));
    // The same listener with a valid certificate takes the same robot.
    auto renewed = start_ground(f, ground_end(f));
    auto again = start_robot(f, robot_end(f, renewed->status().listening_port));
    require_exporting(f, *again);
    check_flow(f.robot, f.ground, 50);
}

TEST_CASE("a peer whose certificate does not carry the configured peer_subject is refused") {
    TlsFixture f;
    const auto other = f.pki.issue("robot2", "robot2", std::vector<std::string>{"robot2.example"});
    auto ground = start_ground(f, ground_end(f));
    auto r = robot_end(f, ground->status().listening_port);
    r.tls = f.pki.credentials(other, "ground.example");
    check_refused(f, *ground, start_robot(f, r),
                  "the peer's certificate (CN=robot2,O=shmbus tests) was refused: it does not "
                  "name 'robot1', this bridge's tls.peer_subject (its other names: "
                  "DNS:robot2.example)",
                  "the peer refused this end's certificate: TLS alert 'bad certificate'");
}

TEST_CASE("peer_subject matches a DNS alternative name, or the whole subject") {
    TlsFixture f;
    // The ground's common name is not the name the robot expects; its DNS name is.
    const auto dns_named =
        f.pki.issue("ground-dns", "ground station", std::vector<std::string>{"ground.example"});
    auto g = ground_end(f);
    g.tls = f.pki.credentials(dns_named, "CN=robot1,O=shmbus tests");
    auto ground = start_ground(f, g);
    auto robot = start_robot(f, robot_end(f, ground->status().listening_port));
    require_exporting(f, *robot);
    check_flow(f.robot, f.ground, 50);
}

TEST_CASE("a plaintext peer is refused by a listener that requires TLS, and told why") {
    TlsFixture f;
    auto ground = start_ground(f, ground_end(f));
    auto r = robot_end(f, ground->status().listening_port);
    r.tls.reset(); // the secret alone
    check_refused(f, *ground, start_robot(f, r),
                  "TLS is required (require: both), and the peer spoke plaintext",
                  "the peer refused the link: bridge 'from-robot' requires TLS (require: both), "
                  "and this end spoke plaintext: give this end's bridge a 'tls' section");
}

TEST_CASE("a TLS peer against a plaintext listener is refused on both ends") {
    TlsFixture f;
    auto g = ground_end(f);
    g.tls.reset();
    auto ground = start_ground(f, g);
    auto robot = start_robot(f, robot_end(f, ground->status().listening_port));
    require_line(f, f.ground_log,
                 "the peer opens TLS: its bridge has a 'tls' section, and this one has not");
    require_line(f, f.robot_log, "the peer does not speak TLS");
    robot->stop();
    CHECK_FALSE(f.robot_log.contains("connected:"));
}

TEST_CASE("require: either admits a plaintext peer with the secret and a TLS peer without") {
    TlsFixture f;
    auto g = ground_end(f);
    g.require = PeerAuth::either;
    auto ground = start_ground(f, g);
    // One robot after the other: the plaintext one with the secret, the TLS one without.
    for (const bool over_tls : {false, true}) {
        auto r = robot_end(f, ground->status().listening_port);
        if (over_tls) {
            r.secret.reset();
        } else {
            r.tls.reset();
        }
        auto robot = start_robot(f, r);
        require_exporting(f, *robot);
        check_flow(f.robot, f.ground, 50);
        CHECK(f.robot_log.contains("over TLSv1.3") == over_tls);
    }
}

TEST_CASE("a bridge refuses to start with TLS files that do not fit, naming the file") {
    TlsFixture f;
    auto g = ground_end(f);
    g.tls->key_pem = f.pki.credentials(f.robot_cert).key_pem; // the robot's key
    BridgeRunner ground{g, options_for(f.ground), "ground", 0x2002, f.ground_log.sink()};
    ground.start();
    REQUIRE(wait_until([&] { return !ground.status().last_error.empty(); }));
    CHECK(ground.status().state == BridgeState::stopped);
    CHECK_THAT(ground.status().last_error,
               Catch::Contains("tls: key " + f.ground_cert.key.native() +
                               " does not match certificate " + f.ground_cert.cert.native()));
}
