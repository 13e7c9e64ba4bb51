// `shmbusctl bridge-stdio`; what it does is in bridge_stdio.hpp. Runs the gateway's
// handshake and session (daemon/gateway) on descriptors 0 and 1; the session's threads are
// its own, the main thread reads the link.
#include "bridge_stdio.hpp"

#include "gateway/bridge_session.hpp"
#include "gateway/handshake.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <sstream>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shmbusctl {

namespace {

using namespace shmbus;
using namespace shmbus::gateway;

std::mutex g_log_mu;

void log_line(std::string_view line) {
    std::lock_guard lock{g_log_mu};
    std::fprintf(stderr, "shmbusctl bridge-stdio: %.*s\n", static_cast<int>(line.size()),
                 line.data());
    std::fflush(stderr);
}

/// CHANNEL[=AS] as a rule, checked as the daemon checks its configuration's.
Result<ChannelRule> parse_rule(const std::string& text, const char* option) {
    ChannelRule rule;
    const auto eq = text.find('=');
    rule.channel = text.substr(0, eq);
    if (eq != std::string::npos) {
        rule.as = text.substr(eq + 1);
        if (rule.as.empty()) {
            return make_error(Errc::invalid_argument, std::string{option} + " '" + text +
                                                          "': nothing after '='; give CHANNEL "
                                                          "or CHANNEL=AS");
        }
    }
    if (auto v = validate_rule(rule); !v) {
        return make_error(Errc::invalid_argument,
                          std::string{option} + " '" + text + "': " + v.error().detail);
    }
    return rule;
}

/// The secret in `path`: the file must be a regular file that only its owner can read.
Result<std::string> read_secret(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return make_error(Errc::not_found, "secret file '" + path + "'", errno);
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        return make_error(Errc::permission_denied,
                          "secret file '" + path +
                              "' must be a regular file readable by its owner only (chmod 600)");
    }
    std::ifstream in{path, std::ios::binary};
    std::stringstream text;
    text << in.rdbuf();
    std::string secret = text.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
        secret.pop_back();
    }
    if (!in || secret.empty()) {
        return make_error(Errc::invalid_argument, "secret file '" + path + "' is empty");
    }
    return secret;
}

std::uint64_t random_incarnation() {
    std::uint64_t v = 0;
    while (v == 0) {
        if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
            v = static_cast<std::uint64_t>(
                    std::chrono::steady_clock::now().time_since_epoch().count()) ^
                static_cast<std::uint64_t>(::getpid());
        }
    }
    return v;
}

std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) {
        return "bridge-stdio";
    }
    return name;
}

} // namespace

int run_bridge_stdio(const GlobalOptions& options, const BridgeStdioOptions& bridge) {
    // The link is stdin/stdout: a write to a gone reader must be EPIPE, not death by SIGPIPE.
    // Blocked before any thread starts, so every thread inherits it.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

    SessionSettings settings;
    settings.bridge = bridge.name;
    settings.initiator = false;
    for (const auto& text : bridge.exports) {
        auto r = parse_rule(text, "--export");
        if (!r) {
            return fail(r.error().detail, kExitUsage);
        }
        settings.exports.push_back(r.value());
    }
    for (const auto& text : bridge.imports) {
        auto r = parse_rule(text, "--import");
        if (!r) {
            return fail(r.error().detail, kExitUsage);
        }
        settings.imports.push_back(r.value());
    }
    if (bridge.exports.empty() && bridge.imports.empty()) {
        settings.exports.push_back(ChannelRule{"*", "", LinkDownPolicy::drop});
        settings.imports.push_back(ChannelRule{"*", "", LinkDownPolicy::drop});
    }
    settings.log = log_line;

    HandshakeSettings hs;
    hs.initiator = false;
    hs.bridge = bridge.name;
    hs.node = host_name();
    hs.incarnation = random_incarnation();
    settings.incarnation = hs.incarnation;
    if (!bridge.secret_file.empty()) {
        auto secret = read_secret(bridge.secret_file);
        if (!secret) {
            return fail("bridge-stdio", secret.error(), ErrorSite::other);
        }
        hs.secret = std::move(secret.value());
    }

    int code = kExitOk;
    auto client = connect(options, code);
    if (!client) {
        return code;
    }
    auto handshake = Handshake::start(hs);
    if (!handshake) {
        return fail("bridge-stdio: handshake", handshake.error(), ErrorSite::other);
    }
    FrameReader reader;
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::milliseconds{static_cast<std::int64_t>(bridge.handshake_timeout_s * 1000)};
    auto params = run_handshake(STDIN_FILENO, STDOUT_FILENO, handshake.value(), reader, deadline);
    if (!params) {
        return fail("bridge-stdio: handshake", params.error(), ErrorSite::other);
    }
    log_line("bridge '" + bridge.name + "': connected to " + params.value().peer_node +
             " (bridge '" + params.value().peer_bridge + "')");
    BridgeSession session{std::move(settings), params.value(), client.value(),
                          STDIN_FILENO,        STDOUT_FILENO,  std::move(reader)};
    const Error why = session.run();
    const bool goodbye = why.code == Errc::closed && why.detail.rfind("the peer ended", 0) == 0;
    return goodbye ? kExitOk : kExitFailed;
}

} // namespace shmbusctl
