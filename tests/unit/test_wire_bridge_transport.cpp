// The transport fields of `bridge_list` (protocol 1.3: NATS bridges' servers and counters),
// which travel as a list appended to the body rather than inside BridgeSummary: a 1.2 body
// without them still decodes, and a list that does not match the bridges is refused.
#include "protocol/wire.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::proto {

namespace {

BridgeSummary named(const std::string& name) {
    BridgeSummary b;
    b.name = name;
    b.state = "connected";
    return b;
}

std::vector<std::byte> encoded(const BridgeList& list) {
    auto bytes = encode(Message{7, list});
    INFO((bytes ? std::string{} : bytes.error().message()));
    REQUIRE(bytes);
    return std::move(*bytes);
}

/// Rewrites the header's body length to what the datagram really carries.
void fix_body_length(std::vector<std::byte>& b) {
    const auto length = static_cast<std::uint32_t>(b.size() - kHeaderBytes);
    for (std::size_t i = 0; i < 4; ++i) {
        b[12 + i] = static_cast<std::byte>((length >> (8 * i)) & 0xffU);
    }
}

/// The bytes of one BridgeTransport with empty strings and lists: transport, known_servers
/// (a length or count of 0 each) and three u64 counters.
constexpr std::size_t kEmptyTransportBytes = 4 + 4 + 3 * 8;

} // namespace

/// The bytes of bridge_list's 1.4 extension for `bridges` bridges: the count of its list of
/// losses and four u64 each, then the count of its list of fragments and two u64 each.
constexpr std::size_t extension_1_4_bytes(std::size_t bridges) {
    return 4 + bridges * 4 * 8 + 4 + bridges * 2 * 8;
}

/// The bytes of bridge_list's 1.5 extension for `bridges` bridges without streams or a live
/// link: the count of its list of schedules, and each one's counts of streams, writers waiting
/// now and at most (all 0), and its block timeouts (a u64).
constexpr std::size_t extension_1_5_bytes(std::size_t bridges) {
    return 4 + bridges * (4 + 4 + 4 + 8);
}

TEST_CASE("a bridge_list's transport fields round-trip beside each bridge") {
    BridgeSummary link = named("ground");
    link.transport = "link";
    BridgeSummary nats = named("fleet");
    nats.transport = "nats";
    nats.known_servers = {"nats://10.0.0.5:4222", "nats://10.0.0.6:4222"};
    nats.pending_bytes = 1 << 20;
    nats.duplicates = 3;
    nats.looped = 12;
    auto back = decode(encoded(BridgeList{{link, nats}}));
    REQUIRE(back);
    const auto& list = std::get<BridgeList>(back->body);
    REQUIRE(list.bridges.size() == 2);
    CHECK(list.bridges[0].transport == "link");
    CHECK(list.bridges[0].known_servers.empty());
    CHECK(list.bridges[1].transport == "nats");
    CHECK(list.bridges[1].known_servers == nats.known_servers);
    CHECK(list.bridges[1].pending_bytes == nats.pending_bytes);
    CHECK(list.bridges[1].duplicates == 3);
    CHECK(list.bridges[1].looped == 12);
}

TEST_CASE("a bridge_list from a 1.2 daemon, without transport fields, decodes with them empty") {
    auto bytes = encoded(BridgeList{{named("ground")}});
    // What 1.5 appended (schedules), what 1.4 appended (losses, then fragments), then what
    // 1.3 appended: the count of the list, and one entry.
    bytes.resize(bytes.size() - extension_1_5_bytes(1) - extension_1_4_bytes(1) - 4 -
                 kEmptyTransportBytes);
    fix_body_length(bytes);
    auto back = decode(bytes);
    INFO((back ? std::string{} : back.error().message()));
    REQUIRE(back);
    const auto& list = std::get<BridgeList>(back->body);
    REQUIRE(list.bridges.size() == 1);
    CHECK(list.bridges[0].name == "ground");
    CHECK(list.bridges[0].transport.empty());
}

TEST_CASE("a bridge_list whose transport fields do not match its bridges is refused, naming "
          "both counts") {
    auto bytes = encoded(BridgeList{{named("ground"), named("fleet")}});
    // A 1.3 body (without the losses and fragments 1.4 appended, nor 1.5's schedules); drop
    // the second entry and say there is one.
    bytes.resize(bytes.size() - extension_1_5_bytes(2) - extension_1_4_bytes(2) -
                 kEmptyTransportBytes);
    const std::size_t count_at = bytes.size() - kEmptyTransportBytes - 4;
    bytes[count_at] = std::byte{1};
    fix_body_length(bytes);
    auto back = decode(bytes);
    REQUIRE_FALSE(back);
    CHECK(back.error().code == Errc::protocol_error);
    CHECK(back.error().detail.find("transports") != std::string::npos);
    CHECK(back.error().detail.find("1 entries for 2 bridges") != std::string::npos);
}

} // namespace shmbus::proto

namespace shmbus::proto {

TEST_CASE("a bridge_list carries each bridge's loss by cause (1.4)") {
    BridgeSummary b = named("ground");
    b.lost_link_down = 3;
    b.lost_congestion = 5;
    b.lost_upstream = 7;
    b.type_refusals = 1;
    auto back = decode(encoded(BridgeList{{b}}));
    REQUIRE(back);
    const auto& got = std::get<BridgeList>(back->body).bridges.at(0);
    CHECK(got.lost_link_down == 3);
    CHECK(got.lost_congestion == 5);
    CHECK(got.lost_upstream == 7);
    CHECK(got.type_refusals == 1);
}

} // namespace shmbus::proto
