// What the C ABI's sources share (c_api.cpp, c_api_rpc.cpp): the client handle, the last
// error of the calling thread, and the conversions every entry point uses. Internal: not
// installed, not exported (the library's default visibility is hidden).
//
// Every function here is noexcept and allocates nothing unless it says so; fail() records
// the error for shmbus_last_error_*() and returns its code, so that an entry point ends with
// `return fail(...)`.
#pragma once

#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
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

namespace shmbus::capi {

/// Records `error` as this thread's last failure; returns its code.
int fail(const shmbus::Error& error) noexcept;
/// Records a failure of `code` with the sentence `detail`; returns `code`.
int fail(Errc code, const char* detail) noexcept;
/// Records SHMBUS_E_NO_MEMORY (without a sentence, which would need memory); returns it.
int no_memory() noexcept;
/// Copies a channel's identity and geometry into the C struct.
void copy_info(const shmbus::ChannelInfo& from, shmbus_channel_info* to) noexcept;
/// Converts endpoint options, checked: an unknown wait mode is named rather than passed on.
/// NULL gives the defaults. SHMBUS_OK or the failure's code.
int endpoint_options(const shmbus_endpoint_options* in, shmbus::EndpointOptions& out) noexcept;

/// A C timeout: negative waits without limit.
inline std::chrono::nanoseconds to_timeout(int64_t timeout_ns) noexcept {
    return timeout_ns < 0 ? std::chrono::nanoseconds::max() : std::chrono::nanoseconds(timeout_ns);
}

/// Reads an endpoint's events through a fixed buffer: shmbus_event is not shmbus::PeerEvent.
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

/// Stores the endpoint's wait handle in *fd.
template <typename Endpoint>
int wait_handle(Endpoint& endpoint, int* fd) noexcept {
    auto r = endpoint.wait_handle();
    if (!r) {
        return fail(r.error());
    }
    *fd = *r;
    return SHMBUS_OK;
}

} // namespace shmbus::capi
