// Keeping channel segments across a daemon restart, under systemd.
//
// The data plane does not need the daemon, so clients keep exchanging messages while it
// restarts; what the new daemon must not do is create *new* segments for channels whose old
// ones are still in use, splitting the clients in two. Under systemd the daemon therefore
// hands every segment's descriptors to the service manager's file-descriptor store
// (FDSTORE=1, FDNAME=, with FileDescriptorStoreMax= in the unit) when it creates a channel,
// removes them (FDSTOREREMOVE=1) when the channel goes, and receives them again at start
// (sd_listen_fds_with_names). Nothing received is trusted: inspect_channel() validates both
// regions, and a channel whose geometry no longer matches the configuration is set aside
// (logged, dropped from the store; its clients keep their mappings) and created anew.
//
// FDNAME rules: systemd refuses ':' and control characters in a name, and channel names may
// contain ':'. A stored name is therefore the channel name with ':' written as '%' (a
// character channel names cannot hold), then '#' and the region: "sensors%imu#control".
//
// Without systemd (no NOTIFY_SOCKET), storing is a no-op; see docs/operations.md for what a
// restart then means.
//
// Thread: the event loop's thread. Failure policy: values and log lines; a segment that
// cannot be stored only loses the restart guarantee for that channel.
#pragma once

#include "channel_registry.hpp"
#include "config.hpp"
#include "systemd_notify.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::daemon {

/// The FDNAME of one region of `channel`.
[[nodiscard]] std::string fd_store_name(std::string_view channel, bool control);

/// The channel and region an FDNAME stands for; nothing if it is not one of ours.
struct StoredRegion {
    std::string channel;
    bool control{false};
};
[[nodiscard]] std::optional<StoredRegion> parse_fd_store_name(std::string_view name);

/// Stores the descriptors of `channel` (no-op without NOTIFY_SOCKET).
void store_channel(const RegisteredChannel& channel);
/// Removes them from the store.
void forget_stored_channel(const RegisteredChannel& channel);

/// Takes the channel segments among `passed` (each descriptor taken is left empty) and
/// registers those that match `config` (or are not in it: kept as channels without a
/// creator, removed once nobody is attached). Returns the names adopted.
std::vector<std::string> adopt_stored_channels(std::vector<PassedFd>& passed, const Config& config,
                                               ChannelRegistry& registry);

/// Whether descriptors `a` and `b` are the same file (st_dev and st_ino).
[[nodiscard]] bool same_file(int a, int b) noexcept;

} // namespace shmbus::daemon
