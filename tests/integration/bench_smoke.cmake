# bench_smoke: runs shmbus-bench on its tiny suite with --json, then checks the report's
# shape with bench_smoke_check. Not a timing test: only that the benchmark still runs end to
# end and writes what docs/benchmarks.md promises.
#
# cmake -DBENCH=<shmbus-bench> -DCHECK=<bench_smoke_check> -DOUT=<report.json> -P bench_smoke.cmake
foreach(var BENCH CHECK OUT)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "bench_smoke.cmake: -D${var}=... is required")
    endif()
endforeach()

file(REMOVE "${OUT}")
execute_process(COMMAND "${BENCH}" --suite tiny --json "${OUT}"
    RESULT_VARIABLE bench_result)
if(NOT bench_result EQUAL 0)
    message(FATAL_ERROR "shmbus-bench --suite tiny failed (${bench_result})")
endif()
execute_process(COMMAND "${CHECK}" "${OUT}" RESULT_VARIABLE check_result)
if(NOT check_result EQUAL 0)
    message(FATAL_ERROR "the JSON report of shmbus-bench has the wrong shape: ${OUT}")
endif()
