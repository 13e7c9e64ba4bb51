// Per-uid quota decisions. See uid_quota.hpp.
#include "uid_quota.hpp"

#include <string>

namespace shmbus::daemon {

namespace {

std::string uid_text(std::uint32_t uid) {
    return "uid " + std::to_string(uid);
}

} // namespace

Result<void> admit_connection(const Limits& limits, std::uint32_t uid, bool privileged,
                              std::size_t clients, std::uint32_t of_uid) {
    if (privileged) {
        if (clients >= limits.max_clients) {
            return make_error(Errc::limit_reached, "the daemon serves " + std::to_string(clients) +
                                                       " clients, limits.max_clients is " +
                                                       std::to_string(limits.max_clients));
        }
        return ok();
    }
    const std::uint32_t open_to_all =
        limits.max_clients > limits.admin_reserve ? limits.max_clients - limits.admin_reserve : 0;
    if (clients >= open_to_all) {
        return make_error(
            Errc::limit_reached,
            "the daemon serves " + std::to_string(clients) + " clients; limits.max_clients is " +
                std::to_string(limits.max_clients) + ", of which " + "limits.admin_reserve (" +
                std::to_string(limits.admin_reserve) + ") are kept for root and the admins");
    }
    if (of_uid >= limits.per_uid.max_connections) {
        return make_error(Errc::limit_reached,
                          uid_text(uid) + " has " + std::to_string(of_uid) +
                              " connections open; limits.per_uid.max_connections is " +
                              std::to_string(limits.per_uid.max_connections));
    }
    return ok();
}

Result<void> admit_endpoint(const UidLimits& limits, std::uint32_t uid, std::uint32_t held) {
    if (held >= limits.max_open_channels) {
        return make_error(Errc::limit_reached,
                          uid_text(uid) + " has " + std::to_string(held) +
                              " endpoints open; limits.per_uid.max_open_channels is " +
                              std::to_string(limits.max_open_channels));
    }
    return ok();
}

Result<void> admit_dynamic_channel(const UidLimits& limits, std::uint32_t uid,
                                   std::uint32_t channels, std::uint64_t bytes,
                                   std::string_view name, std::uint64_t new_bytes) {
    if (channels >= limits.max_dynamic_channels) {
        return make_error(Errc::limit_reached,
                          "cannot create channel '" + std::string{name} + "': " + uid_text(uid) +
                              " has created " + std::to_string(channels) +
                              " channels; limits.per_uid.max_dynamic_channels is " +
                              std::to_string(limits.max_dynamic_channels));
    }
    if (new_bytes > limits.max_segment_bytes || bytes > limits.max_segment_bytes - new_bytes) {
        return make_error(Errc::limit_reached, "cannot create channel '" + std::string{name} +
                                                   "': it needs " + std::to_string(new_bytes) +
                                                   " bytes, the channels " + uid_text(uid) +
                                                   " created hold " + std::to_string(bytes) +
                                                   " and limits.per_uid.max_segment_bytes is " +
                                                   std::to_string(limits.max_segment_bytes));
    }
    return ok();
}

} // namespace shmbus::daemon
