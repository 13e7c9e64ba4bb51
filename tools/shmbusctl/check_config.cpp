// check-config: see check_config.hpp. Finds shmbusd, runs its --check-config with the
// standard streams of shmbusctl, and hands on its exit code.
#include "check_config.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <spawn.h>
#include <string_view>
#include <sys/stat.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <vector>

#ifndef SHMBUS_SBINDIR_FROM_BINDIR
#error "SHMBUS_SBINDIR_FROM_BINDIR must name the install's sbindir relative to its bindir"
#endif

namespace shmbusctl {

namespace {

namespace fs = std::filesystem;

bool is_program(const fs::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

/// The shmbusd to run (check_config.hpp says which), or nothing with `error` saying where it
/// was looked for.
std::optional<fs::path> find_shmbusd(std::string& error) {
    if (const char* chosen = std::getenv("SHMBUSD"); chosen != nullptr && *chosen != '\0') {
        if (is_program(chosen)) {
            return fs::path{chosen};
        }
        error = std::string{"SHMBUSD is '"} + chosen + "', which is not an executable file";
        return std::nullopt;
    }
    std::vector<fs::path> places;
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        places.push_back(self.parent_path());
        places.push_back((self.parent_path() / SHMBUS_SBINDIR_FROM_BINDIR).lexically_normal());
    }
    const char* path = std::getenv("PATH");
    for (std::string_view rest = path != nullptr ? path : ""; !rest.empty();) {
        const auto colon = rest.find(':');
        const std::string_view dir = rest.substr(0, colon);
        if (!dir.empty()) {
            places.emplace_back(dir);
        }
        rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    }
    std::string tried;
    for (const fs::path& dir : places) {
        if (is_program(dir / "shmbusd")) {
            return dir / "shmbusd";
        }
        tried += (tried.empty() ? "" : ", ") + dir.native();
    }
    error = "shmbusd, which checks the configuration, is in none of: " +
            (tried.empty() ? std::string{"(no directory to look in)"} : tried) +
            "; set SHMBUSD to its path";
    return std::nullopt;
}

} // namespace

int run_check_config(const GlobalOptions& options, const std::string& file) {
    std::string error;
    const auto shmbusd = find_shmbusd(error);
    if (!shmbusd) {
        return fail("check-config: " + error, kExitFailed);
    }
    std::vector<std::string> args{shmbusd->native(), "--check-config"};
    if (!file.empty()) {
        args.push_back("--config=" + file); // one word: a FILE starting with '-' stays a file
    }
    if (options.json) {
        args.emplace_back("--json");
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = -1;
    if (const int rc = ::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
        rc != 0) {
        return fail("check-config: cannot run " + shmbusd->native() + ": " + std::strerror(rc),
                    kExitFailed);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return fail("check-config: waiting for " + shmbusd->native() + ": " +
                            std::strerror(errno),
                        kExitFailed);
        }
    }
    if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == kExitConfig)) {
        return WEXITSTATUS(status);
    }
    const std::string how = WIFEXITED(status)
                                ? "exited with " + std::to_string(WEXITSTATUS(status))
                                : "was killed by signal " + std::to_string(WTERMSIG(status));
    return fail("check-config: " + shmbusd->native() + " --check-config " + how, kExitFailed);
}

} // namespace shmbusctl
