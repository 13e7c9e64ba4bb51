# install_consumer: `cmake --install` of this build into a fresh prefix, then examples/consumer
# built against that install both ways a user would: pkg-config (its Makefile) and
# find_package(shmbus) (its CMakeLists.txt). shmbus.pc must name the prefix given at install
# time, not the one configured (packaging/shmbus.pc.in, client-lib/CMakeLists.txt).
#
# Only the library's components (runtime: libshmbus.so.0; development: headers, libshmbus.so,
# the CMake package, shmbus.pc) are installed, so nothing lands outside the prefix.
#
# cmake -DBUILD_DIR=<build> -DSOURCE_DIR=<source> -DWORK=<scratch dir> -P install_consumer.cmake
foreach(var BUILD_DIR SOURCE_DIR WORK)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "install_consumer.cmake: -D${var}=... is required")
    endif()
endforeach()

function(run what)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
    endif()
    set(run_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK}")
set(prefix "${WORK}/prefix")
foreach(component runtime development)
    run("cmake --install --prefix ${prefix} --component ${component}"
        "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --component ${component})
endforeach()

file(GLOB_RECURSE pc_files "${prefix}/*/shmbus.pc")
list(LENGTH pc_files found)
if(NOT found EQUAL 1)
    message(FATAL_ERROR "expected one shmbus.pc under ${prefix}, found: ${pc_files}")
endif()
get_filename_component(pc_dir "${pc_files}" DIRECTORY)
get_filename_component(lib_dir "${pc_dir}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")

run("pkg-config --cflags shmbus" pkg-config --cflags shmbus)
string(STRIP "${run_output}" cflags)
if(NOT cflags STREQUAL "-I${prefix}/include")
    message(FATAL_ERROR "pkg-config --cflags shmbus says '${cflags}', not -I${prefix}/include")
endif()
run("pkg-config --libs shmbus" pkg-config --libs shmbus)
string(STRIP "${run_output}" libs)
if(NOT libs STREQUAL "-L${lib_dir} -lshmbus")
    message(FATAL_ERROR "pkg-config --libs shmbus says '${libs}', not -L${lib_dir} -lshmbus")
endif()

# The example, both ways. Neither may reach into the build tree.
run("make -C examples/consumer (pkg-config)"
    make -C "${SOURCE_DIR}/examples/consumer" "OUT=${WORK}/consumer-make")
run("cmake -S examples/consumer (find_package)"
    "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/examples/consumer" -B "${WORK}/consumer-cmake"
    -G Ninja "-DCMAKE_PREFIX_PATH=${prefix}")
run("cmake --build of examples/consumer" "${CMAKE_COMMAND}" --build "${WORK}/consumer-cmake")

# Both run against the installed library: with no daemon at the socket they fail to connect,
# saying so, which is as far as a program gets once it has loaded libshmbus.so.0.
set(ENV{LD_LIBRARY_PATH} "${lib_dir}")
foreach(program "${WORK}/consumer-make" "${WORK}/consumer-cmake/shmbus-consumer-example")
    execute_process(COMMAND "${program}" --socket "${WORK}/no-daemon.sock" --count 1
        RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 1 OR NOT err MATCHES "shmbus-consumer-example: connect: ")
        message(FATAL_ERROR "${program} should fail to connect (exit 1), got ${rc}: ${err}")
    endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
