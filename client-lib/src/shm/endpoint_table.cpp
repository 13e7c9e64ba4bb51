// Endpoint tables and reclaim. See endpoint_table.hpp.
#include "shm/endpoint_table.hpp"

#include <mutex>
#include <string>
#include <unistd.h>

namespace shmbus::detail {

Error misuse(const char* what) {
    return make_error(Errc::invalid_argument, what);
}

Error EndpointCore::corrupted(const std::string& what) const {
    atom(ch.control->corrupted).fetch_add(1, std::memory_order_relaxed);
    return make_error(Errc::corrupted, "channel '" + ch.info.name + "': " + what);
}

EndpointCore::~EndpointCore() {
    if (link) {
        const std::lock_guard lock{link->mutex};
        link->core = nullptr;
    }
}

Error EndpointCore::refusal() const {
    return make_error(Errc::closed, refused_why);
}

std::shared_ptr<EndpointLink> link_of(EndpointCore& core) {
    if (!core.link) {
        auto made = std::make_shared<EndpointLink>();
        made->core = &core; // not shared yet: no lock needed
        core.link = std::move(made);
    }
    return core.link;
}

void refuse_endpoint(EndpointLink& link, std::string why) noexcept {
    const std::lock_guard lock{link.mutex};
    EndpointCore* core = link.core;
    if (core == nullptr || core->refused()) {
        return;
    }
    core->refused_why = std::move(why);
    // relaxed: ordered before the release store below, which the endpoint's thread acquires
    // (refused()) before it relies on the inline path being off. Until then an inline call
    // may still run once more on the old segment, which is harmless: nobody serves it.
    atom(core->port.spsc).store(false, std::memory_order_relaxed);
    core->refused_flag.store(true, std::memory_order_release);
    // A blocking call asleep on either futex re-checks its condition, which includes
    // refused() (the handshake at wake_sleepers()), and returns Errc::closed. Other
    // sleepers of the old segment wake for nothing and sleep again.
    wake_sleepers(data_wait(core->ch.control));
    wake_sleepers(space_wait(core->ch.control));
}

Result<std::uint32_t> claim_endpoint(EndpointRecord* table, std::uint32_t count,
                                     std::int32_t wanted, WaitMode mode, const char* what,
                                     const std::string& channel) noexcept {
    auto try_take = [&](std::uint32_t i) {
        auto expected = static_cast<std::uint32_t>(EndpointState::free);
        // acq_rel: we see the previous owner's last writes (pairs with release_endpoint()'s
        // release store, or a supervisor's); our later writes follow the claim.
        if (!atom(table[i].state)
                 .compare_exchange_strong(expected,
                                          static_cast<std::uint32_t>(EndpointState::active),
                                          std::memory_order_acq_rel)) {
            return false;
        }
        atom(table[i].pid).store(static_cast<std::uint32_t>(getpid()), std::memory_order_relaxed);
        atom(table[i].wait_mode).store(static_cast<std::uint32_t>(mode), std::memory_order_relaxed);
        atom(table[i].generation).fetch_add(1, std::memory_order_relaxed);
        return true;
    };
    if (wanted >= 0) {
        if (static_cast<std::uint32_t>(wanted) >= count) {
            return make_error(Errc::invalid_argument, "channel '" + channel + "': " + what +
                                                          " index " + std::to_string(wanted) +
                                                          " is beyond the table of " +
                                                          std::to_string(count));
        }
        if (!try_take(static_cast<std::uint32_t>(wanted))) {
            return make_error(Errc::already_exists, "channel '" + channel + "': " + what +
                                                        " entry " + std::to_string(wanted) +
                                                        " is in use");
        }
        return static_cast<std::uint32_t>(wanted);
    }
    for (std::uint32_t i = 0; i < count; ++i) {
        if (try_take(i)) {
            return i;
        }
    }
    return make_error(Errc::limit_reached, "channel '" + channel + "' already has its " +
                                               std::to_string(count) + " " + what +
                                               "s (raise max_" + what + "s)");
}

Error wrong_kind_for_ring(const ChannelInfo& info) {
    return make_error(Errc::invalid_argument,
                      "channel '" + info.name + "' is a " + std::string{to_string(info.kind)} +
                          ", which holds shared state rather than messages: open it with " +
                          (info.kind == ChannelKind::blackboard ? "Client::open_blackboard()"
                           : info.kind == ChannelKind::pool     ? "Client::open_pool()"
                                                                : "Client::open_counters()"));
}

void release_endpoint(EndpointRecord& record) noexcept {
    // release: our last cursor/state writes happen-before the next owner's claim (its
    // acq_rel CAS in claim_endpoint()).
    atom(record.state)
        .store(static_cast<std::uint32_t>(EndpointState::free), std::memory_order_release);
}

namespace {

/// Writes the state encoding of atomics.hpp into the fields from which the SPSC ring
/// (<shmbus/detail/spsc_ring.hpp>) spells committed and unwritten states.
constexpr void spell_states(DataPort& p) noexcept {
    p.state_pos_mask = kPositionMask;
    p.state_committed = make_state(0, SlotPhase::committed);
    p.state_free = make_state(0, SlotPhase::free);
    p.state_shift = kStateShift;
}

constexpr bool port_spells_states_as_make_state() noexcept {
    DataPort p;
    spell_states(p);
    for (const std::uint64_t pos : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{4095},
                                    kPositionMask, kPositionMask + 1, ~std::uint64_t{0}}) {
        if (p.committed(pos) != make_state(pos, SlotPhase::committed) ||
            p.unwritten(pos) != make_state(pos, SlotPhase::free)) {
            return false;
        }
    }
    return true;
}
static_assert(port_spells_states_as_make_state(),
              "DataPort's committed()/unwritten() must spell what make_state() does");

} // namespace

Result<void> attach_entry(EndpointCore& core, const ChannelFiles& files, Role role,
                          const EndpointOptions& options, bool rpc) noexcept {
    // rpc: callers take the publisher table and write requests into the payload; servers
    // take the subscriber table and read them, as readers do, from a read-only mapping.
    const bool writer = role == Role::publisher;
    auto ch = attach_channel(files, writer ? PayloadAccess::writable : PayloadAccess::read_only);
    if (!ch) {
        return ch.take_error();
    }
    if ((ch->info.kind == ChannelKind::rpc) != rpc) {
        return make_error(Errc::invalid_argument,
                          "channel '" + ch->info.name + "' is " +
                              (rpc ? "a " + std::string{to_string(ch->info.kind)} +
                                         " channel, not rpc: open it as a publisher or a "
                                         "subscriber"
                                   : std::string{"an rpc channel: open it as a server or a "
                                                 "caller"}));
    }
    const char* what = rpc ? (writer ? "caller" : "server") : (writer ? "publisher" : "subscriber");
    auto index = writer ? claim_endpoint(ch->publishers, ch->geo.max_publishers,
                                         options.endpoint_index, options.wait, what, ch->info.name)
                        : claim_endpoint(ch->subscribers, ch->geo.max_subscribers,
                                         options.endpoint_index, options.wait, what, ch->info.name);
    if (!index) {
        return index.take_error();
    }
    core.ch = std::move(*ch);
    core.options = options;
    core.index = *index;
    core.attached_by = getpid();
    core.owner = owner_tag(*index);
    core.cap = core.ch.geo.slot_count;
    return ok();
}

Result<void> open_endpoint(EndpointCore& core, const ChannelFiles& files, Role role,
                           const EndpointOptions& options) noexcept {
    const bool publisher = role == Role::publisher;
    if (auto entry = attach_entry(core, files, role, options, false); !entry) {
        return entry.take_error();
    }
    core.drop = core.ch.info.overflow == Overflow::drop;
    if (core.ch.info.kind == ChannelKind::broadcast) {
        core.algo = Algorithm::broadcast;
    } else if (core.ch.cells == nullptr) {
        core.algo = Algorithm::spsc;
    } else {
        core.algo = Algorithm::mpmc;
    }
    DataPort& p = core.port;
    p.slots = core.ch.slots;
    p.stride = core.ch.geo.stride;
    p.mask = core.cap - 1;
    p.slot_size = core.ch.geo.slot_size;
    p.head = &core.ch.payload->head;
    p.consumer_pos = &core.ch.control->consumer_pos;
    ControlBlock& c = *core.ch.control;
    p.peer_waiters = publisher ? &c.data_waiters : &c.space_waiters;
    p.peer_sleepers = skip_word(publisher ? &c.data_sleepers : &c.space_sleepers);
    core.sleep.bind(publisher ? &c.space_sleepers : &c.data_sleepers,
                    publisher ? &core.ch.publishers[core.index] : &core.ch.subscribers[core.index]);
    spell_states(p);
    p.length_offset = kSlotLengthOffset;
    p.state_offset = kSlotStateOffset;
    p.data_offset = kSlotDataOffset;
    p.spsc = false; // set by the attach of an spsc endpoint once its position is known
    return ok();
}

std::uint64_t abandon_reserved(const AttachedChannel& ch, std::uint32_t owner) noexcept {
    auto select = [owner](std::uint64_t s, std::uint64_t& out) {
        if (state_phase(s) == SlotPhase::reserved && state_owner(s) == owner) {
            out = make_state(state_pos(s), SlotPhase::committed, kOwnerAbandoned);
            return true;
        }
        return false;
    };
    std::uint64_t n = 0;
    if (ch.info.kind == ChannelKind::broadcast) {
        n = rewrite_states(
            ch.geo.slot_count,
            [&](std::uint64_t i) -> std::uint64_t& {
                return reinterpret_cast<SlotHeader*>(ch.slots + i * ch.geo.stride)->state;
            },
            select);
    } else if (ch.cells != nullptr) {
        n = rewrite_states(
            ch.geo.slot_count, [&](std::uint64_t i) -> std::uint64_t& { return ch.cells[i]; },
            select);
    }
    if (n != 0) {
        atom(ch.control->abandoned).fetch_add(n, std::memory_order_relaxed); // a statistic
        wake_sleepers(data_wait(ch.control));
    }
    return n;
}

std::uint64_t redeliver_taken(const AttachedChannel& ch, std::uint32_t owner) noexcept {
    if (ch.cells == nullptr) {
        return 0;
    }
    auto select = [owner](std::uint64_t s, std::uint64_t& out) {
        if (state_phase(s) == SlotPhase::reading && state_owner(s) == owner) {
            out = make_state(state_pos(s), SlotPhase::committed, kOwnerRedeliver);
            return true;
        }
        return false;
    };
    const std::uint64_t n = rewrite_states(
        ch.geo.slot_count, [&](std::uint64_t i) -> std::uint64_t& { return ch.cells[i]; }, select);
    if (n != 0) {
        atom(ch.control->redelivered).fetch_add(n, std::memory_order_relaxed); // a statistic
        // release: a consumer whose data_hint() acquires the count sees the cells returned
        // above; a sleeping one is woken by wake_sleepers()'s handshake.
        atom(ch.control->redeliver_pending).fetch_add(n, std::memory_order_release);
        wake_sleepers(data_wait(ch.control));
    }
    return n;
}

} // namespace shmbus::detail
