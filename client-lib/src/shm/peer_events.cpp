// The peer-event ring. See peer_events.hpp.
#include "shm/peer_events.hpp"

#include "shm/rpc_calls.hpp"

#include <algorithm>

namespace shmbus::detail {

namespace {

constexpr std::uint64_t kEventMask = kEventRecords - 1;
static_assert((kEventRecords & kEventMask) == 0, "the ring's size is a power of two");

bool known_kind(std::uint32_t kind) noexcept {
    return kind == static_cast<std::uint32_t>(EventKind::attached) ||
           kind == static_cast<std::uint32_t>(EventKind::detached) ||
           kind == static_cast<std::uint32_t>(EventKind::died);
}

} // namespace

void post_event(const AttachedChannel& ch, EventKind kind, Role role, std::uint32_t index,
                std::uint32_t pid) noexcept {
    EventRing& ring = *ch.events;
    // relaxed: we are the only writer, so head holds what we stored last (or what a damaged
    // segment says: any value only selects a record inside the ring).
    const std::uint64_t n = atom(ring.head).load(std::memory_order_relaxed);
    EventRecord& r = ring.records[n & kEventMask];
    // The seqlock's opening: the odd stamp, then the fields with release stores, so that a
    // reader whose acquire load sees any new field also sees the odd stamp on its re-read.
    // (Release stores rather than a fence: ThreadSanitizer does not model fences.)
    atom(r.stamp).store(2 * n + 1, std::memory_order_relaxed);
    atom(r.kind).store(static_cast<std::uint32_t>(kind), std::memory_order_release);
    atom(r.role).store(static_cast<std::uint32_t>(role), std::memory_order_release);
    atom(r.endpoint_index).store(index, std::memory_order_release);
    atom(r.pid).store(pid, std::memory_order_release);
    // release: the fields happen-before a reader's acquire load of the stamp.
    atom(r.stamp).store(2 * n + 2, std::memory_order_release);
    // release: pairs with event_head()'s acquire; the record is complete before it counts.
    atom(ring.head).store(n + 1, std::memory_order_release);
    wake_sleepers(event_wait(ch.events));
    wake_sleepers(data_wait(ch.control));
    wake_sleepers(space_wait(ch.control));
    if (ch.geo.rpc) {
        wake_all_callers(ch); // a caller waits for events on its reply futex
    }
}

std::uint64_t event_head(const EventRing& ring) noexcept {
    // acquire: pairs with post_event()'s release store of head.
    return atom_load(ring.head, std::memory_order_acquire);
}

std::size_t EventCursor::read(const AttachedChannel& ch, std::span<PeerEvent> out, Role self_role,
                              std::uint32_t self_index) noexcept {
    const EventRing& ring = *ch.events;
    const std::uint64_t head = event_head(ring);
    if (head < next) {
        // Only a damaged segment moves head backwards: start again from where it is now.
        next = head;
    }
    if (head - next > kEventRecords) {
        lost += head - next - kEventRecords;
        next = head - kEventRecords;
    }
    std::size_t n = 0;
    if (carried && !out.empty()) {
        out[n++] = *carried;
        carried.reset();
    }
    auto report_lost = [&] {
        if (lost != 0 && n < out.size()) {
            out[n++] = PeerEvent{EventKind::events_lost, Role::publisher, 0, 0, lost, 0};
            lost = 0;
        }
    };
    report_lost();
    // Read the ring into a local batch first, so that events missed on the way can still be
    // reported before the ones that follow them. A record may yield two events (a server's
    // departure, for a caller), hence twice the ring.
    const bool caller = ch.geo.rpc && self_role == Role::publisher;
    PeerEvent found[2 * kEventRecords];
    std::size_t count = 0;
    const std::size_t room = std::min<std::size_t>(out.size() - n, kEventRecords);
    while (next < head && count < room) {
        const EventRecord& r = ring.records[next & kEventMask];
        // acquire: pairs with post_event()'s release store of the even stamp.
        const std::uint64_t s1 = atom_load(r.stamp, std::memory_order_acquire);
        // acquire: pair with post_event()'s release stores of the fields; a field from a later
        // write makes its odd stamp visible to the re-read below, which they also order.
        const std::uint32_t kind = atom_load(r.kind, std::memory_order_acquire);
        const std::uint32_t role = atom_load(r.role, std::memory_order_acquire);
        const std::uint32_t index = atom_load(r.endpoint_index, std::memory_order_acquire);
        const std::uint32_t pid = atom_load(r.pid, std::memory_order_acquire);
        // relaxed: ordered after the acquire loads above.
        const std::uint64_t s2 = atom_load(r.stamp, std::memory_order_relaxed);
        const std::uint64_t seq = next++;
        const bool is_publisher = role == static_cast<std::uint32_t>(Role::publisher);
        const bool is_subscriber = role == static_cast<std::uint32_t>(Role::subscriber);
        const std::uint32_t table =
            is_publisher ? ch.geo.max_publishers : (is_subscriber ? ch.geo.max_subscribers : 0);
        if (s1 != 2 * seq + 2 || s2 != s1 || !known_kind(kind) || index >= table) {
            ++lost; // rewritten while we read it, or damaged
            continue;
        }
        const Role r_role = is_publisher ? Role::publisher : Role::subscriber;
        if (r_role == self_role && index == self_index) {
            continue; // about ourselves (our own attach, as the daemon saw it)
        }
        found[count++] = PeerEvent{static_cast<EventKind>(kind), r_role, index, pid, 0, seq + 1};
        if (caller && r_role == Role::subscriber &&
            kind != static_cast<std::uint32_t>(EventKind::attached)) {
            found[count++] = PeerEvent{EventKind::server_gone, r_role, index, pid, 0, seq + 1};
        }
    }
    if (count > room) {
        carried = found[--count]; // the server_gone of the last record read: next time
    }
    // Events missed on the way go before the ones read if there is room beside them; else
    // the next call reports them first.
    if (n + count < out.size()) {
        report_lost();
    }
    std::copy_n(found, count, out.begin() + static_cast<std::ptrdiff_t>(n));
    n += count;
    return n;
}

} // namespace shmbus::detail
