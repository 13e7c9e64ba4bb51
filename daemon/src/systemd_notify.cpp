// systemd glue: sd_notify() messages, socket activation, the fd store. See systemd_notify.hpp.
#include "systemd_notify.hpp"

#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>

namespace shmbus::daemon {

void notify_ready() {
    sd_notify(0, "READY=1");
}

void notify_status(std::string_view status) {
    const std::string msg = "STATUS=" + std::string{status};
    sd_notify(0, msg.c_str());
}

void notify_reloading() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ULL +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    const std::string msg = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
    sd_notify(0, msg.c_str());
}

void notify_stopping() {
    sd_notify(0, "STOPPING=1");
}

void notify_watchdog() {
    sd_notify(0, "WATCHDOG=1");
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        return std::chrono::microseconds{usec};
    }
    return std::nullopt;
}

std::vector<PassedFd> take_passed_fds() {
    std::vector<PassedFd> out;
    char** names = nullptr;
    const int n = sd_listen_fds_with_names(1, &names);
    for (int i = 0; i < n; ++i) {
        const int fd = SD_LISTEN_FDS_START + i;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        PassedFd p;
        p.fd.reset(fd);
        p.name = names != nullptr && names[i] != nullptr ? names[i] : "unknown";
        out.push_back(std::move(p));
    }
    if (names != nullptr) {
        for (int i = 0; i < n; ++i) {
            std::free(names[i]);
        }
        std::free(names);
    }
    return out;
}

bool is_listening_seqpacket(int fd) noexcept {
    return sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, nullptr, 0) > 0;
}

Result<void> store_fds(std::string_view name, const std::vector<int>& fds) {
    if (std::getenv("NOTIFY_SOCKET") == nullptr) {
        return ok();
    }
    const std::string msg = "FDSTORE=1\nFDNAME=" + std::string{name};
    const int rc =
        sd_pid_notify_with_fds(0, 0, msg.c_str(), fds.data(), static_cast<unsigned>(fds.size()));
    if (rc <= 0) {
        return make_error(Errc::system_error,
                          "the service manager did not take the descriptors of '" +
                              std::string{name} + "'",
                          rc < 0 ? -rc : 0);
    }
    return ok();
}

void remove_stored_fds(std::string_view name) {
    if (std::getenv("NOTIFY_SOCKET") == nullptr) {
        return;
    }
    const std::string msg = "FDSTOREREMOVE=1\nFDNAME=" + std::string{name};
    sd_notify(0, msg.c_str());
}

} // namespace shmbus::daemon
