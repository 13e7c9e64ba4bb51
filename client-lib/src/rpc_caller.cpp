// Caller: the calling end of an rpc channel (rpc_attach.hpp outlines both ends; the call
// slots, their claim words and the memory-ordering pairs are in shm/rpc_calls.hpp).
#include <shmbus/rpc.hpp>

#include "assert.hpp"
#include "endpoint_hooks.hpp"
#include "endpoint_waiting.hpp"
#include "rpc_attach.hpp"
#include "shm/endpoint_table.hpp"
#include "shm/rpc_calls.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <unistd.h>

namespace shmbus {

using namespace detail;

namespace {

bool any_server_attached(const AttachedChannel& ch) noexcept {
    for (std::uint32_t i = 0; i < ch.geo.max_subscribers; ++i) {
        // acquire: pairs with claim_endpoint()'s acq_rel claim; only decides whether to wait.
        if (atom_load(ch.subscribers[i].state, std::memory_order_acquire) ==
            static_cast<std::uint32_t>(EndpointState::active)) {
            return true;
        }
    }
    return false;
}

} // namespace

// ---------------------------------------------------------------------------------------
// Caller

struct Caller::Impl : EndpointCore {
    RpcCallerBlock* block{nullptr};
    std::uint64_t next_id{0};
    std::uint32_t next_slot{0};
    bool wait_for_server{false};
    // The correlation id of the call in each slot; 0 when the slot is not ours to collect.
    std::vector<std::uint64_t> in_flight;
    // Peer events and the wait handle. Declared last: its relay stops before the rest goes.
    EndpointWaiting waiting;

    ~Impl() {
        waiting.relay.reset(); // stop reading the segment before we leave the table
        if (ch.control == nullptr || getpid() != attached_by) {
            return;
        }
        (void)abandon_calls(ch, index);
        release_endpoint(ch.publishers[index]);
        if (on_detach) {
            on_detach();
        }
    }

    CallSlot slot(std::uint32_t k) const noexcept { return call_slot(ch, index, k); }

    /// What the wait relay watches: outcomes, on our reply futex (which servers wake after
    /// answering, a departing server or a reclaim after failing calls or leaving, and
    /// post_event() for events), calls that fail for want of a server, and events.
    Watch watch_now() const noexcept {
        Watch w;
        w.channel = reply_wait(ch, index);
        w.events = waiting.cursor.next;
        w.want_events = options.peer_events;
        w.local_events = waiting.local_pending(0);
        w.unserved_fails = !wait_for_server;
        return w;
    }
    /// The relay's condition: shared memory only (wait_relay.hpp), never in_flight.
    bool ready(const Watch& w) const noexcept {
        return outcome_stamped(ch, index) ||
               (w.unserved_fails && call_requested(ch, index) && !any_server_attached(ch)) ||
               events_ready(ch, w);
    }
    /// After a poll: re-arm the handle, if there is one, so that it is readable again only
    /// when there is more to collect (at once, if there already is).
    void polled() noexcept {
        if (waiting.relay) [[unlikely]] {
            waiting.rearm(watch_now());
        }
    }

    Result<Ticket> send(std::span<const std::byte> request) {
        if (request.size() > ch.geo.slot_size) {
            return make_error(Errc::message_too_large,
                              "request of " + std::to_string(request.size()) +
                                  " bytes exceeds slot_size " + std::to_string(ch.geo.slot_size) +
                                  " of '" + ch.info.name + "'");
        }
        if (!wait_for_server && !any_server_attached(ch)) {
            return make_error(Errc::not_found, "no server is attached to '" + ch.info.name + "'");
        }
        const auto depth = static_cast<std::uint32_t>(ch.geo.slot_count);
        for (std::uint32_t n = 0; n < depth; ++n) {
            const std::uint32_t k = (next_slot + n) % depth;
            if (in_flight[k] != 0) {
                continue;
            }
            const CallSlot s = slot(k);
            // acquire: [reuse], whoever freed the slot is done with it.
            if (call_phase(atom(*s.state).load(std::memory_order_acquire)) != CallPhase::free) {
                continue; // given up earlier, its server has not answered yet
            }
            std::uint64_t id = ++next_id & kCallIdMask;
            if (id == 0) {
                id = ++next_id & kCallIdMask;
            }
            if (!request.empty()) {
                std::memcpy(reinterpret_cast<std::byte*>(s.request) + kSlotDataOffset,
                            request.data(), request.size());
            }
            // relaxed: published by the release store below ([request]).
            atom(s.request->length).store(request.size(), std::memory_order_relaxed);
            // release: [request].
            atom(*s.state).store(make_call(id, CallPhase::requested), std::memory_order_release);
            // The doorbell. relaxed load: only this entry's owner writes `calls`. release:
            // pairs with the servers' acquire load in doorbell(), so that a server that sees
            // the new count sees the requested word too. A plain store, not an RMW: see the
            // top of this file.
            atom(block->calls)
                .store(atom(block->calls).load(std::memory_order_relaxed) + 1,
                       std::memory_order_release);
            in_flight[k] = id;
            next_slot = (k + 1) % depth;
            wake_sleepers(data_wait(ch.control));
            return Ticket{id, k};
        }
        return make_error(Errc::would_block, "all " + std::to_string(depth) +
                                                 " call slots of this caller on '" + ch.info.name +
                                                 "' are in use (depth)");
    }

    Result<std::uint32_t> check(const Ticket& t) const {
        if (t.slot >= in_flight.size() || in_flight[t.slot] == 0 ||
            in_flight[t.slot] != (t.id & kCallIdMask)) {
            return misuse("the ticket is not a call in flight");
        }
        return t.slot;
    }

    /// What the outcome stamp of slot `k` says of its call ([outcome] in rpc_calls.hpp).
    CallPhase stamped(std::uint32_t k) const noexcept {
        const std::uint64_t id = in_flight[k];
        // acquire: [outcome], pairs with stamp_outcome(): the reply and the claim word's
        // value are visible once the stamp is.
        const std::uint64_t stamp = atom(slot(k).reply->state).load(std::memory_order_acquire);
        if (stamp == make_call(id, CallPhase::replied)) {
            return CallPhase::replied;
        }
        return stamp == make_call(id, CallPhase::failed) ? CallPhase::failed : CallPhase::taken;
    }

    /// Whether a call not yet stamped must be looked at in its claim word: when no server
    /// is attached to take it (then it fails with not_found), unless we wait for one.
    bool unserved() const noexcept { return !wait_for_server && !any_server_attached(ch); }

    /// Whether the call in slot `k` has an outcome to collect (or must fail: no server).
    bool settled(std::uint32_t k) const noexcept {
        return stamped(k) != CallPhase::taken || unserved();
    }

    /// Hands the reply of slot `k` (its call replied) to `take` and frees the slot.
    template <typename Take>
    Result<void> deliver(std::uint32_t k, Take&& take) {
        const CallSlot s = slot(k);
        const std::uint64_t id = in_flight[k];
        // relaxed: ordered by the acquire load of the stamp or the claim word ([outcome],
        // [reply]); untrusted, checked.
        const std::uint64_t len = atom(s.reply->length).load(std::memory_order_relaxed);
        Result<void> r = ok();
        if (len > ch.geo.reply_slot_size) {
            r = corrupted("reply to call " + std::to_string(id) + " has length " +
                          std::to_string(len) + " beyond reply_slot_size " +
                          std::to_string(ch.geo.reply_slot_size));
        } else {
            r = take(std::span<const std::byte>{reinterpret_cast<const std::byte*>(s.reply) +
                                                    kSlotDataOffset,
                                                static_cast<std::size_t>(len)});
            // A statistic that only this entry's owner writes: a plain store (relaxed).
            atom(block->replies)
                .store(atom(block->replies).load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
        }
        release_slot(k);
        return r;
    }

    /// The call of slot `k` failed: its server is gone.
    Result<void> closed(std::uint32_t k) {
        const std::uint64_t id = in_flight[k];
        release_slot(k);
        return make_error(Errc::closed, "the server of '" + ch.info.name + "' that took call " +
                                            std::to_string(id) + " is gone");
    }

    /// Frees slot `k` after its outcome was collected. A plain store: once replied or failed,
    /// the word is ours alone (rpc_calls.hpp).
    void release_slot(std::uint32_t k) noexcept {
        const std::uint64_t id = in_flight[k];
        in_flight[k] = 0;
        // release: [reuse], for our own next write into the slot.
        atom(*slot(k).state).store(make_call(id, CallPhase::free), std::memory_order_release);
    }

    /// Collects the outcome of slot `k`: the reply, passed to `take` with its bytes, or the
    /// failure. Errc::would_block while the call is pending. Reads the outcome stamp only,
    /// so that polling leaves the claim word's line to the server that holds it; the claim
    /// word itself only when no server is attached.
    template <typename Take>
    Result<void> collect(std::uint32_t k, Take&& take) {
        switch (stamped(k)) {
        case CallPhase::replied:
            return deliver(k, take);
        case CallPhase::failed:
            return closed(k);
        default:
            return unserved() ? settle(k, take) : make_error(Errc::would_block);
        }
    }

    /// Collects the outcome of slot `k` from its claim word, the authority: as collect(),
    /// and also a call no server can take (Errc::not_found), an outcome whose stamp has not
    /// come, and damage (Errc::corrupted).
    template <typename Take>
    Result<void> settle(std::uint32_t k, Take&& take) {
        const CallSlot s = slot(k);
        const std::uint64_t id = in_flight[k];
        // acquire: [reply].
        std::uint64_t w = atom(*s.state).load(std::memory_order_acquire);
        if (call_id(w) != id) {
            in_flight[k] = 0; // not ours any more: leave the word to whoever wrote it
            return corrupted("call slot " + std::to_string(k) + " holds call " +
                             std::to_string(call_id(w)) + " instead of " + std::to_string(id));
        }
        switch (call_phase(w)) {
        case CallPhase::requested:
            if (unserved()) {
                // acq_rel: withdrawn unless a server took it this instant.
                if (atom(*s.state).compare_exchange_strong(w, make_call(id, CallPhase::free),
                                                           std::memory_order_acq_rel)) {
                    in_flight[k] = 0;
                    return make_error(Errc::not_found, "no server is attached to '" + ch.info.name +
                                                           "' to take call " + std::to_string(id));
                }
            }
            return make_error(Errc::would_block);
        case CallPhase::taken:
            return make_error(Errc::would_block);
        case CallPhase::replied:
            return deliver(k, take);
        case CallPhase::failed:
            return closed(k);
        default:
            in_flight[k] = 0;
            return corrupted("call slot " + std::to_string(k) + " is in phase " +
                             std::to_string(static_cast<std::uint32_t>(call_phase(w))));
        }
    }

    /// Gives up the call in slot `k`; if its outcome came meanwhile, collects it instead.
    template <typename Take>
    Result<void> give_up(std::uint32_t k, Take&& take) {
        const CallSlot s = slot(k);
        const std::uint64_t id = in_flight[k];
        // acquire: [reply], should the outcome be there.
        std::uint64_t w = atom(*s.state).load(std::memory_order_acquire);
        for (;;) {
            if (call_id(w) != id) {
                break; // damaged: settle() says so
            }
            std::uint64_t next = 0;
            if (call_phase(w) == CallPhase::requested) {
                next = make_call(id, CallPhase::free);
            } else if (call_phase(w) == CallPhase::taken) {
                next = make_call(id, CallPhase::cancelled, call_owner(w));
            } else {
                break; // replied or failed: collect it
            }
            // acq_rel: the server's finish() or a reclaim races us; whoever wins decides.
            if (atom(*s.state).compare_exchange_strong(w, next, std::memory_order_acq_rel)) {
                in_flight[k] = 0;
                return make_error(Errc::timed_out, "call " + std::to_string(id) + " on '" +
                                                       ch.info.name + "' got no reply in time");
            }
        }
        return settle(k, take);
    }

    template <typename Take>
    Result<void> wait_for(std::uint32_t k, std::chrono::nanoseconds timeout, Take&& take) {
        const Deadline deadline = Deadline::after(timeout);
        auto r = collect(k, take);
        if (r || r.error().code != Errc::would_block) {
            return r;
        }
        if (!wait_until([&] { return settled(k); }, reply_wait(ch, index), options.wait,
                        options.spin_iterations, deadline)) {
            return give_up(k, take);
        }
        r = collect(k, take);
        if (r || r.error().code != Errc::would_block) {
            return r;
        }
        return give_up(k, take); // settled() saw no server, but one took it after all
    }
};

Caller::Caller(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
Caller::Caller(Caller&&) noexcept = default;
Caller& Caller::operator=(Caller&&) noexcept = default;
Caller::~Caller() = default;

void EndpointHooks::set_on_detach(Caller& endpoint, std::function<void()> hook) noexcept {
    endpoint.impl_->on_detach = std::move(hook);
}

Result<Caller> Caller::attach(ChannelFiles files, const EndpointOptions& options) noexcept {
    auto impl = attach_rpc<Impl>(files, Role::publisher, options, [](Impl& c) {
        c.block = &c.ch.rpc_callers[c.index];
        // A predecessor in this entry left its slots free, cancelled (a server still holds
        // them) or, if it died, repaired by the daemon. Our ids continue its count so that a
        // server's stale handle can never match one of ours.
        // relaxed: only this entry's owner writes `calls`; the claim ordered its last write.
        c.next_id = atom(c.block->calls).load(std::memory_order_relaxed);
        c.in_flight.assign(static_cast<std::size_t>(c.ch.geo.slot_count), 0);
    });
    if (!impl) {
        return impl.take_error();
    }
    return Caller{std::move(*impl)};
}

void Caller::set_wait_for_server(bool wait) noexcept {
    impl_->wait_for_server = wait;
}

namespace {
auto copy_into(Reply& out) {
    return [&out](std::span<const std::byte> bytes) -> Result<void> {
        try {
            out.data.assign(bytes.begin(), bytes.end());
            return ok();
        } catch (const std::bad_alloc&) {
            return make_error(Errc::no_memory, "out of memory for a reply");
        }
    };
}
/// Copies a reply into the caller's buffer `reply`, its length into `got`.
auto copy_to(std::span<std::byte> reply, std::size_t& got) {
    return [reply, &got](std::span<const std::byte> bytes) -> Result<void> {
        if (bytes.size() > reply.size()) {
            return make_error(Errc::message_too_large, "reply of " + std::to_string(bytes.size()) +
                                                           " bytes, buffer of " +
                                                           std::to_string(reply.size()));
        }
        if (!bytes.empty()) {
            std::memcpy(reply.data(), bytes.data(), bytes.size());
        }
        got = bytes.size();
        return ok();
    };
}
} // namespace

Result<Reply> Caller::call(std::span<const std::byte> request,
                           std::chrono::nanoseconds timeout) noexcept {
    auto t = send_request(request);
    if (!t) {
        return t.take_error();
    }
    return receive_reply(*t, timeout);
}

Result<std::size_t> Caller::call(std::span<const std::byte> request, std::span<std::byte> reply,
                                 std::chrono::nanoseconds timeout) noexcept {
    try {
        auto t = impl_->send(request);
        if (!t) {
            return t.take_error();
        }
        std::size_t got = 0;
        if (auto r = impl_->wait_for(t->slot, timeout, copy_to(reply, got)); !r) {
            return r.take_error();
        }
        return got;
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<Ticket> Caller::send_request(std::span<const std::byte> request) noexcept {
    try {
        return impl_->send(request);
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<Reply> Caller::poll(const Ticket& ticket) noexcept {
    try {
        auto k = impl_->check(ticket);
        if (!k) {
            return k.take_error();
        }
        Reply out;
        out.id = ticket.id;
        auto r = impl_->collect(*k, copy_into(out));
        impl_->polled();
        if (!r) {
            return r.take_error();
        }
        return out;
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<Reply> Caller::receive_reply(const Ticket& ticket,
                                    std::chrono::nanoseconds timeout) noexcept {
    try {
        auto k = impl_->check(ticket);
        if (!k) {
            return k.take_error();
        }
        Reply out;
        out.id = ticket.id;
        if (auto r = impl_->wait_for(*k, timeout, copy_into(out)); !r) {
            return r.take_error();
        }
        return out;
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<std::size_t> Caller::poll(const Ticket& ticket, std::span<std::byte> reply) noexcept {
    try {
        auto k = impl_->check(ticket);
        if (!k) {
            return k.take_error();
        }
        std::size_t got = 0;
        auto r = impl_->collect(*k, copy_to(reply, got));
        impl_->polled();
        if (!r) {
            return r.take_error();
        }
        return got;
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<std::size_t> Caller::receive_reply(const Ticket& ticket, std::span<std::byte> reply,
                                          std::chrono::nanoseconds timeout) noexcept {
    try {
        auto k = impl_->check(ticket);
        if (!k) {
            return k.take_error();
        }
        std::size_t got = 0;
        if (auto r = impl_->wait_for(*k, timeout, copy_to(reply, got)); !r) {
            return r.take_error();
        }
        return got;
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<void> Caller::cancel(const Ticket& ticket) noexcept {
    try {
        auto k = impl_->check(ticket);
        if (!k) {
            return k.take_error();
        }
        auto r =
            impl_->give_up(*k, [](std::span<const std::byte>) -> Result<void> { return ok(); });
        if (!r && r.error().code == Errc::timed_out) {
            return ok(); // given up, as asked
        }
        return r; // the outcome had come: collected and discarded
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

std::size_t Caller::events(std::span<PeerEvent> out) noexcept {
    Impl& c = *impl_;
    return c.waiting.read(c, Role::publisher, 0, out, c.watch_now());
}

Result<int> Caller::wait_handle() noexcept {
    Impl& c = *impl_;
    return c.waiting.handle([&c](const Watch& w) { return c.ready(w); }, c.watch_now());
}

std::size_t Caller::in_flight() const noexcept {
    return static_cast<std::size_t>(std::count_if(impl_->in_flight.begin(), impl_->in_flight.end(),
                                                  [](std::uint64_t id) { return id != 0; }));
}

const ChannelInfo& Caller::info() const noexcept {
    return impl_->ch.info;
}
std::uint32_t Caller::endpoint_index() const noexcept {
    return impl_->index;
}

} // namespace shmbus
