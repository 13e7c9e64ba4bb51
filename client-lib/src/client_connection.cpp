// The control connection below the protocol. See client_connection.hpp.
#include "client_connection.hpp"

#include "protocol/seqpacket.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmbus::detail {

Result<UniqueFd> connect_socket(const std::string& path, std::chrono::milliseconds timeout) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        return make_error(Errc::invalid_argument, "socket path " + quoted(path) + " must be 1 to " +
                                                      std::to_string(sizeof(addr.sun_path) - 1) +
                                                      " bytes long");
    }
    path.copy(addr.sun_path, path.size());
    UniqueFd fd{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
    if (!fd) {
        return make_error(Errc::system_error, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
    }
    if (auto sized = proto::size_socket_buffers(fd.get()); !sized) {
        return sized.take_error();
    }
    const auto ms = std::max<std::chrono::milliseconds::rep>(timeout.count(), 1);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        return make_error(Errc::system_error, "setting SO_SNDTIMEO", errno);
    }
    int rc = 0;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
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
