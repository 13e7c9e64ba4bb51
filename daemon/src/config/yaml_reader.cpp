// Reading shmbusd.yaml: one YAML text onto a Config, or ConfigErrors at file:line:column.
//
// With yaml_document.hpp, yaml_channels.cpp and yaml_bridges.cpp (DocumentReader's members by
// subject), these are the only files of shmbus that include yaml-cpp. yaml-cpp is used as a
// tree builder only: we walk the node tree ourselves and never call Node::as<T>(), so that
// each value is checked with a message we wrote and a mark we know; a YAML::Exception (syntax
// errors, or anything unexpected) is caught here and becomes a ConfigError. No exception
// leaves these files except std::bad_alloc. What a value may be (sizes, names, ranges) is
// values.cpp's rule; these files know which key holds which kind of value, and where it was
// written.
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
// Merging: every source of one parse is read onto the same MergeState, so a later file
// overrides exactly the keys it sets, and channels accumulate; the checks that need the merged
// result are load.cpp's. No I/O here.
#include "yaml_reader.hpp"

#include "yaml_document.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <sstream>
#include <utility>

namespace shmbus::daemon {

namespace yaml {

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

void DocumentReader::read(const YAML::Node& root) {
    if (root.IsNull()) {
        return; // an empty file, or only comments: all defaults
    }
    if (!root.IsMap()) {
        error(at(root.Mark()), "the top level must be a mapping of sections (" +
                                   join_choices(kTopKeys, " and ") + "), not " + describe(root));
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
        } else if (e.name == "bridges") {
            read_bridges(e);
        }
    }
}

void DocumentReader::error(ConfigLocation where, std::string message) {
    state_.errors.push_back(
        ConfigError{std::move(where.file), where.line, where.column, std::move(message)});
}

ConfigLocation DocumentReader::at(const YAML::Mark& mark) const {
    if (mark.is_null() || mark.line < 0 || mark.column < 0) {
        return ConfigLocation{origin_, 0, 0};
    }
    return ConfigLocation{origin_, static_cast<std::uint32_t>(mark.line) + 1,
                          static_cast<std::uint32_t>(mark.column) + 1};
}

ConfigLocation DocumentReader::value_at(const Entry& e) const {
    return at(e.value.IsNull() ? e.key.Mark() : e.value.Mark());
}

std::string DocumentReader::key_name(const Entry& e) {
    return "'" + std::string(e.name) + "'";
}

void DocumentReader::record(std::string dotted, const Entry& e) {
    config_.set_at.insert_or_assign(std::move(dotted), value_at(e));
}

std::string DocumentReader::other_place(const ConfigLocation& where) const {
    if (where.file == origin_) {
        return "line " + std::to_string(where.line) + ", column " + std::to_string(where.column);
    }
    return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
}

std::vector<Entry> DocumentReader::entries(const YAML::Node& map,
                                           std::span<const std::string_view> known,
                                           std::vector<std::string_view>* suggested) {
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

std::vector<Entry> DocumentReader::sub_entries(const Entry& e,
                                               std::span<const std::string_view> known) {
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

std::optional<std::string> DocumentReader::scalar(const Entry& e, std::string_view expected) {
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

std::optional<std::uint64_t> DocumentReader::read_number(const Entry& e, const Range& range) {
    const auto text = scalar(e, number_expected(range));
    if (!text) {
        return std::nullopt;
    }
    auto number = check_number(*text, range);
    if (!number) {
        error(value_at(e), key_name(e) + " " + number.error().detail);
        return std::nullopt;
    }
    return *number;
}

std::optional<std::uint32_t> DocumentReader::read_u32(const Entry& e, const Range& range) {
    const auto value = read_number(e, range);
    return value ? std::optional<std::uint32_t>{static_cast<std::uint32_t>(*value)} : std::nullopt;
}

std::optional<std::chrono::milliseconds> DocumentReader::read_duration(const Entry& e,
                                                                       const DurationRange& range) {
    const auto text = scalar(e, "a duration, such as 5s or 500ms");
    if (!text) {
        return std::nullopt;
    }
    auto duration = check_duration(*text, range);
    if (!duration) {
        error(value_at(e), key_name(e) + " " + duration.error().detail);
        return std::nullopt;
    }
    return *duration;
}

std::optional<bool> DocumentReader::read_bool(const Entry& e) {
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

std::optional<std::size_t> DocumentReader::read_choice(const Entry& e, std::string_view what,
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

std::optional<std::filesystem::path> DocumentReader::read_absolute_path(const Entry& e) {
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

void DocumentReader::read_accounts(const Entry& e, AccessList& list, bool users) {
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
            error(item.IsNull() ? value_at(e) : where, "each entry of " + key_name(e) +
                                                           " must be a " + std::string(noun) +
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
        auto id = check_account(text, noun);
        if (!id) {
            error(where, id.error().detail);
            continue;
        }
        out.push_back(AccountRef{text, *id, where});
    }
}

void DocumentReader::read_access_entry(const Entry& e, AccessList& list,
                                       const std::string& dotted) {
    if (e.name == "users") {
        read_accounts(e, list, true);
    } else {
        read_accounts(e, list, false);
    }
    if (!dotted.empty()) {
        record(dotted + "." + std::string(e.name), e);
    }
}

void DocumentReader::read_daemon(const Entry& section) {
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

void DocumentReader::read_limits(const Entry& section) {
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
        } else if (e.name == "per_uid") {
            read_uid_limits(e);
            continue;
        } else if (e.name == "admin_reserve") {
            limits.admin_reserve = read_u32(e, kAdminReserveRange).value_or(limits.admin_reserve);
        } else if (e.name == "hello_timeout") {
            limits.hello_timeout =
                read_duration(e, kHelloTimeoutRange).value_or(limits.hello_timeout);
        }
        record("limits." + std::string(e.name), e);
    }
}

void DocumentReader::read_client_limits(const Entry& section) {
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

void DocumentReader::read_uid_limits(const Entry& section) {
    UidLimits& limits = config_.limits.per_uid;
    for (const Entry& e : sub_entries(section, kUidLimitKeys)) {
        if (e.name == "max_connections") {
            limits.max_connections =
                read_u32(e, kUidConnectionsRange).value_or(limits.max_connections);
        } else if (e.name == "max_open_channels") {
            limits.max_open_channels =
                read_u32(e, kUidOpenChannelsRange).value_or(limits.max_open_channels);
        } else if (e.name == "max_dynamic_channels") {
            limits.max_dynamic_channels =
                read_u32(e, kUidDynamicChannelsRange).value_or(limits.max_dynamic_channels);
        } else if (e.name == "max_segment_bytes") {
            limits.max_segment_bytes =
                read_number(e, kUidSegmentBytesRange).value_or(limits.max_segment_bytes);
        }
        record("limits.per_uid." + std::string(e.name), e);
    }
}

void DocumentReader::read_dynamic(const Entry& section) {
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
            finish_spec(policy.defaults, seen);
            state_.dynamic_subscribers_set = state_.dynamic_subscribers_set || seen.subscribers;
            continue;
        } else if (e.name == "max_slot_size") {
            policy.max_slot_size = read_number(e, kSlotSizeRange).value_or(policy.max_slot_size);
        } else if (e.name == "max_slot_count") {
            policy.max_slot_count = read_number(e, kSlotCountRange).value_or(policy.max_slot_count);
        }
        record("dynamic_channels." + std::string(e.name), e);
    }
}

} // namespace yaml

namespace {

using yaml::DocumentReader;

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

} // namespace

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

} // namespace shmbus::daemon
