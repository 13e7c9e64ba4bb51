// Tests of daemon/gateway/handshake over a socketpair: two ends with the same secret agree
// and learn each other's limits and incarnation; a wrong secret, a missing secret, another
// protocol version, a loop back to the same daemon, an unexpected frame and a reflected
// answer are each refused with a reason naming both sides, which the peer receives as a
// goodbye; a peer that vanishes or stays silent ends the handshake as closed or timed out.
// An end whose secret is not required waives the challenge for a peer without one, and an
// answer is bound to the channel (the TLS keying material) it was made on.
// Each end runs on its own thread, as on a bridge's link thread.
#include "gateway/handshake.hpp"
#include "gateway/link_io.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace shmbus::gateway {
namespace {

using namespace std::chrono_literals;

Deadline soon() {
    return std::chrono::steady_clock::now() + 10s;
}

struct SocketPair {
    UniqueFd a;
    UniqueFd b;
    SocketPair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        a.reset(fds[0]);
        b.reset(fds[1]);
    }
};

HandshakeSettings settings(bool initiator, std::optional<std::string> secret) {
    HandshakeSettings s;
    s.initiator = initiator;
    s.bridge = initiator ? "to-ground" : "from-robot";
    s.node = initiator ? "robot1" : "ground";
    s.incarnation = initiator ? 0x1111 : 0x2222;
    s.max_message_bytes = initiator ? 4096 : 65536;
    s.max_data_body = initiator ? 8192 : 1 << 20;
    s.secret = std::move(secret);
    return s;
}

struct Outcome {
    Result<LinkParams> result;
    FrameReader reader;
};

/// Runs one end of the handshake on `fd`.
Outcome run_end(int fd, HandshakeSettings s) {
    auto h = Handshake::start(std::move(s));
    REQUIRE(h.has_value());
    FrameReader reader;
    auto r = run_handshake(fd, fd, h.value(), reader, soon());
    return Outcome{std::move(r), std::move(reader)};
}

/// Both ends at once, the initiator on another thread.
std::pair<Outcome, Outcome> run_both(HandshakeSettings initiator, HandshakeSettings responder) {
    SocketPair pair;
    auto far = std::async(std::launch::async, [&] { return run_end(pair.a.get(), initiator); });
    Outcome near = run_end(pair.b.get(), responder);
    return {far.get(), std::move(near)};
}

/// Reads frames from `fd` until one of type T arrives (skipping others), as a fake peer.
template <typename T>
T read_frame(int fd, FrameReader& reader) {
    for (;;) {
        auto f = reader.next();
        REQUIRE(f.has_value());
        if (f.value()) {
            if (const auto* t = std::get_if<T>(&*f.value())) {
                return *t;
            }
            continue;
        }
        auto n = read_into(fd, reader, soon());
        REQUIRE(n.has_value());
    }
}

void send(int fd, const Frame& frame) {
    auto bytes = encode(frame);
    REQUIRE(bytes.has_value());
    REQUIRE(write_all(fd, bytes.value(), soon()).has_value());
}

Hello fake_hello(std::uint16_t min, std::uint16_t max, AuthMethod auth) {
    Hello h;
    h.version_min = min;
    h.version_max = max;
    h.byte_order = host_byte_order();
    h.max_alignment = alignof(std::max_align_t);
    h.max_message_bytes = 1024;
    h.max_data_body = 65536;
    h.incarnation = 0x9999;
    h.auth = auth;
    if (auth == AuthMethod::hmac_sha256) {
        h.nonce = std::string(kNonceBytes, 'r');
    }
    h.node = "mallory";
    h.bridge = "fake";
    return h;
}

} // namespace

TEST_CASE("two ends with the same secret agree and learn each other's limits") {
    auto [initiator, responder] = run_both(settings(true, "s3cret-of-32-bytes-for-the-link!"),
                                           settings(false, "s3cret-of-32-bytes-for-the-link!"));
    REQUIRE(initiator.result.has_value());
    REQUIRE(responder.result.has_value());
    const LinkParams& i = initiator.result.value();
    const LinkParams& r = responder.result.value();
    CHECK(i.version == kVersionMax); // the highest both speak
    CHECK(i.auth == AuthMethod::hmac_sha256);
    CHECK(i.peer_incarnation == 0x2222);
    CHECK(r.peer_incarnation == 0x1111);
    CHECK(i.peer_node == "ground");
    CHECK(r.peer_bridge == "to-ground");
    CHECK(i.max_message_bytes == 4096);
    CHECK(r.max_message_bytes == 4096);
    CHECK(i.send_data_body == 1 << 20);
    CHECK(i.receive_data_body == 8192);
    CHECK(r.send_data_body == 8192);
}

TEST_CASE("two ends without a secret agree on the hellos alone") {
    auto [initiator, responder] =
        run_both(settings(true, std::nullopt), settings(false, std::nullopt));
    REQUIRE(initiator.result.has_value());
    REQUIRE(responder.result.has_value());
    CHECK(initiator.result.value().auth == AuthMethod::none);
}

TEST_CASE("a wrong secret is refused on both ends as an authentication failure") {
    auto [initiator, responder] =
        run_both(settings(true, "the right secret"), settings(false, "a wrong secret"));
    REQUIRE_FALSE(initiator.result.has_value());
    REQUIRE_FALSE(responder.result.has_value());
    CHECK(initiator.result.error().code == Errc::permission_denied);
    CHECK(responder.result.error().code == Errc::permission_denied);
    CHECK_THAT(responder.result.error().detail, Catch::Contains("authentication failed") &&
                                                    Catch::Contains("robot1, bridge 'to-ground'"));
}

TEST_CASE("an end with a secret refuses a peer without one, naming both methods") {
    auto [initiator, responder] = run_both(settings(true, std::nullopt), settings(false, "secret"));
    REQUIRE_FALSE(responder.result.has_value());
    CHECK(responder.result.error().code == Errc::permission_denied);
    CHECK_THAT(responder.result.error().detail,
               Catch::Contains("this side uses hmac_sha256") && Catch::Contains("none"));
    REQUIRE_FALSE(initiator.result.has_value());
    CHECK(initiator.result.error().code == Errc::permission_denied);
}

TEST_CASE("a link back to the same daemon is refused as a loop") {
    auto responder_settings = settings(false, std::nullopt);
    responder_settings.incarnation = 0x1111;
    auto [initiator, responder] = run_both(settings(true, std::nullopt), responder_settings);
    REQUIRE_FALSE(responder.result.has_value());
    CHECK_THAT(responder.result.error().detail, Catch::Contains("loops back to itself"));
}

TEST_CASE("a peer of another protocol version is refused, and told so, naming both versions") {
    SocketPair pair;
    auto ours = std::async(std::launch::async,
                           [&] { return run_end(pair.a.get(), settings(true, std::nullopt)); });
    const auto above = static_cast<std::uint16_t>(kVersionMax + 1);
    send(pair.b.get(), fake_hello(above, above + 1, AuthMethod::none));
    FrameReader peer_reader;
    const Goodbye bye = read_frame<Goodbye>(pair.b.get(), peer_reader);
    CHECK(bye.code == Errc::version_mismatch);
    CHECK_THAT(
        bye.reason,
        Catch::Contains(std::to_string(above) + ".." + std::to_string(above + 1)) &&
            Catch::Contains(std::to_string(kVersionMin) + ".." + std::to_string(kVersionMax)));
    auto outcome = ours.get();
    REQUIRE_FALSE(outcome.result.has_value());
    CHECK(outcome.result.error().code == Errc::version_mismatch);
}

TEST_CASE("a frame other than a hello first is refused as unexpected") {
    SocketPair pair;
    auto ours = std::async(std::launch::async,
                           [&] { return run_end(pair.a.get(), settings(false, std::nullopt)); });
    send(pair.b.get(), Ping{1, 2});
    auto outcome = ours.get();
    REQUIRE_FALSE(outcome.result.has_value());
    CHECK_THAT(outcome.result.error().detail,
               Catch::Contains("unexpected 'ping' frame during the handshake (expected hello)"));
}

TEST_CASE("an end's own answer reflected back to it is refused") {
    SocketPair pair;
    auto ours = std::async(std::launch::async,
                           [&] { return run_end(pair.a.get(), settings(true, "secret")); });
    FrameReader peer_reader;
    (void)read_frame<Hello>(pair.b.get(), peer_reader);
    send(pair.b.get(), fake_hello(1, 1, AuthMethod::hmac_sha256));
    const Auth theirs = read_frame<Auth>(pair.b.get(), peer_reader);
    send(pair.b.get(), theirs); // the mallory end does not know the secret: it reflects
    auto outcome = ours.get();
    REQUIRE_FALSE(outcome.result.has_value());
    CHECK(outcome.result.error().code == Errc::permission_denied);
}

TEST_CASE("a peer that hangs up during the handshake ends it as closed") {
    SocketPair pair;
    auto ours = std::async(std::launch::async,
                           [&] { return run_end(pair.a.get(), settings(true, std::nullopt)); });
    FrameReader peer_reader;
    (void)read_frame<Hello>(pair.b.get(), peer_reader);
    pair.b.reset();
    auto outcome = ours.get();
    REQUIRE_FALSE(outcome.result.has_value());
    CHECK(outcome.result.error().code == Errc::closed);
}

TEST_CASE("a silent peer ends the handshake at its deadline") {
    SocketPair pair;
    auto h = Handshake::start(settings(true, std::nullopt));
    REQUIRE(h.has_value());
    FrameReader reader;
    auto r = run_handshake(pair.a.get(), pair.a.get(), h.value(), reader,
                           std::chrono::steady_clock::now() + 100ms);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::timed_out);
    CHECK_THAT(r.error().detail, Catch::Contains("did not complete in time"));
}

TEST_CASE("frames that follow the handshake stay in the reader for the session") {
    SocketPair pair;
    auto ours = std::async(std::launch::async,
                           [&] { return run_end(pair.a.get(), settings(false, std::nullopt)); });
    // The peer sends its hello and, without waiting, its first offer.
    send(pair.b.get(), fake_hello(1, 1, AuthMethod::none));
    send(pair.b.get(), Offer{5, 0, "telemetry", ChannelKind::broadcast, Overflow::drop, 64, 8, 1, 0,
                             std::nullopt});
    auto outcome = ours.get();
    REQUIRE(outcome.result.has_value());
    auto next = outcome.reader.next();
    REQUIRE(next.has_value());
    if (!next.value()) {
        REQUIRE(read_into(pair.a.get(), outcome.reader, soon()).has_value());
        next = outcome.reader.next();
        REQUIRE(next.has_value());
    }
    REQUIRE(next.value());
    CHECK(std::get<Offer>(*next.value()).wire_name == "telemetry");
}

TEST_CASE("an end whose secret is not required waives the challenge for a peer without one") {
    auto responder = settings(false, "secret");
    responder.secret_required = false;
    auto [initiator, near] = run_both(settings(true, std::nullopt), responder);
    REQUIRE(initiator.result.has_value());
    REQUIRE(near.result.has_value());
    CHECK(initiator.result.value().auth == AuthMethod::none);
    CHECK(near.result.value().auth == AuthMethod::none);
}

TEST_CASE("an end without a secret takes a waiver only, never an answer to no challenge") {
    SocketPair pair;
    auto ours = std::async(std::launch::async,
                           [&] { return run_end(pair.a.get(), settings(true, std::nullopt)); });
    send(pair.b.get(), fake_hello(1, 1, AuthMethod::hmac_sha256));
    send(pair.b.get(), Auth{std::string(kMacBytes, 'm')});
    auto outcome = ours.get();
    REQUIRE_FALSE(outcome.result.has_value());
    CHECK(outcome.result.error().code == Errc::protocol_error);
    CHECK_THAT(outcome.result.error().detail, Catch::Contains("this side has no shared secret"));
}

TEST_CASE("an answer made on one channel fails on another (a relayed handshake)") {
    // A man in the middle who terminates TLS towards each end holds two TLS sessions, whose
    // exported keying material differs: each end's answer then fails at the other.
    auto initiator = settings(true, "the shared secret");
    auto responder = settings(false, "the shared secret");
    initiator.channel_binding = std::string(32, 'a');
    responder.channel_binding = std::string(32, 'b');
    auto [far, near] = run_both(initiator, responder);
    REQUIRE_FALSE(far.result.has_value());
    REQUIRE_FALSE(near.result.has_value());
    CHECK_THAT(near.result.error().detail, Catch::Contains("authentication failed"));

    responder.channel_binding = initiator.channel_binding;
    auto [same_far, same_near] = run_both(initiator, responder);
    CHECK(same_far.result.has_value());
    REQUIRE(same_near.result.has_value());
    CHECK(same_near.result.value().auth == AuthMethod::hmac_sha256);
}

TEST_CASE("a peer that speaks protocol 1 only agrees on 1, and its link refuses fragments") {
    SocketPair pair;
    auto ours = std::async(std::launch::async,
                           [&] { return run_end(pair.a.get(), settings(false, std::nullopt)); });
    send(pair.b.get(), fake_hello(1, 1, AuthMethod::none));
    auto outcome = ours.get();
    REQUIRE(outcome.result.has_value());
    CHECK(outcome.result.value().version == 1);
    // A fragment (an origin_data frame with a fragment's flags), as protocol 2 would send it,
    // is refused.
    std::vector<std::byte> frame;
    REQUIRE(encode_fragment_prefix(FragmentPart::start, 1, 1, 200, 0, 100, MessageOrigin{1, 2, 3},
                                   4096, frame));
    frame.resize(frame.size() + 100);
    REQUIRE(write_all(pair.b.get(), frame, soon()).has_value());
    Result<std::optional<Frame>> next = outcome.reader.next();
    while (next.has_value() && !next.value()) {
        REQUIRE(read_into(pair.a.get(), outcome.reader, soon()).has_value());
        next = outcome.reader.next();
    }
    REQUIRE_FALSE(next.has_value());
    CHECK_THAT(next.error().detail, Catch::Contains("which bridge protocol 1 does not define"));
}

} // namespace shmbus::gateway
