# Checks the skip machinery (tests/support/skip.hpp, catch_main.cpp) on its probe
# (tests/unit/skip_probe.cpp), so that a skip is never counted as a pass nor a failure hidden
# as a skip:
#   - a run whose only test case skips exits 77 (ctest's SKIP_RETURN_CODE: "not run"),
#     prints the reason after the marker, and appends it to the skip log of the build tree;
#   - a test case that failed a check before it skipped is a failure: not 0, not 77;
#   - a run where one case passes and one skips is not "not run": it exits 0.
#
# cmake -DPROBE=<skip_probe> -DSCRATCH=<dir> -P skip_check.cmake
# SCRATCH stands in for the build tree, so the probe's skips never reach the real skip log.
set(log "${SCRATCH}/Testing/Temporary/shmbus-skipped.log")
file(REMOVE_RECURSE "${SCRATCH}")
file(MAKE_DIRECTORY "${SCRATCH}/Testing/Temporary")

function(run_probe out_code out_text)
    execute_process(
        COMMAND ${CMAKE_COMMAND} -E env "SHMBUS_TEST_BINARY_DIR=${SCRATCH}" "${PROBE}" ${ARGN}
        RESULT_VARIABLE code OUTPUT_VARIABLE text ERROR_VARIABLE text)
    set(${out_code} "${code}" PARENT_SCOPE)
    set(${out_text} "${text}" PARENT_SCOPE)
endfunction()

run_probe(code text "only skips")
if(NOT code EQUAL 77)
    message(FATAL_ERROR "a run whose only test case skips exited ${code}, not 77:\n${text}")
endif()
if(NOT text MATCHES "shmbus-test skipped: \"only skips\": the probe skips on purpose")
    message(FATAL_ERROR "the skip's reason is not printed after the marker:\n${text}")
endif()
file(READ "${log}" logged)
if(NOT logged STREQUAL "\"only skips\": the probe skips on purpose\n")
    message(FATAL_ERROR "the skip log holds '${logged}', not the one skip's reason")
endif()

run_probe(code text "fails before it skips")
if(code EQUAL 0 OR code EQUAL 77)
    message(FATAL_ERROR "a test case that failed before it skipped exited ${code}:\n${text}")
endif()
if(NOT text MATCHES "failed before it skipped")
    message(FATAL_ERROR "the failure before the skip is not named:\n${text}")
endif()

run_probe(code text "only skips,passes")
if(NOT code EQUAL 0)
    message(FATAL_ERROR "a run with one pass and one skip exited ${code}, not 0:\n${text}")
endif()
message(STATUS "skips are skips, and a failure before a skip is a failure")
