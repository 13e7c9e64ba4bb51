// Tests of the `bridges:` key of shmbusd.yaml: what a valid bridge becomes, every refusal
// pinned at its file:line:column, the secret file's checks, drop-ins, and what a reload
// plans for bridges (reload_plan.hpp) — all without a daemon.
#include "config.hpp"
#include "config_test.hpp"
#include "reload_plan.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
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
using namespace std::chrono_literals;

namespace {

void write(const std::filesystem::path& path, const std::string& text, mode_t mode) {
    {
        std::ofstream out(path);
        out << text;
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

const char* const kIssueExample = R"(bridges:
  - name: ground
    connect: tcp://ground.example:7411
    secret_file: /etc/shmbusd/bridge-ground.key
    export:
      - telemetry
      - {channel: "camera/*", as: "robot1/camera/*", on_link_down: drop}
    import:
      - {channel: jobs, as: ground/jobs}
)";

} // namespace

TEST_CASE("the bridge of the documentation parses into the gateway's own terms") {
    const Config c = config_of(kIssueExample);
    REQUIRE(c.bridges.size() == 1);
    const ConfiguredBridge& b = c.bridges[0];
    CHECK(b.name == "ground");
    CHECK_FALSE(b.listen);
    CHECK(b.address.kind == LinkAddress::Kind::tcp);
    CHECK(b.address.host == "ground.example");
    CHECK(b.address.port == 7411);
    CHECK(b.secret_file == std::filesystem::path{"/etc/shmbusd/bridge-ground.key"});
    CHECK_FALSE(b.secret); // read by load_config(), never by the pure parser
    REQUIRE(b.exports.size() == 2);
    CHECK(b.exports[0] == ChannelRule{"telemetry", "", LinkDownPolicy::drop});
    CHECK(b.exports[1] == ChannelRule{"camera/*", "robot1/camera/*", LinkDownPolicy::drop});
    REQUIRE(b.imports.size() == 1);
    CHECK(b.imports[0] == ChannelRule{"jobs", "ground/jobs", LinkDownPolicy::drop});
    CHECK(b.where.line == 2);
    CHECK(b.where.column == 11);
}

TEST_CASE("listen, fifo pairs, IPv6 and block exports with a timeout are accepted") {
    const Config c = config_of(R"(bridges:
  - name: robot
    listen: tcp://[::]:7411
    secret_file: /k
    import: ["robot1/*"]
  - name: pipe
    listen: fifo:/run/a,/run/b
    export:
      - {channel: telemetry, on_link_down: block, block_timeout: 30s}
      - {channel: log, on_link_down: block}
)");
    REQUIRE(c.bridges.size() == 2);
    CHECK(c.bridges[0].listen);
    CHECK(c.bridges[0].address.host == "::");
    CHECK(c.bridges[1].address.kind == LinkAddress::Kind::fifo);
    CHECK_FALSE(c.bridges[1].secret_file); // not required for a FIFO pair
    CHECK(c.bridges[1].exports[0].on_link_down == LinkDownPolicy::block);
    CHECK(c.bridges[1].exports[0].block_timeout == 30s);
    CHECK(c.bridges[1].exports[1].block_timeout == kDefaultBlockTimeout);
}

TEST_CASE("every mistake in a bridge is reported at its place") {
    const auto e = config_errors(R"(bridges:
  - name: "bad name!"
    connect: tcp://host
    listen: tcp://0.0.0.0:1
    export: telemetry
  - name: ok
    conect: tcp://h:1
  - name: tcp-without-secret
    connect: tcp://h:1
    import: [jobs]
  - name: rules
    connect: fifo:/a,/b
    export:
      - {channel: "a/*", as: "b"}
      - {as: x}
      - {channel: t, block_timeout: 5s}
      - {channel: t, on_link_down: hold}
      - [t]
    import:
      - {channel: j, on_link_down: block}
  - name: idle
    connect: fifo:/c,/d
)");
    const std::vector<std::string> expected{
        "shmbusd.yaml:2:11: error: invalid bridge name 'bad name!': ' ' is not allowed (use "
        "letters, digits and _ . : / -)",
        "shmbusd.yaml:3:14: error: 'connect': link 'tcp://host': missing ':PORT'",
        "shmbusd.yaml:4:13: error: bridge has both 'connect' and 'listen'; an end either "
        "connects or listens (the peer has the other)",
        "shmbusd.yaml:5:13: error: 'export' must be a list of channel names or globs, or of "
        "mappings such as {channel: jobs, as: ground/jobs}, not the value 'telemetry'",
        "shmbusd.yaml:6:5: error: bridge 'ok' has neither 'export' nor 'import': it would move "
        "nothing",
        "shmbusd.yaml:7:5: error: unknown key 'conect' (did you mean 'connect'?)",
        "shmbusd.yaml:9:14: error: bridge 'tcp-without-secret' links over tcp and needs 'tls' "
        "(certificates), a 'secret_file' (a 0600 file, the same on both ends), or both",
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
        return false;
    };
    CHECK(has("shmbusd.yaml:14:9: error: 'export': ")); // `as` without the glob
    CHECK(has("shmbusd.yaml:15:9: error: entry has no 'channel'"));
    CHECK(has("shmbusd.yaml:16:37: error: 'block_timeout' applies only with 'on_link_down: "
              "block'"));
    CHECK(has("shmbusd.yaml:17:36: error: unknown link-down policy 'hold'"));
    CHECK(has("shmbusd.yaml:18:9: error: each entry of 'export' must be a channel name or glob"));
    CHECK(has("shmbusd.yaml:20:22: error: 'on_link_down' applies to exports only"));
    CHECK(has("shmbusd.yaml:21:5: error: bridge 'idle' has neither 'export' nor 'import'"));
}

TEST_CASE("two bridges may not share a name, a listening address or a FIFO") {
    const auto e = config_errors(R"(bridges:
  - {name: a, listen: "tcp://0.0.0.0:7411", secret_file: /k, export: [x]}
  - {name: a, connect: "fifo:/p,/q", export: [x]}
  - {name: b, listen: "tcp://0.0.0.0:7411", secret_file: /k, export: [x]}
  - {name: c, connect: "fifo:/q,/r", export: [x]}
  - {name: d, connect: "fifo:/p,/q", export: [x]}
)");
    REQUIRE(e.size() == 3);
    CHECK(e[0] == "shmbusd.yaml:3:12: error: duplicate bridge name 'a' (first defined at line "
                  "2, column 12)");
    CHECK(e[1] == "shmbusd.yaml:4:23: error: bridge 'b' listens on the same address "
                  "'tcp://0.0.0.0:7411' as bridge 'a' (at line 2, column 12)");
    CHECK(e[2] == "shmbusd.yaml:6:24: error: bridge 'd' uses the FIFO '/q' as bridge 'c' (at "
                  "line 5, column 12)");
}

TEST_CASE("bridges of drop-ins are added to those of the main file") {
    const std::vector<ConfigSource> sources{
        {"shmbusd.yaml", "bridges:\n  - {name: a, connect: \"fifo:/a,/b\", export: [x]}\n"},
        {"conf.d/b.yaml", "bridges:\n  - {name: b, connect: \"fifo:/c,/d\", import: [y]}\n"},
        {"conf.d/c.yaml", "bridges:\n  - {name: a, connect: \"fifo:/e,/f\", import: [y]}\n"},
    };
    const ParseOutcome outcome = parse_config(sources);
    REQUIRE(outcome.errors.size() == 1);
    CHECK(to_string(outcome.errors[0]) == "conf.d/c.yaml:2:12: error: duplicate bridge name 'a' "
                                          "(first defined at shmbusd.yaml:2:12)");
}

TEST_CASE("load_config reads a bridge's secret only from a file no one else may read") {
    ScratchDir dir;
    const auto key = dir.path / "bridge.key";
    const auto yaml = dir.path / "shmbusd.yaml";
    write(yaml,
          "bridges:\n  - name: ground\n    connect: tcp://127.0.0.1:7411\n    secret_file: " +
              key.native() + "\n    export: [telemetry]\n",
          0644);
    const ConfigPath path{yaml, true};

    write(key, "0123456789abcdef0123456789abcdef", 0600);
    ParseOutcome good = load_config(path);
    REQUIRE(good.ok());
    CHECK(good.config->bridges[0].secret == std::string{"0123456789abcdef0123456789abcdef"});

    write(key, "0123456789abcdef0123456789abcdef", 0640);
    ParseOutcome open = load_config(path);
    REQUIRE(open.errors.size() == 1);
    CHECK(to_string(open.errors[0]) ==
          yaml.native() + ":4:18: error: secret_file '" + key.native() +
              "' of bridge 'ground': group or others may access it (mode 0640); chmod 600 it, "
              "and give it to the daemon's user");

    write(key, "short", 0600);
    ParseOutcome short_key = load_config(path);
    REQUIRE(short_key.errors.size() == 1);
    CHECK_THAT(to_string(short_key.errors[0]), Catch::Contains("holds 5 bytes; a secret holds 16 "
                                                               "to 4096"));

    std::filesystem::remove(key);
    ParseOutcome missing = load_config(path);
    REQUIRE(missing.errors.size() == 1);
    CHECK_THAT(to_string(missing.errors[0]),
               Catch::Contains(":4:18: error: secret_file") && Catch::Contains("cannot stat"));
}

TEST_CASE("a reload plans bridges by name: added, removed, restarted, the rest untouched") {
    const Config before = config_of(R"(bridges:
  - {name: same, connect: "fifo:/a,/b", export: [x]}
  - {name: gone, connect: "fifo:/c,/d", export: [x]}
  - {name: moved, connect: "fifo:/e,/f", export: [x]}
  - {name: rules, connect: "fifo:/g,/h", export: [x]}
)");
    const Config after = config_of(R"(bridges:
  - {name: same, connect: "fifo:/a,/b", export: [x]}
  - {name: moved, listen: "fifo:/e,/f", export: [x]}
  - {name: rules, connect: "fifo:/g,/h", export: [x, y], import: [z]}
  - {name: new, connect: "fifo:/i,/j", import: [x]}
)");
    const auto plan = plan_bridges(before.bridges, after.bridges);
    REQUIRE(plan.size() == 4);
    CHECK(describe(plan[0]) == "bridge 'gone' removed");
    CHECK(describe(plan[1]) ==
          "bridge 'moved' restarted (connect fifo:/e,/f -> listen fifo:/e,/f)");
    CHECK(describe(plan[2]) == "bridge 'rules' restarted (export, import)");
    CHECK(describe(plan[3]) == "bridge 'new' added (connect fifo:/i,/j)");
    CHECK(plan_bridges(after.bridges, after.bridges).empty());

    ConfiguredBridge secret_changed = after.bridges[0];
    secret_changed.secret = "another secret of sixteen bytes";
    CHECK(describe(plan_bridges({after.bridges[0]}, {secret_changed}).at(0)) ==
          "bridge 'same' restarted (secret)");
}
