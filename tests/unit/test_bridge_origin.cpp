// Tests of protocol 2's additions to the bridge frames (daemon/gateway/frame.cpp: origin_data
// frames, the offer's type) and of the origin ledger (daemon/gateway/origin.cpp): the dedup
// marks deliver each message of an origin once and count each gap once, whichever path shows
// it, within their bounds; the runs give a re-exported message its origin back.
#include "gateway/frame.hpp"
#include "gateway/origin.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace shmbus::gateway {
namespace {

constexpr MessageOrigin kOrigin{0x1001, 0xc0ffee, 500};

/// An origin_data frame of `messages` (each its own bytes).
std::vector<std::byte> origin_frame(std::uint32_t stream, std::uint64_t first,
                                    const MessageOrigin& origin,
                                    const std::vector<std::string>& messages) {
    std::vector<std::uint32_t> lengths;
    for (const auto& m : messages) {
        lengths.push_back(static_cast<std::uint32_t>(m.size()));
    }
    std::vector<std::byte> out;
    REQUIRE(encode_origin_data_prefix(stream, first, origin, lengths, kDefaultDataBody, out)
                .has_value());
    for (const auto& m : messages) {
        const auto* p = reinterpret_cast<const std::byte*>(m.data());
        out.insert(out.end(), p, p + m.size());
    }
    return out;
}

void put_u64(std::vector<std::byte>& b, std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
        b[at + i] = static_cast<std::byte>((v >> (8 * i)) & 0xffU);
    }
}

/// Where an origin_data frame's origin fields sit: after the header, stream, first sequence
/// and count.
constexpr std::size_t kDaemonAt = kHeaderBytes + 4 + 8 + 4;
constexpr std::size_t kChannelAt = kDaemonAt + 8;
constexpr std::size_t kFirstAt = kChannelAt + 8;

Error decode_error(std::span<const std::byte> bytes) {
    auto r = decode(bytes, kDefaultDataBody);
    REQUIRE_FALSE(r.has_value());
    return r.error();
}

Offer sample_offer() {
    return Offer{7, 0, "imu", ChannelKind::broadcast, Overflow::drop, 64, 8, 1, 0, std::nullopt};
}

} // namespace

TEST_CASE("an origin_data frame round-trips with its origin and its messages") {
    const auto bytes = origin_frame(3, 41, kOrigin, {"alpha", "", "gamma"});
    auto decoded = decode(bytes, kDefaultDataBody);
    REQUIRE(decoded.has_value());
    CHECK(type_of(decoded.value()) == FrameType::origin_data);
    const auto& d = std::get<DataView>(decoded.value());
    CHECK(d.stream() == 3);
    CHECK(d.first_sequence() == 41);
    REQUIRE(d.count() == 3);
    REQUIRE(d.origin().has_value());
    CHECK(*d.origin() == kOrigin);
    std::vector<std::string> seen;
    d.for_each([&](std::uint64_t, std::span<const std::byte> m) {
        seen.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
    });
    CHECK(seen == std::vector<std::string>{"alpha", "", "gamma"});
}

TEST_CASE("a protocol 1 data frame carries no origin") {
    std::vector<std::byte> out;
    const std::vector<std::uint32_t> lengths{1};
    REQUIRE(encode_data_prefix(3, 1, lengths, kDefaultDataBody, out).has_value());
    out.push_back(std::byte{'x'});
    auto decoded = decode(out, kDefaultDataBody);
    REQUIRE(decoded.has_value());
    CHECK(type_of(decoded.value()) == FrameType::data);
    CHECK_FALSE(std::get<DataView>(decoded.value()).origin().has_value());
}

TEST_CASE("an origin_data frame with a zero origin field is refused naming the field") {
    for (const auto& [at, name] : {std::pair{kDaemonAt, "daemon"}, std::pair{kChannelAt, "channel"},
                                   std::pair{kFirstAt, "first_sequence"}}) {
        CAPTURE(name);
        auto bytes = origin_frame(3, 41, kOrigin, {"alpha"});
        put_u64(bytes, at, 0);
        const Error e = decode_error(bytes);
        CHECK(e.code == Errc::protocol_error);
        CHECK_THAT(e.detail, Catch::Contains("origin_data") && Catch::Contains("origin") &&
                                 Catch::Contains(name) && Catch::Contains("is 0"));
    }
}

TEST_CASE("an origin_data frame whose origin sequences would wrap is refused") {
    auto bytes = origin_frame(3, 41, kOrigin, {"a", "b"});
    put_u64(bytes, kFirstAt, ~std::uint64_t{0});
    const Error e = decode_error(bytes);
    CHECK(e.code == Errc::protocol_error);
    CHECK_THAT(e.detail, Catch::Contains("first_sequence") && Catch::Contains("wraps"));
}

TEST_CASE("an origin_data frame cut inside its origin is refused as a protocol error") {
    const auto whole = origin_frame(3, 41, kOrigin, {"alpha"});
    for (std::size_t n = kHeaderBytes + 16; n < kFirstAt + 8; ++n) {
        CAPTURE(n);
        std::vector<std::byte> cut{whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n)};
        // The header says the body ends here, so that the body itself is what is short.
        const auto body = static_cast<std::uint32_t>(n - kHeaderBytes);
        for (int i = 0; i < 4; ++i) {
            cut[8 + i] = static_cast<std::byte>((body >> (8 * i)) & 0xffU);
        }
        CHECK(decode_error(cut).code == Errc::protocol_error);
    }
}

TEST_CASE("an origin_data prefix with a zero origin field is not encoded") {
    std::vector<std::byte> out;
    const std::vector<std::uint32_t> lengths{1};
    auto r =
        encode_origin_data_prefix(3, 1, MessageOrigin{0, 1, 1}, lengths, kDefaultDataBody, out);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::invalid_argument);
}

TEST_CASE("an offer's type round-trips, and an offer without one decodes as protocol 1's") {
    Offer typed = sample_offer();
    typed.type = "sensor_msgs/Imu@v2";
    auto bytes = encode(typed);
    REQUIRE(bytes.has_value());
    auto back = decode(bytes.value(), kDefaultDataBody);
    REQUIRE(back.has_value());
    CHECK(std::get<Offer>(back.value()).type == std::optional<std::string>{"sensor_msgs/Imu@v2"});

    bytes = encode(sample_offer());
    REQUIRE(bytes.has_value());
    back = decode(bytes.value(), kDefaultDataBody);
    REQUIRE(back.has_value());
    CHECK_FALSE(std::get<Offer>(back.value()).type.has_value());
}

TEST_CASE("an offer whose type is not a type name is refused naming the field") {
    for (const std::string& bad : {std::string{"two words"}, std::string{"tab\there"},
                                   std::string(kMaxTypeBytes + 1, 'x')}) {
        CAPTURE(bad);
        Offer o = sample_offer();
        o.type = bad;
        const auto refused = encode(o);
        REQUIRE_FALSE(refused.has_value());
        CHECK_THAT(refused.error().detail, Catch::Contains("type"));
        // The same bytes from a peer: encode a valid type of the same length, then alter it.
        Offer ok = sample_offer();
        ok.type = std::string(std::min(bad.size(), kMaxTypeBytes), 'x');
        auto bytes = encode(ok);
        REQUIRE(bytes.has_value());
        if (bad.size() <= kMaxTypeBytes) {
            auto& b = bytes.value();
            std::memcpy(b.data() + (b.size() - bad.size()), bad.data(), bad.size());
            const Error e = decode_error(b);
            CHECK(e.code == Errc::protocol_error);
            CHECK_THAT(e.detail, Catch::Contains("offer") && Catch::Contains("'type'"));
        }
    }
}

TEST_CASE("type names: visible ASCII, 1 to 255 bytes") {
    CHECK(type_name_ok("sensor_msgs/Imu@v2"));
    CHECK(type_name_ok(std::string(kMaxTypeBytes, '~')));
    CHECK_FALSE(type_name_ok(""));
    CHECK_FALSE(type_name_ok("a b"));
    CHECK_FALSE(type_name_ok("caf\xc3\xa9"));
    CHECK_FALSE(type_name_ok(std::string(kMaxTypeBytes + 1, 'x')));
}

TEST_CASE("the dedup marks deliver each message of an origin once, whichever path brings it") {
    ChannelOrigins c;
    // Path 1 brings 500..509 first: all new, nothing lost before the first one met.
    Admission a = c.admit(kOrigin, 10);
    CHECK(a.skip == 0);
    CHECK(a.gap == 0);
    // Path 2 brings the same ten: all duplicates.
    a = c.admit(kOrigin, 10);
    CHECK(a.skip == 10);
    CHECK(a.gap == 0);
    // Path 2 brings 505..514: the first five were delivered, the rest are new.
    a = c.admit(MessageOrigin{kOrigin.daemon, kOrigin.channel, 505}, 10);
    CHECK(a.skip == 5);
    CHECK(a.gap == 0);
    // Path 1 jumps to 520: 515..519 were lost upstream, counted once.
    a = c.admit(MessageOrigin{kOrigin.daemon, kOrigin.channel, 520}, 1);
    CHECK(a.skip == 0);
    CHECK(a.gap == 5);
    // Path 2 brings 515..519 late: they were counted lost and are not delivered out of order.
    a = c.admit(MessageOrigin{kOrigin.daemon, kOrigin.channel, 515}, 5);
    CHECK(a.skip == 5);
    CHECK(a.gap == 0);
    // Another origin channel has marks of its own.
    a = c.admit(MessageOrigin{kOrigin.daemon, 0xbeef, 1}, 3);
    CHECK(a.skip == 0);
    CHECK(c.origins() == 2);
}

TEST_CASE("what an importer gives back is delivered or counted again, unless passed since") {
    ChannelOrigins c;
    (void)c.admit(kOrigin, 10);                                             // 500..509
    (void)c.admit(MessageOrigin{kOrigin.daemon, kOrigin.channel, 510}, 10); // 510..519
    // 514..519 could not be published before the link ended.
    c.give_back(kOrigin.channel, 514, 520);
    Admission a = c.admit(MessageOrigin{kOrigin.daemon, kOrigin.channel, 514}, 6);
    CHECK(a.skip == 0);
    CHECK(a.gap == 0);
    // A give-back that does not end where the marks stand changes nothing.
    c.give_back(kOrigin.channel, 510, 515);
    a = c.admit(MessageOrigin{kOrigin.daemon, kOrigin.channel, 520}, 1);
    CHECK(a.skip == 0);
    CHECK(a.gap == 0);
}

TEST_CASE("the dedup marks forget the least recently seen origin past their bound") {
    ChannelOrigins c;
    for (std::uint64_t ch = 1; ch <= ChannelOrigins::kMaxOrigins; ++ch) {
        (void)c.admit(MessageOrigin{1, ch, 10}, 1);
    }
    (void)c.admit(MessageOrigin{1, 1, 11}, 1); // origin channel 1 seen again: the newest
    CHECK(c.origins() == ChannelOrigins::kMaxOrigins);
    (void)c.admit(MessageOrigin{1, 100000, 1}, 1); // one more: channel 2 is forgotten
    CHECK(c.origins() == ChannelOrigins::kMaxOrigins);
    // Channel 1 is still known: its old message is a duplicate.
    CHECK(c.admit(MessageOrigin{1, 1, 11}, 1).skip == 1);
    // Channel 2 was forgotten: its old message is taken as new (the bound's cost).
    CHECK(c.admit(MessageOrigin{1, 2, 10}, 1).skip == 0);
}

TEST_CASE("a queue's origin sequences are admitted by the set seen, holes and order aside") {
    ChannelOrigins c;
    auto at = [](std::uint64_t first) {
        return MessageOrigin{kOrigin.daemon, kOrigin.channel, first};
    };
    // Path 1 brings 500..503, path 2 then 490..491 (older, never seen), path 1 510 after a
    // hole: all new, and a hole is no gap.
    OnceAdmission a = c.admit_once(at(500), 4);
    CHECK(a.skip == 0);
    CHECK(a.take == 4);
    a = c.admit_once(at(490), 2);
    CHECK(a.skip == 0);
    CHECK(a.take == 2);
    a = c.admit_once(at(510), 1);
    CHECK(a.take == 1);
    // 502..506: the first two came already; the three after them are new.
    a = c.admit_once(at(502), 5);
    CHECK(a.skip == 2);
    CHECK(a.take == 3);
    // 505..512: 505 and 506 came, 507..509 are new, and the call stops before 510 (seen):
    // what follows is for the next call, which skips 510 and takes 511 and 512.
    a = c.admit_once(at(505), 8);
    CHECK(a.skip == 2);
    CHECK(a.take == 3);
    a = c.admit_once(at(510), 3);
    CHECK(a.skip == 1);
    CHECK(a.take == 2);
    // Everything seen: all skipped.
    a = c.admit_once(at(490), 2);
    CHECK(a.skip == 2);
    CHECK(a.take == 0);
    CHECK(c.origins() == 1);
}

TEST_CASE("a queue's origin sequences given back are taken again, the others stay seen") {
    ChannelOrigins c;
    const MessageOrigin o{kOrigin.daemon, kOrigin.channel, 100};
    (void)c.admit_once(o, 10); // 100..109
    c.give_back_once(o.channel, 105, 110);
    OnceAdmission a = c.admit_once(o, 10);
    CHECK(a.skip == 5);
    CHECK(a.take == 5);
    // A channel never seen gives back nothing, and changes nothing.
    c.give_back_once(0xbeef, 1, 5);
    CHECK(c.origins() == 1);
}

TEST_CASE("a queue's set of seen sequences reaches kQueueWindow below the highest") {
    ChannelOrigins c;
    constexpr std::uint64_t w = ChannelOrigins::kQueueWindow;
    const MessageOrigin first{kOrigin.daemon, kOrigin.channel, 1};
    (void)c.admit_once(first, 1);
    // The highest moves to w: 1 is still within the window, and seen.
    (void)c.admit_once(MessageOrigin{first.daemon, first.channel, w}, 1);
    CHECK(c.admit_once(first, 1).skip == 1);
    // Then to w + 1: 1 falls out of it, and is taken again (work is never dropped unchecked).
    (void)c.admit_once(MessageOrigin{first.daemon, first.channel, w + 1}, 1);
    CHECK(c.admit_once(first, 1).take == 1);
    // A jump past the whole window forgets every bit: w + 1 is below it now, and new again.
    (void)c.admit_once(MessageOrigin{first.daemon, first.channel, 3 * w}, 1);
    CHECK(c.admit_once(MessageOrigin{first.daemon, first.channel, w + 1}, 1).take == 1);
    // Within the window, a sequence the jump's bits passed over is not seen.
    CHECK(c.admit_once(MessageOrigin{first.daemon, first.channel, 3 * w - 1}, 1).take == 1);
    CHECK(c.admit_once(MessageOrigin{first.daemon, first.channel, 3 * w}, 1).skip == 1);
}

TEST_CASE("runs give each imported local message its origin back, and local ones none") {
    ChannelOrigins c;
    CHECK_FALSE(c.has_imports());
    CHECK(c.find(0).kind == LocalOrigin::Kind::local);
    c.note(100, 5, kOrigin);                                             // 100..104
    c.note(105, 5, MessageOrigin{kOrigin.daemon, kOrigin.channel, 505}); // continues
    c.note(112, 2, MessageOrigin{0x2002, 0xfeed, 7});                    // another origin
    CHECK(c.has_imports());
    CHECK(c.runs() == 2); // consecutive messages of one origin make one run
    LocalOrigin o = c.find(107);
    REQUIRE(o.kind == LocalOrigin::Kind::imported);
    CHECK(o.origin == MessageOrigin{kOrigin.daemon, kOrigin.channel, 507});
    CHECK(c.find(110).kind == LocalOrigin::Kind::local); // published here between the runs
    // Local messages are numbered without the imported ones: no holes where imports went.
    CHECK(c.find(99).origin.first_sequence == 100);
    CHECK(c.find(110).origin.first_sequence == 101);
    CHECK(c.find(111).origin.first_sequence == 102);
    o = c.find(113);
    REQUIRE(o.kind == LocalOrigin::Kind::imported);
    CHECK(o.origin == MessageOrigin{0x2002, 0xfeed, 8});
    CHECK(c.find(114).kind == LocalOrigin::Kind::local);
    CHECK(c.find(114).origin.first_sequence == 103);
    // A run noted below others (two importers committing out of order) renumbers what follows.
    c.note(110, 1, MessageOrigin{0x3003, 0xabc, 1});
    CHECK(c.find(111).origin.first_sequence == 101);
    CHECK(c.find(114).origin.first_sequence == 102);
}

TEST_CASE("past their bound the runs forget the oldest, whose messages have no known origin") {
    ChannelOrigins c;
    for (std::uint64_t i = 0; i <= ChannelOrigins::kMaxRuns; ++i) {
        // Every other local sequence, so that no two runs join.
        c.note(2 * i, 1, MessageOrigin{1, 1 + i, 1});
    }
    CHECK(c.runs() == ChannelOrigins::kMaxRuns);
    CHECK(c.find(0).kind == LocalOrigin::Kind::unknown);
    CHECK(c.find(2).kind == LocalOrigin::Kind::imported);
    CHECK(c.find(3).kind == LocalOrigin::Kind::local);
}

TEST_CASE("a local channel created anew under the same name starts a new record") {
    OriginLedger ledger;
    auto first = ledger.channel("imu", 1);
    (void)first->admit(kOrigin, 1);
    CHECK(ledger.channel("imu", 1) == first);
    auto again = ledger.channel("imu", 2);
    CHECK(again != first);
    CHECK(again->origins() == 0);
}

} // namespace shmbus::gateway
