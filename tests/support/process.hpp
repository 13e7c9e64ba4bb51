// Processes for the integration tests: forked children, pipes to talk to them, and waits
// that always end at a deadline.
//
// Ownership: a Child owns its process. If the test leaves a Child without having waited for
// it (a failed REQUIRE, an exception), the destructor SIGKILLs and reaps it, and if the test
// process itself dies (a signal), the child dies with it (PR_SET_PDEATHSIG), so no test
// leaves a process behind. A Pipe owns both ends; each end is closed on its own as soon as
// the side that does not use it has forked.
//
// Rules for what runs in a child (after fork, without exec): the test process may have
// threads of its own when it forks (a Client's reconnect thread, a DaemonProcess's notify
// reader); glibc keeps malloc and stdio usable in the child, and the library's own locks
// have fork handlers, so the child may allocate and use the library, but a child that only
// execs a program prepares its argument vector before fork(). A child never uses Catch2
// assertions: it reports what it
// saw through a pipe, prints why it failed to stderr, and leaves with _exit() so that no
// destructor of the parent's state (endpoints it inherited, Catch2) runs twice.
//
// Synchronisation is always on the event itself: a byte or a record arriving on a pipe,
// a process exiting (pidfd). Every wait takes a deadline; a deadline that passes is a
// failure reported with what was awaited, never a silent retry.
#pragma once

#include <shmbus/unique_fd.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <poll.h>
#include <span>
#include <string>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

namespace shmbus::test {

/// How long a test waits for an event that should happen "soon" before calling it a
/// failure. Generous on purpose: sanitizer builds on a loaded 2-core machine are slow, and
/// the tests never rely on it being short.
inline constexpr std::chrono::seconds kGenerousDeadline{180};

/// A point on the steady clock after which a wait gives up.
class Deadline {
public:
    explicit Deadline(std::chrono::nanoseconds from_now = kGenerousDeadline)
        : at_{std::chrono::steady_clock::now() + from_now} {}
    [[nodiscard]] bool passed() const { return std::chrono::steady_clock::now() >= at_; }
    /// Milliseconds left, for poll(): at least 0, rounded up so we never spin on 0.
    [[nodiscard]] int poll_ms() const {
        const auto left = at_ - std::chrono::steady_clock::now();
        if (left <= std::chrono::nanoseconds::zero()) {
            return 0;
        }
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        return ms > 1'000'000 ? 1'000'000 : static_cast<int>(ms);
    }

private:
    std::chrono::steady_clock::time_point at_;
};

/// A pipe; both ends close-on-exec.
struct Pipe {
    UniqueFd read_end;
    UniqueFd write_end;

    static Pipe make() {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) {
            std::perror("pipe2");
            std::abort();
        }
        return Pipe{UniqueFd{fds[0]}, UniqueFd{fds[1]}};
    }
};

/// Writes all of `bytes`; false if the reader is gone.
inline bool write_all(int fd, std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

enum class ReadOutcome { complete, end_of_file, timed_out, failed };

inline const char* to_string(ReadOutcome o) {
    switch (o) {
    case ReadOutcome::complete:
        return "complete";
    case ReadOutcome::end_of_file:
        return "end of file (the writer exited or closed the pipe)";
    case ReadOutcome::timed_out:
        return "deadline passed";
    case ReadOutcome::failed:
        return "read error";
    }
    return "?";
}

/// Reads exactly `out.size()` bytes, waiting for them until `deadline`.
inline ReadOutcome read_exact(int fd, std::span<std::byte> out, const Deadline& deadline) {
    while (!out.empty()) {
        pollfd p{fd, POLLIN, 0};
        const int rc = ::poll(&p, 1, deadline.poll_ms());
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0) {
            return ReadOutcome::failed;
        }
        if (rc == 0) {
            if (deadline.passed()) {
                return ReadOutcome::timed_out;
            }
            continue;
        }
        const ssize_t n = ::read(fd, out.data(), out.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            return ReadOutcome::failed;
        }
        if (n == 0) {
            return ReadOutcome::end_of_file;
        }
        out = out.subspan(static_cast<std::size_t>(n));
    }
    return ReadOutcome::complete;
}

/// True if a byte (or end of file) is waiting on `fd` right now.
inline bool readable_now(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
}

/// Waits (generously) for `fd` to become readable.
inline bool becomes_readable(int fd, const Deadline& deadline = Deadline{}) {
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        const int rc = ::poll(&p, 1, deadline.poll_ms());
        if (rc == 1) {
            return (p.revents & POLLIN) != 0;
        }
        if (rc == 0 || deadline.passed()) {
            return false;
        }
    }
}

/// Sends one trivially copyable record.
template <typename T>
bool send_record(int fd, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return write_all(fd, std::as_bytes(std::span{&value, 1}));
}

/// Receives one trivially copyable record, or nothing if it did not arrive in time (the
/// reason is stored in `why` when given).
template <typename T>
std::optional<T> receive_record(int fd, const Deadline& deadline = Deadline{},
                                ReadOutcome* why = nullptr) {
    static_assert(std::is_trivially_copyable_v<T>);
    T value{};
    const ReadOutcome o = read_exact(fd, std::as_writable_bytes(std::span{&value, 1}), deadline);
    if (why != nullptr) {
        *why = o;
    }
    if (o != ReadOutcome::complete) {
        return std::nullopt;
    }
    return value;
}

/// Sends a vector of trivially copyable values, length first.
template <typename T>
bool send_vector(int fd, const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::uint64_t n = v.size();
    return send_record(fd, n) && write_all(fd, std::as_bytes(std::span{v}));
}

/// Receives what send_vector() sent.
template <typename T>
std::optional<std::vector<T>> receive_vector(int fd, const Deadline& deadline = Deadline{}) {
    auto n = receive_record<std::uint64_t>(fd, deadline);
    if (!n || *n > (std::uint64_t{1} << 32)) {
        return std::nullopt;
    }
    std::vector<T> v(static_cast<std::size_t>(*n));
    if (read_exact(fd, std::as_writable_bytes(std::span{v}), deadline) != ReadOutcome::complete) {
        return std::nullopt;
    }
    return v;
}

/// How a child ended.
struct ExitStatus {
    int raw{0};
    [[nodiscard]] bool exited_ok() const { return WIFEXITED(raw) && WEXITSTATUS(raw) == 0; }
    [[nodiscard]] bool killed_by(int sig) const { return WIFSIGNALED(raw) && WTERMSIG(raw) == sig; }
    [[nodiscard]] std::string describe() const {
        if (WIFEXITED(raw)) {
            return "exited with status " + std::to_string(WEXITSTATUS(raw));
        }
        if (WIFSIGNALED(raw)) {
            return "killed by signal " + std::to_string(WTERMSIG(raw)) + " (" +
                   strsignal(WTERMSIG(raw)) + ")";
        }
        return "ended with wait status " + std::to_string(raw);
    }
};

/// Exit code of a child whose body threw.
inline constexpr int kChildThrew = 97;

/// In a child right after fork(): dies (SIGKILL) when the test process that forked it does,
/// so that a test killed by a signal leaves no child behind holding the test runner's output
/// pipe open. `parent` is the forking process's pid, taken before fork(): if it already died,
/// the child leaves at once.
inline void die_with_parent(pid_t parent) {
    const auto leave = [](const char* why) {
        // write(2) only: this runs between fork() and exec, where stdio may not be usable.
        (void)!::write(STDERR_FILENO, why, std::strlen(why));
        ::_exit(127);
    };
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        leave("test child: prctl(PR_SET_PDEATHSIG) failed; leaving\n");
    }
    if (::getppid() != parent) {
        leave("test child: the test process that forked it is gone; leaving\n");
    }
}

/// In a child after a failed exec: says which program could not run and why (write(2) only,
/// nothing allocated), then leaves with 127, as a shell does.
[[noreturn]] inline void exec_failed(const char* program) {
    const int err = errno;
    const char* parts[] = {"test child: cannot exec ", program, ": ", std::strerror(err), "\n"};
    for (const char* part : parts) {
        (void)!::write(STDERR_FILENO, part, std::strlen(part));
    }
    ::_exit(127);
}

/// Writes `value` in decimal, then a NUL, at `out` (room for 21 bytes); async-signal-safe.
inline void write_decimal(char* out, unsigned long value) noexcept {
    char digits[21];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (int i = 0; i < n; ++i) {
        out[i] = digits[n - 1 - i];
    }
    out[n] = '\0';
}

/// A program's argv and environment, laid out before fork() so that the child allocates
/// nothing between fork() and exec: the test process may have threads (a client's reconnect
/// thread, a reader of a child's output), one of which may hold an allocator's lock at the
/// fork, and the child would wait for that lock for ever (the sanitizers' allocators are not
/// fork-safe).
class ExecImage {
public:
    ExecImage(std::vector<std::string> argv, std::vector<std::string> env)
        : argv_text_{std::move(argv)}, env_text_{std::move(env)} {
        for (auto& a : argv_text_) {
            argv_.push_back(a.data());
        }
        argv_.push_back(nullptr);
        for (auto& e : env_text_) {
            envp_.push_back(e.data());
        }
        envp_.push_back(nullptr);
    }
    ExecImage(const ExecImage&) = delete;
    ExecImage& operator=(const ExecImage&) = delete;

    /// This process's environment with `changes` applied: "NAME=value" sets NAME, "NAME"
    /// removes it.
    static std::vector<std::string> environment_with(const std::vector<std::string>& changes) {
        std::vector<std::string> env;
        for (char** e = environ; *e != nullptr; ++e) {
            env.emplace_back(*e);
        }
        for (const std::string& change : changes) {
            const auto eq = change.find('=');
            const std::string prefix = change.substr(0, eq) + "=";
            std::erase_if(env, [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
            if (eq != std::string::npos) {
                env.push_back(change);
            }
        }
        return env;
    }

    /// The last environment entry's bytes, which a child may overwrite in place (within their
    /// length) before exec().
    [[nodiscard]] char* last_env() const noexcept { return envp_[envp_.size() - 2]; }

    /// In the child: runs the program (execve()), or says why not and leaves with 127.
    [[noreturn]] void exec() const noexcept {
        ::execve(argv_[0], argv_.data(), envp_.data());
        exec_failed(argv_[0]);
    }

private:
    std::vector<std::string> argv_text_;
    std::vector<std::string> env_text_;
    std::vector<char*> argv_;
    std::vector<char*> envp_;
};

/// A forked child process running a function. Kills and reaps on destruction unless it
/// was already waited for.
class Child {
public:
    Child() = default;
    Child(Child&& o) noexcept
        : pid_{std::exchange(o.pid_, -1)}, pidfd_{std::move(o.pidfd_)}, status_{std::exchange(
                                                                            o.status_,
                                                                            std::nullopt)} {}
    Child& operator=(Child&& o) noexcept {
        if (this != &o) {
            reap_by_force();
            pid_ = std::exchange(o.pid_, -1);
            pidfd_ = std::move(o.pidfd_);
            status_ = std::exchange(o.status_, std::nullopt);
        }
        return *this;
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() { reap_by_force(); }

    /// Forks; the child runs `body` and _exit()s with its return value (kChildThrew if it
    /// threw).
    static Child spawn(std::function<int()> body) {
        std::fflush(stdout);
        std::fflush(stderr);
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) {
            std::perror("fork");
            std::abort();
        }
        if (pid == 0) {
            die_with_parent(parent);
            int rc = kChildThrew;
            try {
                rc = body();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child %d threw: %s\n", static_cast<int>(getpid()), e.what());
            } catch (...) {
                std::fprintf(stderr, "child %d threw\n", static_cast<int>(getpid()));
            }
            std::fflush(stdout);
            std::fflush(stderr);
            ::_exit(rc);
        }
        Child c;
        c.pid_ = pid;
        c.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
        return c;
    }

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool running() const { return pid_ > 0 && !status_; }

    /// Where a running child is, for a failure message: its program and, per thread, its
    /// name, state and the kernel function it waits in ("" once it has been reaped).
    [[nodiscard]] std::string where() const {
        if (!running()) {
            return "";
        }
        const std::string proc = "/proc/" + std::to_string(pid_);
        std::string text = "pid " + std::to_string(pid_);
        char exe[512];
        const ssize_t n = ::readlink((proc + "/exe").c_str(), exe, sizeof exe - 1);
        text += " running " + (n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : "?");
        std::error_code ec;
        for (const auto& task : std::filesystem::directory_iterator(proc + "/task", ec)) {
            const auto first_line = [&task](const char* file) {
                std::ifstream in(task.path() / file);
                std::string line;
                std::getline(in, line);
                return line;
            };
            const std::string stat = first_line("stat");
            const auto state_at = stat.rfind(") ");
            text += "; thread " + task.path().filename().native() + " '" + first_line("comm") +
                    "' state " +
                    (state_at == std::string::npos ? "?" : stat.substr(state_at + 2, 1)) + " in " +
                    first_line("wchan") + " (syscall " + first_line("syscall") + ")";
        }
        return text;
    }

    /// Waits for the child to end, at most until `deadline`. Nothing if it is still running.
    std::optional<ExitStatus> wait(const Deadline& deadline = Deadline{}) {
        if (status_ || pid_ <= 0) {
            return status_;
        }
        if (pidfd_) {
            for (;;) {
                pollfd p{pidfd_.get(), POLLIN, 0};
                const int rc = ::poll(&p, 1, deadline.poll_ms());
                if (rc > 0) {
                    break;
                }
                if (rc < 0 && errno != EINTR) {
                    break; // fall back to a blocking waitpid below
                }
                if (rc == 0 && deadline.passed()) {
                    return std::nullopt;
                }
            }
        }
        int raw = 0;
        pid_t r = -1;
        do {
            r = ::waitpid(pid_, &raw, 0);
        } while (r < 0 && errno == EINTR);
        status_ = ExitStatus{raw};
        return status_;
    }

    /// Sends `sig`, then reaps the child (SIGKILL cannot be ignored, so this returns).
    ExitStatus kill_and_wait(int sig = SIGKILL) {
        if (running()) {
            ::kill(pid_, sig);
        }
        auto st = wait();
        return st.value_or(ExitStatus{});
    }

private:
    void reap_by_force() {
        if (running()) {
            ::kill(pid_, SIGKILL);
            int raw = 0;
            while (::waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
            }
        }
        pid_ = -1;
        pidfd_.reset();
        status_.reset();
    }

    pid_t pid_{-1};
    UniqueFd pidfd_;
    std::optional<ExitStatus> status_;
};

/// In a child: prints why it fails and returns the exit code to return from the body.
[[nodiscard]] inline int child_failure(const std::string& why) {
    std::fprintf(stderr, "child %d: %s\n", static_cast<int>(getpid()), why.c_str());
    return 1;
}

} // namespace shmbus::test
