// A probe of the skip machinery (tests/support/skip.hpp, catch_main.cpp): a test binary whose
// test cases skip, fail before skipping, or pass, on purpose. They are hidden ([.]) so that
// ctest never runs them as tests; tests/skip_check.cmake runs them one at a time and checks
// what a skip must look like to ctest: exit 77 with the reason logged, and a failure that
// came before a skip still a failure.
#include "skip.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

TEST_CASE("only skips", "[.]") {
    SHMBUS_SKIP("the probe skips on purpose");
}

TEST_CASE("fails before it skips", "[.]") {
    const int sum = std::atoi("3"); // not a constant, so no compiler folds the check away
    CHECK(sum == 2);
    SHMBUS_SKIP("the probe skips after a failed check");
}

TEST_CASE("passes", "[.]") {
    const int sum = std::atoi("4");
    CHECK(sum == 4);
}
