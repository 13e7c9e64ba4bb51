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
// from its local channel and publishes into libnats' buffer (libnats' flusher sends it);
// libnats' own threads, one per import subscription, which publish into the local channel.
//
// Every message carries, in NATS headers, the exporting daemon's node name and incarnation,
// the channel's name and the export's own sequence number (1, 2, ... skipping the numbers of
// messages its local subscriber lost). The importer drops what its own node exported (no
// loops through a shared subject), counts a jump in the sequence of one origin as that many
// lost messages, and drops a repeated or older number as a duplicate (a JetStream
// redelivery). With JetStream the exporter also sets Nats-Msg-Id from the same fields, so the
// stream de-duplicates within its duplicate window.
#pragma once

#include "gateway/bridge_runner.hpp"
#include "gateway/bridge_session.hpp"

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

/// One local channel published to one subject.
struct NatsExport {
    std::string channel; ///< a local channel name (no glob)
    std::string subject; ///< a NATS subject without wildcards
};

/// One subject (NATS wildcards `*` and `>` allowed) published into one local channel.
struct NatsImport {
    std::string subject;
    std::string channel; ///< a local channel name (no glob)
    /// Non-empty: a durable JetStream consumer of this name. Each message is acknowledged
    /// after it was published into the local channel, so what arrives while the bridge (or
    /// its daemon) is down is delivered when it returns. Needs a stream holding the subject.
    std::string durable;
};

struct NatsTls {
    std::string ca_file;   ///< trusted CAs (PEM); empty: the system's
    std::string cert_file; ///< client certificate chain (PEM), with key_file
    std::string key_file;
    bool skip_verify{false}; ///< accept any server certificate (tests only)
};

/// A NATS bridge as the daemon's configuration describes it (the `bridges:` entry whose
/// `connect:` holds nats:// URLs, and its `nats:` block).
struct NatsBridgeConfig {
    std::string name;
    std::vector<std::string> servers; ///< seed URLs, nats:// or tls://
    std::string credentials_file;     ///< a .creds file (JWT and NKey seed); empty: none
    std::optional<NatsTls> tls;
    /// Exports publish through JetStream and wait for the stream's acknowledgements (at most
    /// `max_pending_acks` in flight); a message the stream did not take is counted as lost.
    bool jetstream{false};
    std::uint32_t max_pending_acks{4096};
    std::vector<NatsExport> exports;
    std::vector<NatsImport> imports;
    std::chrono::milliseconds reconnect_wait{500};
    std::chrono::milliseconds connect_timeout{2000};
    /// Bytes libnats keeps for publishes while disconnected; past that a publish fails and
    /// counts as lost.
    std::uint32_t reconnect_buffer{8 * 1024 * 1024};
    /// How long an import waits for room in a full local channel (block overflow) before it
    /// counts the message as lost (core NATS) or asks for a redelivery (durable).
    std::chrono::milliseconds import_send_timeout{1000};
    /// Durable imports: how long JetStream waits for an acknowledgement before it delivers a
    /// message again (the consumer's AckWait).
    std::chrono::milliseconds ack_wait{30000};
};

/// Checks what can be checked without connecting: a name, at least one server URL with a
/// nats:// or tls:// scheme, exports' subjects without wildcards and channels without
/// globs, imports' subjects non-empty, durable names without '.', '*', '>' or spaces.
/// Errc::invalid_argument naming the bridge and the entry.
[[nodiscard]] Result<void> validate(const NatsBridgeConfig& config);

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
