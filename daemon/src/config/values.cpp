// The values of a configuration file as text: see values.hpp. Pure functions, no state.
#include "values.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <system_error>
#include <utility>
#include <vector>

#include <shmbus/channel.hpp>

namespace shmbus::daemon {

namespace {

/// LOGIN_NAME_MAX on Linux, terminating NUL excluded.
constexpr std::size_t kMaxAccountNameLength = 255;

char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_power_of_two(std::uint64_t n) noexcept {
    return n != 0 && (n & (n - 1)) == 0;
}

enum class NumberStatus { ok, not_a_number, negative, too_large, unknown_unit, missing_unit };

struct Number {
    NumberStatus status{NumberStatus::not_a_number};
    std::uint64_t value{0};
    std::string_view unit; ///< the unit as written, for NumberStatus::unknown_unit
};

/// A unit: its name and how many of the base unit (bytes, milliseconds) it holds.
struct Unit {
    std::string_view name;
    std::uint64_t factor;
};

/// Largest first, the last of factor 1, as in_exact_unit() needs.
constexpr std::array<Unit, 5> kSizeUnits{
    {{"TiB", kTiB}, {"GiB", kGiB}, {"MiB", kMiB}, {"KiB", kKiB}, {"B", 1}}};

/// The names of kDurationUnits, for suggestions.
constexpr std::array<std::string_view, 4> kDurationUnitNames{"h", "min", "s", "ms"};

/// Largest first, the last of factor 1, as in_exact_unit() needs.
constexpr std::array<Unit, 4> kDurationUnits{
    {{"h", 3'600'000}, {"min", 60'000}, {"s", 1'000}, {"ms", 1}}};

/// `value` (in the base unit) in the largest of `units` that divides it exactly, so that no
/// rounding hides the value that was rejected.
std::string in_exact_unit(std::uint64_t value, std::span<const Unit> units,
                          std::string_view separator) {
    for (const Unit& unit : units) {
        if (value >= unit.factor && value % unit.factor == 0) {
            return std::to_string(value / unit.factor) + std::string(separator) +
                   std::string(unit.name);
        }
    }
    return std::to_string(value) + std::string(separator) + std::string(units.back().name);
}

bool all_digits(std::string_view text) noexcept {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// A plain decimal integer: "4096".
Number parse_integer(std::string_view text) {
    if (text.size() > 1 && text.front() == '-' && all_digits(text.substr(1))) {
        return {NumberStatus::negative, 0, {}};
    }
    if (!all_digits(text)) {
        return {NumberStatus::not_a_number, 0, {}};
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc::result_out_of_range) {
        return {NumberStatus::too_large, 0, {}};
    }
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return {NumberStatus::not_a_number, 0, {}};
    }
    return {NumberStatus::ok, value, {}};
}

/// "4 KiB" -> {4, "KiB"}: the leading digits as a number, and the letters after them (spaces
/// between are allowed). not_a_number when anything else follows the digits.
std::pair<Number, std::string_view> split_unit(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        ++digits;
    }
    std::string_view unit = text.substr(digits);
    while (!unit.empty() && unit.front() == ' ') {
        unit.remove_prefix(1);
    }
    if (digits == 0) {
        return {parse_integer(text), {}};
    }
    const Number number = parse_integer(text.substr(0, digits));
    if (number.status == NumberStatus::ok && !std::all_of(unit.begin(), unit.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        })) {
        return {Number{NumberStatus::not_a_number, 0, {}}, {}};
    }
    return {number, unit};
}

/// `number` times the factor of `unit` (one of `units`, any case), in the base unit.
Number scaled(const Number& number, std::string_view unit, std::span<const Unit> units) {
    for (const Unit& u : units) {
        if (equal_ignoring_case(unit, u.name)) {
            if (number.value > UINT64_MAX / u.factor) {
                return {NumberStatus::too_large, 0, {}};
            }
            return {NumberStatus::ok, number.value * u.factor, {}};
        }
    }
    return {NumberStatus::unknown_unit, number.value, unit};
}

/// A size in bytes, with an optional binary unit (see check_number()).
Number parse_size(std::string_view text) {
    const auto [number, unit] = split_unit(text);
    if (number.status != NumberStatus::ok || unit.empty()) {
        return number;
    }
    return scaled(number, unit, kSizeUnits);
}

/// A duration in milliseconds, with a unit it must have (see check_duration()).
Number parse_duration(std::string_view text) {
    const auto [number, unit] = split_unit(text);
    if (number.status != NumberStatus::ok) {
        return number;
    }
    if (unit.empty()) {
        return {NumberStatus::missing_unit, number.value, {}};
    }
    return scaled(number, unit, kDurationUnits);
}

/// The binary unit a decimal-looking unit most likely meant: "MB" -> "MiB", "k" -> "KiB".
std::optional<std::string_view> binary_unit_for(std::string_view unit) {
    switch (lower(unit.front())) {
    case 'k':
        return "KiB";
    case 'm':
        return "MiB";
    case 'g':
        return "GiB";
    case 't':
        return "TiB";
    default:
        return std::nullopt;
    }
}

/// The offset of the first character a channel name may not hold, or npos.
std::size_t bad_channel_name_char(std::string_view name) noexcept {
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '/' ||
                        c == '-';
        if (!ok) {
            return i;
        }
    }
    return std::string_view::npos;
}

/// Whether `name` may be a user or group name (see check_account()).
bool valid_account_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxAccountNameLength || name.front() == '-') {
        return false;
    }
    if (name.back() == '$') {
        name.remove_suffix(1);
    }
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '@' || c == '-';
    });
}

} // namespace

// ---- Words of messages ----------------------------------------------------------------------

std::string quote(std::string_view text) {
    std::size_t cut = text.size();
    if (cut > kMaxEchoLength) {
        cut = kMaxEchoLength;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) {
            --cut; // do not split a UTF-8 sequence
        }
    }
    std::string out = "'";
    for (std::size_t i = 0; i < cut; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7F) {
            constexpr std::string_view kHex = "0123456789abcdef";
            out += "\\x";
            out += kHex[c >> 4U];
            out += kHex[c & 0xFU];
        } else {
            out += static_cast<char>(c);
        }
    }
    if (cut < text.size()) {
        out += "...";
    }
    out += '\'';
    return out;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) {
        d[i][0] = i;
    }
    for (std::size_t j = 0; j <= b.size(); ++j) {
        d[0][j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1])) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates) {
    if (word.empty() || word.size() > 2 * kMaxEchoLength) {
        return std::nullopt;
    }
    const std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
    std::optional<std::string_view> best;
    std::size_t best_distance = limit + 1;
    for (const std::string_view candidate : candidates) {
        const std::size_t distance = edit_distance(word, candidate);
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    if (best || word.size() < 3) {
        return best;
    }
    for (const std::string_view candidate : candidates) {
        if (candidate.size() > word.size() &&
            equal_ignoring_case(candidate.substr(0, word.size()), word)) {
            return candidate;
        }
    }
    return std::nullopt;
}

std::string join_choices(std::span<const std::string_view> choices, std::string_view last_sep) {
    std::string out;
    for (std::size_t i = 0; i < choices.size(); ++i) {
        if (i > 0) {
            out += (i + 1 == choices.size()) ? last_sep : std::string_view{", "};
        }
        out += choices[i];
    }
    return out;
}

std::string format_size(std::uint64_t bytes) {
    return in_exact_unit(bytes, kSizeUnits, " ");
}

// ---- Checked values -------------------------------------------------------------------------

std::string_view number_expected(const Range& range) noexcept {
    return range.bytes ? "a size in bytes, such as 4096 or 4KiB" : "a whole number";
}

Result<std::uint64_t> check_number(std::string_view text, const Range& range) {
    const Number number = range.bytes ? parse_size(text) : parse_integer(text);
    const auto bound = [&](std::uint64_t v) {
        return range.bytes ? format_size(v) : std::to_string(v);
    };
    const std::string allowed = "must be between " + bound(range.min) + " and " + bound(range.max);
    switch (number.status) {
    case NumberStatus::ok:
        if (number.value < range.min || number.value > range.max) {
            return make_error(Errc::invalid_argument, allowed + ", got " + bound(number.value));
        }
        return number.value;
    case NumberStatus::negative:
    case NumberStatus::too_large:
        return make_error(Errc::invalid_argument, allowed + ", got " + quote(text));
    case NumberStatus::unknown_unit: {
        std::string message = "has an unknown unit " + quote(number.unit);
        if (const auto unit = binary_unit_for(number.unit)) {
            message +=
                " (did you mean '" + std::to_string(number.value) + std::string(*unit) + "'?)";
        }
        return make_error(Errc::invalid_argument, message + "; sizes use B, KiB, MiB, GiB or TiB");
    }
    case NumberStatus::missing_unit: // sizes never miss a unit: bytes
    case NumberStatus::not_a_number:
        break;
    }
    return make_error(Errc::invalid_argument,
                      "must be " + std::string(number_expected(range)) + ", got " + quote(text));
}

std::string format_duration(std::chrono::milliseconds duration) {
    return in_exact_unit(static_cast<std::uint64_t>(duration.count()), kDurationUnits, "");
}

Result<std::chrono::milliseconds> check_duration(std::string_view text,
                                                 const DurationRange& range) {
    const Number number = parse_duration(text);
    const std::string allowed =
        "must be between " + format_duration(range.min) + " and " + format_duration(range.max);
    const std::string units = "; durations use ms, s, min or h";
    const std::chrono::milliseconds value{static_cast<std::int64_t>(
        std::min<std::uint64_t>(number.value, static_cast<std::uint64_t>(INT64_MAX)))};
    switch (number.status) {
    case NumberStatus::ok:
        if (value < range.min || value > range.max) {
            return make_error(Errc::invalid_argument, allowed + ", got " + format_duration(value));
        }
        return value;
    case NumberStatus::negative:
    case NumberStatus::too_large:
        return make_error(Errc::invalid_argument, allowed + ", got " + quote(text));
    case NumberStatus::missing_unit:
        return make_error(Errc::invalid_argument, "needs a unit: " + quote(text) +
                                                      " could be seconds or milliseconds (write '" +
                                                      std::to_string(number.value) + "s' or '" +
                                                      std::to_string(number.value) + "ms')");
    case NumberStatus::unknown_unit: {
        std::string message = "has an unknown unit " + quote(number.unit);
        if (equal_ignoring_case(number.unit, "m")) {
            message += " (did you mean '" + std::to_string(number.value) + "min' or '" +
                       std::to_string(number.value) + "ms'?)";
        } else if (const auto unit = closest_match(number.unit, kDurationUnitNames)) {
            message +=
                " (did you mean '" + std::to_string(number.value) + std::string(*unit) + "'?)";
        }
        return make_error(Errc::invalid_argument, message + units);
    }
    case NumberStatus::not_a_number:
        break;
    }
    return make_error(Errc::invalid_argument,
                      "must be a duration such as 5s or 500ms, got " + quote(text) + units);
}

Result<void> check_power_of_two(std::uint64_t value) {
    if (is_power_of_two(value)) {
        return ok();
    }
    const std::uint64_t below = std::uint64_t{1} << (63 - __builtin_clzll(value));
    return make_error(Errc::invalid_argument,
                      "must be a power of two, got " + std::to_string(value) + " (nearest: " +
                          std::to_string(below) + " or " + std::to_string(below * 2) + ")");
}

Result<void> check_name(std::string_view name, std::string_view noun) {
    const std::string what{noun};
    if (name.empty()) {
        return make_error(Errc::invalid_argument, what + " must not be empty");
    }
    if (name.size() > kMaxNameLength) {
        return make_error(Errc::invalid_argument,
                          what + " " + quote(name) + " is " + std::to_string(name.size()) +
                              " bytes long; the limit is " + std::to_string(kMaxNameLength));
    }
    if (const std::size_t bad = bad_channel_name_char(name); bad != std::string_view::npos) {
        return make_error(Errc::invalid_argument,
                          "invalid " + what + " " + quote(name) + ": " +
                              quote(name.substr(bad, 1)) +
                              " is not allowed (use letters, digits and _ . : / -)");
    }
    return ok();
}

Result<void> check_channel_name(std::string_view name) {
    return check_name(name, "channel name");
}

Result<std::optional<std::uint32_t>> check_account(std::string_view text, std::string_view noun) {
    if (all_digits(text)) {
        const Number number = parse_integer(text);
        // (uid_t)-1 means "no change" to the kernel's chown(): not a usable id.
        if (number.status != NumberStatus::ok || number.value >= UINT32_MAX) {
            return make_error(Errc::invalid_argument, std::string(noun) + " id " + quote(text) +
                                                          " is out of range (0 to 4294967294)");
        }
        return std::optional<std::uint32_t>{static_cast<std::uint32_t>(number.value)};
    }
    if (!valid_account_name(text)) {
        return make_error(Errc::invalid_argument,
                          "invalid " + std::string(noun) + " name " + quote(text) +
                              ": use letters, digits, '_', '.', '@', '-' (not first) and a "
                              "final '$'");
    }
    return std::optional<std::uint32_t>{};
}

} // namespace shmbus::daemon
