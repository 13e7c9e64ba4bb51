// Team: see team.hpp. Reports travel as a fixed header, the error text and the samples,
// written in one stream to a pipe the parent drains with poll() while the children run
// (a pipe holds only 64 KiB; a pinger's samples are megabytes).

#include "team.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {
namespace {

struct WireHeader {
    std::uint8_t role;
    std::uint8_t pad[7];
    std::int64_t t_start_ns;
    std::int64_t t_end_ns;
    std::int64_t cpu_ns;
    std::uint64_t messages;
    std::uint64_t corrupt;
    std::uint64_t error_bytes;
    std::uint64_t sample_count;
};

bool write_all(int fd, const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

void send_report(int fd, const Report& r) noexcept {
    WireHeader h{};
    h.role = static_cast<std::uint8_t>(r.role);
    h.t_start_ns = r.t_start_ns;
    h.t_end_ns = r.t_end_ns;
    h.cpu_ns = r.cpu_ns;
    h.messages = r.messages;
    h.corrupt = r.corrupt;
    h.error_bytes = r.error.size();
    h.sample_count = r.samples.size();
    (void)(write_all(fd, &h, sizeof h) && write_all(fd, r.error.data(), r.error.size()) &&
           write_all(fd, r.samples.data(), r.samples.size() * sizeof(std::uint32_t)));
}

bool parse_report(const std::vector<char>& bytes, Report& r) {
    WireHeader h{};
    if (bytes.size() < sizeof h) {
        return false;
    }
    std::memcpy(&h, bytes.data(), sizeof h);
    const std::size_t need = sizeof h + h.error_bytes + h.sample_count * sizeof(std::uint32_t);
    if (h.role > static_cast<std::uint8_t>(Report::Role::clock_reader) || bytes.size() != need) {
        return false;
    }
    r.role = static_cast<Report::Role>(h.role);
    r.t_start_ns = h.t_start_ns;
    r.t_end_ns = h.t_end_ns;
    r.cpu_ns = h.cpu_ns;
    r.messages = h.messages;
    r.corrupt = h.corrupt;
    r.error.assign(bytes.data() + sizeof h, h.error_bytes);
    r.samples.resize(h.sample_count);
    std::memcpy(r.samples.data(), bytes.data() + sizeof h + h.error_bytes,
                h.sample_count * sizeof(std::uint32_t));
    return true;
}

void close_fd(int& fd) noexcept {
    if (fd >= 0) {
        ::close(fd);
        fd = -1;
    }
}

std::string errno_text(const char* what) {
    return std::string{what} + ": " + std::strerror(errno);
}

} // namespace

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::int64_t cpu_time_ns() noexcept {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const auto tv_ns = [](const timeval& tv) {
        return std::int64_t{tv.tv_sec} * 1'000'000'000 + std::int64_t{tv.tv_usec} * 1000;
    };
    return tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime);
}

std::vector<int> usable_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE; ++i) {
            if (CPU_ISSET(i, &set)) {
                cpus.push_back(i);
            }
        }
    }
    if (cpus.empty()) {
        cpus.push_back(0);
    }
    return cpus;
}

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
    // std::atomic<uint32_t> is lock-free and laid out as the integer (asserted in team.hpp).
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, nullptr,
              nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr,
              nullptr, 0);
}

void StartGate::wait() noexcept {
    if (passed_) {
        return;
    }
    passed_ = true;
    const char byte = 1;
    (void)write_all(ready_fd_, &byte, 1);
    char sink = 0;
    // The parent never writes: it closes its end, and read() returns 0 in every child.
    while (::read(go_fd_, &sink, 1) < 0 && errno == EINTR) {
    }
}

SharedBoard::SharedBoard() {
    void* p =
        ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        board_ = new (p) Board{};
    }
}

SharedBoard::~SharedBoard() {
    if (board_ != nullptr) {
        board_->~Board();
        ::munmap(board_, sizeof(Board));
    }
}

Team::Team(bool pin) : pin_{pin}, cpus_{usable_cpus()} {
    int ready[2] = {-1, -1};
    int go[2] = {-1, -1};
    if (::pipe2(ready, O_CLOEXEC) == 0 && ::pipe2(go, O_CLOEXEC) == 0) {
        ready_r_ = ready[0];
        ready_w_ = ready[1];
        go_r_ = go[0];
        go_w_ = go[1];
    } else {
        close_fd(ready[0]);
        close_fd(ready[1]);
    }
}

Team::~Team() {
    kill_all();
    for (Child& c : children_) {
        close_fd(c.result_fd);
    }
    close_fd(ready_r_);
    close_fd(ready_w_);
    close_fd(go_r_);
    close_fd(go_w_);
}

void Team::kill_all() noexcept {
    for (Child& c : children_) {
        if (c.pid > 0) {
            ::kill(c.pid, SIGKILL);
            int status = 0;
            while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
            }
            c.pid = -1;
        }
    }
}

std::string Team::spawn(const RoleBody& body) {
    if (ready_r_ < 0 || go_w_ < 0) {
        return "cannot create the start barrier pipes";
    }
    int result[2] = {-1, -1};
    if (::pipe2(result, O_CLOEXEC) != 0) {
        return errno_text("pipe2");
    }
    const int cpu = cpus_[children_.size() % cpus_.size()];
    std::fflush(nullptr); // nothing buffered may be written twice
    const pid_t pid = ::fork();
    if (pid < 0) {
        close_fd(result[0]);
        close_fd(result[1]);
        return errno_text("fork");
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        // Only the parent may hold the writing end of the gate, or it would never open.
        ::close(go_w_);
        ::close(ready_r_);
        ::close(result[0]);
        for (const Child& c : children_) {
            ::close(c.result_fd);
        }
        Report report;
        if (pin_) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            if (::sched_setaffinity(0, sizeof set, &set) != 0) {
                report.error = errno_text("sched_setaffinity");
            }
        }
        StartGate gate{ready_w_, go_r_};
        if (report.error.empty()) {
            try {
                report = body(gate);
            } catch (const std::exception& e) {
                report.error = std::string{"exception in child: "} + e.what();
            }
        }
        gate.wait(); // a child that failed in set-up still lets the parent count it
        send_report(result[1], report);
        ::_exit(0);
    }
    close_fd(result[1]);
    children_.push_back(Child{pid, result[0]});
    return {};
}

std::string Team::run(std::chrono::nanoseconds limit, std::vector<Report>& reports,
                      const std::function<void()>& on_open) {
    const std::int64_t deadline = now_ns() + limit.count();
    const auto remaining_ms = [&] {
        return static_cast<int>(std::max<std::int64_t>(0, (deadline - now_ns()) / 1'000'000));
    };

    // Everyone at the gate?
    std::size_t arrived = 0;
    while (arrived < children_.size()) {
        pollfd p{ready_r_, POLLIN, 0};
        const int n = ::poll(&p, 1, remaining_ms());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            kill_all();
            return "a child did not finish its set-up in time";
        }
        char buf[64];
        const ssize_t got = ::read(ready_r_, buf, sizeof buf);
        if (got > 0) {
            arrived += static_cast<std::size_t>(got);
        }
    }
    close_fd(go_w_); // opens the gate
    if (on_open) {
        on_open();
    }

    // Drain every result pipe to its end.
    std::vector<std::vector<char>> bytes(children_.size());
    std::size_t open = children_.size();
    std::vector<bool> done(children_.size(), false);
    while (open > 0) {
        std::vector<pollfd> fds;
        std::vector<std::size_t> which;
        for (std::size_t i = 0; i < children_.size(); ++i) {
            if (!done[i]) {
                fds.push_back(pollfd{children_[i].result_fd, POLLIN, 0});
                which.push_back(i);
            }
        }
        const int n = ::poll(fds.data(), fds.size(), remaining_ms());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            kill_all();
            return "timed out after " + std::to_string(limit.count() / 1'000'000) +
                   " ms waiting for the children (a transport hung?)";
        }
        for (std::size_t k = 0; k < fds.size(); ++k) {
            if (fds[k].revents == 0) {
                continue;
            }
            const std::size_t i = which[k];
            char buf[65536];
            const ssize_t got = ::read(children_[i].result_fd, buf, sizeof buf);
            if (got > 0) {
                bytes[i].insert(bytes[i].end(), buf, buf + got);
            } else if (got == 0 || errno != EINTR) {
                done[i] = true;
                --open;
            }
        }
    }

    std::string error;
    for (Child& c : children_) {
        int status = 0;
        while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
        }
        c.pid = -1;
        if (WIFSIGNALED(status) && error.empty()) {
            error = std::string{"a child was killed by signal "} + strsignal(WTERMSIG(status));
        }
    }
    reports.clear();
    for (std::size_t i = 0; i < children_.size(); ++i) {
        Report r;
        if (!parse_report(bytes[i], r)) {
            if (error.empty()) {
                error = "a child exited without a complete report";
            }
            continue;
        }
        if (!r.error.empty() && error.empty()) {
            error = r.error;
        }
        reports.push_back(std::move(r));
    }
    return error;
}

} // namespace bench
