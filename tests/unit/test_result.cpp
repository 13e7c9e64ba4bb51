// Result<T>: using it for what it does not hold is a bug in the caller, and the process
// aborts; value() of an error says which error first, so that the user sees why.
#include <shmbus/error.hpp>

#include "../support/death.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <string>

using namespace shmbus;
using namespace shmbus::test;

namespace {
Result<int> failing() {
    return make_error(Errc::not_found, "no channel 'telemetry'", ENOENT);
}
} // namespace

TEST_CASE("value() of an error result prints the error's message, then aborts") {
    const Death d = run_expecting_death([] {
        Result<int> r = failing();
        std::fprintf(stdout, "%d\n", r.value());
    });
    INFO("stderr: " << d.stderr_text);
    REQUIRE(d.ended);
    CHECK(d.status.killed_by(SIGABRT));
    CHECK(d.stderr_text.find("Result::value()") != std::string::npos);
    CHECK(d.stderr_text.find(failing().error().message()) != std::string::npos);
}

TEST_CASE("operator-> and operator* of an error result report the error too") {
    struct Point {
        int x;
    };
    const Death arrow = run_expecting_death([] {
        Result<Point> r{make_error(Errc::timed_out, "no message within the timeout")};
        std::fprintf(stdout, "%d\n", r->x);
    });
    CHECK(arrow.status.killed_by(SIGABRT));
    CHECK(arrow.stderr_text.find("timed_out: no message within the timeout") != std::string::npos);
    const Death star = run_expecting_death([] {
        Result<int> r = failing();
        std::fprintf(stdout, "%d\n", *r);
    });
    CHECK(star.status.killed_by(SIGABRT));
    CHECK(star.stderr_text.find("not_found: no channel 'telemetry'") != std::string::npos);
}

TEST_CASE("error() of a result that holds a value says so, then aborts") {
    const Death d = run_expecting_death([] {
        Result<int> r{42};
        std::fprintf(stdout, "%s\n", r.error().message().c_str());
    });
    REQUIRE(d.ended);
    CHECK(d.status.killed_by(SIGABRT));
    CHECK(d.stderr_text.find("Result::error() called on a result that holds a value") !=
          std::string::npos);
    const Death v = run_expecting_death([] {
        Result<void> r = ok();
        std::fprintf(stdout, "%s\n", r.error().message().c_str());
    });
    CHECK(v.status.killed_by(SIGABRT));
    CHECK(v.stderr_text.find("holds a value") != std::string::npos);
}

TEST_CASE("a result used for what it holds neither prints nor aborts") {
    const Death d = run_expecting_death([] {
        Result<int> good{7};
        Result<int> bad = failing();
        if (good.value() != 7 || bad.error().code != Errc::not_found) {
            std::_Exit(1);
        }
    });
    REQUIRE(d.ended);
    CHECK(d.status.exited_ok());
    CHECK(d.stderr_text.empty());
}
