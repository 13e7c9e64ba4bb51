// The daemon's gateway: one runner per bridge of the configuration's `bridges:` list, started
// once the daemon is ready, changed by reload, stopped at the end: a BridgeRunner
// (daemon/gateway/bridge_runner.hpp) for a link to another daemon, docs/gateway.md; a
// NatsBridgeRunner (daemon/gateway/nats_bridge.hpp) for a NATS server or cluster, docs/nats.md,
// where this shmbusd was built with libnats (the configuration refuses NATS bridges where not).
//
// Owns the runners, and the threads that stop the ones a reload removed or replaced. Each
// runner's session is an ordinary client of this very daemon, connected to its control
// socket: it runs with the daemon's own uid, which every ACL admits and the per-uid limits
// do not count (as root and the admins), while the per-client limits, statistics and reclaim
// apply to it as to any client (docs/gateway.md, "The model").
//
// Thread: every method runs on the event loop's thread. A runner is never stopped there while
// the loop runs: its session may be waiting for the loop to answer one of its requests, so
// stopping it (which joins its threads) would wait for the loop that waits for it. Runners a
// reload removes are stopped on a thread of their own (a replacement starts once its
// predecessor has let go of the port or FIFOs); stop_all() runs after the loop has ended and
// closed every connection, when a session's requests fail at once.
//
// Logging: every line of a bridge carries the journald fields BRIDGE= and PEER=
// (logging.hpp); bridge lines may come from any bridge thread.
#pragma once

#include "config.hpp"
#include "reload_plan.hpp"

#include "gateway/bridge_runner.hpp"

#include <shmbus/client.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shmbus::daemon {

/// The gateway's view of a configured link bridge (not a NATS one).
[[nodiscard]] gateway::BridgeConfig to_gateway(const ConfiguredBridge& bridge);

/// A runner's status as `shmbusctl bridges` shows it.
[[nodiscard]] BridgeSummary summarize(const gateway::BridgeStatus& status,
                                      const gateway::BridgeConfig& config);

/// The node name a NATS bridge puts in every message it exports (Shmbus-Node), by which
/// importers drop their own daemon's messages: `host`, then '/' and 12 hex digits that tell
/// apart daemons on one machine (from the machine's id and `socket`, the control socket's
/// path), the same across restarts. Without a machine id, from `host` and `socket` alone.
[[nodiscard]] std::string nats_node_name(const std::string& host, const std::string& socket);

/// Each configured channel's `type:`, as the bridges' sessions ask for it (any thread); a
/// reload replaces them.
class ChannelTypes {
public:
    /// The type of local channel `channel`, "" if it has none.
    [[nodiscard]] std::string of(std::string_view channel) const;
    void set(const std::vector<ChannelConfig>& channels);

private:
    mutable std::mutex mu_;
    std::map<std::string, std::string, std::less<>> types_;
};

class Bridges {
public:
    /// `socket`: the daemon's own control socket, which the bridges' sessions connect to.
    /// `incarnation`: this run of the daemon, in every hello.
    Bridges(std::string socket, std::uint64_t incarnation);
    ~Bridges();
    Bridges(const Bridges&) = delete;
    Bridges& operator=(const Bridges&) = delete;

    /// The channels' types the bridges check offers against: at start, and on each reload
    /// (before apply()).
    void set_channel_types(const std::vector<ChannelConfig>& channels);
    /// Starts a runner for each of `bridges`.
    void start(const std::vector<ConfiguredBridge>& bridges);
    /// Carries out the bridge steps of a reload plan; returns a line per change, saying what
    /// could not be applied where something could not.
    [[nodiscard]] std::vector<std::string> apply(const std::vector<BridgeChange>& changes);
    /// Stops every runner, and waits for those a reload was stopping. Idempotent.
    void stop_all();

    /// Every bridge, in name order.
    [[nodiscard]] std::vector<BridgeSummary> summaries() const;

    /// A running bridge of either transport. A runner that stop() was called on never starts
    /// again.
    class Runner {
    public:
        virtual ~Runner() = default;
        virtual void start() = 0;
        virtual void stop() = 0;
        [[nodiscard]] virtual BridgeSummary summary() const = 0;
    };

private:
    /// Shared with the thread that stops a runner and starts its successor; a runner that
    /// stop() was called on never starts again, whatever the order of those threads.
    using RunnerPtr = std::shared_ptr<Runner>;

    [[nodiscard]] RunnerPtr make_runner(const ConfiguredBridge& bridge);
    /// Stops `old` on a thread of its own, then starts `next` (if any).
    void retire(RunnerPtr old, RunnerPtr next = nullptr);

    std::string socket_;
    std::uint64_t incarnation_;
    std::string node_;
    std::string nats_node_; ///< set when the first NATS bridge starts (make_runner())
    std::map<std::string, RunnerPtr, std::less<>> running_;
    /// Shared by every link bridge, so that two paths into one channel deliver a message once.
    std::shared_ptr<gateway::OriginLedger> origins_{std::make_shared<gateway::OriginLedger>()};
    std::shared_ptr<ChannelTypes> types_{std::make_shared<ChannelTypes>()};
    std::vector<std::thread> retiring_;
};

} // namespace shmbus::daemon
