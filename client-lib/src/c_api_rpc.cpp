// The C ABI of rpc channels (the "rpc channels" section of include/shmbus/shmbus.h) on the
// C++ Server and Caller.
//
// A server handle keeps its Server only: the requests of a receive are described in the
// caller's array, pointing into the channel, and a shmbus_request comes back as the
// shmbus::Request it was made from (the server checks that it holds it). A caller handle
// keeps its Caller: replies are copied into the caller's buffer by the C++ overloads that
// do so, so no call allocates. Every entry point is noexcept; arguments are checked before
// anything is touched, and each failure is recorded for shmbus_last_error_*() (c_api.cpp).
#include "c_api_support.hpp"

#include <span>

using shmbus::Errc;
using namespace shmbus::c_api;

struct shmbus_server {
    shmbus::Server server;
};

struct shmbus_caller {
    shmbus::Caller caller;
};

namespace {

shmbus::Request to_request(const shmbus_request& r) noexcept {
    return shmbus::Request{
        {static_cast<const std::byte*>(r.data), static_cast<std::size_t>(r.size)},
        r.id,
        r.caller,
        r.slot};
}

shmbus::Ticket to_ticket(const shmbus_ticket& t) noexcept {
    return shmbus::Ticket{t.id, t.slot};
}

std::span<const std::byte> bytes(const void* data, size_t size) noexcept {
    return {static_cast<const std::byte*>(data), size};
}

/// Stores the length of a reply copied by `r` in *reply_size (if given), or fails.
int replied(const shmbus::Result<std::size_t>& r, size_t* reply_size) noexcept {
    if (!r) {
        return fail(r.error());
    }
    if (reply_size != nullptr) {
        *reply_size = *r;
    }
    return SHMBUS_OK;
}

/// Opens a server or caller handle for shmbus_open_server() / shmbus_open_caller().
template <typename Handle, typename Open>
int open_rpc(shmbus_client* client, const char* channel, const shmbus_endpoint_options* options,
             Handle** handle, const char* null_message, Open&& open) noexcept {
    if (client == nullptr || channel == nullptr || handle == nullptr) {
        return fail(Errc::invalid_argument, null_message);
    }
    *handle = nullptr;
    shmbus::EndpointOptions o;
    if (const int rc = endpoint_options(options, o); rc != SHMBUS_OK) {
        return rc;
    }
    auto opened = open(client->client, o);
    if (!opened) {
        return fail(opened.error());
    }
    *handle = new (std::nothrow) Handle{std::move(opened).value()};
    return *handle == nullptr ? no_memory() : SHMBUS_OK;
}

} // namespace

extern "C" {

int shmbus_open_server(shmbus_client* client, const char* channel,
                       const shmbus_endpoint_options* options, shmbus_server** server) noexcept {
    return open_rpc(client, channel, options, server,
                    "shmbus_open_server: client, channel and server must not be NULL",
                    [channel](shmbus::Client& c, const shmbus::EndpointOptions& o) {
                        return c.open_server(channel, o);
                    });
}

int shmbus_open_caller(shmbus_client* client, const char* channel,
                       const shmbus_endpoint_options* options, int wait_for_server,
                       shmbus_caller** caller) noexcept {
    return open_rpc(
        client, channel, options, caller,
        "shmbus_open_caller: client, channel and caller must not be NULL",
        [channel, wait_for_server](shmbus::Client& c, const shmbus::EndpointOptions& o) {
            return c.open_caller(channel, o, wait_for_server != 0);
        });
}

void shmbus_server_close(shmbus_server* server) noexcept {
    delete server;
}

void shmbus_caller_close(shmbus_caller* caller) noexcept {
    delete caller;
}

int shmbus_server_receive(shmbus_server* server, shmbus_request* requests, size_t capacity,
                          int64_t timeout_ns, size_t* count) noexcept {
    if (server == nullptr || requests == nullptr || count == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_server_receive: server, requests and count must not be NULL");
    }
    *count = 0;
    auto batch = timeout_ns == 0 ? server->server.try_receive(capacity)
                                 : server->server.receive(capacity, to_timeout(timeout_ns));
    if (!batch) {
        return fail(batch.error());
    }
    for (const shmbus::Request& r : *batch) {
        requests[(*count)++] = shmbus_request{r.data.data(), r.data.size(), r.id, r.caller, r.slot};
    }
    return SHMBUS_OK;
}

int shmbus_server_respond(shmbus_server* server, const shmbus_request* request, const void* reply,
                          size_t size) noexcept {
    if (server == nullptr || request == nullptr || (reply == nullptr && size != 0)) {
        return fail(Errc::invalid_argument, "shmbus_server_respond: server or request is NULL, "
                                            "or reply is NULL with a size");
    }
    auto r = server->server.respond(to_request(*request), bytes(reply, size));
    return r ? SHMBUS_OK : fail(r.error());
}

int shmbus_server_reserve_reply(shmbus_server* server, const shmbus_request* request, void** data,
                                uint64_t* capacity) noexcept {
    if (server == nullptr || request == nullptr || data == nullptr || capacity == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_server_reserve_reply: no argument may be NULL");
    }
    auto slot = server->server.reserve_reply(to_request(*request));
    if (!slot) {
        return fail(slot.error());
    }
    *data = slot->data();
    *capacity = slot->size();
    return SHMBUS_OK;
}

int shmbus_server_commit_reply(shmbus_server* server, const shmbus_request* request,
                               uint64_t length) noexcept {
    if (server == nullptr || request == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_server_commit_reply: server and request must not be NULL");
    }
    auto r = server->server.commit_reply(to_request(*request), length);
    return r ? SHMBUS_OK : fail(r.error());
}

int shmbus_caller_call(shmbus_caller* caller, const void* request, size_t size, void* reply,
                       size_t capacity, int64_t timeout_ns, size_t* reply_size) noexcept {
    if (caller == nullptr || (request == nullptr && size != 0) ||
        (reply == nullptr && capacity != 0)) {
        return fail(Errc::invalid_argument, "shmbus_caller_call: caller is NULL, or request or "
                                            "reply is NULL with a size");
    }
    return replied(caller->caller.call(bytes(request, size),
                                       {static_cast<std::byte*>(reply), capacity},
                                       to_timeout(timeout_ns)),
                   reply_size);
}

int shmbus_caller_send(shmbus_caller* caller, const void* request, size_t size,
                       shmbus_ticket* ticket) noexcept {
    if (caller == nullptr || ticket == nullptr || (request == nullptr && size != 0)) {
        return fail(Errc::invalid_argument, "shmbus_caller_send: caller or ticket is NULL, or "
                                            "request is NULL with a size");
    }
    auto t = caller->caller.send_request(bytes(request, size));
    if (!t) {
        return fail(t.error());
    }
    *ticket = shmbus_ticket{t->id, t->slot, 0};
    return SHMBUS_OK;
}

int shmbus_caller_poll(shmbus_caller* caller, const shmbus_ticket* ticket, void* reply,
                       size_t capacity, size_t* reply_size) noexcept {
    if (caller == nullptr || ticket == nullptr || (reply == nullptr && capacity != 0)) {
        return fail(Errc::invalid_argument, "shmbus_caller_poll: caller or ticket is NULL, or "
                                            "reply is NULL with a capacity");
    }
    return replied(
        caller->caller.poll(to_ticket(*ticket), {static_cast<std::byte*>(reply), capacity}),
        reply_size);
}

int shmbus_caller_receive_reply(shmbus_caller* caller, const shmbus_ticket* ticket, void* reply,
                                size_t capacity, int64_t timeout_ns, size_t* reply_size) noexcept {
    if (caller == nullptr || ticket == nullptr || (reply == nullptr && capacity != 0)) {
        return fail(Errc::invalid_argument, "shmbus_caller_receive_reply: caller or ticket is "
                                            "NULL, or reply is NULL with a capacity");
    }
    return replied(caller->caller.receive_reply(to_ticket(*ticket),
                                                {static_cast<std::byte*>(reply), capacity},
                                                to_timeout(timeout_ns)),
                   reply_size);
}

int shmbus_caller_cancel(shmbus_caller* caller, const shmbus_ticket* ticket) noexcept {
    if (caller == nullptr || ticket == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_caller_cancel: caller and ticket must not be NULL");
    }
    auto r = caller->caller.cancel(to_ticket(*ticket));
    return r ? SHMBUS_OK : fail(r.error());
}

size_t shmbus_caller_in_flight(const shmbus_caller* caller) noexcept {
    return caller == nullptr ? 0 : caller->caller.in_flight();
}

uint64_t shmbus_caller_reply_size(const shmbus_caller* caller) noexcept {
    return caller == nullptr ? 0 : caller->caller.info().reply_slot_size;
}

size_t shmbus_server_events(shmbus_server* server, shmbus_event* events, size_t capacity) noexcept {
    return server == nullptr ? 0 : read_events(server->server, events, capacity);
}

size_t shmbus_caller_events(shmbus_caller* caller, shmbus_event* events, size_t capacity) noexcept {
    return caller == nullptr ? 0 : read_events(caller->caller, events, capacity);
}

int shmbus_server_wait_handle(shmbus_server* server, int* fd) noexcept {
    if (server == nullptr || fd == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_server_wait_handle: NULL argument");
    }
    return wait_handle(server->server, fd);
}

int shmbus_caller_wait_handle(shmbus_caller* caller, int* fd) noexcept {
    if (caller == nullptr || fd == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_caller_wait_handle: NULL argument");
    }
    return wait_handle(caller->caller, fd);
}

void shmbus_server_info(const shmbus_server* server, shmbus_channel_info* info) noexcept {
    if (server != nullptr && info != nullptr) {
        copy_info(server->server.info(), info);
    }
}

void shmbus_caller_info(const shmbus_caller* caller, shmbus_channel_info* info) noexcept {
    if (caller != nullptr && info != nullptr) {
        copy_info(caller->caller.info(), info);
    }
}

} // extern "C"
