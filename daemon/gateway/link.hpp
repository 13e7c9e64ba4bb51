// A bridge's link: where it goes (the `connect:` or `listen:` text of its configuration) and
// the descriptors that carry it once up. docs/gateway.md ("Links").
//
//   tcp://HOST:PORT          TCP, IPv4 or IPv6 ([::1]:7411); HOST a name or an address
//   fifo:IN_PATH,OUT_PATH    a pair of named pipes: this end reads IN_PATH, writes OUT_PATH
//   exec:COMMAND             a command (run by /bin/sh -c) whose stdin/stdout is the link
//
// parse_link() is pure and names what is wrong. A Link owns its descriptors (one for a socket,
// two for a FIFO pair) and, for exec:, the command's process. connect_link() and
// TcpListener::accept() block up to a deadline: call them on the bridge's own thread.
// Descriptors are close-on-exec; sockets get TCP_NODELAY (frames are written whole, so Nagle
// would only add latency) and keepalive, and leave little to the kernel: TCP_NOTSENT_LOWAT
// bounds what waits unsent (a write beyond it waits) and SO_RCVBUF (the bridge's
// receive_buffer, kLinkReceiveBuffer by default; not set with auto), set before connect() and
// listen(), what waits unread, so that a busy link's queue stays in the
// bridge's writer, where streams take turns. TLS runs on the same socket and gets the same.
//
// exec: runs COMMAND in a process group of its own with a Unix stream socket as its stdin and
// stdout (a socket rather than two pipes: one descriptor, writes without SIGPIPE, and a
// shutdown() that wakes a reader at once) and its stderr in a pipe that a thread of the Link
// reads, passing each line to the link's log with the bridge named. The command is the
// connecting end; only the daemon runs it (the far end, `shmbusctl bridge-stdio`, answers).
// When the Link ends, ExecChild::finish() ends the whole group (SIGTERM, then SIGKILL after a
// short grace) and reaps the command, and says how it ended for the bridge's last error.
#pragma once

#include "gateway/link_io.hpp"

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <thread>

namespace shmbus::gateway {

// What a TCP link leaves to the kernel. A bridge writes a large message in 256 KiB fragments,
// taking turns with the other streams' frames at its write side; that queue decides what goes
// first only if the kernel does not hold megabytes ahead of it. docs/gateway.md ("Links").

/// Unsent bytes above which a write waits (TCP_NOTSENT_LOWAT): half a fragment. poll() says
/// writable again below half of it.
inline constexpr int kLinkNotSentLowWater = 128 * 1024;
/// SO_RCVBUF by default (a bridge's `receive_buffer`): one fragment, which the kernel doubles
/// for its bookkeeping, so that about two fragments are in flight. It also caps the link's
/// throughput at about twice this per round trip: a long link raises it, or gives the buffer
/// back to the kernel's autotuning (0).
inline constexpr int kLinkReceiveBuffer = 256 * 1024;

struct LinkAddress {
    enum class Kind { tcp, fifo, exec };
    Kind kind{Kind::tcp};
    std::string host;      ///< tcp: a name or an address, without brackets
    std::uint16_t port{0}; ///< tcp
    std::string in_path;   ///< fifo: the pipe this end reads
    std::string out_path;  ///< fifo: the pipe this end writes
    std::string command;   ///< exec: the shell command, run by /bin/sh -c
    std::string text;      ///< as written, for logs
    /// tcp: SO_RCVBUF in bytes (a bridge's `receive_buffer`); 0: the kernel's autotuning.
    int receive_buffer{kLinkReceiveBuffer};
};

/// Why a tcp link will not get the receive buffer `address` asks for, as a sentence naming
/// both sizes: without privilege the kernel caps SO_RCVBUF at net.core.rmem_max. None when it
/// will (or cannot tell), and for links of other kinds.
[[nodiscard]] std::optional<std::string> receive_buffer_shortfall(const LinkAddress& address);

/// Parses a link address. Errc::invalid_argument naming the problem ("tcp://host: missing
/// port", "fifo: needs two paths separated by a comma", "exec: needs a command").
[[nodiscard]] Result<LinkAddress> parse_link(std::string_view text);

/// Where a link's lines go (an exec: command's stderr). Called from the link's own thread.
using LinkLog = std::function<void(std::string_view)>;

/// The running command of an exec: link: its process group, and the thread that logs its
/// stderr. Move-only; the destructor does what finish() does.
class ExecChild {
public:
    ExecChild(pid_t pid, UniqueFd pidfd, UniqueFd stderr_fd, std::string label, LinkLog log);
    ~ExecChild();
    ExecChild(const ExecChild&) = delete;
    ExecChild& operator=(const ExecChild&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// Asks the command's process group to end (SIGTERM); safe from any thread until
    /// finish() begins (then a no-op: finish() signals the group itself), idempotent, does not
    /// wait. Wakes a link that waits on the command.
    void terminate() noexcept;
    /// Ends the process group (SIGTERM, then SIGKILL after `grace`), reaps the command, joins
    /// the stderr thread, and says how the command ended ("exited with status 3", "killed by
    /// signal 9"). Idempotent: later calls return the same text.
    std::string finish(std::chrono::milliseconds grace = std::chrono::milliseconds{500});

private:
    void log_stderr();

    pid_t pid_;
    UniqueFd pidfd_;
    UniqueFd stderr_fd_;
    UniqueFd stop_log_; ///< eventfd: ends the stderr thread even if a grandchild keeps it open
    std::string label_;
    LinkLog log_;
    std::thread log_thread_;
    std::atomic<bool> finishing_{false}; ///< finish() has begun: the group is its business
    std::optional<std::string> ended_;   ///< finish()'s thread only
};

/// The descriptors of one live link.
struct Link {
    UniqueFd in;      ///< read from here
    UniqueFd out;     ///< write here (the same socket as `in` for tcp: then `out` is empty)
    std::string peer; ///< the peer's address, for logs ("192.0.2.7:7411", a path, a pid)
    std::unique_ptr<ExecChild> child; ///< exec: the command at the other end

    [[nodiscard]] int in_fd() const noexcept { return in.get(); }
    [[nodiscard]] int out_fd() const noexcept { return out.valid() ? out.get() : in.get(); }
};

/// Opens the link at `address` as its connecting end: a TCP connection, a FIFO pair
/// (waiting, until `deadline`, for the other end to open its side), or the started command of
/// an exec: link, whose stderr lines go to `log` prefixed with `label`. Errc::timed_out,
/// Errc::not_found (an unknown host or a missing FIFO), Errc::system_error (refused,
/// unreachable, the command could not be started: the errno says which), each naming the
/// address.
[[nodiscard]] Result<Link> connect_link(const LinkAddress& address, Deadline deadline,
                                        const std::string& label = {}, LinkLog log = {});

/// A listening TCP socket. Move-only.
class TcpListener {
public:
    /// Binds and listens on `address` (a tcp address; port 0 takes a free one).
    static Result<TcpListener> listen(const LinkAddress& address);
    /// Waits for one connection until `deadline`; Errc::timed_out then.
    Result<Link> accept(Deadline deadline);
    /// The port it listens on (the one the kernel chose for port 0).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    TcpListener(UniqueFd fd, std::uint16_t port) : fd_{std::move(fd)}, port_{port} {}
    UniqueFd fd_;
    std::uint16_t port_{0};
};

} // namespace shmbus::gateway
