/* rpc channels through the C ABI alone (shmbus/shmbus.h), compiled as C11. test_c_api_rpc
 * runs it against a real daemon:
 *
 *   c_api_rpc_client SOCKET selftest CHANNEL OTHER
 *        errors with their messages, a call without a server, a zero-copy reply, a buffer
 *        too small, a reply to a cancelled call, wait handles, and the events a caller gets
 *        when a server comes and goes (server_gone). CHANNEL is an rpc channel nobody else
 *        uses, OTHER a channel of another kind.
 *   c_api_rpc_client SOCKET serve CHANNEL COUNT
 *        answers COUNT calls with "c:" + the request, written in place, then exits
 *   c_api_rpc_client SOCKET call CHANNEL COUNT
 *        calls "c-0", "c-1", ... and expects "cpp:c-0", ... back (a C++ server's answers),
 *        every other call sent first and collected with poll, woken by the wait handle
 *
 * Exit status 0 when every check held; otherwise 1, with what failed on stderr. */
#define _POSIX_C_SOURCE 200809L /* poll() under -std=c11 */

#define PROGRAM_NAME "c_api_rpc_client"
#include "c_program.h"

#include <poll.h>
#include <string.h>

static int contains(const char* text, const char* part) {
    return strstr(text, part) != NULL;
}

/* Whether `fd` becomes readable within 60 s. */
static int becomes_readable(int fd) {
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 60000) == 1;
}

/* Whether `fd` is readable right now. */
static int readable_now(int fd) {
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 0) == 1;
}

/* Reads the caller's events, waiting on its handle, until `want` have come. */
static size_t wait_events(shmbus_caller* caller, int fd, shmbus_event* out, size_t want) {
    size_t n = 0;
    while (n < want) {
        const size_t got = shmbus_caller_events(caller, out + n, want - n);
        n += got;
        if (got == 0 && !becomes_readable(fd)) {
            break;
        }
    }
    return n;
}

static int selftest(shmbus_client* client, const char* channel, const char* other) {
    shmbus_server* server = NULL;
    shmbus_caller* caller = NULL;
    shmbus_endpoint_options eo;
    shmbus_request requests[4];
    shmbus_ticket ticket;
    shmbus_ticket late;
    shmbus_channel_info info;
    shmbus_event events[4];
    char reply[64];
    char tiny[2];
    size_t count = 0;
    size_t size = 0;
    void* slot = NULL;
    uint64_t capacity = 0;
    int caller_fd = -1;
    int server_fd = -1;

    /* Arguments and kinds. */
    CHECK(shmbus_open_server(NULL, channel, NULL, &server) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(contains(shmbus_last_error_message(), "shmbus_open_server"));
    CHECK(shmbus_open_caller(client, other, NULL, 0, &caller) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(caller == NULL);
    CHECK(shmbus_open_caller(client, "no-such-rpc", NULL, 0, &caller) == SHMBUS_E_NOT_FOUND);

    /* A caller with events, before any server: its calls fail at once with not_found. */
    shmbus_endpoint_options_init(&eo);
    eo.peer_events = 1;
    CHECK(shmbus_open_caller(client, channel, &eo, 0, &caller) == SHMBUS_OK);
    if (caller == NULL) {
        return 1;
    }
    CHECK(shmbus_caller_wait_handle(caller, &caller_fd) == SHMBUS_OK);
    CHECK(caller_fd >= 0);
    CHECK(shmbus_caller_call(caller, "hi", 2, reply, sizeof reply, kWait, &size) ==
          SHMBUS_E_NOT_FOUND);
    CHECK(contains(shmbus_last_error_message(), "no server is attached"));
    shmbus_caller_info(caller, &info);
    CHECK(shmbus_caller_reply_size(caller) == 1024); /* the default reply_size */
    CHECK(info.kind == SHMBUS_KIND_RPC);
    CHECK(strcmp(info.name, channel) == 0);

    /* A server comes: the caller hears of it. */
    CHECK(shmbus_open_server(client, channel, NULL, &server) == SHMBUS_OK);
    if (server == NULL) {
        return 1;
    }
    CHECK(wait_events(caller, caller_fd, events, 1) == 1);
    CHECK(events[0].kind == SHMBUS_EVENT_ATTACHED);
    CHECK(events[0].role == SHMBUS_ROLE_SUBSCRIBER);
    CHECK(shmbus_server_wait_handle(server, &server_fd) == SHMBUS_OK);
    CHECK(!readable_now(server_fd));

    /* One call, answered in place. */
    CHECK(shmbus_caller_send(caller, "ping", 4, &ticket) == SHMBUS_OK);
    CHECK(shmbus_caller_in_flight(caller) == 1);
    CHECK(shmbus_caller_poll(caller, &ticket, reply, sizeof reply, &size) == SHMBUS_E_WOULD_BLOCK);
    CHECK(becomes_readable(server_fd));
    CHECK(shmbus_server_receive(server, requests, 4, kWait, &count) == SHMBUS_OK);
    CHECK(count == 1);
    CHECK(requests[0].size == 4 && memcmp(requests[0].data, "ping", 4) == 0);
    CHECK(requests[0].id == ticket.id);
    CHECK(shmbus_server_reserve_reply(server, &requests[0], &slot, &capacity) == SHMBUS_OK);
    CHECK(capacity >= 4);
    memcpy(slot, "pong", 4);
    CHECK(shmbus_server_commit_reply(server, &requests[0], 4) == SHMBUS_OK);
    CHECK(shmbus_server_receive(server, requests, 4, 0, &count) == SHMBUS_E_WOULD_BLOCK);
    CHECK(!readable_now(server_fd)); /* the receive that found nothing re-armed it */
    CHECK(becomes_readable(caller_fd));
    CHECK(shmbus_caller_poll(caller, &ticket, reply, sizeof reply, &size) == SHMBUS_OK);
    CHECK(size == 4 && memcmp(reply, "pong", 4) == 0);
    CHECK(shmbus_caller_poll(caller, &ticket, reply, sizeof reply, &size) ==
          SHMBUS_E_INVALID_ARGUMENT); /* spent */
    CHECK(shmbus_caller_in_flight(caller) == 0);

    /* A reply larger than the caller's buffer: named, and lost. */
    CHECK(shmbus_caller_send(caller, "big", 3, &ticket) == SHMBUS_OK);
    CHECK(shmbus_server_receive(server, requests, 4, kWait, &count) == SHMBUS_OK);
    CHECK(shmbus_server_respond(server, &requests[0], "a long reply", 12) == SHMBUS_OK);
    CHECK(shmbus_caller_receive_reply(caller, &ticket, tiny, sizeof tiny, kWait, &size) ==
          SHMBUS_E_MESSAGE_TOO_LARGE);
    CHECK(contains(shmbus_last_error_message(), "reply of 12 bytes, buffer of 2"));

    /* A reply to a call its caller gave up: dropped, and the server told so. */
    CHECK(shmbus_caller_send(caller, "slow", 4, &late) == SHMBUS_OK);
    CHECK(shmbus_server_receive(server, requests, 4, kWait, &count) == SHMBUS_OK);
    CHECK(shmbus_caller_cancel(caller, &late) == SHMBUS_OK);
    CHECK(shmbus_server_respond(server, &requests[0], "too late", 8) == SHMBUS_E_LOST);
    CHECK(shmbus_server_respond(server, &requests[0], "again", 5) == SHMBUS_E_INVALID_ARGUMENT);

    /* The copying call, and NULL arguments. */
    CHECK(shmbus_caller_send(caller, NULL, 1, &ticket) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_server_receive(server, NULL, 4, 0, &count) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_server_receive(server, requests, 0, 0, &count) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_caller_events(NULL, events, 4) == 0);

    /* The server goes: the caller hears detached, then server_gone. */
    shmbus_server_close(server);
    CHECK(wait_events(caller, caller_fd, events, 2) == 2);
    CHECK(events[0].kind == SHMBUS_EVENT_DETACHED);
    CHECK(events[1].kind == SHMBUS_EVENT_SERVER_GONE);
    CHECK(events[1].sequence == events[0].sequence);
    shmbus_caller_close(caller);
    shmbus_server_close(NULL);
    shmbus_caller_close(NULL);
    return failures == 0 ? 0 : 1;
}

static int serve(shmbus_client* client, const char* channel, unsigned long count) {
    shmbus_server* server = NULL;
    shmbus_request requests[8];
    unsigned long served = 0;
    if (shmbus_open_server(client, channel, NULL, &server) != SHMBUS_OK) {
        fprintf(stderr, "c_api_rpc_client: serve: %s\n", shmbus_last_error_message());
        return 1;
    }
    while (served < count) {
        size_t n = 0;
        size_t i;
        const int rc = shmbus_server_receive(server, requests, 8, kWait, &n);
        if (rc != SHMBUS_OK) {
            fprintf(stderr, "c_api_rpc_client: receive: %s\n", shmbus_last_error_message());
            break;
        }
        for (i = 0; i < n; ++i) {
            void* slot = NULL;
            uint64_t capacity = 0;
            CHECK(shmbus_server_reserve_reply(server, &requests[i], &slot, &capacity) == SHMBUS_OK);
            CHECK(requests[i].size + 2 <= capacity);
            if (slot == NULL || requests[i].size + 2 > capacity) {
                break;
            }
            memcpy(slot, "c:", 2);
            memcpy((char*)slot + 2, requests[i].data, (size_t)requests[i].size);
            CHECK(shmbus_server_commit_reply(server, &requests[i], requests[i].size + 2) ==
                  SHMBUS_OK);
            ++served;
        }
    }
    shmbus_server_close(server);
    return failures == 0 && served == count ? 0 : 1;
}

static int call(shmbus_client* client, const char* channel, unsigned long count) {
    shmbus_caller* caller = NULL;
    unsigned long i;
    int fd = -1;
    if (shmbus_open_caller(client, channel, NULL, 1, &caller) != SHMBUS_OK ||
        shmbus_caller_wait_handle(caller, &fd) != SHMBUS_OK) {
        fprintf(stderr, "c_api_rpc_client: call: %s\n", shmbus_last_error_message());
        return 1;
    }
    for (i = 0; i < count && failures == 0; ++i) {
        char request[32];
        char want[40];
        char reply[64];
        size_t size = 0;
        const int len = snprintf(request, sizeof request, "c-%lu", i);
        snprintf(want, sizeof want, "cpp:%s", request);
        if (i % 2 == 0) {
            CHECK(shmbus_caller_call(caller, request, (size_t)len, reply, sizeof reply, kWait,
                                     &size) == SHMBUS_OK);
        } else {
            shmbus_ticket ticket;
            int rc;
            CHECK(shmbus_caller_send(caller, request, (size_t)len, &ticket) == SHMBUS_OK);
            /* Poll, sleeping on the wait handle in between, as an event loop would. */
            while ((rc = shmbus_caller_poll(caller, &ticket, reply, sizeof reply, &size)) ==
                       SHMBUS_E_WOULD_BLOCK &&
                   becomes_readable(fd)) {
            }
            CHECK(rc == SHMBUS_OK);
        }
        CHECK(size == strlen(want) && memcmp(reply, want, size) == 0);
    }
    shmbus_caller_close(caller);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
    shmbus_client* client;
    int rc = 1;
    if (argc < 3) {
        fprintf(stderr, "usage: c_api_rpc_client SOCKET selftest|serve|call ...\n");
        return 2;
    }
    client = connect_to(argv[1]);
    if (strcmp(argv[2], "selftest") == 0 && argc == 5) {
        rc = selftest(client, argv[3], argv[4]);
    } else if (strcmp(argv[2], "serve") == 0 && argc == 5) {
        rc = serve(client, argv[3], strtoul(argv[4], NULL, 10));
    } else if (strcmp(argv[2], "call") == 0 && argc == 5) {
        rc = call(client, argv[3], strtoul(argv[4], NULL, 10));
    } else {
        fprintf(stderr, "c_api_rpc_client: unknown command or arguments\n");
        rc = 2;
    }
    shmbus_client_close(client);
    return rc;
}
