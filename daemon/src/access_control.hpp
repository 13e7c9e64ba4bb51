// Who a client is, and what it may do.
//
// A client's identity is what the kernel says about the peer of its control connection
// (SO_PEERCRED: pid, uid, gid at connect() time) plus its supplementary groups at connect()
// time (SO_PEERGROUPS); on a kernel without it, from /proc/PID/status ("Groups:"), or from
// the group database for its uid (getgrouplist) when /proc cannot tell (the process already
// exited, or another pid namespace). Nothing a client
// *says* about itself decides anything; its name and pid are for logs only.
//
// The decisions are pure functions of the configuration's access lists and these
// credentials, so that they are unit-tested without sockets: root and the daemon's own user
// are always admitted; otherwise a listed uid, a listed group among the client's primary and
// supplementary groups, or "*" admits. Access lists must have been resolved to ids
// (resolve_accounts()); an entry without an id admits nobody.
//
// What a client is shown follows the same lists: an admin sees everything; anyone else sees
// only the channels it may open, and the pids and names of its own uid's clients only.
#pragma once

#include "config.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::daemon {

struct Credentials {
    std::uint32_t pid{0};
    std::uint32_t uid{0};
    std::uint32_t gid{0};
    std::vector<std::uint32_t> groups; ///< supplementary groups (may repeat gid)
};

/// Reads the credentials of the peer of Unix socket `fd`. Errc::system_error if the kernel
/// does not give them.
[[nodiscard]] Result<Credentials> peer_credentials(int fd);

/// Whether `who` passes `list` (root and `daemon_uid` always do).
[[nodiscard]] bool admits(const AccessList& list, const Credentials& who,
                          std::uint32_t daemon_uid) noexcept;

/// Whether `who` may publish (Role::publisher) or subscribe on a channel with `acl`.
[[nodiscard]] bool may_open(const ChannelAcl& acl, Role role, const Credentials& who,
                            std::uint32_t daemon_uid) noexcept;

/// Whether `who` may run admin requests (reload): root, the daemon's user, daemon.admin.
[[nodiscard]] bool is_admin(const Config& config, const Credentials& who,
                            std::uint32_t daemon_uid) noexcept;

/// Whether list and info show `who` a channel with `acl`: an admin every channel, anyone
/// else the channels it may open in some role.
[[nodiscard]] bool may_see_channel(const Config& config, const ChannelAcl& acl,
                                   const Credentials& who, std::uint32_t daemon_uid) noexcept;

/// Whether list, info and the client list show `who` the pid and name of a client of
/// `owner_uid`: an admin every client's, anyone else those of its own uid.
[[nodiscard]] bool may_see_client(const Config& config, std::uint32_t owner_uid,
                                  const Credentials& who, std::uint32_t daemon_uid) noexcept;

/// Whether `who` may create dynamic channels (the policy must also allow it).
[[nodiscard]] bool may_create(const Config& config, const Credentials& who,
                              std::uint32_t daemon_uid) noexcept;

/// "pid 42, uid 1000" for messages.
[[nodiscard]] std::string describe(const Credentials& who);

} // namespace shmbus::daemon
