// The control protocol between libshmbus clients (and shmbusctl) and shmbusd.
//
// Transport: a Unix SOCK_SEQPACKET socket, so every message is one datagram and the kernel
// keeps message boundaries. Segment descriptors travel beside a message as SCM_RIGHTS
// ancillary data (open_reply carries [control, payload]; reclaim_offer carries the same).
//
// Every message is a 16-byte header followed by a body of at most kMaxBodyBytes:
//
//   u32 magic (kMagic)  u16 protocol major  u16 type  u32 request id  u32 body bytes
//
// Integers are little-endian and fixed-width; strings are u32 length + bytes (no NUL), each
// at most kMaxStringBytes; lists are u32 count + elements, each list at most kMaxListItems.
// A request's reply carries the same request id. Every request is answered by its reply
// type or by `error` (Errc code + readable message); nothing is left unanswered.
//
// Decoding is a pure function over untrusted bytes: any truncation, overlong field,
// unknown type, out-of-range enum, or bytes beyond the body length the header announces is
// Errc::protocol_error naming the message type and field; nothing is read out of bounds and
// nothing throws. Bytes after the known fields but within the body are extension bytes (see
// below) and are ignored.
//
// Versioning: the major version changes only with incompatible layouts; a peer refuses
// another major with Errc::version_mismatch naming both. Minor versions only append fields
// at the end of a body (older decoders ignore them) or add message types.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/client.hpp>
#include <shmbus/error.hpp>
#include <shmbus/supervisor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace shmbus::proto {

inline constexpr std::uint32_t kMagic = 0x53554253; // "SBUS" little-endian
inline constexpr std::uint16_t kProtocolMajor = 1;
inline constexpr std::uint16_t kProtocolMinor = 5;
inline constexpr std::size_t kHeaderBytes = 16;
inline constexpr std::size_t kMaxBodyBytes =
    std::size_t{128} * 1024; // set SO_SNDBUF/SO_RCVBUF above this
inline constexpr std::size_t kMaxMessageBytes = kHeaderBytes + kMaxBodyBytes;
inline constexpr std::size_t kMaxStringBytes = 4096;
inline constexpr std::size_t kMaxListItems = 4096;
inline constexpr std::size_t kMaxFds = 2; // descriptors beside one message

enum class MsgType : std::uint16_t {
    hello = 1,
    hello_reply = 2,
    open = 3,
    open_reply = 4,
    close = 5,
    create = 6,
    list_channels = 7,
    channel_list = 8,
    channel_info = 9,
    channel_detail = 10,
    list_clients = 11,
    client_list = 12,
    reload = 13,
    ping = 14,
    pong = 15,
    status = 16,
    status_reply = 17,
    reclaim_offer = 18,
    list_bridges = 19, ///< protocol 1.2
    bridge_list = 20,  ///< protocol 1.2
    ok = 100,          ///< success without data (close, create, reload, reclaim_offer)
    error = 101,       ///< failure of any request
};

/// "hello", "open_reply", ...; "unknown" otherwise.
std::string_view msg_type_name(MsgType type) noexcept;

// ---- requests ----

struct Hello {
    std::uint16_t major{kProtocolMajor};
    std::uint16_t minor{kProtocolMinor};
    std::uint32_t layout_version{0};
    std::string client_name; ///< free text for logs and `shmbusctl clients`
};

struct Open {
    std::string channel;
    Role role{Role::subscriber};
    std::uint32_t wait_mode{0}; ///< WaitMode the endpoint will use (informational)
};

struct Close {
    std::string channel;
    Role role{Role::subscriber};
    std::uint32_t endpoint_index{0};
};

// Create::given: which fields of the spec the client set (protocol 1.1), one bit each.
inline constexpr std::uint32_t kSpecKind = 1U << 0;
inline constexpr std::uint32_t kSpecSlotSize = 1U << 1;
inline constexpr std::uint32_t kSpecSlotCount = 1U << 2;
inline constexpr std::uint32_t kSpecOverflow = 1U << 3;
inline constexpr std::uint32_t kSpecMaxPublishers = 1U << 4;
inline constexpr std::uint32_t kSpecMaxSubscribers = 1U << 5;
inline constexpr std::uint32_t kAllSpecFields = 0x3f;

struct Create {
    ChannelSpec spec; ///< a dynamic channel; allowed only where the config says so
    /// kSpec* bits of the fields the client set; the others take the daemon's
    /// dynamic_channels.defaults, and so does a numeric field that is 0 (what a 1.0 client,
    /// which does not send `given`, means by leaving one out). Appended in 1.1.
    std::uint32_t given{kAllSpecFields};
};

struct ListChannels {};
struct ChannelInfoRequest {
    std::string channel;
};
struct ListClients {};
struct Reload {};
struct Ping {
    std::uint64_t token{0};
};
struct Status {};
struct ListBridges {};

/// A reconnecting client offers back the descriptors it holds (daemon restart without
/// systemd); the daemon accepts them only if their inode matches its state file.
struct ReclaimOffer {
    std::string channel;
    std::uint64_t creation_id{0};
    Role role{Role::subscriber};
    std::uint32_t endpoint_index{0};
};

// ---- replies ----

struct HelloReply {
    std::uint16_t major{kProtocolMajor};
    std::uint16_t minor{kProtocolMinor};
    std::uint32_t layout_version{0};
    std::uint32_t daemon_pid{0};
    std::uint64_t client_id{0};
    std::string daemon_version;
};

/// Sent with two descriptors: control (read-write) and payload (read-write for
/// publishers, read-only for subscribers).
struct OpenReply {
    ChannelInfo info;
    std::uint32_t endpoint_index{0};
};

using shmbus::ChannelDetail;
using shmbus::ChannelSummary;
using shmbus::ClientSummary;
using shmbus::EndpointDetail;

struct ChannelList {
    std::vector<ChannelSummary> channels;
};

struct ClientList {
    std::vector<ClientSummary> clients;
};

using shmbus::BridgeStreamSummary;
using shmbus::BridgeSummary;

struct BridgeList {
    /// On the wire each as in 1.2, then (1.3) the transport fields of every bridge as a list
    /// of BridgeTransport appended to the body, one per bridge in the same order (a composite
    /// cannot grow in place), then (1.4) their loss by cause as a list of BridgeLoss followed
    /// by their fragment counts as a list of BridgeFragments, likewise, then (1.5) their
    /// schedules as a list of BridgeSchedule. The codec moves them between the two: users see
    /// BridgeSummary.
    std::vector<BridgeSummary> bridges;
};

/// The fields BridgeSummary gained in protocol 1.3, as they travel.
struct BridgeTransport {
    std::string transport;
    std::vector<std::string> known_servers;
    std::uint64_t pending_bytes{0};
    std::uint64_t duplicates{0};
    std::uint64_t looped{0};
};

/// The loss-by-cause fields BridgeSummary gained in protocol 1.4, as they travel (the first
/// of its two lists).
struct BridgeLoss {
    std::uint64_t link_down{0};
    std::uint64_t congestion{0};
    std::uint64_t upstream{0};
    std::uint64_t type_refusals{0};
};

/// The fragment counts BridgeSummary gained in protocol 1.4, as they travel (the second list).
struct BridgeFragments {
    std::uint64_t sent{0};
    std::uint64_t received{0};
};

/// What a stream gained in protocol 1.5, as it travels (in its bridge's BridgeSchedule).
struct StreamSchedule {
    std::string on_congestion;
    std::uint32_t priority{0};
};

/// The fields BridgeSummary gained in protocol 1.5, as they travel: one StreamSchedule per
/// stream, in the order of the bridge's streams, and its writers waiting per priority.
struct BridgeSchedule {
    std::vector<StreamSchedule> streams;
    std::vector<std::uint32_t> writers_waiting;
    std::vector<std::uint32_t> writers_waiting_most;
    std::uint64_t block_timeouts{0};
};

struct Pong {
    std::uint64_t token{0};
};

using StatusReply = shmbus::DaemonStatus;

struct Ok {
    std::string message; ///< optional human summary (e.g. what a reload changed)
};

struct ErrorReply {
    Errc code{Errc::protocol_error};
    std::string message;
};

using Body =
    std::variant<Hello, Open, Close, Create, ListChannels, ChannelInfoRequest, ListClients, Reload,
                 Ping, Status, ReclaimOffer, HelloReply, OpenReply, ChannelList, ChannelDetail,
                 ClientList, Pong, StatusReply, Ok, ErrorReply, ListBridges, BridgeList>;

struct Message {
    std::uint32_t request_id{0};
    Body body;
};

/// The wire type of a body.
MsgType type_of(const Body& body) noexcept;

/// Encodes `message` (header + body). Errc::invalid_argument if a string or list exceeds
/// the protocol's limits or the result would exceed kMaxMessageBytes.
Result<std::vector<std::byte>> encode(const Message& message);

/// Decodes one datagram. Errc::protocol_error naming the type and field for malformed
/// input; Errc::version_mismatch for another protocol major (naming both).
Result<Message> decode(std::span<const std::byte> datagram);

/// Converts an ErrorReply into the Error the API returns.
inline Error to_error(const ErrorReply& e) {
    return make_error(e.code, e.message);
}

} // namespace shmbus::proto
