// Machine: what the figures were measured on, for the JSON and Markdown reports.
//
// Read once at start from /proc/cpuinfo, sysconf, uname and the affinity mask; the
// compiler and build type are those this program was built with.
#pragma once

#include <string>

namespace bench {

struct Machine {
    std::string cpu_model;    ///< "model name" of /proc/cpuinfo
    unsigned cores{0};        ///< online CPUs
    unsigned usable_cores{0}; ///< CPUs in this process's affinity mask
    std::string kernel;       ///< uname: sysname release version
    std::string compiler;     ///< "g++ 12.2.0"
    std::string build_type;   ///< CMAKE_BUILD_TYPE
    std::string clocksource;  ///< the kernel's clock source, when readable
};

/// Describes the machine this process runs on.
[[nodiscard]] Machine probe_machine();

/// The 1-, 5- and 15-minute load averages ("0.12 0.30 0.25"), to show how busy the machine
/// was around a run; empty if /proc/loadavg is unreadable.
[[nodiscard]] std::string load_average();

} // namespace bench
