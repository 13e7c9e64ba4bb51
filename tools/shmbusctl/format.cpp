// Tables, units, colour and byte renderings: see format.hpp.
#include "format.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <unistd.h>

namespace shmbusctl {

bool colour_allowed(std::FILE* stream) noexcept {
    const char* no_colour = std::getenv("NO_COLOR");
    if (no_colour != nullptr && *no_colour != '\0') {
        return false;
    }
    const char* term = std::getenv("TERM");
    if (term != nullptr && std::string_view{term} == "dumb") {
        return false;
    }
    return ::isatty(::fileno(stream)) == 1;
}

std::string tinted(std::string_view text, Tint tint, bool colour) {
    if (!colour || tint == Tint::none) {
        return std::string{text};
    }
    const char* sgr = "";
    switch (tint) {
    case Tint::bold:
        sgr = "1";
        break;
    case Tint::red:
        sgr = "1;31";
        break;
    case Tint::yellow:
        sgr = "33";
        break;
    case Tint::green:
        sgr = "32";
        break;
    case Tint::dim:
        sgr = "2";
        break;
    case Tint::none:
        break;
    }
    return std::string{"\x1b["} + sgr + "m" + std::string{text} + "\x1b[0m";
}

std::size_t display_width(std::string_view text) noexcept {
    std::size_t n = 0;
    for (const char ch : text) {
        n += (static_cast<unsigned char>(ch) & 0xc0) == 0x80 ? 0 : 1;
    }
    return n;
}

void print_fields(std::FILE* out, const std::vector<std::pair<std::string, std::string>>& fields,
                  bool colour) {
    std::size_t width = 0;
    for (const auto& [label, value] : fields) {
        width = std::max(width, display_width(label));
    }
    for (const auto& [label, value] : fields) {
        const std::string pad(width - display_width(label), ' ');
        std::fprintf(out, "%s%s: %s\n", pad.c_str(), tinted(label, Tint::bold, colour).c_str(),
                     value.c_str());
    }
}

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::add_row(std::vector<std::string> cells, std::vector<Tint> tints) {
    cells.resize(columns_.size());
    tints.resize(columns_.size(), Tint::none);
    rows_.push_back(std::move(cells));
    tints_.push_back(std::move(tints));
}

void Table::print(std::FILE* out, bool no_legend, bool colour) const {
    std::vector<std::size_t> width(columns_.size(), 0);
    for (std::size_t c = 0; c < columns_.size(); ++c) {
        if (!no_legend) {
            width[c] = display_width(columns_[c].header);
        }
        for (const auto& row : rows_) {
            width[c] = std::max(width[c], display_width(row[c]));
        }
    }
    auto line = [&](const std::vector<std::string>& cells, const std::vector<Tint>& tints) {
        std::string text;
        for (std::size_t c = 0; c < cells.size(); ++c) {
            const std::size_t pad = width[c] - display_width(cells[c]);
            const bool last = c + 1 == cells.size();
            if (c > 0) {
                text += "  ";
            }
            if (columns_[c].align == Table::Align::right) {
                text.append(pad, ' ');
                text += tinted(cells[c], tints[c], colour);
            } else {
                text += tinted(cells[c], tints[c], colour);
                if (!last) {
                    text.append(pad, ' ');
                }
            }
        }
        std::fprintf(out, "%s\n", text.c_str());
    };
    if (!no_legend) {
        std::vector<std::string> headers;
        for (const auto& c : columns_) {
            std::string h = c.header;
            std::transform(h.begin(), h.end(), h.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
            headers.push_back(std::move(h));
        }
        line(headers, std::vector<Tint>(columns_.size(), Tint::bold));
    }
    for (std::size_t r = 0; r < rows_.size(); ++r) {
        line(rows_[r], tints_[r]);
    }
}

namespace {
/// "1.5" or "15" or "150": one decimal below 10, none above.
std::string short_number(double v) {
    char buf[32];
    if (v < 9.95) {
        std::snprintf(buf, sizeof buf, "%.1f", v);
        std::string s{buf};
        if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) {
            s.resize(s.size() - 2);
        }
        return s;
    }
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
}
} // namespace

std::string human_bytes(std::uint64_t bytes) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    auto v = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (v >= 1024.0 && unit + 1 < std::size(kUnits)) {
        v /= 1024.0;
        ++unit;
    }
    return (unit == 0 ? std::to_string(bytes) : short_number(v)) + kUnits[unit];
}

std::string human_rate(std::optional<double> per_second) {
    if (!per_second) {
        return "-";
    }
    double v = *per_second < 0 ? 0 : *per_second;
    const char* suffix = "";
    if (v >= 1e9) {
        v /= 1e9;
        suffix = "G";
    } else if (v >= 1e6) {
        v /= 1e6;
        suffix = "M";
    } else if (v >= 1e3) {
        v /= 1e3;
        suffix = "k";
    }
    return short_number(v) + suffix + "/s";
}

std::string human_duration(std::uint64_t ms) {
    char buf[48];
    const std::uint64_t s = ms / 1000;
    if (ms < 1000) {
        std::snprintf(buf, sizeof buf, "%llums", static_cast<unsigned long long>(ms));
    } else if (s < 60) {
        std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(s));
    } else if (s < 3600) {
        std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                      static_cast<unsigned long long>(s % 60));
    } else if (s < 86400) {
        std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                      static_cast<unsigned long long>(s % 3600 / 60));
    } else {
        std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                      static_cast<unsigned long long>(s % 86400 / 3600));
    }
    return buf;
}

std::string local_time(std::int64_t unix_ms) {
    const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    if (::localtime_r(&t, &tm) == nullptr) {
        return "-";
    }
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string escaped_text(std::span<const std::byte> data) {
    std::string out;
    out.reserve(data.size());
    for (const std::byte b : data) {
        const auto c = static_cast<unsigned char>(b);
        if (c == '\\') {
            out += "\\\\";
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

std::string to_hex(std::span<const std::byte> data, bool spaced) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(data.size() * 3);
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (spaced && i > 0) {
            out += ' ';
        }
        const auto c = static_cast<unsigned char>(data[i]);
        out += kDigits[c >> 4];
        out += kDigits[c & 0xf];
    }
    return out;
}

std::optional<std::vector<std::byte>> from_hex(std::string_view text) {
    std::vector<std::byte> out;
    int high = -1;
    for (const char ch : text) {
        if (ch == ' ' || ch == '\t' || ch == ':' || ch == '\n' || ch == '\r') {
            continue;
        }
        int v = -1;
        if (ch >= '0' && ch <= '9') {
            v = ch - '0';
        } else if (ch >= 'a' && ch <= 'f') {
            v = ch - 'a' + 10;
        } else if (ch >= 'A' && ch <= 'F') {
            v = ch - 'A' + 10;
        } else {
            return std::nullopt;
        }
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::byte>((high << 4) | v));
            high = -1;
        }
    }
    if (high >= 0) {
        return std::nullopt;
    }
    return out;
}

std::vector<std::byte> bytes_of(std::string_view text) {
    std::vector<std::byte> out(text.size());
    std::transform(text.begin(), text.end(), out.begin(), [](char c) { return std::byte(c); });
    return out;
}

std::optional<std::vector<std::byte>> bytes_given(std::string_view text, bool hex) {
    if (hex) {
        return from_hex(text);
    }
    return bytes_of(text);
}

} // namespace shmbusctl
