// The control connection below the protocol. See client_connection.hpp for the rules,
// in particular what a fork()ed child does with the descriptors it inherits.
#include "client_connection.hpp"

#include "protocol/seqpacket.hpp"
#include "shm/sleep_announcement.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace shmbus::detail {

namespace {

// Every open ControlFd of the process. Guarded by `table_mutex`, which the atfork prepare
// handler holds across fork() so that the child sees a table that matches its descriptors.
std::mutex table_mutex;
std::vector<int>& table() {
    static std::vector<int>* fds = new std::vector<int>; // never destroyed: used at exit
    return *fds;
}

/// In the child, single-threaded, with table_mutex held by the forking thread: turns every
/// listed descriptor into an unconnected socket of its own. Only async-signal-safe calls.
void disconnect_in_child() noexcept {
    std::vector<int>& fds = table();
    if (!fds.empty()) {
        int dead = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (dead < 0) {
            // No descriptor left (EMFILE): closing one of ours makes its number the lowest
            // free one, which socket() then returns.
            ::close(fds.front());
            dead = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        }
        if (dead >= 0) {
            bool dead_is_listed = false;
            for (const int fd : fds) {
                if (fd == dead) {
                    dead_is_listed = true;
                } else {
                    (void)::dup3(dead, fd, O_CLOEXEC);
                }
            }
            if (!dead_is_listed) {
                ::close(dead);
            }
        } else {
            // Not even that: close them all rather than keep the parent's connection alive.
            // A stale ControlFd may then close a descriptor the child reuses; the child
            // cannot make a socket anyway.
            for (const int fd : fds) {
                ::close(fd);
            }
        }
    }
    table_mutex.unlock();
}

void register_fork_handlers() {
    static std::once_flag once;
    std::call_once(once, [] {
        (void)table(); // made before any fork, so that the child handler allocates nothing
        (void)::pthread_atfork([] { table_mutex.lock(); }, [] { table_mutex.unlock(); },
                               disconnect_in_child);
    });
}

/// Lists `fd`; the caller holds table_mutex and has reserved room (so this cannot throw).
void list(int fd) noexcept {
    table().push_back(fd);
}

} // namespace

Result<ControlFd> ControlFd::open_socket() {
    register_fork_handlers();
    // The process's membarrier registration (sleep_announcement.hpp) is a slow system call
    // the first time. Made here, before this client can claim an endpoint, so that no
    // attach pays for it between claiming its entry and joining the ring: a broadcast
    // subscriber that others already count would otherwise start late, past messages
    // published meanwhile.
    (void)detail::wakers_may_skip();
    const std::lock_guard lock{table_mutex};
    table().reserve(table().size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return make_error(Errc::system_error, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
    }
    list(fd);
    return ControlFd{fd};
}

ControlFd ControlFd::duplicate(const ControlFd& other) {
    if (!other) {
        return ControlFd{};
    }
    const std::lock_guard lock{table_mutex};
    table().reserve(table().size() + 1);
    const int fd = ::fcntl(other.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        return ControlFd{};
    }
    list(fd);
    return ControlFd{fd};
}

void ControlFd::reset() noexcept {
    if (fd_ < 0) {
        return;
    }
    const std::lock_guard lock{table_mutex};
    std::vector<int>& fds = table();
    if (const auto it = std::find(fds.begin(), fds.end(), fd_); it != fds.end()) {
        fds.erase(it);
    }
    ::close(fd_);
    fd_ = -1;
}

Result<ControlFd> connect_socket(const std::string& path, std::chrono::milliseconds timeout) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        return make_error(Errc::invalid_argument, "socket path " + quoted(path) + " must be 1 to " +
                                                      std::to_string(sizeof(addr.sun_path) - 1) +
                                                      " bytes long");
    }
    path.copy(addr.sun_path, path.size());
    auto fd = ControlFd::open_socket();
    if (!fd) {
        return fd;
    }
    if (auto sized = proto::size_socket_buffers(fd->get()); !sized) {
        return sized.take_error();
    }
    const auto ms = std::max<std::chrono::milliseconds::rep>(timeout.count(), 1);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    if (::setsockopt(fd->get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        return make_error(Errc::system_error, "setting SO_SNDTIMEO", errno);
    }
    int rc = 0;
    do {
        rc = ::connect(fd->get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        const int err = errno;
        switch (err) {
        case ENOENT:
        case ECONNREFUSED:
        case ENOTDIR:
            return make_error(Errc::not_found,
                              "no shmbusd is listening on " + path + " (is it running?)", err);
        case EACCES:
        case EPERM:
            return make_error(Errc::permission_denied,
                              "this user may not connect to shmbusd's socket " + path, err);
        case EAGAIN:
            return make_error(Errc::timed_out,
                              "shmbusd at " + path + " did not accept the connection within " +
                                  std::to_string(ms) + " ms",
                              err);
        default:
            return make_error(Errc::system_error, "connecting to " + path, err);
        }
    }
    return fd;
}

bool is_permanent(Errc code) noexcept {
    return code == Errc::version_mismatch || code == Errc::permission_denied ||
           code == Errc::invalid_argument || code == Errc::protocol_error ||
           code == Errc::no_memory;
}

std::string format_ms(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) {
        return std::to_string(d.count() / 1000) + " s";
    }
    return std::to_string(d.count()) + " ms";
}

std::string quoted(std::string_view s) {
    return "'" + std::string{s} + "'";
}

Error prefixed(Error e, const std::string& prefix) {
    e.detail = prefix + e.detail;
    return e;
}

} // namespace shmbus::detail
