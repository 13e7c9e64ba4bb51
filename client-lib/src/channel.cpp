// Public channel functions: creation, inspection, descriptor duplication, names.
#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/version.hpp>

#include "shm/segment.hpp"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace shmbus {

std::string_view to_string(ChannelKind kind) noexcept {
    switch (kind) {
    case ChannelKind::queue:
        return "queue";
    case ChannelKind::broadcast:
        return "broadcast";
    case ChannelKind::blackboard:
        return "blackboard";
    case ChannelKind::counters:
        return "counters";
    case ChannelKind::rpc:
        return "rpc";
    case ChannelKind::pool:
        return "pool";
    }
    return "unknown";
}

std::string_view to_string(Overflow overflow) noexcept {
    switch (overflow) {
    case Overflow::block:
        return "block";
    case Overflow::drop:
        return "drop";
    }
    return "unknown";
}

std::string_view to_string(Role role) noexcept {
    switch (role) {
    case Role::publisher:
        return "publisher";
    case Role::subscriber:
        return "subscriber";
    }
    return "unknown";
}

std::string_view to_string(WaitMode mode) noexcept {
    switch (mode) {
    case WaitMode::spin:
        return "spin";
    case WaitMode::adaptive:
        return "adaptive";
    case WaitMode::blocking:
        return "blocking";
    }
    return "unknown";
}

std::string_view to_string(EventKind kind) noexcept {
    switch (kind) {
    case EventKind::attached:
        return "attached";
    case EventKind::detached:
        return "detached";
    case EventKind::died:
        return "died";
    case EventKind::lapped:
        return "lapped";
    case EventKind::events_lost:
        return "events_lost";
    case EventKind::server_gone:
        return "server_gone";
    }
    return "unknown";
}

const char* library_version() noexcept {
    return SHMBUS_VERSION_STRING;
}

Result<ChannelFiles> create_channel(const ChannelSpec& spec, std::uint64_t max_bytes) noexcept {
    return detail::create_segments(spec, max_bytes);
}

Result<std::uint64_t> channel_bytes(const ChannelSpec& spec) noexcept {
    auto geo = detail::geometry_for(spec);
    if (!geo) {
        return geo.take_error();
    }
    return geo->control_bytes() + geo->payload_bytes();
}

Result<ChannelInfo> inspect_channel(const ChannelFiles& files) noexcept {
    auto attached =
        detail::attach_channel(files, detail::PayloadAccess::inspect, detail::Prefault::no);
    if (!attached) {
        return attached.take_error();
    }
    return std::move(attached->info);
}

Result<ChannelFiles> ChannelFiles::duplicate() const noexcept {
    UniqueFd c{fcntl(control.get(), F_DUPFD_CLOEXEC, 0)};
    if (!c) {
        return make_error(Errc::system_error, "duplicating a channel descriptor", errno);
    }
    UniqueFd p{fcntl(payload.get(), F_DUPFD_CLOEXEC, 0)};
    if (!p) {
        return make_error(Errc::system_error, "duplicating a channel descriptor", errno);
    }
    return ChannelFiles{std::move(c), std::move(p)};
}

Result<ChannelFiles> ChannelFiles::duplicate_for(Role role) const noexcept {
    if (!control || !payload) {
        return make_error(Errc::invalid_argument, "duplicate_for: these channel files are empty");
    }
    UniqueFd c{fcntl(control.get(), F_DUPFD_CLOEXEC, 0)};
    if (!c) {
        return make_error(Errc::system_error, "dup of control descriptor", errno);
    }
    const int flags = fcntl(payload.get(), F_GETFL);
    const bool have_writable = flags >= 0 && (flags & O_ACCMODE) == O_RDWR;
    UniqueFd p;
    if (role == Role::publisher) {
        if (!have_writable) {
            return make_error(
                Errc::permission_denied,
                "a publisher needs a writable payload descriptor; this one is read-only");
        }
        p.reset(fcntl(payload.get(), F_DUPFD_CLOEXEC, 0));
    } else {
        // A new open file description, read-only: mmap(PROT_WRITE) and mprotect() to
        // PROT_WRITE on it fail with EACCES, so a subscriber cannot alter the payload.
        const std::string path = "/proc/self/fd/" + std::to_string(payload.get());
        p.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    }
    if (!p) {
        return make_error(Errc::system_error, "duplicating payload descriptor", errno);
    }
    return ChannelFiles{std::move(c), std::move(p)};
}

} // namespace shmbus
