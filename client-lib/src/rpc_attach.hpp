// What rpc's two endpoints share: their attach (rpc_server.cpp, rpc_caller.cpp).
//
// Server and Caller, the data path of rpc channels, in outline (each file says more):
//
// The call slots, their claim words and the memory-ordering pairs ([request], [reply],
// [reuse]) are described once in shm/rpc_calls.hpp. The two ends:
//  - Caller: picks a free slot of its own, writes the request in place, publishes
//    requested(id), then rings its doorbell — a release store of its `calls` count, which
//    only it writes — and wakes sleeping servers; then polls the slot's word for replied /
//    failed. The correlation id is the caller's own count of calls.
//  - Server: keeps, per caller, the `calls` count it last scanned that caller's slots at
//    (`seen`, private), and scans only the callers whose count moved (and, every
//    kFullScanEvery empty scans, all of them, so a damaged count cannot hide a request);
//    takes a request by CAS requested(id) -> taken(id, me), reads it in place, and answers
//    by writing the reply slot and CAS taken(id, me) -> replied(id). A failed CAS means the
//    caller gave up: the reply is dropped, counted in the caller's late_replies, and the
//    slot freed.
//
// Why a doorbell only the caller writes: on the round trip of a call, every cache line that
// both sides write moves between their cores, and a locked instruction waits for it. A
// count the servers lowered again (the first design) cost the server one more line and a
// locked instruction before it could even read the request; a count that servers only read
// costs one line, which the server needs anyway to learn that a request waits. The
// caller's own statistics (`calls`, `replies`) are plain stores for the same reason.
//
// Every value read from the segment is checked before it indexes anything: a request
// length beyond slot_size fails that call (counted as corrupted), a reply length beyond
// reply_slot_size is Errc::corrupted at the caller, a word in a phase it cannot be in is
// left alone. Nothing here trusts `calls`: it only decides where to look.
//
// Thread-safety: one thread at a time per Server / Caller.
#pragma once

#include "endpoint_waiting.hpp"
#include "shm/endpoint_table.hpp"

#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>

#include <memory>
#include <new>

namespace shmbus::detail {

/// What Server::attach() and Caller::attach() share: a new endpoint state `Impl` in an entry
/// of `role`'s table, set up by `set_up(impl)` with what the endpoint adds, its event cursor
/// started last. Errc::no_memory if any of it runs out of memory.
template <typename Impl, typename SetUp>
Result<std::unique_ptr<Impl>> attach_rpc(const ChannelFiles& files, Role role,
                                         const EndpointOptions& options, SetUp set_up) noexcept {
    try {
        auto impl = std::make_unique<Impl>();
        if (auto opened = attach_entry(*impl, files, role, options, true); !opened) {
            return opened.take_error();
        }
        set_up(*impl);
        impl->waiting.start(*impl);
        return impl;
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

} // namespace shmbus::detail
