// Link addresses and opening links; the rules are in link.hpp.
#include "gateway/link.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::gateway {

namespace {

using Clock = std::chrono::steady_clock;

Error bad(std::string_view text, const std::string& problem) {
    return make_error(Errc::invalid_argument, "link '" + std::string{text} + "': " + problem);
}

int ms_until(Deadline deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, 86'400'000));
}

/// Bounds the receive buffer, which also turns its autotuning off. Before connect() or
/// listen(): the window scale is agreed in the handshake, and an accepted socket takes the
/// listening socket's buffer sizes.
void bound_receive(int fd, const LinkAddress& address) {
    if (address.receive_buffer > 0) {
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &address.receive_buffer,
                           sizeof address.receive_buffer);
    }
}

/// Once connected (or accepted).
void tune_socket(int fd) {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &kLinkNotSentLowWater,
                       sizeof kLinkNotSentLowWater);
}

std::string address_text(const sockaddr* sa) {
    char host[INET6_ADDRSTRLEN] = {};
    std::uint16_t port = 0;
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        return std::string{host} + ":" + std::to_string(port);
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return "[" + std::string{host} + "]:" + std::to_string(port);
}

/// Resolves `address` (getaddrinfo; Errc::not_found naming the host) and tries its addresses
/// in turn, each with a new non-blocking socket of its family: `use(fd, ai)` makes the result
/// of one, or says why that address failed. The first result wins; else the last address's
/// error.
template <typename T, typename Use>
Result<T> first_address(const LinkAddress& address, bool passive, Use use) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* found = nullptr;
    const std::string port = std::to_string(address.port);
    const int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
        return make_error(Errc::not_found, "link '" + address.text + "': cannot resolve '" +
                                               address.host + "': " + ::gai_strerror(rc));
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list{found, &::freeaddrinfo};
    Error last = make_error(Errc::not_found, "link '" + address.text + "': no address");
    for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
        UniqueFd fd{::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                             ai->ai_protocol)};
        if (!fd) {
            last = make_error(Errc::system_error, "link '" + address.text + "': socket", errno);
            continue;
        }
        Result<T> r = use(std::move(fd), *ai);
        if (r) {
            return r;
        }
        last = r.take_error();
    }
    return last;
}

Result<Link> connect_tcp(const LinkAddress& address, Deadline deadline) {
    return first_address<Link>(
        address, false, [&](UniqueFd fd, const addrinfo& ai) -> Result<Link> {
            bound_receive(fd.get(), address);
            int rc = ::connect(fd.get(), ai.ai_addr, ai.ai_addrlen);
            if (rc != 0 && errno == EINPROGRESS) {
                pollfd p{fd.get(), POLLOUT, 0};
                rc = ::poll(&p, 1, ms_until(deadline));
                if (rc == 0) {
                    return make_error(Errc::timed_out,
                                      "link '" + address.text + "': connecting to " +
                                          address_text(ai.ai_addr) + " did not complete in time");
                }
                int err = 0;
                socklen_t len = sizeof err;
                (void)::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
                rc = err == 0 ? 0 : -1;
                errno = err;
            }
            if (rc != 0) {
                return make_error(Errc::system_error,
                                  "link '" + address.text + "': connecting to " +
                                      address_text(ai.ai_addr) + " failed",
                                  errno);
            }
            tune_socket(fd.get());
            Link link;
            link.peer = address_text(ai.ai_addr);
            link.in = std::move(fd);
            return link;
        });
}

Result<Link> connect_fifo(const LinkAddress& address, Deadline deadline) {
    // Reading side first and without waiting (O_NONBLOCK), then the writing side, which
    // fails with ENXIO until the other end has opened its reading side: both ends do the
    // same, so neither can wait for the other for ever.
    UniqueFd in{::open(address.in_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    if (!in) {
        return make_error(errno == ENOENT ? Errc::not_found : Errc::system_error,
                          "link '" + address.text + "': cannot open '" + address.in_path +
                              "' for reading",
                          errno);
    }
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISFIFO(st.st_mode)) {
        return make_error(Errc::invalid_argument, "link '" + address.text + "': '" +
                                                      address.in_path +
                                                      "' is not a named pipe (mkfifo)");
    }
    for (;;) {
        UniqueFd out{::open(address.out_path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)};
        if (out) {
            Link link;
            link.peer = address.out_path;
            link.in = std::move(in);
            link.out = std::move(out);
            return link;
        }
        if (errno != ENXIO) {
            return make_error(errno == ENOENT ? Errc::not_found : Errc::system_error,
                              "link '" + address.text + "': cannot open '" + address.out_path +
                                  "' for writing",
                              errno);
        }
        if (Clock::now() >= deadline) {
            return make_error(Errc::timed_out, "link '" + address.text + "': nobody opened '" +
                                                   address.out_path + "' for reading in time");
        }
        // No event tells a writer that a reader arrived: poll the open at a short interval.
        std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
}

/// Starts `address.command` under /bin/sh -c in a process group of its own, its stdin and
/// stdout one end of a socketpair, its stderr a pipe.
Result<Link> connect_exec(const LinkAddress& address, const std::string& label, LinkLog log) {
    auto fail = [&](const char* what) {
        return make_error(Errc::system_error, "link '" + address.text + "': " + what, errno);
    };
    int link_pair[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link_pair) != 0) {
        return fail("socketpair for the command's stdin/stdout");
    }
    UniqueFd ours{link_pair[0]};
    UniqueFd theirs{link_pair[1]};
    int err_pipe[2] = {-1, -1};
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        return fail("pipe for the command's stderr");
    }
    UniqueFd err_read{err_pipe[0]};
    UniqueFd err_write{err_pipe[1]};

    // posix_spawn (vfork-like, safe from a threaded process): dup2 clears close-on-exec on
    // 0, 1 and 2; everything else of ours stays closed in the command. The command starts
    // with default signal dispositions and an empty mask: the bridge's threads block SIGPIPE,
    // which must not leak into it.
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_adddup2(&actions, theirs.get(), 0);
    ::posix_spawn_file_actions_adddup2(&actions, theirs.get(), 1);
    ::posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGHUP);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setpgroup(&attr, 0);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                          POSIX_SPAWN_SETSIGDEF);
    std::string shell = "/bin/sh";
    std::string dash_c = "-c";
    std::string command = address.command;
    char* argv[] = {shell.data(), dash_c.data(), command.data(), nullptr};
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return fail("cannot start /bin/sh");
    }
    theirs.reset();
    err_write.reset();
    UniqueFd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
    Link link;
    link.peer = "command pid " + std::to_string(pid);
    link.in = std::move(ours);
    link.child = std::make_unique<ExecChild>(pid, std::move(pidfd), std::move(err_read), label,
                                             std::move(log));
    return link;
}

} // namespace

ExecChild::ExecChild(pid_t pid, UniqueFd pidfd, UniqueFd stderr_fd, std::string label, LinkLog log)
    : pid_{pid}, pidfd_{std::move(pidfd)}, stderr_fd_{std::move(stderr_fd)},
      stop_log_{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)}, label_{std::move(label)}, log_{std::move(
                                                                                         log)} {
    log_thread_ = std::thread{[this] { log_stderr(); }};
}

ExecChild::~ExecChild() {
    (void)finish();
}

void ExecChild::terminate() noexcept {
    // acquire: pairs with finish()'s release; after it, the command may be reaped and its pid
    // (the group's id) reused, so only finish() signals the group.
    if (!finishing_.load(std::memory_order_acquire)) {
        (void)::kill(-pid_, SIGTERM);
    }
}

void ExecChild::log_stderr() {
    std::string pending;
    auto emit = [&](bool all) {
        for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
            if (log_) {
                log_(label_ + ": command: " + pending.substr(0, nl));
            }
            pending.erase(0, nl + 1);
        }
        if (all && !pending.empty() && log_) {
            log_(label_ + ": command: " + pending);
            pending.clear();
        }
    };
    char buf[4096];
    bool stopping = false;
    for (;;) {
        pollfd fds[2] = {{stderr_fd_.get(), POLLIN, 0}, {stop_log_.get(), POLLIN, 0}};
        // Once asked to stop, take only what is already there (a grandchild may hold the
        // pipe open for ever).
        const int n = ::poll(fds, stopping ? 1 : 2, stopping ? 0 : -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (!stopping && (fds[1].revents & POLLIN) != 0) {
            stopping = true;
            continue;
        }
        const ssize_t got = ::read(stderr_fd_.get(), buf, sizeof buf);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        pending.append(buf, static_cast<std::size_t>(got));
        if (pending.size() > 4096) {
            pending += '\n'; // a line that long is logged in pieces, never held without bound
        }
        emit(false);
    }
    emit(true);
}

std::string ExecChild::finish(std::chrono::milliseconds grace) {
    if (ended_) {
        return *ended_;
    }
    finishing_.store(true, std::memory_order_release); // pairs with terminate()'s acquire
    // The whole group: ssh, or sh and what it started. A command that already exited is a
    // zombie until reaped below, so its pid (and group id) cannot have been reused.
    (void)::kill(-pid_, SIGTERM);
    bool gone = false;
    if (pidfd_) {
        pollfd p{pidfd_.get(), POLLIN, 0};
        gone = ::poll(&p, 1, static_cast<int>(grace.count())) > 0;
    }
    if (!gone) {
        (void)::kill(-pid_, SIGKILL);
    }
    int status = 0;
    pid_t r = -1;
    do {
        r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    const std::uint64_t one = 1;
    (void)!::write(stop_log_.get(), &one, sizeof one);
    if (log_thread_.joinable()) {
        log_thread_.join();
    }
    if (r != pid_) {
        ended_ = "the command (pid " + std::to_string(pid_) + ") could not be reaped";
    } else if (WIFEXITED(status)) {
        ended_ = "the command exited with status " + std::to_string(WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        ended_ = "the command was killed by signal " + std::to_string(WTERMSIG(status));
    } else {
        ended_ = "the command ended";
    }
    return *ended_;
}

Result<LinkAddress> parse_link(std::string_view text) {
    LinkAddress a;
    a.text = std::string{text};
    if (text.starts_with("tcp://")) {
        a.kind = LinkAddress::Kind::tcp;
        std::string_view rest = text.substr(6);
        std::string_view port;
        if (rest.starts_with("[")) {
            const auto close = rest.find(']');
            if (close == std::string_view::npos) {
                return bad(text, "an IPv6 address needs its closing ']'");
            }
            a.host = std::string{rest.substr(1, close - 1)};
            rest = rest.substr(close + 1);
            if (!rest.starts_with(":")) {
                return bad(text, "missing ':PORT' after the address");
            }
            port = rest.substr(1);
        } else {
            const auto colon = rest.rfind(':');
            if (colon == std::string_view::npos) {
                return bad(text, "missing ':PORT'");
            }
            if (rest.substr(0, colon).find(':') != std::string_view::npos) {
                return bad(text, "an IPv6 address goes in brackets: tcp://[::1]:7411");
            }
            a.host = std::string{rest.substr(0, colon)};
            port = rest.substr(colon + 1);
        }
        if (a.host.empty()) {
            return bad(text, "missing host (0.0.0.0 or [::] to listen on every address)");
        }
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (port.empty() || ec != std::errc{} || end != port.data() + port.size() ||
            value > 65535) {
            return bad(text, "port '" + std::string{port} + "' is not a number from 0 to 65535");
        }
        a.port = static_cast<std::uint16_t>(value);
        return a;
    }
    if (text.starts_with("fifo:")) {
        a.kind = LinkAddress::Kind::fifo;
        const std::string_view rest = text.substr(5);
        const auto comma = rest.find(',');
        if (comma == std::string_view::npos || comma == 0 || comma + 1 == rest.size()) {
            return bad(text, "needs two paths separated by a comma: fifo:IN,OUT");
        }
        a.in_path = std::string{rest.substr(0, comma)};
        a.out_path = std::string{rest.substr(comma + 1)};
        if (a.in_path.front() != '/' || a.out_path.front() != '/') {
            return bad(text, "FIFO paths must be absolute");
        }
        if (a.in_path == a.out_path) {
            return bad(text, "reads and writes the same FIFO; give two");
        }
        return a;
    }
    if (text.starts_with("exec:")) {
        a.kind = LinkAddress::Kind::exec;
        const std::string_view command = text.substr(5);
        const auto first = command.find_first_not_of(" \t");
        if (first == std::string_view::npos) {
            return bad(text, "exec: needs a command (exec:ssh HOST shmbusctl bridge-stdio)");
        }
        for (const char c : command) {
            if (c == '\0' || c == '\n' || c == '\r') {
                return bad(text, "the command may not contain a NUL or a line break");
            }
        }
        a.command = std::string{command.substr(first)};
        return a;
    }
    return bad(text, "unknown kind; expected tcp://HOST:PORT, fifo:IN,OUT or exec:COMMAND");
}

std::optional<std::string> receive_buffer_shortfall(const LinkAddress& address) {
    // The default is about a fragment, whatever the kernel trims off it; a size written in
    // the configuration is meant as written.
    if (address.kind != LinkAddress::Kind::tcp || address.receive_buffer <= 0 ||
        address.receive_buffer == kLinkReceiveBuffer) {
        return std::nullopt;
    }
    std::ifstream in{"/proc/sys/net/core/rmem_max"};
    long long most = 0;
    if (!(in >> most) || most <= 0 || address.receive_buffer <= most) {
        return std::nullopt;
    }
    return "receive_buffer " + std::to_string(address.receive_buffer) +
           " bytes exceeds net.core.rmem_max (" + std::to_string(most) + "): the kernel keeps " +
           std::to_string(most) +
           "; raise net.core.rmem_max, or write 'receive_buffer: auto' for the kernel's "
           "autotuning";
}

Result<Link> connect_link(const LinkAddress& address, Deadline deadline, const std::string& label,
                          LinkLog log) {
    switch (address.kind) {
    case LinkAddress::Kind::tcp:
        return connect_tcp(address, deadline);
    case LinkAddress::Kind::fifo:
        return connect_fifo(address, deadline);
    case LinkAddress::Kind::exec:
        return connect_exec(address, label, std::move(log));
    }
    return bad(address.text, "unknown kind");
}

Result<TcpListener> TcpListener::listen(const LinkAddress& address) {
    if (address.kind != LinkAddress::Kind::tcp) {
        return make_error(Errc::invalid_argument,
                          "link '" + address.text + "': only tcp links listen on a socket");
    }
    return first_address<TcpListener>(
        address, true, [&](UniqueFd fd, const addrinfo& ai) -> Result<TcpListener> {
            const int one = 1;
            (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            bound_receive(fd.get(), address);
            if (::bind(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0 || ::listen(fd.get(), 8) != 0) {
                return make_error(Errc::system_error,
                                  "link '" + address.text + "': cannot listen on " +
                                      address_text(ai.ai_addr),
                                  errno);
            }
            sockaddr_storage bound{};
            socklen_t len = sizeof bound;
            (void)::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
            const std::uint16_t port =
                bound.ss_family == AF_INET
                    ? ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port)
                    : ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port);
            return TcpListener{std::move(fd), port};
        });
}

Result<Link> TcpListener::accept(Deadline deadline) {
    for (;;) {
        pollfd p{fd_.get(), POLLIN, 0};
        const int rc = ::poll(&p, 1, ms_until(deadline));
        if (rc == 0) {
            return make_error(Errc::timed_out, "no peer connected in time");
        }
        if (rc < 0 && errno != EINTR) {
            return make_error(Errc::system_error, "poll on the listening socket failed", errno);
        }
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        UniqueFd fd{::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len,
                              SOCK_CLOEXEC | SOCK_NONBLOCK)};
        if (!fd) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            return make_error(Errc::system_error, "accept on the listening socket failed", errno);
        }
        tune_socket(fd.get());
        Link link;
        link.peer = address_text(reinterpret_cast<const sockaddr*>(&peer));
        link.in = std::move(fd);
        return link;
    }
}

} // namespace shmbus::gateway
