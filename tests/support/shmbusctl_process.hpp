// shmbusctl as a subprocess, for the tests of tests/integration/test_shmbusctl*.cpp.
//
// The program is the built binary (SHMBUSCTL_PATH, a compile definition of the test), run
// exactly as an operator runs it, with its stdout and stderr captured by a thread of the test
// (so that a long `tail` never blocks on a full pipe) and a deadline on its exit. Run as
// another uid, it is a staged copy that uid can reach (other_user.hpp; SHMBUS_LIBRARY_* name
// the library the copy takes along); a staged copy may run as the test's own uid too, with
// its environment changed. `check-config` runs the shmbusd under test (SHMBUSD_PATH, as
// $SHMBUSD), never one installed on the machine, unless a test says otherwise.
//
// wait_for_tails() polls `info --json` until tails have subscribed, for tests that publish to
// them.
//
// Ownership: a Ctl owns its process (SIGKILLed and reaped by the destructor if the test did
// not finish() it) and its reader thread.
#pragma once

#include "daemon_process.hpp"
#include "other_user.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef SHMBUSCTL_PATH
#error "SHMBUSCTL_PATH must name the shmbusctl binary under test"
#endif

namespace shmbus::test {

/// What a finished shmbusctl printed and how it ended.
struct Outcome {
    int code{-1};
    std::string out;
    std::string err;
    [[nodiscard]] std::vector<std::string> lines() const {
        std::vector<std::string> v;
        std::istringstream in(out);
        for (std::string l; std::getline(in, l);) {
            v.push_back(l);
        }
        return v;
    }
    [[nodiscard]] nlohmann::json document() const { return nlohmann::json::parse(out); }
};

/// shmbusctl run as another uid: `program` is a copy that uid can reach (other_user.hpp).
struct OtherUid {
    uid_t uid;
    const StagedProgram& program;
};

/// A copy of shmbusctl for another uid, with the shared library of ours it loads.
inline StagedProgram staged_shmbusctl() {
    return StagedProgram{SHMBUSCTL_PATH, {{SHMBUS_LIBRARY_FILE, SHMBUS_LIBRARY_SONAME}}};
}

/// shmbusctl run as a staged copy by the test's own uid, its environment changed by
/// `environment`: "NAME=VALUE" sets NAME, a bare "NAME" unsets it.
struct Staged {
    const StagedProgram& program;
    std::vector<std::string> environment;
};

/// A shmbusctl process: started at construction, its output drained by a thread (so that a
/// long `tail` never blocks on a full pipe), collected by finish().
class Ctl {
public:
    explicit Ctl(std::vector<std::string> args, std::string input = {},
                 std::optional<OtherUid> as = std::nullopt, const std::string& socket_env = {},
                 const std::optional<Staged>& staged = std::nullopt) {
        int out[2];
        int err[2];
        int in[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
            ::pipe2(in, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe2 failed");
        }
        // Laid out before fork(): the child only moves descriptors, drops its uid and execs
        // (ExecImage).
        std::string program = SHMBUSCTL_PATH;
        std::vector<std::string> changes;
        if (as) {
            program = as->program.program().native();
            for (const std::string& e : as->program.environment()) {
                changes.push_back(e);
            }
        }
        changes.emplace_back("SHMBUS_SOCKET");
        if (!socket_env.empty()) {
            changes.push_back("SHMBUS_SOCKET=" + socket_env);
        }
        changes.push_back(std::string{"SHMBUSD="} + SHMBUSD_PATH);
        if (staged) {
            program = staged->program.program().native();
            for (const std::string& e : staged->environment) {
                changes.push_back(e);
            }
        }
        std::vector<std::string> argv{program};
        argv.insert(argv.end(), args.begin(), args.end());
        const ExecImage image{argv, ExecImage::environment_with(changes)};
        pid_ = ::fork();
        if (pid_ < 0) {
            throw std::runtime_error("fork failed");
        }
        if (pid_ == 0) {
            ::dup2(in[0], STDIN_FILENO);
            ::dup2(out[1], STDOUT_FILENO);
            ::dup2(err[1], STDERR_FILENO);
            if (as && !drop_to_uid(as->uid)) {
                _exit(126);
            }
            image.exec();
        }
        ::close(out[1]);
        ::close(err[1]);
        ::close(in[0]);
        // Small inputs only: the pipe holds 64 KiB.
        (void)!::write(in[1], input.data(), input.size());
        ::close(in[1]);
        reader_ = std::thread([this, o = out[0], e = err[0]] { drain(o, e); });
    }
    Ctl(const Ctl&) = delete;
    Ctl& operator=(const Ctl&) = delete;
    ~Ctl() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            (void)wait_for_exit(pid_, generous_deadline());
        }
        if (reader_.joinable()) {
            reader_.join();
        }
    }

    [[nodiscard]] pid_t pid() const { return pid_; }

    /// Waits for the exit (SIGKILL after the deadline: code -1) and the end of its output.
    Outcome finish() {
        auto e = wait_for_exit(pid_, generous_deadline());
        if (!e) {
            ::kill(pid_, SIGKILL);
            (void)wait_for_exit(pid_, generous_deadline());
        }
        pid_ = -1;
        reader_.join();
        result_.code = e ? e->code : -1;
        return result_;
    }

private:
    void drain(int out, int err) {
        pollfd p[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
        std::string* into[2] = {&result_.out, &result_.err};
        int open = 2;
        while (open > 0) {
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                break;
            }
            for (int k = 0; k < 2; ++k) {
                if (p[k].fd < 0 || p[k].revents == 0) {
                    continue;
                }
                char buf[8192];
                const ssize_t n = ::read(p[k].fd, buf, sizeof buf);
                if (n > 0) {
                    into[k]->append(buf, static_cast<std::size_t>(n));
                } else if (n == 0 || errno != EINTR) {
                    ::close(p[k].fd);
                    p[k].fd = -1;
                    --open;
                }
            }
        }
    }
    pid_t pid_{-1};
    Outcome result_;
    std::thread reader_;
};

inline Outcome ctl(std::vector<std::string> args, std::string input = {}) {
    return Ctl(std::move(args), std::move(input)).finish();
}

/// shmbusctl args aimed at `d`'s socket.
inline std::vector<std::string> at(const DaemonProcess& d, std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", d.socket_path().native()});
    return args;
}

/// Polls `info --json` until `channel` has `count` subscribers named shmbusctl, attached.
/// The daemon lists an endpoint from the moment it answers the open; a broadcast tail joins
/// at the newest message only when it attaches, a moment later, which the segment's count of
/// subscribers shows. Until then a message published would pass it by.
inline bool wait_for_tails(const DaemonProcess& d, const std::string& channel, std::size_t count) {
    const auto deadline = generous_deadline();
    while (std::chrono::steady_clock::now() < deadline) {
        const Outcome info = ctl(at(d, {"info", channel, "--json"}));
        if (info.code != 0) {
            WARN("info --json failed (" << info.code << "): " << info.err);
            return false;
        }
        std::size_t seen = 0;
        std::size_t opened = 0;
        const nlohmann::json doc = info.document(); // kept: the loop below refers into it
        for (const auto& e : doc.at("endpoints")) {
            if (e.at("role").get<std::string>() == "subscriber") {
                ++opened;
                seen += e.at("client_name").get<std::string>() == "shmbusctl" ? 1 : 0;
            }
        }
        if (seen >= count && doc.at("subscribers").get<std::size_t>() >= opened) {
            return true;
        }
    }
    return false;
}

} // namespace shmbus::test
