// Skipping a test that cannot run on this machine, so that ctest counts it as not run.
//
// Some tests need what a machine may not give: root (to act as another uid), ptrace, a
// writable cgroup v2 hierarchy, a tool such as systemd-socket-activate. Such a test ends with
//
//     if (::geteuid() != 0) {
//         SHMBUS_SKIP("needs root to run a client as another uid");
//     }
//
// which returns from the TEST_CASE and records the reason. Catch2 2.13 (Debian's) has no
// skip of its own, so our main() (catch_main.cpp) finishes the job: a run in which every test
// case skipped, and none failed, exits with kSkipExitCode, which tests/CMakeLists.txt gives
// every test as SKIP_RETURN_CODE, and prints one line per skipped test case starting with
// kSkipMarker; under ctest the line also goes to kSkipLog in the build tree. ctest lists the
// test under "The following tests did not run", and its post-test report
// (tests/skip_report.cmake) prints each reason from kSkipLog. A test case that failed an
// assertion before it skipped is a failure, not a skip.
//
// Only ever skip for what the machine lacks, never for what the code under test does.
#pragma once

#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace shmbus::test {

/// The exit code of a test run whose every test case skipped (ctest's SKIP_RETURN_CODE).
inline constexpr int kSkipExitCode = 77;
/// Each skipped test case prints a line `<marker>"<test name>": <reason>` on stdout.
inline constexpr const char* kSkipMarker = "shmbus-test skipped: ";
/// Under ctest, `"<test name>": <reason>` lines are appended to this file of the build tree
/// ($SHMBUS_TEST_BINARY_DIR); ctest empties it before each run (tests/CTestCustom.cmake.in).
inline constexpr const char* kSkipLog = "Testing/Temporary/shmbus-skipped.log";

/// The reason the running test case skipped, if it did.
inline std::optional<std::string>& skip_reason() {
    static std::optional<std::string> reason;
    return reason;
}

/// Records that the running test case skips for `reason`; SHMBUS_SKIP calls it and returns.
inline void skip_current_test(std::string reason) {
    skip_reason() = std::move(reason);
}

} // namespace shmbus::test

/// Ends the running TEST_CASE as skipped. `reason` is a stream expression, as in INFO():
/// SHMBUS_SKIP("cannot create " << path << ": " << ec.message()).
#define SHMBUS_SKIP(reason)                                                                        \
    do {                                                                                           \
        std::ostringstream shmbus_skip_reason_;                                                    \
        shmbus_skip_reason_ << reason;                                                             \
        ::shmbus::test::skip_current_test(shmbus_skip_reason_.str());                              \
        return;                                                                                    \
    } while (false)
