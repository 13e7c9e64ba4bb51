// Internal hooks on endpoints, not part of the ABI: how the Client learns that a Publisher or
// Subscriber it opened has gone, so that it can tell the daemon (Close) without the data
// path knowing anything about the control protocol.
//
// The hook runs once, from the endpoint's destructor, after its table entry has been
// released, and only in the process that attached the endpoint (a copy inherited through
// fork() detaches nothing and runs nothing). It runs on whichever thread destroys the
// endpoint, so it must be thread-safe with respect to its owner, and it must not throw:
// it runs inside a destructor.
#pragma once

#include <shmbus/endpoint.hpp>
#include <shmbus/rpc.hpp>

#include <functional>

namespace shmbus::detail {

struct EndpointHooks {
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Publisher& endpoint, std::function<void()> hook) noexcept;
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Subscriber& endpoint, std::function<void()> hook) noexcept;
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Server& endpoint, std::function<void()> hook) noexcept;
    /// Sets the hook `endpoint` runs when it detaches, replacing any earlier one.
    static void set_on_detach(Caller& endpoint, std::function<void()> hook) noexcept;
};

} // namespace shmbus::detail
