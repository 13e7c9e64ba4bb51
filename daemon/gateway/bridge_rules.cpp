// Globs and renames of a bridge's export and import lists; the rules are in bridge_rules.hpp.
//
// glob_match() is a backtracking matcher over names of at most 63 bytes: with the last `*`
// remembered, it runs in O(pattern × name) and needs no recursion, so a hostile pattern from
// a peer's want cannot blow the stack or the clock.
#include "gateway/bridge_rules.hpp"

#include "shm/segment.hpp"

#include <shmbus/channel.hpp>

namespace shmbus::gateway {

std::string_view to_string(CongestionPolicy policy) noexcept {
    switch (policy) {
    case CongestionPolicy::keep_latest:
        return "keep_latest";
    case CongestionPolicy::block:
        return "block";
    case CongestionPolicy::drop_oldest:
        break;
    }
    return "drop_oldest";
}

namespace {

bool is_wildcard(char c) noexcept {
    return c == '*' || c == '?';
}

Result<void> check_name_or_glob(std::string_view text, std::string_view what) {
    if (text.empty() || text.size() > kMaxNameLength) {
        return make_error(Errc::invalid_argument,
                          std::string{what} + " '" + std::string{text} + "' must be 1 to " +
                              std::to_string(kMaxNameLength) + " bytes long");
    }
    for (char c : text) {
        if (!is_wildcard(c) && !detail::valid_name_char(c)) {
            return make_error(Errc::invalid_argument,
                              std::string{what} + " '" + std::string{text} + "' contains '" + c +
                                  "'; allowed are letters, digits, _ . : / - and the "
                                  "wildcards * and ?");
        }
    }
    return ok();
}

} // namespace

std::string glob_wildcards(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (is_wildcard(c)) {
            out += c;
        }
    }
    return out;
}

bool type_name_ok(std::string_view type) noexcept {
    if (type.empty() || type.size() > kMaxTypeBytes) {
        return false;
    }
    for (char c : type) {
        if (c < '!' || c > '~') {
            return false;
        }
    }
    return true;
}

bool is_glob(std::string_view text) noexcept {
    return text.find_first_of("*?") != std::string_view::npos;
}

bool glob_match(std::string_view pattern, std::string_view name,
                std::vector<std::string>* captures) {
    // Positions in pattern and name; `star` is the last `*` seen and `star_name` where in the
    // name its match ends for now. Captures are recorded as (start, length) and turned into
    // strings at the end, so backtracking only rewinds counters.
    struct Span {
        std::size_t start;
        std::size_t length;
    };
    std::vector<Span> spans;
    std::size_t p = 0;
    std::size_t n = 0;
    std::size_t star = std::string_view::npos;
    std::size_t star_name = 0;
    std::size_t star_spans = 0; // spans recorded before the last `*`
    while (n < name.size()) {
        if (p < pattern.size() && pattern[p] == '?') {
            spans.push_back({n, 1});
            ++p;
            ++n;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p;
            star_name = n;
            star_spans = spans.size();
            spans.push_back({n, 0});
            ++p;
        } else if (p < pattern.size() && pattern[p] == name[n]) {
            ++p;
            ++n;
        } else if (star != std::string_view::npos) {
            // Let the last `*` take one more character and retry from after it.
            p = star + 1;
            ++star_name;
            n = star_name;
            spans.resize(star_spans + 1);
            spans.back().length = n - spans.back().start;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') {
        spans.push_back({n, 0});
        ++p;
    }
    if (p != pattern.size()) {
        return false;
    }
    if (captures != nullptr) {
        captures->clear();
        for (const auto& s : spans) {
            captures->emplace_back(name.substr(s.start, s.length));
        }
    }
    return true;
}

Result<void> validate_rule(const ChannelRule& rule) {
    if (auto r = check_name_or_glob(rule.channel, "channel"); !r) {
        return r;
    }
    if (rule.as.empty()) {
        return ok();
    }
    if (auto r = check_name_or_glob(rule.as, "as"); !r) {
        return r;
    }
    if (glob_wildcards(rule.channel) != glob_wildcards(rule.as)) {
        return make_error(Errc::invalid_argument,
                          "as '" + rule.as + "' must have the wildcards of channel '" +
                              rule.channel + "' in the same order ('" +
                              glob_wildcards(rule.channel) +
                              "'), so that each takes what the other matched");
    }
    return ok();
}

std::optional<std::string> apply_rule(const ChannelRule& rule, std::string_view name) {
    std::vector<std::string> captures;
    if (!glob_match(rule.channel, name, &captures)) {
        return std::nullopt;
    }
    if (rule.as.empty()) {
        return std::string{name};
    }
    std::string out;
    std::size_t next = 0;
    for (char c : rule.as) {
        if (is_wildcard(c) && next < captures.size()) {
            out += captures[next++];
        } else {
            out += c;
        }
    }
    if (out.empty() || out.size() > kMaxNameLength) {
        return std::nullopt; // a rename that makes no channel name does not match
    }
    return out;
}

std::optional<RuleMatch> first_match(const std::vector<ChannelRule>& rules, std::string_view name) {
    for (const auto& rule : rules) {
        if (auto mapped = apply_rule(rule, name)) {
            return RuleMatch{&rule, std::move(*mapped)};
        }
    }
    return std::nullopt;
}

} // namespace shmbus::gateway
