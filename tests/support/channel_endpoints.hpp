// Channels made in the test's own process, without a daemon, and endpoints attached to them
// through the public API: for the data-plane tests of one channel kind or one call.
#pragma once

#include "test_support.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>

#include <catch2/catch.hpp>

namespace shmbus::test {

inline ChannelFiles make(const ChannelSpec& s) {
    auto files = create_channel(s);
    REQUIRE(files);
    return std::move(*files);
}

inline Publisher publisher(const ChannelFiles& f, WaitMode wait = WaitMode::adaptive) {
    auto p = Publisher::attach(*f.duplicate_for(Role::publisher), {wait});
    REQUIRE(p);
    return std::move(*p);
}

inline Subscriber subscriber(const ChannelFiles& f, WaitMode wait = WaitMode::adaptive) {
    auto s = Subscriber::attach(*f.duplicate_for(Role::subscriber), {wait});
    REQUIRE(s);
    return std::move(*s);
}

/// Sends one message stamped with `id` (stamp()), without waiting.
inline void send_id(Publisher& p, std::uint64_t id) {
    std::byte msg[24];
    stamp(msg, id);
    REQUIRE(p.try_send(msg));
}

} // namespace shmbus::test
