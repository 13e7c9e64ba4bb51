// systemd glue: notifications, socket activation, the fd store. See systemd_notify.hpp.
#include "systemd_notify.hpp"

#include "logging.hpp"
#include "systemd_protocol.hpp"

#include <ctime>
#include <string>
#include <sys/socket.h>

namespace shmbus::daemon {

void notify_ready() {
    (void)sd::notify("READY=1");
}

void notify_status(std::string_view status) {
    const std::string msg = "STATUS=" + std::string{status};
    (void)sd::notify(msg);
}

void notify_reloading() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ULL +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    const std::string msg = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
    (void)sd::notify(msg);
}

void notify_stopping() {
    (void)sd::notify("STOPPING=1");
}

void notify_watchdog() {
    (void)sd::notify("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    if (const std::uint64_t usec = sd::watchdog_usec(); usec > 0) {
        return std::chrono::microseconds{usec};
    }
    return std::nullopt;
}

std::vector<PassedFd> take_passed_fds() {
    std::vector<PassedFd> out;
    const std::optional<std::vector<std::string>> names = sd::take_listen_fds();
    if (!names) {
        log(LogLevel::warning,
            "the service manager's LISTEN_PID, LISTEN_FDS or LISTEN_FDNAMES are malformed, or "
            "name a descriptor that is not open: no passed descriptor is used");
        return out;
    }
    for (std::size_t i = 0; i < names->size(); ++i) {
        PassedFd p;
        p.fd.reset(sd::kListenFdsStart + static_cast<int>(i));
        p.name = (*names)[i].empty() ? "unknown" : (*names)[i];
        out.push_back(std::move(p));
    }
    return out;
}

bool is_listening_seqpacket(int fd) noexcept {
    return sd::is_listening_unix_socket(fd, SOCK_SEQPACKET);
}

Result<void> store_fds(std::string_view name, const std::vector<int>& fds) {
    const std::string msg = "FDSTORE=1\nFDNAME=" + std::string{name};
    // 0: no NOTIFY_SOCKET, no store to fill.
    if (const int rc = sd::notify(msg, fds); rc < 0) {
        return make_error(
            Errc::system_error,
            "the service manager did not take the descriptors of '" + std::string{name} + "'", -rc);
    }
    return ok();
}

void remove_stored_fds(std::string_view name) {
    const std::string msg = "FDSTOREREMOVE=1\nFDNAME=" + std::string{name};
    (void)sd::notify(msg);
}

} // namespace shmbus::daemon
