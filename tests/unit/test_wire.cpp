// Tests of client-lib/src/protocol/wire: every message round-trips; every malformed input
// (truncation anywhere, bad magic, other major, unknown type, oversized string or list,
// undefined enum) is refused with the right code; extension bytes appended by a newer minor
// version are ignored; and a long seeded stream of random and mutated datagrams never
// crashes the decoder (run it under ASan/UBSan to make "never reads out of bounds" count).
#include "protocol/wire.hpp"

#include <shmbus/version.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

// Inside the namespace, so that Message is proto::Message and not the data path's.
namespace shmbus::proto {

namespace {

ChannelInfo sample_info(const std::string& name) {
    ChannelInfo i;
    i.name = name;
    i.kind = ChannelKind::broadcast;
    i.overflow = Overflow::drop;
    i.slot_size = 4096;
    i.slot_count = 1U << 20;
    i.max_publishers = 3;
    i.max_subscribers = 17;
    i.creation_id = 0x0123456789abcdefULL;
    i.control_bytes = 0x10000;
    i.payload_bytes = 0x100000000ULL; // above 32 bits: sizes are 64-bit on the wire
    return i;
}

ChannelStats sample_stats(std::uint64_t base) {
    ChannelStats s;
    s.published = base + 1;
    s.consumed = base + 2;
    s.dropped = base + 3;
    s.abandoned = base + 4;
    s.redelivered = base + 5;
    s.corrupted = base + 6;
    s.data_waits = base + 7;
    s.data_wakes = base + 8;
    s.space_waits = base + 9;
    s.space_wakes = base + 10;
    s.depth = base + 11;
    s.high_water = base + 12;
    s.publishers = 13;
    s.subscribers = 14;
    return s;
}

ChannelSummary sample_summary(const std::string& name, std::uint64_t base) {
    return ChannelSummary{sample_info(name), sample_stats(base), true};
}

/// One message of every type, every field set to a value other than its default, so that
/// a field the decoder dropped would show in the re-encoding.
std::vector<Message> one_of_each() {
    std::vector<Message> m;
    m.push_back({1, Hello{1, 7, kLayoutVersion, "sensor-reader"}});
    m.push_back({2, Open{"telemetry", Role::publisher, 2}});
    m.push_back({3, Close{"telemetry", Role::publisher, 5}});
    ChannelSpec spec;
    spec.name = "dyn.channel";
    spec.kind = ChannelKind::broadcast;
    spec.slot_size = 1U << 30;
    spec.slot_count = 8;
    spec.overflow = Overflow::drop;
    spec.max_publishers = 2;
    spec.max_subscribers = 9;
    m.push_back({4, Create{spec}});
    m.push_back({5, ListChannels{}});
    m.push_back({6, ChannelInfoRequest{"telemetry"}});
    m.push_back({7, ListClients{}});
    m.push_back({8, Reload{}});
    m.push_back({9, Ping{0xfeedfacecafebeefULL}});
    m.push_back({10, Status{}});
    m.push_back({11, ReclaimOffer{"telemetry", 0xabcdef0123456789ULL, Role::publisher, 3}});
    m.push_back({12, HelloReply{1, 3, kLayoutVersion, 4242, 0x1122334455667788ULL, "0.1.0"}});
    m.push_back({13, OpenReply{sample_info("telemetry"), 6}});
    m.push_back({14, ChannelList{{sample_summary("a", 100), sample_summary("b", 200)}}});
    ChannelDetail detail{sample_summary("telemetry", 300),
                         {EndpointDetail{Role::publisher, 1, 77, 1234, 1000, "writer", 5, 6, 3},
                          EndpointDetail{Role::subscriber, 2, 78, 1235, 1001, "reader", 9, 10, 4}}};
    m.push_back({15, detail});
    m.push_back({16, ClientList{{ClientSummary{77, 1234, 1000, 100, "writer", 2, -5},
                                 ClientSummary{78, 1235, 1001, 101, "reader", 1, 1700000000000}}}});
    m.push_back({17, Pong{0xfeedfacecafebeefULL}});
    DaemonStatus status;
    status.daemon_version = "0.1.0";
    status.pid = 4242;
    status.uptime_ms = 123456789;
    status.config_files = {"/etc/shmbusd/shmbusd.yaml", "/etc/shmbusd/conf.d/x.yaml"};
    status.socket_path = "/run/shmbusd/shmbusd.sock";
    status.state_directory = "/run/shmbusd";
    status.clients = 3;
    status.channels = 4;
    status.segment_bytes = 1ULL << 33;
    status.protocol_major = 1;
    status.protocol_minor = 2;
    m.push_back({18, StatusReply{status}});
    m.push_back({19, Ok{"reloaded: 1 channel added"}});
    m.push_back({20, ErrorReply{Errc::not_found, "no channel 'x'"}});
    m.push_back({21, ListBridges{}});
    BridgeSummary bridge;
    bridge.name = "ground";
    bridge.state = "connected";
    bridge.address = "tcp://ground.example:7411";
    bridge.listen = false;
    bridge.peer = "192.0.2.7:7411";
    bridge.peer_node = "ground";
    bridge.peer_incarnation = 0x0102030405060708ULL;
    bridge.version = 1;
    bridge.listening_port = 0;
    bridge.reconnects = 3;
    bridge.rtt_ns = 250000;
    bridge.last_error = "the peer closed the link";
    bridge.streams = {BridgeStreamSummary{"telemetry", "robot1/telemetry", true, 10, 1280, 2, 64},
                      BridgeStreamSummary{"ground/jobs", "jobs", false, 5, 640, 0, 200}};
    bridge.streams[0].on_congestion = "keep_latest";
    bridge.streams[0].priority = 6;
    bridge.writers_waiting = {0, 1, 0, 0, 0, 0, 2, 0, 0};
    bridge.writers_waiting_most = {1, 3, 0, 0, 0, 0, 4, 0, 1};
    bridge.block_timeouts = 2;
    BridgeSummary nats;
    nats.name = "fleet";
    nats.state = "connected";
    nats.address = "nats://10.0.0.5:4222,nats://10.0.0.6:4222";
    nats.peer = "nats://10.0.0.5:4222";
    nats.transport = "nats";
    nats.known_servers = {"nats://10.0.0.5:4222", "nats://10.0.0.7:4222"};
    nats.pending_bytes = 4096;
    nats.duplicates = 2;
    nats.looped = 9;
    m.push_back({22, BridgeList{{bridge, BridgeSummary{}, nats}}});
    return m;
}

/// What protocol 1.3 appends to the sample channel_detail: a count and one u64 per endpoint.
constexpr std::size_t kEndpointBlocksBytes = sizeof(std::uint32_t) + 2 * sizeof(std::uint64_t);

std::vector<std::byte> encoded(const Message& m) {
    auto bytes = encode(m);
    INFO((bytes ? std::string{} : bytes.error().message()));
    REQUIRE(bytes);
    return std::move(*bytes);
}

std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values) {
    std::vector<std::byte> out;
    for (const unsigned v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

void set_u32(std::vector<std::byte>& b, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) {
        b[at + i] = static_cast<std::byte>((v >> (8 * i)) & 0xffU);
    }
}

void set_u16(std::vector<std::byte>& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::byte>(v & 0xffU);
    b[at + 1] = static_cast<std::byte>(v >> 8);
}

/// Rewrites the header's body length to what the datagram really carries.
void fix_body_length(std::vector<std::byte>& b) {
    set_u32(b, 12, static_cast<std::uint32_t>(b.size() - kHeaderBytes));
}

/// Offset of the first byte that differs between two encodings of the same shape.
std::size_t first_difference(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
    REQUIRE(a.size() == b.size());
    const auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin());
    REQUIRE(ia != a.end());
    return static_cast<std::size_t>(ia - a.begin());
}

/// The size of what protocol 1.3 appended to `list`'s body: the list of transport fields.
std::size_t transports_bytes(const BridgeList& list) {
    std::size_t n = sizeof(std::uint32_t);
    for (const BridgeSummary& b : list.bridges) {
        n += sizeof(std::uint32_t) + b.transport.size() + sizeof(std::uint32_t) +
             3 * sizeof(std::uint64_t);
        for (const std::string& server : b.known_servers) {
            n += sizeof(std::uint32_t) + server.size();
        }
    }
    return n;
}

/// The bytes of a bridge_list's 1.4 extension: its list of losses, four u64 per bridge, then
/// its list of fragment counts, two u64 per bridge.
std::size_t extension_1_4_bytes(const BridgeList& list) {
    return 2 * sizeof(std::uint32_t) + list.bridges.size() * (4 + 2) * sizeof(std::uint64_t);
}

/// The bytes of a bridge_list's 1.5 extension: its list of schedules, per bridge a policy
/// and a priority per stream, its writers waiting now and at most, and its block timeouts.
std::size_t extension_1_5_bytes(const BridgeList& list) {
    std::size_t n = sizeof(std::uint32_t);
    for (const BridgeSummary& b : list.bridges) {
        n += 3 * sizeof(std::uint32_t) + sizeof(std::uint64_t) +
             (b.writers_waiting.size() + b.writers_waiting_most.size()) * sizeof(std::uint32_t);
        for (const BridgeStreamSummary& s : b.streams) {
            n += 2 * sizeof(std::uint32_t) + s.on_congestion.size();
        }
    }
    return n;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("every message type survives an encode-decode round trip with every field intact") {
    std::set<MsgType> seen;
    for (const Message& m : one_of_each()) {
        const MsgType type = type_of(m.body);
        CAPTURE(msg_type_name(type));
        seen.insert(type);
        const auto bytes = encoded(m);
        auto back = decode(bytes);
        INFO((back ? std::string{} : back.error().message()));
        REQUIRE(back);
        CHECK(back->request_id == m.request_id);
        CHECK(type_of(back->body) == type);
        CHECK(encoded(*back) == bytes);
    }
    CHECK(seen.size() == std::variant_size_v<Body>);
}

TEST_CASE("decoded fields equal the encoded ones, nested structs and lists included") {
    auto back = decode(encoded({42, OpenReply{sample_info("telemetry"), 6}}));
    REQUIRE(back);
    const auto& reply = std::get<OpenReply>(back->body);
    CHECK(reply.endpoint_index == 6);
    CHECK(reply.info.name == "telemetry");
    CHECK(reply.info.kind == ChannelKind::broadcast);
    CHECK(reply.info.overflow == Overflow::drop);
    CHECK(reply.info.slot_count == (1U << 20));
    CHECK(reply.info.creation_id == 0x0123456789abcdefULL);
    CHECK(reply.info.payload_bytes == 0x100000000ULL);

    auto list = decode(encoded({43, ClientList{{ClientSummary{77, 1, 2, 3, "w", 4, -5}}}}));
    REQUIRE(list);
    const auto& clients = std::get<ClientList>(list->body).clients;
    REQUIRE(clients.size() == 1);
    CHECK(clients[0].connected_since_ms == -5);
    CHECK(clients[0].name == "w");

    auto err = decode(encoded({44, ErrorReply{Errc::permission_denied, "not yours"}}));
    REQUIRE(err);
    const Error e = to_error(std::get<ErrorReply>(err->body));
    CHECK(e.code == Errc::permission_denied);
    CHECK(e.detail == "not yours");
}

TEST_CASE("a hello is encoded exactly as docs/protocol.md shows it") {
    const auto bytes = encoded({1, Hello{1, 0, 1, "demo"}});
    CHECK(bytes == bytes_of({0x53, 0x42, 0x55, 0x53, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
                             0x00, 0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
                             0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x64, 0x65, 0x6d, 0x6f}));
}

TEST_CASE("every truncation of a valid datagram is refused as a protocol error") {
    for (const Message& m : one_of_each()) {
        CAPTURE(msg_type_name(type_of(m.body)));
        const auto bytes = encoded(m);
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            CAPTURE(n);
            const auto r = decode(std::span{bytes}.first(n));
            REQUIRE_FALSE(r);
            CHECK(r.code() == Errc::protocol_error);
        }
    }
}

TEST_CASE("a body cut inside any field is refused even when the header agrees with its length") {
    for (const Message& m : one_of_each()) {
        const MsgType type = type_of(m.body);
        CAPTURE(msg_type_name(type));
        const auto bytes = encoded(m);
        for (std::size_t n = kHeaderBytes; n < bytes.size(); ++n) {
            CAPTURE(n);
            if (type == MsgType::create && n == bytes.size() - sizeof(std::uint32_t)) {
                continue; // a 1.0 create: the body ends before 'given' (tested below)
            }
            if (type == MsgType::channel_detail && n == bytes.size() - kEndpointBlocksBytes) {
                continue; // a 1.2 channel_detail: it ends before 'endpoint_blocks' (below)
            }
            if (type == MsgType::bridge_list) {
                const auto& list = std::get<BridgeList>(m.body);
                const std::size_t v1_5 = extension_1_5_bytes(list);
                const std::size_t v1_4 = extension_1_4_bytes(list);
                if (n == bytes.size() - v1_5 - v1_4 - transports_bytes(list)) {
                    continue; // a 1.2 bridge_list: the body ends before 'transports'
                }
                if (n == bytes.size() - v1_5 - v1_4) {
                    continue; // a 1.3 bridge_list: the body ends before 'losses'
                }
                if (n == bytes.size() - v1_5) {
                    continue; // a 1.4 bridge_list: the body ends before 'schedules'
                }
            }
            std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
            fix_body_length(cut);
            const auto r = decode(cut);
            REQUIRE_FALSE(r);
            CHECK(r.code() == Errc::protocol_error);
            CHECK(contains(r.error().detail, std::string{msg_type_name(type)} + ": field '"));
            CHECK(contains(r.error().detail, "truncated"));
        }
    }
}

TEST_CASE("a create from a 1.0 client, without 'given', decodes with every field given") {
    ChannelSpec spec;
    spec.name = "old";
    spec.slot_count = 0; // what a 1.0 client sent for "left out"
    auto bytes = encoded({1, Create{spec, kSpecKind}});
    bytes.resize(bytes.size() - sizeof(std::uint32_t));
    fix_body_length(bytes);
    auto r = decode(bytes);
    INFO((r ? std::string{} : r.error().message()));
    REQUIRE(r);
    const auto* c = std::get_if<Create>(&r->body);
    REQUIRE(c != nullptr);
    CHECK(c->given == kAllSpecFields);
    CHECK(c->spec.slot_count == 0);
}

TEST_CASE("a channel_detail from a 1.2 daemon, without 'endpoint_blocks', decodes with 0 held") {
    auto bytes = encoded(one_of_each()[14]);
    bytes.resize(bytes.size() - kEndpointBlocksBytes);
    fix_body_length(bytes);
    auto r = decode(bytes);
    INFO((r ? std::string{} : r.error().message()));
    REQUIRE(r);
    const auto* d = std::get_if<ChannelDetail>(&r->body);
    REQUIRE(d != nullptr);
    REQUIRE(d->endpoints.size() == 2);
    CHECK(d->endpoints[0].lost == 6);
    CHECK(d->endpoints[0].held == 0);
    CHECK(d->endpoints[1].held == 0);
}

TEST_CASE("a bridge_list from a 1.3 daemon, without 1.4's losses and fragments, decodes with "
          "neither") {
    BridgeSummary bridge;
    bridge.name = "ground";
    bridge.lost_link_down = 3;
    bridge.fragments_sent = 5;
    bridge.fragments_received = 7;
    const BridgeList list{{bridge}};
    auto bytes = encoded({1, list});
    auto whole = decode(bytes);
    REQUIRE(whole);
    CHECK(std::get<BridgeList>(whole->body).bridges.at(0).lost_link_down == 3);
    CHECK(std::get<BridgeList>(whole->body).bridges.at(0).fragments_sent == 5);
    CHECK(std::get<BridgeList>(whole->body).bridges.at(0).fragments_received == 7);
    bytes.resize(bytes.size() - extension_1_5_bytes(list) - extension_1_4_bytes(list));
    fix_body_length(bytes);
    auto r = decode(bytes);
    INFO((r ? std::string{} : r.error().message()));
    REQUIRE(r);
    const auto& b = std::get<BridgeList>(r->body).bridges.at(0);
    CHECK(b.name == "ground");
    CHECK(b.lost_link_down == 0);
    CHECK(b.fragments_sent == 0);
    CHECK(b.fragments_received == 0);
}

TEST_CASE("a bridge_list whose 1.4 extension ends after its losses is refused, naming "
          "'fragments'") {
    BridgeSummary bridge;
    bridge.name = "ground";
    const BridgeList list{{bridge}};
    auto bytes = encoded({1, list});
    // The fragments list (its count and two u64 for the one bridge) comes before 1.5's.
    bytes.resize(bytes.size() - extension_1_5_bytes(list) - sizeof(std::uint32_t) -
                 2 * sizeof(std::uint64_t));
    fix_body_length(bytes);
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "fragments"));
}

TEST_CASE("a bridge_list from a 1.4 daemon, without 1.5's schedules, decodes with none") {
    BridgeSummary bridge;
    bridge.name = "ground";
    bridge.fragments_sent = 5;
    bridge.streams = {
        BridgeStreamSummary{"telemetry", "robot1/telemetry", true, 10, 1280, 2, 64, "block", 7}};
    bridge.writers_waiting = {0, 0, 0, 0, 0, 0, 0, 1, 0};
    bridge.writers_waiting_most = {0, 0, 0, 0, 0, 0, 0, 2, 1};
    bridge.block_timeouts = 4;
    const BridgeList list{{bridge}};
    auto bytes = encoded({1, list});
    auto whole = decode(bytes);
    REQUIRE(whole);
    const auto& all = std::get<BridgeList>(whole->body).bridges.at(0);
    CHECK(all.streams.at(0).on_congestion == "block");
    CHECK(all.streams.at(0).priority == 7);
    CHECK(all.writers_waiting == bridge.writers_waiting);
    CHECK(all.writers_waiting_most == bridge.writers_waiting_most);
    CHECK(all.block_timeouts == 4);
    bytes.resize(bytes.size() - extension_1_5_bytes(list));
    fix_body_length(bytes);
    auto r = decode(bytes);
    INFO((r ? std::string{} : r.error().message()));
    REQUIRE(r);
    const auto& b = std::get<BridgeList>(r->body).bridges.at(0);
    CHECK(b.fragments_sent == 5);
    CHECK(b.streams.at(0).credits == 64);
    CHECK(b.streams.at(0).on_congestion.empty());
    CHECK(b.streams.at(0).priority == 0);
    CHECK(b.writers_waiting.empty());
    CHECK(b.block_timeouts == 0);
}

TEST_CASE("a bridge_list whose schedule does not have one entry per stream is refused, naming "
          "the bridge") {
    BridgeSummary bridge;
    bridge.name = "ground";
    bridge.streams = {
        BridgeStreamSummary{"telemetry", "robot1/telemetry", true, 1, 1, 0, 1, "drop_oldest", 3}};
    const BridgeList list{{bridge}};
    auto bytes = encoded({1, list});
    // The schedule's streams list: after the schedules' count, its own count (1), then the
    // stream's policy and priority; make the count 0 and drop the entry.
    const std::size_t schedules_at = bytes.size() - extension_1_5_bytes(list);
    const std::size_t entry_at = schedules_at + 2 * sizeof(std::uint32_t);
    const std::size_t entry_bytes = 2 * sizeof(std::uint32_t) + std::string{"drop_oldest"}.size();
    set_u32(bytes, schedules_at + sizeof(std::uint32_t), 0);
    bytes.erase(bytes.begin() + static_cast<long>(entry_at),
                bytes.begin() + static_cast<long>(entry_at + entry_bytes));
    fix_body_length(bytes);
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "schedules"));
    CHECK(contains(r.error().detail, "bridge 'ground'"));
}

TEST_CASE("a channel_detail whose 'endpoint_blocks' does not match its endpoints is refused") {
    ChannelDetail detail{sample_summary("pool", 1),
                         {EndpointDetail{Role::publisher, 0, 1, 2, 3, "w", 0, 0, 7}}};
    auto bytes = encoded({1, detail});
    // Replace 'endpoint_blocks' (count 1 and one u64) by an empty list.
    bytes.resize(bytes.size() - sizeof(std::uint64_t) - sizeof(std::uint32_t));
    const std::uint32_t none = 0;
    const auto* p = reinterpret_cast<const std::byte*>(&none);
    bytes.insert(bytes.end(), p, p + sizeof none);
    fix_body_length(bytes);
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail,
                   "channel_detail: field 'endpoint_blocks' has 0 entries for 1 endpoints"));
}

TEST_CASE("a create whose 'given' has bits no version defines is refused naming the field") {
    ChannelSpec spec;
    spec.name = "odd";
    auto bytes = encoded({1, Create{spec, kSpecKind}});
    bytes[bytes.size() - 1] = std::byte{0x80};
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "create: field 'given' has bits no protocol version defines"));
}

TEST_CASE("the error for a truncated nested field names its full path") {
    auto bytes = encoded({1, ChannelList{{sample_summary("a", 1), sample_summary("b", 2)}}});
    bytes.resize(bytes.size() - 1); // the last field of the second element
    fix_body_length(bytes);
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.error().detail ==
          "channel_list: field 'channels[1].dynamic' is truncated: 1 byte needed, 0 left");
}

TEST_CASE("extension bytes appended to a body by a newer minor version are ignored") {
    for (const Message& m : one_of_each()) {
        CAPTURE(msg_type_name(type_of(m.body)));
        const auto bytes = encoded(m);
        auto extended = bytes;
        for (unsigned i = 0; i < 9; ++i) {
            extended.push_back(static_cast<std::byte>(0xa0 + i));
        }
        fix_body_length(extended);
        auto r = decode(extended);
        INFO((r ? std::string{} : r.error().message()));
        REQUIRE(r);
        CHECK(encoded(*r) == bytes);
    }
}

TEST_CASE("bytes beyond the header's body length are refused as framing garbage") {
    auto bytes = encoded({1, Ping{5}});
    bytes.push_back(std::byte{0});
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "announces 8 body bytes, the datagram carries 9"));
}

TEST_CASE("a datagram with the wrong magic is refused") {
    auto bytes = encoded({1, Ping{5}});
    bytes[0] = std::byte{'X'};
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "bad magic"));
}

TEST_CASE("a peer of another protocol major is refused with version_mismatch naming both") {
    auto bytes = encoded({1, Hello{}});
    set_u16(bytes, 4, 2);
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::version_mismatch);
    CHECK(r.error().detail == "the peer speaks control protocol 2, this side speaks 1");
}

TEST_CASE("an unknown message type is refused naming its number") {
    for (const std::uint16_t type : {0, 21, 99, 102, 0xffff}) {
        CAPTURE(type);
        auto bytes = encoded({1, Ping{5}});
        set_u16(bytes, 6, type);
        const auto r = decode(bytes);
        REQUIRE_FALSE(r);
        CHECK(r.code() == Errc::protocol_error);
        CHECK(contains(r.error().detail, "unknown message type " + std::to_string(type)));
    }
}

TEST_CASE("a header announcing a body above kMaxBodyBytes is refused") {
    auto bytes = encoded({1, Ping{5}});
    set_u32(bytes, 12, static_cast<std::uint32_t>(kMaxBodyBytes + 1));
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "exceeds the limit"));
}

TEST_CASE("a string above kMaxStringBytes is refused by encode and by decode") {
    Hello hello;
    hello.client_name.assign(kMaxStringBytes, 'x');
    auto at_limit = decode(encoded({1, hello}));
    REQUIRE(at_limit);
    CHECK(std::get<Hello>(at_limit->body).client_name.size() == kMaxStringBytes);

    hello.client_name.push_back('x');
    const auto refused = encode({1, hello});
    REQUIRE_FALSE(refused);
    CHECK(refused.code() == Errc::invalid_argument);
    CHECK(refused.error().detail ==
          "cannot encode hello: field 'client_name' is 4097 bytes, above the limit of 4096");

    // The same string forged onto the wire: length and bytes both present.
    hello.client_name.pop_back();
    auto bytes = encoded({1, hello});
    set_u32(bytes, kHeaderBytes + 8, static_cast<std::uint32_t>(kMaxStringBytes + 1));
    bytes.push_back(std::byte{'x'});
    fix_body_length(bytes);
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(r.error().detail ==
          "hello: field 'client_name' claims 4097 bytes, above the limit of 4096");
}

TEST_CASE("a list above kMaxListItems is refused by encode and by decode") {
    DaemonStatus status;
    status.config_files.assign(kMaxListItems, "f");
    REQUIRE(decode(encoded({1, status})));

    status.config_files.emplace_back("f");
    const auto refused = encode({1, status});
    REQUIRE_FALSE(refused);
    CHECK(refused.code() == Errc::invalid_argument);
    CHECK(contains(refused.error().detail, "'config_files' has 4097 items"));

    auto bytes = encoded({1, ClientList{}});
    set_u32(bytes, kHeaderBytes, static_cast<std::uint32_t>(kMaxListItems + 1));
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "'clients' claims 4097 items"));
}

TEST_CASE("a list count the bytes cannot back is refused as truncated") {
    auto bytes = encoded({1, ClientList{}});
    set_u32(bytes, kHeaderBytes, static_cast<std::uint32_t>(kMaxListItems));
    const auto r = decode(bytes);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::protocol_error);
    CHECK(contains(r.error().detail, "clients[0].client_id' is truncated"));
}

TEST_CASE("a message above kMaxMessageBytes is refused by encode") {
    ChannelList list;
    list.channels.assign(1000, sample_summary(std::string(200, 'n'), 0));
    const auto r = encode({1, list});
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(contains(r.error().detail, "would exceed " + std::to_string(kMaxMessageBytes)));
}

TEST_CASE("an undefined enum value is refused on decode naming the field") {
    struct Case {
        Message a;
        Message b; ///< differs from `a` only in the enum under test
        std::uint32_t bad;
        std::string expected;
    };
    auto info_with = [](ChannelKind k, Overflow o) {
        ChannelInfo i = sample_info("t");
        i.kind = k;
        i.overflow = o;
        return i;
    };
    std::vector<Case> cases{
        {{1, Open{"t", Role::publisher, 0}},
         {1, Open{"t", Role::subscriber, 0}},
         0,
         "open: field 'role' holds 0, which is not a valid Role"},
        {{1, Open{"t", Role::publisher, 0}},
         {1, Open{"t", Role::publisher, 1}},
         3,
         "open: field 'wait_mode' is not a WaitMode (0 spin, 1 adaptive, 2 blocking)"},
        {{1, Close{"t", Role::publisher, 0}},
         {1, Close{"t", Role::subscriber, 0}},
         7,
         "close: field 'role' holds 7, which is not a valid Role"},
        {{1, OpenReply{info_with(ChannelKind::queue, Overflow::block), 0}},
         {1, OpenReply{info_with(ChannelKind::broadcast, Overflow::block), 0}},
         3,
         "open_reply: field 'info.kind' holds 3, which is not a valid ChannelKind"},
        {{1, OpenReply{info_with(ChannelKind::queue, Overflow::block), 0}},
         {1, OpenReply{info_with(ChannelKind::queue, Overflow::drop), 0}},
         2,
         "open_reply: field 'info.overflow' holds 2, which is not a valid Overflow"},
        {{1, ErrorReply{Errc::would_block, ""}},
         {1, ErrorReply{Errc::timed_out, ""}},
         0,
         "error: field 'code' holds 0, which is not a valid Errc"},
        {{1, ErrorReply{Errc::would_block, ""}},
         {1, ErrorReply{Errc::timed_out, ""}},
         999,
         "error: field 'code' holds 999, which is not a valid Errc"},
        {{1, ChannelList{{ChannelSummary{sample_info("t"), {}, false}}}},
         {1, ChannelList{{ChannelSummary{sample_info("t"), {}, true}}}},
         2,
         "channel_list: field 'channels[0].dynamic' holds 2, which is not a boolean (0 or 1)"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.expected);
        const auto a = encoded(c.a);
        const std::size_t at = first_difference(a, encoded(c.b));
        auto forged = a;
        // Enums are u32 except Errc (u16) and booleans (u8); write only the low bytes that
        // the field has, the offsets of the others stay as they are.
        forged[at] = static_cast<std::byte>(c.bad & 0xffU);
        if (at + 1 < forged.size() && c.bad > 0xff) {
            forged[at + 1] = static_cast<std::byte>(c.bad >> 8);
        }
        const auto r = decode(forged);
        REQUIRE_FALSE(r);
        CHECK(r.code() == Errc::protocol_error);
        CHECK(r.error().detail == c.expected);
    }
}

TEST_CASE("encode refuses an enum value the protocol does not define") {
    const auto role = encode({1, Open{"t", static_cast<Role>(9), 0}});
    REQUIRE_FALSE(role);
    CHECK(role.code() == Errc::invalid_argument);
    CHECK(role.error().detail ==
          "cannot encode open: field 'role' holds 9, which is not a valid Role");

    const auto wait = encode({1, Open{"t", Role::publisher, 3}});
    REQUIRE_FALSE(wait);
    CHECK(wait.code() == Errc::invalid_argument);

    const auto code = encode({1, ErrorReply{Errc{}, "x"}});
    REQUIRE_FALSE(code);
    CHECK(code.code() == Errc::invalid_argument);
}

TEST_CASE("msg_type_name and type_of agree for every message type") {
    for (const Message& m : one_of_each()) {
        const MsgType type = type_of(m.body);
        CHECK(msg_type_name(type) != "unknown");
    }
    CHECK(type_of(Body{OpenReply{}}) == MsgType::open_reply);
    CHECK(type_of(Body{StatusReply{}}) == MsgType::status_reply);
    CHECK(type_of(Body{ErrorReply{}}) == MsgType::error);
    CHECK(msg_type_name(MsgType::channel_detail) == "channel_detail");
    CHECK(msg_type_name(static_cast<MsgType>(77)) == "unknown");
}

TEST_CASE("a seeded stream of random and mutated datagrams never crashes the decoder") {
    std::mt19937_64 rng{20240611};
    const auto valid = one_of_each();
    std::vector<std::vector<std::byte>> seeds;
    for (const Message& m : valid) {
        seeds.push_back(encoded(m));
    }
    auto byte = [&] { return static_cast<std::byte>(rng() & 0xffU); };
    std::size_t accepted = 0;
    constexpr int kInputs = 120000;
    for (int i = 0; i < kInputs; ++i) {
        std::vector<std::byte> input;
        switch (i % 3) {
        case 0: { // pure noise
            input.resize(rng() % 96);
            std::generate(input.begin(), input.end(), byte);
            break;
        }
        case 1: { // a valid header of a random type, then noise: exercises the body decoders
            input.resize(kHeaderBytes + rng() % 200);
            std::generate(input.begin(), input.end(), byte);
            set_u32(input, 0, kMagic);
            set_u16(input, 4, kProtocolMajor);
            set_u16(input, 6,
                    static_cast<std::uint16_t>(rng() % 2 ? 1 + rng() % 18 : 100 + rng() % 2));
            fix_body_length(input);
            break;
        }
        default: { // a valid message with a few bytes flipped, cut or extended
            input = seeds[rng() % seeds.size()];
            const int flips = 1 + static_cast<int>(rng() % 4);
            for (int f = 0; f < flips; ++f) {
                // Mostly in the body, where the decoder has the most to get wrong.
                const std::size_t body = input.size() - kHeaderBytes;
                const std::size_t at =
                    body > 0 && rng() % 8 != 0 ? kHeaderBytes + rng() % body : rng() % input.size();
                input[at] = byte();
            }
            if (rng() % 4 == 0) {
                input.resize(rng() % (input.size() + 8), std::byte{0x7f});
                if (input.size() >= kHeaderBytes) {
                    fix_body_length(input);
                }
            }
            break;
        }
        }
        // Assertions only on failure: 120k passing REQUIREs would dominate the run time.
        const auto r = decode(input);
        if (r) {
            ++accepted;
            // Whatever was accepted must encode again (its fields are within the limits).
            if (!encode(*r)) {
                FAIL("input " << i << " decoded but does not encode again");
            }
        } else if (r.code() != Errc::protocol_error && r.code() != Errc::version_mismatch) {
            FAIL("input " << i << " refused with " << r.error().message());
        }
    }
    CHECK(accepted > 0); // the mutations do reach successful decodes, not only early refusals
}

} // namespace shmbus::proto
