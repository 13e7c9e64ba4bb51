// ChannelSupervisor: statistics, the endpoint table, and reclaiming dead endpoints.
//
// Who calls it: the daemon, when a client's control connection closes (the client is then
// known dead — no pids, no heartbeats), and tests. Reclaim marks the entry `reclaiming`
// first, so that a late operation of the dead endpoint (there is none, but the memory is
// untrusted) and a second reclaim cannot both succeed; then it repairs the claim states the
// endpoint owned, frees the entry, and wakes whoever may have waited on it.
//
// Peer events: the supervisor is the one writer of the channel's event ring
// (shm/peer_events.hpp). A reclaim posts `died` for the endpoint; its owner posts `attached`
// and `detached` (post_event()), since only it knows when an entry was handed out or given
// back.
//
// Footprint: the daemon holds a supervisor for every channel and reads a few cache lines of
// each now and then. Each call leaves no page of the channel mapped in this process
// (AttachedChannel::drop_pages), so the daemon's RSS does not grow with the channels'
// sizes nor with the kernel's fault-around.
#include <shmbus/supervisor.hpp>

#include "shm/endpoint_table.hpp"
#include "shm/peer_events.hpp"
#include "shm/pool_blocks.hpp"
#include "shm/rpc_calls.hpp"
#include "shm/shared_state.hpp"

#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus {

using namespace detail;

namespace {
/// Leaves no page of the channel mapped in this process when it goes (see the file comment).
class PagesDroppedOnReturn {
public:
    explicit PagesDroppedOnReturn(const AttachedChannel& ch) noexcept : ch_{ch} {}
    PagesDroppedOnReturn(const PagesDroppedOnReturn&) = delete;
    PagesDroppedOnReturn& operator=(const PagesDroppedOnReturn&) = delete;
    ~PagesDroppedOnReturn() { ch_.drop_pages(); }

private:
    const AttachedChannel& ch_;
};

} // namespace

struct ChannelSupervisor::Impl {
    AttachedChannel ch;

    /// What reclaim_publisher() and reclaim_subscriber() share: marks entry `index` of
    /// `role`'s table reclaiming, lets `repair(report, entry)` undo what the dead endpoint held,
    /// then frees the entry and posts its `died` event.
    template <typename Repair>
    Result<ReclaimReport> reclaim(Role role, std::uint32_t index, Repair&& repair) noexcept {
        const PagesDroppedOnReturn drop{ch};
        const bool publisher = role == Role::publisher;
        auto rec = begin_reclaim(publisher ? ch.publishers : ch.subscribers,
                                 publisher ? ch.geo.max_publishers : ch.geo.max_subscribers, index,
                                 to_string(role));
        if (!rec) {
            return rec.take_error();
        }
        // relaxed: informational, as the endpoint wrote it at its claim. Read while the entry
        // is still ours: the next claimant writes its own.
        const std::uint32_t pid = atom((*rec)->pid).load(std::memory_order_relaxed);
        ReclaimReport report;
        repair(report, **rec);
        release_endpoint(**rec);
        report.detached = true;
        detail::post_event(ch, EventKind::died, role, index, pid);
        return report;
    }

    Result<EndpointRecord*> begin_reclaim(EndpointRecord* table, std::uint32_t count,
                                          std::uint32_t index, std::string_view what) noexcept {
        if (index >= count) {
            return make_error(Errc::invalid_argument,
                              "channel '" + ch.info.name + "': " + std::string{what} + " index " +
                                  std::to_string(index) + " is beyond the table of " +
                                  std::to_string(count));
        }
        auto expected = static_cast<std::uint32_t>(EndpointState::active);
        // acq_rel: the acquire half pairs with the endpoint's acq_rel claim of the entry
        // (claim_endpoint()); its later writes to claim states are acquired word by word in
        // rewrite_states(). The release half pairs with the next claim of the entry, after
        // our release_endpoint(). Whether the endpoint is dead the caller knows from the
        // kernel (its connection closed), not from this word.
        if (!atom(table[index].state)
                 .compare_exchange_strong(expected,
                                          static_cast<std::uint32_t>(EndpointState::reclaiming),
                                          std::memory_order_acq_rel)) {
            return make_error(Errc::not_found, "channel '" + ch.info.name +
                                                   "': " + std::string{what} + " " +
                                                   std::to_string(index) + " is not attached");
        }
        return &table[index];
    }
};

ChannelSupervisor::ChannelSupervisor(std::unique_ptr<Impl> impl) noexcept
    : impl_{std::move(impl)} {}
ChannelSupervisor::ChannelSupervisor(ChannelSupervisor&&) noexcept = default;
ChannelSupervisor& ChannelSupervisor::operator=(ChannelSupervisor&&) noexcept = default;
ChannelSupervisor::~ChannelSupervisor() = default;

Result<ChannelSupervisor> ChannelSupervisor::attach(ChannelFiles files) noexcept {
    auto ch = attach_channel(files, PayloadAccess::writable, Prefault::no);
    if (!ch) {
        return ch.take_error();
    }
    ch->drop_pages(); // the header checks touched the first pages of both regions
    auto impl = std::make_unique<Impl>();
    impl->ch = std::move(*ch);
    return ChannelSupervisor{std::move(impl)};
}

const ChannelInfo& ChannelSupervisor::info() const noexcept {
    return impl_->ch.info;
}

namespace {
/// A counter, for tools: relaxed (see stats_of()).
std::uint64_t load(const std::uint64_t& v) noexcept {
    return atom_load(v, std::memory_order_relaxed);
}
/// Whether a table entry is in use, for tools: relaxed (see stats_of()).
bool active(const EndpointRecord& r) noexcept {
    return atom_load(r.state, std::memory_order_relaxed) ==
           static_cast<std::uint32_t>(EndpointState::active);
}

/// rpc channels report their calls in the same fields (docs/memory-layout.md): published =
/// calls made, consumed = replies received, abandoned = calls failed because their server
/// died, dropped = replies that came after their caller gave up, depth = calls in flight;
/// publishers are callers, subscribers servers. Loads as stats_of() below: relaxed.
ChannelStats rpc_stats_of(const AttachedChannel& ch) noexcept {
    ChannelStats s;
    const ControlBlock& c = *ch.control;
    s.corrupted = load(c.corrupted);
    s.data_waits = load(c.data_waits);
    s.data_wakes = load(c.data_wakes);
    for (std::uint32_t i = 0; i < ch.geo.max_publishers; ++i) {
        const RpcCallerBlock& b = ch.rpc_callers[i];
        s.published += load(b.calls);
        s.consumed += load(b.replies);
        s.abandoned += load(b.failed);
        s.dropped += load(b.late_replies);
        s.space_waits += load(b.reply_waits);
        s.space_wakes += load(b.reply_wakes);
        s.publishers += active(ch.publishers[i]) ? 1 : 0;
    }
    for (std::uint32_t i = 0; i < ch.geo.max_subscribers; ++i) {
        s.subscribers += active(ch.subscribers[i]) ? 1 : 0;
    }
    s.depth = calls_in_flight(ch);
    s.high_water = s.depth;
    return s;
}

/// pool channels report their blocks in the same fields (docs/memory-layout.md): published =
/// blocks acquired, consumed = blocks given back to the free list, abandoned = references of
/// dead endpoints given back, dropped = references in handles dropped unread, redelivered =
/// references in transit now, depth = blocks in use now, high_water = most in use at once,
/// data_waits = acquires that found no free block, space_waits / space_wakes = acquires that
/// slept for one / wake-ups of them. Loads as stats_of() below: relaxed. Throws
/// std::bad_alloc (the per-endpoint counts of pool_usage()).
ChannelStats pool_stats_of(const AttachedChannel& ch) {
    ChannelStats s;
    const ControlBlock& c = *ch.control;
    const PoolControl& p = *ch.pool;
    s.published = load(p.acquired);
    s.consumed = load(p.returned);
    s.abandoned = load(p.reclaimed);
    s.dropped = load(p.dropped);
    s.high_water = load(p.high_water);
    s.data_waits = load(p.exhausted);
    s.corrupted = load(c.corrupted);
    s.space_waits = load(c.space_waits);
    s.space_wakes = load(c.space_wakes);
    const PoolUsage usage = pool_usage(ch);
    s.depth = usage.in_use;
    s.redelivered = usage.in_transit;
    for (std::uint32_t i = 0; i < ch.geo.max_publishers; ++i) {
        s.publishers += active(ch.publishers[i]) ? 1 : 0;
    }
    for (std::uint32_t i = 0; i < ch.geo.max_subscribers; ++i) {
        s.subscribers += active(ch.subscribers[i]) ? 1 : 0;
    }
    return s;
}

/// Counters for tools: every load is relaxed. Each value is a snapshot on its own; nothing
/// is read on the strength of another, so nothing needs ordering (and a tool must not slow
/// the data path with fences).
ChannelStats stats_of(const AttachedChannel& ch) noexcept {
    ChannelStats s;
    const ControlBlock& c = *ch.control;
    if (ch.info.kind == ChannelKind::rpc) {
        return rpc_stats_of(ch);
    }
    if (ch.info.kind == ChannelKind::pool) {
        try {
            return pool_stats_of(ch);
        } catch (const std::bad_alloc&) {
            return s; // no room for the scan's counts: no numbers rather than none at all
        }
    }
    s.published = load(ch.payload->head);
    s.abandoned = load(c.abandoned);
    s.redelivered = load(c.redelivered);
    s.corrupted = load(c.corrupted);
    s.dropped = load(c.dropped);
    s.high_water = load(c.high_water);
    s.data_waits = load(c.data_waits);
    s.data_wakes = load(c.data_wakes);
    s.space_waits = load(c.space_waits);
    s.space_wakes = load(c.space_wakes);
    std::uint64_t slowest = s.published;
    for (std::uint32_t i = 0; i < ch.geo.max_publishers; ++i) {
        s.publishers += active(ch.publishers[i]) ? 1 : 0;
    }
    for (std::uint32_t i = 0; i < ch.geo.max_subscribers; ++i) {
        if (active(ch.subscribers[i])) {
            ++s.subscribers;
            const std::uint64_t cur = load(ch.subscribers[i].cursor);
            if (cur < slowest) {
                slowest = cur;
            }
        }
    }
    if (ch.info.kind == ChannelKind::queue) {
        s.consumed = load(c.consumer_pos);
        slowest = s.consumed;
    }
    s.depth = s.published >= slowest ? s.published - slowest : 0;
    return s;
}
} // namespace

ChannelStats ChannelSupervisor::stats() const noexcept {
    const PagesDroppedOnReturn drop{impl_->ch};
    return stats_of(impl_->ch);
}

std::vector<EndpointEntry> ChannelSupervisor::endpoints() const {
    std::vector<EndpointEntry> out;
    const AttachedChannel& ch = impl_->ch;
    const PagesDroppedOnReturn drop{ch};
    // pool: how many blocks each holder slot holds, from one scan of the block states.
    const std::vector<std::uint64_t> held =
        ch.info.kind == ChannelKind::pool ? pool_usage(ch).held : std::vector<std::uint64_t>{};
    auto add = [&](const EndpointRecord* table, std::uint32_t count, Role role) {
        for (std::uint32_t i = 0; i < count; ++i) {
            const EndpointRecord& r = table[i];
            // acquire: pairs with the acq_rel claim of the entry (claim_endpoint()). The pid,
            // cursor and count the endpoint writes after it are informational: relaxed.
            if (atom_load(r.state, std::memory_order_acquire) !=
                static_cast<std::uint32_t>(EndpointState::active)) {
                continue;
            }
            const std::uint32_t slot = holder_slot(ch.geo, role, i);
            out.push_back({role, i, atom_load(r.pid, std::memory_order_relaxed),
                           atom_load(r.cursor, std::memory_order_relaxed),
                           atom_load(r.lost, std::memory_order_relaxed),
                           slot < held.size() ? held[slot] : 0});
        }
    };
    add(ch.publishers, ch.geo.max_publishers, Role::publisher);
    add(ch.subscribers, ch.geo.max_subscribers, Role::subscriber);
    return out;
}

Result<ReclaimReport> ChannelSupervisor::reclaim_publisher(std::uint32_t index) noexcept {
    AttachedChannel& ch = impl_->ch;
    // What a dead writer can hold depends on the kind: ring slots it reserved, blackboard
    // elements it was writing (now marked torn), counter cells it was naming (freed again),
    // rpc calls it made (withdrawn, or their replies dropped when they come), pool blocks
    // it held (given back).
    const auto repair = [&ch, index](ReclaimReport& report, EndpointRecord& rec) {
        switch (ch.info.kind) {
        case ChannelKind::pool:
            report.abandoned_slots =
                reclaim_holder(ch, holder_slot(ch.geo, Role::publisher, index));
            break;
        case ChannelKind::blackboard:
            report.abandoned_slots = tear_locked_elements(ch, owner_tag(index));
            break;
        case ChannelKind::counters:
            report.abandoned_slots = free_unnamed_cells(ch, owner_tag(index));
            break;
        case ChannelKind::rpc:
            report.abandoned_slots = abandon_calls(ch, index);
            break;
        default:
            report.abandoned_slots = abandon_reserved(ch, owner_tag(index));
            withdraw_sleeper(ch.control->space_sleepers, rec); // if it announced itself
            break;
        }
    };
    return impl_->reclaim(Role::publisher, index, repair);
}

Result<ReclaimReport> ChannelSupervisor::reclaim_subscriber(std::uint32_t index) noexcept {
    AttachedChannel& ch = impl_->ch;
    if (ch.info.kind == ChannelKind::rpc) {
        // A dead server: every call it took fails with Errc::closed at its caller (it may
        // have had effects: it is never served twice); calls not taken stay for the others.
        // Its calls fail before its entry is freed, and the callers are woken after: a caller
        // that finds no server attached then finds its taken call failed (Errc::closed), never
        // still taken by a server that is gone (which it would give up as timed out); a caller
        // whose call nobody took and nobody can take now fails with not_found.
        const auto fail_its_calls = [&ch, index](ReclaimReport& report, EndpointRecord& /*rec*/) {
            report.abandoned_slots = fail_taken_calls(ch, owner_tag(index));
        };
        auto report = impl_->reclaim(Role::subscriber, index, fail_its_calls);
        if (report) {
            wake_all_callers(ch);
        }
        return report;
    }
    // Readers of blackboard and counters channels hold nothing in shared memory; a pool's
    // hold references to blocks. Block-policy publishers may be asleep waiting for this
    // subscriber's cursor; the `died` event wakes them (post_event() wakes the space
    // sleepers too).
    const auto repair = [&ch, index](ReclaimReport& report, EndpointRecord& rec) {
        if (is_ring_kind(ch.info.kind)) {
            report.redelivered_slots = redeliver_taken(ch, owner_tag(index));
            withdraw_sleeper(ch.control->data_sleepers, rec); // if it announced itself
        } else if (ch.info.kind == ChannelKind::pool) {
            report.abandoned_slots =
                reclaim_holder(ch, holder_slot(ch.geo, Role::subscriber, index));
        }
    };
    return impl_->reclaim(Role::subscriber, index, repair);
}

Result<void> ChannelSupervisor::post_event(EventKind kind, Role role, std::uint32_t index,
                                           std::uint32_t pid) noexcept {
    AttachedChannel& ch = impl_->ch;
    const PagesDroppedOnReturn drop{ch};
    if (kind != EventKind::attached && kind != EventKind::detached) {
        return make_error(Errc::invalid_argument, "channel '" + ch.info.name +
                                                      "': only attached and detached events are "
                                                      "posted by hand, not '" +
                                                      std::string{to_string(kind)} + "'");
    }
    const std::uint32_t table =
        role == Role::publisher ? ch.geo.max_publishers : ch.geo.max_subscribers;
    if (index >= table) {
        return make_error(Errc::invalid_argument,
                          "channel '" + ch.info.name + "': " + std::string{to_string(role)} +
                              " index " + std::to_string(index) + " is beyond the table of " +
                              std::to_string(table));
    }
    detail::post_event(ch, kind, role, index, pid);
    return ok();
}

Result<ChannelStats> read_stats(const ChannelFiles& files) noexcept {
    auto ch = attach_channel(files, PayloadAccess::inspect, Prefault::no);
    if (!ch) {
        return ch.take_error();
    }
    return stats_of(*ch);
}

} // namespace shmbus
