// Restart recovery: what a daemon takes back from the runs before it, and what it writes down
// so that the next one can do the same.
//
// A daemon that starts finds the channels of the previous run in two places: the service
// manager's descriptor store (segment_store.hpp; the segments themselves, adopted before this
// object runs) and its state file (state_file.hpp; only the identities of the segments, which
// the clients still hold). restore() reads the state file:
//  - a channel adopted from the store with endpoints attached is kept apart from new opens
//    (RegisteredChannel::from_previous_run) until the grace period ends;
//  - a recorded channel the store did not give back is *awaited*: the first client that
//    offers descriptors with the recorded identity and creation id gives it back
//    (take_back()). Meanwhile a configured one has a *stand-in* (created by DaemonState at
//    start, RegisteredChannel::stand_in), so that it is listed and can be opened at once.
//    The offered segments replace the stand-in as long as nobody has opened it; once a new
//    client has, the stand-in is the channel and later offers are refused, saying why — a
//    new client never waits for old ones.
//
// The grace period (run by the event loop from in_grace(), ended by end_grace()) gives
// reconnecting clients time to offer. At its end, attached entries of a channel of the
// previous run that no client claimed are reclaimed as dead, stand-ins become the channels,
// and awaited channels are forgotten.
//
// What the state file records (running_state(), state_at_stop()): every channel of this run,
// and every awaited channel of an earlier run in place of its stand-in. An awaited channel thus
// survives any number of restarts inside their grace periods (a client stopped for a while
// can still give it back) until it is given back or a grace period ends without it. At a
// graceful stop only what a client could offer back is kept: channels a client holds and
// awaited ones; nothing at all removes the file.
//
// Owns: the StateFile (and its lock) and the awaited records. The registry is DaemonState's;
// this object changes it only to adopt offered segments in place of a stand-in.
//
// Thread: the event loop's thread only. Failure policy: values; logs the daemon-wide events
// of a restart (what was found, given back, reclaimed, forgotten).
#pragma once

#include "channel_registry.hpp"
#include "config.hpp"
#include "logging.hpp"
#include "state_file.hpp"

#include <protocol/wire.hpp>
#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::daemon {

class RestartRecovery {
public:
    RestartRecovery(ChannelRegistry& registry, StateFile file) noexcept
        : registry_{registry}, file_{std::move(file)} {}
    RestartRecovery(const RestartRecovery&) = delete;
    RestartRecovery& operator=(const RestartRecovery&) = delete;

    /// At start, after adopt_stored_channels() returned `adopted`: marks the adopted channels
    /// with endpoints attached, and reads the state file for the channels to await. Returns
    /// true when a grace period must run. A state file that cannot be read is logged and
    /// ignored.
    bool restore(const std::vector<std::string>& adopted);
    /// Whether a grace period is running (end_grace() not called yet).
    [[nodiscard]] bool in_grace() const;
    /// Whether `name` is a channel of an earlier run no client has offered back yet.
    [[nodiscard]] bool awaiting(std::string_view name) const noexcept;
    /// Whether any channel of an earlier run has not been offered back yet.
    [[nodiscard]] bool awaiting_any() const noexcept { return !awaited_.empty(); }
    /// The grace period is over: reclaims the attached entries nobody claimed, makes the
    /// stand-ins the channels, forgets the awaited channels. The caller creates configured
    /// channels that have neither, and writes the state file.
    void end_grace();

    /// The channel a reconnecting client's offer names, when the offered descriptors are its
    /// files with its creation id: a channel this daemon serves, or an awaited one, which is
    /// then adopted from the offered descriptors (in place of its stand-in) with the
    /// configured acl, or, for a dynamic one, its creator's. `who`/`fields` name the client
    /// in the log. Errors: not_found (no such channel with that creation id), permission_denied
    /// (other files), already_exists (a new client opened the stand-in first).
    struct Offered {
        RegisteredChannel* channel{nullptr};
        bool given_back{false}; ///< adopted from this offer: the state file changed
    };
    [[nodiscard]] Result<Offered> take_back(const proto::ReclaimOffer& offer,
                                            std::vector<UniqueFd>& fds, const Config& config,
                                            const std::string& who, const LogFields& fields);

    /// What the state file says while the daemon runs.
    [[nodiscard]] SavedState running_state() const;
    /// What it says after a graceful stop: only what a client could still offer back.
    [[nodiscard]] SavedState state_at_stop() const;
    [[nodiscard]] const StateFile& file() const noexcept { return file_; }

private:
    ChannelRegistry& registry_;
    StateFile file_;
    /// Recorded channels not yet offered back, by name.
    std::map<std::string, ChannelRecord, std::less<>> awaited_;

    /// The records of `keep`-selected registry channels plus the awaited ones, each name once.
    template <typename Keep>
    [[nodiscard]] SavedState state_of(Keep keep) const;
};

} // namespace shmbus::daemon
