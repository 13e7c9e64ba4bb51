# shmbusctl_links: shmbusctl is an application of the public client API plus the daemon's
# configuration library (libshmbusd-config, for check-config): none of the daemon's own
# dependencies (libuv, spdlog/fmt, yaml-cpp, libsystemd) may be among the libraries it needs.
# yaml-cpp is needed by libshmbusd-config itself, privately; shmbusctl must not name it.
#
# cmake -DPROGRAM=<shmbusctl> -P shmbusctl_links.cmake
if(NOT DEFINED PROGRAM)
    message(FATAL_ERROR "shmbusctl_links.cmake: -DPROGRAM=... is required")
endif()
find_program(READELF readelf REQUIRED)
execute_process(COMMAND "${READELF}" --dynamic "${PROGRAM}"
    OUTPUT_VARIABLE dynamic RESULT_VARIABLE result)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "readelf --dynamic ${PROGRAM} failed (${result})")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[[^]\n]*\\]" needed "${dynamic}")
string(REGEX REPLACE "\\(NEEDED\\)[^[]*\\[([^]]*)\\]" "\\1" needed "${needed}")
message(STATUS "${PROGRAM} needs: ${needed}")
foreach(lib libshmbus.so libshmbusd-config.so)
    if(NOT "${needed}" MATCHES "(^|;)${lib}")
        message(FATAL_ERROR "shmbusctl does not link ${lib}: ${needed}")
    endif()
endforeach()
foreach(lib libuv libspdlog libfmt libyaml-cpp libsystemd)
    if("${needed}" MATCHES "(^|;)${lib}[.-]")
        message(FATAL_ERROR "shmbusctl links ${lib}, a dependency of the daemon only: ${needed}")
    endif()
endforeach()
