// Peer events and wait handles of an endpoint. See endpoint_waiting.hpp.
#include "endpoint_waiting.hpp"

namespace shmbus::detail {

std::size_t EndpointWaiting::read(const EndpointCore& core, Role self, std::uint64_t lost_total,
                                  std::span<PeerEvent> out, const Watch& now) noexcept {
    std::size_t n = 0;
    if (core.options.peer_events) {
        if (lost_total != lapped_reported && !out.empty()) {
            out[n++] =
                PeerEvent{EventKind::lapped, self, core.index, 0, lost_total - lapped_reported, 0};
            lapped_reported = lost_total;
        }
        n += cursor.read(core.ch, out.subspan(n), self, core.index);
    }
    if (n < out.size()) {
        Watch w = now;
        w.events = cursor.next;
        w.local_events = local_pending(lost_total);
        rearm(w);
    }
    return n;
}

Result<int> EndpointWaiting::handle(WaitRelay::Ready ready, const Watch& first) noexcept {
    if (!relay) {
        auto made = WaitRelay::start(std::move(ready), first);
        if (!made) {
            return made.take_error();
        }
        relay = std::move(*made);
    }
    return relay->fd();
}

} // namespace shmbus::detail
