// Tests of client-lib/src/protocol/seqpacket: messages and their descriptors over a
// socketpair(AF_UNIX, SOCK_SEQPACKET), and the kernel behaviour the module relies on: a
// descriptor passed by SCM_RIGHTS survives the sender's close, SOCK_SEQPACKET keeps message
// boundaries, MSG_TRUNC reports a datagram larger than the buffer. Every descriptor a peer
// sends that we do not want must be closed: checked through a pipe whose reader sees EOF
// only once every copy of the write end is gone.
#include "protocol/seqpacket.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

// Inside the namespace, so that Message is proto::Message and not the data path's.
namespace shmbus::proto {
using namespace std::chrono_literals;

namespace {

struct SocketPair {
    UniqueFd a;
    UniqueFd b;
};

SocketPair seqpacket_pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0);
    SocketPair p{UniqueFd{fds[0]}, UniqueFd{fds[1]}};
    REQUIRE(size_socket_buffers(p.a.get()));
    REQUIRE(size_socket_buffers(p.b.get()));
    return p;
}

struct Pipe {
    UniqueFd read_end;
    UniqueFd write_end;
};

Pipe make_pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    return Pipe{UniqueFd{fds[0]}, UniqueFd{fds[1]}};
}

std::chrono::steady_clock::time_point soon() {
    // Generous: the message is already queued when we wait, so this never elapses in a
    // passing run; it only bounds a failing one.
    return std::chrono::steady_clock::now() + 30s;
}

/// True if the pipe's read end sees end-of-file, i.e. no write end is open anywhere.
bool write_end_closed_everywhere(const Pipe& p) {
    pollfd pfd{p.read_end.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 0) != 1) {
        return false; // a write end is still open and nothing was written
    }
    char c = 0;
    return ::read(p.read_end.get(), &c, 1) == 0;
}

/// Sends raw `bytes` with `fds`, bypassing send_message()'s checks, as a hostile peer would.
void send_raw(int sock, const std::vector<std::byte>& bytes, const std::vector<int>& fds) {
    const auto sent = send_datagram(sock, bytes, fds);
    INFO((sent ? std::string{} : sent.error().message()));
    REQUIRE(sent);
}

std::vector<std::byte> encoded(const Message& m) {
    auto bytes = encode(m);
    REQUIRE(bytes);
    return std::move(*bytes);
}

} // namespace

TEST_CASE("a message and its descriptors cross a seqpacket socket intact") {
    auto sockets = seqpacket_pair();
    auto control = make_pipe();
    auto payload = make_pipe();
    OpenReply reply;
    reply.info.name = "telemetry";
    reply.endpoint_index = 3;
    const std::array<int, 2> fds{control.write_end.get(), payload.write_end.get()};
    REQUIRE(send_message(sockets.a.get(), Message{7, reply}, fds));

    auto got = receive_message(sockets.b.get(), soon());
    REQUIRE(got);
    CHECK(got->message.request_id == 7);
    REQUIRE(std::holds_alternative<OpenReply>(got->message.body));
    CHECK(std::get<OpenReply>(got->message.body).info.name == "telemetry");
    CHECK(std::get<OpenReply>(got->message.body).endpoint_index == 3);
    REQUIRE(got->fds.size() == 2);

    // The received descriptors are the same files, in order, and close-on-exec.
    control.write_end.reset();
    payload.write_end.reset();
    CHECK((::fcntl(got->fds[0].get(), F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(::write(got->fds[1].get(), "p", 1) == 1);
    char c = 0;
    REQUIRE(::read(payload.read_end.get(), &c, 1) == 1);
    CHECK(c == 'p');
    CHECK_FALSE(write_end_closed_everywhere(control));
    got->fds.clear();
    CHECK(write_end_closed_everywhere(control));
}

TEST_CASE("a descriptor passed by SCM_RIGHTS survives the sender's close") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    {
        auto other = make_pipe();
        const std::array<int, 2> fds{pipe.write_end.get(), other.read_end.get()};
        REQUIRE(send_message(sockets.a.get(), Message{1, ReclaimOffer{"c", 1, Role::publisher, 0}},
                             fds));
    }
    pipe.write_end.reset(); // the sender's copy is gone before the receiver even looks
    auto got = receive_message(sockets.b.get(), soon());
    REQUIRE(got);
    REQUIRE(got->fds.size() == 2);
    REQUIRE(::write(got->fds[0].get(), "x", 1) == 1);
    char c = 0;
    CHECK(::read(pipe.read_end.get(), &c, 1) == 1);
}

TEST_CASE("seqpacket keeps message boundaries: two sends are two receives") {
    auto sockets = seqpacket_pair();
    REQUIRE(send_message(sockets.a.get(), Message{1, Ping{11}}));
    REQUIRE(send_message(sockets.a.get(), Message{2, Ping{22}}));
    auto first = receive_message(sockets.b.get(), soon());
    auto second = receive_message(sockets.b.get(), soon());
    REQUIRE(first);
    REQUIRE(second);
    CHECK(std::get<Ping>(first->message.body).token == 11);
    CHECK(std::get<Ping>(second->message.body).token == 22);
}

TEST_CASE("send_message refuses descriptors a message type does not carry") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    const std::array<int, 1> one{pipe.write_end.get()};
    const auto extra = send_message(sockets.a.get(), Message{1, Ping{1}}, one);
    REQUIRE_FALSE(extra);
    CHECK(extra.code() == Errc::invalid_argument);
    const auto missing = send_message(sockets.a.get(), Message{1, OpenReply{}});
    REQUIRE_FALSE(missing);
    CHECK(missing.code() == Errc::invalid_argument);
    CHECK(missing.error().detail == "open_reply carries 2 descriptors, 0 given");
}

TEST_CASE("descriptors sent with a message that carries none are refused and closed") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    send_raw(sockets.a.get(), encoded({1, Ping{1}}), {pipe.write_end.get()});
    pipe.write_end.reset();
    const auto got = receive_message(sockets.b.get(), soon());
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::protocol_error);
    CHECK(got.error().detail == "ping came with 1 descriptor, it carries 0; all were closed");
    CHECK(write_end_closed_everywhere(pipe));
}

TEST_CASE("an open_reply with a third descriptor is refused and all three are closed") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    const int w = pipe.write_end.get();
    send_raw(sockets.a.get(), encoded({1, OpenReply{}}), {w, w, w});
    pipe.write_end.reset();
    const auto got = receive_message(sockets.b.get(), soon());
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::protocol_error);
    CHECK(write_end_closed_everywhere(pipe));
}

TEST_CASE("more descriptors than the receive buffer holds are refused and none leaks") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    send_raw(sockets.a.get(), encoded({1, OpenReply{}}),
             std::vector<int>(64, pipe.write_end.get()));
    pipe.write_end.reset();
    const auto got = receive_message(sockets.b.get(), soon());
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::protocol_error);
    CHECK(write_end_closed_everywhere(pipe));
}

TEST_CASE("a malformed datagram is refused and its descriptors are closed") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    auto bytes = encoded({1, OpenReply{}});
    bytes.resize(bytes.size() - 1);
    send_raw(sockets.a.get(), bytes, {pipe.write_end.get(), pipe.write_end.get()});
    pipe.write_end.reset();
    const auto got = receive_message(sockets.b.get(), soon());
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::protocol_error);
    CHECK(write_end_closed_everywhere(pipe));
}

TEST_CASE("a datagram larger than kMaxMessageBytes is truncated by the kernel and refused") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    std::vector<std::byte> huge = encoded({1, Ping{1}});
    huge.resize(kMaxMessageBytes + 100, std::byte{0x55});
    send_raw(sockets.a.get(), huge, {pipe.write_end.get()});
    pipe.write_end.reset();
    const auto got = receive_message(sockets.b.get(), soon());
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::protocol_error);
    CHECK(got.error().detail == "a datagram larger than 131088 bytes was refused");
    CHECK(write_end_closed_everywhere(pipe));

    // The next message is unaffected: the truncated datagram was consumed whole.
    REQUIRE(send_message(sockets.a.get(), Message{2, Ping{2}}));
    auto next = receive_message(sockets.b.get(), soon());
    REQUIRE(next);
    CHECK(next->message.request_id == 2);
}

TEST_CASE("a datagram shorter than the header is refused") {
    auto sockets = seqpacket_pair();
    send_raw(sockets.a.get(), std::vector<std::byte>(5, std::byte{0x53}), {});
    const auto got = receive_message(sockets.b.get(), soon());
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::protocol_error);
}

TEST_CASE("receive_message gives up at its deadline when nothing arrives") {
    auto sockets = seqpacket_pair();
    const auto start = std::chrono::steady_clock::now();
    const auto got = receive_message(sockets.b.get(), start + 50ms);
    const auto waited = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::timed_out);
    CHECK(waited >= 50ms);
}

TEST_CASE("a deadline already passed checks once without waiting") {
    auto sockets = seqpacket_pair();
    const auto empty = receive_message(sockets.b.get(), std::chrono::steady_clock::time_point{});
    REQUIRE_FALSE(empty);
    CHECK(empty.code() == Errc::timed_out);
    REQUIRE(send_message(sockets.a.get(), Message{3, Status{}}));
    const auto queued = receive_message(sockets.b.get(), std::chrono::steady_clock::time_point{});
    REQUIRE(queued);
    CHECK(queued->message.request_id == 3);
}

TEST_CASE("the peer's close is reported as closed, on receive and on send") {
    auto sockets = seqpacket_pair();
    sockets.a.reset();
    const auto got = receive_message(sockets.b.get(), soon());
    REQUIRE_FALSE(got);
    CHECK(got.code() == Errc::closed);
    const auto sent = send_message(sockets.b.get(), Message{1, Ping{1}});
    REQUIRE_FALSE(sent);
    CHECK(sent.code() == Errc::closed);
    CHECK(sent.error().sys_errno == EPIPE);
}

TEST_CASE("messages queued before the peer closed are still delivered") {
    auto sockets = seqpacket_pair();
    REQUIRE(send_message(sockets.a.get(), Message{9, Ping{9}}));
    sockets.a.reset();
    auto got = receive_message(sockets.b.get(), soon());
    REQUIRE(got);
    CHECK(got->message.request_id == 9);
    CHECK(receive_message(sockets.b.get(), soon()).code() == Errc::closed);
}

TEST_CASE("socket buffers hold two maximal messages") {
    auto sockets = seqpacket_pair();
    int sndbuf = 0;
    socklen_t len = sizeof(sndbuf);
    REQUIRE(::getsockopt(sockets.a.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0);
    CHECK(static_cast<std::size_t>(sndbuf) >= 2 * kMaxMessageBytes);
    ChannelList big;
    ChannelSummary s;
    s.info.name.assign(kMaxStringBytes, 'n');
    big.channels.assign(30, s); // ~ 124 KiB: near the limit
    auto bytes = encode({1, big});
    REQUIRE(bytes);
    REQUIRE(bytes->size() > kMaxMessageBytes - 8192);
    REQUIRE(send_message(sockets.a.get(), Message{1, big}));
    REQUIRE(send_message(sockets.a.get(), Message{2, big}));
    auto first = receive_message(sockets.b.get(), soon());
    REQUIRE(first);
    CHECK(std::get<ChannelList>(first->message.body).channels.size() == 30);
}

} // namespace shmbus::proto

namespace shmbus::proto {
namespace {

/// read_message() on what is queued now: a buffer of kMaxMessageBytes, as the daemon keeps.
Incoming read_now(int fd) {
    std::vector<std::byte> buffer(kMaxMessageBytes);
    return read_message(fd, buffer);
}

/// The Refusal `in` holds (a copy: `in` is usually a temporary).
Refusal refusal_of(const Incoming& in) {
    const auto* r = std::get_if<Refusal>(&in);
    REQUIRE(r != nullptr);
    return *r;
}

} // namespace

TEST_CASE("read_message without a datagram queued is would_block at once") {
    auto sockets = seqpacket_pair();
    const auto start = std::chrono::steady_clock::now();
    const Incoming in = read_now(sockets.b.get());
    REQUIRE(std::holds_alternative<Error>(in));
    CHECK(std::get<Error>(in).code == Errc::would_block);
    CHECK(std::chrono::steady_clock::now() - start < 5s); // it did not wait for one
}

TEST_CASE("read_message hands over a message and its descriptors") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    const std::array<int, 2> fds{pipe.write_end.get(), pipe.read_end.get()};
    REQUIRE(
        send_message(sockets.a.get(), Message{5, ReclaimOffer{"c", 1, Role::publisher, 0}}, fds));
    Incoming in = read_now(sockets.b.get());
    auto* got = std::get_if<Received>(&in);
    REQUIRE(got != nullptr);
    CHECK(got->message.request_id == 5);
    CHECK(got->fds.size() == 2);
}

TEST_CASE("a malformed body is told apart from a wrong descriptor count, and only "
          "descriptors where they do not belong end the connection") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    const int w = pipe.write_end.get();

    SECTION("a malformed body without descriptors is answered, the connection stays") {
        auto bytes = encoded({1, Ping{1}});
        bytes.resize(bytes.size() - 1);
        send_raw(sockets.a.get(), bytes, {});
        const Refusal r = refusal_of(read_now(sockets.b.get()));
        CHECK(r.fault == Fault::malformed);
        CHECK(r.error.code == Errc::protocol_error);
        CHECK(r.request_id == 0);
        CHECK(r.bytes == bytes.size());
        CHECK_FALSE(r.ends_connection());
    }
    SECTION("a malformed body with descriptors ends the connection") {
        auto bytes = encoded({1, OpenReply{}});
        bytes.resize(bytes.size() - 1);
        send_raw(sockets.a.get(), bytes, {w, w});
        const Refusal r = refusal_of(read_now(sockets.b.get()));
        CHECK(r.fault == Fault::malformed);
        CHECK(r.descriptors == 2);
        CHECK(r.ends_connection());
    }
    SECTION("a well-formed message with descriptors its type does not carry") {
        send_raw(sockets.a.get(), encoded({7, Ping{1}}), {w});
        const Refusal r = refusal_of(read_now(sockets.b.get()));
        CHECK(r.fault == Fault::descriptor_count);
        CHECK(r.request_id == 7); // the reply can name the request
        CHECK(r.error.detail == "ping came with 1 descriptor, it carries 0; all were closed");
        CHECK(r.ends_connection());
    }
    SECTION("a reclaim_offer with one descriptor of its two") {
        send_raw(sockets.a.get(), encoded({8, ReclaimOffer{"c", 1, Role::publisher, 0}}), {w});
        const Refusal r = refusal_of(read_now(sockets.b.get()));
        CHECK(r.fault == Fault::descriptor_count);
        CHECK(r.error.detail ==
              "reclaim_offer came with 1 descriptor, it carries 2; all were closed");
        CHECK(r.ends_connection());
    }
    SECTION("more descriptors than a read takes") {
        send_raw(sockets.a.get(), encoded({1, OpenReply{}}), std::vector<int>(64, w));
        const Refusal r = refusal_of(read_now(sockets.b.get()));
        CHECK(r.fault == Fault::excess_descriptors);
        CHECK(r.ends_connection());
    }
    SECTION("an oversized datagram without descriptors is answered, the connection stays") {
        std::vector<std::byte> huge(kMaxMessageBytes + 100, std::byte{0x55});
        send_raw(sockets.a.get(), huge, {});
        const Refusal r = refusal_of(read_now(sockets.b.get()));
        CHECK(r.fault == Fault::oversized);
        CHECK(r.bytes == huge.size()); // the size as sent, not as cut
        CHECK_FALSE(r.ends_connection());
    }
    pipe.write_end.reset();
    CHECK(write_end_closed_everywhere(pipe));
}

TEST_CASE("read_datagram hands over bytes and descriptors without judging them") {
    auto sockets = seqpacket_pair();
    auto pipe = make_pipe();
    const std::vector<std::byte> text{std::byte{'h'}, std::byte{'i'}};
    send_raw(sockets.a.get(), text,
             {pipe.write_end.get(), pipe.write_end.get(), pipe.write_end.get()});
    std::array<std::byte, 1> small{};
    auto got = read_datagram(sockets.b.get(), small);
    REQUIRE(got);
    CHECK(got->size == 2);
    CHECK(got->cut); // one byte of two fitted
    CHECK(small[0] == std::byte{'h'});
    CHECK(got->fds.size() == 3);
    CHECK_FALSE(got->excess_descriptors);
}

TEST_CASE("a message buffer smaller than the protocol's largest message is refused") {
    auto sockets = seqpacket_pair();
    std::vector<std::byte> buffer(kMaxMessageBytes - 1);
    const Incoming in = read_message(sockets.b.get(), buffer);
    REQUIRE(std::holds_alternative<Error>(in));
    CHECK(std::get<Error>(in).code == Errc::invalid_argument);
}

} // namespace shmbus::proto
