// Tests of messages in fragments (bridge protocol 2): the fragment codec of
// daemon/gateway/frame and the reassembler of daemon/gateway/fragments. A fragment
// round-trips as an origin_data frame with its origin; a link that agreed on protocol 1
// refuses any flags, and protocol 2 refuses flags that are no fragment part, flags on any
// other frame (a data frame too), an origin with a field 0, and fragments whose placement
// does not fit their part; the reassembler hands out a message only whole, with its origin,
// keeps interleaved streams apart, refuses every malformed sequence (a middle or end without
// a start, a new start before the end, a sequence, total, origin or offset that does not
// follow, a total above the link's or the stream's limit) naming what was wrong, and drops
// what a closed stream or link leaves without a trace; a start handed the previous
// message's buffer reuses its memory (a smaller message) or replaces it (a larger one) and
// never lets a byte of the previous message through, also after a dropped or refused
// message; and a seeded run of randomly cut, interleaved messages reassembles byte for byte.
#include "gateway/fragments.hpp"
#include "gateway/frame.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace shmbus::gateway {
namespace {

constexpr std::size_t kBody = std::size_t{64} * 1024;
/// The origin every fragment here carries unless a test says otherwise.
constexpr MessageOrigin kOrigin{0x51, 0x52, 0x53};

/// A fragment's whole frame: its prefix and its bytes.
std::vector<std::byte> fragment_frame(FragmentPart part, std::uint32_t stream, std::uint64_t seq,
                                      std::uint64_t total, std::uint64_t offset,
                                      std::span<const std::byte> bytes) {
    std::vector<std::byte> out;
    auto p =
        encode_fragment_prefix(part, stream, seq, total, offset, bytes.size(), kOrigin, kBody, out);
    REQUIRE(p.has_value());
    out.insert(out.end(), bytes.begin(), bytes.end());
    return out;
}

std::vector<std::byte> pattern(std::size_t n, unsigned salt) {
    std::vector<std::byte> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = static_cast<std::byte>((i * 131 + salt) & 0xffU);
    }
    return out;
}

/// A FragmentView as the decoder would give it, without the codec.
FragmentView view(FragmentPart part, std::uint32_t stream, std::uint64_t seq, std::uint64_t total,
                  std::uint64_t offset, std::span<const std::byte> bytes) {
    return FragmentView{part, stream, seq, total, offset, kOrigin, bytes};
}

Error add_error(Reassembler& r, const FragmentView& f, std::uint64_t limit = 1 << 20) {
    auto out = r.add(f, limit);
    REQUIRE_FALSE(out.has_value());
    return out.error();
}

} // namespace

TEST_CASE("a fragment round-trips on a protocol 2 link with every field intact") {
    const auto bytes = pattern(1000, 7);
    const auto frame = fragment_frame(FragmentPart::middle, 9, 0x100000001ULL, 5000, 1200, bytes);
    auto r = decode(frame, kBody, kFragmentsVersion);
    INFO((r ? std::string{} : r.error().message()));
    REQUIRE(r.has_value());
    REQUIRE(type_of(r.value()) == FrameType::origin_data);
    const auto& f = std::get<FragmentView>(r.value());
    CHECK(f.part == FragmentPart::middle);
    CHECK(f.stream == 9);
    CHECK(f.sequence == 0x100000001ULL);
    CHECK(f.total_bytes == 5000);
    CHECK(f.offset == 1200);
    CHECK(f.origin == kOrigin);
    REQUIRE(f.bytes.size() == bytes.size());
    CHECK(std::memcmp(f.bytes.data(), bytes.data(), bytes.size()) == 0);
}

TEST_CASE("a link that agreed on protocol 1 refuses a fragment by its flags") {
    const auto bytes = pattern(100, 1);
    const auto frame = fragment_frame(FragmentPart::start, 1, 1, 500, 0, bytes);
    auto r = decode(frame, kBody, 1);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::protocol_error);
    CHECK_THAT(r.error().detail, Catch::Contains("flags 1 set, which bridge protocol 1 does not "
                                                 "define"));
}

TEST_CASE("protocol 2 refuses flags that are no fragment part, and flags on other frames") {
    const auto bytes = pattern(100, 1);
    auto frame = fragment_frame(FragmentPart::start, 1, 1, 500, 0, bytes);
    frame[6] = std::byte{4};
    auto r = decode(frame, kBody, kFragmentsVersion);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::protocol_error);
    CHECK_THAT(r.error().detail, Catch::Contains("flags 4"));

    auto ping = encode(Ping{1, 2});
    REQUIRE(ping.has_value());
    ping.value()[6] = std::byte{1};
    auto p = decode(ping.value(), kBody, kFragmentsVersion);
    REQUIRE_FALSE(p.has_value());
    CHECK_THAT(p.error().detail, Catch::Contains("ping: flags 1"));
}

TEST_CASE("the decoder refuses a fragment whose placement does not fit its part") {
    struct Case {
        const char* what;
        FragmentPart part;
        std::uint64_t total;
        std::uint64_t offset;
        std::size_t size;
        const char* says;
    };
    const Case cases[] = {
        {"an empty fragment", FragmentPart::middle, 500, 100, 0, "carries no bytes"},
        {"bytes beyond the total", FragmentPart::middle, 500, 450, 100, "do not fit a message"},
        {"an offset beyond the total", FragmentPart::end, 500, 600, 10, "do not fit a message"},
        {"a start not at 0", FragmentPart::start, 500, 10, 100, "a start at offset 10"},
        {"a start holding everything", FragmentPart::start, 100, 0, 100, "holds the whole"},
        {"a middle at 0", FragmentPart::middle, 500, 0, 100, "a middle at offset 0"},
        {"a middle reaching the end", FragmentPart::middle, 500, 400, 100, "reaches the end"},
        {"an end at 0", FragmentPart::end, 100, 0, 100, "an end at offset 0"},
        {"an end short of the total", FragmentPart::end, 500, 100, 100, "stops at byte 200"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        // Built by hand: the encoder refuses every one of these.
        std::vector<std::byte> frame;
        REQUIRE(
            encode_fragment_prefix(FragmentPart::middle, 3, 8, 1 << 20, 1, 1, kOrigin, kBody, frame)
                .has_value());
        frame[6] = static_cast<std::byte>(c.part);
        const std::uint32_t body = static_cast<std::uint32_t>(kFragmentFixedBytes + c.size);
        std::memcpy(frame.data() + 8, &body, 4);
        std::memcpy(frame.data() + kHeaderBytes + 12, &c.total, 8);
        std::memcpy(frame.data() + kHeaderBytes + 20, &c.offset, 8);
        const auto bytes = pattern(c.size, 3);
        frame.insert(frame.end(), bytes.begin(), bytes.end());
        auto r = decode(frame, kBody, kFragmentsVersion);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::protocol_error);
        CHECK_THAT(r.error().detail, Catch::Contains(c.says));

        std::vector<std::byte> out;
        auto e =
            encode_fragment_prefix(c.part, 3, 8, c.total, c.offset, c.size, kOrigin, kBody, out);
        REQUIRE_FALSE(e.has_value());
        CHECK(e.error().code == Errc::invalid_argument);
    }
}

TEST_CASE("a fragment is an origin_data frame: a data frame with a fragment's flags is refused") {
    const auto bytes = pattern(100, 1);
    auto frame = fragment_frame(FragmentPart::start, 1, 1, 500, 0, bytes);
    frame[4] = std::byte{static_cast<unsigned char>(FrameType::data)};
    auto r = decode(frame, kBody, kFragmentsVersion);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::protocol_error);
    CHECK_THAT(r.error().detail, Catch::Contains("data: flags 1 set"));
}

TEST_CASE("a fragment whose origin has a field 0 is refused naming the field, and not encoded") {
    const auto bytes = pattern(100, 1);
    const std::size_t at[] = {28, 36, 44};
    const char* names[] = {"origin.daemon", "origin.channel", "origin.first_sequence"};
    for (std::size_t i = 0; i < 3; ++i) {
        CAPTURE(names[i]);
        auto frame = fragment_frame(FragmentPart::start, 1, 1, 500, 0, bytes);
        std::memset(frame.data() + kHeaderBytes + at[i], 0, 8);
        auto r = decode(frame, kBody, kFragmentsVersion);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::protocol_error);
        CHECK_THAT(r.error().detail,
                   Catch::Contains("origin_data (fragment start)") && Catch::Contains(names[i]));

        MessageOrigin o = kOrigin;
        (i == 0 ? o.daemon : i == 1 ? o.channel : o.first_sequence) = 0;
        std::vector<std::byte> out;
        auto e = encode_fragment_prefix(FragmentPart::start, 1, 1, 500, 0, 100, o, kBody, out);
        REQUIRE_FALSE(e.has_value());
        CHECK_THAT(e.error().detail, Catch::Contains("an origin field is 0"));
    }
}

TEST_CASE("a fragment above the peer's data frame size is not encoded") {
    std::vector<std::byte> out;
    auto e =
        encode_fragment_prefix(FragmentPart::start, 1, 1, 1 << 20, 0, kBody, kOrigin, kBody, out);
    REQUIRE_FALSE(e.has_value());
    CHECK_THAT(e.error().detail, Catch::Contains("exceeds the link's limit"));
}

TEST_CASE("the frame reader hands fragments out only once the link agreed on protocol 2") {
    const auto bytes = pattern(300, 5);
    const auto frame = fragment_frame(FragmentPart::start, 2, 4, 900, 0, bytes);
    FrameReader v2{kBody};
    v2.set_version(kFragmentsVersion);
    v2.append(frame);
    auto r = v2.next();
    REQUIRE(r.has_value());
    REQUIRE(r.value().has_value());
    CHECK(std::get<FragmentView>(*r.value()).bytes.size() == 300);

    FrameReader v1{kBody};
    v1.append(frame);
    auto refused = v1.next();
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == Errc::protocol_error);
}

TEST_CASE("a message in three fragments comes out whole, with its length in front") {
    const auto message = pattern(2500, 9);
    const std::span<const std::byte> m{message};
    Reassembler r{1 << 20};
    auto a = r.add(view(FragmentPart::start, 4, 77, 2500, 0, m.first(1000)), 4096);
    REQUIRE(a.has_value());
    CHECK_FALSE(a.value().has_value());
    CHECK(r.in_progress(4));
    CHECK(r.held_bytes() >= 2504);
    auto b = r.add(view(FragmentPart::middle, 4, 77, 2500, 1000, m.subspan(1000, 1000)), 4096);
    REQUIRE(b.has_value());
    CHECK_FALSE(b.value().has_value());
    auto c = r.add(view(FragmentPart::end, 4, 77, 2500, 2000, m.subspan(2000)), 4096);
    REQUIRE(c.has_value());
    REQUIRE(c.value().has_value());
    const WholeMessage& whole = *c.value();
    CHECK(whole.stream == 4);
    CHECK(whole.sequence == 77);
    CHECK(whole.origin == kOrigin); // admitted by it as a whole message would be
    std::uint32_t length = 0;
    std::memcpy(&length, whole.framed.data(), 4);
    CHECK(length == 2500);
    REQUIRE(whole.bytes().size() == 2500);
    CHECK(std::memcmp(whole.bytes().data(), message.data(), 2500) == 0);
    CHECK_FALSE(r.in_progress(4));
    CHECK(r.held_bytes() == 0);
}

TEST_CASE("every malformed sequence of fragments is refused, naming what was wrong") {
    const auto bytes = pattern(100, 2);
    const std::span<const std::byte> b{bytes};
    SECTION("a middle without a start") {
        Reassembler r{1 << 20};
        const Error e = add_error(r, view(FragmentPart::middle, 3, 1, 500, 100, b));
        CHECK(e.code == Errc::protocol_error);
        CHECK_THAT(e.detail, Catch::Contains("stream 3") && Catch::Contains("a middle without a "
                                                                            "start"));
    }
    SECTION("an end without a start") {
        Reassembler r{1 << 20};
        CHECK_THAT(add_error(r, view(FragmentPart::end, 3, 1, 200, 100, b)).detail,
                   Catch::Contains("an end without a start"));
    }
    SECTION("a start on another stream does not let a middle through on this one") {
        Reassembler r{1 << 20};
        REQUIRE(r.add(view(FragmentPart::start, 5, 1, 500, 0, b), 4096).has_value());
        CHECK_THAT(add_error(r, view(FragmentPart::middle, 6, 1, 500, 100, b)).detail,
                   Catch::Contains("stream 6") && Catch::Contains("without a start"));
    }
    SECTION("a new start before the end") {
        Reassembler r{1 << 20};
        REQUIRE(r.add(view(FragmentPart::start, 3, 1, 500, 0, b), 4096).has_value());
        CHECK_THAT(add_error(r, view(FragmentPart::start, 3, 2, 500, 0, b)).detail,
                   Catch::Contains("a new start before the end of message 1") &&
                       Catch::Contains("100 of 500 bytes"));
    }
    SECTION("a sequence other than the start's") {
        Reassembler r{1 << 20};
        REQUIRE(r.add(view(FragmentPart::start, 3, 1, 500, 0, b), 4096).has_value());
        CHECK_THAT(add_error(r, view(FragmentPart::middle, 3, 2, 500, 100, b)).detail,
                   Catch::Contains("message 2: the start was message 1"));
    }
    SECTION("a total other than the start's") {
        Reassembler r{1 << 20};
        REQUIRE(r.add(view(FragmentPart::start, 3, 1, 500, 0, b), 4096).has_value());
        CHECK_THAT(add_error(r, view(FragmentPart::middle, 3, 1, 600, 100, b)).detail,
                   Catch::Contains("total_bytes 600, the start said 500"));
    }
    SECTION("an origin other than the start's") {
        Reassembler r{1 << 20};
        REQUIRE(r.add(view(FragmentPart::start, 3, 1, 500, 0, b), 4096).has_value());
        FragmentView f = view(FragmentPart::middle, 3, 1, 500, 100, b);
        f.origin.first_sequence += 1;
        CHECK_THAT(add_error(r, f).detail,
                   Catch::Contains("origin daemon 81 channel 82 sequence 84, the start said "
                                   "daemon 81 channel 82 sequence 83"));
    }
    SECTION("a fragment that skips bytes") {
        Reassembler r{1 << 20};
        REQUIRE(r.add(view(FragmentPart::start, 3, 1, 500, 0, b), 4096).has_value());
        CHECK_THAT(add_error(r, view(FragmentPart::middle, 3, 1, 500, 150, b)).detail,
                   Catch::Contains("offset 150, but 100 bytes have arrived"));
    }
    SECTION("a fragment that overlaps what arrived") {
        Reassembler r{1 << 20};
        REQUIRE(r.add(view(FragmentPart::start, 3, 1, 500, 0, b), 4096).has_value());
        CHECK_THAT(add_error(r, view(FragmentPart::middle, 3, 1, 500, 50, b)).detail,
                   Catch::Contains("do not add up"));
    }
    SECTION("a total above the link's max_message_bytes") {
        Reassembler r{1000};
        CHECK_THAT(add_error(r, view(FragmentPart::start, 3, 1, 1001, 0, b), 4096).detail,
                   Catch::Contains("total_bytes 1001 exceeds the limit of 1000") &&
                       Catch::Contains("max_message_bytes"));
        CHECK(r.held_bytes() == 0);
    }
    SECTION("a total above the stream's slot size") {
        Reassembler r{1 << 20};
        CHECK_THAT(add_error(r, view(FragmentPart::start, 3, 1, 5000, 0, b), 4096).detail,
                   Catch::Contains("exceeds the limit of 4096") && Catch::Contains("slot_size"));
    }
}

TEST_CASE("what a closed stream or an ended link leaves in fragments is dropped whole") {
    const auto bytes = pattern(100, 4);
    const std::span<const std::byte> b{bytes};
    Reassembler r{1 << 20};
    REQUIRE(r.add(view(FragmentPart::start, 1, 10, 500, 0, b), 4096).has_value());
    REQUIRE(r.add(view(FragmentPart::start, 2, 20, 300, 0, b), 4096).has_value());
    REQUIRE(r.add(view(FragmentPart::middle, 2, 20, 300, 100, b), 4096).has_value());
    CHECK_FALSE(r.drop(7).has_value());
    auto one = r.drop(1);
    REQUIRE(one.has_value());
    CHECK(one->sequence == 10);
    CHECK(one->received == 100);
    CHECK(one->total == 500);
    CHECK_FALSE(r.in_progress(1));
    // The stream's next message starts afresh; the one dropped never comes out.
    REQUIRE(r.add(view(FragmentPart::start, 1, 11, 200, 0, b), 4096).has_value());
    auto rest = r.drop_all();
    REQUIRE(rest.size() == 2);
    CHECK(r.held_bytes() == 0);
    CHECK_FALSE(r.in_progress(2));
    // A middle of a dropped message is now one without a start.
    CHECK_THAT(add_error(r, view(FragmentPart::end, 2, 20, 300, 200, b)).detail,
               Catch::Contains("without a start"));
}

namespace {

/// Reassembles `message` of stream 3 as `seq` in fragments of `cut` bytes, the start given
/// `spare`; the whole message.
WholeMessage reassemble(Reassembler& r, std::uint64_t seq, const std::vector<std::byte>& message,
                        std::size_t cut, MessageBuffer spare) {
    const std::span<const std::byte> m{message};
    const std::size_t first = std::min(cut, m.size() - 1); // a start short of the end
    auto a = r.add(view(FragmentPart::start, 3, seq, m.size(), 0, m.first(first)), 1 << 20,
                   std::move(spare));
    REQUIRE(a.has_value());
    REQUIRE_FALSE(a.value().has_value());
    for (std::size_t at = first;;) {
        const std::size_t n = std::min(cut, m.size() - at);
        const FragmentPart part = at + n == m.size() ? FragmentPart::end : FragmentPart::middle;
        auto b = r.add(view(part, 3, seq, m.size(), at, m.subspan(at, n)), 1 << 20);
        REQUIRE(b.has_value());
        at += n;
        if (part == FragmentPart::end) {
            REQUIRE(b.value().has_value());
            return std::move(*b.value());
        }
        REQUIRE_FALSE(b.value().has_value());
    }
}

/// Whether `whole` is exactly `message`, its length in front and nothing after it.
void check_exactly(const WholeMessage& whole, const std::vector<std::byte>& message) {
    REQUIRE(whole.framed.size() == 4 + message.size());
    std::uint32_t length = 0;
    std::memcpy(&length, whole.framed.data(), 4);
    CHECK(length == message.size());
    CHECK(std::memcmp(whole.bytes().data(), message.data(), message.size()) == 0);
}

} // namespace

TEST_CASE("a start reassembles into the previous message's buffer, keeping nothing of it") {
    Reassembler r{1 << 20};
    const auto big = pattern(9000, 1);
    WholeMessage one = reassemble(r, 1, big, 1000, {});
    check_exactly(one, big);
    const std::byte* memory = one.framed.data();
    const std::size_t capacity = one.framed.capacity();

    SECTION("a smaller next message gets the same memory and only its own bytes") {
        const auto small = pattern(3000, 2);
        WholeMessage two = reassemble(r, 2, small, 700, std::move(one.framed));
        check_exactly(two, small);
        CHECK(two.framed.data() == memory);
        CHECK(two.framed.capacity() == capacity);
        // A fragment cut so that a wrong offset would show the old message's bytes.
        const auto tiny = pattern(5, 3);
        WholeMessage three = reassemble(r, 3, tiny, 2, std::move(two.framed));
        check_exactly(three, tiny);
        CHECK(three.framed.data() == memory);
    }
    SECTION("a larger next message gets a buffer of its size") {
        const auto larger = pattern(20000, 4);
        WholeMessage two = reassemble(r, 2, larger, 3000, std::move(one.framed));
        check_exactly(two, larger);
        CHECK(two.framed.capacity() >= 20004);
    }
    SECTION("a message dropped in fragments leaves the next one whole and exact") {
        const auto bytes = pattern(4000, 5);
        const std::span<const std::byte> b{bytes};
        REQUIRE(r.add(view(FragmentPart::start, 3, 2, 8000, 0, b), 1 << 20, std::move(one.framed))
                    .has_value());
        CHECK(r.held_bytes() >= 8004);
        auto dropped = r.drop(3);
        REQUIRE(dropped.has_value());
        CHECK(dropped->received == 4000);
        CHECK(r.held_bytes() == 0); // its buffer went with it
        const auto next = pattern(6000, 6);
        WholeMessage three = reassemble(r, 3, next, 2500, {});
        check_exactly(three, next);
    }
    SECTION("a refused start frees the buffer it was handed and keeps no message") {
        const auto bytes = pattern(100, 7);
        auto refused =
            r.add(view(FragmentPart::start, 3, 2, 5000, 0, bytes), 4096, std::move(one.framed));
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().code == Errc::protocol_error);
        CHECK_FALSE(r.in_progress(3));
        CHECK(r.held_bytes() == 0);
    }
    SECTION("only a start takes the buffer: a middle or end handed one ignores it") {
        const auto message = pattern(3000, 8);
        const std::span<const std::byte> m{message};
        REQUIRE(
            r.add(view(FragmentPart::start, 3, 2, 3000, 0, m.first(1000)), 1 << 20).has_value());
        REQUIRE(r.add(view(FragmentPart::middle, 3, 2, 3000, 1000, m.subspan(1000, 1000)), 1 << 20,
                      std::move(one.framed))
                    .has_value());
        auto end = r.add(view(FragmentPart::end, 3, 2, 3000, 2000, m.subspan(2000)), 1 << 20);
        REQUIRE(end.has_value());
        REQUIRE(end.value().has_value());
        check_exactly(*end.value(), message);
    }
}

TEST_CASE("randomly cut messages of interleaved streams reassemble byte for byte") {
    std::mt19937_64 rng{20};
    for (int round = 0; round < 200; ++round) {
        CAPTURE(round);
        struct Pending {
            std::vector<std::byte> message;
            std::vector<std::pair<std::uint64_t, std::size_t>> cuts; // offset, size
            std::size_t next{0};
        };
        std::map<std::uint32_t, Pending> streams;
        for (std::uint32_t s = 1; s <= 3; ++s) {
            Pending p;
            p.message = pattern(2 + rng() % 20000, static_cast<unsigned>(round * 3 + s));
            std::uint64_t at = 0;
            while (at < p.message.size()) {
                std::size_t n = 1 + rng() % 3000;
                n = std::min<std::size_t>(n, p.message.size() - at);
                if (at == 0 && n == p.message.size()) {
                    n = p.message.size() - 1; // a start never holds the whole message
                }
                p.cuts.emplace_back(at, n);
                at += n;
            }
            streams.emplace(s, std::move(p));
        }
        Reassembler r{1 << 20};
        std::size_t done = 0;
        while (done < streams.size()) {
            auto it = std::next(streams.begin(), static_cast<long>(rng() % streams.size()));
            Pending& p = it->second;
            if (p.next == p.cuts.size()) {
                continue;
            }
            const auto [offset, size] = p.cuts[p.next];
            const FragmentPart part = p.next == 0                   ? FragmentPart::start
                                      : p.next + 1 == p.cuts.size() ? FragmentPart::end
                                                                    : FragmentPart::middle;
            const auto frame = fragment_frame(part, it->first, 100 + it->first, p.message.size(),
                                              offset, std::span{p.message}.subspan(offset, size));
            auto decoded = decode(frame, kBody, kFragmentsVersion);
            REQUIRE(decoded.has_value());
            auto out = r.add(std::get<FragmentView>(decoded.value()), 1 << 20);
            REQUIRE(out.has_value());
            ++p.next;
            if (p.next == p.cuts.size()) {
                REQUIRE(out.value().has_value());
                const WholeMessage& w = *out.value();
                CHECK(w.sequence == 100 + it->first);
                REQUIRE(w.bytes().size() == p.message.size());
                CHECK(std::memcmp(w.bytes().data(), p.message.data(), p.message.size()) == 0);
                ++done;
            } else {
                CHECK_FALSE(out.value().has_value());
            }
        }
        CHECK(r.held_bytes() == 0);
    }
}

namespace {

/// What drive() saw come out of a byte stream.
struct Driven {
    std::vector<WholeMessage> messages;
    std::vector<FrameType> others; ///< every frame but a fragment, in order
    std::size_t diverted_bytes{0}; ///< bytes the reads put straight into a message's place
    std::size_t largest_after{0};  ///< the most a read was offered just after a diversion
};

/// Reads `stream` into a protocol 2 frame reader as a link does, at most `chunk()` bytes a
/// read (a read fills what writable() offers, up to that), and handles what comes out as a
/// bridge session does: a fragment with at least `min_due` bytes still to come is diverted
/// into its reassembly buffer, any other one added whole.
Driven drive(std::span<const std::byte> stream, const std::function<std::size_t()>& chunk,
             std::size_t min_due) {
    FrameReader reader{kBody};
    reader.set_version(kFragmentsVersion);
    Reassembler r{1 << 20};
    std::optional<std::uint32_t> diverted; // the stream of the fragment diverted
    bool just_diverted = false;
    std::size_t at = 0;
    Driven out;
    for (;;) {
        if (diverted && !reader.diverting()) {
            if (auto whole = r.placed(*diverted)) {
                out.messages.push_back(std::move(*whole));
            }
            diverted.reset();
            just_diverted = true;
            continue;
        }
        auto frame = reader.next();
        REQUIRE(frame.has_value());
        if (frame.value()) {
            just_diverted = false;
            if (const auto* f = std::get_if<FragmentView>(&*frame.value())) {
                auto whole = r.add(*f, 1 << 20);
                REQUIRE(whole.has_value());
                if (whole.value()) {
                    out.messages.push_back(std::move(*whole.value()));
                }
            } else {
                out.others.push_back(type_of(*frame.value()));
            }
            continue;
        }
        if (!diverted) {
            auto head = reader.fragment_head(min_due);
            REQUIRE(head.has_value());
            if (head.value()) {
                const FragmentHead& h = *head.value();
                REQUIRE(h.size - h.view.bytes.size() >= min_due);
                auto place = r.place(h.view, h.size, 1 << 20);
                REQUIRE(place.has_value());
                REQUIRE(place.value().size() == h.size);
                diverted = h.view.stream;
                reader.divert(place.value());
                continue;
            }
        }
        if (at == stream.size()) {
            break;
        }
        const bool into_place = reader.diverting();
        auto room = reader.writable(4096);
        if (just_diverted && !into_place) {
            out.largest_after = std::max(out.largest_after, room.size());
        }
        const std::size_t n =
            std::min({room.size(), std::max<std::size_t>(1, chunk()), stream.size() - at});
        std::memcpy(room.data(), stream.data() + at, n);
        reader.commit(n);
        at += n;
        if (into_place) {
            out.diverted_bytes += n;
        }
    }
    CHECK_FALSE(diverted.has_value());
    CHECK(reader.buffered() == 0);
    CHECK(r.held_bytes() == 0);
    return out;
}

/// `message` of stream `id` as fragments of at most `cut` bytes, appended to `out`.
void append_fragments(std::vector<std::byte>& out, std::uint32_t id, std::uint64_t seq,
                      std::span<const std::byte> message, std::size_t cut) {
    for (std::size_t at = 0; at < message.size();) {
        std::size_t n = std::min(cut, message.size() - at);
        if (at == 0 && n == message.size()) {
            n = message.size() - 1; // a start never holds the whole message
        }
        const FragmentPart part = at == 0                    ? FragmentPart::start
                                  : at + n == message.size() ? FragmentPart::end
                                                             : FragmentPart::middle;
        const auto frame =
            fragment_frame(part, id, seq, message.size(), at, message.subspan(at, n));
        out.insert(out.end(), frame.begin(), frame.end());
        at += n;
    }
}

void append_ping(std::vector<std::byte>& out, std::uint64_t token) {
    auto frame = encode(Frame{Ping{token, 7}});
    REQUIRE(frame.has_value());
    out.insert(out.end(), frame.value().begin(), frame.value().end());
}

} // namespace

TEST_CASE("a large fragment's bytes go straight from the link to their place, and the frames "
          "after it come out intact") {
    const auto message = pattern(150'000, 6);
    std::vector<std::byte> stream;
    append_fragments(stream, 2, 9, message, 60'000); // 60 000, 60 000, 30 000
    append_ping(stream, 1);
    // Reads as large as a socket's: the first brings the start's head and part of its bytes.
    const Driven d = drive(
        stream, [] { return std::size_t{256} * 1024; }, std::size_t{16} * 1024);
    REQUIRE(d.messages.size() == 1);
    check_exactly(d.messages[0], message);
    CHECK(d.messages[0].sequence == 9);
    CHECK(d.others == std::vector<FrameType>{FrameType::ping});
    // After the first diversion, a read brings only the next frame's head: the middle's and
    // the end's bytes all go straight to their place.
    CHECK(d.largest_after <= kFragmentHeadBytes);
    CHECK(d.diverted_bytes >= 90'000);
}

TEST_CASE("randomly cut reads of interleaved fragments and frames reassemble byte for byte, "
          "diverted or not") {
    std::mt19937_64 rng{21};
    for (int round = 0; round < 200; ++round) {
        CAPTURE(round);
        std::vector<std::byte> stream;
        std::vector<std::vector<std::byte>> messages;
        std::size_t pings = 0;
        for (std::uint32_t id = 1; id <= 4; ++id) {
            messages.push_back(pattern(2 + rng() % 200'000, static_cast<unsigned>(round + id)));
            append_fragments(stream, id, id, messages.back(), 1 + rng() % kBody);
            if (rng() % 2 == 0) {
                append_ping(stream, ++pings);
            }
        }
        const std::size_t min_due = 1 + rng() % 40'000;
        const std::size_t most = 1 + rng() % 100'000;
        const Driven d = drive(
            stream, [&] { return 1 + rng() % most; }, min_due);
        REQUIRE(d.messages.size() == messages.size());
        for (std::size_t i = 0; i < messages.size(); ++i) {
            CHECK(d.messages[i].stream == i + 1);
            check_exactly(d.messages[i], messages[i]);
        }
        CHECK(d.others.size() == pings);
    }
}

TEST_CASE("a fragment's head is checked before its bytes arrive, naming the field") {
    const auto bytes = pattern(40'000, 7);
    std::vector<std::byte> frame;
    auto p = encode_fragment_prefix(FragmentPart::start, 2, 4, 90'000, 0, bytes.size(), kOrigin,
                                    kBody, frame);
    REQUIRE(p.has_value());
    // The origin's daemon (after stream, sequence, total and offset) made 0 on the wire.
    std::memset(frame.data() + kHeaderBytes + 4 + 8 + 8 + 8, 0, 8);
    FrameReader reader{kBody};
    reader.set_version(kFragmentsVersion);
    reader.append(frame); // the head alone: its bytes have not arrived
    auto next = reader.next();
    REQUIRE(next.has_value());
    CHECK_FALSE(next.value().has_value());
    auto head = reader.fragment_head(1);
    REQUIRE_FALSE(head.has_value());
    CHECK(head.error().code == Errc::protocol_error);
    CHECK_THAT(head.error().detail, Catch::Contains("daemon") && Catch::Contains("is 0"));
    // Broken once, broken for good.
    CHECK_FALSE(reader.next().has_value());
}

TEST_CASE("a message whose link ends while a fragment is placed counts only what arrived") {
    Reassembler r{1 << 20};
    const auto bytes = pattern(1000, 8);
    REQUIRE(r.add(view(FragmentPart::start, 5, 1, 5000, 0, bytes), 1 << 20).has_value());
    auto place = r.place(view(FragmentPart::middle, 5, 1, 5000, 1000, {}), 2000, 1 << 20);
    REQUIRE(place.has_value());
    CHECK(place.value().size() == 2000);
    // The fragment is refused at its head when it does not follow the start.
    CHECK_THAT(r.place(view(FragmentPart::start, 5, 2, 100, 0, {}), 50, 1 << 20).error().detail,
               Catch::Contains("a new start before the end"));
    const auto dropped = r.drop_all();
    REQUIRE(dropped.size() == 1);
    CHECK(dropped[0].received == 1000);
    CHECK(dropped[0].total == 5000);
}

TEST_CASE("a start given a place reassembles there, holding no buffer") {
    Reassembler r{1 << 20};
    const auto message = pattern(5000, 10);
    const std::span<const std::byte> m{message};
    std::vector<std::byte> slot(8192, std::byte{0xee});

    SECTION("its bytes land in the place, and the whole message says so") {
        auto start = r.place(view(FragmentPart::start, 6, 40, 5000, 0, {}), 2000, 8192, {}, slot);
        REQUIRE(start.has_value());
        CHECK(start.value().data() == slot.data());
        std::memcpy(start.value().data(), m.data(), 2000);
        CHECK_FALSE(r.placed(6).has_value());
        CHECK(r.held_bytes() == 0);
        auto end = r.add(view(FragmentPart::end, 6, 40, 5000, 2000, m.subspan(2000)), 8192);
        REQUIRE(end.has_value());
        REQUIRE(end.value().has_value());
        const WholeMessage& whole = *end.value();
        CHECK(whole.in_place);
        CHECK(whole.total == 5000);
        CHECK(whole.framed.empty());
        CHECK(std::memcmp(slot.data(), message.data(), 5000) == 0);
        CHECK(slot[5000] == std::byte{0xee}); // nothing past the message is written
        CHECK_FALSE(r.in_progress(6));
    }
    SECTION("a place smaller than the message is refused, naming both sizes") {
        auto refused = r.place(view(FragmentPart::start, 6, 40, 5000, 0, {}), 2000, 8192, {},
                               std::span{slot}.first(4000));
        REQUIRE_FALSE(refused.has_value());
        CHECK_THAT(refused.error().detail, Catch::Contains("4000 of its 5000 bytes"));
        CHECK_FALSE(r.in_progress(6));
    }
    SECTION("a message dropped while in its place reports what had arrived") {
        REQUIRE(r.place(view(FragmentPart::start, 6, 40, 5000, 0, {}), 2000, 8192, {}, slot)
                    .has_value());
        CHECK_FALSE(r.placed(6).has_value());
        auto dropped = r.drop(6);
        REQUIRE(dropped.has_value());
        CHECK(dropped->received == 2000);
        CHECK(dropped->total == 5000);
    }
}

} // namespace shmbus::gateway
