// The reconnect watcher: one background thread per process that notices a lost control
// connection at once and has it restored, for every Client that asked for it
// (ClientOptions::reconnect_in_background).
//
// Owns: the thread (started with the first connection that wants it, never joined: it lives
// as long as the process), an eventfd to wake it, and per connection a WatchState with a
// duplicate of the control socket that it polls for hang-up only (never for input, which is
// the requester's). The restoring itself is Client::Impl's (restore(), refresh(), in
// client_impl.cpp); this thread only decides when.
//
// Lifetime: entries are added by Client::connect() and marked forgotten by ~Impl(); only the
// thread erases them, closing its duplicate once it no longer polls it. It holds an Impl
// strongly only while restoring it, so ~Impl() may run on this thread, right after such a
// step, when the Client and its endpoints were dropped meanwhile. A fork()ed child has no
// watcher (the parent's thread is not in it) until its own first connection starts one.
//
// Failure policy: out of memory in a step is waited out (one pause, then again); nothing
// ends the thread.
#pragma once

#include "client_connection.hpp"

#include <shmbus/client.hpp>

#include <memory>
#include <string>

namespace shmbus::detail {

/// The watcher thread's view of one connection; touched by that thread only.
struct WatchState {
    std::uint64_t seen{0}; // the socket generation `mine` duplicates
    ControlFd mine;        // polled for hang-up
    Backoff backoff{kMaxBackoff};
    bool lost{false};
    bool retrying{false}; // the connection is gone: restore it at retry_at
    Clock::time_point retry_at{};
    std::string last_failure;
};

/// Registers `impl` with the process's watcher, starting it if there is none.
Result<void> watcher_add(const std::shared_ptr<Client::Impl>& impl);
/// The Impl is going away: the watcher never touches it after this returns.
void watcher_forget(const Client::Impl* impl) noexcept;
/// A socket changed: the watcher looks at every connection again.
void watcher_poke() noexcept;

} // namespace shmbus::detail
