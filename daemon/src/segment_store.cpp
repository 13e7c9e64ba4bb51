// The fd store of segments across restarts. See segment_store.hpp.
#include "segment_store.hpp"

#include "logging.hpp"

#include <map>
#include <sys/stat.h>

namespace shmbus::daemon {

std::string fd_store_name(std::string_view channel, bool control) {
    std::string out;
    for (char c : channel) {
        out += c == ':' ? '%' : c;
    }
    return out + (control ? "#control" : "#payload");
}

std::optional<StoredRegion> parse_fd_store_name(std::string_view name) {
    const auto hash = name.rfind('#');
    if (hash == std::string_view::npos || hash == 0) {
        return std::nullopt;
    }
    const std::string_view region = name.substr(hash + 1);
    if (region != "control" && region != "payload") {
        return std::nullopt;
    }
    StoredRegion r;
    r.control = region == "control";
    for (char c : name.substr(0, hash)) {
        r.channel += c == '%' ? ':' : c;
    }
    return r;
}

void store_channel(const RegisteredChannel& channel) {
    for (bool control : {true, false}) {
        const int fd = control ? channel.files.control.get() : channel.files.payload.get();
        if (auto stored = store_fds(fd_store_name(channel.info.name, control), {fd}); !stored) {
            log_warning("channel '" + channel.info.name +
                            "' will not survive a restart: " + stored.error().message(),
                        channel_fields(channel.info.name));
        }
    }
}

void forget_stored_channel(const RegisteredChannel& channel) {
    remove_stored_fds(fd_store_name(channel.info.name, true));
    remove_stored_fds(fd_store_name(channel.info.name, false));
}

std::vector<std::string> adopt_stored_channels(std::vector<PassedFd>& passed, const Config& config,
                                               ChannelRegistry& registry) {
    std::map<std::string, ChannelFiles> found;
    for (auto& p : passed) {
        if (!p.fd) {
            continue;
        }
        auto region = parse_fd_store_name(p.name);
        if (!region) {
            continue;
        }
        ChannelFiles& f = found[region->channel];
        (region->control ? f.control : f.payload) = std::move(p.fd);
    }
    std::vector<std::string> adopted;
    for (auto& [name, files] : found) {
        if (!files.control || !files.payload) {
            log_warning("the descriptor store holds only one region of channel '" + name +
                            "'; set aside",
                        channel_fields(name));
            remove_stored_fds(fd_store_name(name, true));
            remove_stored_fds(fd_store_name(name, false));
            continue;
        }
        auto info = inspect_channel(files);
        if (!info || info->name != name) {
            log_warning("stored segments of channel '" + name + "' are not valid (" +
                            (info ? "they name '" + info->name + "'" : info.error().message()) +
                            "); set aside",
                        channel_fields(name));
            remove_stored_fds(fd_store_name(name, true));
            remove_stored_fds(fd_store_name(name, false));
            continue;
        }
        const ChannelConfig* wanted = nullptr;
        for (const auto& cc : config.channels) {
            if (cc.spec.name == name) {
                wanted = &cc;
            }
        }
        if (wanted != nullptr) {
            const ChannelSpec& s = wanted->spec;
            const bool same = s.kind == info->kind && s.overflow == info->overflow &&
                              s.slot_size == info->slot_size && s.slot_count == info->slot_count &&
                              s.max_publishers == info->max_publishers &&
                              s.max_subscribers == info->max_subscribers &&
                              s.reply_slot_size == info->reply_slot_size;
            if (!same) {
                log_warning("channel '" + name +
                                "' from before the restart no longer matches the configuration; "
                                "set aside (its clients keep it) and created anew",
                            channel_fields(name));
                remove_stored_fds(fd_store_name(name, true));
                remove_stored_fds(fd_store_name(name, false));
                continue;
            }
        }
        ChannelAcl acl = wanted != nullptr ? wanted->acl : ChannelAcl{};
        ChannelOrigin origin;
        origin.dynamic = wanted == nullptr; // no creator any more: goes once unused
        auto made = registry.adopt(std::move(files), std::move(acl), origin);
        if (!made) {
            log_warning("cannot take back channel '" + name + "': " + made.error().message(),
                        channel_fields(name));
            continue;
        }
        log_info("took back channel '" + name + "' from the descriptor store (" +
                     std::to_string((*made)->supervisor.endpoints().size()) +
                     " endpoints still attached)",
                 channel_fields(name));
        adopted.push_back(name);
    }
    return adopted;
}

bool same_file(int a, int b) noexcept {
    struct stat sa {};
    struct stat sb {};
    return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

} // namespace shmbus::daemon
