// Internal hooks on endpoints, not part of the ABI: how the Client that opened a Publisher
// or Subscriber follows it without the data path knowing anything about the control
// protocol.
//
// The detach hook: how the Client learns that an endpoint has gone, so that it can tell the
// daemon (Close). It runs once, from the endpoint's destructor, after its table entry has
// been released, and only in the process that attached the endpoint (a copy inherited
// through fork() detaches nothing and runs nothing). It runs on whichever thread destroys
// the endpoint, so it must be thread-safe with respect to its owner, and it must not throw:
// it runs inside a destructor.
//
// The link: how the Client tells an endpoint that a restarted daemon refused to take it
// back (its offer was answered with an error), so that the endpoint stops working on a
// segment nobody serves any more. Shared by the endpoint and the Client's record of it,
// either of which may go first; refuse_endpoint() runs on any thread (the Client's
// background thread, usually) while the endpoint's own thread uses it. The endpoint clears
// the link in its destructor, under the link's lock, before it unmaps anything.
#pragma once

#include <shmbus/blackboard.hpp>
#include <shmbus/counters.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/pool.hpp>
#include <shmbus/rpc.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace shmbus::detail {

struct EndpointCore;

/// The Client's handle on one endpoint: see the top of this file.
struct EndpointLink {
    std::mutex mutex;
    EndpointCore* core{nullptr}; // guarded by mutex; null once the endpoint is gone
};

struct EndpointHooks {
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Publisher& endpoint, std::function<void()> hook) noexcept;
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Subscriber& endpoint, std::function<void()> hook) noexcept;
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Server& endpoint, std::function<void()> hook) noexcept;
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Caller& endpoint, std::function<void()> hook) noexcept;
    /// The link to `endpoint`, made on first use. Throws std::bad_alloc.
    static std::shared_ptr<EndpointLink> link(Publisher& endpoint);
    /// The link to `endpoint`, made on first use. Throws std::bad_alloc.
    static std::shared_ptr<EndpointLink> link(Subscriber& endpoint);
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Blackboard& endpoint, std::function<void()> hook) noexcept;
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Counters& endpoint, std::function<void()> hook) noexcept;

    // The C ABI's data path (c_api.cpp) keeps no batch object: it runs the DataPort's inline
    // calls on the endpoint's port, as endpoint.hpp does, and rebuilds the outstanding batch
    // from the port's bookkeeping for the library's calls.

    /// The DataPort of `endpoint`, at a stable address for the endpoint's life.
    static DataPort& port(Publisher& endpoint) noexcept { return *endpoint.port_; }
    /// The DataPort of `endpoint`, at a stable address for the endpoint's life.
    static DataPort& port(Subscriber& endpoint) noexcept { return *endpoint.port_; }
    /// The outstanding reservation of the writer of `port` (empty when none).
    static WriteBatch write_batch(const DataPort& port) noexcept {
        return port.pending ? WriteBatch{port, port.pending_first, port.pending_count}
                            : WriteBatch{};
    }
    /// The outstanding batch of the reader of `port` (empty when none).
    static ReadBatch read_batch(const DataPort& port) noexcept {
        return port.pending ? ReadBatch{port, port.pending_first, port.pending_count, 0}
                            : ReadBatch{};
    }
    /// The library's reservation, for a call whose inline step (reserve_inline()) has just
    /// said the library must take it: not try_reserve(), which would run that step again.
    static Result<WriteBatch> reserve_slow(Publisher& endpoint, std::size_t max_count) noexcept {
        return endpoint.reserve_slow(max_count);
    }
    /// The library's receive, for a call whose inline step (receive_inline()) has just said
    /// the library must take it: not try_receive(), whose inline step would count the empty
    /// poll again and, on the 256th, answer would_block instead of asking the library.
    static Result<ReadBatch> receive_slow(Subscriber& endpoint, std::size_t max_count) noexcept {
        return endpoint.receive_slow(max_count);
    }
    /// Wakes the readers asleep on `endpoint`'s channel, after an inline commit.
    static void wake_readers(Publisher& endpoint) noexcept { endpoint.wake_readers(); }
    /// Wakes the writers asleep on `endpoint`'s channel, after an inline release.
    static void wake_writers(Subscriber& endpoint) noexcept { endpoint.wake_writers(); }

    // The C ABI's shmbus_counter is a Counter's fields: the cell, its index, writable.

    /// The cell `counter` works on.
    static std::uint64_t* cell(const Counter& counter) noexcept { return counter.value_; }
    /// Whether `counter` may write.
    static bool writable(const Counter& counter) noexcept { return counter.writable_; }
    /// The Counter of those fields, as Counters::cell() made it.
    static Counter counter(std::uint64_t* cell, std::uint64_t index, bool writable) noexcept {
        return Counter{cell, index, writable};
    }
    /// Sets the hook `endpoint` runs when it detaches (when the Pool and the last block it
    /// returned are gone), replacing any earlier one.
    static void set_on_detach(Pool& endpoint, std::function<void()> hook) noexcept;
};

/// The daemon refused to take the endpoint behind `link` back: from now on every call on it
/// returns Errc::closed with `why` (which names the channel, the role and the reason), its
/// blocking calls return at once, and a call asleep in one is woken. Nothing if the endpoint
/// is gone, or was refused already. Any thread.
void refuse_endpoint(EndpointLink& link, std::string why) noexcept;

} // namespace shmbus::detail
