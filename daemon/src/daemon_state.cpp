// The daemon's state: configuration, registry, clients, reload. See daemon_state.hpp.
#include "daemon_state.hpp"

#include "logging.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <type_traits>

namespace shmbus::daemon {

namespace {

std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool same_geometry(const ChannelSpec& a, const ChannelSpec& b) {
    return a.kind == b.kind && a.slot_size == b.slot_size && a.slot_count == b.slot_count &&
           a.overflow == b.overflow && a.max_publishers == b.max_publishers &&
           a.max_subscribers == b.max_subscribers;
}

std::string geometry_change(const ChannelSpec& from, const ChannelSpec& to) {
    std::vector<std::string> parts;
    auto add = [&](const char* key, const std::string& a, const std::string& b) {
        if (a != b) {
            parts.push_back(std::string{key} + " " + a + " -> " + b);
        }
    };
    add("kind", std::string{to_string(from.kind)}, std::string{to_string(to.kind)});
    add("slot_size", std::to_string(from.slot_size), std::to_string(to.slot_size));
    add("slot_count", std::to_string(from.slot_count), std::to_string(to.slot_count));
    add("overflow", std::string{to_string(from.overflow)}, std::string{to_string(to.overflow)});
    add("max_publishers", std::to_string(from.max_publishers), std::to_string(to.max_publishers));
    add("max_subscribers", std::to_string(from.max_subscribers),
        std::to_string(to.max_subscribers));
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : ", ") + p;
    }
    return out;
}

AccessList only_user(std::uint32_t uid) {
    AccessList list;
    list.users.push_back(AccountRef{std::to_string(uid), uid, {}});
    return list;
}

std::string join_errors(const std::vector<ConfigError>& errors) {
    std::string out;
    for (const auto& e : errors) {
        out += (out.empty() ? "" : "\n") + to_string(e);
    }
    return out;
}

} // namespace

std::string describe(const ClientRecord& client) {
    std::string s = "client " + std::to_string(client.id) + " (" + describe(client.credentials);
    if (!client.name.empty()) {
        s += ", '" + client.name + "'";
    }
    return s + ")";
}

ParseOutcome load_resolved_config(const ConfigPath& path) {
    ParseOutcome outcome = load_config(path);
    if (outcome.ok() && outcome.config) {
        auto errors = resolve_accounts(*outcome.config, system_accounts());
        if (!errors.empty()) {
            outcome.config.reset();
            outcome.errors = std::move(errors);
        }
    }
    return outcome;
}

DaemonState::DaemonState(Config config, ConfigPath config_path, RuntimePaths paths,
                         std::uint32_t daemon_uid)
    : config_{std::move(config)}, config_path_{std::move(config_path)}, paths_{std::move(paths)},
      daemon_uid_{daemon_uid} {}

Result<void> DaemonState::check_room_for(const ChannelSpec& spec, const Limits& limits) const {
    if (registry_.size() >= limits.max_channels) {
        return make_error(Errc::limit_reached, "cannot create channel '" + spec.name +
                                                   "': the daemon has " +
                                                   std::to_string(registry_.size()) +
                                                   " channels, limits.max_channels is " +
                                                   std::to_string(limits.max_channels));
    }
    auto bytes = channel_bytes(spec);
    if (!bytes) {
        return bytes.take_error();
    }
    const std::uint64_t total = registry_.total_bytes();
    if (total + *bytes > limits.max_total_segment_bytes) {
        return make_error(Errc::limit_reached,
                          "cannot create channel '" + spec.name + "': it needs " +
                              std::to_string(*bytes) + " bytes, " + std::to_string(total) +
                              " are in use and limits.max_total_segment_bytes is " +
                              std::to_string(limits.max_total_segment_bytes));
    }
    return ok();
}

Result<void> DaemonState::create_configured_channels() {
    for (const auto& cc : config_.channels) {
        if (awaiting(cc.spec.name)) {
            continue; // its clients may offer it back; created at the end of the grace period
        }
        if (RegisteredChannel* existing = registry_.find(cc.spec.name)) {
            existing->acl = cc.acl;
            continue;
        }
        if (auto room = check_room_for(cc.spec, config_.limits); !room) {
            return room.take_error();
        }
        auto made = registry_.create(cc.spec, cc.acl, ChannelOrigin{},
                                     config_.limits.max_total_segment_bytes);
        if (!made) {
            return made.take_error();
        }
        log_info("created channel '" + cc.spec.name + "' (" + std::string{to_string(cc.spec.kind)} +
                     ", " + std::to_string((*made)->bytes()) + " bytes)",
                 channel_fields(cc.spec.name));
    }
    save_state();
    changed();
    return ok();
}

Result<ClientRecord*> DaemonState::add_client(const Credentials& credentials) {
    if (clients_.size() >= config_.limits.max_clients) {
        return make_error(Errc::limit_reached, "the daemon serves " +
                                                   std::to_string(clients_.size()) +
                                                   " clients, limits.max_clients is " +
                                                   std::to_string(config_.limits.max_clients));
    }
    const std::uint64_t id = next_client_id_++;
    auto [it, inserted] = clients_.emplace(id, ClientRecord{id, credentials, {}, unix_ms_now()});
    changed();
    return &it->second;
}

ClientRecord* DaemonState::find_client(std::uint64_t id) noexcept {
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : &it->second;
}

void DaemonState::remove_client(std::uint64_t id) {
    auto it = clients_.find(id);
    if (it == clients_.end()) {
        return;
    }
    const ClientRecord& client = it->second;
    const LogFields who =
        client_fields(client.credentials.pid, client.credentials.uid, client.name);
    const auto reclaimed = registry_.reclaim_client(id);
    for (const auto& r : reclaimed) {
        LogFields f = who;
        f.channel = r.channel;
        if (r.error) {
            log_error(describe(client) + " went away; reclaiming its " +
                          std::string{to_string(r.claim.role)} + " " +
                          std::to_string(r.claim.index) + " on '" + r.channel +
                          "' failed: " + r.error->message(),
                      f);
        } else if (r.was_attached) {
            log_info(describe(client) + " went away holding " +
                         std::string{to_string(r.claim.role)} + " " +
                         std::to_string(r.claim.index) + " on '" + r.channel + "': reclaimed (" +
                         std::to_string(r.report.abandoned_slots) + " abandoned, " +
                         std::to_string(r.report.redelivered_slots) + " redelivered)",
                     f);
        } else {
            log_debug(describe(client) + " had detached " + std::string{to_string(r.claim.role)} +
                          " " + std::to_string(r.claim.index) + " on '" + r.channel + "'",
                      f);
        }
    }
    log_info(describe(client) + " disconnected", who);
    clients_.erase(it);
    remove_unused_channels();
    changed();
}

void DaemonState::forget_client(std::uint64_t id) {
    clients_.erase(id);
}

Result<void> DaemonState::create_dynamic(const ClientRecord& client, ChannelSpec spec,
                                         std::uint32_t given) {
    const DynamicChannelPolicy& policy = config_.dynamic_channels;
    if (!policy.allowed) {
        return make_error(Errc::permission_denied,
                          "dynamic channels are disabled (dynamic_channels.allowed is false)");
    }
    if (!may_create(config_, client.credentials, daemon_uid_)) {
        return make_error(Errc::permission_denied,
                          "uid " + std::to_string(client.credentials.uid) +
                              " may not create channels (dynamic_channels.users/groups)");
    }
    // Left out (its bit clear, or a 0 from a 1.0 client): the policy's defaults fill it in.
    auto fill = [given](auto& field, const auto& fallback, std::uint32_t bit) {
        if ((given & bit) == 0 || field == std::remove_reference_t<decltype(field)>{}) {
            field = fallback;
        }
    };
    const ChannelSpec& d = policy.defaults;
    if ((given & proto::kSpecKind) == 0) {
        spec.kind = d.kind;
    }
    if ((given & proto::kSpecOverflow) == 0) {
        // A queue always blocks: a broadcast default of drop does not apply to it.
        spec.overflow = spec.kind == ChannelKind::queue ? Overflow::block : d.overflow;
    }
    fill(spec.slot_size, d.slot_size, proto::kSpecSlotSize);
    fill(spec.slot_count, d.slot_count, proto::kSpecSlotCount);
    fill(spec.max_publishers, d.max_publishers, proto::kSpecMaxPublishers);
    fill(spec.max_subscribers, d.max_subscribers, proto::kSpecMaxSubscribers);
    if (spec.slot_size > policy.max_slot_size) {
        return make_error(Errc::limit_reached, "slot_size " + std::to_string(spec.slot_size) +
                                                   " is above dynamic_channels.max_slot_size " +
                                                   std::to_string(policy.max_slot_size));
    }
    if (spec.slot_count > policy.max_slot_count) {
        return make_error(Errc::limit_reached, "slot_count " + std::to_string(spec.slot_count) +
                                                   " is above dynamic_channels.max_slot_count " +
                                                   std::to_string(policy.max_slot_count));
    }
    const std::uint32_t mine = registry_.dynamic_channels_of(client.id);
    if (mine >= config_.limits.per_client.max_dynamic_channels) {
        return make_error(Errc::limit_reached,
                          "this client has created " + std::to_string(mine) +
                              " channels; limits.per_client.max_dynamic_channels is " +
                              std::to_string(config_.limits.per_client.max_dynamic_channels));
    }
    if (registry_.find(spec.name) != nullptr) {
        return make_error(Errc::already_exists, "channel '" + spec.name + "' exists already");
    }
    if (auto room = check_room_for(spec, config_.limits); !room) {
        return room.take_error();
    }
    ChannelAcl acl{only_user(client.credentials.uid), only_user(client.credentials.uid)};
    auto made = registry_.create(spec, std::move(acl),
                                 ChannelOrigin{true, client.id, client.credentials.uid},
                                 config_.limits.max_total_segment_bytes);
    if (!made) {
        return made.take_error();
    }
    log_info(describe(client) + " created dynamic channel '" + spec.name + "' (" +
                 std::to_string((*made)->bytes()) + " bytes)",
             client_fields(client.credentials.pid, client.credentials.uid, client.name, spec.name));
    save_state();
    changed();
    return ok();
}

Result<std::string> DaemonState::reload() {
    ParseOutcome outcome = load_resolved_config(config_path_);
    if (!outcome.ok() || !outcome.config) {
        for (const auto& e : outcome.errors) {
            log_error("reload refused: " + to_string(e));
        }
        return make_error(Errc::invalid_argument,
                          "the configuration has errors; the running one is kept:\n" +
                              join_errors(outcome.errors));
    }
    return apply(std::move(*outcome.config));
}

std::string DaemonState::apply(Config next) {
    std::vector<std::string> lines;
    std::set<std::string, std::less<>> wanted;
    std::vector<ChannelConfig> refused;
    for (const auto& cc : next.channels) {
        wanted.insert(cc.spec.name);
        RegisteredChannel* existing = registry_.find(cc.spec.name);
        if (existing != nullptr && existing->origin.dynamic) {
            lines.push_back("channel '" + cc.spec.name +
                            "' not applied: a dynamic channel of that name exists");
            continue;
        }
        if (existing != nullptr && same_geometry(existing->spec, cc.spec)) {
            if (existing->draining) {
                existing->draining = false;
                lines.push_back("channel '" + cc.spec.name + "' kept (no longer draining)");
            }
            existing->acl = cc.acl;
            continue;
        }
        if (existing != nullptr) {
            const std::string change = geometry_change(existing->spec, cc.spec);
            const bool in_use =
                !existing->claims.empty() || !existing->supervisor.endpoints().empty();
            if (in_use) {
                lines.push_back("channel '" + cc.spec.name + "' not changed (" + change +
                                "): it has " + std::to_string(existing->claims.size()) +
                                " endpoints open; the old channel keeps running");
                existing->acl = cc.acl;
                continue;
            }
            registry_.remove(cc.spec.name);
            if (auto room = check_room_for(cc.spec, next.limits); !room) {
                lines.push_back("channel '" + cc.spec.name +
                                "' removed but not re-created: " + room.error().message());
                continue;
            }
            auto made = registry_.create(cc.spec, cc.acl, ChannelOrigin{},
                                         next.limits.max_total_segment_bytes);
            lines.push_back(made ? "channel '" + cc.spec.name + "' re-created (" + change + ")"
                                 : "channel '" + cc.spec.name +
                                       "' removed but not re-created: " + made.error().message());
            continue;
        }
        if (auto room = check_room_for(cc.spec, next.limits); !room) {
            lines.push_back("channel '" + cc.spec.name +
                            "' not created: " + room.error().message());
            continue;
        }
        auto made =
            registry_.create(cc.spec, cc.acl, ChannelOrigin{}, next.limits.max_total_segment_bytes);
        lines.push_back(made ? "channel '" + cc.spec.name + "' created"
                             : "channel '" + cc.spec.name +
                                   "' not created: " + made.error().message());
    }
    for (RegisteredChannel* ch : registry_.channels()) {
        if (!ch->origin.dynamic && !ch->draining && wanted.count(ch->info.name) == 0) {
            ch->draining = true;
            lines.push_back("channel '" + ch->info.name + "' removed from the configuration" +
                            (ch->claims.empty() ? "" : "; it goes when its last client closes it"));
        }
    }
    for (const auto& name : registry_.collect_unused()) {
        (void)name;
    }
    if (next.log_level != config_.log_level) {
        lines.push_back("log_level " + std::string{to_string(config_.log_level)} + " -> " +
                        std::string{to_string(next.log_level)});
        set_log_level(next.log_level);
    }
    config_ = std::move(next);
    std::string summary = "configuration reloaded";
    if (lines.empty()) {
        summary += ": no channel changed";
    }
    for (const auto& l : lines) {
        summary += "\n" + l;
        log_info("reload: " + l);
    }
    save_state();
    changed();
    return summary;
}

bool DaemonState::restore_from_state_file(const std::vector<std::string>& adopted) {
    const auto was_adopted = [&](const std::string& name) {
        return std::find(adopted.begin(), adopted.end(), name) != adopted.end();
    };
    std::size_t attached = 0;
    for (const auto& name : adopted) {
        if (RegisteredChannel* ch = registry_.find(name)) {
            const std::size_t n = ch->supervisor.endpoints().size();
            attached += n;
            ch->from_previous_run = n > 0; // nobody attached: nothing to keep apart
        }
    }
    auto saved = read_state_file(paths_.state_directory);
    if (!saved) {
        log_warning("ignoring the state file: " + saved.error().message());
    } else if (*saved) {
        for (const auto& c : (*saved)->channels) {
            if (!was_adopted(c.name)) {
                awaited_[c.name] = c;
                continue;
            }
            // A dynamic channel from the descriptor store: the store keeps no creator, the
            // state file does. Its creator's uid may open it again, as before the restart.
            RegisteredChannel* ch = registry_.find(c.name);
            if (ch != nullptr && ch->origin.dynamic && ch->info.creation_id == c.creation_id) {
                ch->acl = ChannelAcl{only_user(c.creator_uid), only_user(c.creator_uid)};
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

bool DaemonState::in_grace() const {
    const auto channels = registry_.channels();
    return !awaited_.empty() ||
           std::any_of(channels.begin(), channels.end(),
                       [](const RegisteredChannel* ch) { return ch->from_previous_run; });
}

bool DaemonState::awaiting(std::string_view name) const noexcept {
    return awaited_.find(name) != awaited_.end();
}

void DaemonState::end_grace() {
    for (const auto& [name, record] : awaited_) {
        log_info("no client offered channel '" + name + "' back during the grace period",
                 channel_fields(name));
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
    if (auto created = create_configured_channels(); !created) {
        log_error("after the grace period: " + created.error().message());
    }
    remove_unused_channels();
    changed();
}

void DaemonState::remove_unused_channels() {
    const auto removed = registry_.collect_unused();
    for (const auto& name : removed) {
        log_info("channel '" + name + "' removed: nobody holds it any more", channel_fields(name));
    }
    if (!removed.empty()) {
        save_state();
    }
}

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

} // namespace

Result<void> DaemonState::take_back(const ClientRecord& client, const proto::ReclaimOffer& m,
                                    std::vector<UniqueFd> fds) {
    if (fds.size() != 2) {
        return make_error(Errc::protocol_error, "a reclaim_offer carries two descriptors");
    }
    if (m.role != Role::publisher && m.role != Role::subscriber) {
        return make_error(Errc::invalid_argument, "unknown role");
    }
    const auto control = identity_of(fds[0].get());
    const auto payload = identity_of(fds[1].get());
    RegisteredChannel* ch = registry_.find(m.channel);
    if (auto it = awaited_.find(m.channel); ch == nullptr && it != awaited_.end()) {
        const ChannelRecord& rec = it->second;
        if (rec.creation_id != m.creation_id || !control || !payload ||
            !(*control == rec.control) || !(*payload == rec.payload)) {
            return make_error(Errc::permission_denied,
                              "the offered descriptors are not channel '" + m.channel +
                                  "'s segments as the state file records them");
        }
        auto rw_control = reopen_writable(fds[0].get());
        auto rw_payload = reopen_writable(fds[1].get());
        if (!rw_control || !rw_payload) {
            return rw_control ? rw_payload.take_error() : rw_control.take_error();
        }
        const ChannelConfig* wanted = nullptr;
        for (const auto& cc : config_.channels) {
            if (cc.spec.name == m.channel) {
                wanted = &cc;
            }
        }
        ChannelAcl acl;
        ChannelOrigin origin;
        if (wanted != nullptr) {
            acl = wanted->acl;
        } else {
            acl = ChannelAcl{only_user(rec.creator_uid), only_user(rec.creator_uid)};
            origin = ChannelOrigin{true, 0, rec.creator_uid};
        }
        auto made = registry_.adopt(ChannelFiles{std::move(*rw_control), std::move(*rw_payload)},
                                    std::move(acl), origin);
        if (!made) {
            return made.take_error();
        }
        if ((*made)->info.creation_id != rec.creation_id) {
            registry_.remove(m.channel);
            return make_error(Errc::corrupted,
                              "channel '" + m.channel + "': the segment's creation id changed");
        }
        log_info(
            describe(client) + " gave channel '" + m.channel + "' back after the restart (" +
                std::to_string((*made)->supervisor.endpoints().size()) + " endpoints attached)",
            client_fields(client.credentials.pid, client.credentials.uid, client.name, m.channel));
        awaited_.erase(it);
        save_state(); // the channel is this daemon's again
        ch = *made;
    } else {
        if (ch == nullptr || ch->info.creation_id != m.creation_id) {
            return make_error(Errc::not_found, "the daemon has no channel '" + m.channel +
                                                   "' with creation id " +
                                                   std::to_string(m.creation_id));
        }
        const auto ours_control = identity_of(ch->files.control.get());
        const auto ours_payload = identity_of(ch->files.payload.get());
        if (!control || !payload || !ours_control || !ours_payload ||
            !(*control == *ours_control) || !(*payload == *ours_payload)) {
            return make_error(Errc::permission_denied, "the offered descriptors are not channel '" +
                                                           m.channel + "'s segments");
        }
    }
    if (auto added = registry_.add_claim(*ch, EndpointClaim{client.id, m.role, m.endpoint_index,
                                                            client.credentials.pid,
                                                            client.credentials.uid, client.name});
        !added) {
        return added;
    }
    log_info(describe(client) + " took back " + std::string{to_string(m.role)} + " " +
                 std::to_string(m.endpoint_index) + " on '" + m.channel + "'",
             client_fields(client.credentials.pid, client.credentials.uid, client.name, m.channel));
    return ok();
}

void DaemonState::save_state() {
    state_dirty_ = true;
    if (on_state_dirty) {
        on_state_dirty();
        return;
    }
    flush_state();
}

void DaemonState::flush_state() {
    if (!state_dirty_) {
        return;
    }
    state_dirty_ = false;
    if (auto written = write_state_file(paths_.state_directory, snapshot(registry_)); !written) {
        if (!state_write_failed_) {
            log_warning("cannot keep the state file (restart without systemd will not take "
                        "channels back): " +
                        written.error().message());
        }
        state_write_failed_ = true;
    } else {
        state_write_failed_ = false;
    }
}

DaemonStatus DaemonState::status() const {
    DaemonStatus s;
    s.daemon_version = SHMBUS_VERSION_STRING;
    s.pid = static_cast<std::uint32_t>(getpid());
    s.uptime_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - started_)
                                                 .count());
    s.config_files.push_back(config_path_.path.native());
    s.socket_path = paths_.socket.native();
    s.state_directory = paths_.state_directory.native();
    s.clients = static_cast<std::uint32_t>(clients_.size());
    s.channels = static_cast<std::uint32_t>(registry_.size());
    s.segment_bytes = registry_.total_bytes();
    return s;
}

std::string DaemonState::status_line() const {
    return std::to_string(clients_.size()) + " clients, " + std::to_string(registry_.size()) +
           " channels, " + std::to_string(registry_.total_bytes() / 1024) + " KiB of segments";
}

} // namespace shmbus::daemon
