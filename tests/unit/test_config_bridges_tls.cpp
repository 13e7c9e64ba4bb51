// Tests of a bridge's `tls:` and `require:` keys: what they become, every refusal at its
// file:line:column (TLS on a link that is not tcp, a missing file, a requirement naming what
// the bridge lacks), load_config() reading and checking the files with the gateway's own TLS
// context (certificates made at run time by TestPki), and a reload restarting a bridge whose
// certificate was renewed — all without a daemon.
#include "config.hpp"
#include "config_test.hpp"
#include "reload_plan.hpp"
#include "test_pki.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace shmbus::daemon;
using namespace shmbus::gateway;
using shmbus::test::config_errors;
using shmbus::test::config_of;
using shmbus::test::ScratchDir;

namespace {

std::string bridge_yaml(const std::string& cert, const std::string& key, const std::string& ca) {
    return "bridges:\n"
           "  - name: ground\n"
           "    connect: tcp://127.0.0.1:7411\n"
           "    tls:\n"
           "      cert: " +
           cert + "\n      key: " + key + "\n      ca: " + ca +
           "\n"
           "      peer_subject: ground.example\n"
           "    export: [telemetry]\n";
}

} // namespace

TEST_CASE("a tcp bridge with tls parses into the gateway's credentials and requirement") {
    const Config config = config_of(R"(bridges:
  - name: ground
    connect: tcp://ground.example:7411
    tls:
      cert: /etc/shmbusd/tls/robot.crt
      key: /etc/shmbusd/tls/robot.key
      ca: /etc/shmbusd/tls/fleet-ca.crt
      peer_subject: ground.example
    secret_file: /etc/shmbusd/bridge-ground.key
    require: either
    export: [telemetry]
  - name: tls-only
    listen: tcp://0.0.0.0:7412
    tls: {cert: /c, key: /k, ca: /a}
    import: [x]
)");
    const auto& b = config.bridges;
    REQUIRE(b.size() == 2);
    REQUIRE(b[0].tls);
    CHECK(b[0].tls->cert_file == "/etc/shmbusd/tls/robot.crt");
    CHECK(b[0].tls->key_file == "/etc/shmbusd/tls/robot.key");
    CHECK(b[0].tls->ca_file == "/etc/shmbusd/tls/fleet-ca.crt");
    CHECK(b[0].tls->peer_subject == std::string{"ground.example"});
    CHECK(b[0].tls->cert_pem.empty()); // parsing reads no file
    CHECK(b[0].require == PeerAuth::either);
    REQUIRE(b[1].tls);
    CHECK_FALSE(b[1].tls->peer_subject);
    CHECK_FALSE(b[1].require);
    // The requirement a bridge gets when it names none: all it has.
    CHECK(default_peer_auth(true, true) == PeerAuth::both);
    CHECK(default_peer_auth(true, false) == PeerAuth::tls);
    CHECK(default_peer_auth(false, true) == PeerAuth::secret);
}

TEST_CASE("every mistake in a bridge's tls and require is reported at its place") {
    const auto e = config_errors(R"(bridges:
  - name: fifo-tls
    connect: fifo:/a,/b
    tls: {cert: /c, key: /k, ca: /a}
    export: [x]
  - name: half
    connect: tcp://h:1
    tls: {cert: /c, ca: relative.crt, peer_subject: ""}
    export: [x]
  - name: no-secret
    connect: tcp://h:2
    tls: {cert: /c, key: /k, ca: /a}
    require: both
    export: [x]
  - name: misspelt
    connect: tcp://h:3
    secret_file: /s
    require: tsl
    export: [x]
  - name: empty
    connect: tcp://h:4
    tls:
    export: [x]
  - name: exec-either
    connect: exec:ssh ground shmbusctl bridge-stdio
    require: either
    export: [x]
)");
    const std::vector<std::string> expected{
        "shmbusd.yaml:4:10: error: 'tls' applies to tcp links only: an exec: link is secured by "
        "its command (such as ssh), a fifo: pair by its files' modes",
        "shmbusd.yaml:8:25: error: 'ca' must be an absolute path, got 'relative.crt'",
        "shmbusd.yaml:8:53: error: 'peer_subject' must be a name (a common name, a DNS name or "
        "an address, or a whole subject such as CN=ground,O=example), not ''",
        "shmbusd.yaml:13:14: error: require: both needs 'tls' and 'secret_file'; this bridge has "
        "no 'secret_file'",
        "shmbusd.yaml:18:14: error: unknown requirement 'tsl' (did you mean 'tls'?)",
        "shmbusd.yaml:22:5: error: 'tls' needs 'cert', 'key' and 'ca' (this end's certificate, "
        "its key, and the CA the peer's certificate must chain to)",
        "shmbusd.yaml:26:14: error: require: either needs 'tls' and 'secret_file' (a peer may "
        "pass either); this bridge has no 'tls' and 'secret_file'",
    };
    CHECK(e == expected);
}

TEST_CASE("a tls section without its key names what is missing") {
    const auto e = config_errors(R"(bridges:
  - name: half
    connect: tcp://h:1
    tls: {cert: /c, ca: /a}
    export: [x]
)");
    REQUIRE(e.size() == 1);
    CHECK(e[0] == "shmbusd.yaml:4:10: error: 'tls' needs 'cert', 'key' and 'ca'; missing 'key'");
}

TEST_CASE("load_config reads the tls files and checks them with the gateway's TLS context") {
    ScratchDir dir;
    shmbus::test::TestPki pki{dir.path, "fleet", "fleet CA"};
    const auto robot = pki.issue("robot1", "robot1");
    const auto other = pki.issue("other", "other");
    const auto yaml = dir.path / "shmbusd.yaml";
    const auto write_yaml = [&](const std::string& text) {
        std::ofstream out(yaml);
        out << text;
    };
    const ConfigPath path{yaml, true};

    write_yaml(bridge_yaml(robot.cert.native(), robot.key.native(), pki.ca().native()));
    ParseOutcome good = load_config(path);
    for (const auto& e : good.errors) {
        UNSCOPED_INFO(to_string(e));
    }
    REQUIRE(good.ok());
    const auto& tls = *good.config->bridges[0].tls;
    CHECK_THAT(tls.cert_pem, Catch::StartsWith("-----BEGIN CERTIFICATE-----"));
    CHECK_THAT(tls.key_pem, Catch::StartsWith("-----BEGIN PRIVATE KEY-----"));
    CHECK_THAT(tls.ca_pem, Catch::StartsWith("-----BEGIN CERTIFICATE-----"));
    CHECK(tls.peer_subject == std::string{"ground.example"});

    // A key others may read is refused before it is read, at the `key:` value.
    REQUIRE(::chmod(robot.key.c_str(), 0644) == 0);
    ParseOutcome open = load_config(path);
    REQUIRE(open.errors.size() == 1);
    CHECK(to_string(open.errors[0]) ==
          yaml.native() + ":6:12: error: bridge 'ground': tls.key '" + robot.key.native() +
              "': group or others may access it (mode 0644); chmod 600 it, and give it to the "
              "daemon's user");
    REQUIRE(::chmod(robot.key.c_str(), 0600) == 0);

    // Another certificate's key, at the `key:` value, naming both files.
    write_yaml(bridge_yaml(robot.cert.native(), other.key.native(), pki.ca().native()));
    ParseOutcome mismatch = load_config(path);
    REQUIRE(mismatch.errors.size() == 1);
    CHECK(to_string(mismatch.errors[0]) ==
          yaml.native() + ":6:12: error: bridge 'ground': tls: key " + other.key.native() +
              " does not match certificate " + robot.cert.native());

    // Something that is no certificate, at the `ca:` value.
    write_yaml(bridge_yaml(robot.cert.native(), robot.key.native(), yaml.native()));
    ParseOutcome not_pem = load_config(path);
    REQUIRE(not_pem.errors.size() == 1);
    CHECK(to_string(not_pem.errors[0]) == yaml.native() +
                                              ":7:11: error: bridge 'ground': tls: ca " +
                                              yaml.native() + ": no PEM certificate in it");

    // A missing file, at its own value.
    write_yaml(
        bridge_yaml((dir.path / "none.crt").native(), robot.key.native(), pki.ca().native()));
    ParseOutcome missing = load_config(path);
    REQUIRE(missing.errors.size() == 1);
    CHECK_THAT(to_string(missing.errors[0]),
               Catch::StartsWith(yaml.native() + ":5:13: error: bridge 'ground': tls.cert '") &&
                   Catch::Contains("cannot open"));
}

TEST_CASE("a reload restarts a bridge whose certificate or requirement changed") {
    const Config config = config_of(R"(bridges:
  - name: ground
    connect: tcp://ground.example:7411
    tls: {cert: /c, key: /k, ca: /a}
    secret_file: /s
    export: [x]
)");
    const ConfiguredBridge before = config.bridges.at(0);
    ConfiguredBridge renewed = before;
    renewed.tls->cert_pem = "a renewed certificate";
    CHECK(describe(plan_bridges({before}, {renewed}).at(0)) == "bridge 'ground' restarted (tls)");
    ConfiguredBridge relaxed = before;
    relaxed.require = PeerAuth::either;
    CHECK(describe(plan_bridges({before}, {relaxed}).at(0)) ==
          "bridge 'ground' restarted (require)");
    CHECK(plan_bridges({before}, {before}).empty());
}
