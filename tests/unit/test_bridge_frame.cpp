// Tests of daemon/gateway/frame: every bridge frame round-trips; every malformed input (any
// truncation, trailing bytes, bad magic, unknown type, flags, oversized bodies, out-of-range
// fields, data lengths that do not add up) is refused naming what is wrong; a hello of
// another version is refused naming both ranges; the stream reader cuts frames at any chunk
// boundary and never buffers more than one allowed frame; and a seeded hostile peer
// (thousands of random, truncated, mutated and oversized streams) never crashes it. Run under
// ASan/UBSan to make "never reads out of bounds" count.
#include "gateway/frame.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace shmbus::gateway {
namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> out(s.size());
    if (!s.empty()) { // memcpy may not be given the null pointer of an empty vector
        std::memcpy(out.data(), s.data(), s.size());
    }
    return out;
}

Hello sample_hello() {
    Hello h;
    h.byte_order = ByteOrder::big;
    h.max_alignment = 16;
    h.max_message_bytes = std::uint64_t{1} << 30;
    h.max_data_body = 2 * 1024 * 1024;
    h.incarnation = 0x0123456789abcdefULL;
    h.auth = AuthMethod::hmac_sha256;
    h.nonce = std::string(kNonceBytes, 'n');
    h.node = "robot1";
    h.bridge = "ground";
    return h;
}

/// One frame of every type but data, every field other than its default, so that a field
/// the decoder dropped would show in the re-encoding.
std::vector<Frame> one_of_each() {
    std::vector<Frame> f;
    f.emplace_back(sample_hello());
    f.emplace_back(Auth{std::string(kMacBytes, 'm')});
    f.emplace_back(Auth{}); // a waiver
    f.emplace_back(Offer{7, 3, "robot1/camera/front", ChannelKind::queue, Overflow::block, 65536,
                         1024, 0xfeedULL, 0x100000000ULL, std::nullopt});
    f.emplace_back(Offer{8, 0, "imu", ChannelKind::broadcast, Overflow::drop, 64, 8, 1, 0,
                         std::string{"sensor_msgs/Imu@v2"}});
    f.emplace_back(
        Offer{9, 0, "untyped", ChannelKind::broadcast, Overflow::drop, 64, 8, 1, 0, std::string{}});
    f.emplace_back(Want{9, "camera/*"});
    f.emplace_back(Grant{7, 512, 42});
    f.emplace_back(Refuse{RefusedKind::want, 9, Errc::permission_denied, "not exported"});
    f.emplace_back(Credit{{{7, 10}, {8, 20}}});
    f.emplace_back(Ping{5, 123456789});
    f.emplace_back(Pong{5, 123456789});
    f.emplace_back(CloseStream{7, Errc::not_found, "channel removed"});
    f.emplace_back(Goodbye{Errc::protocol_error, "bad frame"});
    return f;
}

std::vector<std::byte> encoded(const Frame& frame) {
    auto r = encode(frame);
    REQUIRE(r.has_value());
    return std::move(r.value());
}

/// A data frame's bytes: the prefix and the messages after it.
std::vector<std::byte> data_frame(std::uint32_t stream, std::uint64_t first,
                                  const std::vector<std::string>& messages,
                                  std::size_t max_body = kDefaultDataBody) {
    std::vector<std::uint32_t> lengths;
    for (const auto& m : messages) {
        lengths.push_back(static_cast<std::uint32_t>(m.size()));
    }
    std::vector<std::byte> out;
    REQUIRE(encode_data_prefix(stream, first, lengths, max_body, out).has_value());
    for (const auto& m : messages) {
        const auto b = bytes_of(m);
        out.insert(out.end(), b.begin(), b.end());
    }
    return out;
}

Error decode_error(std::span<const std::byte> bytes) {
    auto r = decode(bytes, kDefaultDataBody);
    REQUIRE_FALSE(r.has_value());
    return r.error();
}

void put_u32(std::vector<std::byte>& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        b[at + i] = static_cast<std::byte>((v >> (8 * i)) & 0xffU);
    }
}

} // namespace

TEST_CASE("every bridge frame survives an encode-decode round trip with every field intact") {
    for (const auto& frame : one_of_each()) {
        CAPTURE(frame_type_name(type_of(frame)));
        const auto bytes = encoded(frame);
        auto decoded = decode(bytes, kDefaultDataBody);
        REQUIRE(decoded.has_value());
        CHECK(type_of(decoded.value()) == type_of(frame));
        CHECK(encoded(decoded.value()) == bytes);
    }
}

TEST_CASE("a ping is encoded exactly as docs/gateway.md shows it") {
    const auto bytes = encoded(Ping{1, 2});
    const std::vector<unsigned> expected{0x53, 0x42, 0x47, 0x57, 0x09, 0x00, 0x00, 0x00,
                                         0x10, 0x00, 0x00, 0x00,                       // header
                                         0x01, 0,    0,    0,    0,    0,    0,    0,  // token
                                         0x02, 0,    0,    0,    0,    0,    0,    0}; // sent_ns
    REQUIRE(bytes.size() == expected.size());
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        CAPTURE(i);
        CHECK(std::to_integer<unsigned>(bytes[i]) == expected[i]);
    }
}

TEST_CASE("every truncation of a valid bridge frame is refused as a protocol error") {
    auto frames = one_of_each();
    for (const auto& frame : frames) {
        const auto bytes = encoded(frame);
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            CAPTURE(frame_type_name(type_of(frame)), n);
            CHECK(decode_error(std::span{bytes}.first(n)).code == Errc::protocol_error);
        }
    }
}

TEST_CASE("a body cut inside a field is refused naming the frame and the field") {
    auto bytes = encoded(Offer{7, 0, "telemetry", ChannelKind::broadcast, Overflow::drop, 64, 8, 1,
                               0, std::nullopt});
    // Keep the header consistent with the shorter body: the cut is inside the fields.
    bytes.resize(kHeaderBytes + 4 + 4 + 4 + 3);
    put_u32(bytes, 8, static_cast<std::uint32_t>(bytes.size() - kHeaderBytes));
    const auto e = decode_error(bytes);
    CHECK(e.code == Errc::protocol_error);
    CHECK_THAT(e.detail, Catch::Contains("offer") && Catch::Contains("wire_name") &&
                             Catch::Contains("truncated"));
}

TEST_CASE("bytes after the last field of a frame are refused") {
    auto bytes = encoded(Grant{7, 1, 0});
    bytes.push_back(std::byte{0});
    put_u32(bytes, 8, static_cast<std::uint32_t>(bytes.size() - kHeaderBytes));
    const auto e = decode_error(bytes);
    CHECK(e.code == Errc::protocol_error);
    CHECK_THAT(e.detail, Catch::Contains("grant") && Catch::Contains("1 bytes after"));
}

TEST_CASE("a hello's tail, which a later version may extend, is ignored") {
    auto bytes = encoded(sample_hello());
    bytes.insert(bytes.end(), 5, std::byte{0xaa});
    put_u32(bytes, 8, static_cast<std::uint32_t>(bytes.size() - kHeaderBytes));
    auto r = decode(bytes, kDefaultDataBody);
    REQUIRE(r.has_value());
    CHECK(std::get<Hello>(r.value()).node == "robot1");
}

TEST_CASE("a hello whose versions exclude ours is refused naming both ranges") {
    Hello h = sample_hello();
    h.version_min = kVersionMax + 1;
    h.version_max = kVersionMax + 2;
    const auto e = decode_error(encoded(h));
    CHECK(e.code == Errc::version_mismatch);
    CHECK_THAT(e.detail, Catch::Contains(std::to_string(kVersionMax + 1) + ".." +
                                         std::to_string(kVersionMax + 2)) &&
                             Catch::Contains("this side speaks " + std::to_string(kVersionMin) +
                                             ".." + std::to_string(kVersionMax)));
}

TEST_CASE("a hello whose range includes ours is accepted") {
    Hello h = sample_hello();
    h.version_max = 9;
    auto r = decode(encoded(h), kDefaultDataBody);
    REQUIRE(r.has_value());
    CHECK(std::get<Hello>(r.value()).version_max == 9);
}

TEST_CASE("a frame with the wrong magic, an unknown type or flags is refused") {
    const auto good = encoded(Ping{1, 2});
    SECTION("magic") {
        auto b = good;
        b[0] = std::byte{'X'};
        CHECK_THAT(decode_error(b).detail, Catch::Contains("bad frame magic"));
    }
    SECTION("magic of a TLS handshake, named as such") {
        auto b = good;
        b[0] = std::byte{0x16}; // a TLS record: handshake, version 3.1
        b[1] = std::byte{0x03};
        b[2] = std::byte{0x01};
        CHECK_THAT(decode_error(b).detail,
                   Catch::Contains("bad frame magic") && Catch::Contains("the peer opens TLS"));
    }
    SECTION("type") {
        auto b = good;
        b[4] = std::byte{77};
        CHECK_THAT(decode_error(b).detail, Catch::Contains("unknown frame type 77"));
    }
    SECTION("flags") {
        auto b = good;
        b[6] = std::byte{1};
        CHECK_THAT(decode_error(b).detail, Catch::Contains("ping: flags 1"));
    }
}

TEST_CASE("a control frame above 64 KiB and a data frame above the link's limit are refused") {
    std::vector<std::byte> header(kHeaderBytes);
    put_u32(header, 0, kMagic);
    header[4] = std::byte{static_cast<unsigned char>(FrameType::goodbye)};
    put_u32(header, 8, static_cast<std::uint32_t>(kMaxControlBody + 1));
    auto h = decode_header(std::span<const std::byte, kHeaderBytes>{header.data(), kHeaderBytes},
                           kDefaultDataBody);
    REQUIRE_FALSE(h.has_value());
    CHECK_THAT(h.error().detail, Catch::Contains("goodbye: body of 65537 bytes exceeds"));

    header[4] = std::byte{static_cast<unsigned char>(FrameType::data)};
    put_u32(header, 8, 5000);
    auto d =
        decode_header(std::span<const std::byte, kHeaderBytes>{header.data(), kHeaderBytes}, 4096);
    REQUIRE_FALSE(d.has_value());
    CHECK_THAT(d.error().detail, Catch::Contains("data: body of 5000 bytes exceeds the limit "
                                                 "of 4096"));
}

TEST_CASE("field values outside what the protocol allows are refused on decode and encode") {
    struct Case {
        const char* what;
        Frame frame;
        const char* field;
    };
    Hello short_nonce = sample_hello();
    short_nonce.nonce = "abc";
    Hello no_auth_nonce = sample_hello();
    no_auth_nonce.auth = AuthMethod::none;
    Hello zero_incarnation = sample_hello();
    zero_incarnation.incarnation = 0;
    Hello odd_alignment = sample_hello();
    odd_alignment.max_alignment = 12;
    Hello tiny_body = sample_hello();
    tiny_body.max_data_body = 100;
    const Offer offer{7, 0, "telemetry", ChannelKind::broadcast, Overflow::drop, 64, 8,
                      1, 0, std::nullopt};
    Offer bad_name = offer;
    bad_name.wire_name = "bad name";
    Offer long_name = offer;
    long_name.wire_name = std::string(64, 'a');
    Offer queue_drop = offer;
    queue_drop.kind = ChannelKind::queue;
    Offer odd_count = offer;
    odd_count.slot_count = 6;
    Offer zero_slot = offer;
    zero_slot.slot_size = 0;
    Offer stream_zero = offer;
    stream_zero.stream = 0;
    const std::vector<Case> cases{
        {"a short nonce", short_nonce, "nonce"},
        {"a nonce without auth", no_auth_nonce, "nonce"},
        {"incarnation 0", zero_incarnation, "incarnation"},
        {"alignment 12", odd_alignment, "max_alignment"},
        {"a data body below 4 KiB", tiny_body, "max_data_body"},
        {"a short mac", Auth{"x"}, "mac"},
        {"a name with a space", bad_name, "wire_name"},
        {"a 64-byte name", long_name, "wire_name"},
        {"drop on a queue", queue_drop, "overflow"},
        {"6 slots", odd_count, "slot_count"},
        {"slot size 0", zero_slot, "slot_size"},
        {"stream 0", stream_zero, "stream"},
        {"a pattern with a space", Want{1, "a b"}, "pattern"},
        {"request 0", Want{0, "a"}, "request"},
        {"no credit grants", Credit{}, "grants"},
        {"a zero credit", Credit{{{1, 0}}}, "grants[0].messages"},
        {"close of stream 0", CloseStream{0, Errc::closed, ""}, "stream"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        auto e = encode(c.frame);
        REQUIRE_FALSE(e.has_value());
        CHECK(e.error().code == Errc::invalid_argument);
        CHECK_THAT(e.error().detail, Catch::Contains(std::string{"'"} + c.field + "'"));
    }
    // The decoder applies the same rules to bytes another encoder wrote: a valid offer with
    // its slot count patched to 6.
    auto bytes = encoded(offer);
    const std::size_t slot_count_at = bytes.size() - 8 - 8 - 8;
    bytes[slot_count_at] = std::byte{6};
    const auto e = decode_error(bytes);
    CHECK_THAT(e.detail, Catch::Contains("offer: field 'slot_count' is not a power of two"));
}

TEST_CASE("an undefined enum value in a frame is refused naming the field") {
    auto bytes = encoded(Refuse{RefusedKind::offer, 1, Errc::permission_denied, "no"});
    bytes[kHeaderBytes] = std::byte{9}; // what
    CHECK_THAT(decode_error(bytes).detail,
               Catch::Contains("refuse: field 'what' holds 9, which is not a valid RefusedKind"));
    bytes = encoded(Refuse{RefusedKind::offer, 1, Errc::permission_denied, "no"});
    bytes[kHeaderBytes + 1 + 4] = std::byte{0xee}; // code
    CHECK_THAT(decode_error(bytes).detail, Catch::Contains("'code'"));
}

TEST_CASE("a data frame carries its messages in order with their sequences") {
    const std::vector<std::string> messages{"alpha", "", "gamma-gamma", std::string(300, 'z')};
    const auto bytes = data_frame(3, 0xfffffffff0ULL, messages);
    auto r = decode(bytes, kDefaultDataBody);
    REQUIRE(r.has_value());
    const auto& d = std::get<DataView>(r.value());
    CHECK(d.stream() == 3);
    CHECK(d.count() == messages.size());
    std::size_t i = 0;
    d.for_each([&](std::uint64_t sequence, std::span<const std::byte> m) {
        CHECK(sequence == 0xfffffffff0ULL + i);
        CHECK(std::string(reinterpret_cast<const char*>(m.data()), m.size()) == messages[i]);
        ++i;
    });
    CHECK(i == messages.size());
}

TEST_CASE("a data frame whose lengths do not add up to its bytes is refused") {
    auto bytes = data_frame(3, 1, {"abc", "de"});
    SECTION("one byte more than the lengths say") {
        bytes.push_back(std::byte{'x'});
        put_u32(bytes, 8, static_cast<std::uint32_t>(bytes.size() - kHeaderBytes));
        CHECK_THAT(decode_error(bytes).detail,
                   Catch::Contains("adds up to 5 bytes, the frame carries 6"));
    }
    SECTION("a length far beyond the frame") {
        put_u32(bytes, kHeaderBytes + 16, 0xffffffffU);
        CHECK_THAT(decode_error(bytes).detail, Catch::Contains("adds up to"));
    }
    SECTION("no messages") {
        put_u32(bytes, kHeaderBytes + 12, 0);
        CHECK_THAT(decode_error(bytes).detail, Catch::Contains("'count' is not 1 to 4096"));
    }
    SECTION("a count the bytes cannot back") {
        put_u32(bytes, kHeaderBytes + 12, 4000);
        CHECK_THAT(decode_error(bytes).detail, Catch::Contains("'lengths' is truncated"));
    }
    SECTION("sequences that wrap") {
        put_u32(bytes, kHeaderBytes + 4, 0xffffffffU);
        put_u32(bytes, kHeaderBytes + 8, 0xffffffffU);
        CHECK_THAT(decode_error(bytes).detail, Catch::Contains("wraps around"));
    }
}

TEST_CASE("encode_data_prefix refuses empty, overlong and oversized batches") {
    std::vector<std::byte> out;
    const std::vector<std::uint32_t> none;
    CHECK_FALSE(encode_data_prefix(1, 0, none, kDefaultDataBody, out).has_value());
    const std::vector<std::uint32_t> many(kMaxMessagesPerFrame + 1, 1);
    CHECK_FALSE(encode_data_prefix(1, 0, many, kDefaultDataBody, out).has_value());
    const std::vector<std::uint32_t> big{5000};
    auto r = encode_data_prefix(1, 0, big, 4096, out);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().detail, Catch::Contains("exceeds the link's limit of 4096"));
    const std::vector<std::uint32_t> two{1, 1};
    CHECK_FALSE(encode_data_prefix(1, ~std::uint64_t{0}, two, kDefaultDataBody, out).has_value());
}

TEST_CASE("the frame reader yields the same frames whatever the chunks the bytes arrive in") {
    std::vector<std::byte> stream;
    std::size_t expected = 0;
    for (const auto& frame : one_of_each()) {
        const auto b = encoded(frame);
        stream.insert(stream.end(), b.begin(), b.end());
        ++expected;
    }
    const auto d = data_frame(4, 10, {"one", "two", "three"});
    stream.insert(stream.end(), d.begin(), d.end());
    ++expected;

    // Asking for exactly what arrives, and for more than that as a socket read does (so the
    // buffered part of a frame stays where it is while there is room after it).
    for (const std::size_t ask : {std::size_t{0}, std::size_t{300}}) {
        for (std::size_t chunk :
             {std::size_t{1}, std::size_t{3}, std::size_t{12}, std::size_t{1000}, stream.size()}) {
            CAPTURE(ask, chunk);
            FrameReader reader;
            std::size_t got = 0;
            std::uint64_t data_sequences = 0;
            for (std::size_t at = 0; at < stream.size(); at += chunk) {
                const std::size_t n = std::min(chunk, stream.size() - at);
                auto room = reader.writable(std::max(n, ask));
                REQUIRE(room.size() >= n);
                std::memcpy(room.data(), stream.data() + at, n);
                reader.commit(n);
                for (;;) {
                    auto f = reader.next();
                    REQUIRE(f.has_value());
                    if (!f.value()) {
                        break;
                    }
                    if (const auto* v = std::get_if<DataView>(&*f.value())) {
                        v->for_each([&](std::uint64_t s, auto) { data_sequences += s; });
                    }
                    ++got;
                }
            }
            CHECK(got == expected);
            CHECK(data_sequences == 10 + 11 + 12);
            CHECK(reader.buffered() == 0);
        }
    }
}

TEST_CASE("the frame reader refuses an oversized frame from its header, before its body") {
    FrameReader reader{4096};
    std::vector<std::byte> header(kHeaderBytes);
    put_u32(header, 0, kMagic);
    header[4] = std::byte{static_cast<unsigned char>(FrameType::data)};
    put_u32(header, 8, 0x7fffffffU);
    reader.append(header);
    auto r = reader.next();
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().detail, Catch::Contains("exceeds the limit of 4096"));
    CHECK(reader.buffered() <= kHeaderBytes);
    // Once out of step, the stream stays refused: nothing after a bad frame is trusted.
    reader.append(encoded(Ping{1, 1}));
    CHECK_FALSE(reader.next().has_value());
}

TEST_CASE("a seeded hostile peer never crashes the frame reader nor makes it hoard memory") {
    std::mt19937_64 rng{20261206};
    const auto valid = one_of_each();
    std::size_t frames = 0;
    std::size_t refusals = 0;
    constexpr std::size_t kMaxData = 64 * 1024;
    for (int c = 0; c < 5000; ++c) {
        std::vector<std::byte> stream;
        // A few valid frames first, then trouble of one kind.
        const int good = static_cast<int>(rng() % 4);
        for (int i = 0; i < good; ++i) {
            const auto b = encoded(valid[rng() % valid.size()]);
            stream.insert(stream.end(), b.begin(), b.end());
        }
        std::vector<std::byte> bad = encoded(valid[rng() % valid.size()]);
        switch (rng() % 5) {
        case 0: // random bytes
            bad.resize(rng() % 200);
            for (auto& b : bad) {
                b = static_cast<std::byte>(rng());
            }
            break;
        case 1: // truncated
            bad.resize(rng() % bad.size());
            break;
        case 2: // a few bytes flipped anywhere, header included
            for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
                bad[rng() % bad.size()] ^= static_cast<std::byte>(1 + rng() % 255);
            }
            break;
        case 3: // a header claiming a huge body
            put_u32(bad, 8, static_cast<std::uint32_t>(rng()));
            break;
        default: { // a data frame whose lengths lie
            bad = data_frame(1 + static_cast<std::uint32_t>(rng() % 5), rng() % 1000,
                             {"abc", std::string(rng() % 100, 'q'), "x"});
            put_u32(bad, kHeaderBytes + 16 + 4 * (rng() % 3), static_cast<std::uint32_t>(rng()));
            break;
        }
        }
        stream.insert(stream.end(), bad.begin(), bad.end());

        FrameReader reader{kMaxData};
        bool broken = false;
        for (std::size_t at = 0; at < stream.size() && !broken;) {
            const std::size_t n = std::min<std::size_t>(1 + rng() % 64, stream.size() - at);
            reader.append(std::span{stream}.subspan(at, n));
            at += n;
            for (;;) {
                auto f = reader.next();
                if (!f.has_value()) {
                    CHECK(f.error().code != Errc::invalid_argument);
                    CHECK_FALSE(f.error().detail.empty());
                    broken = true;
                    ++refusals;
                    break;
                }
                if (!f.value()) {
                    break;
                }
                ++frames;
                if (const auto* v = std::get_if<DataView>(&*f.value())) {
                    std::size_t total = 0;
                    v->for_each(
                        [&](std::uint64_t, std::span<const std::byte> m) { total += m.size(); });
                    CHECK(total == v->payload_bytes());
                }
            }
            // Memory: one allowed frame, plus what the last append brought.
            CHECK(reader.buffered() <= kHeaderBytes + kMaxData + 64);
        }
    }
    // The mix exercised both outcomes (the counts depend only on the seed).
    CHECK(frames > 5000);
    CHECK(refusals > 2000);
}

} // namespace shmbus::gateway
