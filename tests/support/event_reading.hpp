// Reading an endpoint's peer events in tests: all that are there now, or as they come, woken
// by the endpoint's wait handle. Any endpoint with events() (Publisher, Subscriber, Server,
// Caller).
#pragma once

#include "process.hpp"

#include <shmbus/events.hpp>

#include <array>
#include <cstddef>
#include <poll.h>
#include <vector>

namespace shmbus::test {

/// Every event `e` has now, read `room` at a time.
template <typename Endpoint>
std::vector<PeerEvent> drain_events(Endpoint& e, std::size_t room = 8) {
    std::vector<PeerEvent> all;
    std::vector<PeerEvent> buf(room);
    for (;;) {
        const std::size_t n = e.events(buf);
        all.insert(all.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        if (n < buf.size()) {
            return all;
        }
    }
}

/// Reads events of `e` until `n` have come, waiting (generously) on its wait handle `fd`.
template <typename Endpoint>
std::vector<PeerEvent> wait_events(Endpoint& e, int fd, std::size_t n) {
    std::vector<PeerEvent> all;
    const Deadline deadline;
    while (all.size() < n && !deadline.passed()) {
        std::array<PeerEvent, 8> buf;
        const std::size_t got = e.events(buf);
        all.insert(all.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
        if (got == 0) {
            pollfd p{fd, POLLIN, 0};
            (void)::poll(&p, 1, deadline.poll_ms());
        }
    }
    return all;
}

} // namespace shmbus::test
