// The discovery table and its endpoint claims. See channel_registry.hpp for the invariants.
#include "channel_registry.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>

namespace shmbus::daemon {

ChannelAcl dynamic_channel_acl(std::uint32_t creator_uid) {
    AccessList only;
    only.users.push_back(AccountRef{std::to_string(creator_uid), creator_uid, {}});
    return ChannelAcl{only, only};
}

Result<void> check_room(const ChannelSpec& spec, std::size_t channels, std::uint64_t bytes,
                        const Limits& limits) {
    if (channels >= limits.max_channels) {
        return make_error(Errc::limit_reached, "cannot create channel '" + spec.name +
                                                   "': the daemon has " + std::to_string(channels) +
                                                   " channels, limits.max_channels is " +
                                                   std::to_string(limits.max_channels));
    }
    auto needed = channel_bytes(spec);
    if (!needed) {
        return needed.take_error();
    }
    if (bytes + *needed > limits.max_total_segment_bytes) {
        return make_error(Errc::limit_reached,
                          "cannot create channel '" + spec.name + "': it needs " +
                              std::to_string(*needed) + " bytes, " + std::to_string(bytes) +
                              " are in use and limits.max_total_segment_bytes is " +
                              std::to_string(limits.max_total_segment_bytes));
    }
    return ok();
}

std::optional<std::uint32_t> lowest_free_index(std::uint32_t table_size,
                                               const std::vector<std::uint32_t>& taken) {
    std::vector<bool> used(table_size, false);
    for (std::uint32_t i : taken) {
        if (i < table_size) {
            used[i] = true;
        }
    }
    for (std::uint32_t i = 0; i < table_size; ++i) {
        if (!used[i]) {
            return i;
        }
    }
    return std::nullopt;
}

namespace {

Result<std::unique_ptr<RegisteredChannel>> make_registered(ChannelFiles files, ChannelAcl acl,
                                                           ChannelOrigin origin) {
    auto info = inspect_channel(files);
    if (!info) {
        return info.take_error();
    }
    auto for_supervisor = files.duplicate_for(Role::publisher);
    if (!for_supervisor) {
        return for_supervisor.take_error();
    }
    auto supervisor = ChannelSupervisor::attach(std::move(*for_supervisor));
    if (!supervisor) {
        return supervisor.take_error();
    }
    ChannelSpec spec;
    spec.name = info->name;
    spec.kind = info->kind;
    spec.overflow = info->overflow;
    spec.slot_size = info->slot_size;
    spec.slot_count = info->slot_count;
    spec.max_publishers = info->max_publishers;
    spec.max_subscribers = info->max_subscribers;
    return std::unique_ptr<RegisteredChannel>(new RegisteredChannel{std::move(spec),
                                                                    std::move(acl),
                                                                    std::move(*info),
                                                                    origin,
                                                                    std::move(files),
                                                                    std::move(*supervisor),
                                                                    {},
                                                                    false,
                                                                    {},
                                                                    false});
}

} // namespace

Result<RegisteredChannel*> ChannelRegistry::create(const ChannelSpec& spec, ChannelAcl acl,
                                                   ChannelOrigin origin,
                                                   std::uint64_t max_channel_bytes) {
    if (channels_.count(spec.name) != 0) {
        return make_error(Errc::already_exists, "channel '" + spec.name + "' exists already");
    }
    auto files = create_channel(spec, max_channel_bytes);
    if (!files) {
        return files.take_error();
    }
    // create_channel() made both memfds mode 0600 (a subscriber of another user cannot reopen
    // its read-only payload read-write through /proc).
    return add(std::move(*files), std::move(acl), origin, false);
}

Result<RegisteredChannel*> ChannelRegistry::adopt(ChannelFiles files, ChannelAcl acl,
                                                  ChannelOrigin origin) {
    return add(std::move(files), std::move(acl), origin, true);
}

Result<RegisteredChannel*> ChannelRegistry::add(ChannelFiles files, ChannelAcl acl,
                                                ChannelOrigin origin, bool from_previous_run) {
    auto made = make_registered(std::move(files), std::move(acl), origin);
    if (!made) {
        return made.take_error();
    }
    const std::string name = (*made)->info.name;
    if (channels_.count(name) != 0) {
        return make_error(Errc::already_exists, "channel '" + name + "' exists already");
    }
    RegisteredChannel* raw = made->get();
    raw->from_previous_run = from_previous_run;
    channels_.emplace(name, std::move(*made));
    if (on_added) {
        on_added(*raw);
    }
    return raw;
}

void ChannelRegistry::remove(std::string_view name) {
    if (auto it = channels_.find(name); it != channels_.end()) {
        if (on_removed) {
            on_removed(*it->second);
        }
        channels_.erase(it);
    }
}

RegisteredChannel* ChannelRegistry::find(std::string_view name) noexcept {
    auto it = channels_.find(name);
    return it == channels_.end() ? nullptr : it->second.get();
}

const RegisteredChannel* ChannelRegistry::find(std::string_view name) const noexcept {
    auto it = channels_.find(name);
    return it == channels_.end() ? nullptr : it->second.get();
}

std::vector<const RegisteredChannel*> ChannelRegistry::channels() const {
    std::vector<const RegisteredChannel*> out;
    out.reserve(channels_.size());
    for (const auto& [name, ch] : channels_) {
        out.push_back(ch.get());
    }
    return out;
}

std::vector<RegisteredChannel*> ChannelRegistry::channels() {
    std::vector<RegisteredChannel*> out;
    out.reserve(channels_.size());
    for (auto& [name, ch] : channels_) {
        out.push_back(ch.get());
    }
    return out;
}

std::uint64_t ChannelRegistry::total_bytes() const noexcept {
    std::uint64_t total = 0;
    for (const auto& [name, ch] : channels_) {
        total += ch->bytes();
    }
    return total;
}

Result<ChannelFiles> RegisteredChannel::files_for(Role role) {
    if (role == Role::publisher) {
        return files.duplicate_for(Role::publisher);
    }
    if (!subscriber_files.control) {
        // Opening /proc/self/fd/N costs a path walk; a dup() of the result costs nothing.
        auto made = files.duplicate_for(Role::subscriber);
        if (!made) {
            return made.take_error();
        }
        subscriber_files = std::move(*made);
    }
    return subscriber_files.duplicate();
}

Result<std::uint32_t> ChannelRegistry::assign_endpoint(RegisteredChannel& channel, Role role,
                                                       EndpointClaim who) {
    const std::uint32_t table =
        role == Role::publisher ? channel.info.max_publishers : channel.info.max_subscribers;
    std::vector<std::uint32_t> taken;
    for (const auto& c : channel.claims) {
        if (c.role == role) {
            taken.push_back(c.index);
        }
    }
    // Entries attached without a claim of ours (a client that outlived a daemon restart and
    // has not offered its descriptors back yet) are not handed out either. Only a channel
    // of the previous run can have them: every other entry was handed out with a claim.
    if (channel.from_previous_run) {
        for (const auto& e : channel.supervisor.endpoints()) {
            if (e.role == role) {
                taken.push_back(e.index);
            }
        }
    }
    const auto index = lowest_free_index(table, taken);
    if (!index) {
        return make_error(
            Errc::limit_reached,
            "channel '" + channel.info.name + "' already has its " + std::to_string(table) + " " +
                (channel.info.kind == ChannelKind::rpc
                     ? (role == Role::publisher ? "callers (max_callers)" : "servers (max_servers)")
                     : (role == Role::publisher ? "publishers (max_publishers)"
                                                : "subscribers (max_subscribers)")));
    }
    who.role = role;
    who.index = *index;
    const std::uint32_t pid = who.pid;
    channel.claims.push_back(std::move(who));
    // The index is valid for the table, so posting cannot fail.
    (void)channel.supervisor.post_event(EventKind::attached, role, *index, pid);
    if (channel.stand_in) {
        channel.stand_in = false;
        if (on_stand_in_opened) {
            on_stand_in_opened(channel);
        }
    }
    return *index;
}

Result<void> ChannelRegistry::release_endpoint(std::uint64_t client_id, std::string_view name,
                                               Role role, std::uint32_t index) {
    RegisteredChannel* channel = find(name);
    if (channel == nullptr) {
        return make_error(Errc::not_found, "no channel '" + std::string{name} + "'");
    }
    auto it =
        std::find_if(channel->claims.begin(), channel->claims.end(), [&](const EndpointClaim& c) {
            return c.client_id == client_id && c.role == role && c.index == index;
        });
    if (it == channel->claims.end()) {
        return make_error(Errc::not_found, "this client holds no " + std::string{to_string(role)} +
                                               " " + std::to_string(index) + " on channel '" +
                                               std::string{name} + "'");
    }
    const auto entries = channel->supervisor.endpoints();
    const bool still_attached =
        std::any_of(entries.begin(), entries.end(),
                    [&](const EndpointEntry& e) { return e.role == role && e.index == index; });
    if (!still_attached) {
        const std::uint32_t pid = it->pid;
        channel->claims.erase(it);
        (void)channel->supervisor.post_event(EventKind::detached, role, index, pid);
    }
    return ok();
}

ReclaimedEndpoint ChannelRegistry::reclaim_claim(RegisteredChannel& channel,
                                                 const EndpointClaim& claim) {
    ReclaimedEndpoint out;
    out.channel = channel.info.name;
    out.claim = claim;
    auto report = claim.role == Role::publisher
                      ? channel.supervisor.reclaim_publisher(claim.index)
                      : channel.supervisor.reclaim_subscriber(claim.index);
    if (report) {
        out.was_attached = true; // the reclaim told the endpoints: died
        out.report = *report;
    } else if (report.code() == Errc::not_found) {
        // It detached cleanly, and its close did not reach us before its connection ended.
        (void)channel.supervisor.post_event(EventKind::detached, claim.role, claim.index,
                                            claim.pid);
    } else {
        out.error = report.error();
    }
    auto it =
        std::find_if(channel.claims.begin(), channel.claims.end(), [&](const EndpointClaim& c) {
            return c.client_id == claim.client_id && c.role == claim.role && c.index == claim.index;
        });
    if (it != channel.claims.end()) {
        channel.claims.erase(it);
    }
    return out;
}

std::vector<ReclaimedEndpoint> ChannelRegistry::reclaim_client(std::uint64_t client_id) {
    std::vector<ReclaimedEndpoint> out;
    for (auto& [name, ch] : channels_) {
        std::vector<EndpointClaim> mine;
        for (const auto& c : ch->claims) {
            if (c.client_id == client_id) {
                mine.push_back(c);
            }
        }
        for (const auto& c : mine) {
            out.push_back(reclaim_claim(*ch, c));
        }
        if (ch->origin.dynamic && ch->origin.creator_client == client_id) {
            ch->origin.creator_client = 0;
        }
    }
    return out;
}

std::vector<std::string> ChannelRegistry::collect_unused() {
    std::vector<std::string> removed;
    for (auto it = channels_.begin(); it != channels_.end();) {
        const RegisteredChannel& ch = *it->second;
        const bool orphan = ch.origin.dynamic && ch.origin.creator_client == 0;
        if ((ch.draining || orphan) && ch.claims.empty() && ch.supervisor.endpoints().empty()) {
            removed.push_back(it->first);
            if (on_removed) {
                on_removed(ch);
            }
            it = channels_.erase(it);
        } else {
            ++it;
        }
    }
    return removed;
}

Result<void> ChannelRegistry::add_claim(RegisteredChannel& channel, EndpointClaim claim) {
    for (const auto& c : channel.claims) {
        if (c.role == claim.role && c.index == claim.index) {
            if (c.client_id == claim.client_id) {
                return ok();
            }
            return make_error(Errc::already_exists, "channel '" + channel.info.name +
                                                        "': " + std::string{to_string(claim.role)} +
                                                        " " + std::to_string(claim.index) +
                                                        " is held by another client");
        }
    }
    const std::uint32_t table =
        claim.role == Role::publisher ? channel.info.max_publishers : channel.info.max_subscribers;
    if (claim.index >= table) {
        return make_error(Errc::invalid_argument, "channel '" + channel.info.name + "' has no " +
                                                      std::string{to_string(claim.role)} + " " +
                                                      std::to_string(claim.index));
    }
    channel.claims.push_back(std::move(claim));
    return ok();
}

namespace {

/// Claims over every channel of `channels` for which `pick` is true.
template <typename Channels, typename Pick>
std::uint32_t count_claims(const Channels& channels, Pick pick) noexcept {
    std::uint32_t n = 0;
    for (const auto& [name, ch] : channels) {
        for (const auto& c : ch->claims) {
            n += pick(c) ? 1 : 0;
        }
    }
    return n;
}

} // namespace

std::uint32_t ChannelRegistry::endpoints_of(std::uint64_t client_id) const noexcept {
    return count_claims(channels_,
                        [&](const EndpointClaim& c) { return c.client_id == client_id; });
}

std::uint32_t ChannelRegistry::dynamic_channels_of(std::uint64_t client_id) const noexcept {
    std::uint32_t n = 0;
    for (const auto& [name, ch] : channels_) {
        n += ch->origin.dynamic && ch->origin.creator_client == client_id ? 1 : 0;
    }
    return n;
}

std::uint32_t ChannelRegistry::endpoints_of_uid(std::uint32_t uid) const noexcept {
    return count_claims(channels_, [&](const EndpointClaim& c) { return c.uid == uid; });
}

DynamicUsage ChannelRegistry::dynamic_usage_of_uid(std::uint32_t uid) const noexcept {
    DynamicUsage usage;
    for (const auto& [name, ch] : channels_) {
        if (ch->origin.dynamic && ch->origin.creator_uid == uid) {
            ++usage.channels;
            usage.bytes += ch->bytes();
        }
    }
    return usage;
}

} // namespace shmbus::daemon
