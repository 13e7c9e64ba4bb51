// Encoding and decoding of the control protocol; the rules are in wire.hpp and
// docs/protocol.md.
//
// Every body is described once, by a `fields()` function per struct that lists its fields in
// wire order; the Reader and Writer of protocol/field_io.hpp walk that list to decode and to
// encode, so an encoder and a decoder that disagree about a field cannot be written. The
// fields() functions sit in shmbus::proto itself, where the Reader and Writer find them.
//
// Extension bytes: a body longer than the fields this decoder knows is accepted and the
// excess ignored, because a newer minor version appends fields there. Bytes beyond the
// header's body length are a framing error (the datagram and its header disagree).
//
// Nothing here throws except std::bad_alloc from the standard containers.
#include "protocol/wire.hpp"

#include "protocol/field_io.hpp"

#include <array>
#include <bit>
#include <concepts>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

namespace shmbus::proto {

std::string_view msg_type_name(MsgType type) noexcept {
    switch (type) {
    case MsgType::hello:
        return "hello";
    case MsgType::hello_reply:
        return "hello_reply";
    case MsgType::open:
        return "open";
    case MsgType::open_reply:
        return "open_reply";
    case MsgType::close:
        return "close";
    case MsgType::create:
        return "create";
    case MsgType::list_channels:
        return "list_channels";
    case MsgType::channel_list:
        return "channel_list";
    case MsgType::channel_info:
        return "channel_info";
    case MsgType::channel_detail:
        return "channel_detail";
    case MsgType::list_clients:
        return "list_clients";
    case MsgType::client_list:
        return "client_list";
    case MsgType::reload:
        return "reload";
    case MsgType::ping:
        return "ping";
    case MsgType::pong:
        return "pong";
    case MsgType::status:
        return "status";
    case MsgType::status_reply:
        return "status_reply";
    case MsgType::reclaim_offer:
        return "reclaim_offer";
    case MsgType::list_bridges:
        return "list_bridges";
    case MsgType::bridge_list:
        return "bridge_list";
    case MsgType::ok:
        return "ok";
    case MsgType::error:
        return "error";
    }
    return "unknown";
}

namespace {

// The wire type of each alternative of Body, in the variant's order.
constexpr std::array<MsgType, std::variant_size_v<Body>> kTypeOfAlternative{
    MsgType::hello,        MsgType::open,          MsgType::close,
    MsgType::create,       MsgType::list_channels, MsgType::channel_info,
    MsgType::list_clients, MsgType::reload,        MsgType::ping,
    MsgType::status,       MsgType::reclaim_offer, MsgType::hello_reply,
    MsgType::open_reply,   MsgType::channel_list,  MsgType::channel_detail,
    MsgType::client_list,  MsgType::pong,          MsgType::status_reply,
    MsgType::ok,           MsgType::error,         MsgType::list_bridges,
    MsgType::bridge_list,
};
static_assert(std::is_same_v<std::variant_alternative_t<0, Body>, Hello>);
static_assert(std::is_same_v<std::variant_alternative_t<12, Body>, OpenReply>);
static_assert(std::is_same_v<std::variant_alternative_t<19, Body>, ErrorReply>);

constexpr FieldLimits kLimits{kMaxStringBytes, kMaxListItems, kMaxMessageBytes};

} // namespace

// ---- the fields of every body, in wire order ----
//
// `T` is the struct or its const form: one list serves the Writer and the Reader. Minor
// versions append at the end of a top-level body only (never inside a nested struct or a
// list element, whose end an older decoder cannot see).

template <typename Io, Is<ChannelInfo> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.name, {&p, "name"});
    io.field(v.kind, {&p, "kind"});
    io.field(v.overflow, {&p, "overflow"});
    io.field(v.slot_size, {&p, "slot_size"});
    io.field(v.slot_count, {&p, "slot_count"});
    io.field(v.max_publishers, {&p, "max_publishers"});
    io.field(v.max_subscribers, {&p, "max_subscribers"});
    io.field(v.creation_id, {&p, "creation_id"});
    io.field(v.control_bytes, {&p, "control_bytes"});
    io.field(v.payload_bytes, {&p, "payload_bytes"});
}

template <typename Io, Is<ChannelStats> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.published, {&p, "published"});
    io.field(v.consumed, {&p, "consumed"});
    io.field(v.dropped, {&p, "dropped"});
    io.field(v.abandoned, {&p, "abandoned"});
    io.field(v.redelivered, {&p, "redelivered"});
    io.field(v.corrupted, {&p, "corrupted"});
    io.field(v.data_waits, {&p, "data_waits"});
    io.field(v.data_wakes, {&p, "data_wakes"});
    io.field(v.space_waits, {&p, "space_waits"});
    io.field(v.space_wakes, {&p, "space_wakes"});
    io.field(v.depth, {&p, "depth"});
    io.field(v.high_water, {&p, "high_water"});
    io.field(v.publishers, {&p, "publishers"});
    io.field(v.subscribers, {&p, "subscribers"});
}

template <typename Io, Is<ChannelSpec> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.name, {&p, "name"});
    io.field(v.kind, {&p, "kind"});
    io.field(v.slot_size, {&p, "slot_size"});
    io.field(v.slot_count, {&p, "slot_count"});
    io.field(v.overflow, {&p, "overflow"});
    io.field(v.max_publishers, {&p, "max_publishers"});
    io.field(v.max_subscribers, {&p, "max_subscribers"});
}

template <typename Io, Is<ChannelSummary> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.info, {&p, "info"});
    io.field(v.stats, {&p, "stats"});
    io.field(v.dynamic, {&p, "dynamic"});
}

template <typename Io, Is<EndpointDetail> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.role, {&p, "role"});
    io.field(v.index, {&p, "index"});
    io.field(v.client_id, {&p, "client_id"});
    io.field(v.pid, {&p, "pid"});
    io.field(v.uid, {&p, "uid"});
    io.field(v.client_name, {&p, "client_name"});
    io.field(v.cursor, {&p, "cursor"});
    io.field(v.lost, {&p, "lost"});
}

template <typename Io, Is<ChannelDetail> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.summary, {&p, "summary"});
    io.field(v.endpoints, {&p, "endpoints"});
    if (io.extension_present()) { // protocol 1.3: EndpointDetail::held, one per endpoint
        const FieldPath at{&p, "endpoint_blocks"};
        std::vector<std::uint64_t> held;
        if constexpr (std::is_const_v<T>) {
            for (const EndpointDetail& e : v.endpoints) {
                held.push_back(e.held);
            }
            io.field(held, at);
        } else {
            io.field(held, at);
            io.require(held.size() == v.endpoints.size(), at,
                       "has " + std::to_string(held.size()) + " entries for " +
                           std::to_string(v.endpoints.size()) + " endpoints");
            for (std::size_t i = 0; i < held.size() && i < v.endpoints.size(); ++i) {
                v.endpoints[i].held = held[i];
            }
        }
    }
}

template <typename Io, Is<ClientSummary> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.client_id, {&p, "client_id"});
    io.field(v.pid, {&p, "pid"});
    io.field(v.uid, {&p, "uid"});
    io.field(v.gid, {&p, "gid"});
    io.field(v.name, {&p, "name"});
    io.field(v.endpoints, {&p, "endpoints"});
    io.field(v.connected_since_ms, {&p, "connected_since_ms"});
}

template <typename Io, Is<DaemonStatus> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.daemon_version, {&p, "daemon_version"});
    io.field(v.pid, {&p, "pid"});
    io.field(v.uptime_ms, {&p, "uptime_ms"});
    io.field(v.config_files, {&p, "config_files"});
    io.field(v.socket_path, {&p, "socket_path"});
    io.field(v.state_directory, {&p, "state_directory"});
    io.field(v.clients, {&p, "clients"});
    io.field(v.channels, {&p, "channels"});
    io.field(v.segment_bytes, {&p, "segment_bytes"});
    io.field(v.protocol_major, {&p, "protocol_major"});
    io.field(v.protocol_minor, {&p, "protocol_minor"});
}

template <typename Io, Is<Hello> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.major, {&p, "major"});
    io.field(v.minor, {&p, "minor"});
    io.field(v.layout_version, {&p, "layout_version"});
    io.field(v.client_name, {&p, "client_name"});
}

template <typename Io, Is<Open> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.channel, {&p, "channel"});
    io.field(v.role, {&p, "role"});
    io.field(v.wait_mode, {&p, "wait_mode"});
    io.require(v.wait_mode <= static_cast<std::uint32_t>(WaitMode::blocking), {&p, "wait_mode"},
               "is not a WaitMode (0 spin, 1 adaptive, 2 blocking)");
}

template <typename Io, Is<Close> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.channel, {&p, "channel"});
    io.field(v.role, {&p, "role"});
    io.field(v.endpoint_index, {&p, "endpoint_index"});
}

template <typename Io, Is<Create> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.spec, {&p, "spec"});
    if (io.extension_present()) { // protocol 1.1
        io.field(v.given, {&p, "given"});
        io.require((v.given & ~kAllSpecFields) == 0, {&p, "given"},
                   "has bits no protocol version defines");
    }
}

template <typename Io, Is<ChannelInfoRequest> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.channel, {&p, "channel"});
}

template <typename Io, Is<Ping> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.token, {&p, "token"});
}

template <typename Io, Is<Pong> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.token, {&p, "token"});
}

template <typename Io, Is<ReclaimOffer> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.channel, {&p, "channel"});
    io.field(v.creation_id, {&p, "creation_id"});
    io.field(v.role, {&p, "role"});
    io.field(v.endpoint_index, {&p, "endpoint_index"});
}

template <typename Io, Is<HelloReply> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.major, {&p, "major"});
    io.field(v.minor, {&p, "minor"});
    io.field(v.layout_version, {&p, "layout_version"});
    io.field(v.daemon_pid, {&p, "daemon_pid"});
    io.field(v.client_id, {&p, "client_id"});
    io.field(v.daemon_version, {&p, "daemon_version"});
}

template <typename Io, Is<OpenReply> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.info, {&p, "info"});
    io.field(v.endpoint_index, {&p, "endpoint_index"});
}

template <typename Io, Is<ChannelList> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.channels, {&p, "channels"});
}

template <typename Io, Is<ClientList> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.clients, {&p, "clients"});
}

template <typename Io, Is<BridgeStreamSummary> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.local_name, {&p, "local_name"});
    io.field(v.wire_name, {&p, "wire_name"});
    io.field(v.exporting, {&p, "exporting"});
    io.field(v.messages, {&p, "messages"});
    io.field(v.bytes, {&p, "bytes"});
    io.field(v.lost, {&p, "lost"});
    io.field(v.credits, {&p, "credits"});
}

template <typename Io, Is<BridgeSummary> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.name, {&p, "name"});
    io.field(v.state, {&p, "state"});
    io.field(v.address, {&p, "address"});
    io.field(v.listen, {&p, "listen"});
    io.field(v.peer, {&p, "peer"});
    io.field(v.peer_node, {&p, "peer_node"});
    io.field(v.peer_incarnation, {&p, "peer_incarnation"});
    io.field(v.version, {&p, "version"});
    io.field(v.listening_port, {&p, "listening_port"});
    io.field(v.reconnects, {&p, "reconnects"});
    io.field(v.rtt_ns, {&p, "rtt_ns"});
    io.field(v.last_error, {&p, "last_error"});
    io.field(v.streams, {&p, "streams"});
}

template <typename Io, Is<BridgeTransport> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.transport, {&p, "transport"});
    io.field(v.known_servers, {&p, "known_servers"});
    io.field(v.pending_bytes, {&p, "pending_bytes"});
    io.field(v.duplicates, {&p, "duplicates"});
    io.field(v.looped, {&p, "looped"});
}

/// Protocol 1.3: the transport fields of every bridge, taken from the summaries to send them.
static void transports(Writer& io, const BridgeList& v, const FieldPath& p) {
    std::vector<BridgeTransport> out;
    out.reserve(v.bridges.size());
    for (const BridgeSummary& b : v.bridges) {
        out.push_back({b.transport, b.known_servers, b.pending_bytes, b.duplicates, b.looped});
    }
    io.field(out, {&p, "transports"});
}

/// ... and put back into them when received.
/// Reads a list that a later minor appended to bridge_list, one entry per bridge in the same
/// order; false (with the reason in `io`) if it does not have one per bridge.
template <typename Entry>
static bool read_per_bridge(Reader& io, const BridgeList& v, const FieldPath& p,
                            std::string_view name, std::vector<Entry>& in) {
    io.field(in, {&p, name});
    io.require(in.size() == v.bridges.size(), {&p, name},
               "has " + std::to_string(in.size()) + " entries for " +
                   std::to_string(v.bridges.size()) + " bridges");
    return io.ok();
}

static void transports(Reader& io, BridgeList& v, const FieldPath& p) {
    std::vector<BridgeTransport> in;
    if (!read_per_bridge(io, v, p, "transports", in)) {
        return;
    }
    for (std::size_t i = 0; i < in.size(); ++i) {
        BridgeSummary& b = v.bridges[i];
        b.transport = std::move(in[i].transport);
        b.known_servers = std::move(in[i].known_servers);
        b.pending_bytes = in[i].pending_bytes;
        b.duplicates = in[i].duplicates;
        b.looped = in[i].looped;
    }
}

template <typename Io, Is<BridgeLoss> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.link_down, {&p, "link_down"});
    io.field(v.congestion, {&p, "congestion"});
    io.field(v.upstream, {&p, "upstream"});
    io.field(v.type_refusals, {&p, "type_refusals"});
}

/// Protocol 1.4: every bridge's loss by cause, taken from the summaries to send them.
static void losses(Writer& io, const BridgeList& v, const FieldPath& p) {
    std::vector<BridgeLoss> out;
    out.reserve(v.bridges.size());
    for (const BridgeSummary& b : v.bridges) {
        out.push_back({b.lost_link_down, b.lost_congestion, b.lost_upstream, b.type_refusals});
    }
    io.field(out, {&p, "losses"});
}

/// ... and put back into them when received.
static void losses(Reader& io, BridgeList& v, const FieldPath& p) {
    std::vector<BridgeLoss> in;
    if (!read_per_bridge(io, v, p, "losses", in)) {
        return;
    }
    for (std::size_t i = 0; i < in.size(); ++i) {
        BridgeSummary& b = v.bridges[i];
        b.lost_link_down = in[i].link_down;
        b.lost_congestion = in[i].congestion;
        b.lost_upstream = in[i].upstream;
        b.type_refusals = in[i].type_refusals;
    }
}

template <typename Io, Is<BridgeFragments> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.sent, {&p, "sent"});
    io.field(v.received, {&p, "received"});
}

/// Protocol 1.4, after the losses: the fragment counts of every bridge, taken from the summaries to
/// send them...
static void fragment_counts(Writer& io, const BridgeList& v, const FieldPath& p) {
    std::vector<BridgeFragments> out;
    out.reserve(v.bridges.size());
    for (const BridgeSummary& b : v.bridges) {
        out.push_back({b.fragments_sent, b.fragments_received});
    }
    io.field(out, {&p, "fragments"});
}

/// ... and put back into them when received.
static void fragment_counts(Reader& io, BridgeList& v, const FieldPath& p) {
    std::vector<BridgeFragments> in;
    if (!read_per_bridge(io, v, p, "fragments", in)) {
        return;
    }
    for (std::size_t i = 0; i < in.size(); ++i) {
        v.bridges[i].fragments_sent = in[i].sent;
        v.bridges[i].fragments_received = in[i].received;
    }
}

template <typename Io, Is<StreamSchedule> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.on_congestion, {&p, "on_congestion"});
    io.field(v.priority, {&p, "priority"});
}

template <typename Io, Is<BridgeSchedule> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.streams, {&p, "streams"});
    io.field(v.writers_waiting, {&p, "writers_waiting"});
    io.field(v.writers_waiting_most, {&p, "writers_waiting_most"});
    io.field(v.block_timeouts, {&p, "block_timeouts"});
}

/// Protocol 1.5: every bridge's schedule (its streams' congestion policies and priorities,
/// its writers waiting), taken from the summaries to send them...
static void schedules(Writer& io, const BridgeList& v, const FieldPath& p) {
    std::vector<BridgeSchedule> out;
    out.reserve(v.bridges.size());
    for (const BridgeSummary& b : v.bridges) {
        BridgeSchedule s{{}, b.writers_waiting, b.writers_waiting_most, b.block_timeouts};
        s.streams.reserve(b.streams.size());
        for (const BridgeStreamSummary& st : b.streams) {
            s.streams.push_back({st.on_congestion, st.priority});
        }
        out.push_back(std::move(s));
    }
    io.field(out, {&p, "schedules"});
}

/// ... and put back into them when received.
static void schedules(Reader& io, BridgeList& v, const FieldPath& p) {
    std::vector<BridgeSchedule> in;
    if (!read_per_bridge(io, v, p, "schedules", in)) {
        return;
    }
    for (std::size_t i = 0; i < in.size(); ++i) {
        BridgeSummary& b = v.bridges[i];
        io.require(in[i].streams.size() == b.streams.size(), {&p, "schedules"},
                   "has " + std::to_string(in[i].streams.size()) + " streams for bridge '" +
                       b.name + "', which has " + std::to_string(b.streams.size()));
        if (!io.ok()) {
            return;
        }
        for (std::size_t j = 0; j < b.streams.size(); ++j) {
            b.streams[j].on_congestion = std::move(in[i].streams[j].on_congestion);
            b.streams[j].priority = in[i].streams[j].priority;
        }
        b.writers_waiting = std::move(in[i].writers_waiting);
        b.writers_waiting_most = std::move(in[i].writers_waiting_most);
        b.block_timeouts = in[i].block_timeouts;
    }
}

template <typename Io, Is<BridgeList> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.bridges, {&p, "bridges"});
    if (io.extension_present()) { // protocol 1.3
        transports(io, v, p);
    }
    if (io.extension_present()) { // protocol 1.4
        losses(io, v, p);
        fragment_counts(io, v, p);
    }
    if (io.extension_present()) { // protocol 1.5
        schedules(io, v, p);
    }
}

template <typename Io, Is<Ok> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.message, {&p, "message"});
}

template <typename Io, Is<ErrorReply> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.code, {&p, "code"});
    io.field(v.message, {&p, "message"});
}

// Requests without a body.
template <typename Io, typename T>
requires Is<T, ListChannels> || Is<T, ListClients> || Is<T, Reload> || Is<T, Status> ||
    Is<T, ListBridges>
void fields(Io&, T&, const FieldPath&) {}

namespace {

// ---- header ----

/// Decodes the body of `type` into the alternative T of Body.
template <typename T>
Result<Message> decode_body(std::uint32_t request_id, MsgType type,
                            std::span<const std::byte> body) {
    Reader reader{body, msg_type_name(type), kLimits};
    T value{};
    fields(reader, value, FieldPath{});
    if (!reader.ok()) {
        return reader.take_error();
    }
    // Bytes left over are fields appended by a newer minor version: ignored on purpose.
    return Message{request_id, Body{std::in_place_type<T>, std::move(value)}};
}

} // namespace

MsgType type_of(const Body& body) noexcept {
    const std::size_t i = body.index();
    return i < kTypeOfAlternative.size() ? kTypeOfAlternative[i] : MsgType{0};
}

Result<std::vector<std::byte>> encode(const Message& message) {
    if (message.body.valueless_by_exception()) {
        return make_error(Errc::invalid_argument, "cannot encode a message without a body");
    }
    const MsgType type = type_of(message.body);
    std::vector<std::byte> out;
    out.reserve(256);
    Writer writer{out, msg_type_name(type), kLimits};
    const FieldPath header{nullptr, "header"};
    writer.field(kMagic, header);
    writer.field(kProtocolMajor, header);
    writer.field(static_cast<std::uint16_t>(type), header);
    writer.field(message.request_id, header);
    writer.field(std::uint32_t{0}, header); // body bytes, patched below
    std::visit([&](const auto& body) { fields(writer, body, FieldPath{}); }, message.body);
    if (!writer.ok()) {
        return writer.take_error();
    }
    const std::size_t body_bytes = out.size() - kHeaderBytes;
    if (body_bytes > kMaxBodyBytes) {
        return make_error(Errc::invalid_argument,
                          "cannot encode " + std::string{msg_type_name(type)} + ": body of " +
                              std::to_string(body_bytes) + " bytes exceeds the limit of " +
                              std::to_string(kMaxBodyBytes));
    }
    store_u32(out.data() + 12, static_cast<std::uint32_t>(body_bytes));
    return out;
}

Result<Message> decode(std::span<const std::byte> datagram) {
    if (datagram.size() < kHeaderBytes) {
        return make_error(Errc::protocol_error, "datagram of " + std::to_string(datagram.size()) +
                                                    " bytes is shorter than the " +
                                                    std::to_string(kHeaderBytes) + "-byte header");
    }
    const std::byte* h = datagram.data();
    const std::uint32_t magic = load_u32(h);
    const std::uint16_t major = load_u16(h + 4);
    const std::uint16_t raw_type = load_u16(h + 6);
    const std::uint32_t request_id = load_u32(h + 8);
    const std::uint32_t body_bytes = load_u32(h + 12);
    if (magic != kMagic) {
        return make_error(Errc::protocol_error, "bad magic " + hex32(magic) + ", expected " +
                                                    hex32(kMagic) + " (not a shmbus peer?)");
    }
    if (major != kProtocolMajor) {
        return make_error(Errc::version_mismatch,
                          "the peer speaks control protocol " + std::to_string(major) +
                              ", this side speaks " + std::to_string(kProtocolMajor));
    }
    const auto type = static_cast<MsgType>(raw_type);
    if (msg_type_name(type) == "unknown") {
        return make_error(Errc::protocol_error, "unknown message type " + std::to_string(raw_type));
    }
    if (body_bytes > kMaxBodyBytes) {
        return make_error(Errc::protocol_error, std::string{msg_type_name(type)} + ": body of " +
                                                    std::to_string(body_bytes) +
                                                    " bytes exceeds the limit of " +
                                                    std::to_string(kMaxBodyBytes));
    }
    if (body_bytes != datagram.size() - kHeaderBytes) {
        return make_error(Errc::protocol_error,
                          std::string{msg_type_name(type)} + ": the header announces " +
                              std::to_string(body_bytes) + " body bytes, the datagram carries " +
                              std::to_string(datagram.size() - kHeaderBytes));
    }
    const auto body = datagram.subspan(kHeaderBytes);
    switch (type) {
    case MsgType::hello:
        return decode_body<Hello>(request_id, type, body);
    case MsgType::hello_reply:
        return decode_body<HelloReply>(request_id, type, body);
    case MsgType::open:
        return decode_body<Open>(request_id, type, body);
    case MsgType::open_reply:
        return decode_body<OpenReply>(request_id, type, body);
    case MsgType::close:
        return decode_body<Close>(request_id, type, body);
    case MsgType::create:
        return decode_body<Create>(request_id, type, body);
    case MsgType::list_channels:
        return decode_body<ListChannels>(request_id, type, body);
    case MsgType::channel_list:
        return decode_body<ChannelList>(request_id, type, body);
    case MsgType::channel_info:
        return decode_body<ChannelInfoRequest>(request_id, type, body);
    case MsgType::channel_detail:
        return decode_body<ChannelDetail>(request_id, type, body);
    case MsgType::list_clients:
        return decode_body<ListClients>(request_id, type, body);
    case MsgType::client_list:
        return decode_body<ClientList>(request_id, type, body);
    case MsgType::list_bridges:
        return decode_body<ListBridges>(request_id, type, body);
    case MsgType::bridge_list:
        return decode_body<BridgeList>(request_id, type, body);
    case MsgType::reload:
        return decode_body<Reload>(request_id, type, body);
    case MsgType::ping:
        return decode_body<Ping>(request_id, type, body);
    case MsgType::pong:
        return decode_body<Pong>(request_id, type, body);
    case MsgType::status:
        return decode_body<Status>(request_id, type, body);
    case MsgType::status_reply:
        return decode_body<StatusReply>(request_id, type, body);
    case MsgType::reclaim_offer:
        return decode_body<ReclaimOffer>(request_id, type, body);
    case MsgType::ok:
        return decode_body<Ok>(request_id, type, body);
    case MsgType::error:
        return decode_body<ErrorReply>(request_id, type, body);
    }
    return make_error(Errc::protocol_error, "unknown message type " + std::to_string(raw_type));
}

} // namespace shmbus::proto
