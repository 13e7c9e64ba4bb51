// The C ABI (include/shmbus/shmbus.h) on the public C++ API.
//
// Each handle holds its C++ object. The zero-copy calls are the C fast path: an endpoint
// handle also holds a pointer to its endpoint's DataPort, and each call first runs the
// DataPort's inline step (reserve_inline(), commit_inline(), receive_inline(),
// release_inline(): the very code of the C++ inline path) and copies the slots out; only
// what that step leaves (another algorithm, a full or empty ring, a depth to record, every
// error) goes through the C++ endpoint, out of line. No batch object is kept: the
// outstanding batch is the port's bookkeeping, rebuilt as a WriteBatch/ReadBatch for the
// library when needed. A successful call allocates nothing and touches no thread-local
// state; a failure without detail (would_block, timed_out) records a static string only.
//
// Every entry point is noexcept: what can allocate (options, names, lists) catches
// std::bad_alloc and answers SHMBUS_E_NO_MEMORY.
#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>
#include <shmbus/version.hpp>

#include "c_api_support.hpp"
#include "endpoint_hooks.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

using shmbus::Errc;
using shmbus::detail::DataPort;
using shmbus::detail::EndpointHooks;

// The C codes are shmbus::Errc, value for value.
static_assert(SHMBUS_E_WOULD_BLOCK == static_cast<int>(Errc::would_block));
static_assert(SHMBUS_EVENT_ATTACHED == static_cast<int>(shmbus::EventKind::attached));
static_assert(SHMBUS_EVENT_DETACHED == static_cast<int>(shmbus::EventKind::detached));
static_assert(SHMBUS_EVENT_DIED == static_cast<int>(shmbus::EventKind::died));
static_assert(SHMBUS_EVENT_LAPPED == static_cast<int>(shmbus::EventKind::lapped));
static_assert(SHMBUS_EVENT_EVENTS_LOST == static_cast<int>(shmbus::EventKind::events_lost));
static_assert(SHMBUS_EVENT_SERVER_GONE == static_cast<int>(shmbus::EventKind::server_gone));
static_assert(SHMBUS_ROLE_PUBLISHER == static_cast<int>(shmbus::Role::publisher));
static_assert(SHMBUS_ROLE_SUBSCRIBER == static_cast<int>(shmbus::Role::subscriber));
static_assert(SHMBUS_E_TIMED_OUT == static_cast<int>(Errc::timed_out));
static_assert(SHMBUS_E_INVALID_ARGUMENT == static_cast<int>(Errc::invalid_argument));
static_assert(SHMBUS_E_MESSAGE_TOO_LARGE == static_cast<int>(Errc::message_too_large));
static_assert(SHMBUS_E_CORRUPTED == static_cast<int>(Errc::corrupted));
static_assert(SHMBUS_E_VERSION_MISMATCH == static_cast<int>(Errc::version_mismatch));
static_assert(SHMBUS_E_NO_MEMORY == static_cast<int>(Errc::no_memory));
static_assert(SHMBUS_E_LIMIT_REACHED == static_cast<int>(Errc::limit_reached));
static_assert(SHMBUS_E_PERMISSION_DENIED == static_cast<int>(Errc::permission_denied));
static_assert(SHMBUS_E_NOT_FOUND == static_cast<int>(Errc::not_found));
static_assert(SHMBUS_E_SYSTEM_ERROR == static_cast<int>(Errc::system_error));
static_assert(SHMBUS_E_CLOSED == static_cast<int>(Errc::closed));
static_assert(SHMBUS_E_LOST == static_cast<int>(Errc::lost));
static_assert(SHMBUS_E_ALREADY_EXISTS == static_cast<int>(Errc::already_exists));
static_assert(SHMBUS_E_PROTOCOL_ERROR == static_cast<int>(Errc::protocol_error));
static_assert(SHMBUS_WAIT_SPIN == static_cast<int>(shmbus::WaitMode::spin));
static_assert(SHMBUS_WAIT_ADAPTIVE == static_cast<int>(shmbus::WaitMode::adaptive));
static_assert(SHMBUS_WAIT_BLOCKING == static_cast<int>(shmbus::WaitMode::blocking));
static_assert(SHMBUS_KIND_QUEUE == static_cast<int>(shmbus::ChannelKind::queue));
static_assert(SHMBUS_KIND_BROADCAST == static_cast<int>(shmbus::ChannelKind::broadcast));
static_assert(SHMBUS_KIND_BLACKBOARD == static_cast<int>(shmbus::ChannelKind::blackboard));
static_assert(SHMBUS_KIND_COUNTERS == static_cast<int>(shmbus::ChannelKind::counters));
static_assert(SHMBUS_KIND_RPC == static_cast<int>(shmbus::ChannelKind::rpc));
static_assert(SHMBUS_KIND_POOL == static_cast<int>(shmbus::ChannelKind::pool));
static_assert(SHMBUS_OVERFLOW_BLOCK == static_cast<int>(shmbus::Overflow::block));
static_assert(SHMBUS_OVERFLOW_DROP == static_cast<int>(shmbus::Overflow::drop));
static_assert(SHMBUS_MAX_NAME_LENGTH == shmbus::kMaxNameLength);

// An endpoint handle: the endpoint, and its DataPort for the fast path (inside the
// endpoint's Impl, so at a stable address while the endpoint lives).
struct shmbus_publisher {
    explicit shmbus_publisher(shmbus::Publisher&& p) noexcept
        : publisher{std::move(p)}, port{&EndpointHooks::port(publisher)} {}
    shmbus::Publisher publisher;
    DataPort* port;
};

struct shmbus_subscriber {
    explicit shmbus_subscriber(shmbus::Subscriber&& s) noexcept
        : subscriber{std::move(s)}, port{&EndpointHooks::port(subscriber)} {}
    shmbus::Subscriber subscriber;
    DataPort* port;
};

namespace shmbus::c_api {
namespace {

// The last failure of this thread, in one thread-local object (one TLS lookup): `text` is
// what shmbus_last_error_message() returns, either a code's static name or `message`'s text.
struct LastError {
    int code{0};
    int sys_errno{0};
    const char* text{""};
    std::string message{};
};
thread_local LastError t_last;

} // namespace

int fail(Errc code) noexcept {
    LastError& last = t_last;
    last.code = static_cast<int>(code);
    last.sys_errno = 0;
    last.text = errc_name(code).data(); // a string literal: NUL-terminated, static
    return last.code;
}

int fail(const shmbus::Error& error) noexcept {
    if (error.detail.empty() && error.sys_errno == 0) {
        return fail(error.code);
    }
    LastError& last = t_last;
    last.code = static_cast<int>(error.code);
    last.sys_errno = error.sys_errno;
    try {
        last.message = error.message();
        last.text = last.message.c_str();
    } catch (...) {
        // no memory for the sentence: the code's name still says what failed
        last.text = errc_name(error.code).data();
    }
    return last.code;
}

int fail(Errc code, const char* detail) noexcept {
    try {
        return fail(shmbus::make_error(code, detail));
    } catch (...) {
        return fail(shmbus::Error{code, 0, {}});
    }
}

int no_memory() noexcept {
    return fail(shmbus::Error{Errc::no_memory, 0, {}});
}

const char* last_error_text() noexcept {
    return t_last.text;
}

int last_error_code() noexcept {
    return t_last.code;
}

int last_error_errno() noexcept {
    return t_last.sys_errno;
}

std::chrono::nanoseconds to_timeout(int64_t timeout_ns) noexcept {
    return timeout_ns < 0 ? std::chrono::nanoseconds::max() : std::chrono::nanoseconds(timeout_ns);
}

// Options of an endpoint, checked: an unknown wait mode is named rather than passed on.
int endpoint_options(const shmbus_endpoint_options* in, EndpointOptions& out) noexcept {
    if (in == nullptr) {
        return SHMBUS_OK;
    }
    if (in->wait > SHMBUS_WAIT_BLOCKING) {
        return fail(Errc::invalid_argument,
                    "shmbus_endpoint_options.wait is not a shmbus_wait_mode (0, 1 or 2)");
    }
    out.wait = static_cast<WaitMode>(in->wait);
    out.spin_iterations = in->spin_iterations;
    out.endpoint_index = in->endpoint_index;
    out.peer_events = in->peer_events != 0;
    return SHMBUS_OK;
}

int open_arguments(const shmbus_client* client, const char* channel, const void* handle,
                   const shmbus_endpoint_options* options, EndpointOptions& out,
                   const char* function) noexcept {
    if (client == nullptr || channel == nullptr || handle == nullptr) {
        try {
            return fail(make_error(Errc::invalid_argument,
                                   std::string(function) +
                                       ": client, channel and the handle must not be NULL"));
        } catch (const std::bad_alloc&) {
            return no_memory();
        }
    }
    return endpoint_options(options, out);
}

int role_of(uint32_t role, Role& out, const char* function) noexcept {
    if (role != SHMBUS_ROLE_PUBLISHER && role != SHMBUS_ROLE_SUBSCRIBER) {
        try {
            return fail(make_error(Errc::invalid_argument,
                                   std::string(function) + ": role " + std::to_string(role) +
                                       " is not a shmbus_role (1: SHMBUS_ROLE_PUBLISHER, a "
                                       "writer; 2: SHMBUS_ROLE_SUBSCRIBER, a reader)"));
        } catch (const std::bad_alloc&) {
            return no_memory();
        }
    }
    out = static_cast<Role>(role);
    return SHMBUS_OK;
}

void copy_info(const shmbus::ChannelInfo& from, shmbus_channel_info* to) noexcept {
    *to = shmbus_channel_info{};
    const std::size_t n = std::min(from.name.size(), std::size_t{SHMBUS_MAX_NAME_LENGTH});
    std::memcpy(to->name, from.name.data(), n);
    to->name[n] = '\0';
    to->kind = static_cast<uint32_t>(from.kind);
    to->overflow = static_cast<uint32_t>(from.overflow);
    to->slot_size = from.slot_size;
    to->slot_count = from.slot_count;
    to->max_publishers = from.max_publishers;
    to->max_subscribers = from.max_subscribers;
    to->creation_id = from.creation_id;
}

} // namespace shmbus::c_api

using namespace shmbus::c_api;

namespace {

// Opens a publisher or subscriber handle: checks the arguments, converts the options.
template <typename Handle>
int open_endpoint(shmbus_client* client, const char* channel,
                  const shmbus_endpoint_options* options, Handle** handle,
                  const char* function) noexcept {
    shmbus::EndpointOptions o;
    if (const int rc = open_arguments(client, channel, handle, options, o, function);
        rc != SHMBUS_OK) {
        return rc;
    }
    *handle = nullptr;
    auto opened = [&] {
        if constexpr (std::is_same_v<Handle, shmbus_publisher>) {
            return client->client.open_publisher(channel, o);
        } else {
            return client->client.open_subscriber(channel, o);
        }
    }();
    if (!opened) {
        return fail(opened.error());
    }
    *handle = new (std::nothrow) Handle{std::move(opened).value()};
    return *handle == nullptr ? no_memory() : SHMBUS_OK;
}

} // namespace

namespace {

// The data path's slow halves: what the inline steps leave, every misuse and every error.
// Out of line and cold, so that the fast halves stay small enough to inline into nothing but
// their own few instructions.

[[gnu::noinline, gnu::cold]] int reserve_slow(shmbus_publisher* publisher, shmbus_slot* slots,
                                              size_t max_count, int64_t timeout_ns,
                                              size_t* count) noexcept {
    if (publisher == nullptr || slots == nullptr || count == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_publisher_reserve: publisher, slots and count must not be NULL");
    }
    *count = 0;
    if (publisher->port->pending) {
        return fail(
            Errc::invalid_argument,
            "shmbus_publisher_reserve: a reservation is outstanding (commit or abandon it)");
    }
    // Timeout 0: the inline step ran in the fast half and left the call to the library.
    auto r = timeout_ns == 0 ? EndpointHooks::reserve_slow(publisher->publisher, max_count)
                             : publisher->publisher.reserve(max_count, to_timeout(timeout_ns));
    if (!r) {
        return fail(r.error());
    }
    const std::size_t n = r->size();
    for (std::size_t i = 0; i < n; ++i) {
        slots[i] = shmbus_slot{r->data(i).data(), r->capacity(), r->sequence(i)};
    }
    *count = n;
    return SHMBUS_OK;
}

// The reservation is outstanding and its lengths are set: the library's commit.
[[gnu::noinline, gnu::cold]] int commit_slow(shmbus_publisher* publisher) noexcept {
    shmbus::WriteBatch batch = EndpointHooks::write_batch(*publisher->port);
    auto r = publisher->publisher.commit(batch);
    return r ? SHMBUS_OK : fail(r.error());
}

[[gnu::noinline, gnu::cold]] int commit_misuse(const shmbus_publisher* publisher,
                                               const uint64_t* lengths) noexcept {
    if (publisher == nullptr || lengths == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_publisher_commit: publisher and lengths must not be NULL");
    }
    return fail(Errc::invalid_argument,
                !publisher->port->pending
                    ? "shmbus_publisher_commit: no reservation is outstanding"
                    : "shmbus_publisher_commit: count is not the number of slots reserved");
}

[[gnu::noinline, gnu::cold]] int receive_slow(shmbus_subscriber* subscriber,
                                              shmbus_message* messages, size_t max_count,
                                              int64_t timeout_ns, size_t* count,
                                              uint64_t* lost_before) noexcept {
    if (subscriber == nullptr || messages == nullptr || count == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_subscriber_receive: subscriber, messages and count must not be NULL");
    }
    *count = 0;
    if (subscriber->port->pending) {
        return fail(Errc::invalid_argument,
                    "shmbus_subscriber_receive: a batch is outstanding (release it first)");
    }
    // Timeout 0: the inline step ran in the fast half and left the call to the library (the
    // 256th empty poll among others, which must reach it).
    auto r = timeout_ns == 0 ? EndpointHooks::receive_slow(subscriber->subscriber, max_count)
                             : subscriber->subscriber.receive(max_count, to_timeout(timeout_ns));
    if (!r) {
        return fail(r.error());
    }
    const std::size_t n = r->size();
    for (std::size_t i = 0; i < n; ++i) {
        const shmbus::Message m = r->message(i);
        messages[i] = shmbus_message{m.data.data(), m.data.size(), m.sequence};
    }
    *count = n;
    if (lost_before != nullptr) {
        *lost_before = r->lost_before();
    }
    return SHMBUS_OK;
}

[[gnu::noinline, gnu::cold]] int release_slow(shmbus_subscriber* subscriber,
                                              uint64_t* lost) noexcept {
    if (subscriber == nullptr || !subscriber->port->pending) {
        return fail(Errc::invalid_argument,
                    subscriber == nullptr ? "shmbus_subscriber_release: subscriber is NULL"
                                          : "shmbus_subscriber_release: no batch is outstanding");
    }
    shmbus::ReadBatch batch = EndpointHooks::read_batch(*subscriber->port);
    const std::size_t n = batch.size();
    if (auto r = subscriber->subscriber.release(batch); !r) {
        if (r.code() == Errc::lost && lost != nullptr) {
            *lost = n;
        }
        return fail(r.error());
    }
    return SHMBUS_OK;
}

} // namespace

extern "C" {

const char* shmbus_last_error_message(void) noexcept {
    return last_error_text();
}

int shmbus_last_error_code(void) noexcept {
    return last_error_code();
}

int shmbus_last_error_errno(void) noexcept {
    return last_error_errno();
}

const char* shmbus_errc_name(int code) noexcept {
    if (code == SHMBUS_OK) {
        return "ok";
    }
    if (code < SHMBUS_E_WOULD_BLOCK || code > SHMBUS_E_PROTOCOL_ERROR) {
        return "unknown";
    }
    // errc_name() returns views of string literals: NUL-terminated, static.
    return shmbus::errc_name(static_cast<Errc>(code)).data();
}

const char* shmbus_version(void) noexcept {
    return shmbus::library_version();
}

void shmbus_client_options_init(shmbus_client_options* options) noexcept {
    if (options == nullptr) {
        return;
    }
    const shmbus::ClientOptions defaults;
    *options = shmbus_client_options{};
    options->request_timeout_ms = defaults.request_timeout.count();
    options->wait_for_daemon_ms = defaults.wait_for_daemon.count();
    options->reconnect_in_background = defaults.reconnect_in_background ? 1 : 0;
}

int shmbus_connect(const shmbus_client_options* options, shmbus_client** client) noexcept {
    if (client == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_connect: client is NULL");
    }
    *client = nullptr;
    try {
        shmbus::ClientOptions o;
        if (options != nullptr) {
            if (options->socket_path != nullptr) {
                o.socket_path = options->socket_path;
            }
            if (options->client_name != nullptr) {
                o.client_name = options->client_name;
            }
            if (options->request_timeout_ms <= 0) {
                return fail(Errc::invalid_argument,
                            "shmbus_client_options.request_timeout_ms must be positive");
            }
            o.request_timeout = std::chrono::milliseconds(options->request_timeout_ms);
            o.wait_for_daemon = options->wait_for_daemon_ms < 0
                                    ? std::chrono::milliseconds::max()
                                    : std::chrono::milliseconds(options->wait_for_daemon_ms);
            o.reconnect_in_background = options->reconnect_in_background != 0;
            if (options->log != nullptr) {
                o.log = [fn = options->log, user = options->log_user](std::string_view line) {
                    fn(user, line.data(), line.size());
                };
            }
        }
        auto connected = shmbus::Client::connect(o);
        if (!connected) {
            return fail(connected.error());
        }
        *client = new shmbus_client{std::move(connected).value(), {}, {}, {}, {}};
        return SHMBUS_OK;
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
}

void shmbus_client_close(shmbus_client* client) noexcept {
    delete client;
}

const char* shmbus_client_socket_path(const shmbus_client* client) noexcept {
    return client == nullptr ? "" : client->client.socket_path().c_str();
}

void shmbus_endpoint_options_init(shmbus_endpoint_options* options) noexcept {
    if (options == nullptr) {
        return;
    }
    const shmbus::EndpointOptions defaults;
    options->wait = static_cast<uint32_t>(defaults.wait);
    options->spin_iterations = defaults.spin_iterations;
    options->endpoint_index = defaults.endpoint_index;
    options->peer_events = defaults.peer_events ? 1 : 0;
}

int shmbus_open_publisher(shmbus_client* client, const char* channel,
                          const shmbus_endpoint_options* options,
                          shmbus_publisher** publisher) noexcept {
    return open_endpoint(client, channel, options, publisher, "shmbus_open_publisher");
}

int shmbus_open_subscriber(shmbus_client* client, const char* channel,
                           const shmbus_endpoint_options* options,
                           shmbus_subscriber** subscriber) noexcept {
    return open_endpoint(client, channel, options, subscriber, "shmbus_open_subscriber");
}

void shmbus_publisher_close(shmbus_publisher* publisher) noexcept {
    delete publisher;
}

void shmbus_subscriber_close(shmbus_subscriber* subscriber) noexcept {
    delete subscriber;
}

// The fast halves: the inline step on the port, the slots copied out through a local
// WriteBatch/ReadBatch (the views of endpoint.hpp, whose fields the compiler keeps in
// registers), and nothing else. flatten: every inline member is inlined, as in a C++
// caller's code; the slow halves are noinline.
#define SHMBUS_C_FAST [[gnu::flatten]]

SHMBUS_C_FAST int shmbus_publisher_reserve(shmbus_publisher* publisher, shmbus_slot* slots,
                                           size_t max_count, int64_t timeout_ns,
                                           size_t* count) noexcept {
    if (publisher != nullptr && slots != nullptr && count != nullptr) [[likely]] {
        DataPort& p = *publisher->port;
        if (const std::size_t n = p.reserve_inline(max_count); n != 0) [[likely]] {
            const shmbus::WriteBatch batch = EndpointHooks::write_batch(p);
            for (std::size_t i = 0; i < n; ++i) {
                slots[i] = shmbus_slot{batch.data(i).data(), batch.capacity(), batch.sequence(i)};
            }
            *count = n;
            return SHMBUS_OK;
        }
    }
    return reserve_slow(publisher, slots, max_count, timeout_ns, count);
}

SHMBUS_C_FAST int shmbus_publisher_commit(shmbus_publisher* publisher, const uint64_t* lengths,
                                          size_t count) noexcept {
    if (publisher != nullptr && lengths != nullptr) [[likely]] {
        DataPort& p = *publisher->port;
        if (p.pending && count == p.pending_count) [[likely]] {
            const shmbus::WriteBatch batch = EndpointHooks::write_batch(p);
            for (std::size_t i = 0; i < count; ++i) {
                batch.set_length(i, lengths[i]);
            }
            if (p.commit_inline(p.pending_first, count)) [[likely]] {
                if (p.peer_asleep()) [[unlikely]] {
                    EndpointHooks::wake_readers(publisher->publisher);
                }
                return SHMBUS_OK;
            }
            return commit_slow(publisher);
        }
    }
    return commit_misuse(publisher, lengths);
}

void shmbus_publisher_abandon(shmbus_publisher* publisher) noexcept {
    if (publisher != nullptr && publisher->port->pending) {
        shmbus::WriteBatch batch = EndpointHooks::write_batch(*publisher->port);
        publisher->publisher.abandon(batch);
    }
}

int shmbus_publisher_send(shmbus_publisher* publisher, const void* data, size_t size,
                          int64_t timeout_ns) noexcept {
    if (publisher == nullptr || (data == nullptr && size != 0)) [[unlikely]] {
        return fail(Errc::invalid_argument,
                    "shmbus_publisher_send: publisher is NULL, or data is NULL with a size");
    }
    const std::span<const std::byte> message{static_cast<const std::byte*>(data), size};
    auto r = timeout_ns == 0 ? publisher->publisher.try_send(message)
                             : publisher->publisher.send(message, to_timeout(timeout_ns));
    return r ? SHMBUS_OK : fail(r.error());
}

SHMBUS_C_FAST int shmbus_subscriber_receive(shmbus_subscriber* subscriber, shmbus_message* messages,
                                            size_t max_count, int64_t timeout_ns, size_t* count,
                                            uint64_t* lost_before) noexcept {
    if (subscriber != nullptr && messages != nullptr && count != nullptr) [[likely]] {
        DataPort& p = *subscriber->port;
        const std::size_t n = p.receive_inline(max_count);
        if (n - 1 < DataPort::kEmpty - 1) [[likely]] { // neither 0 nor kEmpty
            const shmbus::ReadBatch batch = EndpointHooks::read_batch(p);
            for (std::size_t i = 0; i < n; ++i) {
                const shmbus::Message m = batch.message(i);
                messages[i] = shmbus_message{m.data.data(), m.data.size(), m.sequence};
            }
            *count = n;
            if (lost_before != nullptr) {
                *lost_before = 0;
            }
            return SHMBUS_OK;
        }
        if (n == DataPort::kEmpty && timeout_ns == 0) {
            *count = 0;
            return fail(Errc::would_block);
        }
    }
    return receive_slow(subscriber, messages, max_count, timeout_ns, count, lost_before);
}

SHMBUS_C_FAST int shmbus_subscriber_release(shmbus_subscriber* subscriber,
                                            uint64_t* lost) noexcept {
    if (lost != nullptr) {
        *lost = 0;
    }
    if (subscriber != nullptr) [[likely]] {
        DataPort& p = *subscriber->port;
        if (p.release_inline(p.pending_first, p.pending_count)) [[likely]] {
            if (p.peer_asleep()) [[unlikely]] {
                EndpointHooks::wake_writers(subscriber->subscriber);
            }
            return SHMBUS_OK;
        }
    }
    return release_slow(subscriber, lost);
}

int shmbus_subscriber_receive_copy(shmbus_subscriber* subscriber, void* buffer, size_t capacity,
                                   int64_t timeout_ns, shmbus_received* received) noexcept {
    if (subscriber == nullptr || (buffer == nullptr && capacity != 0)) [[unlikely]] {
        return fail(Errc::invalid_argument, "shmbus_subscriber_receive_copy: subscriber is NULL, "
                                            "or buffer is NULL with a capacity");
    }
    const std::span<std::byte> out{static_cast<std::byte*>(buffer), capacity};
    auto r = timeout_ns == 0 ? subscriber->subscriber.try_receive_copy(out)
                             : subscriber->subscriber.receive_copy(out, to_timeout(timeout_ns));
    if (!r) {
        return fail(r.error());
    }
    if (received != nullptr) {
        *received = shmbus_received{r->size, r->sequence, r->lost_before};
    }
    return SHMBUS_OK;
}

uint64_t shmbus_subscriber_lost(const shmbus_subscriber* subscriber) noexcept {
    return subscriber == nullptr ? 0 : subscriber->subscriber.lost();
}

size_t shmbus_publisher_events(shmbus_publisher* publisher, shmbus_event* events,
                               size_t capacity) noexcept {
    return publisher == nullptr ? 0 : read_events(publisher->publisher, events, capacity);
}

size_t shmbus_subscriber_events(shmbus_subscriber* subscriber, shmbus_event* events,
                                size_t capacity) noexcept {
    return subscriber == nullptr ? 0 : read_events(subscriber->subscriber, events, capacity);
}

int shmbus_publisher_wait_handle(shmbus_publisher* publisher, int* fd) noexcept {
    if (publisher == nullptr || fd == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_publisher_wait_handle: NULL argument");
    }
    return wait_handle(publisher->publisher, fd);
}

int shmbus_subscriber_wait_handle(shmbus_subscriber* subscriber, int* fd) noexcept {
    if (subscriber == nullptr || fd == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_subscriber_wait_handle: NULL argument");
    }
    return wait_handle(subscriber->subscriber, fd);
}

void shmbus_publisher_info(const shmbus_publisher* publisher, shmbus_channel_info* info) noexcept {
    if (publisher != nullptr && info != nullptr) {
        copy_info(publisher->publisher.info(), info);
    }
}

void shmbus_subscriber_info(const shmbus_subscriber* subscriber,
                            shmbus_channel_info* info) noexcept {
    if (subscriber != nullptr && info != nullptr) {
        copy_info(subscriber->subscriber.info(), info);
    }
}

} // extern "C"
