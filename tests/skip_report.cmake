# After a ctest run (CTEST_CUSTOM_POST_TEST, tests/CTestCustom.cmake.in): prints why each
# skipped test did not run. ctest itself lists skipped tests by name only ("The following
# tests did not run"); each skipped test case appended its reason to LOG
# (tests/support/skip.hpp), which ctest emptied before the run.
#
# cmake -DLOG=<build>/Testing/Temporary/shmbus-skipped.log -P skip_report.cmake
# Never fails: a failing post-test command would fail the whole ctest run.
if(NOT EXISTS "${LOG}")
    return()
endif()
file(READ "${LOG}" reasons)
if(reasons)
    string(REGEX REPLACE "([^\n]+)" "\t\\1" reasons "${reasons}")
    message("Why they did not run:\n${reasons}")
endif()
