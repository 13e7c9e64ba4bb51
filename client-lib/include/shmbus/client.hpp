// Client: the connection to shmbusd. Finds channels by name, receives their segments over
// the control socket, and returns the same Publisher / Subscriber endpoints as the data
// plane. Also the read side of the discovery table, for tools such as shmbusctl.
//
// After open_*(), messages flow through shared memory without the daemon: a daemon restart
// does not interrupt them. The client notices a lost connection at once, reconnects on its
// own with backoff and offers its endpoints back to the restarted daemon, so that they are
// listed again without the application making any request.
#pragma once

#include <shmbus/blackboard.hpp>
#include <shmbus/channel.hpp>
#include <shmbus/counters.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>
#include <shmbus/export.hpp>
#include <shmbus/pool.hpp>
#include <shmbus/rpc.hpp>
#include <shmbus/supervisor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus {

/// The socket a client uses when none is given: $SHMBUS_SOCKET if set; else
/// $XDG_RUNTIME_DIR/shmbus/shmbusd.sock if that exists; else /run/shmbusd/shmbusd.sock.
[[nodiscard]] SHMBUS_EXPORT std::string default_socket_path();

struct ClientOptions {
    std::string socket_path; ///< empty: default_socket_path()
    std::string client_name; ///< shown in logs and `shmbusctl clients`; empty: program name
    std::chrono::milliseconds request_timeout{5000};
    /// How long connect() waits for a daemon that is not listening yet (no socket file, or
    /// nobody accepting on it), saying so once through `log`. Zero: Errc::not_found at once.
    /// std::chrono::milliseconds::max(): wait for ever. Lets applications start before
    /// shmbusd in any order.
    std::chrono::milliseconds wait_for_daemon{0};
    /// Watch the connection from a background thread and restore it as soon as it is lost
    /// (a daemon restart), offering every live endpoint back. One thread serves every
    /// connection of the process; it starts with the first and is never stopped (after a
    /// fork(), the child starts its own). Off: the connection is only restored by the next
    /// request.
    bool reconnect_in_background{true};
    /// Where the library's rare lines go: waiting for the daemon, connection lost, connection
    /// restored (with how many endpoints the daemon took back and refused), each endpoint
    /// a restarted daemon refused to take back (channel, role, why). Called from the Client's
    /// thread or its background thread, never while it holds a lock, and never once the
    /// Client and every endpoint it opened are gone: the destruction of the last of them
    /// waits for a call in progress on the background thread, then destroys this function
    /// (so do not let the last one go while holding a lock this function takes). Empty: one
    /// line on stderr each, prefixed "shmbus: ".
    std::function<void(std::string_view)> log;
};

/// A dynamic channel as a client asks for it: what is left out takes the daemon's
/// `dynamic_channels.defaults` (docs/configuration.md).
struct ChannelRequest {
    std::string name{}; ///< 1..63 bytes of [A-Za-z0-9_.:/-]
    std::optional<ChannelKind> kind{};
    std::optional<std::uint64_t> slot_size{};
    std::optional<std::uint64_t> slot_count{};
    std::optional<Overflow> overflow{};
    std::optional<std::uint32_t> max_publishers{};
    std::optional<std::uint32_t> max_subscribers{};
};

/// One channel in the discovery table.
struct ChannelSummary {
    ChannelInfo info;
    ChannelStats stats;
    bool dynamic{false}; ///< created at run time rather than by the configuration
};

/// One endpoint attached to a channel.
struct EndpointDetail {
    Role role{Role::subscriber};
    std::uint32_t index{0};
    std::uint64_t client_id{0};
    std::uint32_t pid{0};
    std::uint32_t uid{0};
    std::string client_name;
    std::uint64_t cursor{0}; ///< broadcast subscriber: next sequence it reads
    std::uint64_t lost{0};   ///< broadcast subscriber: messages it lost
    std::uint64_t held{0};   ///< pool: blocks it holds a reference to (0 from a daemon before 1.3)
};

struct ChannelDetail {
    ChannelSummary summary;
    std::vector<EndpointDetail> endpoints;
};

/// One connected client.
struct ClientSummary {
    std::uint64_t client_id{0};
    std::uint32_t pid{0};
    std::uint32_t uid{0};
    std::uint32_t gid{0};
    std::string name;
    std::uint32_t endpoints{0};         ///< channel endpoints it holds
    std::int64_t connected_since_ms{0}; ///< Unix time, milliseconds
};

struct DaemonStatus {
    std::string daemon_version;
    std::uint32_t pid{0};
    std::uint64_t uptime_ms{0};
    std::vector<std::string> config_files;
    std::string socket_path;
    std::string state_directory;
    std::uint32_t clients{0};
    std::uint32_t channels{0};
    std::uint64_t segment_bytes{0};
    std::uint16_t protocol_major{0};
    std::uint16_t protocol_minor{0};
};

/// One stream of a bridge: one channel moved one way.
struct BridgeStreamSummary {
    std::string local_name; ///< the channel on this daemon
    std::string wire_name;  ///< its name on the link
    bool exporting{false};  ///< this daemon sends it (else it receives it)
    std::uint64_t messages{0};
    std::uint64_t bytes{0};
    std::uint64_t lost{0};    ///< messages lost, counted from sequence gaps
    std::uint32_t credits{0}; ///< export: credits left; import: granted and not returned
    /// Export: what it does when the peer grants no credits, "drop_oldest", "keep_latest" or
    /// "block" (docs/gateway.md, "Congestion"); empty for an import, and from a daemon older
    /// than protocol 1.5.
    std::string on_congestion{};
    std::uint32_t priority{0}; ///< export: 0..7, higher written first ("Priorities")
};

/// One bridge of the daemon's gateway (docs/gateway.md).
struct BridgeSummary {
    std::string name;
    /// "listening", "connecting", "handshaking", "connected", "backing off" or "stopped".
    std::string state;
    std::string address; ///< as configured (connect: or listen:)
    bool listen{false};
    std::string peer; ///< the live link's peer address; empty when there is none
    std::string peer_node;
    std::uint64_t peer_incarnation{0};
    std::uint16_t version{0}; ///< bridge protocol version of the live link; 0 when none
    std::uint16_t listening_port{0};
    std::uint64_t reconnects{0};
    std::uint64_t rtt_ns{0}; ///< the last ping's round trip; 0 before the first
    std::string last_error;
    std::vector<BridgeStreamSummary> streams; ///< of the live link
    /// "link" for a bridge to another daemon (tcp:, fifo:, exec:), "nats" for one to a NATS
    /// server or cluster (docs/nats.md; `peer` is then the server connected to). Empty from a
    /// daemon older than protocol 1.3, which has only links.
    std::string transport;
    /// NATS: the servers the client library knows of (the seeds, and those the cluster
    /// announced).
    std::vector<std::string> known_servers;
    std::uint64_t pending_bytes{0}; ///< NATS: in the client library's buffer, not yet sent
    std::uint64_t duplicates{0};    ///< NATS: imported messages dropped as already published
    std::uint64_t looped{0};        ///< NATS: imported messages dropped as this daemon's own
    // Loss by cause, over the streams of the live link (docs/gateway.md, "Loss by cause");
    // links only, 0 from a daemon older than protocol 1.4. `duplicates` and `looped` above
    // count a link's imports too, from 1.4 on.
    std::uint64_t lost_link_down{0};  ///< imports: gaps in this hop's numbers across a cut link
    std::uint64_t lost_congestion{0}; ///< exports overrun here, and gaps the peer's made
    std::uint64_t lost_upstream{0};   ///< imports: lost before the previous hop
    std::uint64_t type_refusals{0};   ///< channels refused because their types differ
    /// Link bridges: fragments of messages too large for one data frame, sent and received,
    /// over every link the bridge has had (0 from a daemon older than protocol 1.4).
    std::uint64_t fragments_sent{0};
    std::uint64_t fragments_received{0};
    /// Link bridges (empty, 0 from a daemon older than protocol 1.5): writers waiting for the
    /// live link now, per priority 0..7 and then the link's own frames (credits, pings), and
    /// the most that waited at each since the link began (docs/gateway.md, "Priorities").
    std::vector<std::uint32_t> writers_waiting{};
    std::vector<std::uint32_t> writers_waiting_most{};
    /// `block` exports that waited block_timeout (with the link down, or for credits) and
    /// ended their hold, over every link the bridge has had.
    std::uint64_t block_timeouts{0};
};

/// A connection to shmbusd. Move-only. One thread at a time; endpoints it opened may be
/// used from other threads and outlive it. It belongs to the process that connected it: a
/// child made by fork() holds no part of the connection (so the daemon reclaims the parent's
/// endpoints when the parent dies), and every call on the child's copy fails with
/// Errc::closed; the child connects a Client of its own.
class SHMBUS_EXPORT Client {
public:
    /// Connects and negotiates the protocol. Errc::not_found if no daemon listens on the
    /// socket (the message names the path), Errc::version_mismatch naming both versions,
    /// Errc::permission_denied if the socket refuses this user.
    [[nodiscard]] static Result<Client> connect(const ClientOptions& options = {}) noexcept;

    Client(Client&&) noexcept;
    Client& operator=(Client&&) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client();

    /// Opens `channel` for writing. Errc::not_found if the daemon has no such channel,
    /// Errc::permission_denied if this user may not publish on it, Errc::limit_reached when
    /// it has its maximum of publishers. A daemon that answers would_block (one still taking
    /// the channel back from the clients of its previous run) is asked again with backoff up
    /// to request_timeout, then Errc::timed_out with its reason: never Errc::would_block. The
    /// same holds for create_channel().
    [[nodiscard]] Result<Publisher> open_publisher(std::string_view channel,
                                                   const EndpointOptions& options = {}) noexcept;
    /// Opens `channel` for reading (a consumer, on a queue). Errors as open_publisher().
    [[nodiscard]] Result<Subscriber> open_subscriber(std::string_view channel,
                                                     const EndpointOptions& options = {}) noexcept;
    /// Opens the rpc channel `channel` as a server (ACL `serve`). Errors as
    /// open_publisher(), with max_servers; Errc::invalid_argument if it is not an rpc channel.
    [[nodiscard]] Result<Server> open_server(std::string_view channel,
                                             const EndpointOptions& options = {}) noexcept;
    /// Opens the rpc channel `channel` as a caller (ACL `call`). Errors as open_server(),
    /// with max_callers. `wait_for_server`: see Caller::set_wait_for_server().
    [[nodiscard]] Result<Caller> open_caller(std::string_view channel,
                                             const EndpointOptions& options = {},
                                             bool wait_for_server = false) noexcept;
    /// Opens blackboard `channel` as a writer (Role::publisher: the channel's `publish` ACL
    /// applies) or a reader (Role::subscriber: `subscribe` ACL, read-only mapping). Errors as
    /// open_publisher(); Errc::invalid_argument if the channel is not a blackboard.
    [[nodiscard]] Result<Blackboard> open_blackboard(std::string_view channel, Role role,
                                                     const EndpointOptions& options = {}) noexcept;
    /// Opens counters `channel` as a writer or a reader, as open_blackboard().
    [[nodiscard]] Result<Counters> open_counters(std::string_view channel, Role role,
                                                 const EndpointOptions& options = {}) noexcept;
    /// Opens pool `channel` as a writer (Role::publisher: `publish` ACL; may acquire and
    /// write blocks) or a reader (Role::subscriber: `subscribe` ACL; adopts blocks handed on
    /// and maps them read-only), as open_blackboard(); Errc::invalid_argument if the channel
    /// is not a pool.
    [[nodiscard]] Result<Pool> open_pool(std::string_view channel, Role role,
                                         const EndpointOptions& options = {}) noexcept;
    /// Creates a dynamic channel, where the daemon's configuration allows it; fields left
    /// out take its `dynamic_channels.defaults`. Errc::permission_denied when this user may
    /// not create, Errc::limit_reached naming the limit (sizes, per-client count, total
    /// memory), Errc::already_exists, Errc::invalid_argument naming the field.
    [[nodiscard]] Result<void> create_channel(const ChannelRequest& request) noexcept;
    /// The same with every field given as in `spec` (a zero size or count is left out).
    [[nodiscard]] Result<void> create_channel(const ChannelSpec& spec) noexcept;

    [[nodiscard]] Result<std::vector<ChannelSummary>> list_channels() noexcept;
    [[nodiscard]] Result<ChannelDetail> channel_info(std::string_view channel) noexcept;
    [[nodiscard]] Result<std::vector<ClientSummary>> list_clients() noexcept;
    [[nodiscard]] Result<DaemonStatus> status() noexcept;
    /// The daemon's bridges and their streams (protocol 1.2). Errc::protocol_error naming
    /// the request from a daemon that predates it.
    [[nodiscard]] Result<std::vector<BridgeSummary>> list_bridges() noexcept;
    /// Asks the daemon to reload its configuration (admin only). The message says what
    /// changed; a configuration with errors is refused whole with every error listed.
    [[nodiscard]] Result<std::string> reload() noexcept;
    /// Round trip to the daemon.
    [[nodiscard]] Result<std::chrono::nanoseconds> ping() noexcept;

    /// The socket this client is connected to.
    [[nodiscard]] const std::string& socket_path() const noexcept;
    /// This connection's id in the daemon's tables.
    [[nodiscard]] std::uint64_t client_id() const noexcept;

    struct Impl;

private:
    explicit Client(std::shared_ptr<Impl> impl) noexcept;
    std::shared_ptr<Impl> impl_;
};

} // namespace shmbus
