// The checks of a NATS bridge's configuration; what they accept is in nats_rules.hpp.
#include "gateway/nats_rules.hpp"

#include "gateway/bridge_rules.hpp"

#include "shm/segment.hpp"

#include <shmbus/channel.hpp>

#include <algorithm>
#include <charconv>

namespace shmbus::gateway {

namespace {

Error invalid(std::string what) {
    return Error{Errc::invalid_argument, 0, std::move(what)};
}

std::string quoted(std::string_view text) {
    return "'" + std::string{text} + "'";
}

/// Why `url` is not a server URL, or nothing.
std::optional<std::string> server_problem(std::string_view url) {
    std::string_view rest = url;
    if (rest.starts_with("nats://")) {
        rest.remove_prefix(7);
    } else if (rest.starts_with("tls://")) {
        rest.remove_prefix(6);
    } else {
        return "is not a nats:// or tls:// URL";
    }
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        rest.remove_prefix(at + 1); // user and password: libnats' business
    }
    if (rest.find_first_of("/?# \t") != std::string_view::npos) {
        return "has more than HOST:PORT after the scheme";
    }
    std::string_view host = rest;
    std::string_view port;
    if (rest.starts_with('[')) { // [IPv6]:PORT
        const auto close = rest.find(']');
        if (close == std::string_view::npos) {
            return "has an IPv6 address without its closing ']'";
        }
        host = rest.substr(1, close - 1);
        const std::string_view after = rest.substr(close + 1);
        if (!after.empty() && !after.starts_with(':')) {
            return "has text after the IPv6 address that is not :PORT";
        }
        port = after.empty() ? after : after.substr(1);
        if (after == ":") {
            return "has an empty port";
        }
    } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (port.empty()) {
            return "has an empty port";
        }
    }
    if (host.empty()) {
        return "names no host";
    }
    if (!port.empty()) {
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
            return "has port " + quoted(port) + "; a port is 1 to 65535";
        }
    }
    return std::nullopt;
}

/// Why `subject` is not a subject (wildcards allowed as whole tokens when `wildcards`), or
/// nothing.
std::optional<std::string> subject_problem(std::string_view subject, bool wildcards) {
    if (subject.empty()) {
        return "is empty";
    }
    std::size_t start = 0;
    for (;;) {
        const auto dot = subject.find('.', start);
        const std::string_view token = subject.substr(
            start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (token.empty()) {
            return "has an empty token (two dots, or a dot at an end)";
        }
        if (token.find_first_of(" \t\r\n") != std::string_view::npos) {
            return "contains white space";
        }
        const bool last = dot == std::string_view::npos;
        if (token.find_first_of("*>") != std::string_view::npos) {
            if (!wildcards) {
                return "contains a wildcard; an export publishes to one subject";
            }
            if (token.size() != 1) {
                return "has a wildcard inside a token (* and > stand for whole tokens)";
            }
            if (token == ">" && !last) {
                return "has '>' before its last token";
            }
        }
        if (last) {
            return std::nullopt;
        }
        start = dot + 1;
    }
}

std::optional<std::string> channel_problem(std::string_view channel) {
    if (channel.empty() || channel.size() > kMaxNameLength) {
        return "must be 1 to " + std::to_string(kMaxNameLength) + " bytes long";
    }
    for (char c : channel) {
        if (c == '*' || c == '?') {
            return "is a glob; a NATS bridge names each channel it moves";
        }
        if (!detail::valid_name_char(c)) {
            return std::string{"contains '"} + c + "' (use letters, digits and _ . : / -)";
        }
    }
    return std::nullopt;
}

} // namespace

bool is_nats_address(std::string_view text) noexcept {
    return text.starts_with("nats://") || text.starts_with("tls://");
}

Result<std::vector<std::string>> parse_nats_servers(std::string_view text) {
    std::vector<std::string> servers;
    std::size_t start = 0;
    for (;;) {
        const auto comma = text.find(',', start);
        std::string_view url = text.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        while (!url.empty() && (url.front() == ' ' || url.front() == '\t')) {
            url.remove_prefix(1);
        }
        while (!url.empty() && (url.back() == ' ' || url.back() == '\t')) {
            url.remove_suffix(1);
        }
        if (url.empty()) {
            return invalid("the list of NATS servers has an empty entry (servers are separated "
                           "by single commas)");
        }
        if (const auto problem = server_problem(url)) {
            return invalid("NATS server " + quoted(url) + " " + *problem);
        }
        servers.emplace_back(url);
        if (comma == std::string_view::npos) {
            return servers;
        }
        start = comma + 1;
    }
}

std::string redact_nats_url(std::string_view url) {
    const auto scheme = url.find("://");
    const auto at = url.rfind('@');
    if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) {
        return std::string{url};
    }
    const auto colon = url.find(':', scheme + 3);
    if (colon == std::string_view::npos || colon > at) {
        // A token alone (nats://TOKEN@host) is the secret itself.
        return std::string{url.substr(0, scheme + 3)} + "***" + std::string{url.substr(at)};
    }
    return std::string{url.substr(0, colon + 1)} + "***" + std::string{url.substr(at)};
}

Result<void> validate_export(const NatsExport& rule) {
    if (is_glob(rule.channel)) {
        if (auto v = validate_rule(ChannelRule{rule.channel, {}}); !v) {
            return invalid("export " + v.error().detail);
        }
        const std::string wildcards = glob_wildcards(rule.channel);
        if (rule.subject.find('>') != std::string::npos ||
            glob_wildcards(rule.subject) != wildcards) {
            return invalid(
                "export of " + quoted(rule.channel) + ": subject " + quoted(rule.subject) +
                " must have the wildcards of the channel's glob " + "in the same order ('" +
                wildcards + "'), each standing for what its counterpart matched, and no '>'");
        }
        // A subject once each wildcard is filled in (with a name's characters, never a dot).
        std::string filled = rule.subject;
        std::replace_if(
            filled.begin(), filled.end(), [](char c) { return c == '*' || c == '?'; }, 'x');
        if (const auto problem = subject_problem(filled, false)) {
            return invalid("export of " + quoted(rule.channel) + ": subject " +
                           quoted(rule.subject) + " " + *problem);
        }
        return ok();
    }
    if (const auto problem = channel_problem(rule.channel)) {
        return invalid("export channel " + quoted(rule.channel) + " " + *problem);
    }
    if (const auto problem = subject_problem(rule.subject, false)) {
        return invalid("export of " + quoted(rule.channel) + ": subject " + quoted(rule.subject) +
                       " " + *problem);
    }
    return ok();
}

Result<std::string> export_subject(const NatsExport& rule, std::string_view name) {
    if (!is_glob(rule.channel)) {
        if (rule.channel == name) {
            return rule.subject;
        }
        return make_error(Errc::not_found, "export of " + quoted(rule.channel) +
                                               " does not name channel " + quoted(name));
    }
    auto subject = apply_rule(ChannelRule{rule.channel, rule.subject}, name);
    if (!subject) {
        return make_error(Errc::not_found, "export of " + quoted(rule.channel) +
                                               " does not match channel " + quoted(name));
    }
    if (const auto problem = subject_problem(*subject, false)) {
        return invalid("export of " + quoted(rule.channel) + ": channel " + quoted(name) +
                       " would be published to subject " + quoted(*subject) + ", which " +
                       *problem);
    }
    return *subject;
}

Result<void> validate_import(const NatsImport& rule) {
    if (const auto problem = subject_problem(rule.subject, true)) {
        return invalid("import subject " + quoted(rule.subject) + " " + *problem);
    }
    if (const auto problem = channel_problem(rule.channel)) {
        return invalid("import of " + quoted(rule.subject) + ": channel " + quoted(rule.channel) +
                       " " + *problem);
    }
    if (rule.durable.find_first_of(".*> \t\r\n") != std::string::npos) {
        return invalid("import of " + quoted(rule.subject) + ": durable name " +
                       quoted(rule.durable) + " may not hold '.', '*', '>' or white space");
    }
    return ok();
}

Result<void> check_export_payload(std::string_view channel, std::uint64_t slot_size,
                                  std::uint64_t max_payload, std::string_view whose) {
    const std::uint64_t room = max_payload > kNatsHeaderRoom ? max_payload - kNatsHeaderRoom : 0;
    if (slot_size <= room) {
        return ok();
    }
    return invalid("export of channel " + quoted(channel) + ": its slots hold messages of up to " +
                   std::to_string(slot_size) + " bytes, more than fits in one NATS message of " +
                   std::string{whose} + " max_payload (" + std::to_string(max_payload) +
                   " bytes, of which " + std::to_string(kNatsHeaderRoom) +
                   " are kept for shmbus's headers); a NATS bridge does not cut messages into "
                   "pieces: raise max_payload on the servers and set 'nats.max_payload' to it, or "
                   "export a channel of smaller slots");
}

Result<void> validate(const NatsBridgeConfig& c) {
    const auto named = [&](const std::string& what) {
        return invalid("NATS bridge " + quoted(c.name) + ": " + what);
    };
    if (c.name.empty() || c.name.size() > 63) {
        return named("the name must be 1..63 bytes");
    }
    if (c.servers.empty()) {
        return named("'connect' names no server");
    }
    for (const auto& url : c.servers) {
        if (const auto problem = server_problem(url)) {
            return named("server " + quoted(url) + " " + *problem);
        }
    }
    for (const auto& e : c.exports) {
        if (auto v = validate_export(e); !v) {
            return named(v.error().detail);
        }
    }
    for (const auto& i : c.imports) {
        if (auto v = validate_import(i); !v) {
            return named(v.error().detail);
        }
    }
    return ok();
}

} // namespace shmbus::gateway
