/* shmbus.h: the C ABI of libshmbus.
 *
 * A stable, C11 interface to the same library as the C++ API (shmbus/shmbus.hpp), for C
 * programs and for other languages' bindings (cffi, ctypes, pybind11, ...). It compiles as
 * C11 and as C++; it includes nothing but <stddef.h> and <stdint.h>.
 *
 * Handles are opaque: shmbus_client, shmbus_publisher, shmbus_subscriber, for the
 * shared-state channels shmbus_blackboard and shmbus_counters, for rpc channels
 * shmbus_server and shmbus_caller, for pool channels shmbus_pool and shmbus_block. Every function
 * that can fail returns an int: 0 (SHMBUS_OK) on success, else one of the shmbus_errc codes below,
 * whose values are those of shmbus::Errc. The sentence that says what went wrong (which channel,
 * which size, which path) is kept per thread: call shmbus_last_error_message() on the same thread,
 * after the failing call and before the next call that fails. A thread-local last error rather than
 * an error out-parameter keeps every signature short and every binding simple (a binding checks the
 * return code and, only when it is not 0, fetches the message on the same thread, which it is on
 * even when it released its interpreter lock around the call); the data path does not pay for an
 * error object it does not need.
 *
 * Zero copy: shmbus_publisher_reserve() hands out pointers to ring slots to fill in place,
 * shmbus_publisher_commit() publishes them with their lengths; shmbus_subscriber_receive()
 * hands out pointers to messages to read in place, shmbus_subscriber_release() frees them.
 * One batch per endpoint is outstanding at a time; its pointers are valid until commit,
 * abandon or release, or until the endpoint is closed. The copying forms (send,
 * receive_copy) do both steps in one call.
 *
 * Timeouts are in nanoseconds: 0 tries once (SHMBUS_E_WOULD_BLOCK when it cannot proceed
 * at once; this is the inline fast path), a positive value waits at most that long
 * (SHMBUS_E_TIMED_OUT then), a negative value (SHMBUS_WAIT_FOREVER) waits without limit.
 *
 * No exception and no signal ever leaves this interface: every failure is a code.
 *
 * Thread-safety, as in C++: a client is used by one thread at a time; an endpoint is used
 * by one thread at a time; different handles may be used concurrently from different
 * threads. Endpoints may outlive the client that opened them. Handles belong to the process
 * that created them: a child of fork() must not use them.
 *
 * ABI: the functions are versioned symbols (node SHMBUS_0.1). A later release adds
 * functions under a new node and never changes the signature of an existing one or the
 * layout of a struct declared here; a struct that needs more fields comes as a new struct
 * with new functions. Binaries built against this header keep working with later 0.x
 * releases of libshmbus.so.0.
 */
#ifndef SHMBUS_SHMBUS_H
#define SHMBUS_SHMBUS_H

#include <stddef.h>
#include <stdint.h>

#if defined(SHMBUS_BUILDING_LIBRARY)
#define SHMBUS_C_EXPORT __attribute__((visibility("default")))
#else
#define SHMBUS_C_EXPORT
#endif

#ifdef __cplusplus
#define SHMBUS_C_NOEXCEPT noexcept
extern "C" {
#else
#define SHMBUS_C_NOEXCEPT
#endif

/* ---- Errors --------------------------------------------------------------------------- */

/** Result codes: 0 is success; the others equal shmbus::Errc and never change. */
typedef enum shmbus_errc {
    SHMBUS_OK = 0,
    SHMBUS_E_WOULD_BLOCK = 1,       /**< nothing to read, or no free slot, right now */
    SHMBUS_E_TIMED_OUT = 2,         /**< a blocking call reached its deadline */
    SHMBUS_E_INVALID_ARGUMENT = 3,  /**< the caller passed something unusable */
    SHMBUS_E_MESSAGE_TOO_LARGE = 4, /**< the message does not fit the slot or buffer */
    SHMBUS_E_CORRUPTED = 5,         /**< a value read from shared memory failed validation */
    SHMBUS_E_VERSION_MISMATCH = 6,  /**< the segment or daemon speaks another version */
    SHMBUS_E_NO_MEMORY = 7,         /**< memory could not be reserved */
    SHMBUS_E_LIMIT_REACHED = 8,     /**< a configured limit was hit */
    SHMBUS_E_PERMISSION_DENIED = 9, /**< the caller may not do this */
    SHMBUS_E_NOT_FOUND = 10,        /**< no such channel, endpoint or daemon */
    SHMBUS_E_SYSTEM_ERROR = 11,     /**< a system call failed: shmbus_last_error_errno() */
    SHMBUS_E_CLOSED = 12,           /**< the endpoint or connection was closed */
    SHMBUS_E_LOST = 13,             /**< messages were overwritten before they were read */
    SHMBUS_E_ALREADY_EXISTS = 14,   /**< a channel or endpoint of that name exists */
    SHMBUS_E_PROTOCOL_ERROR = 15    /**< a peer sent a malformed or unexpected message */
} shmbus_errc;

/** The message of the last call on this thread that failed, as
 *  "not_found: no channel 'x' ..." (code name, then what went wrong). "" if no call on this
 *  thread has failed yet. Valid until the next failing call on this thread. Thread-safe. */
SHMBUS_C_EXPORT const char* shmbus_last_error_message(void) SHMBUS_C_NOEXCEPT;
/** The code of the last failing call on this thread (SHMBUS_OK if none). Thread-safe. */
SHMBUS_C_EXPORT int shmbus_last_error_code(void) SHMBUS_C_NOEXCEPT;
/** The errno of the last failing call on this thread where a system call failed, else 0.
 *  Thread-safe. */
SHMBUS_C_EXPORT int shmbus_last_error_errno(void) SHMBUS_C_NOEXCEPT;
/** A short, stable name for `code` ("would_block", "lost", ...; "ok" for 0, "unknown"
 *  for a value that is no code). Static storage. Thread-safe. */
SHMBUS_C_EXPORT const char* shmbus_errc_name(int code) SHMBUS_C_NOEXCEPT;
/** The library's version, "MAJOR.MINOR.PATCH". Static storage. Thread-safe. */
SHMBUS_C_EXPORT const char* shmbus_version(void) SHMBUS_C_NOEXCEPT;

/* ---- Enumerations ----------------------------------------------------------------------- */

/** How an endpoint waits in its blocking calls (shmbus::WaitMode). */
typedef enum shmbus_wait_mode {
    SHMBUS_WAIT_SPIN = 0,     /**< busy-poll: lowest latency, one core busy while waiting */
    SHMBUS_WAIT_ADAPTIVE = 1, /**< spin briefly, then yield, then sleep on a futex */
    SHMBUS_WAIT_BLOCKING = 2  /**< sleep on the futex at once */
} shmbus_wait_mode;

/** How messages are delivered (shmbus::ChannelKind). */
typedef enum shmbus_channel_kind {
    SHMBUS_KIND_QUEUE = 1,      /**< each message is taken by exactly one consumer */
    SHMBUS_KIND_BROADCAST = 2,  /**< every subscriber sees every message */
    SHMBUS_KIND_BLACKBOARD = 4, /**< shared state: an array of fixed-size elements */
    SHMBUS_KIND_COUNTERS = 5,   /**< named 64-bit atomic cells */
    SHMBUS_KIND_RPC = 6,        /**< request/response: servers and callers */
    SHMBUS_KIND_POOL = 7        /**< blocks for large payloads, passed on by handle */
} shmbus_channel_kind;

/** What a broadcast writer does when a subscriber is a ring behind (shmbus::Overflow). */
typedef enum shmbus_overflow {
    SHMBUS_OVERFLOW_BLOCK = 0, /**< wait for the slowest subscriber: lossless */
    SHMBUS_OVERFLOW_DROP = 1   /**< overwrite; the subscriber learns how many it lost */
} shmbus_overflow;

/** A timeout that never expires. */
#define SHMBUS_WAIT_FOREVER ((int64_t)-1)
/** Longest channel name, in bytes (without the terminating NUL). */
#define SHMBUS_MAX_NAME_LENGTH 63

/* ---- Connection ------------------------------------------------------------------------- */

typedef struct shmbus_client shmbus_client;
typedef struct shmbus_publisher shmbus_publisher;
typedef struct shmbus_subscriber shmbus_subscriber;

/** Receives the library's rare log lines (waiting for the daemon, connection lost or
 *  restored): `line` is `length` bytes, not NUL-terminated, valid during the call. Called
 *  from the client's thread or the library's background thread, never under a lock, and
 *  never once the client and every endpoint it opened are closed (the last close waits for
 *  a call in progress). */
typedef void (*shmbus_log_fn)(void* user, const char* line, size_t length);

/** Options of shmbus_connect() (shmbus::ClientOptions). Fill with
 *  shmbus_client_options_init(), then change what you need. */
typedef struct shmbus_client_options {
    const char* socket_path;    /**< NULL or "": $SHMBUS_SOCKET, else the default socket */
    const char* client_name;    /**< shown in `shmbusctl clients`; NULL or "": program name */
    int64_t request_timeout_ms; /**< requests to the daemon, > 0 (default 5000) */
    /** How long to wait for a daemon that is not listening yet: 0 fails at once with
     *  SHMBUS_E_NOT_FOUND, negative waits for ever (default 0). */
    int64_t wait_for_daemon_ms;
    /** Non-zero: restore a lost connection from a background thread (default 1). */
    int reconnect_in_background;
    shmbus_log_fn log; /**< NULL: one line on stderr each, prefixed "shmbus: " */
    void* log_user;    /**< passed to `log` */
} shmbus_client_options;

/** Fills `options` with the defaults. Thread-safe. */
SHMBUS_C_EXPORT void shmbus_client_options_init(shmbus_client_options* options) SHMBUS_C_NOEXCEPT;

/** Connects to shmbusd and negotiates the protocol; `options` may be NULL (defaults). On
 *  success stores the new client in *client. Errors: SHMBUS_E_NOT_FOUND if no daemon listens
 *  on the socket (the message names the path), SHMBUS_E_VERSION_MISMATCH,
 *  SHMBUS_E_PERMISSION_DENIED, SHMBUS_E_INVALID_ARGUMENT for a NULL `client` or a
 *  request_timeout_ms that is not positive.
 *  Thread-safe. */
SHMBUS_C_EXPORT int shmbus_connect(const shmbus_client_options* options,
                                   shmbus_client** client) SHMBUS_C_NOEXCEPT;
/** Closes the connection and frees `client` (NULL: nothing). Endpoints it opened stay
 *  usable. Not concurrently with another call on `client`. */
SHMBUS_C_EXPORT void shmbus_client_close(shmbus_client* client) SHMBUS_C_NOEXCEPT;
/** The socket `client` is connected to. Valid until the client is closed. */
SHMBUS_C_EXPORT const char*
shmbus_client_socket_path(const shmbus_client* client) SHMBUS_C_NOEXCEPT;

/* ---- Endpoints -------------------------------------------------------------------------- */

/** Options of one endpoint (shmbus::EndpointOptions). Fill with
 *  shmbus_endpoint_options_init(). */
typedef struct shmbus_endpoint_options {
    uint32_t wait;            /**< a shmbus_wait_mode (default SHMBUS_WAIT_ADAPTIVE) */
    uint32_t spin_iterations; /**< spins before yielding (adaptive); 0 picks the default */
    int32_t endpoint_index;   /**< endpoint table entry to take; -1 (default): any free */
    uint32_t peer_events;     /**< non-zero: report peer events (default 0) */
} shmbus_endpoint_options;

/** Fills `options` with the defaults. Thread-safe. */
SHMBUS_C_EXPORT void
shmbus_endpoint_options_init(shmbus_endpoint_options* options) SHMBUS_C_NOEXCEPT;

/** Opens `channel` (NUL-terminated) for writing; `options` may be NULL. Errors:
 *  SHMBUS_E_NOT_FOUND (no such channel), SHMBUS_E_PERMISSION_DENIED, SHMBUS_E_LIMIT_REACHED
 *  (max_publishers attached), SHMBUS_E_INVALID_ARGUMENT (NULL argument, unknown wait mode).
 *  One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_open_publisher(shmbus_client* client, const char* channel,
                                          const shmbus_endpoint_options* options,
                                          shmbus_publisher** publisher) SHMBUS_C_NOEXCEPT;
/** Opens `channel` for reading (a consumer, on a queue). Errors as shmbus_open_publisher().
 *  On a broadcast channel the subscriber starts at the next message published. */
SHMBUS_C_EXPORT int shmbus_open_subscriber(shmbus_client* client, const char* channel,
                                           const shmbus_endpoint_options* options,
                                           shmbus_subscriber** subscriber) SHMBUS_C_NOEXCEPT;
/** Leaves the channel and frees `publisher` (NULL: nothing). A reservation not committed is
 *  published as abandoned. */
SHMBUS_C_EXPORT void shmbus_publisher_close(shmbus_publisher* publisher) SHMBUS_C_NOEXCEPT;
/** Leaves the channel and frees `subscriber` (NULL: nothing). On a queue, messages received
 *  but not released are returned for another consumer. */
SHMBUS_C_EXPORT void shmbus_subscriber_close(shmbus_subscriber* subscriber) SHMBUS_C_NOEXCEPT;

/* ---- Writing ---------------------------------------------------------------------------- */

/** One reserved slot: `capacity` writable bytes at `data`; the message will carry
 *  `sequence`. */
typedef struct shmbus_slot {
    void* data;
    uint64_t capacity;
    uint64_t sequence;
} shmbus_slot;

/** Reserves up to `max_count` (>= 1) consecutive slots, at least one, waiting up to
 *  `timeout_ns` for room, and describes them in slots[0 .. *count). Fill them, then
 *  shmbus_publisher_commit() or shmbus_publisher_abandon(). Errors: SHMBUS_E_WOULD_BLOCK
 *  (timeout 0, ring full), SHMBUS_E_TIMED_OUT, SHMBUS_E_INVALID_ARGUMENT (max_count 0, NULL
 *  argument, a reservation outstanding), SHMBUS_E_CORRUPTED (damaged segment).
 *  One thread at a time per publisher. */
SHMBUS_C_EXPORT int shmbus_publisher_reserve(shmbus_publisher* publisher, shmbus_slot* slots,
                                             size_t max_count, int64_t timeout_ns,
                                             size_t* count) SHMBUS_C_NOEXCEPT;
/** Publishes the outstanding reservation: message i is lengths[i] bytes of slot i; `count`
 *  must be the number reserved. Wakes sleeping readers. Errors: SHMBUS_E_MESSAGE_TOO_LARGE
 *  (a length exceeds the capacity: nothing is published and the reservation stays, to
 *  commit again or abandon), SHMBUS_E_INVALID_ARGUMENT (no reservation, wrong count, NULL
 *  lengths; the reservation stays). */
SHMBUS_C_EXPORT int shmbus_publisher_commit(shmbus_publisher* publisher, const uint64_t* lengths,
                                            size_t count) SHMBUS_C_NOEXCEPT;
/** Gives the outstanding reservation back unpublished (readers skip the slots, counted as
 *  abandoned). Nothing if none is outstanding. */
SHMBUS_C_EXPORT void shmbus_publisher_abandon(shmbus_publisher* publisher) SHMBUS_C_NOEXCEPT;
/** Copies `size` bytes at `data` into a slot and publishes them, waiting up to
 *  `timeout_ns` for room. Errors: SHMBUS_E_MESSAGE_TOO_LARGE (naming both sizes),
 *  SHMBUS_E_WOULD_BLOCK, SHMBUS_E_TIMED_OUT, SHMBUS_E_INVALID_ARGUMENT (a reservation is
 *  outstanding, NULL data with a non-zero size). */
SHMBUS_C_EXPORT int shmbus_publisher_send(shmbus_publisher* publisher, const void* data,
                                          size_t size, int64_t timeout_ns) SHMBUS_C_NOEXCEPT;

/* ---- Reading ---------------------------------------------------------------------------- */

/** One message read in place: `length` bytes at `data`, numbered `sequence`. */
typedef struct shmbus_message {
    const void* data;
    uint64_t length;
    uint64_t sequence;
} shmbus_message;

/** Takes up to `max_count` (>= 1) consecutive messages, waiting up to `timeout_ns` for the
 *  first, and describes them in messages[0 .. *count). Read them in place, then
 *  shmbus_subscriber_release(). `lost_before` (may be NULL) receives how many messages this
 *  subscriber lost (overwritten, drop policy) just before this batch. Errors:
 *  SHMBUS_E_WOULD_BLOCK (timeout 0, nothing ready), SHMBUS_E_TIMED_OUT,
 *  SHMBUS_E_INVALID_ARGUMENT (max_count 0, NULL argument, a batch outstanding),
 *  SHMBUS_E_CORRUPTED (a message failed validation: it is skipped and counted; call again).
 *  One thread at a time per subscriber. */
SHMBUS_C_EXPORT int shmbus_subscriber_receive(shmbus_subscriber* subscriber,
                                              shmbus_message* messages, size_t max_count,
                                              int64_t timeout_ns, size_t* count,
                                              uint64_t* lost_before) SHMBUS_C_NOEXCEPT;
/** Frees the outstanding batch. SHMBUS_E_LOST (drop policy) if a publisher overwrote any of
 *  its messages while they were read: the data read must be discarded, and every message of
 *  the batch is counted as lost; `lost` (may be NULL) then receives how many (else 0). The
 *  batch is released either way. SHMBUS_E_INVALID_ARGUMENT if no batch is outstanding. */
SHMBUS_C_EXPORT int shmbus_subscriber_release(shmbus_subscriber* subscriber,
                                              uint64_t* lost) SHMBUS_C_NOEXCEPT;

/** What shmbus_subscriber_receive_copy() delivered. */
typedef struct shmbus_received {
    uint64_t size;        /**< bytes copied into the buffer */
    uint64_t sequence;    /**< the message's sequence number */
    uint64_t lost_before; /**< messages lost just before this one (drop policy) */
} shmbus_received;

/** Copies the next message into `buffer` (`capacity` bytes) and releases it, waiting up to
 *  `timeout_ns`. Never delivers a torn message. `received` (may be NULL) describes it.
 *  Errors: SHMBUS_E_MESSAGE_TOO_LARGE (buffer too small; the message stays),
 *  SHMBUS_E_WOULD_BLOCK, SHMBUS_E_TIMED_OUT, SHMBUS_E_INVALID_ARGUMENT (a batch outstanding,
 *  NULL buffer with a non-zero capacity). */
SHMBUS_C_EXPORT int shmbus_subscriber_receive_copy(shmbus_subscriber* subscriber, void* buffer,
                                                   size_t capacity, int64_t timeout_ns,
                                                   shmbus_received* received) SHMBUS_C_NOEXCEPT;
/** Messages this subscriber has lost in all (drop policy). */
SHMBUS_C_EXPORT uint64_t shmbus_subscriber_lost(const shmbus_subscriber* subscriber)
    SHMBUS_C_NOEXCEPT;

/* ---- Peer events and wait handles ------------------------------------------------------- */

/** What happened (shmbus::EventKind). The list grows: treat an unknown kind as ignorable. */
typedef enum shmbus_event_kind {
    SHMBUS_EVENT_ATTACHED = 1,    /**< a peer endpoint joined the channel */
    SHMBUS_EVENT_DETACHED = 2,    /**< a peer endpoint left the channel cleanly */
    SHMBUS_EVENT_DIED = 3,        /**< a peer's process ended without detaching; reclaimed */
    SHMBUS_EVENT_LAPPED = 4,      /**< broadcast drop: this subscriber lost `count` messages */
    SHMBUS_EVENT_EVENTS_LOST = 5, /**< `count` events were overwritten before they were read */
    SHMBUS_EVENT_SERVER_GONE = 6  /**< rpc callers: a server left or died (after its own event) */
} shmbus_event_kind;

/** The side of a channel a peer is on (shmbus::Role). */
typedef enum shmbus_role { SHMBUS_ROLE_PUBLISHER = 1, SHMBUS_ROLE_SUBSCRIBER = 2 } shmbus_role;

/** One peer event (shmbus::PeerEvent). */
typedef struct shmbus_event {
    uint32_t kind;           /**< a shmbus_event_kind */
    uint32_t role;           /**< attached/detached/died: the peer's shmbus_role */
    uint32_t endpoint_index; /**< attached/detached/died: the peer's table entry */
    uint32_t pid;            /**< attached/detached/died: its process, as the daemon saw it */
    uint64_t count;          /**< lapped: messages lost; events_lost: events missed */
    uint64_t sequence;       /**< the event's number on the channel (0 for local ones) */
} shmbus_event;

/** Reads up to `capacity` peer events into `events` and returns how many (0 when none waits,
 *  or when the endpoint was opened without `peer_events`; 0 for a NULL handle). No system
 *  call. Re-arms the wait handle when it returns fewer than `capacity`. */
SHMBUS_C_EXPORT size_t shmbus_publisher_events(shmbus_publisher* publisher, shmbus_event* events,
                                               size_t capacity) SHMBUS_C_NOEXCEPT;
/** As shmbus_publisher_events(), for a subscriber. */
SHMBUS_C_EXPORT size_t shmbus_subscriber_events(shmbus_subscriber* subscriber, shmbus_event* events,
                                                size_t capacity) SHMBUS_C_NOEXCEPT;

/** Stores in *fd a descriptor that becomes readable when the publisher has something to do:
 *  room after a reserve or send found the ring full, or peer events. It stays readable until
 *  a call finds nothing left to do (a reserve that would block, an events call that runs
 *  out). Owned by the publisher: do not close it. For epoll, poll, select, libuv's uv_poll.
 *  Errors: SHMBUS_E_INVALID_ARGUMENT (NULL argument), SHMBUS_E_SYSTEM_ERROR. */
SHMBUS_C_EXPORT int shmbus_publisher_wait_handle(shmbus_publisher* publisher,
                                                 int* fd) SHMBUS_C_NOEXCEPT;
/** As shmbus_publisher_wait_handle(), for a subscriber: readable when a message waits, or
 *  peer events; it stays readable until a receive would block and, with peer events, an
 *  events call runs out — so drain the subscriber on each wake-up. */
SHMBUS_C_EXPORT int shmbus_subscriber_wait_handle(shmbus_subscriber* subscriber,
                                                  int* fd) SHMBUS_C_NOEXCEPT;

/* ---- Channels --------------------------------------------------------------------------- */

/** A channel's identity and geometry (shmbus::ChannelInfo). */
typedef struct shmbus_channel_info {
    char name[SHMBUS_MAX_NAME_LENGTH + 1]; /**< NUL-terminated */
    uint32_t kind;                         /**< a shmbus_channel_kind */
    uint32_t overflow;                     /**< a shmbus_overflow */
    uint64_t slot_size;                    /**< largest message, bytes */
    uint64_t slot_count;                   /**< ring depth */
    uint32_t max_publishers;
    uint32_t max_subscribers;
    uint64_t creation_id;
} shmbus_channel_info;

/** A channel's counters (shmbus::ChannelStats). */
typedef struct shmbus_channel_stats {
    uint64_t published, consumed, dropped, abandoned, redelivered, corrupted;
    uint64_t data_waits, data_wakes, space_waits, space_wakes;
    uint64_t depth, high_water;
    uint32_t publishers, subscribers;
} shmbus_channel_stats;

/** One channel of the daemon's discovery table (shmbus::ChannelSummary). */
typedef struct shmbus_channel_summary {
    shmbus_channel_info info;
    shmbus_channel_stats stats;
    int dynamic; /**< non-zero: created at run time rather than by the configuration */
} shmbus_channel_summary;

/** The channel `publisher` writes to. Thread-safe with the publisher's data path. */
SHMBUS_C_EXPORT void shmbus_publisher_info(const shmbus_publisher* publisher,
                                           shmbus_channel_info* info) SHMBUS_C_NOEXCEPT;
/** The channel `subscriber` reads from. */
SHMBUS_C_EXPORT void shmbus_subscriber_info(const shmbus_subscriber* subscriber,
                                            shmbus_channel_info* info) SHMBUS_C_NOEXCEPT;

/** Lists the daemon's channels: stores their number in *count and the first
 *  min(*count, capacity) of them in summaries[] (`summaries` may be NULL with capacity 0, to
 *  learn the number). Errors: SHMBUS_E_CLOSED / SHMBUS_E_NOT_FOUND when the daemon cannot be
 *  reached, SHMBUS_E_INVALID_ARGUMENT (NULL count). One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_client_list_channels(shmbus_client* client,
                                                shmbus_channel_summary* summaries, size_t capacity,
                                                size_t* count) SHMBUS_C_NOEXCEPT;
/** Describes one channel. Errors: SHMBUS_E_NOT_FOUND (no such channel), as
 *  shmbus_client_list_channels() otherwise. */
SHMBUS_C_EXPORT int shmbus_client_channel_info(shmbus_client* client, const char* channel,
                                               shmbus_channel_summary* summary) SHMBUS_C_NOEXCEPT;

/* ==== rpc channels: request/response (shmbus/rpc.hpp, docs/rpc.md) ======================== *
 *
 * A server takes requests in place and answers each; a caller sends requests and collects
 * each reply, matched by the call's correlation id. Replies are copied into the caller's
 * buffer (no allocation); a server may write its reply in place (reserve/commit). Peer
 * events and wait handles work as for publishers and subscribers; a caller gets
 * SHMBUS_EVENT_SERVER_GONE after each server's detached or died. */

typedef struct shmbus_server shmbus_server;
typedef struct shmbus_caller shmbus_caller;

/** One request taken by shmbus_server_receive(), read in place: `size` bytes at `data`,
 *  valid until the server answers it (or is closed). Pass it back, unchanged, to answer. */
typedef struct shmbus_request {
    const void* data;
    uint64_t size;
    uint64_t id;     /**< the call's correlation id (unique per caller) */
    uint32_t caller; /**< the caller's entry in the channel's caller table */
    uint32_t slot;   /**< the call slot of that caller */
} shmbus_request;

/** A call in flight, as shmbus_caller_send() returned it. */
typedef struct shmbus_ticket {
    uint64_t id;       /**< the call's correlation id */
    uint32_t slot;     /**< its call slot */
    uint32_t reserved; /**< 0 */
} shmbus_ticket;

/** Opens the rpc channel `channel` as a server (ACL `serve`); `options` may be NULL.
 *  Errors as shmbus_open_publisher(), SHMBUS_E_LIMIT_REACHED beyond max_servers,
 *  SHMBUS_E_INVALID_ARGUMENT if it is not an rpc channel. One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_open_server(shmbus_client* client, const char* channel,
                                       const shmbus_endpoint_options* options,
                                       shmbus_server** server) SHMBUS_C_NOEXCEPT;
/** Opens the rpc channel `channel` as a caller (ACL `call`). `wait_for_server` non-zero: a
 *  call made while no server is attached waits for one (up to its timeout) instead of failing
 *  at once with SHMBUS_E_NOT_FOUND. Errors as shmbus_open_server(), with max_callers. */
SHMBUS_C_EXPORT int shmbus_open_caller(shmbus_client* client, const char* channel,
                                       const shmbus_endpoint_options* options, int wait_for_server,
                                       shmbus_caller** caller) SHMBUS_C_NOEXCEPT;
/** Leaves the channel and frees `server` (NULL: nothing). Every call taken and not answered
 *  fails at its caller with SHMBUS_E_CLOSED. */
SHMBUS_C_EXPORT void shmbus_server_close(shmbus_server* server) SHMBUS_C_NOEXCEPT;
/** Leaves the channel and frees `caller` (NULL: nothing). Calls in flight are given up. */
SHMBUS_C_EXPORT void shmbus_caller_close(shmbus_caller* caller) SHMBUS_C_NOEXCEPT;

/** Takes up to `capacity` (>= 1) requests, from every caller in turn, waiting up to
 *  `timeout_ns` for the first, and describes them in requests[0 .. *count). Errors:
 *  SHMBUS_E_WOULD_BLOCK (timeout 0, none waiting), SHMBUS_E_TIMED_OUT,
 *  SHMBUS_E_INVALID_ARGUMENT (capacity 0, NULL argument), SHMBUS_E_CORRUPTED (a request
 *  failed validation: it was failed back to its caller; call again). One thread at a time
 *  per server. */
SHMBUS_C_EXPORT int shmbus_server_receive(shmbus_server* server, shmbus_request* requests,
                                          size_t capacity, int64_t timeout_ns,
                                          size_t* count) SHMBUS_C_NOEXCEPT;
/** Copies `size` bytes of `reply` into the call's reply slot and hands it to its caller.
 *  Errors: SHMBUS_E_MESSAGE_TOO_LARGE (naming both sizes; the call stays taken),
 *  SHMBUS_E_LOST (the caller gave up meanwhile: the reply is dropped and counted),
 *  SHMBUS_E_INVALID_ARGUMENT (a request this server does not hold, NULL argument). */
SHMBUS_C_EXPORT int shmbus_server_respond(shmbus_server* server, const shmbus_request* request,
                                          const void* reply, size_t size) SHMBUS_C_NOEXCEPT;
/** The call's reply slot, to write the reply in place: *data and *capacity (bytes). Then
 *  shmbus_server_commit_reply(). SHMBUS_E_INVALID_ARGUMENT for a request this server does
 *  not hold. */
SHMBUS_C_EXPORT int shmbus_server_reserve_reply(shmbus_server* server,
                                                const shmbus_request* request, void** data,
                                                uint64_t* capacity) SHMBUS_C_NOEXCEPT;
/** Hands the `length` bytes written into the reply slot to the caller. Errors as
 *  shmbus_server_respond(). */
SHMBUS_C_EXPORT int shmbus_server_commit_reply(shmbus_server* server, const shmbus_request* request,
                                               uint64_t length) SHMBUS_C_NOEXCEPT;

/** Sends `size` bytes of `request` and waits up to `timeout_ns` for the reply, copied into
 *  `reply` (`capacity` bytes); *reply_size (may be NULL) receives its length. Errors:
 *  SHMBUS_E_NOT_FOUND (no server attached, or the last left before taking the call),
 *  SHMBUS_E_CLOSED (the server that took the call died), SHMBUS_E_TIMED_OUT (the call is
 *  given up), SHMBUS_E_MESSAGE_TOO_LARGE (request beyond the channel's request size, or a
 *  reply larger than `capacity`: that reply is lost), SHMBUS_E_WOULD_BLOCK (depth calls in
 *  flight), SHMBUS_E_INVALID_ARGUMENT (NULL with a size). One thread at a time per caller. */
SHMBUS_C_EXPORT int shmbus_caller_call(shmbus_caller* caller, const void* request, size_t size,
                                       void* reply, size_t capacity, int64_t timeout_ns,
                                       size_t* reply_size) SHMBUS_C_NOEXCEPT;
/** Sends a request without waiting; collect the reply with shmbus_caller_poll() or
 *  shmbus_caller_receive_reply(). Errors as shmbus_caller_call(), without timed out. */
SHMBUS_C_EXPORT int shmbus_caller_send(shmbus_caller* caller, const void* request, size_t size,
                                       shmbus_ticket* ticket) SHMBUS_C_NOEXCEPT;
/** The reply to `ticket` if it has come, copied as by shmbus_caller_call(), or the call's
 *  failure; SHMBUS_E_WOULD_BLOCK while it is pending. Once a reply or failure is returned
 *  the ticket is spent (SHMBUS_E_INVALID_ARGUMENT after). Re-arms the wait handle. */
SHMBUS_C_EXPORT int shmbus_caller_poll(shmbus_caller* caller, const shmbus_ticket* ticket,
                                       void* reply, size_t capacity,
                                       size_t* reply_size) SHMBUS_C_NOEXCEPT;
/** As shmbus_caller_poll(), waiting up to `timeout_ns`; on SHMBUS_E_TIMED_OUT the call is
 *  given up. */
SHMBUS_C_EXPORT int shmbus_caller_receive_reply(shmbus_caller* caller, const shmbus_ticket* ticket,
                                                void* reply, size_t capacity, int64_t timeout_ns,
                                                size_t* reply_size) SHMBUS_C_NOEXCEPT;
/** Gives a call up: withdrawn if no server took it yet, its reply dropped when it comes.
 *  SHMBUS_E_INVALID_ARGUMENT for a ticket not in flight. */
SHMBUS_C_EXPORT int shmbus_caller_cancel(shmbus_caller* caller,
                                         const shmbus_ticket* ticket) SHMBUS_C_NOEXCEPT;
/** Calls of this caller sent and not yet collected or given up (0 for NULL). */
SHMBUS_C_EXPORT size_t shmbus_caller_in_flight(const shmbus_caller* caller) SHMBUS_C_NOEXCEPT;
/** The largest reply a call on this caller's channel can get (its reply_size), the buffer
 *  size that never fails with SHMBUS_E_MESSAGE_TOO_LARGE (0 for NULL). */
SHMBUS_C_EXPORT uint64_t shmbus_caller_reply_size(const shmbus_caller* caller) SHMBUS_C_NOEXCEPT;

/** As shmbus_publisher_events(), for a server: callers and other servers attached, detached,
 *  died. */
SHMBUS_C_EXPORT size_t shmbus_server_events(shmbus_server* server, shmbus_event* events,
                                            size_t capacity) SHMBUS_C_NOEXCEPT;
/** As shmbus_publisher_events(), for a caller: servers (SHMBUS_ROLE_SUBSCRIBER) and other
 *  callers attached, detached, died, and SHMBUS_EVENT_SERVER_GONE after each server that
 *  went. */
SHMBUS_C_EXPORT size_t shmbus_caller_events(shmbus_caller* caller, shmbus_event* events,
                                            size_t capacity) SHMBUS_C_NOEXCEPT;
/** A descriptor that becomes readable while a request waits, or peer events; re-armed by a
 *  receive that finds nothing and by an events call that runs out. Owned by the server.
 *  Errors: SHMBUS_E_INVALID_ARGUMENT (NULL argument), SHMBUS_E_SYSTEM_ERROR. */
SHMBUS_C_EXPORT int shmbus_server_wait_handle(shmbus_server* server, int* fd) SHMBUS_C_NOEXCEPT;
/** A descriptor that becomes readable while the outcome of a call in flight waits to be
 *  collected, a call can no longer be taken (no server left), or peer events; every poll
 *  re-arms it, and so does an events call that runs out. Owned by the caller. Errors as
 *  shmbus_server_wait_handle(). */
SHMBUS_C_EXPORT int shmbus_caller_wait_handle(shmbus_caller* caller, int* fd) SHMBUS_C_NOEXCEPT;
/** The channel `server` serves (nothing for NULL arguments). On an rpc channel slot_size is
 *  the largest request, slot_count the depth, max_publishers the callers and
 *  max_subscribers the servers. */
SHMBUS_C_EXPORT void shmbus_server_info(const shmbus_server* server,
                                        shmbus_channel_info* info) SHMBUS_C_NOEXCEPT;
/** The channel `caller` calls, as shmbus_server_info(). */
SHMBUS_C_EXPORT void shmbus_caller_info(const shmbus_caller* caller,
                                        shmbus_channel_info* info) SHMBUS_C_NOEXCEPT;

/* ==== end of rpc channels ================================================================= */

/* ---- Administration --------------------------------------------------------------------- */

/** A dynamic channel as a client asks for it (shmbus::ChannelRequest). Fill with
 *  shmbus_channel_request_init(), which leaves every field out, then set what you need: what
 *  is left out takes the daemon's `dynamic_channels.defaults`. */
typedef struct shmbus_channel_request {
    const char* name;         /**< 1..63 bytes of [A-Za-z0-9_.:/-], NUL-terminated */
    uint32_t kind;            /**< a shmbus_channel_kind; 0: left out */
    int32_t overflow;         /**< a shmbus_overflow; -1: left out */
    uint64_t slot_size;       /**< bytes; 0: left out */
    uint64_t slot_count;      /**< 0: left out */
    uint32_t max_publishers;  /**< 0: left out */
    uint32_t max_subscribers; /**< 0: left out */
} shmbus_channel_request;

/** Fills `request` with no name and every field left out. Thread-safe. */
SHMBUS_C_EXPORT void shmbus_channel_request_init(shmbus_channel_request* request) SHMBUS_C_NOEXCEPT;

/** Creates a dynamic channel, where the daemon's configuration allows it. Errors:
 *  SHMBUS_E_PERMISSION_DENIED (this user may not create), SHMBUS_E_LIMIT_REACHED (naming the
 *  limit: sizes, per-client count, total memory), SHMBUS_E_ALREADY_EXISTS,
 *  SHMBUS_E_INVALID_ARGUMENT (naming the field: NULL argument or name, a kind or overflow
 *  that is none of the enumeration's values, a value the daemon refuses). One thread at a
 *  time per client. */
SHMBUS_C_EXPORT int
shmbus_client_create_channel(shmbus_client* client,
                             const shmbus_channel_request* request) SHMBUS_C_NOEXCEPT;

/** One connected client of the daemon (shmbus::ClientSummary). */
typedef struct shmbus_client_summary {
    uint64_t client_id;
    uint32_t pid; /**< 0 where the daemon does not show it to this user */
    uint32_t uid;
    uint32_t gid;
    uint32_t endpoints;         /**< channel endpoints it holds */
    int64_t connected_since_ms; /**< Unix time, milliseconds */
    const char* name; /**< its client name ("" where not shown): see shmbus_client_list_clients() */
} shmbus_client_summary;

/** Lists the daemon's connected clients (a user who is not admin sees only its own): stores
 *  their number in *count and the first min(*count, capacity) of them in summaries[]
 *  (`summaries` may be NULL with capacity 0, to learn the number). The names they point to
 *  belong to `client` and stay valid until its next shmbus_client_list_clients() or its
 *  close. Errors as shmbus_client_list_channels(). One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_client_list_clients(shmbus_client* client,
                                               shmbus_client_summary* summaries, size_t capacity,
                                               size_t* count) SHMBUS_C_NOEXCEPT;

/** What the daemon says of itself (shmbus::DaemonStatus). Its strings belong to the client
 *  that asked: valid until its next shmbus_client_status() or its close. */
typedef struct shmbus_daemon_status {
    const char* daemon_version;
    uint32_t pid;
    uint64_t uptime_ms;
    const char* const* config_files; /**< config_file_count paths, in the order read */
    size_t config_file_count;
    const char* socket_path;
    const char* state_directory;
    uint32_t clients;
    uint32_t channels;
    uint64_t segment_bytes; /**< shared memory held by every channel */
    uint16_t protocol_major;
    uint16_t protocol_minor;
} shmbus_daemon_status;

/** Asks the daemon for its status and describes it in *status. Errors as
 *  shmbus_client_list_channels() (SHMBUS_E_INVALID_ARGUMENT for a NULL status). One thread at
 *  a time per client. */
SHMBUS_C_EXPORT int shmbus_client_status(shmbus_client* client,
                                         shmbus_daemon_status* status) SHMBUS_C_NOEXCEPT;

/** Asks the daemon to reload its configuration (admin only). On success *message (may be
 *  NULL) points to the daemon's sentence saying what changed, which belongs to `client`
 *  and stays valid until its next shmbus_client_reload() or its close. Errors:
 *  SHMBUS_E_PERMISSION_DENIED (not an admin), SHMBUS_E_INVALID_ARGUMENT (a configuration
 *  with errors, refused whole, every error in the message). One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_client_reload(shmbus_client* client,
                                         const char** message) SHMBUS_C_NOEXCEPT;

/** A round trip to the daemon; *round_trip_ns (may be NULL) receives how long it took.
 *  Errors as shmbus_client_list_channels(). One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_client_ping(shmbus_client* client,
                                       int64_t* round_trip_ns) SHMBUS_C_NOEXCEPT;

/* ==== Shared state: blackboard and counters channels ===================================
 *
 * The C form of shmbus/blackboard.hpp and shmbus/counters.hpp (kinds SHMBUS_KIND_BLACKBOARD
 * and SHMBUS_KIND_COUNTERS), implemented in c_api_state.cpp. Opened as a writer
 * (SHMBUS_ROLE_PUBLISHER: the channel's `publish` ACL) or a reader (SHMBUS_ROLE_SUBSCRIBER:
 * `subscribe` ACL, a read-only mapping). Functions added in node SHMBUS_0.1. */

typedef struct shmbus_blackboard shmbus_blackboard;
typedef struct shmbus_counters shmbus_counters;

/** Opens blackboard `channel` as a writer or a reader (`role`, a shmbus_role); `options` may
 *  be NULL. Errors as shmbus_open_publisher(); SHMBUS_E_INVALID_ARGUMENT if the channel is
 *  not a blackboard or `role` is no shmbus_role. One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_open_blackboard(shmbus_client* client, const char* channel,
                                           uint32_t role, const shmbus_endpoint_options* options,
                                           shmbus_blackboard** blackboard) SHMBUS_C_NOEXCEPT;
/** Leaves the channel and frees `blackboard` (NULL: nothing). */
SHMBUS_C_EXPORT void shmbus_blackboard_close(shmbus_blackboard* blackboard) SHMBUS_C_NOEXCEPT;
/** Number of elements (0 for NULL). */
SHMBUS_C_EXPORT uint64_t shmbus_blackboard_size(const shmbus_blackboard* blackboard)
    SHMBUS_C_NOEXCEPT;
/** Bytes per element (0 for NULL). */
SHMBUS_C_EXPORT uint64_t shmbus_blackboard_element_size(const shmbus_blackboard* blackboard)
    SHMBUS_C_NOEXCEPT;
/** The channel (as shmbus_publisher_info()). */
SHMBUS_C_EXPORT void shmbus_blackboard_info(const shmbus_blackboard* blackboard,
                                            shmbus_channel_info* info) SHMBUS_C_NOEXCEPT;
/** Copies element `index` into `out` (`capacity` >= the element size; that many bytes are
 *  written), consistent: never a mix of two writes. `version` (may be NULL) receives how
 *  many writes the element has had (mod 2^32). Errors: SHMBUS_E_INVALID_ARGUMENT (index out
 *  of range, buffer too small, NULL argument), SHMBUS_E_WOULD_BLOCK (writers kept moving the
 *  element, or one holds it), SHMBUS_E_CORRUPTED naming the element (its writer died
 *  mid-update: torn until the next write). One thread at a time per blackboard. */
SHMBUS_C_EXPORT int shmbus_blackboard_read(const shmbus_blackboard* blackboard, uint64_t index,
                                           void* out, size_t capacity,
                                           uint64_t* version) SHMBUS_C_NOEXCEPT;
/** Copies `size` / element size consecutive elements from `first` into `out`, each
 *  consistent on its own; `size` must be a multiple of the element size. Errors as
 *  shmbus_blackboard_read(), naming the element. */
SHMBUS_C_EXPORT int shmbus_blackboard_read_range(const shmbus_blackboard* blackboard,
                                                 uint64_t first, void* out,
                                                 size_t size) SHMBUS_C_NOEXCEPT;
/** Replaces element `index` with `size` bytes at `data` (at most the element size; the rest
 *  becomes zeros). Errors: SHMBUS_E_PERMISSION_DENIED (a reader), SHMBUS_E_MESSAGE_TOO_LARGE
 *  (more bytes than an element, naming both sizes), SHMBUS_E_INVALID_ARGUMENT (index, NULL
 *  data with a size), SHMBUS_E_WOULD_BLOCK (another writer held the element for too long). */
SHMBUS_C_EXPORT int shmbus_blackboard_write(shmbus_blackboard* blackboard, uint64_t index,
                                            const void* data, size_t size) SHMBUS_C_NOEXCEPT;
/** Writes `size` / element size consecutive elements from `first`, element by element;
 *  `size` must be a multiple of the element size. Errors as shmbus_blackboard_write(). */
SHMBUS_C_EXPORT int shmbus_blackboard_write_range(shmbus_blackboard* blackboard, uint64_t first,
                                                  const void* data, size_t size) SHMBUS_C_NOEXCEPT;
/** Changes an element's `size` bytes at `element` in place; called under the element's
 *  writer lock, so it must be short and must not call back into the blackboard. */
typedef void (*shmbus_blackboard_edit_fn)(void* user, void* element, size_t size);
/** Read-modify-write of element `index`: `edit` gets a copy of its current bytes to change,
 *  which are then published as one write. Errors as shmbus_blackboard_write(). */
SHMBUS_C_EXPORT int shmbus_blackboard_update(shmbus_blackboard* blackboard, uint64_t index,
                                             shmbus_blackboard_edit_fn edit,
                                             void* user) SHMBUS_C_NOEXCEPT;

/** Longest counter name, in bytes ([A-Za-z0-9_.:/-], like channel names). */
#define SHMBUS_MAX_COUNTER_NAME_LENGTH 47

/** One cell of a counters channel (shmbus::Counter): a small value to keep and pass by
 *  pointer, valid while the shmbus_counters that filled it is open. Its fields are the
 *  library's: do not change them. */
typedef struct shmbus_counter {
    uint64_t* cell;    /**< the cell's word in shared memory */
    uint64_t index;    /**< the cell's position in the channel, stable for its life */
    uint32_t writable; /**< non-zero when opened by a writer */
    uint32_t reserved; /**< 0 */
} shmbus_counter;

/** A cell's name and value, as listed (shmbus::CounterValue). */
typedef struct shmbus_counter_value {
    char name[SHMBUS_MAX_COUNTER_NAME_LENGTH + 1]; /**< NUL-terminated */
    uint64_t value;
    uint64_t index;
} shmbus_counter_value;

/** Opens counters `channel` as a writer or a reader, as shmbus_open_blackboard(). */
SHMBUS_C_EXPORT int shmbus_open_counters(shmbus_client* client, const char* channel, uint32_t role,
                                         const shmbus_endpoint_options* options,
                                         shmbus_counters** counters) SHMBUS_C_NOEXCEPT;
/** Leaves the channel and frees `counters` (NULL: nothing); its cells' shmbus_counter
 *  values become unusable. */
SHMBUS_C_EXPORT void shmbus_counters_close(shmbus_counters* counters) SHMBUS_C_NOEXCEPT;
/** How many cells the channel can hold (0 for NULL). */
SHMBUS_C_EXPORT uint64_t shmbus_counters_capacity(const shmbus_counters* counters)
    SHMBUS_C_NOEXCEPT;
/** The channel (as shmbus_publisher_info()). */
SHMBUS_C_EXPORT void shmbus_counters_info(const shmbus_counters* counters,
                                          shmbus_channel_info* info) SHMBUS_C_NOEXCEPT;
/** Describes the cell called `name` (NUL-terminated) in *counter; a writer creates it (value
 *  0) if it does not exist yet. Errors: SHMBUS_E_INVALID_ARGUMENT (a bad name, NULL
 *  argument), SHMBUS_E_NOT_FOUND (a reader, no such cell), SHMBUS_E_LIMIT_REACHED (every
 *  cell taken), SHMBUS_E_WOULD_BLOCK (another writer creating a cell did not finish),
 *  SHMBUS_E_CORRUPTED naming a damaged cell. One thread at a time per counters. */
SHMBUS_C_EXPORT int shmbus_counters_cell(shmbus_counters* counters, const char* name,
                                         shmbus_counter* counter) SHMBUS_C_NOEXCEPT;
/** Lists the cells that exist, in creation order: stores their number in *count and the
 *  first min(*count, capacity) in values[] (`values` may be NULL with capacity 0). Errors:
 *  SHMBUS_E_CORRUPTED naming a damaged cell, SHMBUS_E_INVALID_ARGUMENT (NULL argument). */
SHMBUS_C_EXPORT int shmbus_counters_list(const shmbus_counters* counters,
                                         shmbus_counter_value* values, size_t capacity,
                                         size_t* count) SHMBUS_C_NOEXCEPT;

/* The operations on a cell: lock-free, no system call, never waiting for another process;
 * any thread, while the shmbus_counters lives. load is an acquire, store a release, the
 * read-modify-writes acq_rel; values are unsigned and wrap. The writes fail with
 * SHMBUS_E_PERMISSION_DENIED for a cell of a reader, SHMBUS_E_INVALID_ARGUMENT for a NULL or
 * empty counter. */

/** The cell's value (0 for a NULL or empty counter). */
SHMBUS_C_EXPORT uint64_t shmbus_counter_load(const shmbus_counter* counter) SHMBUS_C_NOEXCEPT;
/** Sets the value. */
SHMBUS_C_EXPORT int shmbus_counter_store(const shmbus_counter* counter,
                                         uint64_t value) SHMBUS_C_NOEXCEPT;
/** Adds `delta`; *before (may be NULL) receives the value before. */
SHMBUS_C_EXPORT int shmbus_counter_fetch_add(const shmbus_counter* counter, uint64_t delta,
                                             uint64_t* before) SHMBUS_C_NOEXCEPT;
/** Subtracts `delta`; *before (may be NULL) receives the value before. */
SHMBUS_C_EXPORT int shmbus_counter_fetch_sub(const shmbus_counter* counter, uint64_t delta,
                                             uint64_t* before) SHMBUS_C_NOEXCEPT;
/** Raises the value to `value` if it is below; *before (may be NULL) receives the value
 *  before. */
SHMBUS_C_EXPORT int shmbus_counter_fetch_max(const shmbus_counter* counter, uint64_t value,
                                             uint64_t* before) SHMBUS_C_NOEXCEPT;
/** Replaces the value with `desired` if it is *expected: *swapped (may be NULL) becomes 1.
 *  Otherwise *swapped becomes 0 and *expected receives the value found. */
SHMBUS_C_EXPORT int shmbus_counter_compare_exchange(const shmbus_counter* counter,
                                                    uint64_t* expected, uint64_t desired,
                                                    int* swapped) SHMBUS_C_NOEXCEPT;

/* ==== End of shared state ============================================================== */

/* ==== Pool channels: blocks for large payloads (shmbus/pool.hpp) ========================
 *
 * The C form of shmbus/pool.hpp (kind SHMBUS_KIND_POOL), implemented in c_api_pool.cpp. A
 * pool is shmbus_pool_size() blocks of shmbus_pool_block_size() bytes. A writer
 * (SHMBUS_ROLE_PUBLISHER: the channel's `publish` ACL) acquires a free block, fills it in
 * place and hands it on: the 16-byte shmbus_block_handle it gets back is plain bytes that
 * travel through any queue or broadcast channel, and the receiver adopts the handle to read
 * the same memory. A reader (SHMBUS_ROLE_SUBSCRIBER: `subscribe` ACL) maps the blocks
 * read-only: it adopts, reads, releases and hands on, but cannot acquire.
 *
 * A shmbus_block is one reference to a block held by this process. While any reference
 * lives (a shmbus_block, or one carried by a handle and not yet adopted or dropped) the
 * block stays out of the free list; when the last is given back it returns to the pool and
 * its generation moves on, so that a handle kept too long is refused with
 * SHMBUS_E_NOT_FOUND ("... is no longer generation N ..."), never read. One endpoint holds
 * at most one reference to a block at a time. A shmbus_block keeps its pool's endpoint
 * attached: the endpoint leaves the channel when the shmbus_pool is closed and the last of
 * its blocks is released.
 *
 * Thread-safety: a shmbus_pool may be used from any threads at once, and so may the blocks
 * it returned; one shmbus_block by one thread at a time. Functions added in node
 * SHMBUS_0.1. */

typedef struct shmbus_pool shmbus_pool;
typedef struct shmbus_block shmbus_block;

/** A reference to one block as it travels in a message (shmbus::BlockHandle): which pool
 *  (its creation id), which block, which generation of it. Copy it into any message. */
typedef struct shmbus_block_handle {
    uint64_t pool;       /**< the pool's creation id (shmbus_channel_info.creation_id) */
    uint32_t index;      /**< the block */
    uint32_t generation; /**< the block's generation when the handle was made */
} shmbus_block_handle;

/** Opens pool `channel` as a writer or a reader, as shmbus_open_blackboard();
 *  SHMBUS_E_INVALID_ARGUMENT if the channel is not a pool. One thread at a time per client. */
SHMBUS_C_EXPORT int shmbus_open_pool(shmbus_client* client, const char* channel, uint32_t role,
                                     const shmbus_endpoint_options* options,
                                     shmbus_pool** pool) SHMBUS_C_NOEXCEPT;
/** Frees `pool` (NULL: nothing). Its blocks stay usable until released; the endpoint leaves
 *  the channel with the last of them. */
SHMBUS_C_EXPORT void shmbus_pool_close(shmbus_pool* pool) SHMBUS_C_NOEXCEPT;
/** Number of blocks (0 for NULL). */
SHMBUS_C_EXPORT uint64_t shmbus_pool_size(const shmbus_pool* pool) SHMBUS_C_NOEXCEPT;
/** Bytes per block (0 for NULL). */
SHMBUS_C_EXPORT uint64_t shmbus_pool_block_size(const shmbus_pool* pool) SHMBUS_C_NOEXCEPT;
/** The channel (as shmbus_publisher_info()); slot_size is the block size, slot_count the
 *  number of blocks, creation_id what handles of this pool carry. */
SHMBUS_C_EXPORT void shmbus_pool_info(const shmbus_pool* pool,
                                      shmbus_channel_info* info) SHMBUS_C_NOEXCEPT;

/** Takes a free block (writers only), waiting up to `timeout_ns` for one to be given back,
 *  and stores it in *block. Its bytes are as the last holder left them. Errors:
 *  SHMBUS_E_PERMISSION_DENIED (a reader), SHMBUS_E_WOULD_BLOCK (timeout 0, every block in
 *  use), SHMBUS_E_TIMED_OUT, SHMBUS_E_CORRUPTED naming the block (a damaged free list),
 *  SHMBUS_E_INVALID_ARGUMENT (NULL argument). Lock-free when a block is free. */
SHMBUS_C_EXPORT int shmbus_pool_acquire(shmbus_pool* pool, int64_t timeout_ns,
                                        shmbus_block** block) SHMBUS_C_NOEXCEPT;
/** Gives up `block`'s reference and puts `copies` references (1..255: one per receiver) into
 *  the handle stored in *handle, in one step. On success `block` is freed (do not use it
 *  again); on failure it is left as it was. Errors: SHMBUS_E_INVALID_ARGUMENT (NULL argument,
 *  a block of another shmbus_pool, copies 0), SHMBUS_E_LIMIT_REACHED (more than 255
 *  references in transit), SHMBUS_E_CORRUPTED naming the block. */
SHMBUS_C_EXPORT int shmbus_pool_hand_on(shmbus_pool* pool, shmbus_block* block, uint32_t copies,
                                        shmbus_block_handle* handle) SHMBUS_C_NOEXCEPT;
/** As shmbus_pool_hand_on(), but keeps `block`'s own reference too. */
SHMBUS_C_EXPORT int shmbus_pool_share(shmbus_pool* pool, const shmbus_block* block, uint32_t copies,
                                      shmbus_block_handle* handle) SHMBUS_C_NOEXCEPT;
/** Takes one of the references `handle` carries and stores the block in *block: its bytes,
 *  read-only for a reader. Errors: SHMBUS_E_INVALID_ARGUMENT (a handle of another pool, a
 *  block beyond this one, NULL argument), SHMBUS_E_NOT_FOUND (the block's generation is no
 *  longer the handle's: it was given back and reused; or every reference the handle carried
 *  was taken already), SHMBUS_E_ALREADY_EXISTS (this endpoint holds the block already:
 *  drop the copy). */
SHMBUS_C_EXPORT int shmbus_pool_adopt(shmbus_pool* pool, const shmbus_block_handle* handle,
                                      shmbus_block** block) SHMBUS_C_NOEXCEPT;
/** Gives back one of the references `handle` carries without reading the block (the last
 *  one returns it to the pool). Errors as shmbus_pool_adopt(), without already_exists. */
SHMBUS_C_EXPORT int shmbus_pool_drop(shmbus_pool* pool,
                                     const shmbus_block_handle* handle) SHMBUS_C_NOEXCEPT;

/** The block's bytes, read-only (NULL for NULL). Valid until the block is released or
 *  handed on. */
SHMBUS_C_EXPORT const void* shmbus_block_data(const shmbus_block* block) SHMBUS_C_NOEXCEPT;
/** The block's bytes to write: NULL unless its pool was opened as a writer. */
SHMBUS_C_EXPORT void* shmbus_block_mutable_data(shmbus_block* block) SHMBUS_C_NOEXCEPT;
/** Bytes in the block (the pool's block size; 0 for NULL). */
SHMBUS_C_EXPORT uint64_t shmbus_block_size(const shmbus_block* block) SHMBUS_C_NOEXCEPT;
/** The block's handle, carrying no reference of its own (see shmbus_pool_hand_on()); all
 *  zeros for NULL. */
SHMBUS_C_EXPORT void shmbus_block_handle_of(const shmbus_block* block,
                                            shmbus_block_handle* handle) SHMBUS_C_NOEXCEPT;
/** Gives the reference back (the last one returns the block to the pool) and frees `block`,
 *  whatever the result (NULL: SHMBUS_E_INVALID_ARGUMENT). SHMBUS_E_CORRUPTED naming the
 *  block when its state no longer names this endpoint as a holder (someone scribbled on
 *  it). */
SHMBUS_C_EXPORT int shmbus_block_release(shmbus_block* block) SHMBUS_C_NOEXCEPT;

/* ==== end of pool channels ============================================================== */

#ifdef __cplusplus
} /* extern "C" */
#endif

#undef SHMBUS_C_NOEXCEPT

#endif /* SHMBUS_SHMBUS_H */
