// Server: the serving end of an rpc channel (rpc_attach.hpp outlines both ends; the call
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

constexpr std::uint32_t kFullScanEvery = 64;
constexpr std::uint64_t kMaxBatch = 1024;

} // namespace

// ---------------------------------------------------------------------------------------
// Server

struct Server::Impl : EndpointCore {
    std::vector<Request> batch; // what the last receive() returned
    // Per caller: its `calls` count when this server last scanned all its slots, and the
    // slot its next call is likely in (the one after the call taken last).
    std::vector<std::uint64_t> seen;
    std::vector<std::uint32_t> guess;
    std::uint32_t next_caller{0};
    std::uint32_t empty_scans{0};
    // Peer events and the wait handle. Declared last: its relay stops before the rest goes.
    EndpointWaiting waiting;

    ~Impl() {
        waiting.relay.reset(); // stop reading the segment before we leave the table
        if (ch.control == nullptr || getpid() != attached_by) {
            return;
        }
        // Leave the table first, so that a caller woken below sees no server if we were
        // the last, then fail what we held.
        release_endpoint(ch.subscribers[index]);
        (void)fail_taken_calls(ch, owner);
        wake_all_callers(ch);
        if (on_detach) {
            on_detach();
        }
    }

    /// A caller's doorbell: its count of calls posted.
    std::uint64_t doorbell(std::uint32_t c) const noexcept {
        // acquire: pairs with the caller's release store of `calls` in send(); the requested
        // words it posted before are then visible to the scan.
        return atom_load(ch.rpc_callers[c].calls, std::memory_order_acquire);
    }

    /// Whether a caller posted since this server last scanned it (the wait condition).
    bool hinted() const noexcept {
        for (std::uint32_t c = 0; c < ch.geo.max_publishers; ++c) {
            if (doorbell(c) != seen[c]) {
                return true;
            }
        }
        return false;
    }

    /// What the wait relay watches: requests, on the futex callers wake after posting (which
    /// post_event() wakes too), and events when asked for.
    Watch watch_now() const noexcept {
        Watch w;
        w.channel = data_wait(ch.control);
        w.events = waiting.cursor.next;
        w.want_events = options.peer_events;
        w.local_events = waiting.local_pending(0);
        return w;
    }
    /// The relay's condition: shared memory only (wait_relay.hpp).
    bool ready(const Watch& w) const noexcept {
        return any_call_requested(ch) || events_ready(ch, w);
    }

    /// Takes the call whose claim word `s` holds `w` (requested): CAS to taken(id, me).
    /// On failure `w` holds the word as it is now.
    bool claim(const CallSlot& s, std::uint64_t& w) noexcept {
        // acq_rel: acquire is [request]; release orders nothing we wrote, but the failure
        // path of a weak ordering would buy nothing here.
        return atom(*s.state).compare_exchange_strong(
            w, make_call(call_id(w), CallPhase::taken, owner), std::memory_order_acq_rel);
    }

    /// Takes up to `max` requests into `batch`. Returns an error only for a corrupted request.
    Result<void> take(std::size_t max) {
        batch.clear();
        const std::uint32_t callers = ch.geo.max_publishers;
        const auto depth = static_cast<std::uint32_t>(ch.geo.slot_count);
        const bool full = ++empty_scans % kFullScanEvery == 0;
        std::string damaged;
        for (std::uint32_t n = 0; n < callers && batch.size() < max; ++n) {
            const std::uint32_t c = (next_caller + n) % callers;
            RpcCallerBlock& block = ch.rpc_callers[c];
            const std::uint64_t rung = doorbell(c);
            const bool moved = rung != seen[c];
            if (!full && !moved) {
                continue;
            }
            // Where the doorbell moved, its count is the id of the caller's newest call
            // (ids continue its count of calls), and a caller takes its slots in turn: guess
            // that the call sits in the slot after the one taken last, and take it with one
            // CAS. A wrong guess costs nothing more than the load it replaces: the failed CAS
            // hands back the word, with its line, for the scan.
            const std::uint32_t first = moved ? guess[c] : 0;
            std::uint32_t scanned = 0;
            for (; scanned < depth && batch.size() < max; ++scanned) {
                const std::uint32_t k = (first + scanned) % depth;
                const CallSlot s = call_slot(ch, c, k);
                std::uint64_t w = 0;
                if (scanned == 0 && moved) {
                    w = make_call(rung, CallPhase::requested);
                    if (!claim(s, w) && (call_phase(w) != CallPhase::requested || !claim(s, w))) {
                        continue; // not requested, or another server took it first
                    }
                } else {
                    // relaxed: only selects; the CAS in claim() acquires ([request]).
                    w = atom(*s.state).load(std::memory_order_relaxed);
                    if (call_phase(w) != CallPhase::requested || !claim(s, w)) {
                        continue; // another server took it, or the caller withdrew it
                    }
                }
                const std::uint64_t id = call_id(w);
                guess[c] = (k + 1) % depth;
                // relaxed: [request] ordered the caller's write of the length before our CAS.
                const std::uint64_t len = atom(s.request->length).load(std::memory_order_relaxed);
                if (len > ch.geo.slot_size) {
                    damaged = "request " + std::to_string(id) + " of caller " + std::to_string(c) +
                              " has length " + std::to_string(len) + " beyond slot_size " +
                              std::to_string(ch.geo.slot_size);
                    std::uint64_t taken = make_call(id, CallPhase::taken, owner);
                    // release: [reply], with no reply: the caller sees Errc::closed.
                    if (atom(*s.state).compare_exchange_strong(
                            taken, make_call(id, CallPhase::failed), std::memory_order_release,
                            std::memory_order_relaxed)) {
                        stamp_outcome(s, make_call(id, CallPhase::failed));
                    }
                    atom(block.failed).fetch_add(1, std::memory_order_relaxed); // a statistic
                    wake_sleepers(reply_wait(ch, c));
                    continue;
                }
                const auto* data = reinterpret_cast<const std::byte*>(s.request) + kSlotDataOffset;
                batch.push_back({{data, static_cast<std::size_t>(len)}, id, c, k});
            }
            if (scanned == depth) {
                seen[c] = rung; // every request posted by then was looked at
            }
        }
        if (!batch.empty()) {
            empty_scans = 0;
            // Start after the last caller served: no caller starves the others.
            next_caller = (batch.back().caller + 1) % callers;
        }
        if (!damaged.empty()) {
            return corrupted(damaged);
        }
        return ok();
    }

    /// The slot of `r` if this server holds it (taken(id, me)); else an error.
    Result<CallSlot> held(const Request& r) const {
        if (r.caller >= ch.geo.max_publishers || r.slot >= ch.geo.slot_count) {
            return misuse("respond: the request does not belong to this channel");
        }
        const CallSlot s = call_slot(ch, r.caller, r.slot);
        // relaxed: only this server moves a word out of taken(id, me), except the caller's
        // give-up, which finish() handles.
        const std::uint64_t w = atom(*s.state).load(std::memory_order_relaxed);
        const bool mine = call_owner(w) == owner && call_id(w) == (r.id & kCallIdMask);
        if (mine && call_phase(w) == CallPhase::taken) {
            return s;
        }
        if (mine && call_phase(w) == CallPhase::cancelled) {
            return s; // finish() drops the reply and frees the slot
        }
        return make_error(Errc::invalid_argument,
                          "respond: this server does not hold request " + std::to_string(r.id));
    }

    /// Hands the reply in `s` (length `len`, already checked) to the caller, or drops it.
    Result<void> finish(const Request& r, const CallSlot& s, std::uint64_t len) noexcept {
        // relaxed: published by the release CAS below ([reply]).
        atom(s.reply->length).store(len, std::memory_order_relaxed);
        const std::uint64_t id = r.id & kCallIdMask;
        std::uint64_t expected = make_call(id, CallPhase::taken, owner);
        // release: [reply]. acquire on failure: we read what the caller left (cancelled).
        if (atom(*s.state).compare_exchange_strong(expected, make_call(id, CallPhase::replied),
                                                   std::memory_order_release,
                                                   std::memory_order_acquire)) {
            stamp_outcome(s, make_call(id, CallPhase::replied));
            wake_sleepers(reply_wait(ch, r.caller));
            return ok();
        }
        RpcCallerBlock& block = ch.rpc_callers[r.caller];
        if (expected == make_call(id, CallPhase::cancelled, owner)) {
            // release: [reuse], our reads of the request are done.
            (void)atom(*s.state).compare_exchange_strong(expected, make_call(id, CallPhase::free),
                                                         std::memory_order_release,
                                                         std::memory_order_relaxed);
        }
        atom(block.late_replies).fetch_add(1, std::memory_order_relaxed); // a statistic
        return make_error(Errc::lost, "channel '" + ch.info.name + "': caller " +
                                          std::to_string(r.caller) + " gave up call " +
                                          std::to_string(r.id) + "; its reply was dropped");
    }
};

Server::Server(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

void EndpointHooks::set_on_detach(Server& endpoint, std::function<void()> hook) noexcept {
    endpoint.impl_->on_detach = std::move(hook);
}

Result<Server> Server::attach(ChannelFiles files, const EndpointOptions& options) noexcept {
    auto impl = attach_rpc<Impl>(files, Role::subscriber, options, [](Impl& s) {
        // One receive() takes at most this many: one per call slot, and no more than 1024.
        s.batch.reserve(
            static_cast<std::size_t>(std::min<std::uint64_t>(s.ch.geo.call_slots(), kMaxBatch)));
        // 0: the first scan looks at every caller that ever posted.
        s.seen.assign(s.ch.geo.max_publishers, 0);
        s.guess.assign(s.ch.geo.max_publishers, 0);
    });
    if (!impl) {
        return impl.take_error();
    }
    return Server{std::move(*impl)};
}

Result<RequestBatch> Server::try_receive(std::size_t max_count) noexcept {
    if (max_count == 0) {
        return misuse("receive: max_count 0");
    }
    // The batch never outgrows what attach() reserved: one entry per call slot at most.
    auto r = impl_->take(std::min<std::size_t>(max_count, impl_->batch.capacity()));
    if (!r) {
        return r.take_error();
    }
    if (impl_->batch.empty()) {
        if (impl_->waiting.relay) [[unlikely]] {
            impl_->waiting.rearm(impl_->watch_now());
        }
        return make_error(Errc::would_block);
    }
    return RequestBatch{impl_->batch};
}

std::size_t Server::events(std::span<PeerEvent> out) noexcept {
    Impl& s = *impl_;
    return s.waiting.read(s, Role::subscriber, 0, out, s.watch_now());
}

Result<int> Server::wait_handle() noexcept {
    Impl& s = *impl_;
    return s.waiting.handle([&s](const Watch& w) { return s.ready(w); }, s.watch_now());
}

Result<RequestBatch> Server::receive(std::size_t max_count,
                                     std::chrono::nanoseconds timeout) noexcept {
    const Deadline deadline = Deadline::after(timeout);
    Impl& s = *impl_;
    for (;;) {
        auto r = try_receive(max_count);
        if (r || r.error().code != Errc::would_block) {
            return r;
        }
        // A doorbell rung with nothing behind it (another server was faster) makes
        // wait_until() return at once, and the scan then records it as seen; a damaged one
        // that keeps moving only costs scans: the deadline still ends the loop.
        if (deadline.passed() || !wait_until([&] { return s.hinted(); }, data_wait(s.ch.control),
                                             s.options.wait, s.options.spin_iterations, deadline)) {
            // A last look: a request behind a damaged doorbell is found by a full scan.
            s.empty_scans = kFullScanEvery - 1;
            auto last = try_receive(max_count);
            if (last || last.error().code != Errc::would_block) {
                return last;
            }
            return make_error(Errc::timed_out, "no request on '" + s.ch.info.name + "'");
        }
    }
}

Result<std::span<std::byte>> Server::reserve_reply(const Request& request) noexcept {
    auto s = impl_->held(request);
    if (!s) {
        return s.take_error();
    }
    return std::span<std::byte>{reinterpret_cast<std::byte*>(s->reply) + kSlotDataOffset,
                                static_cast<std::size_t>(impl_->ch.geo.reply_slot_size)};
}

Result<void> Server::commit_reply(const Request& request, std::uint64_t length) noexcept {
    auto s = impl_->held(request);
    if (!s) {
        return s.take_error();
    }
    if (length > impl_->ch.geo.reply_slot_size) {
        return make_error(Errc::message_too_large,
                          "reply of " + std::to_string(length) + " bytes exceeds reply_slot_size " +
                              std::to_string(impl_->ch.geo.reply_slot_size) + " of '" +
                              impl_->ch.info.name + "'");
    }
    return impl_->finish(request, *s, length);
}

Result<void> Server::respond(const Request& request, std::span<const std::byte> reply) noexcept {
    auto slot = reserve_reply(request);
    if (!slot) {
        return slot.take_error();
    }
    if (reply.size() > slot->size()) {
        return commit_reply(request, reply.size()); // names both sizes
    }
    if (!reply.empty()) {
        std::memcpy(slot->data(), reply.data(), reply.size());
    }
    return commit_reply(request, reply.size());
}

const ChannelInfo& Server::info() const noexcept {
    return impl_->ch.info;
}
std::uint32_t Server::endpoint_index() const noexcept {
    return impl_->index;
}

} // namespace shmbus
