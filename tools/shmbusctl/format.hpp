// How shmbusctl shows things to a person: aligned tables in the manner of systemctl and
// busctl, human units (KiB, k/s, 3m12s), colour only where it helps and only on a terminal,
// and the byte renderings tail and pub share (escaped text, hex).
//
// Nothing here knows about the daemon; every function is pure apart from Table::print().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmbusctl {

/// Whether `stream` is a terminal and colour is allowed: NO_COLOR unset or empty
/// (https://no-color.org) and TERM not "dumb".
[[nodiscard]] bool colour_allowed(std::FILE* stream) noexcept;

/// SGR colours used sparingly: a table's header, a non-zero loss counter.
enum class Tint { none, bold, red, yellow, green, dim };

/// `text` wrapped in the escape sequence of `tint` when `colour` is true.
[[nodiscard]] std::string tinted(std::string_view text, Tint tint, bool colour);

/// A table of left- or right-aligned columns separated by two spaces; the header in upper
/// case (bold on a terminal). Cells may carry a tint that does not count towards the width.
class Table {
public:
    enum class Align { left, right };
    struct Column {
        std::string header;
        Align align{Align::left};
    };
    explicit Table(std::vector<Column> columns);

    /// Adds a row; `cells` has one entry per column.
    void add_row(std::vector<std::string> cells, std::vector<Tint> tints = {});
    [[nodiscard]] std::size_t rows() const noexcept { return rows_.size(); }
    /// Writes the table (header unless `no_legend`) to `out`.
    void print(std::FILE* out, bool no_legend, bool colour) const;

private:
    std::vector<Column> columns_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<std::vector<Tint>> tints_;
};

/// Display width of UTF-8 `text`: its bytes minus the continuation bytes.
[[nodiscard]] std::size_t display_width(std::string_view text) noexcept;

/// Writes "label: value" lines with the labels right-aligned, as `systemctl status` does.
void print_fields(std::FILE* out, const std::vector<std::pair<std::string, std::string>>& fields,
                  bool colour);

/// 1536 -> "1.5KiB", 512 -> "512B", 4294967296 -> "4GiB".
[[nodiscard]] std::string human_bytes(std::uint64_t bytes);
/// Messages per second: 0 -> "0/s", 1234.5 -> "1.2k/s", 3.4e6 -> "3.4M/s"; nullopt -> "-".
[[nodiscard]] std::string human_rate(std::optional<double> per_second);
/// A duration: "850ms", "42s", "3m12s", "5h04m", "2d03h".
[[nodiscard]] std::string human_duration(std::uint64_t milliseconds);
/// Unix time in ms as local "YYYY-MM-DD HH:MM:SS".
[[nodiscard]] std::string local_time(std::int64_t unix_ms);

/// Printable ASCII as is, '\\' as "\\\\", every other byte as "\\xNN": one line per message.
[[nodiscard]] std::string escaped_text(std::span<const std::byte> data);
/// "de ad be ef" (with `spaced`) or "deadbeef".
[[nodiscard]] std::string to_hex(std::span<const std::byte> data, bool spaced);
/// Parses hex digits, ignoring white space and ':'; nullopt for an odd count or a non-hex
/// character.
[[nodiscard]] std::optional<std::vector<std::byte>> from_hex(std::string_view text);
/// The bytes of `text` as they are.
[[nodiscard]] std::vector<std::byte> bytes_of(std::string_view text);
/// The bytes a command was given: `text` read by from_hex() when `hex`, else as it is.
[[nodiscard]] std::optional<std::vector<std::byte>> bytes_given(std::string_view text, bool hex);

} // namespace shmbusctl
