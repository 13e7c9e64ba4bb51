// Running the C programs of the C ABI tests (tests/integration/c_api_*.c) against a daemon,
// in child processes, and requiring that they end well.
#pragma once

#include "daemon_process.hpp"
#include "process.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

namespace shmbus::test {

/// Runs the program `path` with the socket of `d` and then `args` in a child process. The
/// argument vector is built before fork(), so the child only execs.
inline Child run_c_program(const char* path, const DaemonProcess& d,
                           std::vector<std::string> args) {
    args.insert(args.begin(), d.socket_path().native());
    args.insert(args.begin(), path);
    auto owned = std::make_shared<std::vector<std::string>>(std::move(args));
    auto argv = std::make_shared<std::vector<char*>>();
    for (std::string& a : *owned) {
        argv->push_back(a.data());
    }
    argv->push_back(nullptr);
    return Child::spawn([owned, argv] {
        ::execv((*argv)[0], argv->data());
        std::perror("execv");
        return 127;
    });
}

/// Requires that `child` exits with status 0 within `wait`, saying how it ended otherwise.
inline void require_exited_ok(Child& child, std::chrono::seconds wait) {
    auto st = child.wait(Deadline{wait});
    if (!st) {
        FAIL("the C program did not end within " << wait.count() << " s: " << child.where());
    }
    INFO("the C program " << st->describe());
    REQUIRE(st->exited_ok());
}

} // namespace shmbus::test
