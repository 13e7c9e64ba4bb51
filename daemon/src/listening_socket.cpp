// The control socket, bound or passed. See listening_socket.hpp.
#include "listening_socket.hpp"

#include "logging.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmbus::daemon {

namespace {

constexpr int kListenBacklog = 128;

} // namespace

Result<ListeningSocket> ListeningSocket::open(const std::filesystem::path& path,
                                              std::vector<PassedFd>& passed) {
    ListeningSocket s;
    for (auto& p : passed) {
        if (p.fd && is_listening_seqpacket(p.fd.get())) {
            s.fd_ = std::move(p.fd);
            s.activated_ = true;
            log_info("using the listening socket passed by the service manager ('" + p.name + "')");
            break;
        }
    }
    if (!s.activated_) {
        if (auto bound = s.bind(path); !bound) {
            return bound.take_error();
        }
    }
    // A passed socket may be blocking; the loop needs it not to be.
    const int flags = ::fcntl(s.fd_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(s.fd_.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
        return make_error(Errc::system_error, "making the listening socket non-blocking", errno);
    }
    return s;
}

Result<void> ListeningSocket::bind(const std::filesystem::path& socket_path) {
    const std::string path = socket_path.native();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        return make_error(Errc::invalid_argument, "socket path '" + path + "' is too long");
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (!fd) {
        return make_error(Errc::system_error, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
    }
    auto* sa = reinterpret_cast<const sockaddr*>(&addr);
    if (::bind(fd.get(), sa, sizeof addr) != 0) {
        if (errno != EADDRINUSE) {
            return make_error(Errc::system_error, "cannot bind '" + path + "'", errno);
        }
        // A file is there. Only a socket nobody listens on may be replaced.
        UniqueFd probe{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
        const int rc = ::connect(probe.get(), sa, sizeof addr);
        const int err = errno;
        if (rc == 0) {
            return make_error(Errc::already_exists,
                              "another daemon is listening on '" + path + "'");
        }
        if (err != ECONNREFUSED) {
            return make_error(Errc::system_error, "'" + path + "' exists and is not a stale socket",
                              err);
        }
        log_info("removing stale socket '" + path + "' (nobody listens on it)");
        ::unlink(path.c_str());
        if (::bind(fd.get(), sa, sizeof addr) != 0) {
            return make_error(Errc::system_error, "cannot bind '" + path + "'", errno);
        }
    }
    bound_path_ = socket_path;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        dev_ = st.st_dev;
        ino_ = st.st_ino;
    }
    if (::chmod(path.c_str(), 0666) != 0) {
        return make_error(Errc::system_error, "chmod '" + path + "'", errno);
    }
    if (::listen(fd.get(), kListenBacklog) != 0) {
        return make_error(Errc::system_error, "listen on '" + path + "'", errno);
    }
    fd_ = std::move(fd);
    return ok();
}

void ListeningSocket::remove_file() const noexcept {
    if (bound_path_.empty()) {
        return;
    }
    struct stat st {};
    if (::stat(bound_path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
        ::unlink(bound_path_.c_str());
    }
}

} // namespace shmbus::daemon
