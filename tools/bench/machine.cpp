// Machine: see machine.hpp. Every probe is best effort: an unreadable file leaves its
// field empty rather than failing the benchmark.

#include "machine.hpp"

#include "team.hpp"

#include <fstream>

#include <sys/utsname.h>
#include <unistd.h>

#ifndef SHMBUS_BENCH_BUILD_TYPE
#define SHMBUS_BENCH_BUILD_TYPE "unknown"
#endif

namespace bench {
namespace {

std::string trim(const std::string& s) {
    const auto first = s.find_first_not_of(" \t");
    const auto last = s.find_last_not_of(" \t\r\n");
    return first == std::string::npos ? std::string{} : s.substr(first, last - first + 1);
}

std::string cpu_model() {
    std::ifstream in{"/proc/cpuinfo"};
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                return trim(line.substr(colon + 1));
            }
        }
    }
    return {};
}

std::string first_line(const char* path) {
    std::ifstream in{path};
    std::string line;
    std::getline(in, line);
    return trim(line);
}

} // namespace

Machine probe_machine() {
    Machine m;
    m.cpu_model = cpu_model();
    const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    m.cores = online > 0 ? static_cast<unsigned>(online) : 0;
    m.usable_cores = static_cast<unsigned>(usable_cpus().size());
    utsname u{};
    if (::uname(&u) == 0) {
        m.kernel = std::string{u.sysname} + " " + u.release + " " + u.version;
    }
#if defined(__clang__)
    m.compiler = std::string{"clang "} + __clang_version__;
#elif defined(__GNUC__)
    m.compiler = std::string{"g++ "} + __VERSION__;
#else
    m.compiler = __VERSION__;
#endif
    m.build_type = SHMBUS_BENCH_BUILD_TYPE;
    m.clocksource = first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    return m;
}

std::string load_average() {
    const std::string line = first_line("/proc/loadavg");
    std::size_t end = 0;
    for (int fields = 0; fields < 3 && end != std::string::npos; ++fields) {
        end = line.find(' ', end + (fields > 0 ? 1 : 0));
    }
    return line.substr(0, end);
}

} // namespace bench
