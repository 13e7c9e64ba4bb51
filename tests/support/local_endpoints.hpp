// Channels and endpoints made in the test process itself, without a daemon: create_channel()
// and attach, each step REQUIREd, so that a test reads as what it checks.
#pragma once

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

namespace shmbus::test {

/// Creates the channel of `s`.
inline ChannelFiles make_channel(const ChannelSpec& s) {
    auto files = create_channel(s);
    REQUIRE(files);
    return std::move(*files);
}

/// Attaches a publisher to `f` with `o`.
inline Publisher attach_publisher(const ChannelFiles& f, const EndpointOptions& o = {}) {
    auto p = Publisher::attach(*f.duplicate_for(Role::publisher), o);
    INFO((p ? std::string{} : p.error().message()));
    REQUIRE(p);
    return std::move(*p);
}

/// Attaches a subscriber to `f` with `o`.
inline Subscriber attach_subscriber(const ChannelFiles& f, const EndpointOptions& o = {}) {
    auto s = Subscriber::attach(*f.duplicate_for(Role::subscriber), o);
    INFO((s ? std::string{} : s.error().message()));
    REQUIRE(s);
    return std::move(*s);
}

/// Attaches an rpc server to `f` with `o`.
inline Server attach_server(const ChannelFiles& f, const EndpointOptions& o = {}) {
    auto s = Server::attach(*f.duplicate_for(Role::subscriber), o);
    INFO((s ? std::string{} : s.error().message()));
    REQUIRE(s);
    return std::move(*s);
}

/// Attaches an rpc caller to `f` with `o`.
inline Caller attach_caller(const ChannelFiles& f, const EndpointOptions& o = {}) {
    auto c = Caller::attach(*f.duplicate_for(Role::publisher), o);
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

/// The wait handle of `e`.
template <typename Endpoint>
int handle_of(Endpoint& e) {
    auto fd = e.wait_handle();
    INFO((fd ? std::string{} : fd.error().message()));
    REQUIRE(fd);
    return *fd;
}

/// Attaches a supervisor to `f`, as the daemon holds one.
inline ChannelSupervisor attach_supervisor(const ChannelFiles& f) {
    auto s = ChannelSupervisor::attach(*f.duplicate());
    REQUIRE(s);
    return std::move(*s);
}

} // namespace shmbus::test
