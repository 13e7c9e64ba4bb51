// A C test program (tests/integration/*.c, built against shmbus.h alone) run as a child of a
// test against the daemon the test started, and the check that it ended well.
#pragma once

#include "daemon_process.hpp"
#include "process.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

namespace shmbus::test {

/// Runs `program` with the socket of `d` and then `args` as its arguments, in a child
/// process. The argument vector is built before fork(), so the child only execs.
inline Child run_c_program(const char* program, const DaemonProcess& d,
                           std::vector<std::string> args) {
    args.insert(args.begin(), d.socket_path().native());
    args.insert(args.begin(), program);
    auto owned = std::make_shared<std::vector<std::string>>(std::move(args));
    auto argv = std::make_shared<std::vector<char*>>();
    for (std::string& a : *owned) {
        argv->push_back(a.data());
    }
    argv->push_back(nullptr);
    return Child::spawn([owned, argv]() -> int {
        ::execv((*argv)[0], argv->data());
        exec_failed((*argv)[0]);
    });
}

/// Waits up to `wait` for `child` to end and requires that it exited with status 0; fails
/// saying how it ended, or where it is if it does not end in time.
inline void require_exited_ok(Child& child, std::chrono::seconds wait) {
    auto st = child.wait(Deadline{wait});
    if (!st) {
        FAIL("the C program did not end within " << wait.count() << " s: " << child.where());
    }
    INFO("the C program " << st->describe());
    REQUIRE(st->exited_ok());
}

} // namespace shmbus::test
