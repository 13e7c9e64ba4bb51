// DaemonProcess: the real shmbusd, started for one test on its own temporary directory,
// socket and configuration, and stopped (or killed) at the end.
//
// Readiness is the daemon's own word, never a sleep: the test binds a datagram socket and
// passes it as NOTIFY_SOCKET, and start() returns once READY=1 arrives (every datagram is
// kept, so tests can also wait for STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1). Every wait
// has a generous deadline; a deadline that passes is a failure that says what was awaited.
//
// Ownership: a DaemonProcess owns its child process (SIGKILLed and reaped by the destructor
// if the test did not stop it), the notify socket and the temporary directory (removed with
// everything in it). Helpers to talk to the daemon over the control protocol are below.
//
// Threads: one per DatagramSink (the notify socket of every DaemonProcess, and any other
// datagram socket a test stands in for, such as the journal's), draining it as systemd does —
// a datagram socket nobody reads fills after net.unix.max_dgram_qlen (10) messages and then
// blocks the daemon's notifications or journal entries. The daemon is exec'd, so it is exactly
// the binary under test (SHMBUSD_PATH, a compile definition of the test), possibly through a
// launcher such as systemd-socket-activate.
#pragma once

#include "process.hpp"
#include "temp_dir.hpp"

#include <protocol/seqpacket.hpp>
#include <protocol/wire.hpp>
#include <shmbus/unique_fd.hpp>
#include <shmbus/version.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#ifndef SHMBUSD_PATH
#error "SHMBUSD_PATH must name the shmbusd binary under test"
#endif

namespace shmbus::test {

/// How long to wait for something that should happen soon (sanitizer builds are slow).
inline constexpr std::chrono::seconds kDaemonDeadline{60};

inline std::chrono::steady_clock::time_point deadline_in(std::chrono::milliseconds ms) {
    return std::chrono::steady_clock::now() + ms;
}
inline std::chrono::steady_clock::time_point generous_deadline() {
    return std::chrono::steady_clock::now() + kDaemonDeadline;
}

/// Polls `pred` every 5 ms until it holds or the generous deadline passes: only for state
/// with no event to wait on (a bridge's status, an endpoint's statistics).
template <typename Pred>
bool wait_until(Pred pred) {
    const auto deadline = generous_deadline();
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    return pred();
}

inline int ms_left(std::chrono::steady_clock::time_point deadline) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

/// How a process ended: exit code, or the signal that killed it.
struct Exit {
    int code{-1};
    int signal{0};
};

/// Waits for `pid` to end until `deadline` (pidfd + poll: no sleeping loop).
inline std::optional<Exit> wait_for_exit(pid_t pid,
                                         std::chrono::steady_clock::time_point deadline) {
    UniqueFd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
    if (pidfd) {
        pollfd p{pidfd.get(), POLLIN, 0};
        while (::poll(&p, 1, ms_left(deadline)) < 0 && errno == EINTR) {
        }
        if ((p.revents & POLLIN) == 0) {
            return std::nullopt;
        }
    }
    int raw = 0;
    if (::waitpid(pid, &raw, 0) != pid) {
        return std::nullopt;
    }
    Exit e;
    if (WIFEXITED(raw)) {
        e.code = WEXITSTATUS(raw);
    } else if (WIFSIGNALED(raw)) {
        e.signal = WTERMSIG(raw);
    }
    return e;
}

/// Runs shmbusd with `args` and extra environment to completion (for --check-config and
/// friends); stderr is captured into `stderr_text`.
inline Exit run_shmbusd(const std::vector<std::string>& args, std::string* stderr_text = nullptr) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    UniqueFd read_end{pipe_fds[0]};
    UniqueFd write_end{pipe_fds[1]};
    std::vector<std::string> argv{SHMBUSD_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    const ExecImage image{argv, ExecImage::environment_with({})};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(write_end.get(), STDERR_FILENO);
        image.exec();
    }
    write_end.reset();
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
    if (stderr_text != nullptr) {
        *stderr_text = text;
    }
    auto e = wait_for_exit(pid, generous_deadline());
    return e.value_or(Exit{});
}

/// Waits until `path` exists (inotify on its directory, so no polling). False at the deadline.
inline bool wait_for_path(const std::filesystem::path& path,
                          std::chrono::steady_clock::time_point deadline) {
    UniqueFd watch{::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)};
    if (!watch ||
        ::inotify_add_watch(watch.get(), path.parent_path().c_str(), IN_CREATE | IN_MOVED_TO) < 0) {
        throw std::runtime_error("inotify on " + path.parent_path().native() + " failed");
    }
    // Looked at after the watch exists, so a file created in between is not missed.
    while (!std::filesystem::exists(path)) {
        pollfd p{watch.get(), POLLIN, 0};
        const int rc = ::poll(&p, 1, ms_left(deadline));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc <= 0) {
            return std::filesystem::exists(path);
        }
        alignas(inotify_event) char events[4096];
        while (::read(watch.get(), events, sizeof events) > 0) {
        }
    }
    return true;
}

/// A datagram socket bound at a path, read by a thread of its own as a service manager (or
/// journald) would read it. Every datagram is kept, with the descriptors that came with it
/// handed to `on_arrival` (called under the sink's lock, on its thread).
class DatagramSink {
public:
    using OnArrival = std::function<void(const std::string& text, std::vector<UniqueFd>& fds)>;

    explicit DatagramSink(const std::filesystem::path& path, OnArrival on_arrival = {})
        : on_arrival_{std::move(on_arrival)} {
        sock_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        if (::bind(sock_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            throw std::runtime_error("cannot bind a datagram socket at " + path.native());
        }
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe2 failed");
        }
        stop_read_.reset(pipe_fds[0]);
        stop_write_.reset(pipe_fds[1]);
        reader_ = std::thread([this] { drain(); });
    }
    DatagramSink(const DatagramSink&) = delete;
    DatagramSink& operator=(const DatagramSink&) = delete;
    ~DatagramSink() {
        stop_write_.reset(); // wakes the reader: end of file on its stop pipe
        reader_.join();
    }

    /// Waits until a datagram containing `needle` has arrived after the last one this
    /// returned; that datagram, or nothing at the deadline.
    std::optional<std::string> wait_for(const std::string& needle,
                                        std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        for (;;) {
            for (; seen_ < received_.size(); ++seen_) {
                if (received_[seen_].find(needle) != std::string::npos) {
                    return received_[seen_++];
                }
            }
            if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout) {
                return std::nullopt;
            }
        }
    }
    /// Every datagram received so far.
    [[nodiscard]] std::vector<std::string> received() const {
        std::lock_guard lock(mutex_);
        return received_;
    }

private:
    void drain() {
        std::vector<std::byte> buf(256 * 1024); // journal entries may be large
        for (;;) {
            pollfd p[2] = {{sock_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return;
            }
            if (p[1].revents != 0) {
                return;
            }
            auto got = proto::read_datagram(sock_.get(), buf);
            if (!got) {
                continue; // woken for nothing, or an error the next poll reports again
            }
            std::vector<UniqueFd> fds = std::move(got->fds);
            const std::size_t n = std::min(got->size, buf.size());
            std::string text(reinterpret_cast<const char*>(buf.data()), n);
            std::lock_guard lock(mutex_);
            if (on_arrival_) {
                on_arrival_(text, fds);
            }
            received_.push_back(std::move(text));
            arrived_.notify_all();
        }
    }

    OnArrival on_arrival_;
    UniqueFd sock_;
    UniqueFd stop_read_;
    UniqueFd stop_write_;
    mutable std::mutex mutex_;
    std::condition_variable arrived_;
    std::vector<std::string> received_;
    std::size_t seen_{0};
    std::thread reader_;
};

/// A running shmbusd for one test.
class DaemonProcess {
public:
    /// A daemon for `config_yaml`; start() runs it.
    explicit DaemonProcess(std::string config_yaml) {
        options_.config_yaml = std::move(config_yaml);
        config_path_ = dir_.path() / "shmbusd.yaml";
        socket_path_ = dir_.path() / "shmbusd.sock";
        state_dir_ = dir_.path() / "state";
        notify_path_ = dir_.path() / "notify";
        write_file(config_path_, options_.config_yaml);
        notify_ = std::make_unique<DatagramSink>(
            notify_path_, [this](const std::string& text, std::vector<UniqueFd>& fds) {
                keep_stored_fd(text, fds);
            });
    }
    DaemonProcess(const DaemonProcess&) = delete;
    DaemonProcess& operator=(const DaemonProcess&) = delete;
    ~DaemonProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            (void)wait_for_exit(pid_, generous_deadline());
        }
        notify_.reset(); // stops its reader before the store it fills goes
    }

    /// More command-line arguments (before start()).
    DaemonProcess& with_args(std::vector<std::string> args) {
        options_.extra_args = std::move(args);
        return *this;
    }
    /// More environment, "NAME=value" (before start()).
    DaemonProcess& with_env(std::vector<std::string> env) {
        options_.extra_env = std::move(env);
        return *this;
    }
    /// Passes `fd` as a socket-activated listening socket (LISTEN_FDS=1) and no --socket.
    DaemonProcess& with_listen_fd(int fd) {
        options_.passed.clear();
        options_.passed.emplace_back(fd, "shmbusd.sock");
        options_.bind_own_socket = false;
        return *this;
    }
    /// Passes descriptors as the service manager does (LISTEN_FDS, LISTEN_FDNAMES), from 3 on.
    /// They must stay open until start() returns.
    DaemonProcess& with_passed_fds(std::vector<std::pair<int, std::string>> fds) {
        options_.passed = std::move(fds);
        return *this;
    }
    /// Uses `dir` as the state directory (to restart "the same" daemon in a new process).
    DaemonProcess& with_state_dir(std::filesystem::path dir) {
        state_dir_ = std::move(dir);
        return *this;
    }
    [[nodiscard]] const std::filesystem::path& state_dir() const { return state_dir_; }
    /// Does not pass --state-dir: the daemon picks its state directory itself.
    DaemonProcess& without_state_dir() {
        options_.pass_state_dir = false;
        return *this;
    }
    /// Does not pass --socket (give one in with_args()).
    DaemonProcess& without_own_socket() {
        options_.bind_own_socket = false;
        return *this;
    }
    /// Runs shmbusd through `launcher` (a program's absolute path and its arguments; shmbusd's
    /// own command line follows them), as `systemd-socket-activate ... shmbusd ...` does.
    DaemonProcess& with_launcher(std::vector<std::string> launcher) {
        options_.launcher = std::move(launcher);
        return *this;
    }
    /// Sends the daemon's stderr to stderr_path() instead of the test's. The file exists from
    /// here on, so that a test can name it (JOURNAL_STREAM) before start().
    DaemonProcess& with_stderr_file() {
        stderr_file_.reset(::open(stderr_path().c_str(),
                                  O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
        if (!stderr_file_) {
            throw std::runtime_error("cannot create " + stderr_path().native());
        }
        return *this;
    }
    [[nodiscard]] std::filesystem::path stderr_path() const { return dir_.path() / "stderr"; }
    /// What the daemon (and its launcher) wrote to stderr_path() so far.
    [[nodiscard]] std::string stderr_text() const {
        std::ifstream in(stderr_path());
        return std::string{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
    }
    /// Waits until stderr_path() contains `needle` (inotify on the file, so no polling).
    bool wait_for_stderr(const std::string& needle,
                         std::chrono::steady_clock::time_point deadline) const {
        UniqueFd watch{::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)};
        if (!watch || ::inotify_add_watch(watch.get(), stderr_path().c_str(), IN_MODIFY) < 0) {
            throw std::runtime_error("inotify on " + stderr_path().native() + " failed");
        }
        // Read after the watch exists, so a line written in between is not missed.
        while (stderr_text().find(needle) == std::string::npos) {
            pollfd p{watch.get(), POLLIN, 0};
            const int rc = ::poll(&p, 1, ms_left(deadline));
            if (rc < 0 && errno == EINTR) {
                continue;
            }
            if (rc <= 0) {
                return stderr_text().find(needle) != std::string::npos;
            }
            alignas(inotify_event) char events[4096];
            while (::read(watch.get(), events, sizeof events) > 0) {
            }
        }
        return true;
    }
    /// Runs `setup` in the child between fork() and exec (a namespace, a mount). It prints
    /// why it fails and _exit()s on its own; it must not touch the parent's threads' state.
    DaemonProcess& with_child_setup(std::function<void()> setup) {
        options_.child_setup = std::move(setup);
        return *this;
    }

    /// Starts the daemon and waits for READY=1. False (with the reason in `why`) if it exited
    /// or did not become ready in time.
    bool start(std::string* why = nullptr) {
        launch();
        if (!wait_for_notification("READY=1", generous_deadline())) {
            if (why != nullptr) {
                *why = "shmbusd did not send READY=1 in time (or exited)";
            }
            return false;
        }
        return true;
    }

    /// Starts the process without waiting for READY=1 (a socket-activating launcher starts
    /// shmbusd only at the first connection).
    void launch() {
        std::vector<std::string> args = options_.launcher;
        for (const std::string& a :
             {std::string{SHMBUSD_PATH}, std::string{"--config"}, config_path_.native()}) {
            args.push_back(a);
        }
        if (options_.pass_state_dir) {
            args.push_back("--state-dir");
            args.push_back(state_dir_.native());
        }
        if (options_.bind_own_socket) {
            args.push_back("--socket");
            args.push_back(socket_path_.native());
        }
        for (const auto& a : options_.extra_args) {
            args.push_back(a);
        }
        std::vector<std::string> env;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string_view v{*e};
            if (v.rfind("NOTIFY_SOCKET=", 0) != 0 && v.rfind("LISTEN_", 0) != 0 &&
                v.rfind("WATCHDOG_", 0) != 0 && v.rfind("JOURNAL_STREAM=", 0) != 0) {
                env.emplace_back(v);
            }
        }
        env.push_back("NOTIFY_SOCKET=" + notify_path_.native());
        for (const auto& e : options_.extra_env) {
            env.push_back(e);
        }
        // Descriptors passed as by systemd: 3, 4, ... in order, named. Everything the child
        // needs is laid out here, before fork() (ExecImage); LISTEN_PID, the child's own pid,
        // is written into room kept for it.
        std::vector<int> high(options_.passed.size(), -1);
        constexpr std::string_view kListenPid = "LISTEN_PID=";
        if (!options_.passed.empty()) {
            std::string names;
            for (std::size_t k = 0; k < options_.passed.size(); ++k) {
                names += (k == 0 ? "" : ":") + options_.passed[k].second;
            }
            env.push_back("LISTEN_FDS=" + std::to_string(options_.passed.size()));
            env.push_back("LISTEN_FDNAMES=" + names);
            env.push_back(std::string{kListenPid} + std::string(20, '\0'));
        }
        const ExecImage image{args, env};
        char* const listen_pid =
            options_.passed.empty() ? nullptr : image.last_env() + kListenPid.size();
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) {
            throw std::runtime_error("fork failed");
        }
        if (pid == 0) {
            die_with_parent(parent);
            if (stderr_file_) {
                ::dup2(stderr_file_.get(), STDERR_FILENO);
            }
            if (options_.child_setup) {
                options_.child_setup();
            }
            if (!options_.passed.empty()) {
                // Move every descriptor above the target range first, then into 3, 4, ...
                for (std::size_t k = 0; k < high.size(); ++k) {
                    high[k] = ::fcntl(options_.passed[k].first, F_DUPFD, 100);
                }
                for (std::size_t k = 0; k < high.size(); ++k) {
                    ::dup2(high[k], static_cast<int>(3 + k));
                }
                write_decimal(listen_pid, static_cast<unsigned long>(::getpid()));
            }
            image.exec();
        }
        pid_ = pid;
    }

    /// Waits until a notification containing `needle` has arrived after the last one this
    /// returned true for.
    bool wait_for_notification(const std::string& needle,
                               std::chrono::steady_clock::time_point deadline) {
        return notify_->wait_for(needle, deadline).has_value();
    }
    /// The descriptor store the daemon filled (FDSTORE=1), as name → descriptor (duplicates).
    [[nodiscard]] std::vector<std::pair<std::string, UniqueFd>> stored_fds() const {
        std::lock_guard lock(store_mutex_);
        std::vector<std::pair<std::string, UniqueFd>> out;
        for (const auto& [name, fd] : store_) {
            out.emplace_back(name, UniqueFd{::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3)});
        }
        return out;
    }
    /// Notifications received so far.
    [[nodiscard]] std::vector<std::string> notifications() const { return notify_->received(); }

    /// SIGTERM, then waits for the exit. Nothing if it did not exit in time.
    std::optional<Exit> stop() { return signal_and_wait(SIGTERM); }
    std::optional<Exit> kill_hard() { return signal_and_wait(SIGKILL); }
    std::optional<Exit> signal_and_wait(int sig) {
        if (pid_ <= 0) {
            return std::nullopt;
        }
        ::kill(pid_, sig);
        auto e = wait_for_exit(pid_, generous_deadline());
        if (e) {
            pid_ = -1;
        }
        return e;
    }
    void send_signal(int sig) const { ::kill(pid_, sig); }

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] const std::filesystem::path& socket_path() const { return socket_path_; }
    [[nodiscard]] const std::filesystem::path& config_path() const { return config_path_; }
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
    /// The datagram socket given as NOTIFY_SOCKET.
    [[nodiscard]] const std::filesystem::path& notify_path() const { return notify_path_; }
    /// Descriptors the daemon has open (/proc/PID/fd).
    [[nodiscard]] std::size_t open_descriptors() const {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& e :
             std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) {
            ++n;
        }
        return n;
    }

private:
    // The descriptor store, as systemd keeps it: FDSTORE=1 adds, FDSTOREREMOVE=1 drops.
    void keep_stored_fd(const std::string& text, std::vector<UniqueFd>& fds) {
        const auto name_at = text.find("FDNAME=");
        if (name_at == std::string::npos) {
            return;
        }
        std::string name = text.substr(name_at + 7);
        name = name.substr(0, name.find('\n'));
        std::lock_guard lock(store_mutex_);
        if (text.find("FDSTOREREMOVE=1") != std::string::npos) {
            store_.erase(name);
        } else if (text.find("FDSTORE=1") != std::string::npos && !fds.empty()) {
            store_[name] = std::move(fds.front());
        }
    }

    struct Options {
        std::string config_yaml;
        std::vector<std::string> extra_args;
        std::vector<std::string> extra_env;
        std::vector<std::pair<int, std::string>> passed;
        bool bind_own_socket{true};
        bool pass_state_dir{true};
        std::vector<std::string> launcher;
        std::function<void()> child_setup;
    };
    Options options_;
    TempDir dir_;
    std::filesystem::path config_path_;
    std::filesystem::path socket_path_;
    std::filesystem::path state_dir_;
    std::filesystem::path notify_path_;
    UniqueFd stderr_file_;
    mutable std::mutex store_mutex_;
    std::map<std::string, UniqueFd> store_;
    std::unique_ptr<DatagramSink> notify_;
    pid_t pid_{-1};
};

/// Connects a SOCK_SEQPACKET socket to `path`; empty on failure.
inline UniqueFd connect_control(const std::filesystem::path& path) {
    UniqueFd fd{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::fprintf(stderr, "connect_control: %s: %s\n", path.c_str(), std::strerror(errno));
        return UniqueFd{};
    }
    return fd;
}

/// Sends `body` as request `id` and waits for the reply.
inline Result<proto::Received> request(int fd, proto::Body body, std::uint32_t id = 1) {
    if (auto sent = proto::send_message(fd, proto::Message{id, std::move(body)}); !sent) {
        return sent.take_error();
    }
    return proto::receive_message(fd, generous_deadline());
}

/// Connects and says hello as `name`; empty on failure.
inline UniqueFd connect_and_greet(const std::filesystem::path& path, const std::string& name) {
    UniqueFd fd = connect_control(path);
    if (!fd) {
        return fd;
    }
    proto::Hello hello;
    hello.layout_version = kLayoutVersion;
    hello.client_name = name;
    auto r = request(fd.get(), hello);
    if (!r || !std::holds_alternative<proto::HelloReply>(r->message.body)) {
        std::fprintf(stderr, "connect_and_greet: no hello_reply: %s\n",
                     r ? std::string{proto::msg_type_name(proto::type_of(r->message.body))}.c_str()
                       : r.error().message().c_str());
        return UniqueFd{};
    }
    return fd;
}

} // namespace shmbus::test
