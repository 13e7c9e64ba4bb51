// Reading shmbusd.yaml: YAML text in, a validated Config or a list of ConfigErrors out.
//
// This is the only file of shmbus that includes yaml-cpp. yaml-cpp is used as a tree builder
// only: we walk the node tree ourselves and never call Node::as<T>(), so that each value is
// checked with a message we wrote and a mark we know; a YAML::Exception (syntax errors, or
// anything unexpected) is caught here and becomes a ConfigError. No exception leaves this
// file except std::bad_alloc.
//
// How errors are collected: DocumentReader walks one document and appends to an error list
// instead of stopping, so one run reports everything (only a YAML syntax error ends the reading
// of a document, because yaml-cpp cannot go on after one). A value that fails its check keeps
// the previous (default) value; because any error rejects the whole configuration, such a value
// is never used, it only keeps later checks from reporting follow-on errors.
//
// Marks: yaml-cpp counts lines and columns from 0; ConfigLocation counts from 1. A null value
// (`slot_size:` with nothing after it) carries the mark of whatever token follows it, so errors
// about a missing value point at the key instead.
//
// Merging (main file, then drop-ins): every source is read onto the same Config, so a later
// file overrides exactly the keys it sets, and channels accumulate. Checks that depend on the
// merged result (channel count, total memory, dynamic defaults against their maxima) run once,
// in check_merged(), after the last source.
//
// load_config() and the helpers below it are the only code here that does I/O.
#include "config.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

namespace shmbus::daemon {

namespace {

constexpr std::uint64_t kKiB = std::uint64_t{1} << 10;
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr std::uint64_t kTiB = std::uint64_t{1} << 40;

/// A configuration file larger than this is refused: it is not a hand-written config.
constexpr std::size_t kMaxFileBytes = 4 * kMiB;
/// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPathLength = 107;
/// LOGIN_NAME_MAX on Linux, terminating NUL excluded.
constexpr std::size_t kMaxAccountNameLength = 255;
/// Values echoed in messages are cut after this many bytes.
constexpr std::size_t kMaxEchoLength = 64;

// ---------------------------------------------------------------------------------------------
// Text helpers

/// `text` in single quotes for a message: control bytes escaped, cut after kMaxEchoLength
/// bytes (on a UTF-8 character boundary), so that a hostile file cannot mangle a terminal.
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

char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

/// Optimal-string-alignment distance (Levenshtein plus swaps of neighbours), ignoring case:
/// "slot_sise" -> "slot_size" is 1, "kidn" -> "kind" is 1.
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

/// The candidate `word` was most likely meant to be, if any is close enough: within an edit
/// distance of a third of its length (at least 1, at most 3), or, failing that, a candidate
/// that `word` (3+ characters) abbreviates ("warn" -> "warning").
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

/// "a, b or c"
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

/// 1073741824 -> "1 GiB", 1536 -> "1536 B": exact binary units only, so that no rounding hides
/// the value that was rejected.
std::string format_size(std::uint64_t bytes) {
    struct Unit {
        std::uint64_t size;
        std::string_view name;
    };
    constexpr std::array<Unit, 4> kUnits{
        {{kTiB, "TiB"}, {kGiB, "GiB"}, {kMiB, "MiB"}, {kKiB, "KiB"}}};
    for (const Unit& unit : kUnits) {
        if (bytes >= unit.size && bytes % unit.size == 0) {
            return std::to_string(bytes / unit.size) + " " + std::string(unit.name);
        }
    }
    return std::to_string(bytes) + " B";
}

bool is_power_of_two(std::uint64_t n) noexcept {
    return n != 0 && (n & (n - 1)) == 0;
}

// ---------------------------------------------------------------------------------------------
// Numbers and sizes

enum class NumberStatus { ok, not_a_number, negative, too_large, unknown_unit };

struct Number {
    NumberStatus status{NumberStatus::not_a_number};
    std::uint64_t value{0};
    std::string_view unit; ///< the unit as written, for NumberStatus::unknown_unit
};

bool all_digits(std::string_view text) noexcept {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// A plain decimal integer: "4096". No sign, no hex, no separators.
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

/// A size in bytes: "4096", "4096B", "4KiB", "4 KiB", "1MiB", "1GiB", "1TiB" (units ignore
/// case). Decimal units (kB, MB) are refused rather than guessed.
Number parse_size(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        ++digits;
    }
    std::string_view unit = text.substr(digits);
    while (!unit.empty() && unit.front() == ' ') {
        unit.remove_prefix(1);
    }
    Number number = parse_integer(text.substr(0, digits));
    if (digits == 0 || number.status != NumberStatus::ok) {
        return digits == 0 ? parse_integer(text) : number;
    }
    if (unit.empty()) {
        return number;
    }
    if (!std::all_of(unit.begin(), unit.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); })) {
        return {NumberStatus::not_a_number, 0, {}};
    }
    struct Unit {
        std::string_view name;
        std::uint64_t size;
    };
    constexpr std::array<Unit, 5> kUnits{
        {{"B", 1}, {"KiB", kKiB}, {"MiB", kMiB}, {"GiB", kGiB}, {"TiB", kTiB}}};
    for (const Unit& u : kUnits) {
        if (equal_ignoring_case(unit, u.name)) {
            if (number.value > UINT64_MAX / u.size) {
                return {NumberStatus::too_large, 0, {}};
            }
            return {NumberStatus::ok, number.value * u.size, {}};
        }
    }
    return {NumberStatus::unknown_unit, number.value, unit};
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

/// Allowed values of an integer setting.
struct Range {
    std::uint64_t min;
    std::uint64_t max;
    bool bytes; ///< a size: accepts units, and messages show sizes
};

constexpr Range kSlotSizeRange{1, kMaxSlotSize, true};
constexpr Range kSlotCountRange{2, kMaxSlotCount, false};
constexpr Range kEndpointRange{1, kMaxEndpoints, false};
constexpr Range kClientCountRange{1, 65536, false};
constexpr Range kChannelCountRange{1, 65536, false};
constexpr Range kTotalBytesRange{64 * kKiB, kTiB, true};
constexpr Range kOpenChannelsRange{1, 65536, false};
constexpr Range kInflightRange{1, 4096, false};
constexpr Range kDynamicPerClientRange{0, 65536, false};

// ---------------------------------------------------------------------------------------------
// The keys each mapping accepts

constexpr std::array<std::string_view, 4> kTopKeys{"daemon", "limits", "dynamic_channels",
                                                   "channels"};
constexpr std::array<std::string_view, 4> kDaemonKeys{"socket", "state_directory", "log_level",
                                                      "admin"};
constexpr std::array<std::string_view, 2> kAccessKeys{"users", "groups"};
constexpr std::array<std::string_view, 4> kLimitKeys{"max_clients", "max_channels",
                                                     "max_total_segment_bytes", "per_client"};
constexpr std::array<std::string_view, 3> kClientLimitKeys{
    "max_open_channels", "max_inflight_requests", "max_dynamic_channels"};
constexpr std::array<std::string_view, 6> kDynamicKeys{
    "allowed", "users", "groups", "defaults", "max_slot_size", "max_slot_count"};
constexpr std::array<std::string_view, 6> kSpecKeys{
    "kind", "slot_size", "slot_count", "overflow", "max_publishers", "max_subscribers"};
constexpr std::array<std::string_view, 8> kChannelKeys{
    "name",     "kind",           "slot_size",       "slot_count",
    "overflow", "max_publishers", "max_subscribers", "acl"};
constexpr std::array<std::string_view, 2> kAclKeys{"publish", "subscribe"};

constexpr std::array<std::string_view, 2> kKindNames{"queue", "broadcast"};
constexpr std::array<ChannelKind, 2> kKinds{ChannelKind::queue, ChannelKind::broadcast};
constexpr std::array<std::string_view, 2> kOverflowNames{"block", "drop"};
constexpr std::array<Overflow, 2> kOverflows{Overflow::block, Overflow::drop};
constexpr std::array<std::string_view, 5> kLogLevelNames{"trace", "debug", "info", "warning",
                                                         "error"};
constexpr std::array<LogLevel, 5> kLogLevels{LogLevel::trace, LogLevel::debug, LogLevel::info,
                                             LogLevel::warning, LogLevel::error};

/// Whether `name` may name a channel: 1..kMaxNameLength bytes of [A-Za-z0-9_.:/-]. Returns the
/// offending character's offset, or npos if the name is fine (length is checked separately).
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

/// Whether `name` may be a user or group name: what shadow-utils and common NSS back ends
/// accept ([A-Za-z0-9_.@-], not starting with '-', an optional final '$' for machine accounts).
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

/// "a list", "a mapping", "the value 'x'": what was found where something else was expected.
std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Scalar:
        return "the value " + quote(node.Scalar());
    default:
        return "nothing";
    }
}

// ---------------------------------------------------------------------------------------------
// DocumentReader: one YAML document onto a Config

/// State shared by the readers of all sources of one parse.
struct MergeState {
    Config config;
    std::vector<ConfigError> errors;
    /// Settings whose value the merged checks need to know were written, not defaulted.
    bool dynamic_subscribers_set{false};
};

/// One key of a mapping, after the duplicate and unknown-key checks.
struct Entry {
    std::string_view name; ///< one of the known keys (static storage)
    YAML::Node key;
    YAML::Node value;
};

/// What read_spec_field() saw of one channel (or of the dynamic defaults).
struct SpecSeen {
    bool kind{false};
    bool subscribers{false};
    std::optional<ConfigLocation> overflow_drop; ///< where `overflow: drop` was written
};

class DocumentReader {
public:
    DocumentReader(std::string origin, MergeState& state)
        : origin_{std::move(origin)}, state_{state}, config_{state.config} {}

    void read(const YAML::Node& root) {
        if (root.IsNull()) {
            return; // an empty file, or only comments: all defaults
        }
        if (!root.IsMap()) {
            error(at(root.Mark()), "the top level must be a mapping of sections (" +
                                       join_choices(kTopKeys, " and ") + "), not " +
                                       describe(root));
            return;
        }
        for (const Entry& e : entries(root, kTopKeys)) {
            if (e.name == "daemon") {
                read_daemon(e);
            } else if (e.name == "limits") {
                read_limits(e);
            } else if (e.name == "dynamic_channels") {
                read_dynamic(e);
            } else if (e.name == "channels") {
                read_channels(e);
            }
        }
    }

    /// Reports a problem at `where`.
    void error(ConfigLocation where, std::string message) {
        state_.errors.push_back(
            ConfigError{std::move(where.file), where.line, where.column, std::move(message)});
    }

    /// A yaml-cpp mark as a 1-based location in this source.
    [[nodiscard]] ConfigLocation at(const YAML::Mark& mark) const {
        if (mark.is_null() || mark.line < 0 || mark.column < 0) {
            return ConfigLocation{origin_, 0, 0};
        }
        return ConfigLocation{origin_, static_cast<std::uint32_t>(mark.line) + 1,
                              static_cast<std::uint32_t>(mark.column) + 1};
    }

private:
    /// Where to point at a value: the value itself, or its key when it is empty (a null value
    /// carries the mark of the token after it).
    [[nodiscard]] ConfigLocation value_at(const Entry& e) const {
        return at(e.value.IsNull() ? e.key.Mark() : e.value.Mark());
    }

    [[nodiscard]] static std::string key_name(const Entry& e) {
        return "'" + std::string(e.name) + "'";
    }

    void record(std::string dotted, const Entry& e) {
        config_.set_at.insert_or_assign(std::move(dotted), value_at(e));
    }

    /// "(first given at line 3, column 5)" for a place in this file, else with the file name.
    [[nodiscard]] std::string other_place(const ConfigLocation& where) const {
        if (where.file == origin_) {
            return "line " + std::to_string(where.line) + ", column " +
                   std::to_string(where.column);
        }
        return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
    }

    /// The entries of mapping `map` with known keys, in file order. Reports keys that are not
    /// plain names, unknown keys (with a suggestion) and keys given twice; those are left out.
    /// The keys suggested for unknown ones are added to `suggested`, if given, so that a caller
    /// does not report a misspelt required key a second time as missing.
    std::vector<Entry> entries(const YAML::Node& map, std::span<const std::string_view> known,
                               std::vector<std::string_view>* suggested = nullptr) {
        std::vector<Entry> out;
        std::map<std::string, ConfigLocation, std::less<>> seen;
        for (const auto& pair : map) {
            const YAML::Node& key = pair.first;
            if (!key.IsScalar()) {
                error(at(key.IsNull() ? pair.second.Mark() : key.Mark()),
                      "a key must be a name, not " + describe(key));
                continue;
            }
            const std::string& text = key.Scalar();
            const ConfigLocation where = at(key.Mark());
            if (const auto first = seen.find(text); first != seen.end()) {
                error(where, "duplicate key " + quote(text) + " (first given at " +
                                 other_place(first->second) + ")");
                continue;
            }
            seen.emplace(text, where);
            const auto match = std::find(known.begin(), known.end(), text);
            if (match == known.end()) {
                std::string message = "unknown key " + quote(text);
                if (const auto suggestion = closest_match(text, known)) {
                    message += " (did you mean '" + std::string(*suggestion) + "'?)";
                    if (suggested != nullptr) {
                        suggested->push_back(*suggestion);
                    }
                } else {
                    message += " (expected " + join_choices(known, " or ") + ")";
                }
                error(where, std::move(message));
                continue;
            }
            out.push_back(Entry{*match, key, pair.second});
        }
        return out;
    }

    /// The entries of the mapping under `e`; none (after an error) if it is not a mapping.
    /// An empty value (`limits:` alone) is an empty mapping.
    std::vector<Entry> sub_entries(const Entry& e, std::span<const std::string_view> known) {
        if (e.value.IsNull()) {
            return {};
        }
        if (!e.value.IsMap()) {
            error(value_at(e),
                  key_name(e) + " must be a mapping of settings, not " + describe(e.value));
            return {};
        }
        return entries(e.value, known);
    }

    /// The text of scalar `e`, or nothing (after an error) if it is empty or not a scalar.
    std::optional<std::string> scalar(const Entry& e, std::string_view expected) {
        if (e.value.IsNull()) {
            error(value_at(e), key_name(e) + " needs a value (" + std::string(expected) + ")");
            return std::nullopt;
        }
        if (!e.value.IsScalar()) {
            error(value_at(e),
                  key_name(e) + " must be " + std::string(expected) + ", not " + describe(e.value));
            return std::nullopt;
        }
        return e.value.Scalar();
    }

    std::optional<std::uint64_t> read_number(const Entry& e, const Range& range) {
        const std::string_view expected =
            range.bytes ? "a size in bytes, such as 4096 or 4KiB" : "a whole number";
        const auto text = scalar(e, expected);
        if (!text) {
            return std::nullopt;
        }
        const Number number = range.bytes ? parse_size(*text) : parse_integer(*text);
        const auto bound = [&](std::uint64_t v) {
            return range.bytes ? format_size(v) : std::to_string(v);
        };
        const std::string allowed =
            "must be between " + bound(range.min) + " and " + bound(range.max);
        switch (number.status) {
        case NumberStatus::ok:
            if (number.value < range.min || number.value > range.max) {
                error(value_at(e), key_name(e) + " " + allowed + ", got " + bound(number.value));
                return std::nullopt;
            }
            return number.value;
        case NumberStatus::negative:
        case NumberStatus::too_large:
            error(value_at(e), key_name(e) + " " + allowed + ", got " + quote(*text));
            return std::nullopt;
        case NumberStatus::unknown_unit: {
            std::string message = key_name(e) + " has an unknown unit " + quote(number.unit);
            if (const auto unit = binary_unit_for(number.unit)) {
                message +=
                    " (did you mean '" + std::to_string(number.value) + std::string(*unit) + "'?)";
            }
            error(value_at(e), message + "; sizes use B, KiB, MiB, GiB or TiB");
            return std::nullopt;
        }
        case NumberStatus::not_a_number:
            break;
        }
        error(value_at(e),
              key_name(e) + " must be " + std::string(expected) + ", got " + quote(*text));
        return std::nullopt;
    }

    std::optional<std::uint32_t> read_u32(const Entry& e, const Range& range) {
        const auto value = read_number(e, range);
        return value ? std::optional<std::uint32_t>{static_cast<std::uint32_t>(*value)}
                     : std::nullopt;
    }

    /// A slot count: in range and a power of two.
    std::optional<std::uint64_t> read_slot_count(const Entry& e) {
        const auto value = read_number(e, kSlotCountRange);
        if (value && !is_power_of_two(*value)) {
            const std::uint64_t below = std::uint64_t{1} << (63 - __builtin_clzll(*value));
            error(value_at(e), key_name(e) + " must be a power of two, got " +
                                   std::to_string(*value) + " (nearest: " + std::to_string(below) +
                                   " or " + std::to_string(below * 2) + ")");
            return std::nullopt;
        }
        return value;
    }

    std::optional<bool> read_bool(const Entry& e) {
        const auto text = scalar(e, "true or false");
        if (!text) {
            return std::nullopt;
        }
        if (equal_ignoring_case(*text, "true")) {
            return true;
        }
        if (equal_ignoring_case(*text, "false")) {
            return false;
        }
        error(value_at(e), key_name(e) + " must be true or false, got " + quote(*text));
        return std::nullopt;
    }

    /// One of `names` (exact spelling); its index.
    std::optional<std::size_t> read_choice(const Entry& e, std::string_view what,
                                           std::span<const std::string_view> names) {
        const std::string expected = join_choices(names, " or ");
        const auto text = scalar(e, expected);
        if (!text) {
            return std::nullopt;
        }
        const auto match = std::find(names.begin(), names.end(), *text);
        if (match != names.end()) {
            return static_cast<std::size_t>(match - names.begin());
        }
        std::string message = "unknown " + std::string(what) + " " + quote(*text);
        if (const auto suggestion = closest_match(*text, names)) {
            message += " (did you mean '" + std::string(*suggestion) + "'?)";
        } else {
            message += " (expected " + expected + ")";
        }
        error(value_at(e), std::move(message));
        return std::nullopt;
    }

    std::optional<std::filesystem::path> read_absolute_path(const Entry& e) {
        const auto text = scalar(e, "an absolute path");
        if (!text) {
            return std::nullopt;
        }
        if (text->empty() || text->front() != '/') {
            error(value_at(e), key_name(e) + " must be an absolute path, got " + quote(*text));
            return std::nullopt;
        }
        if (text->find('\0') != std::string::npos) {
            error(value_at(e), key_name(e) + " must not contain a NUL byte");
            return std::nullopt;
        }
        return std::filesystem::path(*text);
    }

    /// `users:` or `groups:` (a list of names or numeric ids) into `list`, replacing it.
    void read_accounts(const Entry& e, AccessList& list, bool users) {
        std::vector<AccountRef>& out = users ? list.users : list.groups;
        out.clear();
        if (users) {
            list.anyone = false;
        }
        const std::string_view noun = users ? "user" : "group";
        if (e.value.IsNull()) {
            return;
        }
        if (!e.value.IsSequence()) {
            error(value_at(e), key_name(e) + " must be a list of " + std::string(noun) +
                                   " names, such as [alice, 1001], not " + describe(e.value));
            return;
        }
        for (const YAML::Node& item : e.value) {
            const ConfigLocation where = at(item.Mark());
            if (!item.IsScalar()) {
                error(item.IsNull() ? value_at(e) : where,
                      "each entry of " + key_name(e) + " must be a " + std::string(noun) +
                          " name or id, not " + describe(item));
                continue;
            }
            const std::string& text = item.Scalar();
            if (text == "*") {
                if (users) {
                    list.anyone = true;
                } else {
                    error(where, "'*' (everyone) is only valid in 'users'");
                }
                continue;
            }
            if (all_digits(text)) {
                const Number number = parse_integer(text);
                // (uid_t)-1 means "no change" to the kernel's chown(): not a usable id.
                if (number.status != NumberStatus::ok || number.value >= UINT32_MAX) {
                    error(where, std::string(noun) + " id " + quote(text) +
                                     " is out of range (0 to 4294967294)");
                    continue;
                }
                out.push_back(AccountRef{text, static_cast<std::uint32_t>(number.value), where});
                continue;
            }
            if (!valid_account_name(text)) {
                error(where, "invalid " + std::string(noun) + " name " + quote(text) +
                                 ": use letters, digits, '_', '.', '@', '-' (not first) and a "
                                 "final '$'");
                continue;
            }
            out.push_back(AccountRef{text, std::nullopt, where});
        }
    }

    /// The keys of a mapping with `users:` and `groups:` into `list`; `dotted` prefixes set_at.
    void read_access_entry(const Entry& e, AccessList& list, const std::string& dotted) {
        if (e.name == "users") {
            read_accounts(e, list, true);
        } else {
            read_accounts(e, list, false);
        }
        if (!dotted.empty()) {
            record(dotted + "." + std::string(e.name), e);
        }
    }

    void read_daemon(const Entry& section) {
        for (const Entry& e : sub_entries(section, kDaemonKeys)) {
            if (e.name == "socket") {
                if (auto path = read_absolute_path(e)) {
                    if (path->native().size() > kMaxSocketPathLength) {
                        error(value_at(e), "'socket' is " + std::to_string(path->native().size()) +
                                               " bytes long; a Unix socket path holds at most " +
                                               std::to_string(kMaxSocketPathLength));
                    } else {
                        config_.socket_path = std::move(*path);
                    }
                }
            } else if (e.name == "state_directory") {
                if (auto path = read_absolute_path(e)) {
                    config_.state_directory = std::move(*path);
                }
            } else if (e.name == "log_level") {
                if (const auto index = read_choice(e, "log level", kLogLevelNames)) {
                    config_.log_level = kLogLevels[*index];
                }
            } else if (e.name == "admin") {
                for (const Entry& a : sub_entries(e, kAccessKeys)) {
                    read_access_entry(a, config_.admins, "daemon.admin");
                }
                continue; // recorded per list
            }
            record("daemon." + std::string(e.name), e);
        }
    }

    void read_limits(const Entry& section) {
        Limits& limits = config_.limits;
        for (const Entry& e : sub_entries(section, kLimitKeys)) {
            if (e.name == "max_clients") {
                limits.max_clients = read_u32(e, kClientCountRange).value_or(limits.max_clients);
            } else if (e.name == "max_channels") {
                limits.max_channels = read_u32(e, kChannelCountRange).value_or(limits.max_channels);
            } else if (e.name == "max_total_segment_bytes") {
                limits.max_total_segment_bytes =
                    read_number(e, kTotalBytesRange).value_or(limits.max_total_segment_bytes);
            } else if (e.name == "per_client") {
                read_client_limits(e);
                continue;
            }
            record("limits." + std::string(e.name), e);
        }
    }

    void read_client_limits(const Entry& section) {
        ClientLimits& limits = config_.limits.per_client;
        for (const Entry& e : sub_entries(section, kClientLimitKeys)) {
            if (e.name == "max_open_channels") {
                limits.max_open_channels =
                    read_u32(e, kOpenChannelsRange).value_or(limits.max_open_channels);
            } else if (e.name == "max_inflight_requests") {
                limits.max_inflight_requests =
                    read_u32(e, kInflightRange).value_or(limits.max_inflight_requests);
            } else if (e.name == "max_dynamic_channels") {
                limits.max_dynamic_channels =
                    read_u32(e, kDynamicPerClientRange).value_or(limits.max_dynamic_channels);
            }
            record("limits.per_client." + std::string(e.name), e);
        }
    }

    void read_dynamic(const Entry& section) {
        DynamicChannelPolicy& policy = config_.dynamic_channels;
        for (const Entry& e : sub_entries(section, kDynamicKeys)) {
            if (e.name == "allowed") {
                policy.allowed = read_bool(e).value_or(policy.allowed);
            } else if (e.name == "users" || e.name == "groups") {
                read_access_entry(e, policy.creators, "dynamic_channels");
                continue;
            } else if (e.name == "defaults") {
                SpecSeen seen;
                for (const Entry& d : sub_entries(e, kSpecKeys)) {
                    read_spec_field(d, policy.defaults, seen);
                    record("dynamic_channels.defaults." + std::string(d.name), d);
                }
                state_.dynamic_subscribers_set = state_.dynamic_subscribers_set || seen.subscribers;
                continue;
            } else if (e.name == "max_slot_size") {
                policy.max_slot_size =
                    read_number(e, kSlotSizeRange).value_or(policy.max_slot_size);
            } else if (e.name == "max_slot_count") {
                policy.max_slot_count =
                    read_number(e, kSlotCountRange).value_or(policy.max_slot_count);
            }
            record("dynamic_channels." + std::string(e.name), e);
        }
    }

    /// One of the kSpecKeys into `spec`.
    void read_spec_field(const Entry& e, ChannelSpec& spec, SpecSeen& seen) {
        if (e.name == "kind") {
            seen.kind = true;
            if (const auto index = read_choice(e, "channel kind", kKindNames)) {
                spec.kind = kKinds[*index];
            }
        } else if (e.name == "slot_size") {
            spec.slot_size = read_number(e, kSlotSizeRange).value_or(spec.slot_size);
        } else if (e.name == "slot_count") {
            spec.slot_count = read_slot_count(e).value_or(spec.slot_count);
        } else if (e.name == "overflow") {
            if (const auto index = read_choice(e, "overflow policy", kOverflowNames)) {
                spec.overflow = kOverflows[*index];
                if (spec.overflow == Overflow::drop) {
                    seen.overflow_drop = value_at(e);
                }
            }
        } else if (e.name == "max_publishers") {
            spec.max_publishers = read_u32(e, kEndpointRange).value_or(spec.max_publishers);
        } else if (e.name == "max_subscribers") {
            seen.subscribers = true;
            spec.max_subscribers = read_u32(e, kEndpointRange).value_or(spec.max_subscribers);
        }
    }

    void read_channels(const Entry& section) {
        if (section.value.IsNull()) {
            return;
        }
        if (!section.value.IsSequence()) {
            error(value_at(section), "'channels' must be a list of channels (lines starting with "
                                     "'- name:'), not " +
                                         describe(section.value));
            return;
        }
        for (const YAML::Node& item : section.value) {
            read_channel(item, section);
        }
    }

    void read_channel(const YAML::Node& item, const Entry& section) {
        if (!item.IsMap()) {
            error(item.IsNull() ? value_at(section) : at(item.Mark()),
                  "each entry of 'channels' must be a mapping with at least 'name' and 'kind', "
                  "not " +
                      describe(item));
            return;
        }
        ChannelConfig channel;
        SpecSeen seen;
        bool name_ok = false;
        std::vector<std::string_view> suggested;
        for (const Entry& e : entries(item, kChannelKeys, &suggested)) {
            if (e.name == "name") {
                channel.where = value_at(e);
                name_ok = read_channel_name(e, channel.spec.name);
            } else if (e.name == "acl") {
                read_acl(e, channel.acl);
            } else {
                read_spec_field(e, channel.spec, seen);
            }
        }
        const ConfigLocation item_at = at(item.Mark());
        const auto misspelt = [&](std::string_view key) {
            return std::find(suggested.begin(), suggested.end(), key) != suggested.end();
        };
        if (channel.where.line == 0 && !misspelt("name")) {
            error(item_at, "channel has no 'name'");
        }
        if (!seen.kind && !misspelt("kind")) {
            error(item_at, "channel" + (name_ok ? " " + quote(channel.spec.name) : std::string{}) +
                               " has no 'kind' (expected queue or broadcast)");
        }
        if (seen.overflow_drop && seen.kind && channel.spec.kind == ChannelKind::queue) {
            error(*seen.overflow_drop, "overflow 'drop' is only valid on a broadcast channel; a "
                                       "queue always blocks");
        }
        if (!seen.subscribers && channel.spec.kind == ChannelKind::broadcast) {
            channel.spec.max_subscribers = kDefaultBroadcastSubscribers;
        }
        if (!name_ok) {
            return;
        }
        for (const ChannelConfig& earlier : config_.channels) {
            if (earlier.spec.name == channel.spec.name) {
                error(channel.where, "duplicate channel name " + quote(channel.spec.name) +
                                         " (first defined at " + other_place(earlier.where) + ")");
                return;
            }
        }
        config_.channels.push_back(std::move(channel));
    }

    bool read_channel_name(const Entry& e, std::string& name) {
        const auto text = scalar(e, "a channel name");
        if (!text) {
            return false;
        }
        if (text->empty()) {
            error(value_at(e), "channel name must not be empty");
            return false;
        }
        if (text->size() > kMaxNameLength) {
            error(value_at(e), "channel name " + quote(*text) + " is " +
                                   std::to_string(text->size()) + " bytes long; the limit is " +
                                   std::to_string(kMaxNameLength));
            return false;
        }
        if (const std::size_t bad = bad_channel_name_char(*text); bad != std::string::npos) {
            error(value_at(e), "invalid channel name " + quote(*text) + ": " +
                                   quote(text->substr(bad, 1)) +
                                   " is not allowed (use letters, digits and _ . : / -)");
            return false;
        }
        name = *text;
        return true;
    }

    void read_acl(const Entry& section, ChannelAcl& acl) {
        for (const Entry& e : sub_entries(section, kAclKeys)) {
            AccessList& list = e.name == "publish" ? acl.publish : acl.subscribe;
            for (const Entry& a : sub_entries(e, kAccessKeys)) {
                read_access_entry(a, list, {});
            }
        }
    }

    std::string origin_;
    MergeState& state_;
    Config& config_;
};

/// A first pass over a YAML stream's events, before building any node tree, for two things
/// YAML::LoadAll() gets wrong in yaml-cpp 0.7 (Debian bookworm):
///  - a stray ',' outside a flow collection (", x", "{a: 1}, x") is never consumed: the parser
///    reports an empty document at the same place again and again, and LoadAll() loops for
///    ever, allocating a node each time (jbeder/yaml-cpp#1040, fixed upstream in 2024 by
///    #1319). A document that starts where the previous one started is that loop: we stop and
///    report it. Termination: every other document starts further on in a finite text.
///  - a second document, which a configuration file must not have (only the first would be
///    read).
class StreamScan final : public YAML::EventHandler {
public:
    /// Where the parser stopped making progress, if it did.
    std::optional<YAML::Mark> stuck;
    /// Where the first document after the first one with any content starts, if there is one.
    std::optional<YAML::Mark> second_document;

    /// Scans `text`. Throws YAML::Exception on a syntax error.
    void scan(const std::string& text) {
        std::istringstream stream(text);
        YAML::Parser parser(stream);
        while (!stuck && !second_document && parser.HandleNextDocument(*this)) {
        }
    }

    void OnDocumentStart(const YAML::Mark& mark) override {
        if (documents_ > 0 && mark.pos == last_start_.pos) {
            stuck = mark;
        }
        last_start_ = mark;
        ++documents_;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override { content(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  const std::string& /*value*/) override {
        content(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/,
                         YAML::anchor_t /*anchor*/, YAML::EmitterStyle::value /*style*/) override {
        content(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                    YAML::EmitterStyle::value /*style*/) override {
        content(mark);
    }
    void OnMapEnd() override {}

private:
    void content(const YAML::Mark& mark) {
        if (documents_ > 1 && !second_document) {
            second_document = mark;
        }
    }

    std::size_t documents_{0};
    YAML::Mark last_start_;
};

/// Reads one source onto `state`. A YAML syntax error ends this source only.
void read_source(const ConfigSource& source, MergeState& state) {
    DocumentReader reader(source.origin, state);
    if (const std::size_t nul = source.text.find('\0'); nul != std::string::npos) {
        // yaml-cpp would take a NUL byte as a sign of UTF-16 and read garbage.
        const std::string_view before = std::string_view(source.text).substr(0, nul);
        const std::size_t line =
            static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
        const std::size_t line_start = before.rfind('\n');
        const std::size_t column =
            line_start == std::string_view::npos ? nul : nul - line_start - 1;
        reader.error(ConfigLocation{source.origin, static_cast<std::uint32_t>(line + 1),
                                    static_cast<std::uint32_t>(column + 1)},
                     "a NUL byte is not allowed; a configuration file is UTF-8 text");
        return;
    }
    try {
        StreamScan scan;
        scan.scan(source.text);
        if (scan.stuck) {
            const auto pos = static_cast<std::size_t>(std::max(scan.stuck->pos, 0));
            reader.error(reader.at(*scan.stuck),
                         "unexpected " + quote(std::string_view(source.text).substr(pos, 1)));
            return;
        }
        if (scan.second_document) {
            reader.error(reader.at(*scan.second_document),
                         "a configuration file holds one YAML document; remove this second one "
                         "or move it to its own file");
        }
        // Load() builds the first document only: never the LoadAll() loop described above.
        reader.read(YAML::Load(source.text));
    } catch (const YAML::Exception& e) {
        reader.error(reader.at(e.mark), e.msg.empty() ? std::string{"invalid YAML"} : e.msg);
    }
}

/// Where dotted setting `key` was set; else where `fallback` was set; else the first source.
ConfigLocation where_set(const Config& config, std::string_view key, std::string_view fallback,
                         std::span<const ConfigSource> sources) {
    for (const std::string_view k : {key, fallback}) {
        if (const auto it = config.set_at.find(k); it != config.set_at.end()) {
            return it->second;
        }
    }
    return ConfigLocation{sources.empty() ? std::string{} : sources.front().origin, 0, 0};
}

/// The checks that need the merged configuration of all sources.
void check_merged(MergeState& state, std::span<const ConfigSource> sources) {
    Config& config = state.config;
    const auto report = [&](ConfigLocation where, std::string message) {
        state.errors.push_back(
            ConfigError{std::move(where.file), where.line, where.column, std::move(message)});
    };

    DynamicChannelPolicy& dynamic = config.dynamic_channels;
    if (dynamic.defaults.kind == ChannelKind::queue &&
        dynamic.defaults.overflow == Overflow::drop) {
        report(where_set(config, "dynamic_channels.defaults.overflow",
                         "dynamic_channels.defaults.kind", sources),
               "overflow 'drop' is only valid on a broadcast channel; the default kind of dynamic "
               "channels is queue");
    }
    if (!state.dynamic_subscribers_set && dynamic.defaults.kind == ChannelKind::broadcast) {
        dynamic.defaults.max_subscribers = kDefaultBroadcastSubscribers;
    }
    if (dynamic.defaults.slot_size > dynamic.max_slot_size) {
        report(where_set(config, "dynamic_channels.defaults.slot_size",
                         "dynamic_channels.max_slot_size", sources),
               "the default slot_size of dynamic channels (" +
                   format_size(dynamic.defaults.slot_size) + ") is larger than 'max_slot_size' (" +
                   format_size(dynamic.max_slot_size) + ")");
    }
    if (dynamic.defaults.slot_count > dynamic.max_slot_count) {
        report(where_set(config, "dynamic_channels.defaults.slot_count",
                         "dynamic_channels.max_slot_count", sources),
               "the default slot_count of dynamic channels (" +
                   std::to_string(dynamic.defaults.slot_count) +
                   ") is larger than 'max_slot_count' (" + std::to_string(dynamic.max_slot_count) +
                   ")");
    }

    if (config.channels.size() > config.limits.max_channels) {
        const ChannelConfig& first_extra = config.channels[config.limits.max_channels];
        report(first_extra.where, "too many channels: 'limits.max_channels' is " +
                                      std::to_string(config.limits.max_channels) +
                                      " and this is channel number " +
                                      std::to_string(config.limits.max_channels + 1));
    }

    // Slots alone, a lower bound of what the segments reserve. No overflow: each term is at
    // most 2^54 and the sum stops at the first one past max_total_segment_bytes (<= 2^40).
    std::uint64_t total = 0;
    for (const ChannelConfig& channel : config.channels) {
        total += channel.spec.slot_size * channel.spec.slot_count;
        if (total > config.limits.max_total_segment_bytes) {
            report(channel.where, "the channels up to " + quote(channel.spec.name) +
                                      " need at least " + format_size(total) +
                                      " of shared memory for their slots, more than "
                                      "'limits.max_total_segment_bytes' (" +
                                      format_size(config.limits.max_total_segment_bytes) + ")");
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// I/O: files and the account databases

struct FileCloser {
    void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};

std::string errno_text(int error) {
    return std::system_category().message(error);
}

/// The whole of file `path`. Errc::not_found if it does not exist.
Result<std::string> read_text_file(const std::filesystem::path& path) {
    // "e": O_CLOEXEC, so that a reload in a running daemon leaks nothing into children.
    const std::unique_ptr<std::FILE, FileCloser> file{std::fopen(path.c_str(), "rbe")};
    if (!file) {
        const int error = errno;
        return make_error(error == ENOENT ? Errc::not_found : Errc::system_error,
                          "cannot open: " + errno_text(error), error);
    }
    struct stat info {};
    if (::fstat(::fileno(file.get()), &info) != 0) {
        const int error = errno;
        return make_error(Errc::system_error, "cannot stat: " + errno_text(error), error);
    }
    if (!S_ISREG(info.st_mode)) {
        return make_error(Errc::invalid_argument, "not a regular file");
    }
    std::string text;
    std::array<char, 8192> buffer{};
    for (;;) {
        const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
        text.append(buffer.data(), n);
        if (text.size() > kMaxFileBytes) {
            return make_error(Errc::limit_reached, "larger than " + format_size(kMaxFileBytes) +
                                                       "; is this a configuration file?");
        }
        if (n < buffer.size()) {
            if (std::ferror(file.get()) != 0) {
                const int error = errno;
                return make_error(Errc::system_error, "cannot read: " + errno_text(error), error);
            }
            return text;
        }
    }
}

/// getpwnam_r and getgrnam_r share this shape: retry with a larger buffer on ERANGE; ENOENT,
/// ESRCH, EBADF and EPERM mean "no such name" (see getpwnam(3)).
template <typename Record, typename Lookup, typename Id>
Result<std::optional<std::uint32_t>> lookup_account(const std::string& name, Lookup lookup,
                                                    Id id_of, std::string_view noun) {
    std::vector<char> buffer(1024);
    for (;;) {
        Record entry{};
        Record* found = nullptr;
        const int rc = lookup(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (rc == ERANGE && buffer.size() < (std::size_t{1} << 20)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (found != nullptr) {
            return std::optional<std::uint32_t>{id_of(*found)};
        }
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) {
            return std::optional<std::uint32_t>{};
        }
        return make_error(
            Errc::system_error,
            "cannot look up " + std::string(noun) + " " + quote(name) + ": " + errno_text(rc), rc);
    }
}

} // namespace

std::string to_string(const ConfigError& error) {
    std::string out = error.file;
    if (error.line != 0) {
        out += ":" + std::to_string(error.line) + ":" + std::to_string(error.column);
    }
    return out + ": error: " + error.message;
}

std::string_view to_string(LogLevel level) noexcept {
    for (std::size_t i = 0; i < kLogLevels.size(); ++i) {
        if (kLogLevels[i] == level) {
            return kLogLevelNames[i];
        }
    }
    return "unknown";
}

ParseOutcome parse_config(std::string_view text, std::string_view origin) {
    const std::array<ConfigSource, 1> sources{ConfigSource{std::string(origin), std::string(text)}};
    return parse_config(sources);
}

ParseOutcome parse_config(std::span<const ConfigSource> sources) {
    MergeState state;
    for (const ConfigSource& source : sources) {
        const std::size_t first = state.errors.size();
        read_source(source, state);
        // Within one file, in file order, as a compiler would list them.
        std::stable_sort(state.errors.begin() + static_cast<std::ptrdiff_t>(first),
                         state.errors.end(), [](const ConfigError& a, const ConfigError& b) {
                             return std::pair(a.line, a.column) < std::pair(b.line, b.column);
                         });
    }
    check_merged(state, sources);
    ParseOutcome outcome;
    outcome.errors = std::move(state.errors);
    if (outcome.errors.empty()) {
        outcome.config = std::move(state.config);
    }
    return outcome;
}

AccountResolver system_accounts() {
    return AccountResolver{
        [](const std::string& name) {
            return lookup_account<struct passwd>(
                name, ::getpwnam_r, [](const passwd& p) { return p.pw_uid; }, "user");
        },
        [](const std::string& name) {
            return lookup_account<struct group>(
                name, ::getgrnam_r, [](const group& g) { return g.gr_gid; }, "group");
        },
    };
}

std::vector<ConfigError> resolve_accounts(Config& config, const AccountResolver& resolver) {
    std::vector<ConfigError> errors;
    // One lookup per distinct name: NSS may be a network round trip.
    std::map<std::string, Result<std::optional<std::uint32_t>>, std::less<>> users;
    std::map<std::string, Result<std::optional<std::uint32_t>>, std::less<>> groups;
    const auto resolve = [&](std::vector<AccountRef>& refs, bool user) {
        auto& cache = user ? users : groups;
        const AccountLookup& lookup = user ? resolver.user : resolver.group;
        for (AccountRef& ref : refs) {
            if (ref.id) {
                continue;
            }
            auto it = cache.find(ref.name);
            if (it == cache.end()) {
                it = cache.emplace(ref.name, lookup(ref.name)).first;
            }
            const Result<std::optional<std::uint32_t>>& found = it->second;
            std::string message;
            if (!found) {
                message = found.error().detail;
            } else if (!found.value()) {
                message = std::string(user ? "unknown user " : "unknown group ") + quote(ref.name);
            } else {
                ref.id = *found.value();
                continue;
            }
            errors.push_back(
                ConfigError{ref.where.file, ref.where.line, ref.where.column, std::move(message)});
        }
    };
    const auto resolve_list = [&](AccessList& list) {
        resolve(list.users, true);
        resolve(list.groups, false);
    };
    resolve_list(config.admins);
    resolve_list(config.dynamic_channels.creators);
    for (ChannelConfig& channel : config.channels) {
        resolve_list(channel.acl.publish);
        resolve_list(channel.acl.subscribe);
    }
    return errors;
}

Environment process_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* value = std::getenv(std::string(name).c_str());
        return value != nullptr ? std::optional<std::string>{value} : std::nullopt;
    };
}

Result<ConfigPath> choose_config_path(Instance instance,
                                      const std::optional<std::filesystem::path>& explicit_path,
                                      const Environment& environment) {
    if (explicit_path) {
        return ConfigPath{*explicit_path, true};
    }
    if (instance == Instance::system) {
        return ConfigPath{"/etc/shmbusd/shmbusd.yaml", true};
    }
    // XDG Base Directory: a relative XDG_CONFIG_HOME is invalid and must be ignored.
    const auto absolute = [&](std::string_view name) -> std::optional<std::filesystem::path> {
        auto value = environment(name);
        if (value && !value->empty() && value->front() == '/') {
            return std::filesystem::path(*value);
        }
        return std::nullopt;
    };
    if (const auto config_home = absolute("XDG_CONFIG_HOME")) {
        return ConfigPath{*config_home / "shmbus" / "shmbusd.yaml", false};
    }
    if (const auto home = absolute("HOME")) {
        return ConfigPath{*home / ".config" / "shmbus" / "shmbusd.yaml", false};
    }
    return make_error(Errc::not_found, "cannot find the user configuration: neither "
                                       "XDG_CONFIG_HOME nor HOME is set to an absolute path; "
                                       "use --config FILE");
}

ParseOutcome load_config(const ConfigPath& config) {
    std::vector<ConfigSource> sources;
    std::vector<ConfigError> io_errors;
    const auto io_error = [&](const std::filesystem::path& path, std::string message) {
        io_errors.push_back(ConfigError{path.string(), 0, 0, std::move(message)});
    };

    if (auto text = read_text_file(config.path)) {
        sources.push_back(ConfigSource{config.path.string(), std::move(text.value())});
    } else if (text.code() != Errc::not_found || config.required) {
        io_error(config.path, text.error().detail);
    }

    const std::filesystem::path drop_in_dir = config.path.parent_path() / "conf.d";
    std::error_code ec;
    std::filesystem::directory_iterator it(drop_in_dir, ec);
    std::vector<std::string> names;
    for (; !ec && it != std::filesystem::directory_iterator{}; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        constexpr std::string_view kSuffix = ".yaml";
        if (name.size() <= kSuffix.size() || name.front() == '.' || !name.ends_with(kSuffix)) {
            continue;
        }
        std::error_code type_ec;
        if (it->is_directory(type_ec)) {
            continue;
        }
        names.push_back(name);
    }
    if (ec && ec != std::errc::no_such_file_or_directory) {
        io_error(drop_in_dir, "cannot read directory: " + ec.message());
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
        const std::filesystem::path path = drop_in_dir / name;
        if (auto text = read_text_file(path)) {
            sources.push_back(ConfigSource{path.string(), std::move(text.value())});
        } else {
            io_error(path, text.error().detail);
        }
    }

    ParseOutcome outcome = parse_config(sources);
    if (!io_errors.empty()) {
        outcome.errors.insert(outcome.errors.begin(), io_errors.begin(), io_errors.end());
        outcome.config.reset();
    }
    return outcome;
}

} // namespace shmbus::daemon
