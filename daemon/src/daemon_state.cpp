// The daemon's state: configuration, registry, clients, reload. See daemon_state.hpp.
#include "daemon_state.hpp"

#include "bridges.hpp"
#include "logging.hpp"
#include "reload_plan.hpp"
#include "uid_quota.hpp"

#include <assert.hpp>

#include <unistd.h>

#include <algorithm>
#include <type_traits>

namespace shmbus::daemon {

namespace {

std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
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

DaemonState::DaemonState(Config config, ConfigPath config_path, RuntimePaths paths,
                         StateFile state_file, std::uint32_t daemon_uid)
    : config_{std::move(config)}, config_path_{std::move(config_path)}, paths_{std::move(paths)},
      daemon_uid_{daemon_uid}, recovery_{registry_, std::move(state_file)} {
    // A stand-in opened by a new client is the channel from now on: the state file records
    // its own segments instead of the previous run's.
    registry_.on_stand_in_opened = [this](const RegisteredChannel&) { save_state(); };
}

Result<void> DaemonState::check_room_for(const ChannelSpec& spec, const Limits& limits) const {
    return check_room(spec, registry_.size(), registry_.total_bytes(), limits);
}

Result<void> DaemonState::create_configured_channels() {
    for (const auto& cc : config_.channels) {
        if (RegisteredChannel* existing = registry_.find(cc.spec.name)) {
            existing->acl = cc.acl;
            continue;
        }
        // Its clients may still offer the previous run's segments back: a stand-in serves
        // meanwhile, and gives way to them unless a new client opens it first.
        const bool stand_in = awaiting(cc.spec.name);
        if (auto room = check_room_for(cc.spec, config_.limits); !room) {
            if (!stand_in) {
                return room.take_error();
            }
            log_warning("no stand-in for channel '" + cc.spec.name +
                            "' during the grace period: " + room.error().message(),
                        channel_fields(cc.spec.name));
            continue;
        }
        auto made = registry_.create(cc.spec, cc.acl, ChannelOrigin{},
                                     config_.limits.max_total_segment_bytes);
        if (!made) {
            return made.take_error();
        }
        (*made)->stand_in = stand_in;
        log_info((stand_in ? "created a stand-in for channel '" : "created channel '") +
                     cc.spec.name + "' (" + std::string{to_string(cc.spec.kind)} + ", " +
                     std::to_string((*made)->bytes()) + " bytes)" +
                     (stand_in ? ": clients of the previous run may still offer its segments "
                                 "back during the grace period"
                               : ""),
                 channel_fields(cc.spec.name));
    }
    save_state();
    changed();
    return ok();
}

Result<ClientRecord*> DaemonState::add_client(const Credentials& credentials) {
    const auto of_uid = static_cast<std::uint32_t>(
        std::count_if(clients_.begin(), clients_.end(),
                      [&](const auto& c) { return c.second.credentials.uid == credentials.uid; }));
    if (auto room =
            admit_connection(config_.limits, credentials.uid,
                             is_admin(config_, credentials, daemon_uid_), clients_.size(), of_uid);
        !room) {
        return room.take_error();
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
        // Only broadcast may drop: a default of drop does not apply to other kinds.
        spec.overflow = spec.kind == ChannelKind::broadcast ? d.overflow : Overflow::block;
    }
    // A counters channel's slot size is fixed (a cell's name).
    fill(spec.slot_size, spec.kind == ChannelKind::counters ? kCounterSlotSize : d.slot_size,
         proto::kSpecSlotSize);
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
    if (!is_admin(config_, client.credentials, daemon_uid_)) {
        const DynamicUsage used = registry_.dynamic_usage_of_uid(client.credentials.uid);
        auto bytes = channel_bytes(spec);
        if (!bytes) {
            return bytes.take_error();
        }
        if (auto quota = admit_dynamic_channel(config_.limits.per_uid, client.credentials.uid,
                                               used.channels, used.bytes, spec.name, *bytes);
            !quota) {
            return quota.take_error();
        }
    }
    if (auto room = check_room_for(spec, config_.limits); !room) {
        return room.take_error();
    }
    auto made = registry_.create(spec, dynamic_channel_acl(client.credentials.uid),
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
    const ReloadPlan plan = plan_reload(registry_, config_, next);
    std::vector<std::string> lines;
    auto create = [&](const ChannelConfig& cc) {
        return registry_.create(cc.spec, cc.acl, ChannelOrigin{},
                                next.limits.max_total_segment_bytes);
    };
    for (const ChannelChange& change : plan.channels) {
        const ChannelConfig& cc = change.config;
        const std::string& name = cc.spec.name;
        RegisteredChannel* existing = registry_.find(name);
        // The plan was made from this registry a moment ago, one step per name.
        SHMBUS_ASSERT(existing != nullptr || change.action == ReloadAction::create ||
                          change.action == ReloadAction::create_no_room,
                      "a reload step names a channel the registry does not have");
        switch (change.action) {
        case ReloadAction::keep:
        case ReloadAction::undrain:
            existing->draining = false;
            existing->acl = cc.acl;
            break;
        case ReloadAction::refuse_in_use:
            existing->acl = cc.acl;
            break;
        case ReloadAction::recreate:
            registry_.remove(name);
            if (auto made = create(cc); !made) {
                lines.push_back("channel '" + name +
                                "' removed but not re-created: " + made.error().message());
                continue;
            }
            break;
        case ReloadAction::remove_no_room:
            registry_.remove(name);
            break;
        case ReloadAction::create:
            if (auto made = create(cc); !made) {
                lines.push_back("channel '" + name + "' not created: " + made.error().message());
                continue;
            }
            break;
        case ReloadAction::drain:
            existing->draining = true;
            break;
        case ReloadAction::dynamic_clash:
        case ReloadAction::create_no_room:
            break;
        }
        if (std::string line = describe(change); !line.empty()) {
            lines.push_back(std::move(line));
        }
    }
    if (bridges_ == nullptr) {
        for (const BridgeChange& change : plan.bridges) {
            lines.push_back("bridge '" + change.config.name +
                            "' not applied: the gateway has not started");
        }
    } else {
        bridges_->set_channel_types(next.channels);
        if (bridges_deferred_) {
            // Nothing runs yet: start_bridges() starts the configuration applied here.
            for (const BridgeChange& change : plan.bridges) {
                lines.push_back("bridge '" + change.config.name +
                                "': applies when the bridges start, once the channels of the "
                                "previous run are back or the grace period ends");
            }
        } else {
            for (std::string& line : bridges_->apply(plan.bridges)) {
                lines.push_back(std::move(line));
            }
        }
    }
    if (plan.log_level) {
        lines.push_back("log_level " + std::string{to_string(config_.log_level)} + " -> " +
                        std::string{to_string(*plan.log_level)});
        set_log_level(*plan.log_level);
    }
    config_ = std::move(next);
    std::string summary = "configuration reloaded";
    if (lines.empty()) {
        summary += ": nothing changed";
    }
    for (const auto& l : lines) {
        summary += "\n" + l;
        log_info("reload: " + l);
    }
    // Channels removed from the configuration that nobody holds go now, each logged.
    remove_unused_channels();
    save_state();
    changed();
    return summary;
}

bool DaemonState::restore_after_restart(const std::vector<std::string>& adopted) {
    return recovery_.restore(adopted);
}

void DaemonState::end_grace() {
    recovery_.end_grace();
    if (auto created = create_configured_channels(); !created) {
        log_error("after the grace period: " + created.error().message());
    }
    remove_unused_channels();
    save_state(); // stand-ins are recorded as themselves now
    changed();
    if (bridges_deferred_) {
        start_bridges();
    }
}

void DaemonState::start_bridges() {
    if (bridges_ == nullptr) {
        return;
    }
    // Deferred even with none configured: a reload meanwhile may add some, which must wait
    // for the same channels.
    if (recovery_.awaiting_any()) {
        if (!bridges_deferred_ && !config_.bridges.empty()) {
            log_info("bridges start once the channels of the previous run are offered back, or "
                     "when the grace period ends");
        }
        bridges_deferred_ = true;
        return;
    }
    bridges_deferred_ = false;
    bridges_->start(config_.bridges);
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

Result<void> DaemonState::take_back(const ClientRecord& client, const proto::ReclaimOffer& m,
                                    std::vector<UniqueFd> fds) {
    if (m.role != Role::publisher && m.role != Role::subscriber) {
        return make_error(Errc::invalid_argument, "unknown role");
    }
    const LogFields fields =
        client_fields(client.credentials.pid, client.credentials.uid, client.name, m.channel);
    auto offered = recovery_.take_back(m, fds, config_, describe(client), fields);
    if (!offered) {
        return offered.take_error();
    }
    if (offered->given_back) {
        save_state(); // the channel is this daemon's again
        changed();
        if (bridges_deferred_) {
            start_bridges(); // at once if it was the last one awaited
        }
    }
    if (auto added = registry_.add_claim(*offered->channel,
                                         EndpointClaim{client.id, m.role, m.endpoint_index,
                                                       client.credentials.pid,
                                                       client.credentials.uid, client.name});
        !added) {
        return added;
    }
    log_info(describe(client) + " took back " + std::string{to_string(m.role)} + " " +
                 std::to_string(m.endpoint_index) + " on '" + m.channel + "'",
             fields);
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
    write_state(recovery_.running_state());
}

void DaemonState::write_state_at_stop() {
    state_dirty_ = false;
    write_state(recovery_.state_at_stop());
}

void DaemonState::write_state(const SavedState& state) {
    if (auto written = recovery_.file().write(state); !written) {
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
