// Tests of a link's blocking writes (gateway/link_io.hpp): their deadline bounds a stall, not
// the time a large frame takes to drain through a slow link.
#include "gateway/link_io.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace shmbus::gateway;
using namespace std::chrono_literals;

namespace {

/// A connected pair of stream sockets whose writing end (fds[0], non-blocking, as a bridge's
/// link sockets are) buffers little (16 KiB asked for), so that a large write waits for its
/// reader.
struct Pair {
    Pair() {
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) == 0);
        REQUIRE(::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK) == 0);
        const int small = 16 * 1024;
        REQUIRE(::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
        REQUIRE(::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    }
    ~Pair() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    Pair(const Pair&) = delete;
    Pair& operator=(const Pair&) = delete;

    std::array<int, 2> fds{};
};

std::vector<std::byte> pattern(std::size_t n) {
    std::vector<std::byte> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = static_cast<std::byte>((i * 7 + 3) & 0xffU);
    }
    return out;
}

/// Reads `total` bytes from `fd` like a slow link: at most 8 KiB, then a pause of 40 ms. The
/// pace is the link being simulated, not a wait for anything.
std::vector<std::byte> read_slowly(int fd, std::size_t total) {
    std::vector<std::byte> got;
    std::array<std::byte, 8192> chunk{};
    while (got.size() < total) {
        const ssize_t n = ::read(fd, chunk.data(), chunk.size());
        if (n <= 0) {
            break;
        }
        got.insert(got.end(), chunk.begin(), chunk.begin() + n);
        std::this_thread::sleep_for(40ms);
    }
    return got;
}

} // namespace

TEST_CASE("a write that a slow reader drains goes on past its deadline while bytes move") {
    // 256 KiB at 8 KiB per 40 ms: about 1.3 s, against a deadline of 300 ms.
    const auto bytes = pattern(256 * 1024);
    Pair p;
    FdStream stream{p.fds[0], p.fds[0]};
    std::vector<std::byte> got;
    std::thread reader{[&] { got = read_slowly(p.fds[1], bytes.size()); }};
    SECTION("write_all") {
        auto w = stream.write_all(bytes, std::chrono::steady_clock::now() + 300ms);
        ::shutdown(p.fds[0], SHUT_WR); // the reader stops at the end, whatever came
        reader.join();
        REQUIRE(w.has_value());
    }
    SECTION("write_gather") {
        const std::span<const std::byte> all{bytes};
        std::array<iovec, 2> iov{
            iovec{const_cast<std::byte*>(all.data()), 1000},
            iovec{const_cast<std::byte*>(all.data() + 1000), all.size() - 1000}};
        auto w = stream.write_gather(iov, std::chrono::steady_clock::now() + 300ms);
        ::shutdown(p.fds[0], SHUT_WR);
        reader.join();
        REQUIRE(w.has_value());
    }
    CHECK(got == bytes);
}

TEST_CASE("a write that nobody reads ends at its deadline as timed_out") {
    const auto bytes = pattern(1024 * 1024);
    Pair p;
    FdStream stream{p.fds[0], p.fds[0]};
    auto w = stream.write_all(bytes, std::chrono::steady_clock::now() + 200ms);
    REQUIRE_FALSE(w.has_value());
    CHECK(w.error().code == shmbus::Errc::timed_out);
}
