// What the tests of bridges between real shmbusd processes share, through the daemons' own
// interfaces only (no gateway code): the channels they move, reaching a daemon as a client,
// its bridges as `list_bridges` shows them, waiting for a bridge to stream, the shared secret
// both ends' `secret_file` names, checking that messages cross, and a reload with a new
// configuration file.
#pragma once

#include "daemon_process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/client.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace shmbus::test {

/// A channel the bridge tests move: broadcast, 128-byte slots, 64 deep, open to all.
inline TestChannel bridged(const std::string& name) {
    return {.name = name,
            .kind = "broadcast",
            .slot_size = 128,
            .slot_count = 64,
            .max_publishers = 2,
            .max_subscribers = 4};
}

inline ClientOptions options_for(const DaemonProcess& d, const std::string& name = "test") {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    return o;
}

/// A shared secret, mode 0600, as both ends' secret_file.
inline std::string make_secret(const TempDir& dir) {
    const auto path = dir.path() / "bridge.key";
    {
        std::ofstream out(path);
        out << "a secret both test daemons share, long enough";
    }
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    return path.native();
}

/// Bridge `name` of `d` as list_bridges shows it; nothing if there is none (or no answer).
inline std::optional<BridgeSummary> bridge_of(const DaemonProcess& d, const std::string& name) {
    auto c = Client::connect(options_for(d));
    if (!c) {
        return std::nullopt;
    }
    auto list = c.value().list_bridges();
    if (!list) {
        return std::nullopt;
    }
    for (auto& b : list.value()) {
        if (b.name == name) {
            return b;
        }
    }
    return std::nullopt;
}

/// Waits until bridge `name` of `d` is connected with `streams` streams, every exporting
/// one granted credits (so a message published now is sent).
inline bool wait_streaming(const DaemonProcess& d, const std::string& name, std::size_t streams) {
    return wait_until([&] {
        auto b = bridge_of(d, name);
        if (!b || b->state != "connected" || b->streams.size() != streams) {
            return false;
        }
        for (const auto& s : b->streams) {
            if (s.exporting && s.credits == 0) {
                return false;
            }
        }
        return true;
    });
}

/// The port bridge `name` of `d` listens on, once it does.
inline std::uint16_t listening_port(const DaemonProcess& d, const std::string& name) {
    std::uint16_t port = 0;
    REQUIRE(wait_until([&] {
        auto b = bridge_of(d, name);
        port = b ? b->listening_port : 0;
        return port != 0;
    }));
    return port;
}

/// Sends `count` stamped messages on `from_channel` at `from` and checks each arrives, in
/// order and with nothing lost before it, on `to_channel` at `to`.
inline void check_flow(const DaemonProcess& from, const std::string& from_channel,
                       const DaemonProcess& to, const std::string& to_channel,
                       std::uint64_t count) {
    auto to_app = Client::connect(options_for(to));
    REQUIRE(to_app.has_value());
    auto sub = to_app.value().open_subscriber(to_channel);
    REQUIRE(sub.has_value());
    auto from_app = Client::connect(options_for(from));
    REQUIRE(from_app.has_value());
    auto pub = from_app.value().open_publisher(from_channel);
    REQUIRE(pub.has_value());
    std::vector<std::byte> buf(128);
    for (std::uint64_t id = 0; id < count; ++id) {
        stamp(buf, id);
        REQUIRE(pub.value().send(buf, std::chrono::seconds{60}).has_value());
        auto r = sub.value().receive_copy(buf, std::chrono::seconds{60});
        REQUIRE(r.has_value());
        REQUIRE(check_stamp(std::span{buf}.first(r.value().size)) == id);
        REQUIRE(r.value().lost_before == 0);
    }
}

/// Writes `yaml` as the configuration file of `d` and asks it to reload; the daemon's summary
/// of what changed ("bridge 'x' added (...)").
inline std::string reload_with(const DaemonProcess& d, const std::string& yaml) {
    {
        std::ofstream out(d.config_path());
        out << yaml;
    }
    auto c = Client::connect(options_for(d));
    REQUIRE(c.has_value());
    auto summary = c.value().reload();
    REQUIRE(summary.has_value());
    return summary.value();
}

} // namespace shmbus::test
