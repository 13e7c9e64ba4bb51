// What the C ABI's source files share (c_api.cpp, c_api_state.cpp, c_api_rpc.cpp,
// c_api_pool.cpp, c_api_admin.cpp): the client handle, the thread's last error, and the conversions
// and checks every open call makes. Internal to the library; the interface is
// include/shmbus/shmbus.h.
//
// Error rule of the C ABI: a function that fails records its code, errno and sentence for
// the calling thread with fail() and returns the code; a function that succeeds touches
// none of them. Nothing here throws.
#pragma once

#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

// A client handle also keeps what its administration calls hand out by pointer: the names
// of the last client list, the strings of the last status, the message of the last reload.
struct shmbus_client {
    shmbus::Client client;
    std::vector<shmbus::ClientSummary> clients{};
    shmbus::DaemonStatus status{};
    std::vector<const char*> config_files{};
    std::string reloaded{};
};

namespace shmbus::c_api {

/// Records a failure with nothing to say but its code (would_block, timed_out on the data
/// path): no string is built. Returns the code.
int fail(Errc code) noexcept;
/// Records `error` (code, errno, sentence) as this thread's last. Returns the code.
int fail(const Error& error) noexcept;
/// Records `code` with the sentence `detail`. Returns the code.
int fail(Errc code, const char* detail) noexcept;
/// Records SHMBUS_E_NO_MEMORY. Returns it.
int no_memory() noexcept;
/// This thread's last failure: its sentence (static or thread-local storage), code, errno.
[[nodiscard]] const char* last_error_text() noexcept;
[[nodiscard]] int last_error_code() noexcept;
[[nodiscard]] int last_error_errno() noexcept;

/// A C timeout (nanoseconds; negative: for ever) as the C++ API takes it.
[[nodiscard]] std::chrono::nanoseconds to_timeout(int64_t timeout_ns) noexcept;
/// Fills `*to` from `from`, the name cut to SHMBUS_MAX_NAME_LENGTH and NUL-terminated.
void copy_info(const ChannelInfo& from, shmbus_channel_info* to) noexcept;
/// Converts endpoint options, checked (NULL: leaves `out` at the defaults). SHMBUS_OK, or
/// the code recorded for an unknown wait mode.
[[nodiscard]] int endpoint_options(const shmbus_endpoint_options* in,
                                   EndpointOptions& out) noexcept;
/// The checks every open call makes: `client`, `channel` and the handle pointer not NULL
/// (else SHMBUS_E_INVALID_ARGUMENT naming `function`), then endpoint_options().
[[nodiscard]] int open_arguments(const shmbus_client* client, const char* channel,
                                 const void* handle, const shmbus_endpoint_options* options,
                                 EndpointOptions& out, const char* function) noexcept;

/// The role argument of the open calls of shared-state and pool channels, checked: a
/// shmbus_role into `out`, else SHMBUS_E_INVALID_ARGUMENT naming `function`.
[[nodiscard]] int role_of(uint32_t role, Role& out, const char* function) noexcept;

/// Opens the handle of a channel opened with a role (blackboard, counters, pool):
/// `open(options, role)` is the Client's call, whose endpoint becomes the one member of a new
/// Handle. Checks the arguments first (open_arguments(), role_of()).
template <typename Handle, typename Open>
int open_with_role(shmbus_client* client, const char* channel, uint32_t role,
                   const shmbus_endpoint_options* options, Handle** handle, const char* function,
                   Open&& open) noexcept {
    EndpointOptions o;
    if (const int rc = open_arguments(client, channel, handle, options, o, function);
        rc != SHMBUS_OK) {
        return rc;
    }
    *handle = nullptr;
    Role r{};
    if (const int rc = role_of(role, r, function); rc != SHMBUS_OK) {
        return rc;
    }
    auto opened = open(o, r);
    if (!opened) {
        return fail(opened.error());
    }
    *handle = new (std::nothrow) Handle{std::move(opened).value()};
    return *handle == nullptr ? no_memory() : SHMBUS_OK;
}

// Reads an endpoint's events through a fixed buffer: shmbus_event is not shmbus::PeerEvent.
template <typename Endpoint>
size_t read_events(Endpoint& endpoint, shmbus_event* events, size_t capacity) noexcept {
    if (events == nullptr) {
        capacity = 0;
    }
    std::array<shmbus::PeerEvent, 16> chunk;
    size_t n = 0;
    do {
        const size_t want = std::min(chunk.size(), capacity - n);
        const size_t got = endpoint.events(std::span{chunk.data(), want});
        for (size_t i = 0; i < got; ++i) {
            const shmbus::PeerEvent& e = chunk[i];
            events[n++] = shmbus_event{static_cast<uint32_t>(e.kind),
                                       static_cast<uint32_t>(e.role),
                                       e.endpoint_index,
                                       e.pid,
                                       e.count,
                                       e.sequence};
        }
        if (got < want) {
            break;
        }
    } while (n < capacity);
    return n;
}

template <typename Endpoint>
int wait_handle(Endpoint& endpoint, int* fd) noexcept {
    auto r = endpoint.wait_handle();
    if (!r) {
        return fail(r.error());
    }
    *fd = *r;
    return SHMBUS_OK;
}

} // namespace shmbus::c_api
