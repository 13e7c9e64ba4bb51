// The Python row: see python_transport.hpp.
#include "python_transport.hpp"

#include "shmbusd_process.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <poll.h>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {
namespace {

// A Python process that says nothing for this long (imports, connect, the stream) is stuck.
constexpr int kReplyTimeoutS = 120;

bool executable(const std::string& path) {
    return !path.empty() && ::access(path.c_str(), X_OK) == 0;
}

/// A child process running python3 with pipes to its stdin and from its stdout. It dies
/// with the process that started it (PR_SET_PDEATHSIG), and is killed if still running when
/// this object goes.
class PythonProcess {
public:
    PythonProcess() = default;
    PythonProcess(const PythonProcess&) = delete;
    PythonProcess& operator=(const PythonProcess&) = delete;
    ~PythonProcess() {
        close_pipes();
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
    }

    /// Starts `args` (args[0]: the interpreter) with PYTHONPATH set to `pythonpath` (if not
    /// empty). Returns an error sentence, or empty.
    std::string start(const std::vector<std::string>& args, const std::string& pythonpath) {
        int in[2];
        int out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
            return std::string{"pipe: "} + std::strerror(errno);
        }
        std::vector<char*> argv;
        for (const std::string& a : args) {
            argv.push_back(const_cast<char*>(a.c_str()));
        }
        argv.push_back(nullptr);
        const pid_t pid = ::fork();
        if (pid < 0) {
            return std::string{"fork: "} + std::strerror(errno);
        }
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            ::dup2(in[0], STDIN_FILENO);
            ::dup2(out[1], STDOUT_FILENO);
            if (!pythonpath.empty()) {
                ::setenv("PYTHONPATH", pythonpath.c_str(), 1);
            }
            ::execv(argv[0], argv.data());
            std::_Exit(127);
        }
        pid_ = pid;
        ::close(in[0]);
        ::close(out[1]);
        to_ = in[1];
        from_ = out[0];
        return {};
    }

    /// The next line the process prints, without its newline, waiting at most `timeout_s`
    /// for it; empty at the end of its output or at the deadline.
    std::string read_line(int timeout_s) {
        const std::int64_t deadline = now_ns() + std::int64_t{timeout_s} * 1'000'000'000;
        for (;;) {
            if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
                std::string line = pending_.substr(0, nl);
                pending_.erase(0, nl + 1);
                return line;
            }
            const std::int64_t left_ms = (deadline - now_ns()) / 1'000'000;
            if (from_ < 0 || left_ms <= 0) {
                return {};
            }
            pollfd p{from_, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left_ms));
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready <= 0) {
                return {};
            }
            std::array<char, 512> buf{};
            const ssize_t n = ::read(from_, buf.data(), buf.size());
            if (n <= 0) {
                return {};
            }
            pending_.append(buf.data(), static_cast<std::size_t>(n));
        }
    }

    bool write_line(const std::string& line) {
        const std::string text = line + "\n";
        return ::write(to_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    }

    /// Waits for the exit; empty if it exited with status 0, else what happened.
    std::string wait() {
        close_pipes();
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            return {};
        }
        return WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                 : "killed by signal " + std::to_string(WTERMSIG(status));
    }

private:
    void close_pipes() noexcept {
        if (to_ >= 0) {
            ::close(to_);
            to_ = -1;
        }
        if (from_ >= 0) {
            ::close(from_);
            from_ = -1;
        }
    }
    pid_t pid_{-1};
    int to_{-1};
    int from_{-1};
    std::string pending_; // read from the process, not yet returned as a line
};

/// One side of the stream, run by a Team child: starts the script, passes the barrier when
/// the script is ready, and turns its result line into the Report.
Report python_role(StartGate& gate, const RunSettings& settings, const Scenario& s,
                   const std::string& socket, bool publisher) {
    Report r;
    r.role = publisher ? Report::Role::sender : Report::Role::receiver;
    PythonProcess py;
    const double seconds = static_cast<double>(settings.duration.count()) / 1e9;
    r.error = py.start({settings.python, settings.python_script, "--bench-role",
                        publisher ? "publisher" : "subscriber", "--socket", socket, "--channel",
                        channel_name(0), "--size", std::to_string(s.msg_size), "--batch",
                        std::to_string(s.batch), "--duration", std::to_string(seconds)},
                       settings.python_path);
    if (!r.error.empty()) {
        gate.wait();
        return r;
    }
    const std::string ready = py.read_line(kReplyTimeoutS);
    gate.wait();
    if (ready != "ready") {
        r.error = "the Python " + std::string{publisher ? "publisher" : "subscriber"} +
                  " did not get ready (" + py.wait() + "; stderr above)";
        return r;
    }
    py.write_line("go");
    const std::string result = py.read_line(kReplyTimeoutS);
    std::istringstream in{result};
    std::uint64_t out_of_order = 0;
    if (!(in >> r.messages >> r.t_start_ns >> r.t_end_ns >> r.cpu_ns >> out_of_order)) {
        r.error = "the Python " + std::string{publisher ? "publisher" : "subscriber"} +
                  " printed no result (" + py.wait() + "; stderr above)";
        return r;
    }
    r.corrupt = out_of_order;
    if (std::string e = py.wait(); !e.empty()) {
        r.error = "the Python " + std::string{publisher ? "publisher" : "subscriber"} + " " + e;
    }
    return r;
}

} // namespace

std::string find_python(RunSettings& settings) {
    settings.python.clear();
    std::string python = "/usr/bin/python3";
    if (!executable(python)) {
        return "no /usr/bin/python3";
    }
#ifdef SHMBUS_BENCH_PYTHON_SCRIPT
    const std::string script = SHMBUS_BENCH_PYTHON_SCRIPT;
#else
    const std::string script;
#endif
    if (script.empty() || !std::filesystem::exists(script)) {
        return "no tools/bench/python_rate.py beside this build of shmbus-bench";
    }
    std::string path;
#ifdef SHMBUS_BENCH_PYTHONPATH
    path = SHMBUS_BENCH_PYTHONPATH; // the package of this build tree, if it built one
#endif
    if (const char* env = std::getenv("PYTHONPATH"); env != nullptr && *env != '\0') {
        path += (path.empty() ? "" : ":") + std::string{env};
    }
    PythonProcess probe;
    if (std::string e = probe.start({python, "-c", "import shmbus; print('ok')"}, path);
        !e.empty()) {
        return "python3: " + e;
    }
    if (probe.read_line(kReplyTimeoutS) != "ok" || !probe.wait().empty()) {
        return "python3 cannot import shmbus (build the target shmbus_python, or install "
               "python3-shmbus)";
    }
    settings.python = python;
    settings.python_script = script;
    settings.python_path = path;
    return {};
}

std::string run_python(const Scenario& s, const RunSettings& settings,
                       std::vector<Report>& reports) {
    if (s.test != Test::throughput || s.kind != Kind::queue_spsc) {
        return "the Python rows measure throughput on a single-producer single-consumer queue";
    }
    ShmbusdProcess daemon;
    if (std::string e = daemon.start(settings.shmbusd, spsc_stream_channel(s.msg_size, s.batch), 8);
        !e.empty()) {
        return e;
    }
    const std::string socket = daemon.socket_path();
    Team team{settings.pin};
    for (bool publisher : {true, false}) {
        std::string e = team.spawn([&settings, &s, socket, publisher](StartGate& gate) {
            return python_role(gate, settings, s, socket, publisher);
        });
        if (!e.empty()) {
            return e;
        }
    }
    return team.run(settings.duration + std::chrono::seconds{kReplyTimeoutS}, reports);
}

} // namespace bench
