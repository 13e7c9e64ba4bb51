// Tests of NATS bridges in shmbusd.yaml (`bridges:` entries whose `connect:` names nats:// or
// tls:// servers, docs/nats.md): what a valid one becomes, every refusal pinned at its
// file:line:column, passwords kept out of what is shown, and what a reload plans — all
// without a daemon or a NATS server. The gateway's own checks (nats_rules.hpp) are pinned
// here too, since the configuration is their one caller that reports to a person.
#include "config.hpp"
#include "reload_plan.hpp"

#include "gateway/nats_rules.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace shmbus::daemon;
using namespace shmbus::gateway;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> errors(std::string_view text) {
    std::vector<std::string> out;
    for (const ConfigError& e : parse_config(text, "shmbusd.yaml").errors) {
        out.push_back(to_string(e));
    }
    return out;
}

Config config_of(std::string_view text) {
    const ParseOutcome outcome = parse_config(text, "shmbusd.yaml");
    INFO(text);
    for (const ConfigError& e : outcome.errors) {
        UNSCOPED_INFO(to_string(e));
    }
    REQUIRE(outcome.config);
    return *outcome.config;
}

/// The example of docs/nats.md.
const char* const kFleet = R"(bridges:
  - name: fleet
    connect: nats://10.0.0.5:4222,nats://10.0.0.6:4222
    nats:
      credentials: /etc/shmbusd/fleet.creds
      tls: {cert: /etc/shmbusd/fleet.crt, key: /etc/shmbusd/fleet.key, ca: /etc/shmbusd/nats-ca.pem}
      jetstream: false
      ack_wait: 45s
    export:
      - {channel: telemetry, subject: shmbus.robot1.telemetry}
      - {channel: "camera/*", subject: "shmbus.robot1.camera.*"}
    import:
      - {subject: "shmbus.*.telemetry", channel: fleet/telemetry}
      - {subject: shmbus.ground.jobs, channel: jobs, durable: ground-jobs}
)";

} // namespace

TEST_CASE("the NATS bridge of the documentation parses into the bridge's own terms", "[nats]") {
    const Config c = config_of(kFleet);
    REQUIRE(c.bridges.size() == 1);
    const ConfiguredBridge& b = c.bridges[0];
    CHECK(b.name == "fleet");
    CHECK_FALSE(b.listen);
    CHECK(b.address.text == "nats://10.0.0.5:4222,nats://10.0.0.6:4222");
    CHECK(b.exports.empty());
    CHECK(b.imports.empty());
    CHECK_FALSE(b.secret_file);
    REQUIRE(b.nats);
    const NatsBridgeConfig& n = *b.nats;
    CHECK(n.name == "fleet");
    CHECK(n.servers == std::vector<std::string>{"nats://10.0.0.5:4222", "nats://10.0.0.6:4222"});
    CHECK(n.credentials_file == "/etc/shmbusd/fleet.creds");
    REQUIRE(n.tls);
    CHECK(n.tls->cert_file == "/etc/shmbusd/fleet.crt");
    CHECK(n.tls->key_file == "/etc/shmbusd/fleet.key");
    CHECK(n.tls->ca_file == "/etc/shmbusd/nats-ca.pem");
    CHECK_FALSE(n.jetstream);
    CHECK(n.ack_wait == 45s);
    CHECK(n.exports == std::vector<NatsExport>{{"telemetry", "shmbus.robot1.telemetry"},
                                               {"camera/*", "shmbus.robot1.camera.*"}});
    CHECK(n.imports == std::vector<NatsImport>{{"shmbus.*.telemetry", "fleet/telemetry", ""},
                                               {"shmbus.ground.jobs", "jobs", "ground-jobs"}});
    CHECK(validate(n).has_value());
}

TEST_CASE("a NATS bridge needs no nats: block, and tls: alone turns TLS on", "[nats]") {
    const Config c = config_of(R"(bridges:
  - name: plain
    connect: nats://127.0.0.1
    export: [{channel: t, subject: s}]
  - name: secure
    connect: tls://nats.example:4443
    nats: {tls: }
    import: [{subject: ">", channel: everything}]
)");
    REQUIRE(c.bridges.size() == 2);
    REQUIRE(c.bridges[0].nats);
    CHECK_FALSE(c.bridges[0].nats->tls);
    CHECK(c.bridges[0].nats->servers == std::vector<std::string>{"nats://127.0.0.1"});
    REQUIRE(c.bridges[1].nats);
    REQUIRE(c.bridges[1].nats->tls);
    CHECK(c.bridges[1].nats->tls->ca_file.empty());
}

TEST_CASE("every mistake in a NATS bridge is reported at its place", "[nats]") {
    const auto e = errors(R"(bridges:
  - name: servers
    connect: nats://a:4222,,nats://b
    export: [{channel: t, subject: s}]
  - name: port
    connect: nats://a:99999
    export: [{channel: t, subject: s}]
  - name: listening
    listen: nats://0.0.0.0:4222
    export: [{channel: t, subject: s}]
  - name: secret
    connect: nats://a
    secret_file: /etc/key
    export: [{channel: t, subject: s}]
  - name: keys
    connect: nats://a
    nats:
      credential: /x
      tls: {cert: /c}
      jetstream: maybe
      ack_wait: 2h
    export:
      - {channel: "camera/*", subject: s}
      - {channel: t, subject: "shmbus.*"}
      - {channel: t}
      - [t]
      - t
    import:
      - {subject: "a.>.b", channel: c}
      - {subject: a, channel: c, durable: ground.jobs}
      - {subject: a.., channel: c}
  - name: link
    connect: fifo:/a,/b
    nats: {jetstream: true}
    export: [t]
)");
    const std::vector<std::string> expected{
        "shmbusd.yaml:3:14: error: 'connect': the list of NATS servers has an empty entry "
        "(servers are separated by single commas)",
        "shmbusd.yaml:6:14: error: 'connect': NATS server 'nats://a:99999' has port '99999'; a "
        "port is 1 to 65535",
        "shmbusd.yaml:9:13: error: a NATS bridge connects to its servers: write 'connect:' "
        "rather than 'listen:'",
        "shmbusd.yaml:13:5: error: 'secret_file' applies to tcp links; a NATS bridge "
        "authenticates with 'nats: {credentials: FILE}'",
        "shmbusd.yaml:18:7: error: unknown key 'credential' (did you mean 'credentials'?)",
        "shmbusd.yaml:19:19: error: 'cert' needs 'key' beside it (the certificate's private key)",
        "shmbusd.yaml:20:18: error: 'jetstream' must be true or false, got 'maybe'",
    };
    REQUIRE(e.size() >= expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CHECK(e[i] == expected[i]);
    }
    const auto has = [&](const std::string& needle) {
        for (const auto& line : e) {
            if (line.find(needle) != std::string::npos) {
                return true;
            }
        }
        INFO(needle);
        for (const auto& line : e) {
            UNSCOPED_INFO(line);
        }
        return false;
    };
    CHECK(has("shmbusd.yaml:21:17: error: 'ack_wait' "));
    CHECK(has("shmbusd.yaml:23:9: error: 'export': export of 'camera/*': subject 's' must "
              "have the wildcards of the channel's glob in the same order ('*'), each standing "
              "for what its counterpart matched, and no '>'"));
    CHECK(has("shmbusd.yaml:24:9: error: 'export': export of 't': subject 'shmbus.*' contains a "
              "wildcard; an export publishes to one subject"));
    CHECK(has("shmbusd.yaml:25:9: error: entry has no 'subject'"));
    CHECK(has("shmbusd.yaml:26:9: error: each entry of 'export' of a NATS bridge must be a "
              "mapping such as {channel: telemetry, subject: shmbus.robot1.telemetry}, not a "
              "list"));
    CHECK(has("shmbusd.yaml:27:9: error: each entry of 'export' of a NATS bridge must be a "
              "mapping"));
    CHECK(has("shmbusd.yaml:29:9: error: 'import': import subject 'a.>.b' has '>' before its "
              "last token"));
    CHECK(has("shmbusd.yaml:30:9: error: 'import': import of 'a': durable name 'ground.jobs' "
              "may not hold '.', '*', '>' or white space"));
    CHECK(has("shmbusd.yaml:31:9: error: 'import': import subject 'a..' has an empty token"));
    CHECK(has("shmbusd.yaml:34:5: error: 'nats' applies only to a bridge whose 'connect' names "
              "NATS servers"));
}

TEST_CASE("a password in a NATS server's URL is never shown", "[nats]") {
    const Config c = config_of(R"(bridges:
  - name: fleet
    connect: nats://fleet:s3cret@10.0.0.5:4222,nats://t0ken@10.0.0.6
    export: [{channel: t, subject: s}]
)");
    const ConfiguredBridge& b = c.bridges.at(0);
    CHECK(b.address.text == "nats://fleet:***@10.0.0.5:4222,nats://***@10.0.0.6");
    REQUIRE(b.nats);
    CHECK(b.nats->servers.at(0) == "nats://fleet:s3cret@10.0.0.5:4222"); // what libnats gets
    CHECK(redact_nats_url("nats://10.0.0.5:4222") == "nats://10.0.0.5:4222");
}

TEST_CASE("the NATS rules accept subjects with whole-token wildcards and IPv6 servers", "[nats]") {
    CHECK(parse_nats_servers("nats://[::1]:4222, tls://h").has_value());
    CHECK_FALSE(parse_nats_servers("nats://[::1").has_value());
    CHECK_FALSE(parse_nats_servers("nats://h:4222/path").has_value());
    CHECK_FALSE(parse_nats_servers("http://h:4222").has_value());
    CHECK(validate_import({"shmbus.*.telemetry", "c", ""}).has_value());
    CHECK(validate_import({"shmbus.>", "c", ""}).has_value());
    CHECK_FALSE(validate_import({"shmbus.tele*", "c", ""}).has_value());
    CHECK_FALSE(validate_import({"shmbus telemetry", "c", ""}).has_value());
    CHECK(validate_export({"c", "shmbus.robot1.telemetry"}).has_value());
    CHECK_FALSE(validate_export({"c", ">"}).has_value());
    CHECK_FALSE(validate_export({"bad channel", "s"}).has_value());
}

TEST_CASE("a reload restarts a NATS bridge for what changed, and names it", "[nats]") {
    const Config before = config_of(kFleet);
    const auto changed = [&](const std::string& from, const std::string& to) {
        std::string text = kFleet;
        const auto at = text.find(from);
        REQUIRE(at != std::string::npos);
        text.replace(at, from.size(), to);
        const auto plan = plan_bridges(before.bridges, config_of(text).bridges);
        REQUIRE(plan.size() == 1);
        return describe(plan[0]);
    };
    CHECK(plan_bridges(before.bridges, config_of(kFleet).bridges).empty());
    CHECK(changed("jetstream: false", "jetstream: true") == "bridge 'fleet' restarted (nats)");
    CHECK(changed("shmbus.robot1.telemetry", "shmbus.robot2.telemetry") ==
          "bridge 'fleet' restarted (export)");
    CHECK(changed("durable: ground-jobs", "durable: ground-jobs-2") ==
          "bridge 'fleet' restarted (import)");
    CHECK(changed(",nats://10.0.0.6:4222", "") ==
          "bridge 'fleet' restarted (connect nats://10.0.0.5:4222,nats://10.0.0.6:4222 -> "
          "connect nats://10.0.0.5:4222)");
    // A new password changes what libnats gets, not what is shown.
    CHECK(changed("nats://10.0.0.5:4222,", "nats://u:p@10.0.0.5:4222,").find("restarted") !=
          std::string::npos);
}

TEST_CASE("an export whose channel's slots could outgrow the NATS servers' max_payload is "
          "refused at its entry, and a raised max_payload admits it",
          "[nats]") {
    const std::string channels = R"(channels:
  - {name: frames, kind: broadcast, slot_size: 2MiB, slot_count: 4}
  - {name: small, kind: broadcast, slot_size: 1020KiB, slot_count: 4}
)";
    const auto e = errors(channels + R"(bridges:
  - name: fleet
    connect: nats://127.0.0.1
    export:
      - {channel: small, subject: shmbus.small}
      - {channel: frames, subject: shmbus.frames}
      - {channel: made-later, subject: shmbus.later}
)");
    REQUIRE(e.size() == 1);
    CHECK(e[0] == "shmbusd.yaml:9:9: error: bridge 'fleet': export of channel 'frames': its "
                  "slots hold messages of up to 2097152 bytes, more than fits in one NATS "
                  "message of the servers' ('nats.max_payload') max_payload (1048576 bytes, of "
                  "which 1024 are kept for shmbus's headers); a NATS bridge does not cut "
                  "messages into pieces: raise max_payload on the servers and set "
                  "'nats.max_payload' to it, or export a channel of smaller slots");

    const Config c = config_of(channels + R"(bridges:
  - name: fleet
    connect: nats://127.0.0.1
    nats: {max_payload: 8MiB}
    export: [{channel: frames, subject: shmbus.frames}]
)");
    REQUIRE(c.bridges.at(0).nats);
    CHECK(c.bridges.at(0).nats->max_payload == 8 * 1024 * 1024);
    CHECK(errors("bridges:\n  - name: f\n    connect: nats://a\n    nats: {max_payload: 128MiB}\n"
                 "    export: [{channel: t, subject: s}]\n")
              .at(0)
              .starts_with("shmbusd.yaml:4:25: error: 'max_payload' must be between 4 KiB and 64 "
                           "MiB"));
}

TEST_CASE("a NATS bridge refuses the tcp links' tls: and require:, saying where its TLS goes",
          "[nats]") {
    const auto e = errors(R"(bridges:
  - name: fleet
    connect: nats://127.0.0.1
    tls: {cert: /c, key: /k, ca: /a}
    require: tls
    export: [{channel: t, subject: s}]
)");
    REQUIRE(e.size() == 2);
    CHECK(e[0] == "shmbusd.yaml:4:5: error: 'tls' applies to tcp links; a NATS bridge's TLS goes "
                  "in 'nats: {tls: {cert: FILE, key: FILE, ca: FILE}}' and its identity in "
                  "'nats: {credentials: FILE}'");
    CHECK(e[1].starts_with("shmbusd.yaml:5:5: error: 'require' applies to tcp links"));
}

TEST_CASE("a glob export publishes each channel it matches to the subject its wildcards make",
          "[nats]") {
    const std::string channels = R"(channels:
  - {name: camera/front, kind: broadcast, slot_size: 4KiB, slot_count: 4}
  - {name: camera/rear, kind: broadcast, slot_size: 2MiB, slot_count: 2}
  - {name: telemetry, kind: broadcast, slot_size: 256, slot_count: 4}
)";
    const Config c = config_of(R"(bridges:
  - name: fleet
    connect: nats://127.0.0.1
    export:
      - {channel: "camera/*", subject: "shmbus.robot1.camera.*"}
      - {channel: "log-?-*", subject: "shmbus.logs.?.*"}
)");
    const auto& exports = c.bridges.at(0).nats->exports;
    REQUIRE(exports.size() == 2);
    CHECK(export_subject(exports[0], "camera/front").value() == "shmbus.robot1.camera.front");
    CHECK(export_subject(exports[1], "log-a-kernel.boot").value() == "shmbus.logs.a.kernel.boot");
    CHECK(export_subject(exports[0], "telemetry").code() == shmbus::Errc::not_found);
    // What a wildcard matched must leave a subject: no empty token.
    const auto empty = export_subject(exports[0], "camera/");
    REQUIRE_FALSE(empty.has_value());
    CHECK(empty.error().detail == "export of 'camera/*': channel 'camera/' would be published to "
                                  "subject 'shmbus.robot1.camera.', which has an empty token "
                                  "(two dots, or a dot at an end)");
    CHECK(export_subject(NatsExport{"telemetry", "shmbus.t"}, "telemetry").value() == "shmbus.t");

    const auto e = errors(channels + R"(bridges:
  - name: fleet
    connect: nats://127.0.0.1
    export:
      - {channel: "camera/*", subject: "shmbus.camera.*"}
      - {channel: "cam?/*", subject: "shmbus.cam.*.?"}
      - {channel: "camera/*", subject: "shmbus.camera.>"}
      - {channel: "camera/*", subject: "shmbus..*"}
)");
    // Each mistake at its entry; then the glob's channels against max_payload one by one, at
    // the entry that matched them.
    REQUIRE(e.size() == 4);
    CHECK(e[0] == "shmbusd.yaml:10:9: error: 'export': export of 'cam?/*': subject "
                  "'shmbus.cam.*.?' must have the wildcards of the channel's glob in the same "
                  "order ('?*'), each standing for what its counterpart matched, and no '>'");
    CHECK(e[1] == "shmbusd.yaml:11:9: error: 'export': export of 'camera/*': subject "
                  "'shmbus.camera.>' must have the wildcards of the channel's glob in the same "
                  "order ('*'), each standing for what its counterpart matched, and no '>'");
    CHECK(e[2] == "shmbusd.yaml:12:9: error: 'export': export of 'camera/*': subject "
                  "'shmbus..*' has an empty token (two dots, or a dot at an end)");
    CHECK(e[3] == "shmbusd.yaml:9:9: error: bridge 'fleet': export of channel 'camera/rear': its "
                  "slots hold messages of up to 2097152 bytes, more than fits in one NATS "
                  "message of the servers' ('nats.max_payload') max_payload (1048576 bytes, of "
                  "which 1024 are kept for shmbus's headers); a NATS bridge does not cut "
                  "messages into pieces: raise max_payload on the servers and set "
                  "'nats.max_payload' to it, or export a channel of smaller slots");
}
