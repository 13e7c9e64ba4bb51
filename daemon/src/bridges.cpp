// The daemon's gateway. See bridges.hpp for who owns what and on which thread.
#include "bridges.hpp"

#include "logging.hpp"

#include <system_error>
#include <unistd.h>

namespace shmbus::daemon {

namespace {

std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
        return "shmbusd";
    }
    return name;
}

} // namespace

gateway::BridgeConfig to_gateway(const ConfiguredBridge& bridge) {
    gateway::BridgeConfig c;
    c.name = bridge.name;
    c.listen = bridge.listen;
    c.address = bridge.address;
    c.secret = bridge.secret;
    c.tls = bridge.tls;
    c.require = bridge.require;
    c.exports = bridge.exports;
    c.imports = bridge.imports; // each export rule carries its own block_timeout
    return c;
}

BridgeSummary summarize(const gateway::BridgeStatus& status, const gateway::BridgeConfig& config) {
    BridgeSummary s;
    s.name = status.name;
    s.state = std::string{gateway::to_string(status.state)};
    s.address = config.address.text;
    s.listen = config.listen;
    const bool live = status.state == gateway::BridgeState::connected;
    if (live) {
        s.peer = status.peer;
        s.peer_node = status.peer_node;
        s.peer_incarnation = status.peer_incarnation;
        s.version = status.version;
    }
    s.listening_port = status.listening_port;
    s.reconnects = status.reconnects;
    s.rtt_ns = status.session.rtt_ns;
    s.last_error = status.last_error;
    for (const auto& stream : status.session.streams) {
        BridgeStreamSummary t;
        t.local_name = stream.local_name;
        t.wire_name = stream.wire_name;
        t.exporting = stream.exporting;
        t.messages = stream.messages;
        t.bytes = stream.bytes;
        t.lost = stream.lost;
        t.credits = stream.credits;
        s.streams.push_back(std::move(t));
    }
    return s;
}

Bridges::Bridges(std::string socket, std::uint64_t incarnation)
    : socket_{std::move(socket)}, incarnation_{incarnation}, node_{host_name()} {}

Bridges::~Bridges() {
    stop_all();
}

Bridges::RunnerPtr Bridges::make_runner(const gateway::BridgeConfig& config) const {
    ClientOptions local;
    local.socket_path = socket_;
    local.client_name = "bridge " + config.name;
    // The session's client lives as long as one link; a daemon that stops ends it, and the
    // runner connects anew for the next link.
    local.reconnect_in_background = false;
    const std::string name = config.name;
    local.log = [name](std::string_view line) {
        log_warning("bridge '" + name + "': " + std::string{line}, bridge_fields(name, {}));
    };
    auto runner = std::make_shared<gateway::BridgeRunner>(
        config, std::move(local), node_, incarnation_, std::function<void(std::string_view)>{});
    runner->log_with_peer([name](std::string_view message, std::string_view peer) {
        log_info(message, bridge_fields(name, peer));
    });
    return runner;
}

void Bridges::start(const std::vector<ConfiguredBridge>& bridges) {
    for (const auto& b : bridges) {
        Running r{to_gateway(b), nullptr};
        r.runner = make_runner(r.config);
        r.runner->start();
        running_.insert_or_assign(b.name, std::move(r));
    }
}

void Bridges::retire(RunnerPtr old, RunnerPtr next) {
    retiring_.emplace_back([old = std::move(old), next = std::move(next)] {
        old->stop();
        if (next) {
            next->start();
        }
    });
}

std::vector<std::string> Bridges::apply(const std::vector<BridgeChange>& changes) {
    std::vector<std::string> lines;
    for (const BridgeChange& change : changes) {
        const std::string& name = change.config.name;
        try {
            const auto it = running_.find(name);
            RunnerPtr old = it != running_.end() ? it->second.runner : nullptr;
            if (change.action == BridgeAction::remove) {
                if (old) {
                    running_.erase(it);
                    retire(std::move(old));
                }
            } else {
                Running r{to_gateway(change.config), nullptr};
                r.runner = make_runner(r.config);
                RunnerPtr next = r.runner;
                running_.insert_or_assign(name, std::move(r));
                if (old) {
                    retire(std::move(old), std::move(next)); // starts once old let go
                } else {
                    next->start();
                }
            }
            lines.push_back(describe(change));
        } catch (const std::system_error& e) {
            // No thread for it: the bridge is not running, and the summary says so.
            lines.push_back("bridge '" + name +
                            "' not applied: cannot start a thread: " + e.what());
        }
    }
    return lines;
}

void Bridges::stop_all() {
    for (auto& t : retiring_) {
        t.join();
    }
    retiring_.clear();
    for (auto& [name, r] : running_) {
        r.runner->stop();
    }
    running_.clear();
}

std::vector<BridgeSummary> Bridges::summaries() const {
    std::vector<BridgeSummary> out;
    for (const auto& [name, r] : running_) {
        out.push_back(summarize(r.runner->status(), r.config));
    }
    return out;
}

} // namespace shmbus::daemon
