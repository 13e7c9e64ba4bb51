// SHMBUS_ASSERT: a broken invariant is reported with file, line, condition and message, and
// the process aborts. Death tests run in a forked child whose stderr goes to a pipe.
#include "assert.hpp"

#include "../support/death.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <string>

using namespace shmbus::test;

TEST_CASE("a false SHMBUS_ASSERT names file, line, condition and message, then aborts") {
    const int line = __LINE__ + 3;
    const Death d = run_expecting_death([] {
        const int slots = 3;
        SHMBUS_ASSERT(slots % 2 == 0, "the slot count is a power of two");
    });
    INFO("stderr: " << d.stderr_text);
    REQUIRE(d.ended);
    CHECK(d.status.killed_by(SIGABRT));
    CHECK(d.stderr_text.find("test_assert.cpp:" + std::to_string(line) + ":") != std::string::npos);
    CHECK(d.stderr_text.find("slots % 2 == 0") != std::string::npos);
    CHECK(d.stderr_text.find("the slot count is a power of two") != std::string::npos);
}

TEST_CASE("a true SHMBUS_ASSERT does nothing and evaluates its condition once") {
    int evaluations = 0;
    SHMBUS_ASSERT(++evaluations == 1, "evaluated once");
    CHECK(evaluations == 1);
    const Death d = run_expecting_death([] { SHMBUS_ASSERT(true, "never fires"); });
    REQUIRE(d.ended);
    CHECK(d.status.exited_ok());
    CHECK(d.stderr_text.empty());
}
