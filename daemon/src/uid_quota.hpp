// Per-uid quotas: what the clients of one local user may hold together, so that one user
// cannot lock the others out of the daemon (as dbus-broker's per-user accounting does). The
// control socket is open to every local user (mode 0666); without these, one process could
// open limits.max_clients connections, or every channel slot and every byte of
// limits.max_total_segment_bytes, and refuse service to all others.
//
// What is counted, per uid (limits.per_uid): control connections, endpoints open
// (publishers and subscribers over all channels), dynamic channels its clients created that
// still exist, and the segment bytes of those channels. Root, the daemon's own user and the
// admins (daemon.admin) are not counted: they may also use the limits.admin_reserve
// connections of limits.max_clients that nobody else can, so that an operator always reaches
// a daemon that everyone else has filled.
//
// The usage is counted by the caller from the daemon's own records (client table, claims,
// channel origins), never kept here: nothing to keep in step with reclaims and restarts.
// These functions only decide, and say in the error which key was reached, with the numbers,
// so that the refusal's reply and log line tell the operator what to raise.
//
// Pure functions; Errc::limit_reached for every refusal. Thread: any.
#pragma once

#include "config.hpp"

#include <shmbus/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shmbus::daemon {

/// Whether one more connection of `uid` may be admitted while `clients` connections are
/// open, `of_uid` of them by that uid. `privileged` (root, the daemon's user, an admin): up
/// to limits.max_clients, and per_uid.max_connections does not apply. Anyone else: up to
/// limits.max_clients less limits.admin_reserve, and per_uid.max_connections of their uid.
[[nodiscard]] Result<void> admit_connection(const Limits& limits, std::uint32_t uid,
                                            bool privileged, std::size_t clients,
                                            std::uint32_t of_uid);

/// Whether a client of unprivileged `uid`, whose clients hold `held` endpoints, may open one
/// more (limits.per_uid.max_open_channels).
[[nodiscard]] Result<void> admit_endpoint(const UidLimits& limits, std::uint32_t uid,
                                          std::uint32_t held);

/// Whether a client of unprivileged `uid`, whose clients created `channels` dynamic channels
/// that still exist, together `bytes` of segments, may create one of `new_bytes` more
/// (limits.per_uid.max_dynamic_channels and max_segment_bytes). `name` is the new channel's.
[[nodiscard]] Result<void> admit_dynamic_channel(const UidLimits& limits, std::uint32_t uid,
                                                 std::uint32_t channels, std::uint64_t bytes,
                                                 std::string_view name, std::uint64_t new_bytes);

} // namespace shmbus::daemon
