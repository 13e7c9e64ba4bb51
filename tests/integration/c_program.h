/* What the C programs of the C ABI tests share (c_api_client.c, c_api_rpc_client.c,
 * c_api_pool_client.c): the CHECK that counts a failed check and says where, with the
 * library's last error, and the connection to the daemon. Each program defines PROGRAM_NAME
 * before including this. */
#ifndef SHMBUS_TESTS_C_PROGRAM_H
#define SHMBUS_TESTS_C_PROGRAM_H

#include <shmbus/shmbus.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const int64_t kWait = INT64_C(60000000000); /* 60 s: something that must happen */

static int failures = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", PROGRAM_NAME, __LINE__,  \
                    #cond, shmbus_last_error_message());                                           \
            ++failures;                                                                            \
        }                                                                                          \
    } while (0)

/* Connects to the daemon at `socket_path`, or exits 1 saying why. */
static shmbus_client* connect_to(const char* socket_path) {
    shmbus_client_options options;
    shmbus_client* client = NULL;
    shmbus_client_options_init(&options);
    options.socket_path = socket_path;
    options.client_name = PROGRAM_NAME;
    options.reconnect_in_background = 0;
    if (shmbus_connect(&options, &client) != SHMBUS_OK) {
        fprintf(stderr, "%s: connect: %s\n", PROGRAM_NAME, shmbus_last_error_message());
        exit(1);
    }
    return client;
}

#endif /* SHMBUS_TESTS_C_PROGRAM_H */
