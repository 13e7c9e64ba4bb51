// A bridge whose far end is a NATS server or cluster rather than another shmbusd: local
// channels exported to NATS subjects, subjects imported into local channels, optionally
// through JetStream for imports that must survive outages and restarts. docs/nats.md.
//
// The bridge is an ordinary client of the local daemon (ClientOptions), as BridgeSession is:
// it opens the channels it exports as a subscriber and those it imports as a publisher, so
// ACLs, limits, statistics and reclaim apply to it as to any application. It speaks to NATS
// through libnats, which keeps the connection up on its own (the configured seed servers and
// those the cluster announces, reconnecting without limit); the bridge logs each state change
// once and counts what it could not move.
//
// Threads, none of them the daemon's control loop: one started by start() that connects to
// the local daemon and to NATS and then waits for stop(); one per export, which receives
// from its local channel and publishes in batches (into libnats' buffer, one flush each);
// libnats' own threads, one per import subscription, which publish into the local channel.
//
// Every message carries one NATS header, Shmbus-Origin: the exporting daemon's node name and
// incarnation, the channel's name and the export's own sequence number (1, 2, ... skipping
// the numbers of messages its local subscriber lost). An idle core NATS export says how far
// it got (Shmbus-Idle, an empty message: 100 ms after its last message, then every second),
// so that loss after the last message received is counted too. The importer drops what its
// own node exported (no loops through a shared subject), counts a jump in the sequence of one
// origin as that many lost messages and shows them to its local subscribers
// (Publisher::record_gap()), and drops a repeated or older number as a duplicate (a
// JetStream redelivery); every message is published or counted lost exactly once. An export
// skips what its own bridge's import published into the channel. With JetStream the exporter
// also sets Nats-Msg-Id from the same fields, so the stream de-duplicates within its
// duplicate window.
#pragma once

#include "gateway/bridge_runner.hpp"
#include "gateway/bridge_session.hpp"
#include "gateway/nats_rules.hpp"

#include <shmbus/client.hpp>
#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::gateway {

/// `shmbusctl bridges` for a NATS bridge: the shape of every bridge (state, peer = the server
/// connected to, reconnects, last error, one StreamStats per export and import with lost
/// counted from sequence gaps and publishes that failed), and what only NATS has.
struct NatsBridgeStatus {
    BridgeStatus bridge;
    std::vector<std::string> known_servers; ///< seeds and servers the cluster announced
    std::uint64_t pending_bytes{0};         ///< in libnats' buffer, not yet sent
    std::uint64_t duplicates{0};            ///< imported messages dropped as already seen
    std::uint64_t looped{0};                ///< imported messages dropped as this node's own
};

class NatsBridgeRunner {
public:
    /// `local`: how to reach the local daemon. `node` and `incarnation` go into every
    /// exported message's headers.
    NatsBridgeRunner(NatsBridgeConfig config, ClientOptions local, std::string node,
                     std::uint64_t incarnation, std::function<void(std::string_view)> log);
    ~NatsBridgeRunner();
    NatsBridgeRunner(const NatsBridgeRunner&) = delete;
    NatsBridgeRunner& operator=(const NatsBridgeRunner&) = delete;

    /// Starts the bridge's thread. Does nothing once stop() was called: a stopped runner
    /// stays stopped.
    void start();
    /// Stops the exports, drains the imports (their acknowledgements flushed), closes the
    /// NATS connection and joins every thread. Idempotent.
    void stop();
    [[nodiscard]] NatsBridgeStatus status() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace shmbus::gateway
