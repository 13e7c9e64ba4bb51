"""Runs pytest on the files given, for ctest, the way tests/support/skip.hpp does for Catch2.

A machine without python3-pytest skips (exit 77, ctest's SKIP_RETURN_CODE for these tests),
with the reason printed and appended to the build tree's skip log, which ctest prints after
the run. A run whose every test skipped exits 77 too, each reason logged likewise; a run with
a failure fails; one that collected nothing fails rather than passing with nothing run.

usage: python3 run_pytest.py NAME TEST_FILE...   (NAME: the ctest test's name)
"""

from __future__ import annotations

import os
import sys

SKIP_EXIT_CODE = 77
SKIP_MARKER = "shmbus-test skipped: "
SKIP_LOG = "Testing/Temporary/shmbus-skipped.log"


def record_skip(name: str, reason: str) -> None:
    print(f'{SKIP_MARKER}"{name}": {reason}', flush=True)
    build = os.environ.get("SHMBUS_TEST_BINARY_DIR")
    if build:
        with open(os.path.join(build, SKIP_LOG), "a", encoding="utf-8") as log:
            log.write(f'"{name}": {reason}\n')


class SkipCounter:
    """Counts the tests run and skipped, keeping each skip's reason."""

    def __init__(self) -> None:
        self.ran = 0
        self.skipped: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report) -> None:  # type: ignore[no-untyped-def]
        if report.when == "call" and not report.skipped:
            self.ran += 1
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(
                report.longrepr)
            self.skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))


def main() -> int:
    name, files = sys.argv[1], sys.argv[2:]
    try:
        import pytest
    except ImportError:
        record_skip(name, "python3-pytest is not installed (packaging/install-deps.sh installs it)")
        return SKIP_EXIT_CODE
    counter = SkipCounter()
    status = pytest.main(["-p", "no:cacheprovider", "-q", "-rs", *files], plugins=[counter])
    if status == pytest.ExitCode.OK and counter.ran == 0 and counter.skipped:
        for nodeid, reason in counter.skipped:
            record_skip(nodeid, reason)
        return SKIP_EXIT_CODE
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
