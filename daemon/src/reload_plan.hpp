// Reload as a plan: what a new configuration would do to the running channels, decided
// without touching anything (plan_reload()), then carried out by DaemonState::apply().
//
// The rules, channel by channel of the new configuration, in its order:
//  - a dynamic channel of that name exists: not applied (the dynamic one stays);
//  - same kind and geometry: kept, with the new acl (and no longer draining if it was);
//  - other geometry, and the channel is held (claims, attached entries) or stands in for a
//    channel of the previous run its clients may still offer back: not changed, the old one
//    keeps running, with the new acl;
//  - other geometry, nobody holds it: re-created, if the new limits leave room once the old
//    one is gone;
//  - new: created, if the new limits leave room.
// Every configured channel that is not in the new configuration is marked draining (it goes
// once nobody holds it: DaemonState removes and logs it after applying the plan). Room is
// judged by the new configuration's limits, counting what the steps before have created and
// removed, as applying them in order will.
//
// Bridges, by name: a bridge only in the new configuration is added, one only in the running
// configuration removed, and one whose settings differ in any way (address, end, secret,
// export or import lists) restarted with the new ones; the others are not touched, so their
// links stay up.
//
// plan_reload() is pure: it reads the registry and the configuration and returns values, so
// that tests can state what a reload does without a daemon. Thread: the event loop's.
#pragma once

#include "channel_registry.hpp"
#include "config.hpp"

#include <optional>
#include <string>
#include <vector>

namespace shmbus::daemon {

/// What a reload does to one channel.
enum class ReloadAction {
    keep,           ///< same geometry: the new acl
    undrain,        ///< same geometry, was draining: kept, the new acl
    dynamic_clash,  ///< a dynamic channel of that name exists: not applied
    refuse_in_use,  ///< other geometry, but held: not changed, the new acl
    recreate,       ///< other geometry, unused: removed and created anew
    remove_no_room, ///< other geometry, unused, no room for the new one: removed only
    create,         ///< new channel
    create_no_room, ///< new channel, no room
    drain,          ///< not configured any more: goes when nobody holds it
};

struct ChannelChange {
    ReloadAction action{ReloadAction::keep};
    /// The channel's new configuration; for drain, only spec.name is set.
    ChannelConfig config;
    /// recreate, remove_no_room, refuse_in_use: the geometry change ("slot_size 64 -> 128").
    std::string detail;
    /// remove_no_room, create_no_room: the limit's message; refuse_in_use: who holds it.
    std::string why_not;
    bool held{false}; ///< drain: somebody holds it, it goes later
};

/// What a reload does to one bridge (bridges that do not change are not listed).
enum class BridgeAction {
    add,     ///< new: started
    remove,  ///< not configured any more: stopped
    restart, ///< other settings: stopped, and started with the new ones
};

struct BridgeChange {
    BridgeAction action{BridgeAction::add};
    /// The bridge's new configuration; for remove, the running one.
    ConfiguredBridge config;
    /// restart: what differs ("connect tcp://a:1 -> tcp://b:1, export").
    std::string detail;
};

struct ReloadPlan {
    std::vector<ChannelChange> channels;
    std::vector<BridgeChange> bridges; ///< removals first, then in the new file's order
    std::optional<LogLevel> log_level; ///< set when it changes
};

/// What applying `next` to the channels of `registry`, under the running `current`
/// configuration, would do.
[[nodiscard]] ReloadPlan plan_reload(const ChannelRegistry& registry, const Config& current,
                                     const Config& next);

/// The summary line of a step whose outcome does not depend on carrying it out (everything
/// but recreate and create); empty for keep.
[[nodiscard]] std::string describe(const ChannelChange& change);

/// What turning the bridges `current` into `next` takes.
[[nodiscard]] std::vector<BridgeChange> plan_bridges(const std::vector<ConfiguredBridge>& current,
                                                     const std::vector<ConfiguredBridge>& next);

/// The summary line of a bridge step once carried out: "bridge 'ground' added".
[[nodiscard]] std::string describe(const BridgeChange& change);

} // namespace shmbus::daemon
