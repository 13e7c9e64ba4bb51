// ShmbusdProcess: see shmbusd_process.hpp.

#include "shmbusd_process.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

// Generous: a daemon creating its channels on a loaded machine, or one stopping with 200
// clients to reclaim, takes milliseconds; these only bound a daemon that hangs.
constexpr std::chrono::seconds kReadyDeadline{30};
constexpr std::chrono::seconds kStopDeadline{10};

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

bool executable(const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

std::string config_yaml(const std::filesystem::path& dir, const ChannelSet& channels,
                        std::uint32_t max_clients) {
    std::ostringstream y;
    y << "# Written by shmbus-bench for one run: its own socket, state and channels.\n"
      << "daemon:\n"
      << "  socket: " << yaml_quoted((dir / "shmbusd.sock").native()) << "\n"
      << "  state_directory: " << yaml_quoted((dir / "state").native()) << "\n"
      << "  log_level: info\n"
      << "limits:\n"
      << "  max_clients: " << max_clients << "\n"
      << "channels:\n";
    for (std::uint32_t i = 0; i < channels.count; ++i) {
        std::uint64_t slot_size = channels.slot_size;
        std::uint64_t slot_count = channels.slot_count;
        for (const ChannelSet::Ring& r : channels.rings) {
            if (r.channel == i) {
                slot_size = r.slot_size;
                slot_count = r.slot_count;
            }
        }
        y << "  - name: " << channel_name(i) << "\n"
          << "    kind: " << (channels.queue ? "queue" : "broadcast") << "\n"
          << "    slot_size: " << slot_size << "\n"
          << "    slot_count: " << slot_count << "\n"
          << (channels.queue ? "" : "    overflow: block\n") << "    max_publishers: 1\n"
          << "    max_subscribers: " << channels.max_subscribers << "\n";
    }
    return y.str();
}

int ms_until(Clock::time_point deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

/// Waits until `pidfd` says the process ended, or `deadline`. True if it ended.
bool wait_pidfd(int pidfd, Clock::time_point deadline) {
    pollfd p{pidfd, POLLIN, 0};
    for (;;) {
        const int n = ::poll(&p, 1, ms_until(deadline));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n > 0;
    }
}

int reap(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return std::string{"was killed by signal "} + strsignal(WTERMSIG(status));
    }
    return "ended";
}

std::optional<std::string> read_text(const std::string& path) {
    std::ifstream in{path};
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream o;
    o << in.rdbuf();
    return o.str();
}

/// The value of "Key:   123 kB" in /proc/PID/status, in bytes.
std::uint64_t status_kib(const std::string& text, std::string_view key) {
    const std::string needle = "\n" + std::string{key} + ":";
    const auto at = text.find(needle);
    if (at == std::string::npos) {
        return 0;
    }
    return std::strtoull(text.c_str() + at + needle.size(), nullptr, 10) * 1024;
}

/// CPU time from /proc/PID/stat (utime + stime, fields 14 and 15), in clock ticks.
std::optional<std::int64_t> stat_cpu_ns(pid_t pid) {
    const auto text = read_text("/proc/" + std::to_string(pid) + "/stat");
    if (!text) {
        return std::nullopt;
    }
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    const auto close = text->rfind(')');
    if (close == std::string::npos) {
        return std::nullopt;
    }
    std::istringstream fields{text->substr(close + 1)};
    std::string field;
    std::int64_t ticks = 0;
    for (int n = 3; n <= 15 && fields >> field; ++n) {
        if (n >= 14) {
            ticks += std::strtoll(field.c_str(), nullptr, 10);
        }
    }
    const long hz = ::sysconf(_SC_CLK_TCK);
    return ticks * (1'000'000'000 / (hz > 0 ? hz : 100));
}

/// The null-terminated array of pointers that execve() takes; valid while `strings` is.
std::vector<char*> pointers_to(std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (std::string& s : strings) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

} // namespace

std::string yaml_quoted(const std::string& s) {
    // Single-quoted: only the quote itself needs escaping, by doubling it.
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? "''" : std::string(1, c);
    }
    return out + "'";
}

std::string channel_name(std::uint32_t index) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "bench/ch%03u", index);
    return buf;
}

ChannelSet spsc_stream_channel(std::uint64_t msg_size, std::uint32_t batch) {
    ChannelSet channels;
    channels.count = 1;
    channels.slot_size = msg_size;
    channels.slot_count = std::max<std::uint64_t>(1024, 16ULL * batch);
    channels.max_subscribers = 1;
    channels.queue = true;
    return channels;
}

std::string find_shmbusd(const std::string& explicit_path, std::string& error) {
    error.clear();
    if (!explicit_path.empty()) {
        if (executable(explicit_path)) {
            return explicit_path;
        }
        error = "--shmbusd " + explicit_path + ": not an executable file";
        return {};
    }
#ifdef SHMBUS_BENCH_SHMBUSD
    if (executable(SHMBUS_BENCH_SHMBUSD)) {
        return SHMBUS_BENCH_SHMBUSD;
    }
#endif
    const char* path = std::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "";
    while (!dirs.empty()) {
        const auto colon = dirs.find(':');
        const std::string_view dir = dirs.substr(0, colon);
        dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
        if (!dir.empty()) {
            const std::filesystem::path candidate = std::filesystem::path{dir} / "shmbusd";
            if (executable(candidate)) {
                return candidate.native();
            }
        }
    }
    return {};
}

std::optional<ProcessMemory> read_memory(pid_t pid) {
    const auto text = read_text("/proc/" + std::to_string(pid) + "/status");
    if (!text) {
        return std::nullopt;
    }
    const std::string t = "\n" + *text;
    ProcessMemory m;
    m.rss = status_kib(t, "VmRSS");
    m.hwm = status_kib(t, "VmHWM");
    m.anon = status_kib(t, "RssAnon");
    m.file = status_kib(t, "RssFile");
    m.shmem = status_kib(t, "RssShmem");
    if (m.rss == 0) {
        return std::nullopt;
    }
    return m;
}

std::optional<ProcessCpu> read_cpu(pid_t pid) {
    ProcessCpu c;
    std::uint64_t wakeups = 0;
    bool complete = true;
    std::error_code ec;
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
    for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
        // schedstat: time on the CPU (ns), time waiting to run (ns), times scheduled in.
        const auto text = read_text((task.path() / "schedstat").native());
        std::istringstream in{text.value_or("")};
        std::int64_t run_ns = 0;
        std::int64_t wait_ns = 0;
        std::uint64_t slices = 0;
        if (!(in >> run_ns >> wait_ns >> slices)) {
            complete = false;
            break;
        }
        c.cpu_ns += run_ns;
        wakeups += slices;
    }
    if (!ec && complete && c.cpu_ns > 0) {
        c.wakeups = wakeups;
        return c;
    }
    const auto ticks = stat_cpu_ns(pid);
    if (!ticks) {
        return std::nullopt;
    }
    return ProcessCpu{*ticks, std::nullopt};
}

ShmbusdProcess::~ShmbusdProcess() {
    kill_all();
    if (!dir_.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
}

void ShmbusdProcess::kill_all() noexcept {
    for (pid_t* p : {&pid_, &drain_pid_}) {
        if (*p > 0) {
            ::kill(*p, SIGKILL);
            (void)reap(*p);
            *p = -1;
        }
    }
    if (pidfd_ >= 0) {
        ::close(pidfd_);
        pidfd_ = -1;
    }
}

std::string ShmbusdProcess::start_drain(int notify_fd, int ready_fd) {
    const pid_t parent = ::getpid();
    std::fflush(nullptr); // nothing buffered may be written twice
    const pid_t pid = ::fork();
    if (pid < 0) {
        return errno_text("fork");
    }
    if (pid > 0) {
        drain_pid_ = pid;
        return {};
    }
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
        ::_exit(0);
    }
    // Reads every notification until killed; says so once READY=1 has come.
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(notify_fd, buf, sizeof buf, 0);
        if (n < 0 && errno != EINTR) {
            ::_exit(1);
        }
        if (ready_fd >= 0 && n > 0 &&
            std::string_view{buf, static_cast<std::size_t>(n)}.find("READY=1") !=
                std::string_view::npos) {
            const char byte = 1;
            (void)!::write(ready_fd, &byte, 1);
            ::close(ready_fd);
            ready_fd = -1;
        }
    }
}

std::string ShmbusdProcess::log_tail() const {
    const auto text = read_text((dir_ / "shmbusd.log").native()).value_or("");
    std::vector<std::string> lines;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) {
            lines.push_back(line);
        }
    }
    if (lines.empty()) {
        return "(it logged nothing)";
    }
    std::string tail;
    for (std::size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) {
        tail += (tail.empty() ? "" : " / ") + lines[i];
    }
    return "its log says: " + tail;
}

std::string ShmbusdProcess::start(const std::string& binary, const ChannelSet& channels,
                                  std::uint32_t max_clients, const ConfigExtra& extra) {
    if (binary.empty()) {
        return "no shmbusd binary";
    }
    std::string tmpl = (std::filesystem::temp_directory_path() / "shmbus-bench-XXXXXX").native();
    if (::mkdtemp(tmpl.data()) == nullptr) {
        return errno_text("mkdtemp " + tmpl);
    }
    dir_ = tmpl;
    if (::mkdir((dir_ / "state").c_str(), 0700) != 0) {
        return errno_text("mkdir");
    }
    const std::filesystem::path notify_path = dir_ / "notify";
    sockaddr_un addr{};
    if (socket_path().size() >= sizeof addr.sun_path) {
        return "the temporary directory " + dir_.native() + " is too long for a socket path";
    }
    std::string more;
    if (extra) {
        std::string error;
        more = extra(dir_, error);
        if (!error.empty()) {
            return error;
        }
    }
    {
        std::ofstream out{dir_ / "shmbusd.yaml"};
        out << config_yaml(dir_, channels, max_clients) << more;
        if (!out) {
            return "cannot write " + (dir_ / "shmbusd.yaml").native();
        }
    }

    // The notify socket and its drain, before the daemon can send anything.
    const int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify < 0) {
        return errno_text("socket");
    }
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, notify_path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(notify, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::string e = errno_text("bind " + notify_path.native());
        ::close(notify);
        return e;
    }
    int ready[2] = {-1, -1};
    if (::pipe2(ready, O_CLOEXEC) != 0) {
        ::close(notify);
        return errno_text("pipe2");
    }
    std::string error = start_drain(notify, ready[1]);
    ::close(notify);
    ::close(ready[1]);
    if (!error.empty()) {
        ::close(ready[0]);
        return error;
    }

    // The daemon, with this process's environment minus what a service manager would set.
    std::vector<std::string> args{binary, "--config", (dir_ / "shmbusd.yaml").native()};
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v{*e};
        if (!v.starts_with("NOTIFY_SOCKET=") && !v.starts_with("LISTEN_") &&
            !v.starts_with("WATCHDOG_") && !v.starts_with("JOURNAL_STREAM=")) {
            env.emplace_back(v);
        }
    }
    env.push_back("NOTIFY_SOCKET=" + notify_path.native());
    std::vector<char*> argv = pointers_to(args);
    std::vector<char*> envp = pointers_to(env);
    const std::string log_path = (dir_ / "shmbusd.log").native();
    const pid_t parent = ::getpid();
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(ready[0]);
        return errno_text("fork");
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL); // kept across execve: it dies with the benchmark
        if (::getppid() != parent) {
            ::_exit(127);
        }
        const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int null = ::open("/dev/null", O_RDONLY);
        if (log < 0 || null < 0 || ::dup2(null, STDIN_FILENO) < 0 ||
            ::dup2(log, STDOUT_FILENO) < 0 || ::dup2(log, STDERR_FILENO) < 0) {
            ::_exit(127);
        }
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    pid_ = pid;
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd_ < 0) {
        ::close(ready[0]);
        return errno_text("pidfd_open");
    }

    // READY=1, or the daemon's exit, whichever comes first.
    const auto deadline = Clock::now() + kReadyDeadline;
    pollfd p[2] = {{ready[0], POLLIN, 0}, {pidfd_, POLLIN, 0}};
    int n = 0;
    do {
        n = ::poll(p, 2, ms_until(deadline));
    } while (n < 0 && errno == EINTR);
    char byte = 0;
    const bool is_ready = n > 0 && (p[0].revents & POLLIN) != 0 && ::read(ready[0], &byte, 1) == 1;
    ::close(ready[0]);
    if (is_ready) {
        return {};
    }
    if (n > 0 && (p[1].revents & POLLIN) != 0) {
        const int status = reap(pid_);
        pid_ = -1;
        return "shmbusd " + describe_status(status) + " before it was ready; " + log_tail();
    }
    return "shmbusd did not send READY=1 within " + std::to_string(kReadyDeadline.count()) +
           " s; " + log_tail();
}

std::string ShmbusdProcess::stop() {
    if (pid_ <= 0) {
        return "shmbusd is not running";
    }
    ::kill(pid_, SIGTERM);
    std::string error;
    if (!wait_pidfd(pidfd_, Clock::now() + kStopDeadline)) {
        ::kill(pid_, SIGKILL);
        error = "shmbusd did not exit within " + std::to_string(kStopDeadline.count()) +
                " s of SIGTERM; " + log_tail();
    }
    const int status = reap(pid_);
    pid_ = -1;
    if (error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        error = "shmbusd " + describe_status(status) + " on SIGTERM; " + log_tail();
    }
    kill_all(); // the notification drain
    return error;
}

} // namespace bench
