// Formatting of figures for people: three significant digits and a unit that fits
// ("850 ns", "12.3 µs", "4.56 M/s", "1.23 GB/s", "64 KiB"). Machine-readable output
// (JSON, plot data) never goes through here: it keeps the raw numbers.
#pragma once

#include "stats.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace bench {

enum class Unit {
    ns,      ///< a duration in nanoseconds
    rate,    ///< messages per second
    bytes,   ///< bytes per second
    count,   ///< a plain number
    memory,  ///< a size in bytes (decimal units: "9.87 MB")
    percent, ///< a percentage ("0.12 %")
};

/// "12.3 µs", "4.56 M/s", "1.23 GB/s", "42", "9.87 MB", "0.12 %".
[[nodiscard]] std::string format_value(double value, Unit unit);
/// "12.3 [12.1..13.0] µs": the median and the range of the runs, in the median's unit.
[[nodiscard]] std::string format_spread(const std::optional<Spread>& s, Unit unit);
/// The median alone, or "-" when absent.
[[nodiscard]] std::string format_median(const std::optional<Spread>& s, Unit unit);
/// "128 B", "64 KiB", "1 MiB".
[[nodiscard]] std::string format_size(std::uint64_t bytes);
/// "312x", "1.21x", "0.87x".
[[nodiscard]] std::string format_ratio(double ratio);
/// An integer count: "0", "1234".
[[nodiscard]] std::string format_count(double value);

} // namespace bench
