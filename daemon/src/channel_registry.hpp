// The discovery table: every channel the daemon serves, and who holds which endpoint.
//
// Owns: each channel's writable descriptors (ChannelFiles, duplicated for clients on open),
// its ChannelSupervisor (statistics, reclaiming dead endpoints) and the claims — the
// daemon's own record of which client holds which endpoint index. The segments' endpoint
// tables live in shared memory and are untrusted; the claims are the truth the daemon acts
// on, and the segment table is consulted only to avoid handing out an entry still in use.
//
// Invariants:
//  - a (channel, role, index) is claimed by at most one client;
//  - assign_endpoint() hands out the lowest index that no claim holds and that is free in
//    the segment's table, below the channel's max_publishers / max_subscribers;
//  - total_bytes() is the sum of every registered channel's control + payload bytes.
//
// Liveness: reclaim_client() is called when a client's connection closes; for each claim it
// reclaims the endpoint in the segment (ChannelSupervisor::reclaim_publisher/subscriber;
// not_found means the client detached cleanly) and drops the claim. A channel that is
// `draining` (removed from the configuration while in use) or a dynamic channel whose
// creator is gone disappears once no claim holds it and no entry of its tables is attached
// (collect_unused()).
//
// Peer events: the registry posts `attached` when it hands an index out and `detached` when
// a client gives one back (or had detached when its connection ended); a reclaim posts
// `died` itself (ChannelSupervisor). The daemon is the one writer of every event ring.
//
// Thread: the event loop's thread only. Failure policy: values; the registry never logs —
// the caller logs what the returned reports say.
#pragma once

#include "config.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>
#include <shmbus/supervisor.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::daemon {

/// One endpoint a client holds, as the daemon recorded it when it answered the open.
struct EndpointClaim {
    std::uint64_t client_id{0};
    Role role{Role::subscriber};
    std::uint32_t index{0};
    std::uint32_t pid{0};
    std::uint32_t uid{0};
    std::string client_name;
};

/// Where a channel came from.
struct ChannelOrigin {
    bool dynamic{false};
    std::uint64_t creator_client{0}; ///< dynamic only; 0 once the creator has gone
    std::uint32_t creator_uid{0};
};

struct RegisteredChannel {
    ChannelSpec spec;
    ChannelAcl acl;
    ChannelInfo info;
    ChannelOrigin origin;
    ChannelFiles files;           ///< writable; duplicated for each open
    ChannelSupervisor supervisor; ///< attached to its own duplicate of `files`
    std::vector<EndpointClaim> claims;
    bool draining{false}; ///< removed from the configuration, kept while claimed
    /// `files` with the payload read-only (a new open file description, so that mmap with
    /// PROT_WRITE fails on it), made at the first subscriber open and duplicated after.
    ChannelFiles subscriber_files;
    /// Taken back from an earlier run (adopt()): its table may hold attached entries no
    /// client has claimed yet, so opens must not hand those indexes out. Cleared once the
    /// restart's grace period has swept them.
    bool from_previous_run{false};
    /// Created at start in place of a channel of the previous run that its clients may still
    /// offer back (restart_recovery.hpp): listed and openable at once, and replaced by the
    /// offered segments as long as nobody has opened it. The first open makes it the channel
    /// for good (assign_endpoint() clears the flag).
    bool stand_in{false};

    [[nodiscard]] std::uint64_t bytes() const noexcept {
        return info.control_bytes + info.payload_bytes;
    }
    /// Descriptors to pass to a client opening the channel as `role`: duplicates of
    /// `files` for a publisher, of `subscriber_files` for a subscriber.
    [[nodiscard]] Result<ChannelFiles> files_for(Role role);
};

/// Dynamic channels created by one uid's clients, and the bytes of their segments.
struct DynamicUsage {
    std::uint32_t channels{0};
    std::uint64_t bytes{0};
};

/// What reclaiming one endpoint found.
struct ReclaimedEndpoint {
    std::string channel;
    EndpointClaim claim;
    bool was_attached{false}; ///< the client had not detached: the daemon freed its entry
    ReclaimReport report;
    std::optional<Error> error; ///< a reclaim that failed for another reason than not_found
};

/// The acl of a dynamic channel: its creator's uid, for both roles (root and the daemon's
/// user may open every channel anyway).
[[nodiscard]] ChannelAcl dynamic_channel_acl(std::uint32_t creator_uid);

/// Whether a channel of `spec` fits `limits` next to `channels` channels that reserve
/// `bytes` bytes. Errc::limit_reached naming the channel, the limit and what is in use.
[[nodiscard]] Result<void> check_room(const ChannelSpec& spec, std::size_t channels,
                                      std::uint64_t bytes, const Limits& limits);

/// The lowest index in [0, table_size) not in `taken`, or nothing when all are taken.
[[nodiscard]] std::optional<std::uint32_t>
lowest_free_index(std::uint32_t table_size, const std::vector<std::uint32_t>& taken);

class ChannelRegistry {
public:
    ChannelRegistry() = default;
    ChannelRegistry(const ChannelRegistry&) = delete;
    ChannelRegistry& operator=(const ChannelRegistry&) = delete;

    /// Creates the channel's segments (create_channel with `max_channel_bytes` as ceiling)
    /// and registers it. Errc::already_exists for a name in use; create_channel's errors.
    [[nodiscard]] Result<RegisteredChannel*> create(const ChannelSpec& spec, ChannelAcl acl,
                                                    ChannelOrigin origin,
                                                    std::uint64_t max_channel_bytes);
    /// Registers a channel whose segments already exist (taken back after a restart).
    /// inspect_channel() validates them; Errc::already_exists for a name in use.
    [[nodiscard]] Result<RegisteredChannel*> adopt(ChannelFiles files, ChannelAcl acl,
                                                   ChannelOrigin origin);
    /// Forgets a channel now, whatever holds it. The caller decides it is safe.
    void remove(std::string_view name);

    [[nodiscard]] RegisteredChannel* find(std::string_view name) noexcept;
    [[nodiscard]] const RegisteredChannel* find(std::string_view name) const noexcept;
    /// Every channel, by name.
    [[nodiscard]] std::vector<const RegisteredChannel*> channels() const;
    [[nodiscard]] std::vector<RegisteredChannel*> channels();
    [[nodiscard]] std::size_t size() const noexcept { return channels_.size(); }
    [[nodiscard]] std::uint64_t total_bytes() const noexcept;

    /// Claims the lowest free endpoint index of `role` on `channel` for `who` (whose role and
    /// index fields are filled in). Errc::limit_reached naming the channel and its maximum.
    /// The first claim on a stand-in makes it the channel for good (on_stand_in_opened).
    [[nodiscard]] Result<std::uint32_t> assign_endpoint(RegisteredChannel& channel, Role role,
                                                        EndpointClaim who);
    /// The client says it closed (detached) endpoint `index`. The claim is dropped if the
    /// segment shows the entry free; an entry still attached stays claimed, to be reclaimed
    /// when the client goes. Errc::not_found if the client holds no such claim.
    [[nodiscard]] Result<void> release_endpoint(std::uint64_t client_id, std::string_view channel,
                                                Role role, std::uint32_t index);
    /// Reclaims every endpoint `client_id` holds (its connection closed) and forgets that it
    /// created any dynamic channel.
    [[nodiscard]] std::vector<ReclaimedEndpoint> reclaim_client(std::uint64_t client_id);
    /// Drops one claim after reclaiming its endpoint (a dead claim found after a restart).
    [[nodiscard]] ReclaimedEndpoint reclaim_claim(RegisteredChannel& channel,
                                                  const EndpointClaim& claim);
    /// Removes draining channels and creator-less dynamic channels that nobody holds; returns
    /// their names.
    [[nodiscard]] std::vector<std::string> collect_unused();

    /// Adds a claim for an endpoint a client already holds (it offered its descriptors back
    /// after reconnecting). Errc::already_exists if another client claims that entry.
    [[nodiscard]] Result<void> add_claim(RegisteredChannel& channel, EndpointClaim claim);

    /// Called after a channel is registered and before one is forgotten (the fd store).
    std::function<void(const RegisteredChannel&)> on_added;
    std::function<void(const RegisteredChannel&)> on_removed;
    /// Called when a stand-in gets its first endpoint and so stops standing in.
    std::function<void(const RegisteredChannel&)> on_stand_in_opened;

    /// Endpoints `client_id` holds, over all channels.
    [[nodiscard]] std::uint32_t endpoints_of(std::uint64_t client_id) const noexcept;
    /// Dynamic channels `client_id` created that still exist.
    [[nodiscard]] std::uint32_t dynamic_channels_of(std::uint64_t client_id) const noexcept;
    /// Endpoints the clients of `uid` hold, over all channels (per-uid quotas).
    [[nodiscard]] std::uint32_t endpoints_of_uid(std::uint32_t uid) const noexcept;
    /// Dynamic channels the clients of `uid` created that still exist, and their bytes.
    [[nodiscard]] DynamicUsage dynamic_usage_of_uid(std::uint32_t uid) const noexcept;

private:
    std::map<std::string, std::unique_ptr<RegisteredChannel>, std::less<>> channels_;

    /// create() and adopt(): registers the channel in `files`.
    [[nodiscard]] Result<RegisteredChannel*> add(ChannelFiles files, ChannelAcl acl,
                                                 ChannelOrigin origin, bool from_previous_run);
};

} // namespace shmbus::daemon
