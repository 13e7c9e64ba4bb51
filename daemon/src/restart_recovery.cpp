// Restart recovery: the state file read at start, offers taken back, the grace period, what
// the state file records. See restart_recovery.hpp.
#include "restart_recovery.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

namespace shmbus::daemon {

namespace {

// A descriptor of this process reopened read-write: the daemon owns its segments (mode 0600,
// its uid), so it may, whatever access the offering client was given.
Result<UniqueFd> reopen_writable(int fd) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    UniqueFd out{::open(path.c_str(), O_RDWR | O_CLOEXEC)};
    if (!out) {
        return make_error(Errc::system_error, "reopening an offered segment read-write", errno);
    }
    return out;
}

bool held(const RegisteredChannel& ch) {
    return !ch.claims.empty() || !ch.supervisor.endpoints().empty();
}

bool same_files(const std::optional<FileIdentity>& control,
                const std::optional<FileIdentity>& payload, const FileIdentity& want_control,
                const FileIdentity& want_payload) {
    return control && payload && *control == want_control && *payload == want_payload;
}

} // namespace

bool RestartRecovery::restore(const std::vector<std::string>& adopted) {
    std::size_t attached = 0;
    for (const auto& name : adopted) {
        if (RegisteredChannel* ch = registry_.find(name)) {
            const std::size_t n = ch->supervisor.endpoints().size();
            attached += n;
            ch->from_previous_run = n > 0; // nobody attached: nothing to keep apart
        }
    }
    auto saved = file_.read();
    if (!saved) {
        log_warning("ignoring the state file: " + saved.error().message());
    } else if (*saved) {
        for (const auto& c : (*saved)->channels) {
            const bool was_adopted =
                std::find(adopted.begin(), adopted.end(), c.name) != adopted.end();
            RegisteredChannel* ch = was_adopted ? registry_.find(c.name) : nullptr;
            if (ch == nullptr) {
                awaited_[c.name] = c;
                continue;
            }
            if (ch->info.creation_id != c.creation_id) {
                // The store kept a stand-in nobody opened; the record names the segments the
                // clients of the run before may still hold.
                if (!held(*ch)) {
                    ch->stand_in = true;
                    awaited_[c.name] = c;
                }
                continue;
            }
            // A dynamic channel from the descriptor store: the store keeps no creator, the
            // state file does. Its creator's uid may open it again, as before the restart.
            if (ch->origin.dynamic) {
                ch->acl = dynamic_channel_acl(c.creator_uid);
                ch->origin.creator_uid = c.creator_uid;
                log_debug("dynamic channel '" + c.name + "' taken back for its creator, uid " +
                              std::to_string(c.creator_uid),
                          channel_fields(c.name));
            }
        }
    }
    if (!in_grace()) {
        return false;
    }
    log_info("after the restart: " + std::to_string(attached) +
             " endpoints of the previous run attached to the segments taken back, and " +
             std::to_string(awaited_.size()) +
             " channels of the state file that clients may offer back, during the grace period");
    return true;
}

bool RestartRecovery::in_grace() const {
    const auto channels = registry_.channels();
    return !awaited_.empty() ||
           std::any_of(channels.begin(), channels.end(),
                       [](const RegisteredChannel* ch) { return ch->from_previous_run; });
}

bool RestartRecovery::awaiting(std::string_view name) const noexcept {
    return awaited_.find(name) != awaited_.end();
}

void RestartRecovery::end_grace() {
    for (const auto& [name, record] : awaited_) {
        RegisteredChannel* ch = registry_.find(name);
        if (ch != nullptr && ch->stand_in) {
            ch->stand_in = false;
            log_info("no client offered channel '" + name +
                         "' back during the grace period; it keeps the segments made at start",
                     channel_fields(name));
        } else if (ch != nullptr) {
            log_info("no client offered channel '" + name +
                         "' back during the grace period; a new client had opened it already",
                     channel_fields(name));
        } else {
            log_info("no client offered channel '" + name + "' back during the grace period",
                     channel_fields(name));
        }
    }
    awaited_.clear();
    for (RegisteredChannel* ch : registry_.channels()) {
        if (!ch->from_previous_run) {
            continue;
        }
        ch->from_previous_run = false; // what is still attached after this is claimed
        const std::string& name = ch->info.name;
        for (const auto& e : ch->supervisor.endpoints()) {
            const bool claimed =
                std::any_of(ch->claims.begin(), ch->claims.end(), [&](const EndpointClaim& c) {
                    return c.role == e.role && c.index == e.index;
                });
            if (claimed) {
                continue;
            }
            const auto r =
                registry_.reclaim_claim(*ch, EndpointClaim{0, e.role, e.index, e.pid, 0, {}});
            if (r.error) {
                log_error("reclaiming " + std::string{to_string(e.role)} + " " +
                              std::to_string(e.index) + " on '" + name +
                              "' after the restart failed: " + r.error->message(),
                          channel_fields(name));
            } else if (r.was_attached) {
                log_info("reclaimed " + std::string{to_string(e.role)} + " " +
                             std::to_string(e.index) + " on '" + name + "' (last attached by pid " +
                             std::to_string(e.pid) +
                             "): no client claimed it during the grace period (" +
                             std::to_string(r.report.abandoned_slots) + " abandoned, " +
                             std::to_string(r.report.redelivered_slots) + " redelivered)",
                         channel_fields(name));
            }
        }
    }
}

Result<RestartRecovery::Offered>
RestartRecovery::take_back(const proto::ReclaimOffer& m, std::vector<UniqueFd>& fds,
                           const Config& config, const std::string& who, const LogFields& fields) {
    if (fds.size() != 2) {
        return make_error(Errc::protocol_error, "a reclaim_offer carries two descriptors");
    }
    const auto control = identity_of(fds[0].get());
    const auto payload = identity_of(fds[1].get());
    RegisteredChannel* ch = registry_.find(m.channel);
    if (ch != nullptr && !ch->stand_in && ch->info.creation_id == m.creation_id) {
        const auto ours_control = identity_of(ch->files.control.get());
        const auto ours_payload = identity_of(ch->files.payload.get());
        if (!ours_control || !ours_payload ||
            !same_files(control, payload, *ours_control, *ours_payload)) {
            return make_error(Errc::permission_denied, "the offered descriptors are not channel '" +
                                                           m.channel + "'s segments");
        }
        return Offered{ch, false};
    }
    auto it = awaited_.find(m.channel);
    if (it == awaited_.end() || it->second.creation_id != m.creation_id) {
        return make_error(Errc::not_found, "the daemon has no channel '" + m.channel +
                                               "' with creation id " +
                                               std::to_string(m.creation_id));
    }
    const ChannelRecord& rec = it->second;
    if (!same_files(control, payload, rec.control, rec.payload)) {
        return make_error(Errc::permission_denied,
                          "the offered descriptors are not channel '" + m.channel +
                              "'s segments as the state file records them");
    }
    if (ch != nullptr && !ch->stand_in) {
        return make_error(Errc::already_exists,
                          "channel '" + m.channel +
                              "' was made anew after the daemon restarted (creation id " +
                              std::to_string(ch->info.creation_id) +
                              "): a new client opened it before any client of the previous run "
                              "offered it back, so the previous run's segments are no longer "
                              "served; open the channel again");
    }
    auto rw_control = reopen_writable(fds[0].get());
    auto rw_payload = reopen_writable(fds[1].get());
    if (!rw_control || !rw_payload) {
        return rw_control ? rw_payload.take_error() : rw_control.take_error();
    }
    ChannelFiles files{std::move(*rw_control), std::move(*rw_payload)};
    // Checked before the stand-in goes, so that a damaged segment leaves the stand-in serving.
    if (auto info = inspect_channel(files); !info) {
        return info.take_error();
    } else if (info->creation_id != rec.creation_id) {
        return make_error(Errc::corrupted,
                          "channel '" + m.channel + "': the segment's creation id changed");
    }
    const auto configured =
        std::find_if(config.channels.begin(), config.channels.end(),
                     [&](const ChannelConfig& cc) { return cc.spec.name == m.channel; });
    ChannelAcl acl;
    ChannelOrigin origin;
    if (configured != config.channels.end()) {
        acl = configured->acl;
    } else {
        acl = dynamic_channel_acl(rec.creator_uid);
        origin = ChannelOrigin{true, 0, rec.creator_uid};
    }
    const bool replaces_stand_in = ch != nullptr;
    if (replaces_stand_in) {
        registry_.remove(m.channel); // nobody has opened it: nothing is lost
        ch = nullptr;
    }
    auto made = registry_.adopt(std::move(files), std::move(acl), origin);
    if (!made) {
        return made.take_error();
    }
    log_info(who + " gave channel '" + m.channel + "' back after the restart (" +
                 std::to_string((*made)->supervisor.endpoints().size()) + " endpoints attached" +
                 (replaces_stand_in ? ", in place of the segments made at start" : "") + ")",
             fields);
    awaited_.erase(it);
    return Offered{*made, true};
}

template <typename Keep>
SavedState RestartRecovery::state_of(Keep keep) const {
    SavedState s;
    for (const RegisteredChannel* ch : registry_.channels()) {
        // A stand-in is recorded as the channel it stands in for.
        if (!(ch->stand_in && awaiting(ch->info.name)) && keep(*ch)) {
            s.channels.push_back(record_of(*ch));
        }
    }
    for (const auto& [name, record] : awaited_) {
        const RegisteredChannel* ch = registry_.find(name);
        if (ch == nullptr || ch->stand_in) {
            s.channels.push_back(record);
        }
    }
    return s;
}

SavedState RestartRecovery::running_state() const {
    return state_of([](const RegisteredChannel&) { return true; });
}

SavedState RestartRecovery::state_at_stop() const {
    return state_of(held);
}

} // namespace shmbus::daemon
