/* A client of shmbusd written against the C ABI alone (shmbus/shmbus.h), compiled as C11.
 * test_c_api runs it against a real daemon:
 *
 *   c_api_client SOCKET selftest               errors with their messages, timeouts,
 *                                              zero-copy round trip, channel listing
 *   c_api_client SOCKET publish CHANNEL COUNT  publishes "c-0", "c-1", ... (in place and
 *                                              copied, alternately)
 *   c_api_client SOCKET subscribe CHANNEL COUNT
 *                                              receives "cpp-0", "cpp-1", ... in order
 *
 * Exit status 0 when every check held; otherwise 1, with what failed on stderr. */
#define PROGRAM_NAME "c_api_client"
#include "c_program.h"

#include <string.h>

static int selftest(shmbus_client* client, const char* socket_path) {
    shmbus_publisher* pub = NULL;
    shmbus_subscriber* sub = NULL;
    shmbus_client* other = NULL;
    shmbus_client_options options;
    shmbus_endpoint_options eo;
    shmbus_slot slots[4];
    shmbus_message msgs[4];
    shmbus_received received;
    shmbus_channel_info info;
    shmbus_channel_summary summaries[8];
    shmbus_channel_summary summary;
    uint64_t lengths[4];
    uint64_t lost = 99;
    uint64_t lost_before = 99;
    size_t count = 0;
    size_t i;
    char big[200];
    char small[2];

    CHECK(strlen(shmbus_version()) >= 5);
    CHECK(strcmp(shmbus_errc_name(SHMBUS_E_LOST), "lost") == 0);
    CHECK(strcmp(shmbus_errc_name(0), "ok") == 0);
    CHECK(strcmp(shmbus_errc_name(99), "unknown") == 0);
    CHECK(strcmp(shmbus_client_socket_path(client), socket_path) == 0);

    /* Errors name what was wrong. */
    CHECK(shmbus_open_publisher(client, "no-such-channel", NULL, &pub) == SHMBUS_E_NOT_FOUND);
    CHECK(pub == NULL);
    CHECK(shmbus_last_error_code() == SHMBUS_E_NOT_FOUND);
    CHECK(strstr(shmbus_last_error_message(), "no-such-channel") != NULL);
    shmbus_client_options_init(&options);
    options.socket_path = "/nonexistent/shmbusd.sock";
    options.reconnect_in_background = 0;
    CHECK(shmbus_connect(&options, &other) == SHMBUS_E_NOT_FOUND);
    CHECK(other == NULL);
    CHECK(strstr(shmbus_last_error_message(), "/nonexistent/shmbusd.sock") != NULL);
    shmbus_endpoint_options_init(&eo);
    eo.wait = 7;
    CHECK(shmbus_open_subscriber(client, "cq", &eo, &sub) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(strstr(shmbus_last_error_message(), "wait") != NULL);

    /* Both ends of the queue "cq" (128-byte slots), the reader sleeping on the futex. */
    CHECK(shmbus_open_publisher(client, "cq", NULL, &pub) == SHMBUS_OK);
    shmbus_endpoint_options_init(&eo);
    eo.wait = SHMBUS_WAIT_BLOCKING;
    CHECK(shmbus_open_subscriber(client, "cq", &eo, &sub) == SHMBUS_OK);
    if (pub == NULL || sub == NULL) {
        return 1;
    }
    shmbus_publisher_info(pub, &info);
    CHECK(strcmp(info.name, "cq") == 0);
    CHECK(info.kind == SHMBUS_KIND_QUEUE);
    CHECK(info.slot_size == 128);

    /* Nothing there: would_block at once, timed_out after a wait. */
    CHECK(shmbus_subscriber_receive(sub, msgs, 4, 0, &count, NULL) == SHMBUS_E_WOULD_BLOCK);
    CHECK(count == 0);
    CHECK(shmbus_subscriber_receive(sub, msgs, 4, 10000000, &count, NULL) == SHMBUS_E_TIMED_OUT);
    CHECK(strstr(shmbus_last_error_message(), "timed_out") == shmbus_last_error_message());
    CHECK(shmbus_subscriber_receive_copy(sub, big, sizeof big, 1000000, NULL) ==
          SHMBUS_E_TIMED_OUT);
    CHECK(shmbus_subscriber_release(sub, &lost) == SHMBUS_E_INVALID_ARGUMENT);

    /* Zero copy: fill reserved slots in place, read them in place. */
    CHECK(shmbus_publisher_reserve(pub, slots, 4, kWait, &count) == SHMBUS_OK);
    CHECK(count >= 1 && count <= 4);
    for (i = 0; i < count; ++i) {
        CHECK(slots[i].capacity == 128);
        lengths[i] = (uint64_t)sprintf((char*)slots[i].data, "in place %u", (unsigned)i);
    }
    /* A second reservation while one is outstanding is refused, the first one kept. */
    CHECK(shmbus_publisher_reserve(pub, slots, 1, 0, &i) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_commit(pub, lengths, count + 1) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_publisher_commit(pub, lengths, count) == SHMBUS_OK);
    CHECK(shmbus_publisher_commit(pub, lengths, count) == SHMBUS_E_INVALID_ARGUMENT);
    {
        const size_t sent = count;
        size_t got = 0;
        while (got < sent) {
            size_t n = 0;
            size_t k;
            if (shmbus_subscriber_receive(sub, msgs, 4, kWait, &n, &lost_before) != SHMBUS_OK) {
                CHECK(0);
                break;
            }
            CHECK(lost_before == 0);
            for (k = 0; k < n; ++k) {
                char want[32];
                sprintf(want, "in place %u", (unsigned)(got + k));
                CHECK(msgs[k].length == strlen(want));
                CHECK(memcmp(msgs[k].data, want, strlen(want)) == 0);
                CHECK(msgs[k].sequence == slots[got + k].sequence);
            }
            CHECK(shmbus_subscriber_release(sub, &lost) == SHMBUS_OK);
            CHECK(lost == 0);
            got += n;
        }
    }

    /* Too large: named with both sizes; a commit that fails keeps the reservation. */
    memset(big, 'x', sizeof big);
    CHECK(shmbus_publisher_send(pub, big, sizeof big, 0) == SHMBUS_E_MESSAGE_TOO_LARGE);
    CHECK(strstr(shmbus_last_error_message(), "200") != NULL);
    CHECK(strstr(shmbus_last_error_message(), "128") != NULL);
    CHECK(shmbus_publisher_reserve(pub, slots, 1, kWait, &count) == SHMBUS_OK);
    lengths[0] = 129;
    CHECK(shmbus_publisher_commit(pub, lengths, 1) == SHMBUS_E_MESSAGE_TOO_LARGE);
    shmbus_publisher_abandon(pub);
    CHECK(shmbus_publisher_commit(pub, lengths, 1) == SHMBUS_E_INVALID_ARGUMENT);

    /* Copying forms; a buffer too small keeps the message. */
    CHECK(shmbus_publisher_send(pub, "copied", 6, kWait) == SHMBUS_OK);
    CHECK(shmbus_subscriber_receive_copy(sub, small, sizeof small, kWait, &received) ==
          SHMBUS_E_MESSAGE_TOO_LARGE);
    memset(&received, 0, sizeof received);
    CHECK(shmbus_subscriber_receive_copy(sub, big, sizeof big, kWait, &received) == SHMBUS_OK);
    CHECK(received.size == 6 && memcmp(big, "copied", 6) == 0);
    CHECK(received.lost_before == 0);
    CHECK(shmbus_subscriber_lost(sub) == 0);

    /* The discovery table. */
    CHECK(shmbus_client_list_channels(client, NULL, 0, &count) == SHMBUS_OK);
    CHECK(count >= 3);
    CHECK(shmbus_client_list_channels(client, summaries, 8, &count) == SHMBUS_OK);
    {
        int seen = 0;
        for (i = 0; i < count && i < 8; ++i) {
            seen |= strcmp(summaries[i].info.name, "cq") == 0;
        }
        CHECK(seen);
    }
    CHECK(shmbus_client_channel_info(client, "cq", &summary) == SHMBUS_OK);
    CHECK(summary.info.slot_size == 128);
    CHECK(summary.stats.publishers == 1 && summary.stats.subscribers == 1);
    CHECK(summary.stats.published >= 2);
    CHECK(shmbus_client_channel_info(client, "nothing", &summary) == SHMBUS_E_NOT_FOUND);
    CHECK(strstr(shmbus_last_error_message(), "nothing") != NULL);

    shmbus_publisher_close(pub);
    shmbus_subscriber_close(sub);
    return failures == 0 ? 0 : 1;
}

static int publish(shmbus_client* client, const char* channel, uint64_t total) {
    shmbus_publisher* pub = NULL;
    uint64_t n;
    if (shmbus_open_publisher(client, channel, NULL, &pub) != SHMBUS_OK) {
        fprintf(stderr, "c_api_client: open_publisher: %s\n", shmbus_last_error_message());
        return 1;
    }
    for (n = 0; n < total; ++n) {
        char text[32];
        const int len = sprintf(text, "c-%" PRIu64, n);
        if (n % 2 == 0) {
            shmbus_slot slot;
            size_t count = 0;
            uint64_t length = (uint64_t)len;
            if (shmbus_publisher_reserve(pub, &slot, 1, kWait, &count) != SHMBUS_OK) {
                fprintf(stderr, "c_api_client: reserve %" PRIu64 ": %s\n", n,
                        shmbus_last_error_message());
                return 1;
            }
            memcpy(slot.data, text, (size_t)len);
            if (shmbus_publisher_commit(pub, &length, 1) != SHMBUS_OK) {
                fprintf(stderr, "c_api_client: commit: %s\n", shmbus_last_error_message());
                return 1;
            }
        } else if (shmbus_publisher_send(pub, text, (size_t)len, kWait) != SHMBUS_OK) {
            fprintf(stderr, "c_api_client: send %" PRIu64 ": %s\n", n, shmbus_last_error_message());
            return 1;
        }
    }
    shmbus_publisher_close(pub);
    return 0;
}

static int subscribe(shmbus_client* client, const char* channel, uint64_t total) {
    shmbus_subscriber* sub = NULL;
    uint64_t n = 0;
    if (shmbus_open_subscriber(client, channel, NULL, &sub) != SHMBUS_OK) {
        fprintf(stderr, "c_api_client: open_subscriber: %s\n", shmbus_last_error_message());
        return 1;
    }
    while (n < total) {
        char want[32];
        shmbus_message msgs[8];
        size_t count = 0;
        size_t k;
        uint64_t lost = 0;
        if (n % 3 == 0) {
            char buf[64];
            shmbus_received r;
            const int len = sprintf(want, "cpp-%" PRIu64, n);
            if (shmbus_subscriber_receive_copy(sub, buf, sizeof buf, kWait, &r) != SHMBUS_OK) {
                fprintf(stderr, "c_api_client: receive_copy %" PRIu64 ": %s\n", n,
                        shmbus_last_error_message());
                return 1;
            }
            CHECK(r.size == (uint64_t)len && memcmp(buf, want, (size_t)len) == 0);
            ++n;
            continue;
        }
        if (shmbus_subscriber_receive(sub, msgs, 8, kWait, &count, NULL) != SHMBUS_OK) {
            fprintf(stderr, "c_api_client: receive %" PRIu64 ": %s\n", n,
                    shmbus_last_error_message());
            return 1;
        }
        for (k = 0; k < count; ++k, ++n) {
            const int len = sprintf(want, "cpp-%" PRIu64, n);
            CHECK(msgs[k].length == (uint64_t)len && memcmp(msgs[k].data, want, (size_t)len) == 0);
        }
        CHECK(shmbus_subscriber_release(sub, &lost) == SHMBUS_OK);
    }
    CHECK(n == total);
    shmbus_subscriber_close(sub);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
    shmbus_client* client;
    int rc = 1;
    if (argc < 3) {
        fprintf(stderr, "usage: c_api_client SOCKET selftest|publish|subscribe [CHANNEL COUNT]\n");
        return 2;
    }
    client = connect_to(argv[1]);
    if (strcmp(argv[2], "selftest") == 0) {
        rc = selftest(client, argv[1]);
    } else if (argc == 5 && strcmp(argv[2], "publish") == 0) {
        rc = publish(client, argv[3], strtoull(argv[4], NULL, 10));
    } else if (argc == 5 && strcmp(argv[2], "subscribe") == 0) {
        rc = subscribe(client, argv[3], strtoull(argv[4], NULL, 10));
    } else {
        fprintf(stderr, "c_api_client: unknown mode '%s'\n", argv[2]);
        rc = 2;
    }
    shmbus_client_close(client);
    return rc;
}
