// Formatting: see format.hpp.

#include "format.hpp"

#include <cmath>
#include <cstdio>

namespace bench {
namespace {

struct Scaled {
    double divisor;
    const char* suffix;
};

/// The largest of 10^9, 10^6, 10^3 and 1 that `a` reaches, with its suffix.
Scaled decimal(double a, const char* giga, const char* mega, const char* kilo, const char* one) {
    if (a >= 1e9) {
        return {1e9, giga};
    }
    if (a >= 1e6) {
        return {1e6, mega};
    }
    if (a >= 1e3) {
        return {1e3, kilo};
    }
    return {1, one};
}

Scaled scale_for(double v, Unit unit) {
    const double a = std::fabs(v);
    switch (unit) {
    case Unit::ns:
        return decimal(a, " s", " ms", " µs", " ns");
    case Unit::rate:
        return decimal(a, " G/s", " M/s", " k/s", " /s");
    case Unit::bytes:
        return decimal(a, " GB/s", " MB/s", " kB/s", " B/s");
    case Unit::memory:
        return decimal(a, " GB", " MB", " kB", " B");
    case Unit::percent:
        return {1, " %"};
    case Unit::count:
        break;
    }
    return {1, ""};
}

std::string three_digits(double v) {
    char buf[32];
    const double a = std::fabs(v);
    if (a >= 100 || v == 0) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
    } else if (a < 0.01) {
        std::snprintf(buf, sizeof buf, "%.3g", v); // 0.00123: a near-idle CPU's percent
    } else if (a >= 10) {
        std::snprintf(buf, sizeof buf, "%.1f", v);
    } else {
        std::snprintf(buf, sizeof buf, "%.2f", v);
    }
    return buf;
}

} // namespace

std::string format_value(double value, Unit unit) {
    if (unit == Unit::count) {
        return format_count(value);
    }
    const Scaled s = scale_for(value, unit);
    return three_digits(value / s.divisor) + s.suffix;
}

std::string format_spread(const std::optional<Spread>& s, Unit unit) {
    if (!s) {
        return "-";
    }
    if (unit == Unit::count) {
        return format_count(s->median) + " [" + format_count(s->min) + ".." + format_count(s->max) +
               "]";
    }
    const Scaled sc = scale_for(s->median, unit);
    return three_digits(s->median / sc.divisor) + " [" + three_digits(s->min / sc.divisor) + ".." +
           three_digits(s->max / sc.divisor) + "]" + sc.suffix;
}

std::string format_median(const std::optional<Spread>& s, Unit unit) {
    return s ? format_value(s->median, unit) : "-";
}

std::string format_size(std::uint64_t bytes) {
    if (bytes >= (1ULL << 20) && bytes % (1ULL << 20) == 0) {
        return std::to_string(bytes >> 20) + " MiB";
    }
    if (bytes >= 1024 && bytes % 1024 == 0) {
        return std::to_string(bytes >> 10) + " KiB";
    }
    return std::to_string(bytes) + " B";
}

std::string format_ratio(double ratio) {
    return three_digits(ratio) + "x";
}

std::string format_count(double value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", value);
    return buf;
}

} // namespace bench
