// The daemon's gateway. See bridges.hpp for who owns what and on which thread.
#include "bridges.hpp"

#include "assert.hpp"
#include "logging.hpp"
#include "systemd_protocol.hpp"

#if SHMBUS_HAVE_NATS
#include "gateway/nats_bridge.hpp"
#endif

#include <algorithm>
#include <cstdio>
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

/// FNV-1a, 64 bits: a stable hash of a few bytes, nothing secret.
std::uint64_t fnv1a(std::string_view bytes, std::uint64_t hash = 14695981039346656037ULL) {
    for (const char c : bytes) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    return hash;
}

BridgeStreamSummary stream_summary(const gateway::StreamStats& stream) {
    BridgeStreamSummary t;
    t.local_name = stream.local_name;
    t.wire_name = stream.wire_name;
    t.exporting = stream.exporting;
    t.messages = stream.messages;
    t.bytes = stream.bytes;
    t.lost = stream.lost;
    t.credits = stream.credits;
    return t;
}

/// The live link's loss by cause, duplicates and loops, summed over its streams.
void add_losses(BridgeSummary& s, const gateway::SessionStats& session) {
    for (const auto& stream : session.streams) {
        s.lost_link_down += stream.lost_link_down;
        s.lost_congestion += stream.lost_congestion;
        s.lost_upstream += stream.lost_upstream;
        s.duplicates += stream.duplicates;
        s.looped += stream.looped;
    }
    s.type_refusals = session.type_refusals;
}

/// A link to another daemon (tcp:, fifo:, exec:).
class LinkRunner final : public Bridges::Runner {
public:
    LinkRunner(gateway::BridgeConfig config, ClientOptions local, const std::string& node,
               std::uint64_t incarnation, std::shared_ptr<gateway::OriginLedger> origins,
               std::shared_ptr<const ChannelTypes> types)
        : config_{std::move(config)}, runner_{config_, std::move(local), node, incarnation,
                                              std::function<void(std::string_view)>{}} {
        runner_.log_with_peer(
            [name = config_.name](std::string_view message, std::string_view peer) {
                log_info(message, bridge_fields(name, peer));
            });
        runner_.share_origins(
            std::move(origins),
            [types = std::move(types)](std::string_view channel) { return types->of(channel); });
    }
    void start() override { runner_.start(); }
    void stop() override { runner_.stop(); }
    [[nodiscard]] BridgeSummary summary() const override {
        BridgeSummary s = summarize(runner_.status(), config_);
        s.transport = "link";
        return s;
    }

private:
    gateway::BridgeConfig config_;
    gateway::BridgeRunner runner_;
};

#if SHMBUS_HAVE_NATS
/// A bridge to a NATS server or cluster.
class NatsRunner final : public Bridges::Runner {
public:
    NatsRunner(const ConfiguredBridge& bridge, ClientOptions local, const std::string& node,
               std::uint64_t incarnation)
        : address_{bridge.address.text}, runner_{*bridge.nats, std::move(local), node, incarnation,
                                                 [name = bridge.name](std::string_view line) {
                                                     // The runner names the bridge in each line;
                                                     // journald gets it as a field.
                                                     log_info(line, bridge_fields(name, {}));
                                                 }} {}
    void start() override { runner_.start(); }
    void stop() override { runner_.stop(); }
    [[nodiscard]] BridgeSummary summary() const override {
        const gateway::NatsBridgeStatus status = runner_.status();
        BridgeSummary s;
        s.name = status.bridge.name;
        s.state = std::string{gateway::to_string(status.bridge.state)};
        s.address = address_;
        if (status.bridge.state == gateway::BridgeState::connected) {
            s.peer = status.bridge.peer;
        }
        s.reconnects = status.bridge.reconnects;
        s.last_error = status.bridge.last_error;
        for (const auto& stream : status.bridge.session.streams) {
            s.streams.push_back(stream_summary(stream));
        }
        s.transport = "nats";
        s.known_servers = status.known_servers;
        s.pending_bytes = status.pending_bytes;
        s.duplicates = status.duplicates;
        s.looped = status.looped;
        return s;
    }

private:
    std::string address_;
    gateway::NatsBridgeRunner runner_;
};
#endif

} // namespace

std::string nats_node_name(const std::string& host, const std::string& socket) {
    // The machine's id is mixed with an application id of ours rather than shown, as
    // sd_id128_get_machine_app_specific() mixes them.
    constexpr sd::Id128 kApp{0x5a, 0x7e, 0x0c, 0x31, 0x9b, 0x44, 0x4e, 0x2f,
                             0x8d, 0x61, 0x0e, 0x93, 0xc2, 0x1a, 0x77, 0x58};
    std::uint64_t hash = fnv1a(host);
    if (const std::optional<sd::Id128> machine = sd::machine_app_specific_id(kApp)) {
        hash = fnv1a(
            std::string_view{reinterpret_cast<const char*>(machine->data()), machine->size()});
    }
    hash = fnv1a(socket, hash);
    char hex[13];
    std::snprintf(hex, sizeof hex, "%012llx",
                  static_cast<unsigned long long>(hash & 0xffffffffffffULL));
    return host + "/" + hex;
}

gateway::BridgeConfig to_gateway(const ConfiguredBridge& bridge) {
    gateway::BridgeConfig c;
    c.name = bridge.name;
    c.listen = bridge.listen;
    c.address = bridge.address;
    c.secret = bridge.secret;
    c.tls = bridge.tls;
    c.require = bridge.require;
    c.window = bridge.credit_window;
    c.nice = bridge.nice;
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
    s.fragments_sent = status.fragments_sent;
    s.fragments_received = status.fragments_received;
    s.last_error = status.last_error;
    for (const auto& stream : status.session.streams) {
        BridgeStreamSummary t = stream_summary(stream);
        if (stream.exporting) {
            t.on_congestion = std::string{gateway::to_string(stream.on_congestion)};
            t.priority = stream.priority;
        }
        s.streams.push_back(std::move(t));
    }
    add_losses(s, status.session);
    if (live) {
        const auto& w = status.session.writers;
        s.writers_waiting.assign(w.now.begin(), w.now.end());
        s.writers_waiting_most.assign(w.most.begin(), w.most.end());
    }
    s.block_timeouts = status.block_timeouts;
    return s;
}

Bridges::Bridges(std::string socket, std::uint64_t incarnation)
    : socket_{std::move(socket)}, incarnation_{incarnation}, node_{host_name()} {}

Bridges::~Bridges() {
    stop_all();
}

Bridges::RunnerPtr Bridges::make_runner(const ConfiguredBridge& bridge) {
    ClientOptions local;
    local.socket_path = socket_;
    local.client_name = "bridge " + bridge.name;
    // The session's client lives as long as one link; a daemon that stops ends it, and the
    // runner connects anew for the next link.
    local.reconnect_in_background = false;
    const std::string name = bridge.name;
    local.log = [name](std::string_view line) {
        log_warning("bridge '" + name + "': " + std::string{line}, bridge_fields(name, {}));
    };
    if (bridge.nats) {
#if SHMBUS_HAVE_NATS
        // Named when the first NATS bridge starts: the name's HMAC is libcrypto's, whose first
        // use sets up OpenSSL (2 MB of the daemon's memory), which a daemon without NATS
        // bridges never pays.
        if (nats_node_.empty()) {
            nats_node_ = nats_node_name(node_, socket_);
        }
        return std::make_shared<NatsRunner>(bridge, std::move(local), nats_node_, incarnation_);
#else
        // The configuration refuses NATS bridges in such a build: this is a bug.
        SHMBUS_ASSERT(false, "a NATS bridge in a build without libnats");
#endif
    }
    return std::make_shared<LinkRunner>(to_gateway(bridge), std::move(local), node_, incarnation_,
                                        origins_, types_);
}

std::string ChannelTypes::of(std::string_view channel) const {
    std::lock_guard lock{mu_};
    auto it = types_.find(channel);
    return it == types_.end() ? std::string{} : it->second;
}

void ChannelTypes::set(const std::vector<ChannelConfig>& channels) {
    std::map<std::string, std::string, std::less<>> types;
    for (const ChannelConfig& c : channels) {
        if (!c.type.empty()) {
            types.emplace(c.spec.name, c.type);
        }
    }
    std::lock_guard lock{mu_};
    types_ = std::move(types);
}

void Bridges::set_channel_types(const std::vector<ChannelConfig>& channels) {
    types_->set(channels);
}

void Bridges::start(const std::vector<ConfiguredBridge>& bridges) {
    for (const auto& b : bridges) {
        RunnerPtr r = make_runner(b);
        r->start();
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
            RunnerPtr old = it != running_.end() ? it->second : nullptr;
            if (change.action == BridgeAction::remove) {
                if (old) {
                    running_.erase(it);
                    retire(std::move(old));
                }
            } else {
                RunnerPtr next = make_runner(change.config);
                running_.insert_or_assign(name, next);
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
    for (auto& [name, runner] : running_) {
        runner->stop();
    }
    running_.clear();
}

std::vector<BridgeSummary> Bridges::summaries() const {
    std::vector<BridgeSummary> out;
    for (const auto& [name, runner] : running_) {
        out.push_back(runner->summary());
    }
    return out;
}

} // namespace shmbus::daemon
