// The channels the daemon tests configure, written once.
//
// Most tests that start shmbusd (tests/support/daemon_process.hpp) need the same two
// channels: `telemetry`, a broadcast channel, and `jobs`, a queue, both open to every user.
// standard_channels_yaml() is that configuration. A test that needs a variation (an acl that
// admits only root, a deeper ring, a drop channel) starts from telemetry_channel() or
// jobs_channel(), changes the fields it is about, and renders the list with channels_yaml(),
// so that what differs from the usual channels is visible in the test and the YAML's shape
// lives here alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::test {

/// One entry of a configuration's `channels:` list.
struct TestChannel {
    std::string name;
    std::string kind;              ///< "queue" or "broadcast"
    std::uint64_t slot_size{64};   ///< bytes
    std::uint64_t slot_count{16};  ///< a power of two
    std::string overflow{"block"}; ///< broadcast only: "block" or "drop"
    std::uint32_t max_publishers{1};
    std::uint32_t max_subscribers{1};
    /// acl.publish.users and acl.subscribe.users ("*": everyone; a numeric id or a name).
    /// Both empty: no acl, so that only root and the daemon's own user may open the channel.
    std::vector<std::string> publishers{"*"};
    std::vector<std::string> subscribers{"*"};
};

/// `telemetry`: broadcast, 8 slots of 256 B, block, 1 publisher, 2 subscribers, open to all.
inline TestChannel telemetry_channel() {
    return {.name = "telemetry",
            .kind = "broadcast",
            .slot_size = 256,
            .slot_count = 8,
            .max_subscribers = 2};
}

/// `jobs`: a queue of 16 slots of 64 B, 2 publishers, 2 consumers, open to all.
inline TestChannel jobs_channel() {
    return {.name = "jobs", .kind = "queue", .max_publishers = 2, .max_subscribers = 2};
}

/// The `channels:` section (a whole configuration file) for `channels`.
inline std::string channels_yaml(const std::vector<TestChannel>& channels) {
    const auto users = [](const std::vector<std::string>& names) {
        std::string list;
        for (const auto& n : names) {
            list += (list.empty() ? "\"" : ", \"") + n + "\"";
        }
        return "{users: [" + list + "]}";
    };
    std::string yaml = "channels:\n";
    for (const auto& c : channels) {
        yaml += "  - name: " + c.name + "\n";
        yaml += "    kind: " + c.kind + "\n";
        yaml += "    slot_size: " + std::to_string(c.slot_size) + "\n";
        yaml += "    slot_count: " + std::to_string(c.slot_count) + "\n";
        if (c.kind == "broadcast") {
            yaml += "    overflow: " + c.overflow + "\n";
        }
        yaml += "    max_publishers: " + std::to_string(c.max_publishers) + "\n";
        yaml += "    max_subscribers: " + std::to_string(c.max_subscribers) + "\n";
        if (!c.publishers.empty() || !c.subscribers.empty()) {
            yaml += "    acl:\n";
            yaml += "      publish:   " + users(c.publishers) + "\n";
            yaml += "      subscribe: " + users(c.subscribers) + "\n";
        }
    }
    return yaml;
}

/// `telemetry` and `jobs` as above: the configuration most daemon tests start from.
inline std::string standard_channels_yaml() {
    return channels_yaml({telemetry_channel(), jobs_channel()});
}

} // namespace shmbus::test
