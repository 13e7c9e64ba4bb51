// ListeningSocket: the control socket shmbusd accepts clients on.
//
// Either passed by the service manager (socket activation: the first listening
// SOCK_SEQPACKET socket among the descriptors sd_listen_fds() gave) or bound here at the
// configured path. Binding never robs a running daemon of its socket: a file already at the
// path is unlinked only if connect() to it fails with ECONNREFUSED (a stale socket nobody
// listens on). The file is chmod 0666: who may do what is decided per request from
// SO_PEERCRED, and a user instance's runtime directory (0700) already keeps other users out.
//
// Owns the listening descriptor (non-blocking, close-on-exec) and, when it bound one, the
// socket file: remove_file() unlinks it at a graceful stop only if the path still names the
// socket this process bound (same device and inode), never a successor's.
//
// Thread: the event loop's. Errors name the path and the system call.
#pragma once

#include "systemd_notify.hpp"

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <filesystem>
#include <sys/types.h>
#include <vector>

namespace shmbus::daemon {

class ListeningSocket {
public:
    /// The first listening SOCK_SEQPACKET socket among `passed` (taken out of it), else a
    /// socket bound and listening at `path`. Made non-blocking either way.
    [[nodiscard]] static Result<ListeningSocket> open(const std::filesystem::path& path,
                                                      std::vector<PassedFd>& passed);

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    /// Whether the socket came from the service manager.
    [[nodiscard]] bool activated() const noexcept { return activated_; }
    /// Closes the descriptor (nothing more is accepted).
    void close() noexcept { fd_.reset(); }
    /// Unlinks the socket file if this process bound it and the path still names it.
    void remove_file() const noexcept;

private:
    ListeningSocket() = default;
    [[nodiscard]] Result<void> bind(const std::filesystem::path& path);

    UniqueFd fd_;
    bool activated_{false};
    std::filesystem::path bound_path_; ///< empty unless this process bound the file
    dev_t dev_{0};
    ino_t ino_{0};
};

} // namespace shmbus::daemon
