// One configured bridge, kept up: open the link, shake hands, run the session, and when the
// link ends, wait and try again. docs/gateway.md ("Links").
//
// Owns one thread, started by start() and joined by stop() (or the destructor); nothing of
// it runs on the control loop. A connecting bridge retries with capped exponential backoff
// and jitter (0.5 s doubling to 30 s, each delay drawn between half and all of it, reset
// after a link that stayed up for a minute); a listening one waits for the next peer. Each
// state change is logged once, so a link that stays down costs one line and a timer, not a
// line per attempt. The session is a client of the local daemon (ClientOptions), connected
// once and kept from link to link (the library reconnects it if the daemon restarts), so that
// the subscriber of an `on_link_down: block` export outlives its link. What the bridge's
// streams must remember from one link to the next (where each
// imported stream stood, so that a gap across a cut is counted exactly) is the runner's
// StreamMemory, shared with each session.
//
// A tcp bridge with `tls:` runs TLS (tls_link.hpp) on each connection before the hellos; the
// connecting end always speaks it, the listening end looks at the peer's first byte and admits
// a plaintext peer only if `require` says the secret alone may do (secret, either). Then the
// hellos and the secret challenge run inside TLS, bound to it. Any refusal, TLS or frames, is
// logged with the peer's address, and the socket is drained before it closes so that the last
// word (a goodbye, an alert) reaches the peer rather than a reset.
//
// An exec: link is always the connecting end: the runner starts the command for each link and,
// when the link ends, ends and reaps it; how it ended is part of the last error.
//
// While the link is down, the runner gives up a `block` export's hold once it is older than
// that export's own block_timeout: the subscriber is closed (local publishers go on), the line
// is logged and counted, and the peer counts what it missed when the link returns.
//
// stop() is prompt in every state: it wakes a backoff wait, an accept (within its slice of
// 200 ms), a connection attempt (slices of a second, tried again until the handshake
// deadline), a live session (its eventfd), and a link in its handshake: a socket (tcp, and
// exec:, whose stdin/stdout is a socketpair) is shut down, an exec: command is sent SIGTERM,
// and a FIFO pair, which cannot be shut down, is sent a frame header without the magic on
// its input FIFO so that the handshake ends at once. Every log line goes with the peer it is
// about: the address of the live link, else the configured one.
//
// Priority: a link's streams are bulk work, so the runner's thread lowers its own priority by
// the bridge's `nice` levels before it does anything else, and names itself "bridge:NAME";
// every thread of its sessions inherits both (Linux gives a new thread its creator's nice
// value and name), while the daemon's control loop keeps its own. Where a seccomp filter
// forbids the call, the bridge says so in one log line and runs at the daemon's priority.
#pragma once

#include "gateway/bridge_session.hpp"
#include "gateway/link.hpp"
#include "gateway/tls_context.hpp"

#include <shmbus/client.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace shmbus::gateway {

/// A bridge as the daemon's configuration describes it.
struct BridgeConfig {
    std::string name;
    /// The answering end: it grants and refuses, the other end offers and asks. For tcp it
    /// also listens; a FIFO pair is opened the same way by both ends.
    bool listen{false};
    LinkAddress address;
    std::optional<std::string> secret;
    /// TLS under the frames (tcp links only): this end's certificate and key, the CA the peer's
    /// must chain to, and the name it must carry, if any.
    std::optional<TlsCredentials> tls;
    /// What the peer must pass; none: everything configured (default_peer_auth()).
    std::optional<PeerAuth> require;
    std::vector<ChannelRule> exports;
    std::vector<ChannelRule> imports;
    std::uint32_t window{kDefaultCreditWindow}; ///< `credit_window`
    std::chrono::milliseconds handshake_timeout{10000};
    std::chrono::milliseconds backoff_first{500};
    std::chrono::milliseconds backoff_cap{30000};
    /// Nice levels below the daemon's priority for the bridge's threads (`nice`); 0: none.
    int nice{kDefaultBridgeNice};
};

/// Lowers the calling thread's priority by `levels` nice levels (to nice 19 at most), for it
/// and every thread it starts from now on; lowering one's own priority needs no privilege.
/// Its new nice value, or Errc::system_error from getpriority() or setpriority() (EPERM where
/// a seccomp filter forbids them). `levels` 0 changes nothing and returns the current value.
[[nodiscard]] Result<int> lower_thread_priority(int levels);

/// Where a bridge's lines go: the message and the peer it is about. Called from the bridge's
/// threads.
using BridgeLog = std::function<void(std::string_view message, std::string_view peer)>;

enum class BridgeState { listening, connecting, handshaking, connected, backing_off, stopped };

/// "listening", "backing off", ...
[[nodiscard]] std::string_view to_string(BridgeState state) noexcept;

/// What `shmbusctl bridges` shows of one bridge.
struct BridgeStatus {
    std::string name;
    BridgeState state{BridgeState::stopped};
    std::string peer;
    std::string peer_node;
    std::uint64_t peer_incarnation{0};
    std::uint16_t version{0};
    std::uint64_t reconnects{0};
    std::uint64_t block_timeouts{0}; ///< `block` holds given up after block_timeout
    std::string last_error;
    std::uint16_t listening_port{0};     ///< tcp listen: the port bound
    SessionStats session;                ///< of the current link, if connected
    std::uint64_t fragments_sent{0};     ///< on every link so far, the current one included
    std::uint64_t fragments_received{0}; ///< the same
};

class BridgeRunner {
public:
    /// `local`: how to reach the local daemon. `node` and `incarnation` go into every hello.
    BridgeRunner(BridgeConfig config, ClientOptions local, std::string node,
                 std::uint64_t incarnation, std::function<void(std::string_view)> log);
    /// Sends every line with its peer to `log` instead of the constructor's. Before start().
    void log_with_peer(BridgeLog log);
    /// Shares the daemon's origin ledger with every link of this bridge, and tells it each
    /// local channel's type name (docs/gateway.md, "Multi-hop", "Types"). Before start();
    /// without it, the runner's links share a ledger of its own and no channel has a type.
    void share_origins(std::shared_ptr<OriginLedger> origins,
                       std::function<std::string(std::string_view)> channel_type);
    ~BridgeRunner();
    BridgeRunner(const BridgeRunner&) = delete;
    BridgeRunner& operator=(const BridgeRunner&) = delete;

    /// Starts the thread. Does nothing once stop() was called: a stopped runner stays stopped.
    void start();
    /// Ends the current link (with a goodbye) and the thread. Idempotent; any thread but the
    /// runner's own.
    void stop();
    [[nodiscard]] BridgeStatus status() const;

private:
    void run();
    void set_state(BridgeState state, const std::string& detail = {});
    /// Waits `delay` or until stop(); false if stopped.
    bool pause(std::chrono::milliseconds delay);
    /// Runs one link to its end, then ends its command (exec:) and records how.
    void run_link(Link link);
    /// The handshake and the session of one link.
    void run_session(Link& link);
    /// The stream the frames of `link` go through: TLS when this bridge has it (and, on a
    /// listening end, the peer speaks it), else the plain descriptors. Refuses a plaintext
    /// peer that `require` does not admit, telling it why in a goodbye.
    Result<std::unique_ptr<LinkStream>> secure_link(Link& link, Deadline deadline);
    /// What the peer must pass: `require`, or what is configured.
    [[nodiscard]] PeerAuth required() const noexcept;
    /// Checks that `require` names only what is configured, and builds the TLS context.
    Result<void> prepare_security();
    /// Whether this link's handshake must include the secret challenge, given whether the
    /// link is under TLS.
    [[nodiscard]] bool secret_required(bool over_tls) const noexcept;
    /// connect_link() in slices that stop() can end.
    Result<Link> connect_until_stopped();
    /// Logs `message` with the current peer.
    void emit(std::string_view message);

    BridgeConfig config_;
    ClientOptions local_;
    std::string node_;
    std::uint64_t incarnation_;
    BridgeLog log_;
    /// The runner's own until share_origins(): kept from link to link, as memory_ is.
    std::shared_ptr<OriginLedger> origins_{std::make_shared<OriginLedger>()};
    std::function<std::string(std::string_view)> channel_type_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_{false};
    bool stopped_{false}; ///< stop() was called: start() does nothing
    BridgeStatus status_;
    BridgeSession* session_{nullptr};  ///< the live session, under mu_
    const Link* handshaking_{nullptr}; ///< the link whose handshake runs, under mu_
    std::mutex peer_mu_;               ///< a leaf: held only to copy peer_
    std::string peer_;                 ///< the peer in log lines
    std::optional<TcpListener> listener_;
    std::shared_ptr<const TlsContext> tls_; ///< built as the thread starts (prepare_security())
    /// Gives up the `block` holds older than their own block_timeout (the bridge's thread); how
    /// long until the next one would be due, at most `cap`.
    std::chrono::milliseconds expire_holds(std::chrono::milliseconds cap);

    std::optional<Client> client_;   ///< the bridge's thread only; outlives memory_'s holds
    int live_fd_{-1};                ///< the link being set up, under mu_ (stop() shuts it down)
    ExecChild* live_child_{nullptr}; ///< its command, under mu_ (stop() terminates it)
    std::shared_ptr<StreamMemory> memory_{std::make_shared<StreamMemory>()};
    std::thread thread_;
};

} // namespace shmbus::gateway
