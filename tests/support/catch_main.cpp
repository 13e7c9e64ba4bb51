// main() of every test binary: Catch2's session, plus the skips of skip.hpp.
//
// A listener sees each test case end: one that called SHMBUS_SKIP and failed nothing is
// counted as skipped and its reason printed (kSkipMarker). Under ctest (which sets
// SHMBUS_TEST_BINARY_DIR), the line is also appended to kSkipLog in the build tree, which
// ctest's post-test report prints. When every test case of the run skipped, the run exits
// kSkipExitCode, which ctest reports as "not run"; otherwise the exit code is Catch's (the
// number of failures, at most 255), moved off kSkipExitCode so that 77 failures can never
// pass for a skip.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <iostream>
#include <string>
#include <unistd.h>

namespace {

struct RunCounts {
    int test_cases{0};
    int skipped{0};
};

RunCounts& counts() {
    static RunCounts c;
    return c;
}

/// Appends `line` to the ctest run's list of skips, if this runs under ctest. One write()
/// with O_APPEND: tests running in parallel never interleave within a line.
void log_skip(const std::string& line) {
    const char* dir = std::getenv("SHMBUS_TEST_BINARY_DIR");
    if (dir == nullptr) {
        return;
    }
    const std::string path = std::string{dir} + "/" + shmbus::test::kSkipLog;
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!::write(fd, line.data(), line.size());
        ::close(fd);
    }
}

class SkipListener : public Catch::TestEventListenerBase {
public:
    using TestEventListenerBase::TestEventListenerBase;

    void testCaseStarting(Catch::TestCaseInfo const& /*info*/) override {
        shmbus::test::skip_reason().reset();
    }

    void testCaseEnded(Catch::TestCaseStats const& stats) override {
        ++counts().test_cases;
        auto reason = std::exchange(shmbus::test::skip_reason(), std::nullopt);
        if (!reason) {
            return;
        }
        if (stats.totals.assertions.failed > 0) {
            std::cout << "\"" << stats.testInfo.name << "\" failed before it skipped (" << *reason
                      << "): a failure, not a skip\n";
            return;
        }
        ++counts().skipped;
        const std::string line = '"' + stats.testInfo.name + "\": " + *reason + "\n";
        std::cout << shmbus::test::kSkipMarker << line << std::flush;
        log_skip(line);
    }
};

} // namespace

CATCH_REGISTER_LISTENER(SkipListener)

int main(int argc, char* argv[]) {
    const int result = Catch::Session().run(argc, argv);
    if (result == 0 && counts().test_cases > 0 && counts().skipped == counts().test_cases) {
        return shmbus::test::kSkipExitCode;
    }
    return result == shmbus::test::kSkipExitCode ? result + 1 : result;
}
