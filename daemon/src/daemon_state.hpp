// The daemon's state apart from its I/O: the running configuration, the channel registry,
// the table of connected clients, and the operations that span them — creating the
// configured channels at start, reclaiming a client that went away, reload, and (through
// RestartRecovery, restart_recovery.hpp) taking channels back after a restart.
//
// Owns: Config (the running one; replaced whole by a successful reload), ChannelRegistry,
// RestartRecovery (with the locked state file), and one ClientRecord per connection. The
// event loop owns the connections and tells this object when one opens and closes; sessions
// read and change it through its methods.
//
// Reload policy: a configuration with errors changes nothing and the error lists every
// problem. Otherwise every part that can apply does: limits, admins, log level and the
// dynamic-channel policy at once; ACL changes for the next opens; what happens to each
// channel is planned first (reload_plan.hpp: created, kept, re-created, refused because it is
// in use, marked draining) and then carried out; channels that go are logged by name. Bridges
// are added, removed and restarted one by one (bridges.hpp), the others left running. The
// summary says what changed, and what could not be applied.
//
// Thread: the event loop's thread only. Failure policy: values; logging is done here for
// daemon-wide events (reclaims, reload), with the client's pid/uid/name and the channel.
#pragma once

#include "access_control.hpp"
#include "channel_registry.hpp"
#include "config.hpp"
#include "restart_recovery.hpp"
#include "runtime_paths.hpp"
#include "state_file.hpp"

#include <protocol/wire.hpp>
#include <shmbus/unique_fd.hpp>

#include <shmbus/client.hpp>
#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace shmbus::daemon {

class Bridges;

/// One connected client.
struct ClientRecord {
    std::uint64_t id{0};
    Credentials credentials;
    std::string name; ///< from its Hello; empty until then
    std::int64_t connected_since_ms{0};
};

/// "client 7 (pid 42, uid 1000, 'demo')" for log lines.
[[nodiscard]] std::string describe(const ClientRecord& client);

class DaemonState {
public:
    DaemonState(Config config, ConfigPath config_path, RuntimePaths paths, StateFile state_file,
                std::uint32_t daemon_uid);
    DaemonState(const DaemonState&) = delete;
    DaemonState& operator=(const DaemonState&) = delete;

    /// Creates every configured channel that does not exist yet (adopted segments count); one
    /// that clients of the previous run may still offer back gets a stand-in
    /// (restart_recovery.hpp), or, without room for it, waits for the end of the grace period.
    /// Errors name the channel; the caller refuses to start.
    [[nodiscard]] Result<void> create_configured_channels();

    [[nodiscard]] const Config& config() const noexcept { return config_; }
    [[nodiscard]] const ConfigPath& config_path() const noexcept { return config_path_; }
    [[nodiscard]] const RuntimePaths& paths() const noexcept { return paths_; }
    [[nodiscard]] std::uint32_t daemon_uid() const noexcept { return daemon_uid_; }
    [[nodiscard]] ChannelRegistry& registry() noexcept { return registry_; }
    [[nodiscard]] const ChannelRegistry& registry() const noexcept { return registry_; }

    /// Registers a new connection; its id is never reused. Errc::limit_reached beyond
    /// limits.max_clients, its share of it, or its uid's quota (admit_connection()).
    [[nodiscard]] Result<ClientRecord*> add_client(const Credentials& credentials);
    [[nodiscard]] ClientRecord* find_client(std::uint64_t id) noexcept;
    [[nodiscard]] const std::map<std::uint64_t, ClientRecord>& clients() const noexcept {
        return clients_;
    }
    /// The client's connection closed: reclaims every endpoint it held, logs what was
    /// repaired, removes channels nobody holds any more, forgets the client.
    void remove_client(std::uint64_t id);
    /// Removes the channels nobody holds any more that may go (draining, or dynamic with no
    /// creator), logging each; the state file follows.
    void remove_unused_channels();
    /// Forgets the client without reclaiming (graceful stop: clients keep their endpoints).
    void forget_client(std::uint64_t id);

    /// Creates a dynamic channel for `client`: policy, creator ACL, sizes, per-client,
    /// per-uid (admit_dynamic_channel()) and global limits. Fields of `spec` not in `given`
    /// (proto::kSpec* bits), and numeric fields that are 0, take dynamic_channels.defaults. The new
    /// channel admits its creator's uid for both roles.
    [[nodiscard]] Result<void> create_dynamic(const ClientRecord& client, ChannelSpec spec,
                                              std::uint32_t given = proto::kAllSpecFields);

    /// Loads the configuration again and applies it. The Ok value is a summary of what
    /// changed; the error lists every configuration error (the running one is kept).
    [[nodiscard]] Result<std::string> reload();
    /// Applies an already loaded, resolved configuration (reload's second half).
    [[nodiscard]] std::string apply(Config next);

    /// After a restart (RestartRecovery::restore()): channels in `adopted` (taken back from the
    /// descriptor store) may still have endpoints of the previous run attached; the state file
    /// says which other channels the previous run had, and their clients may offer them back.
    /// Returns true when a grace period must run (end_grace() when it is over).
    bool restore_after_restart(const std::vector<std::string>& adopted);
    /// Whether a grace period is running (end_grace() not called yet).
    [[nodiscard]] bool in_grace() const { return recovery_.in_grace(); }
    /// Whether `name` is a recorded channel no client has offered back yet.
    [[nodiscard]] bool awaiting(std::string_view name) const noexcept {
        return recovery_.awaiting(name);
    }
    /// The grace period is over (RestartRecovery::end_grace()); configured channels that have
    /// neither the offered segments nor a stand-in are created anew.
    void end_grace();
    /// A reconnecting client offers the descriptors of an endpoint it holds. Accepted only if
    /// they are the files of the channel as this daemon (or, after a restart, its state
    /// file) knows them, with the same creation id; then the endpoint is this client's.
    [[nodiscard]] Result<void> take_back(const ClientRecord& client,
                                         const proto::ReclaimOffer& offer,
                                         std::vector<UniqueFd> fds);
    /// The state file (channels and their files' identities) is out of date.
    /// Written at once, unless on_state_dirty is set: then the owner calls flush_state()
    /// when the burst of requests at hand is handled, so that 1,000 opens in one loop
    /// iteration cost one write, not 1,000.
    void save_state();
    /// Writes the state file if save_state() was called since the last write.
    void flush_state();
    /// Whether save_state() was called since the last write.
    [[nodiscard]] bool state_write_pending() const noexcept { return state_dirty_; }
    /// After a graceful stop: writes only what a client could still offer back to the next
    /// daemon (RestartRecovery::state_at_stop()); nothing removes the state file.
    void write_state_at_stop();

    /// The gateway whose bridges reload changes; none until the daemon starts them (and in
    /// tests without a gateway). Not owned.
    void attach_bridges(Bridges* bridges) noexcept { bridges_ = bridges; }
    /// Starts the attached gateway's bridges on the configuration's — at once, or, while
    /// channels of the previous run may still be offered back (a restart with a state file
    /// and no descriptor store), once the last of them is back or the grace period ends. A
    /// bridge opens the channels it moves as any client does: one that opened a channel's
    /// stand-in before its clients offered it back would make the stand-in the channel, and
    /// their offers would be refused.
    void start_bridges();
    [[nodiscard]] Bridges* bridges() const noexcept { return bridges_; }

    /// The Status reply.
    [[nodiscard]] DaemonStatus status() const;
    /// "3 clients, 2 channels" for STATUS=.
    [[nodiscard]] std::string status_line() const;

    /// Called after anything that changes the client or channel count (STATUS= updates).
    std::function<void()> on_change;
    /// Called by save_state() when it leaves the write to flush_state(); unset: write at once.
    std::function<void()> on_state_dirty;

private:
    Config config_;
    ConfigPath config_path_;
    RuntimePaths paths_;
    std::uint32_t daemon_uid_;
    ChannelRegistry registry_;
    std::map<std::uint64_t, ClientRecord> clients_;
    std::uint64_t next_client_id_{1};
    std::chrono::steady_clock::time_point started_{std::chrono::steady_clock::now()};
    RestartRecovery recovery_;
    Bridges* bridges_{nullptr};
    bool bridges_deferred_{false}; // start_bridges() waits for the previous run's channels
    bool state_write_failed_{false};
    bool state_dirty_{false};

    void changed() {
        if (on_change) {
            on_change();
        }
    }
    /// Whether `spec` fits `limits` (the running ones, or a reload's new ones).
    [[nodiscard]] Result<void> check_room_for(const ChannelSpec& spec, const Limits& limits) const;
    /// Writes `state` to the state file, warning once while writes fail.
    void write_state(const SavedState& state);
};

} // namespace shmbus::daemon
