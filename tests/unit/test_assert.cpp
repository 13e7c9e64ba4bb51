// SHMBUS_ASSERT: a broken invariant is reported with file, line, condition and message, and
// the process aborts. Death tests run in a forked child whose stderr goes to a pipe.
#include "assert.hpp"

#include "../support/process.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <sys/resource.h>
#include <unistd.h>

using namespace shmbus::test;

namespace {

struct Death {
    ExitStatus status;
    std::string stderr_text;
};

/// Runs `body` in a child with its stderr captured; returns how it ended and what it said.
template <typename Body>
Death run_in_child(Body body) {
    Pipe err = Pipe::make();
    Child child = Child::spawn([&] {
        const rlimit no_core{0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core); // an expected abort leaves no core file
        ::dup2(err.write_end.get(), STDERR_FILENO);
        body();
        return 0;
    });
    err.write_end.reset();
    Death d;
    const Deadline deadline;
    char buf[512];
    for (;;) {
        if (read_exact(err.read_end.get(), std::as_writable_bytes(std::span{buf, 1}), deadline) !=
            ReadOutcome::complete) {
            break; // end of file: the child is gone (or the deadline passed; wait() says)
        }
        d.stderr_text += buf[0];
    }
    auto st = child.wait(deadline);
    REQUIRE(st.has_value());
    d.status = *st;
    return d;
}

} // namespace

TEST_CASE("a false SHMBUS_ASSERT names file, line, condition and message, then aborts") {
    const int line = __LINE__ + 3;
    const Death d = run_in_child([] {
        const int slots = 3;
        SHMBUS_ASSERT(slots % 2 == 0, "the slot count is a power of two");
    });
    INFO("stderr: " << d.stderr_text);
    CHECK(d.status.killed_by(SIGABRT));
    CHECK(d.stderr_text.find("test_assert.cpp:" + std::to_string(line) + ":") != std::string::npos);
    CHECK(d.stderr_text.find("slots % 2 == 0") != std::string::npos);
    CHECK(d.stderr_text.find("the slot count is a power of two") != std::string::npos);
}

TEST_CASE("a true SHMBUS_ASSERT does nothing and evaluates its condition once") {
    int evaluations = 0;
    SHMBUS_ASSERT(++evaluations == 1, "evaluated once");
    CHECK(evaluations == 1);
    const Death d = run_in_child([] { SHMBUS_ASSERT(true, "never fires"); });
    CHECK(d.status.exited_ok());
    CHECK(d.stderr_text.empty());
}
