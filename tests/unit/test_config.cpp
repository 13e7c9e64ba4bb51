// Tests of daemon/src/config: parsing, validation, merging of drop-ins, account resolution,
// loading from disk and the choice of the default path. Every error class is pinned with its
// exact file:line:column, because operators (and editors that jump to the line) rely on it.
#include "config.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

using namespace shmbus;
using namespace shmbus::daemon;

namespace {

ParseOutcome parse(std::string_view text) {
    return parse_config(text, "shmbusd.yaml");
}

/// Every error of `outcome`, formatted as the daemon prints them.
std::vector<std::string> errors_of(const ParseOutcome& outcome) {
    std::vector<std::string> out;
    for (const ConfigError& e : outcome.errors) {
        out.push_back(to_string(e));
    }
    return out;
}

/// The one error `text` must produce.
std::string only_error(std::string_view text) {
    const ParseOutcome outcome = parse(text);
    INFO(text);
    REQUIRE(outcome.errors.size() == 1);
    CHECK_FALSE(outcome.config);
    return to_string(outcome.errors.front());
}

/// The configuration `text` must produce without any error.
Config valid(std::string_view text) {
    ParseOutcome outcome = parse(text);
    INFO(text);
    for (const std::string& e : errors_of(outcome)) {
        UNSCOPED_INFO(e);
    }
    REQUIRE(outcome.ok());
    REQUIRE(outcome.config);
    return std::move(*outcome.config);
}

/// A directory of its own under the system temporary directory, removed with its contents.
class TempDir : public shmbus::test::TempDir {
public:
    /// Writes `text` to `relative` (creating directories); returns the full path.
    std::filesystem::path write(const std::filesystem::path& relative,
                                std::string_view text) const {
        const std::filesystem::path full = path() / relative;
        std::filesystem::create_directories(full.parent_path());
        std::ofstream out(full, std::ios::binary);
        out << text;
        REQUIRE(out.good());
        return full;
    }
};

/// A resolver that knows a few accounts and counts its calls.
struct FakeAccounts {
    std::map<std::string, std::uint32_t> users{{"alice", 1000}, {"bob", 1001}};
    std::map<std::string, std::uint32_t> groups{{"staff", 50}, {"video", 44}};
    int calls{0};

    AccountResolver resolver() {
        const auto lookup = [this](const std::map<std::string, std::uint32_t>& table) {
            return [this, &table](const std::string& name) -> Result<std::optional<std::uint32_t>> {
                ++calls;
                if (name == "nss-down") {
                    return make_error(Errc::system_error, "cannot look up 'nss-down': timed out");
                }
                const auto it = table.find(name);
                return it == table.end() ? std::optional<std::uint32_t>{}
                                         : std::optional<std::uint32_t>{it->second};
            };
        };
        return AccountResolver{lookup(users), lookup(groups)};
    }
};

} // namespace

// ---------------------------------------------------------------------------------------------
// Defaults and well-formed files

TEST_CASE("an empty file means the built-in defaults") {
    for (const std::string_view text : {"", "\n\n", "# nothing but a comment\n", "---\n"}) {
        const Config config = valid(text);
        CHECK_FALSE(config.socket_path);
        CHECK_FALSE(config.state_directory);
        CHECK(config.log_level == LogLevel::info);
        CHECK(config.admins.users.empty());
        CHECK(config.limits.max_clients == 256);
        CHECK(config.limits.max_channels == 256);
        CHECK(config.limits.max_total_segment_bytes == (std::uint64_t{1} << 30));
        CHECK(config.limits.per_client.max_open_channels == 64);
        CHECK(config.limits.per_client.max_inflight_requests == 32);
        CHECK(config.limits.per_client.max_dynamic_channels == 16);
        CHECK(config.dynamic_channels.allowed);
        CHECK(config.dynamic_channels.defaults.kind == ChannelKind::queue);
        CHECK(config.dynamic_channels.defaults.slot_size == 1024);
        CHECK(config.dynamic_channels.defaults.slot_count == 1024);
        CHECK(config.dynamic_channels.max_slot_size == (std::uint64_t{1} << 20));
        CHECK(config.dynamic_channels.max_slot_count == 65536);
        CHECK(config.channels.empty());
        CHECK(config.set_at.empty());
    }
}

TEST_CASE("empty sections are empty mappings and keep the defaults") {
    const Config config = valid("daemon:\nlimits:\ndynamic_channels:\nchannels:\n");
    CHECK(config.limits.max_clients == 256);
    CHECK(config.channels.empty());
}

TEST_CASE("a file that sets every key produces exactly those values") {
    const Config config = valid(R"(daemon:
  socket: /run/shmbus/shmbusd.sock
  state_directory: /var/lib/shmbus
  log_level: debug
  admin:
    users: [alice, 0]
    groups: [wheel]
limits:
  max_clients: 100
  max_channels: 50
  max_total_segment_bytes: 2GiB
  per_client:
    max_open_channels: 10
    max_inflight_requests: 4
    max_dynamic_channels: 0
dynamic_channels:
  allowed: false
  users: ["*"]
  groups: [staff]
  defaults:
    kind: broadcast
    slot_size: 256
    slot_count: 64
    overflow: drop
    max_publishers: 2
    max_subscribers: 8
  max_slot_size: 64KiB
  max_slot_count: 4096
channels:
  - name: sensors/imu
    kind: broadcast
    slot_size: 4KiB
    slot_count: 256
    overflow: drop
    max_publishers: 1
    max_subscribers: 32
    acl:
      publish: {users: [alice]}
      subscribe: {users: ["*"], groups: [video]}
  - name: jobs
    kind: queue
)");
    REQUIRE(config.socket_path);
    CHECK(*config.socket_path == "/run/shmbus/shmbusd.sock");
    CHECK(*config.state_directory == "/var/lib/shmbus");
    CHECK(config.log_level == LogLevel::debug);
    REQUIRE(config.admins.users.size() == 2);
    CHECK(config.admins.users[0].name == "alice");
    CHECK_FALSE(config.admins.users[0].id);
    CHECK(config.admins.users[0].where.line == 6);
    CHECK(config.admins.users[0].where.column == 13);
    CHECK(config.admins.users[1].id == 0U);
    CHECK(config.admins.groups.at(0).name == "wheel");

    CHECK(config.limits.max_clients == 100);
    CHECK(config.limits.max_channels == 50);
    CHECK(config.limits.max_total_segment_bytes == (std::uint64_t{2} << 30));
    CHECK(config.limits.per_client.max_open_channels == 10);
    CHECK(config.limits.per_client.max_inflight_requests == 4);
    CHECK(config.limits.per_client.max_dynamic_channels == 0);

    const DynamicChannelPolicy& dynamic = config.dynamic_channels;
    CHECK_FALSE(dynamic.allowed);
    CHECK(dynamic.creators.anyone);
    CHECK(dynamic.creators.groups.at(0).name == "staff");
    CHECK(dynamic.defaults.kind == ChannelKind::broadcast);
    CHECK(dynamic.defaults.slot_size == 256);
    CHECK(dynamic.defaults.slot_count == 64);
    CHECK(dynamic.defaults.overflow == Overflow::drop);
    CHECK(dynamic.defaults.max_publishers == 2);
    CHECK(dynamic.defaults.max_subscribers == 8);
    CHECK(dynamic.max_slot_size == 65536);
    CHECK(dynamic.max_slot_count == 4096);

    REQUIRE(config.channels.size() == 2);
    const ChannelConfig& imu = config.channels[0];
    CHECK(imu.spec.name == "sensors/imu");
    CHECK(imu.spec.kind == ChannelKind::broadcast);
    CHECK(imu.spec.slot_size == 4096);
    CHECK(imu.spec.slot_count == 256);
    CHECK(imu.spec.overflow == Overflow::drop);
    CHECK(imu.spec.max_publishers == 1);
    CHECK(imu.spec.max_subscribers == 32);
    CHECK(imu.where.file == "shmbusd.yaml");
    CHECK(imu.where.line == 30);
    CHECK(imu.where.column == 11);
    CHECK(imu.acl.publish.users.at(0).name == "alice");
    CHECK_FALSE(imu.acl.publish.anyone);
    CHECK(imu.acl.subscribe.anyone);
    CHECK(imu.acl.subscribe.users.empty());
    CHECK(imu.acl.subscribe.groups.at(0).name == "video");

    const ChannelConfig& jobs = config.channels[1];
    CHECK(jobs.spec.kind == ChannelKind::queue);
    CHECK(jobs.spec.slot_size == 1024);
    CHECK(jobs.spec.slot_count == 1024);
    CHECK(jobs.spec.overflow == Overflow::block);
    CHECK(jobs.spec.max_publishers == 1);
    CHECK(jobs.spec.max_subscribers == 1);

    CHECK(config.set_at.at("limits.max_clients").line == 9);
    CHECK(config.set_at.at("limits.per_client.max_dynamic_channels").line == 15);
    CHECK(config.set_at.at("daemon.admin.users").line == 6);
    CHECK(config.set_at.at("dynamic_channels.defaults.slot_size").line == 22);
    CHECK(config.set_at.count("daemon.admin") == 0);
}

TEST_CASE("sizes accept plain integers and binary units") {
    const std::array<std::pair<std::string_view, std::uint64_t>, 9> cases{{
        {"4096", 4096},
        {"16B", 16},
        {"4KiB", 4096},
        {"4 KiB", 4096},
        {"\"4KiB\"", 4096},
        {"1MiB", std::uint64_t{1} << 20},
        {"1mib", std::uint64_t{1} << 20},
        {"2kib", 2048},
        {"1", 1},
    }};
    for (const auto& [text, bytes] : cases) {
        const Config config =
            valid("channels:\n  - {name: a, kind: queue, slot_size: " + std::string(text) + "}\n");
        CHECK(config.channels.at(0).spec.slot_size == bytes);
    }
    CHECK(valid("limits: {max_total_segment_bytes: 1TiB}").limits.max_total_segment_bytes ==
          (std::uint64_t{1} << 40));
}

TEST_CASE("a broadcast channel without max_subscribers gets the broadcast default") {
    const Config config = valid("channels:\n  - {name: a, kind: broadcast}\n"
                                "  - {name: b, kind: queue}\n");
    CHECK(config.channels.at(0).spec.max_subscribers == kDefaultBroadcastSubscribers);
    CHECK(config.channels.at(1).spec.max_subscribers == 1);
}

TEST_CASE("access lists take names, numeric ids and '*' for everyone") {
    const Config config = valid(R"(channels:
  - name: a
    kind: queue
    acl:
      publish:
        users: [alice, "1234", 4294967294, "machine$", "first.last@example.org"]
        groups: [staff, 100]
      subscribe:
        users: ["*"]
)");
    const AccessList& publish = config.channels.at(0).acl.publish;
    REQUIRE(publish.users.size() == 5);
    CHECK(publish.users[1].id == 1234U);
    CHECK(publish.users[2].id == 4294967294U);
    CHECK_FALSE(publish.users[3].id);
    CHECK(publish.users[4].name == "first.last@example.org");
    CHECK(publish.groups[1].id == 100U);
    CHECK(config.channels.at(0).acl.subscribe.anyone);
}

// ---------------------------------------------------------------------------------------------
// One error of each class, with its exact position

TEST_CASE("an unknown key is reported at its position with the key it resembles") {
    const std::string text = R"(# shmbusd.yaml
daemon:
  log_level: info
limits:
  max_clients: 64
channels:
  - name: demo
    kind: broadcast
    slot_size: 4KiB
    slot_count: 256
    overflow: drop
  - name: jobs
    kind: queue
    slot_sise: 1KiB
)";
    CHECK(only_error(text) ==
          "shmbusd.yaml:14:5: error: unknown key 'slot_sise' (did you mean 'slot_size'?)");
}

TEST_CASE("an unknown key with nothing close lists the keys that are expected") {
    CHECK(only_error("limits:\n  whatever: 1\n") ==
          "shmbusd.yaml:2:3: error: unknown key 'whatever' (expected max_clients, max_channels, "
          "max_total_segment_bytes, per_client, per_uid, admin_reserve or hello_timeout)");
    CHECK(only_error("gateway: []\n") ==
          "shmbusd.yaml:1:1: error: unknown key 'gateway' (expected daemon, limits, "
          "dynamic_channels, channels or bridges)");
}

TEST_CASE("did-you-mean catches typos, swapped letters, case and abbreviations") {
    CHECK(only_error("chanels: []\n") ==
          "shmbusd.yaml:1:1: error: unknown key 'chanels' (did you mean 'channels'?)");
    CHECK(only_error("channels:\n  - {name: a, kidn: queue}\n") ==
          "shmbusd.yaml:2:15: error: unknown key 'kidn' (did you mean 'kind'?)");
    CHECK(only_error("Limits: {}\n") ==
          "shmbusd.yaml:1:1: error: unknown key 'Limits' (did you mean 'limits'?)");
    CHECK(only_error("daemon: {log_level: warn}\n") ==
          "shmbusd.yaml:1:21: error: unknown log level 'warn' (did you mean 'warning'?)");
    CHECK(only_error("channels:\n  - {name: a, kind: broadcst}\n") ==
          "shmbusd.yaml:2:21: error: unknown channel kind 'broadcst' (did you mean 'broadcast'?)");
    CHECK(only_error("channels:\n  - {name: a, kind: pubsub}\n") ==
          "shmbusd.yaml:2:21: error: unknown channel kind 'pubsub' (expected queue, broadcast, "
          "blackboard, counters, rpc or pool)");
}

TEST_CASE("a YAML syntax error is reported at its 1-based line and column") {
    CHECK(only_error("channels:\n  - name: [a, b\n") ==
          "shmbusd.yaml:3:1: error: end of sequence flow not found");
    CHECK(only_error("limits:\n  max_clients: 1\n   max_channels: 2\n") ==
          "shmbusd.yaml:3:16: error: illegal map value");
}

TEST_CASE("a value of the wrong type names what was expected and what was found") {
    CHECK(only_error("limits: [1, 2]\n") ==
          "shmbusd.yaml:1:9: error: 'limits' must be a mapping of settings, not a list");
    CHECK(only_error("limits:\n  max_clients: [1]\n") ==
          "shmbusd.yaml:2:16: error: 'max_clients' must be a whole number, not a list");
    CHECK(only_error("limits:\n  max_clients: many\n") ==
          "shmbusd.yaml:2:16: error: 'max_clients' must be a whole number, got 'many'");
    CHECK(only_error("limits:\n  max_clients: 1.5\n") ==
          "shmbusd.yaml:2:16: error: 'max_clients' must be a whole number, got '1.5'");
    CHECK(only_error("limits:\n  max_clients:\n") ==
          "shmbusd.yaml:2:3: error: 'max_clients' needs a value (a whole number)");
    CHECK(only_error("dynamic_channels: {allowed: yes}\n") ==
          "shmbusd.yaml:1:29: error: 'allowed' must be true or false, got 'yes'");
    CHECK(only_error("channels: {name: a}\n") ==
          "shmbusd.yaml:1:11: error: 'channels' must be a list of channels (lines starting with "
          "'- name:'), not a mapping");
    CHECK(only_error("channels:\n  - jobs\n") ==
          "shmbusd.yaml:2:5: error: each entry of 'channels' must be a mapping with at least "
          "'name' and 'kind', not the value 'jobs'");
    CHECK(only_error("daemon:\n  admin:\n    users: alice\n") ==
          "shmbusd.yaml:3:12: error: 'users' must be a list of user names, such as [alice, 1001], "
          "not the value 'alice'");
    CHECK(only_error("- a\n- b\n") ==
          "shmbusd.yaml:1:1: error: the top level must be a mapping of sections (daemon, limits, "
          "dynamic_channels, channels and bridges), not a list");
    CHECK(only_error("? [a, b]\n: 1\n") ==
          "shmbusd.yaml:1:3: error: a key must be a name, not a list");
}

TEST_CASE("an out-of-range size names the allowed range") {
    CHECK(only_error("channels:\n  - {name: a, kind: queue, slot_size: 2GiB}\n") ==
          "shmbusd.yaml:2:39: error: 'slot_size' must be between 1 B and 1 GiB, got 2 GiB");
    CHECK(only_error("channels:\n  - {name: a, kind: queue, slot_size: 0}\n") ==
          "shmbusd.yaml:2:39: error: 'slot_size' must be between 1 B and 1 GiB, got 0 B");
    CHECK(only_error("channels:\n  - {name: a, kind: queue, slot_count: -4}\n") ==
          "shmbusd.yaml:2:40: error: 'slot_count' must be between 2 and 16777216, got '-4'");
    CHECK(only_error("channels:\n  - {name: a, kind: queue, max_subscribers: 5000}\n") ==
          "shmbusd.yaml:2:45: error: 'max_subscribers' must be between 1 and 1024, got 5000");
    CHECK(only_error("limits: {max_total_segment_bytes: 99999999999999999999999}\n") ==
          "shmbusd.yaml:1:35: error: 'max_total_segment_bytes' must be between 64 KiB and 1 TiB, "
          "got '99999999999999999999999'");
    CHECK(only_error("limits: {max_total_segment_bytes: 16777216TiB}\n") ==
          "shmbusd.yaml:1:35: error: 'max_total_segment_bytes' must be between 64 KiB and 1 TiB, "
          "got '16777216TiB'");
    CHECK(only_error("dynamic_channels: {max_slot_size: 1000}\n") ==
          "shmbusd.yaml:1:35: error: the default slot_size of dynamic channels (1 KiB) is larger "
          "than 'max_slot_size' (1000 B)");
}

TEST_CASE("a size with a decimal or unknown unit is refused, suggesting the binary unit") {
    CHECK(only_error("channels:\n  - {name: a, kind: queue, slot_size: 1MB}\n") ==
          "shmbusd.yaml:2:39: error: 'slot_size' has an unknown unit 'MB' (did you mean "
          "'1MiB'?); sizes use B, KiB, MiB, GiB or TiB");
    CHECK(only_error("channels:\n  - {name: a, kind: queue, slot_size: 4 bytes}\n") ==
          "shmbusd.yaml:2:39: error: 'slot_size' has an unknown unit 'bytes'; sizes use B, KiB, "
          "MiB, GiB or TiB");
    CHECK(only_error("channels:\n  - {name: a, kind: queue, slot_size: KiB}\n") ==
          "shmbusd.yaml:2:39: error: 'slot_size' must be a size in bytes, such as 4096 or 4KiB, "
          "got 'KiB'");
}

TEST_CASE("a slot count that is not a power of two is refused with the nearest powers") {
    CHECK(only_error("channels:\n  - name: a\n    kind: queue\n    slot_count: 1000\n") ==
          "shmbusd.yaml:4:17: error: 'slot_count' must be a power of two, got 1000 (nearest: 512 "
          "or 1024)");
    CHECK(only_error("channels:\n  - {name: a, kind: queue, slot_count: 1}\n") ==
          "shmbusd.yaml:2:40: error: 'slot_count' must be between 2 and 16777216, got 1");
}

TEST_CASE("a channel name used twice points at the second and names the first's line") {
    CHECK(only_error("channels:\n  - name: jobs\n    kind: queue\n  - name: demo\n    kind: "
                     "broadcast\n  - name: jobs\n    kind: broadcast\n") ==
          "shmbusd.yaml:6:11: error: duplicate channel name 'jobs' (first defined at line 2, "
          "column 11)");
}

TEST_CASE("a key given twice in one mapping is an error at the second") {
    CHECK(only_error("channels:\n  - name: a\n    kind: queue\n    slot_size: 1KiB\n"
                     "    slot_size: 2KiB\n") ==
          "shmbusd.yaml:5:5: error: duplicate key 'slot_size' (first given at line 4, column 5)");
    CHECK(only_error("limits: {}\nlimits: {}\n") ==
          "shmbusd.yaml:2:1: error: duplicate key 'limits' (first given at line 1, column 1)");
}

TEST_CASE("a channel name must be 1 to 63 bytes of letters, digits and _ . : / -") {
    CHECK(only_error("channels:\n  - {name: my channel, kind: queue}\n") ==
          "shmbusd.yaml:2:12: error: invalid channel name 'my channel': ' ' is not allowed (use "
          "letters, digits and _ . : / -)");
    CHECK(only_error("channels:\n  - {name: '', kind: queue}\n") ==
          "shmbusd.yaml:2:12: error: channel name must not be empty");
    const std::string long_name(64, 'x');
    CHECK(only_error("channels:\n  - {name: " + long_name + ", kind: queue}\n") ==
          "shmbusd.yaml:2:12: error: channel name '" + long_name +
              "' is 64 bytes long; the limit is 63");
    CHECK(valid("channels:\n  - {name: " + std::string(63, 'x') + ", kind: queue}\n")
              .channels.size() == 1);
    CHECK(only_error("channels:\n  - {name: \"a\\tb\", kind: queue}\n") ==
          "shmbusd.yaml:2:12: error: invalid channel name 'a\\x09b': '\\x09' is not allowed (use "
          "letters, digits and _ . : / -)");
}

TEST_CASE("overflow drop on a queue is refused: a queue always blocks") {
    CHECK(only_error("channels:\n  - name: jobs\n    kind: queue\n    overflow: drop\n") ==
          "shmbusd.yaml:4:15: error: overflow 'drop' is only valid on a broadcast channel; a "
          "queue always blocks");
    CHECK(valid("channels:\n  - {name: jobs, kind: queue, overflow: block}\n").channels.size() ==
          1);
    CHECK(only_error("dynamic_channels:\n  defaults: {overflow: drop}\n") ==
          "shmbusd.yaml:2:24: error: overflow 'drop' is only valid on a broadcast channel; the "
          "default kind of dynamic channels is queue");
}

TEST_CASE("a channel without a name or a kind is reported at its entry") {
    CHECK(only_error("channels:\n  - kind: queue\n") ==
          "shmbusd.yaml:2:5: error: channel has no 'name'");
    CHECK(only_error("channels:\n  - name: jobs\n") ==
          "shmbusd.yaml:2:5: error: channel 'jobs' has no 'kind' (expected queue, broadcast, "
          "blackboard, counters, rpc or pool)");
}

TEST_CASE("invalid user and group entries are reported where they are written") {
    CHECK(only_error("daemon:\n  admin:\n    users: [alice, \"bad name\"]\n") ==
          "shmbusd.yaml:3:20: error: invalid user name 'bad name': use letters, digits, '_', "
          "'.', '@', '-' (not first) and a final '$'");
    CHECK(only_error("daemon:\n  admin:\n    groups: [\"*\"]\n") ==
          "shmbusd.yaml:3:14: error: '*' (everyone) is only valid in 'users'");
    CHECK(only_error("daemon:\n  admin:\n    users: [4294967295]\n") ==
          "shmbusd.yaml:3:13: error: user id '4294967295' is out of range (0 to 4294967294)");
}

TEST_CASE("daemon paths must be absolute and the socket path must fit a sockaddr_un") {
    CHECK(only_error("daemon: {socket: run/shmbusd.sock}\n") ==
          "shmbusd.yaml:1:18: error: 'socket' must be an absolute path, got 'run/shmbusd.sock'");
    CHECK(only_error("daemon: {state_directory: ''}\n") ==
          "shmbusd.yaml:1:27: error: 'state_directory' must be an absolute path, got ''");
    const std::string long_path = "/" + std::string(107, 's');
    CHECK(only_error("daemon: {socket: " + long_path + "}\n") ==
          "shmbusd.yaml:1:18: error: 'socket' is 108 bytes long; a Unix socket path holds at "
          "most 107");
    CHECK(valid("daemon: {socket: /" + std::string(106, 's') + "}\n").socket_path);
}

TEST_CASE("the static channels must fit the channel count and memory limits") {
    CHECK(only_error("limits: {max_channels: 1}\nchannels:\n  - {name: a, kind: queue}\n"
                     "  - {name: b, kind: queue}\n") ==
          "shmbusd.yaml:4:12: error: too many channels: 'limits.max_channels' is 1 and this is "
          "channel number 2");
    CHECK(only_error("limits: {max_total_segment_bytes: 1MiB}\nchannels:\n"
                     "  - {name: a, kind: queue, slot_size: 1KiB, slot_count: 512}\n"
                     "  - {name: b, kind: queue, slot_size: 1KiB, slot_count: 1024}\n"
                     "  - {name: c, kind: queue, slot_size: 1KiB, slot_count: 1024}\n") ==
          "shmbusd.yaml:4:12: error: the channels up to 'b' need at least 1536 KiB of shared "
          "memory for their slots, more than 'limits.max_total_segment_bytes' (1 MiB)");
}

TEST_CASE("a file with a NUL byte or a second YAML document is refused") {
    CHECK(only_error(std::string_view("limits:\n  max\0clients: 1\n", 25)) ==
          "shmbusd.yaml:2:6: error: a NUL byte is not allowed; a configuration file is UTF-8 "
          "text");
    CHECK(only_error("limits: {}\n---\nchannels: []\n") ==
          "shmbusd.yaml:3:1: error: a configuration file holds one YAML document; remove this "
          "second one or move it to its own file");
}

TEST_CASE("a stray comma is a syntax error, not an endless loop in yaml-cpp") {
    // yaml-cpp 0.7 never consumes such a ',' and LoadAll() loops for ever (yaml-cpp#1040).
    CHECK(only_error(", x\n") == "shmbusd.yaml:1:1: error: unexpected ','");
    CHECK(only_error("{limits: {}}, x\n") == "shmbusd.yaml:1:13: error: unexpected ','");
    CHECK(only_error("limits: {}\n---\n, x\n") == "shmbusd.yaml:3:1: error: unexpected ','");
}

TEST_CASE("control characters and long values are escaped and cut in messages") {
    const std::string message = only_error("\"ke\\x1b[31my" + std::string(100, 'y') + "\": 1\n");
    CHECK(message.find('\x1b') == std::string::npos);
    CHECK(message.find("'ke\\x1b[31myyy") != std::string::npos);
    CHECK(message.find("y...'") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Every error at once

TEST_CASE("every error in a file is reported in one pass, in file order") {
    const ParseOutcome outcome = parse(R"(daemon:
  log_level: loud
limits:
  max_clients: 0
channels:
  - name: jobs
    kind: queue
    overflow: drop
    slot_count: 100
  - name: jobs
    kind: broadcast
    slot_sise: 1KiB
    slot_size: 1GB
    slot_size: 2KiB
  - name: "bad name"
    kind: queue
unknown: 1
)");
    CHECK_FALSE(outcome.config);
    CHECK(errors_of(outcome) ==
          std::vector<std::string>{
              "shmbusd.yaml:2:14: error: unknown log level 'loud' (expected trace, debug, info, "
              "warning or error)",
              "shmbusd.yaml:4:16: error: 'max_clients' must be between 1 and 65536, got 0",
              "shmbusd.yaml:8:15: error: overflow 'drop' is only valid on a broadcast channel; a "
              "queue always blocks",
              "shmbusd.yaml:9:17: error: 'slot_count' must be a power of two, got 100 (nearest: "
              "64 or 128)",
              "shmbusd.yaml:10:11: error: duplicate channel name 'jobs' (first defined at line 6, "
              "column 11)",
              "shmbusd.yaml:12:5: error: unknown key 'slot_sise' (did you mean 'slot_size'?)",
              "shmbusd.yaml:13:16: error: 'slot_size' has an unknown unit 'GB' (did you mean "
              "'1GiB'?); sizes use B, KiB, MiB, GiB or TiB",
              "shmbusd.yaml:14:5: error: duplicate key 'slot_size' (first given at line 13, "
              "column 5)",
              "shmbusd.yaml:15:11: error: invalid channel name 'bad name': ' ' is not allowed (use "
              "letters, digits and _ . : / -)",
              "shmbusd.yaml:17:1: error: unknown key 'unknown' (expected daemon, limits, "
              "dynamic_channels, channels or bridges)",
          });
}

TEST_CASE("a file-level error prints without line and column") {
    CHECK(to_string(
              ConfigError{"/etc/shmbusd/shmbusd.yaml", 0, 0, "cannot open: Permission denied"}) ==
          "/etc/shmbusd/shmbusd.yaml: error: cannot open: Permission denied");
}

// ---------------------------------------------------------------------------------------------
// Merging several sources (main file and drop-ins)

TEST_CASE("later sources override the settings they set and append channels") {
    const std::array<ConfigSource, 3> sources{{
        {"main.yaml", "daemon: {log_level: info, socket: /run/a.sock}\nlimits: {max_clients: 10, "
                      "max_channels: 20}\nchannels:\n  - {name: a, kind: queue}\n"},
        {"conf.d/10-more.yaml",
         "limits: {max_clients: 30}\nchannels:\n  - {name: b, kind: queue}\n"},
        {"conf.d/20-last.yaml", "daemon: {log_level: debug}\nchannels:\n  - {name: c, kind: "
                                "broadcast}\n"},
    }};
    const ParseOutcome outcome = parse_config(sources);
    REQUIRE(outcome.ok());
    const Config& config = *outcome.config;
    CHECK(config.log_level == LogLevel::debug);
    CHECK(*config.socket_path == "/run/a.sock");
    CHECK(config.limits.max_clients == 30);
    CHECK(config.limits.max_channels == 20);
    REQUIRE(config.channels.size() == 3);
    CHECK(config.channels[0].spec.name == "a");
    CHECK(config.channels[1].spec.name == "b");
    CHECK(config.channels[1].where.file == "conf.d/10-more.yaml");
    CHECK(config.channels[2].spec.name == "c");
    CHECK(config.set_at.at("limits.max_clients").file == "conf.d/10-more.yaml");
    CHECK(config.set_at.at("daemon.log_level").file == "conf.d/20-last.yaml");
    CHECK(config.set_at.at("daemon.socket").file == "main.yaml");
}

TEST_CASE("a later source replaces a list setting whole") {
    const std::array<ConfigSource, 2> sources{{
        {"main.yaml", "daemon: {admin: {users: [alice, bob], groups: [staff]}}\n"},
        {"drop.yaml", "daemon: {admin: {users: [carol]}}\n"},
    }};
    const ParseOutcome outcome = parse_config(sources);
    REQUIRE(outcome.ok());
    REQUIRE(outcome.config->admins.users.size() == 1);
    CHECK(outcome.config->admins.users[0].name == "carol");
    CHECK(outcome.config->admins.groups.size() == 1);
}

TEST_CASE("a channel defined again in a drop-in is an error naming both files") {
    const std::array<ConfigSource, 2> sources{{
        {"shmbusd.yaml", "channels:\n  - name: jobs\n    kind: queue\n"},
        {"conf.d/50-jobs.yaml", "channels:\n  - {name: jobs, kind: queue}\n"},
    }};
    CHECK(errors_of(parse_config(sources)) ==
          std::vector<std::string>{"conf.d/50-jobs.yaml:2:12: error: duplicate channel name "
                                   "'jobs' (first defined at shmbusd.yaml:2:11)"});
}

TEST_CASE("errors of several sources are all reported, file by file") {
    const std::array<ConfigSource, 3> sources{{
        {"a.yaml", "limits: {max_clients: x}\nnope: 1\n"},
        {"b.yaml", "limits: [\n"},
        {"c.yaml", "daemon: {log_level: loud}\n"},
    }};
    const ParseOutcome outcome = parse_config(sources);
    CHECK_FALSE(outcome.config);
    const std::vector<std::string> errors = errors_of(outcome);
    REQUIRE(errors.size() == 4);
    CHECK(errors[0].rfind("a.yaml:1:23: error:", 0) == 0);
    CHECK(errors[1].rfind("a.yaml:2:1: error:", 0) == 0);
    CHECK(errors[2].rfind("b.yaml:2:1: error:", 0) == 0);
    CHECK(errors[3].rfind("c.yaml:1:21: error:", 0) == 0);
}

TEST_CASE("limits checks apply to the merged result, not to each source alone") {
    const std::array<ConfigSource, 2> sources{{
        {"main.yaml", "limits: {max_channels: 1}\nchannels:\n  - {name: a, kind: queue}\n"},
        {"drop.yaml", "limits: {max_channels: 2}\nchannels:\n  - {name: b, kind: queue}\n"},
    }};
    CHECK(parse_config(sources).ok());
}

// ---------------------------------------------------------------------------------------------
// Accounts

TEST_CASE("resolve_accounts sets every id and reports unknown names where they are written") {
    Config config = valid(R"(daemon:
  admin: {users: [alice], groups: [staff]}
dynamic_channels:
  users: [bob, mallory]
channels:
  - name: a
    kind: queue
    acl:
      publish: {users: [alice, 1234], groups: [video, nogroup]}
)");
    FakeAccounts accounts;
    const std::vector<ConfigError> errors = resolve_accounts(config, accounts.resolver());
    REQUIRE(errors.size() == 2);
    CHECK(to_string(errors[0]) == "shmbusd.yaml:4:16: error: unknown user 'mallory'");
    CHECK(to_string(errors[1]) == "shmbusd.yaml:9:55: error: unknown group 'nogroup'");
    CHECK(config.admins.users[0].id == 1000U);
    CHECK(config.admins.groups[0].id == 50U);
    CHECK(config.dynamic_channels.creators.users[0].id == 1001U);
    const AccessList& publish = config.channels[0].acl.publish;
    CHECK(publish.users[0].id == 1000U);
    CHECK(publish.users[1].id == 1234U);
    CHECK(publish.groups[0].id == 44U);
    // alice twice, 1234 never: one lookup per distinct name.
    CHECK(accounts.calls == 6);
}

TEST_CASE("resolve_accounts reports a failed lookup with its reason") {
    Config config = valid("daemon:\n  admin: {users: [nss-down]}\n");
    FakeAccounts accounts;
    const std::vector<ConfigError> errors = resolve_accounts(config, accounts.resolver());
    REQUIRE(errors.size() == 1);
    CHECK(to_string(errors[0]) == "shmbusd.yaml:2:19: error: cannot look up 'nss-down': timed out");
}

TEST_CASE("the system resolver finds root and does not find a nonsense name") {
    // uid 0 / gid 0 named root exist on every Linux system the daemon supports.
    const AccountResolver resolver = system_accounts();
    const auto root = resolver.user("root");
    REQUIRE(root.has_value());
    CHECK(root.value() == 0U);
    const auto nobody = resolver.user("shmbus-no-such-user-x7q");
    REQUIRE(nobody.has_value());
    CHECK_FALSE(nobody.value());
    const auto root_group = resolver.group("root");
    REQUIRE(root_group.has_value());
    CHECK(root_group.value() == 0U);
}

// ---------------------------------------------------------------------------------------------
// Paths and loading from disk

TEST_CASE("choose_config_path prefers --config, then the instance's default") {
    std::map<std::string, std::string, std::less<>> env;
    const Environment environment = [&env](std::string_view name) -> std::optional<std::string> {
        const auto it = env.find(name);
        return it == env.end() ? std::nullopt : std::optional<std::string>{it->second};
    };
    env["XDG_CONFIG_HOME"] = "/home/u/.cfg";
    env["HOME"] = "/home/u";

    auto chosen = choose_config_path(Instance::user, std::filesystem::path("my.yaml"), environment);
    REQUIRE(chosen.has_value());
    CHECK(chosen->path == "my.yaml");
    CHECK(chosen->required);

    chosen = choose_config_path(Instance::system, std::nullopt, environment);
    REQUIRE(chosen.has_value());
    CHECK(chosen->path == "/etc/shmbusd/shmbusd.yaml");
    CHECK(chosen->required);

    chosen = choose_config_path(Instance::user, std::nullopt, environment);
    REQUIRE(chosen.has_value());
    CHECK(chosen->path == "/home/u/.cfg/shmbus/shmbusd.yaml");
    CHECK_FALSE(chosen->required);

    env["XDG_CONFIG_HOME"] = "relative/is/ignored";
    chosen = choose_config_path(Instance::user, std::nullopt, environment);
    REQUIRE(chosen.has_value());
    CHECK(chosen->path == "/home/u/.config/shmbus/shmbusd.yaml");

    env.clear();
    chosen = choose_config_path(Instance::user, std::nullopt, environment);
    REQUIRE_FALSE(chosen.has_value());
    CHECK(chosen.code() == Errc::not_found);
}

TEST_CASE("load_config reads the main file, then conf.d drop-ins in name order") {
    const TempDir dir;
    const auto main = dir.write("shmbusd.yaml", "daemon: {log_level: info}\nchannels:\n"
                                                "  - {name: main, kind: queue}\n");
    dir.write("conf.d/20-b.yaml", "daemon: {log_level: error}\nchannels:\n"
                                  "  - {name: b, kind: queue}\n");
    dir.write("conf.d/10-a.yaml", "daemon: {log_level: debug}\nchannels:\n"
                                  "  - {name: a, kind: queue}\n");
    dir.write("conf.d/30-ignored.yml", "this is: [not read\n");
    dir.write("conf.d/.hidden.yaml", "this is: [not read\n");
    dir.write("conf.d/40-notes.txt", "this is: [not read\n");
    std::filesystem::create_directories(dir.path() / "conf.d" / "50-dir.yaml");

    const ParseOutcome outcome = load_config(ConfigPath{main, true});
    for (const std::string& e : errors_of(outcome)) {
        UNSCOPED_INFO(e);
    }
    REQUIRE(outcome.ok());
    const Config& config = *outcome.config;
    CHECK(config.log_level == LogLevel::error);
    REQUIRE(config.channels.size() == 3);
    CHECK(config.channels[0].spec.name == "main");
    CHECK(config.channels[1].spec.name == "a");
    CHECK(config.channels[1].where.file == (dir.path() / "conf.d" / "10-a.yaml").string());
    CHECK(config.channels[2].spec.name == "b");
}

TEST_CASE("load_config reports a drop-in's conflict and errors with the drop-in's path") {
    const TempDir dir;
    const auto main = dir.write("shmbusd.yaml", "channels:\n  - {name: jobs, kind: queue}\n");
    dir.write("conf.d/10-jobs.yaml", "channels:\n  - {name: jobs, kind: queue}\n  - {nam: x}\n");
    const ParseOutcome outcome = load_config(ConfigPath{main, true});
    const std::string drop_in = (dir.path() / "conf.d" / "10-jobs.yaml").string();
    CHECK_FALSE(outcome.config);
    CHECK(errors_of(outcome) ==
          std::vector<std::string>{
              drop_in + ":2:12: error: duplicate channel name 'jobs' (first defined at " +
                  main.string() + ":2:12)",
              drop_in +
                  ":3:5: error: channel has no 'kind' (expected queue, broadcast, blackboard, "
                  "counters, rpc or pool)",
              drop_in + ":3:6: error: unknown key 'nam' (did you mean 'name'?)",
          });
}

TEST_CASE("a missing file is an error when required and built-in defaults when optional") {
    const TempDir dir;
    const std::filesystem::path missing = dir.path() / "shmbusd.yaml";

    const ParseOutcome required = load_config(ConfigPath{missing, true});
    CHECK(errors_of(required) ==
          std::vector<std::string>{missing.string() + ": error: cannot open: No such file "
                                                      "or directory"});
    CHECK_FALSE(required.config);

    const ParseOutcome optional = load_config(ConfigPath{missing, false});
    REQUIRE(optional.ok());
    CHECK(optional.config->channels.empty());

    // Drop-ins apply even when the optional main file is absent.
    dir.write("conf.d/10-a.yaml", "channels:\n  - {name: a, kind: queue}\n");
    const ParseOutcome with_drop_in = load_config(ConfigPath{missing, false});
    REQUIRE(with_drop_in.ok());
    CHECK(with_drop_in.config->channels.size() == 1);
}

TEST_CASE("a configuration path that is a directory is refused") {
    const TempDir dir;
    const ParseOutcome outcome = load_config(ConfigPath{dir.path(), true});
    CHECK(errors_of(outcome) ==
          std::vector<std::string>{dir.path().string() + ": error: not a regular file"});
}

TEST_CASE("the shipped configuration and examples are valid") {
    const std::filesystem::path source_dir = SHMBUS_SOURCE_DIR;
    std::vector<std::filesystem::path> files{source_dir / "config" / "shmbusd.yaml"};
    for (const auto& entry :
         std::filesystem::directory_iterator(source_dir / "config" / "examples")) {
        files.push_back(entry.path());
    }
    CHECK(files.size() >= 3);
    for (const std::filesystem::path& file : files) {
        INFO(file);
        const ParseOutcome outcome = load_config(ConfigPath{file, true});
        for (const std::string& e : errors_of(outcome)) {
            UNSCOPED_INFO(e);
        }
        CHECK(outcome.ok());
    }
    const ParseOutcome shipped =
        load_config(ConfigPath{source_dir / "config" / "shmbusd.yaml", true});
    REQUIRE(shipped.ok());
    REQUIRE(shipped.config->channels.size() == 2);
    CHECK(shipped.config->channels[0].spec.name == "demo");
    CHECK(shipped.config->channels[0].spec.kind == ChannelKind::broadcast);
    CHECK(shipped.config->channels[1].spec.name == "jobs");
    CHECK(shipped.config->channels[1].spec.kind == ChannelKind::queue);
}
