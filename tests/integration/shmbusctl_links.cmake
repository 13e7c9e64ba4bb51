# shmbusctl_links: shmbusctl is an application of the public client API. None of the daemon's
# libraries (libuv, spdlog/fmt, yaml-cpp, libsystemd, and libshmbusd-config, which needs
# yaml-cpp) may be among the libraries it loads, whether it needs them itself or another
# library it loads does: `check-config` runs shmbusd instead (tools/shmbusctl/check_config.hpp).
#
# Its own NEEDED entries (readelf) must name libshmbus.so; the whole chain the dynamic loader
# resolves for it (ldd, which reads every library's NEEDED in turn) must name none of the
# daemon's, and must be complete: a library ldd cannot find could hide one.
#
# cmake -DPROGRAM=<shmbusctl> -P shmbusctl_links.cmake
if(NOT DEFINED PROGRAM)
    message(FATAL_ERROR "shmbusctl_links.cmake: -DPROGRAM=... is required")
endif()
find_program(READELF readelf REQUIRED)
find_program(LDD ldd REQUIRED)

execute_process(COMMAND "${READELF}" --dynamic "${PROGRAM}"
    OUTPUT_VARIABLE dynamic RESULT_VARIABLE result)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "readelf --dynamic ${PROGRAM} failed (${result})")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[[^]\n]*\\]" needed "${dynamic}")
string(REGEX REPLACE "\\(NEEDED\\)[^[]*\\[([^]]*)\\]" "\\1" needed "${needed}")
message(STATUS "${PROGRAM} needs: ${needed}")
if(NOT "${needed}" MATCHES "(^|;)libshmbus\\.so")
    message(FATAL_ERROR "shmbusctl does not link libshmbus.so: ${needed}")
endif()

execute_process(COMMAND "${LDD}" "${PROGRAM}"
    OUTPUT_VARIABLE chain ERROR_VARIABLE chain_error RESULT_VARIABLE result)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "ldd ${PROGRAM} failed (${result}): ${chain_error}")
endif()
# One entry per library loaded: "libfoo.so.1 => /path/libfoo.so.1 (0x...)", or a path alone
# for the loader itself and the vDSO's name.
string(REGEX REPLACE "\n" ";" lines "${chain}")
set(loaded "")
foreach(line IN LISTS lines)
    string(STRIP "${line}" line)
    if(line STREQUAL "")
        continue()
    endif()
    if(line MATCHES "not found")
        message(FATAL_ERROR "ldd cannot find a library shmbusctl loads, so the chain is "
            "incomplete: ${line}")
    endif()
    string(REGEX REPLACE " .*" "" name "${line}")
    get_filename_component(name "${name}" NAME)
    list(APPEND loaded "${name}")
endforeach()
list(LENGTH loaded count)
if(count LESS 2)
    message(FATAL_ERROR "ldd ${PROGRAM} listed no libraries: ${chain}")
endif()
message(STATUS "${PROGRAM} loads: ${loaded}")
if(NOT "${loaded}" MATCHES "(^|;)libshmbus\\.so")
    message(FATAL_ERROR "ldd does not show libshmbus.so among what shmbusctl loads: ${loaded}")
endif()
foreach(lib libuv libspdlog libfmt libyaml-cpp libsystemd libshmbusd-config)
    if("${loaded}" MATCHES "(^|;)${lib}[.-]")
        message(FATAL_ERROR "shmbusctl loads ${lib}, a library of the daemon only: ${loaded}")
    endif()
endforeach()
