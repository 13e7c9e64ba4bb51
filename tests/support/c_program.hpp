// A C test program (tests/integration/*.c, built against shmbus.h alone) run as a child of a
// test against the daemon the test started, and the check that it ended well.
#pragma once

#include "daemon_process.hpp"
#include "process.hpp"

#include <shmbus/error.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
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

/// Tries `attempt(timeout)` (a receive or a send of this process) in short slices while the
/// C program `child` runs, until it succeeds, and returns its result: fails at once, saying
/// how the program ended, if it ends first, and says where it is if nothing happens within
/// `wait`. `n` numbers the message, for the failure's message.
template <typename Attempt>
auto while_program_runs(Child& child, std::uint64_t n, std::chrono::seconds wait, Attempt attempt) {
    const Deadline deadline{wait};
    for (;;) {
        auto r = attempt(std::chrono::milliseconds{200});
        if (r) {
            return r;
        }
        INFO("message " << n << ": " << r.error().message());
        REQUIRE(r.error().code == Errc::timed_out);
        if (auto ended = child.wait(Deadline{std::chrono::nanoseconds::zero()})) {
            FAIL("the C program ended before message " << n << ": " << ended->describe());
        }
        if (deadline.passed()) {
            FAIL("message " << n << " not through within " << wait.count()
                            << " s; the C program: " << child.where());
        }
    }
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
