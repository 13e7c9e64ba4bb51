// A bridge's link: where it goes (the `connect:` or `listen:` text of its configuration) and
// the descriptors that carry it once up. docs/gateway.md ("Links").
//
//   tcp://HOST:PORT          TCP, IPv4 or IPv6 ([::1]:7411); HOST a name or an address
//   fifo:IN_PATH,OUT_PATH    a pair of named pipes: this end reads IN_PATH, writes OUT_PATH
//
// parse_link() is pure and names what is wrong. A Link owns its descriptors (one for a socket,
// two for a FIFO pair). connect_link() and TcpListener::accept() block up to a deadline: call
// them on the bridge's own thread. Descriptors are close-on-exec; sockets get TCP_NODELAY
// (frames are written whole, so Nagle would only add latency) and keepalive.
#pragma once

#include "gateway/link_io.hpp"

#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace shmbus::gateway {

struct LinkAddress {
    enum class Kind { tcp, fifo };
    Kind kind{Kind::tcp};
    std::string host;      ///< tcp: a name or an address, without brackets
    std::uint16_t port{0}; ///< tcp
    std::string in_path;   ///< fifo: the pipe this end reads
    std::string out_path;  ///< fifo: the pipe this end writes
    std::string text;      ///< as written, for logs
};

/// Parses a link address. Errc::invalid_argument naming the problem ("tcp://host: missing
/// port", "fifo: needs two paths separated by a comma").
[[nodiscard]] Result<LinkAddress> parse_link(std::string_view text);

/// The descriptors of one live link.
struct Link {
    UniqueFd in;      ///< read from here
    UniqueFd out;     ///< write here (the same socket as `in` for tcp: then `out` is empty)
    std::string peer; ///< the peer's address, for logs ("192.0.2.7:7411", a path)

    [[nodiscard]] int in_fd() const noexcept { return in.get(); }
    [[nodiscard]] int out_fd() const noexcept { return out.valid() ? out.get() : in.get(); }
};

/// Opens the link at `address` as its connecting end: a TCP connection, or a FIFO pair
/// (waiting, until `deadline`, for the other end to open its side). Errc::timed_out,
/// Errc::not_found (an unknown host or a missing FIFO), Errc::system_error (refused,
/// unreachable: the errno says which), each naming the address.
[[nodiscard]] Result<Link> connect_link(const LinkAddress& address, Deadline deadline);

/// A listening TCP socket. Move-only.
class TcpListener {
public:
    /// Binds and listens on `address` (a tcp address; port 0 takes a free one).
    static Result<TcpListener> listen(const LinkAddress& address);
    /// Waits for one connection until `deadline`; Errc::timed_out then.
    Result<Link> accept(Deadline deadline);
    /// The port it listens on (the one the kernel chose for port 0).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    TcpListener(UniqueFd fd, std::uint16_t port) : fd_{std::move(fd)}, port_{port} {}
    UniqueFd fd_;
    std::uint16_t port_{0};
};

} // namespace shmbus::gateway
