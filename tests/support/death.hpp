// Death tests: run a piece of code that is expected to abort in a forked child, with its
// stderr captured, and report how the child ended and what it printed.
//
// The child first restores the default action of the fatal signals (the test runner's
// handlers would report the expected death as a failure of the child's copy of the test) and
// sets RLIMIT_CORE to 0, so an expected abort leaves no core file. Waits end at a deadline
// (process.hpp), never hang.
#pragma once

#include "process.hpp"

#include <csignal>
#include <string>
#include <sys/resource.h>
#include <unistd.h>

namespace shmbus::test {

struct Death {
    ExitStatus status;       ///< how the child ended
    std::string stderr_text; ///< everything it wrote to stderr
    bool ended{false};       ///< false if it was still running at the deadline
};

/// Runs `body` in a forked child whose stderr goes to a pipe; returns how it ended and what
/// it said. A child that returns from `body` exits with status 0.
template <typename Body>
Death run_expecting_death(Body body) {
    Pipe err = Pipe::make();
    Child child = Child::spawn([&] {
        for (const int sig : {SIGABRT, SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP}) {
            ::signal(sig, SIG_DFL);
        }
        const rlimit no_core{0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        ::dup2(err.write_end.get(), STDERR_FILENO);
        body();
        return 0;
    });
    err.write_end.reset();
    Death d;
    const Deadline deadline;
    char c = 0;
    // Until end of file (the child is gone) or the deadline, which wait() then reports.
    while (read_exact(err.read_end.get(), std::as_writable_bytes(std::span{&c, 1}), deadline) ==
           ReadOutcome::complete) {
        d.stderr_text += c;
    }
    if (auto st = child.wait(deadline)) {
        d.status = *st;
        d.ended = true;
    }
    return d;
}

} // namespace shmbus::test
