// The values a configuration file holds, as text: numbers, sizes, durations, names, and the
// words of the messages about them (quoting, "did you mean", exact sizes and durations).
//
// Internal to the configuration loader (the YAML reader, yaml_*.cpp, and load.cpp): nothing
// here knows YAML, files or the Config struct, so each rule is written once and tested
// through parse_config().
// Every function is pure and reentrant; a value that cannot be read is a status, never an
// exception, and the caller words the error with the key and the place.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <shmbus/error.hpp>

namespace shmbus::daemon {

inline constexpr std::uint64_t kKiB = std::uint64_t{1} << 10;
inline constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
inline constexpr std::uint64_t kTiB = std::uint64_t{1} << 40;

/// Values echoed in messages are cut after this many bytes.
inline constexpr std::size_t kMaxEchoLength = 64;

// ---- Words of messages ----------------------------------------------------------------------

/// `text` in single quotes for a message: control bytes escaped, cut after kMaxEchoLength
/// bytes (on a UTF-8 character boundary), so that a hostile file cannot mangle a terminal.
[[nodiscard]] std::string quote(std::string_view text);

[[nodiscard]] bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept;

/// Optimal-string-alignment distance (Levenshtein plus swaps of neighbours), ignoring case:
/// "slot_sise" -> "slot_size" is 1, "kidn" -> "kind" is 1.
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate `word` was most likely meant to be, if any is close enough: within an edit
/// distance of a third of its length (at least 1, at most 3), or, failing that, a candidate
/// that `word` (3+ characters) abbreviates ("warn" -> "warning").
[[nodiscard]] std::optional<std::string_view>
closest_match(std::string_view word, std::span<const std::string_view> candidates);

/// "a, b or c" (with `last_sep` " or ").
[[nodiscard]] std::string join_choices(std::span<const std::string_view> choices,
                                       std::string_view last_sep);

/// 1073741824 -> "1 GiB", 1536 -> "1536 B": exact binary units only, so that no rounding hides
/// the value that was rejected.
[[nodiscard]] std::string format_size(std::uint64_t bytes);

/// 300000 ms -> "5min", 1500 ms -> "1500ms": the largest unit that divides exactly, written as
/// a configuration file would.
[[nodiscard]] std::string format_duration(std::chrono::milliseconds duration);

// ---- Checked values -------------------------------------------------------------------------
// Each check_*() returns the value, or an Error whose detail is the sentence that says what is
// wrong. For check_number() that sentence follows the key's name ("must be between 1 and 65536,
// got 0"); the others are whole messages. The reader adds the key and the place.

/// Allowed values of an integer setting.
struct Range {
    std::uint64_t min;
    std::uint64_t max;
    bool bytes; ///< a size: accepts units, and messages show sizes
};

/// What a setting of `range` expects, for messages: "a whole number", or "a size in bytes,
/// such as 4096 or 4KiB".
[[nodiscard]] std::string_view number_expected(const Range& range) noexcept;

/// `text` as a number within `range`. A whole number is plain decimal: "4096" (no sign, no hex,
/// no separators). A size may carry a binary unit: "4096B", "4KiB", "4 KiB", "1MiB", "1GiB",
/// "1TiB" (units ignore case); decimal units (kB, MB) are refused with a suggestion rather
/// than guessed.
[[nodiscard]] Result<std::uint64_t> check_number(std::string_view text, const Range& range);

/// Allowed values of a duration setting.
struct DurationRange {
    std::chrono::milliseconds min;
    std::chrono::milliseconds max;
};

/// `text` as a duration within `range`: a whole number and a unit, "500ms", "5s", "5 s",
/// "2min", "1h" (units ignore case). A bare number is refused ("5" could mean seconds or
/// milliseconds), and so is "m" (minutes or milliseconds?), each with a suggestion; so are
/// fractions ("1.5s": write "1500ms").
[[nodiscard]] Result<std::chrono::milliseconds> check_duration(std::string_view text,
                                                               const DurationRange& range);

/// "must be a power of two, got 3 (nearest: 2 or 4)" unless `value` is one.
[[nodiscard]] Result<void> check_power_of_two(std::uint64_t value);

/// A name of 1..kMaxNameLength bytes of [A-Za-z0-9_.:/-]; `noun` ("channel name", "bridge
/// name") says what it names in the message.
[[nodiscard]] Result<void> check_name(std::string_view name, std::string_view noun);

/// A channel name: check_name(name, "channel name").
[[nodiscard]] Result<void> check_channel_name(std::string_view name);

/// An entry of a `users:` or `groups:` list (`noun` is "user" or "group"): a numeric id (0 to
/// 4294967294; (uid_t)-1 is not an id), returned; or a name as shadow-utils and common NSS back
/// ends accept ([A-Za-z0-9_.@-], not starting with '-', an optional final '$' for machine
/// accounts), for which std::nullopt is returned.
[[nodiscard]] Result<std::optional<std::uint32_t>> check_account(std::string_view text,
                                                                 std::string_view noun);

} // namespace shmbus::daemon
