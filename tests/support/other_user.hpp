// Running part of a test as another uid, from any checkout.
//
// Tests that check what the daemon refuses to another user run as root and drop, in a forked
// child, to an unprivileged uid (nobody, 65534). That uid has to reach whatever the child
// uses by path: the daemon's socket, and for a program it execs, the program itself and the
// libraries it loads. A build tree under a 0700 home (/root/src/shmbus/build/...) is out of
// its reach, so:
//   - a program is staged: StagedProgram copies it (and any library of ours it loads) into a
//     fresh 0755 directory under the temporary directory, which the test runs instead;
//   - before the child starts, unreachable_by() asks the kernel, in a child that has dropped
//     to the uid, whether it can reach each path; if not (a TMPDIR under a 0700 directory,
//     say), the test skips with that reason (skip.hpp) rather than fail for the machine.
//
// Ownership: a StagedProgram owns its directory (removed with it). Forks happen while the
// test process may have threads (the daemon's notify reader), so the children here only make
// async-signal-safe calls before they exit or exec.
#pragma once

#include "daemon_process.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace shmbus::test {

/// In a child: becomes `uid`, with the group of the same number as its only group. False if
/// the kernel refused (not root).
inline bool drop_to_uid(uid_t uid) noexcept {
    const gid_t gid = uid;
    return ::setgroups(1, &gid) == 0 && ::setgid(gid) == 0 && ::setuid(uid) == 0;
}

/// A path and how another uid must use it: access()'s R_OK, W_OK (a socket to connect to)
/// or X_OK (a program).
struct Use {
    std::filesystem::path path;
    int mode;
};

/// Why `uid` cannot use each of `uses`, as the kernel answers a child that has dropped to
/// it; nothing if it can use them all.
inline std::optional<std::string> unreachable_by(uid_t uid, const std::vector<Use>& uses) {
    for (const auto& [path, mode] : uses) {
        const pid_t pid = ::fork();
        if (pid < 0) {
            return "fork failed: " + std::string{std::strerror(errno)};
        }
        if (pid == 0) {
            if (!drop_to_uid(uid)) {
                _exit(255);
            }
            _exit(::access(path.c_str(), mode) == 0 ? 0 : (errno & 0xff));
        }
        const auto e = wait_for_exit(pid, generous_deadline());
        if (!e || e->code != 0) {
            const std::string why = !e               ? "the check did not finish"
                                    : e->code == 255 ? "cannot drop to that uid"
                                                     : std::strerror(e->code);
            return "uid " + std::to_string(uid) + " cannot reach " + path.native() + " (" + why +
                   "; set TMPDIR to a directory every user can reach)";
        }
    }
    return std::nullopt;
}

/// A copy of a program that another uid can execute: a 0755 directory under the temporary
/// directory holding the program and the given shared libraries (under their file names;
/// LD_LIBRARY_PATH in environment() points there, ahead of the build tree's RUNPATH).
class StagedProgram {
public:
    /// `libraries`: each as {file to copy, name to give it (the SONAME)}.
    explicit StagedProgram(
        const std::filesystem::path& program,
        const std::vector<std::pair<std::filesystem::path, std::string>>& libraries = {}) {
        namespace fs = std::filesystem;
        fs::permissions(dir_.path(), fs::perms(0755));
        program_ = dir_.path() / program.filename();
        fs::copy_file(program, program_);
        fs::permissions(program_, fs::perms(0755));
        for (const auto& [file, name] : libraries) {
            fs::copy_file(file, dir_.path() / name);
            fs::permissions(dir_.path() / name, fs::perms(0755));
        }
        has_libraries_ = !libraries.empty();
    }
    StagedProgram(const StagedProgram&) = delete;
    StagedProgram& operator=(const StagedProgram&) = delete;

    [[nodiscard]] const std::filesystem::path& program() const { return program_; }
    /// "NAME=value" entries the program needs in its environment.
    [[nodiscard]] std::vector<std::string> environment() const {
        if (!has_libraries_) {
            return {};
        }
        return {"LD_LIBRARY_PATH=" + dir_.path().native()};
    }

private:
    TempDir dir_;
    std::filesystem::path program_;
    bool has_libraries_{false};
};

} // namespace shmbus::test
