/* Pool channels through the C ABI alone (shmbus/shmbus.h, "Pool channels"), compiled as C11.
 * test_c_api_pool runs it against a real daemon whose channels are the pool `frames` (4
 * blocks of 4 KiB), the queue `handles` (16-byte slots: one shmbus_block_handle each) and the
 * queue `other`:
 *
 *   c_api_pool_client SOCKET selftest   roles, acquire until the pool is empty (would block,
 *                                       timed out), hand on, adopt, share, drop, a stale
 *                                       generation refused, handles of another pool, NULL
 *                                       arguments, a block outliving its pool handle
 *   c_api_pool_client SOCKET send N     acquires N blocks one after another (waiting for the
 *                                       reader to give them back), writes "c block I" into
 *                                       each and sends its handle through `handles`
 *   c_api_pool_client SOCKET receive N  adopts N handles from `handles` and expects
 *                                       "cpp block I" in each block
 *
 * Exit status 0 when every check held; otherwise 1, with what failed on stderr. */
#define PROGRAM_NAME "c_api_pool_client"
#include "c_program.h"

#include <string.h>

static int contains(const char* part) {
    return strstr(shmbus_last_error_message(), part) != NULL;
}

static shmbus_pool* open_pool(shmbus_client* client, uint32_t role) {
    shmbus_pool* pool = NULL;
    if (shmbus_open_pool(client, "frames", role, NULL, &pool) != SHMBUS_OK) {
        fprintf(stderr, "%s: open_pool: %s\n", PROGRAM_NAME, shmbus_last_error_message());
        exit(1);
    }
    return pool;
}

static void selftest_arguments(shmbus_client* client) {
    shmbus_pool* pool = NULL;
    shmbus_block* block = NULL;
    shmbus_block_handle handle;
    memset(&handle, 0, sizeof handle);

    CHECK(shmbus_open_pool(NULL, "frames", SHMBUS_ROLE_PUBLISHER, NULL, &pool) ==
          SHMBUS_E_INVALID_ARGUMENT);
    CHECK(contains("shmbus_open_pool"));
    CHECK(shmbus_open_pool(client, "frames", 3, NULL, &pool) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(contains("role 3"));
    CHECK(shmbus_open_pool(client, "other", SHMBUS_ROLE_PUBLISHER, NULL, &pool) ==
          SHMBUS_E_INVALID_ARGUMENT);
    CHECK(pool == NULL);
    CHECK(shmbus_open_pool(client, "nonesuch", SHMBUS_ROLE_SUBSCRIBER, NULL, &pool) ==
          SHMBUS_E_NOT_FOUND);

    CHECK(shmbus_pool_acquire(NULL, 0, &block) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_pool_hand_on(NULL, NULL, 1, &handle) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_pool_share(NULL, NULL, 1, &handle) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_pool_adopt(NULL, &handle, &block) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_pool_drop(NULL, &handle) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_block_release(NULL) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(contains("shmbus_block_release"));
    CHECK(shmbus_pool_size(NULL) == 0);
    CHECK(shmbus_pool_block_size(NULL) == 0);
    CHECK(shmbus_block_data(NULL) == NULL);
    CHECK(shmbus_block_mutable_data(NULL) == NULL);
    CHECK(shmbus_block_size(NULL) == 0);
    handle.index = 7;
    shmbus_block_handle_of(NULL, &handle);
    CHECK(handle.pool == 0 && handle.index == 0 && handle.generation == 0);
    shmbus_pool_close(NULL);
}

static void selftest_blocks(shmbus_client* client) {
    shmbus_pool* writer = open_pool(client, SHMBUS_ROLE_PUBLISHER);
    shmbus_pool* reader = open_pool(client, SHMBUS_ROLE_SUBSCRIBER);
    shmbus_channel_info info;
    shmbus_block* blocks[5] = {NULL, NULL, NULL, NULL, NULL};
    shmbus_block* block = NULL;
    shmbus_block* adopted = NULL;
    shmbus_block_handle handle;
    shmbus_block_handle other;
    shmbus_block_handle own;
    size_t i;

    shmbus_pool_info(writer, &info);
    CHECK(strcmp(info.name, "frames") == 0);
    CHECK(info.kind == SHMBUS_KIND_POOL);
    CHECK(shmbus_pool_size(writer) == 4);
    CHECK(shmbus_pool_block_size(writer) == 4096);

    /* A reader cannot acquire. */
    CHECK(shmbus_pool_acquire(reader, 0, &block) == SHMBUS_E_PERMISSION_DENIED);
    CHECK(block == NULL);
    CHECK(contains("open for reading"));

    /* A writer's block: writable bytes, a handle naming this pool. */
    CHECK(shmbus_pool_acquire(writer, 0, &block) == SHMBUS_OK);
    CHECK(shmbus_block_size(block) == 4096);
    CHECK(shmbus_block_mutable_data(block) != NULL);
    CHECK(shmbus_block_data(block) == shmbus_block_mutable_data(block));
    strcpy((char*)shmbus_block_mutable_data(block), "in a block");
    shmbus_block_handle_of(block, &own);
    CHECK(own.pool == info.creation_id);
    CHECK(own.index < 4);

    /* Handed on with 0 copies: refused, the block is still ours. */
    CHECK(shmbus_pool_hand_on(writer, block, 0, &handle) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(contains("0 copies"));
    CHECK(strcmp((const char*)shmbus_block_data(block), "in a block") == 0);
    /* A block of another endpoint of the same pool: refused too. */
    CHECK(shmbus_pool_hand_on(reader, block, 1, &handle) == SHMBUS_E_INVALID_ARGUMENT);

    /* Handed on: the block is freed, the handle carries its reference to the reader. */
    CHECK(shmbus_pool_hand_on(writer, block, 1, &handle) == SHMBUS_OK);
    CHECK(handle.pool == own.pool && handle.index == own.index &&
          handle.generation == own.generation);
    CHECK(shmbus_pool_adopt(reader, &handle, &adopted) == SHMBUS_OK);
    CHECK(strcmp((const char*)shmbus_block_data(adopted), "in a block") == 0);
    CHECK(shmbus_block_mutable_data(adopted) == NULL); /* mapped read-only */
    /* The only reference is taken: the handle has none left. */
    CHECK(shmbus_pool_drop(writer, &handle) == SHMBUS_E_NOT_FOUND);
    /* Released: the block goes back to the pool and its generation moves on... */
    CHECK(shmbus_block_release(adopted) == SHMBUS_OK);
    /* ...so the handle is stale, and refused rather than read. */
    block = NULL;
    CHECK(shmbus_pool_adopt(reader, &handle, &block) == SHMBUS_E_NOT_FOUND);
    CHECK(block == NULL);
    CHECK(contains("is no longer generation"));
    CHECK(contains("stale"));
    CHECK(shmbus_pool_drop(reader, &handle) == SHMBUS_E_NOT_FOUND);

    /* Handles that are not this pool's. */
    other = handle;
    other.pool += 1;
    CHECK(shmbus_pool_adopt(reader, &other, &block) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(contains("another pool"));
    other = handle;
    other.index = 4;
    CHECK(shmbus_pool_drop(reader, &other) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(contains("beyond"));

    /* Every block in use: would block at once, times out when waiting. */
    for (i = 0; i < 4; ++i) {
        CHECK(shmbus_pool_acquire(writer, 0, &blocks[i]) == SHMBUS_OK);
    }
    CHECK(shmbus_pool_acquire(writer, 0, &blocks[4]) == SHMBUS_E_WOULD_BLOCK);
    CHECK(contains("all 4 blocks are in use"));
    CHECK(shmbus_pool_acquire(writer, 10000000, &blocks[4]) == SHMBUS_E_TIMED_OUT);
    CHECK(blocks[4] == NULL);

    /* Shared: the writer keeps its reference, the reader adopts another. */
    CHECK(shmbus_pool_share(writer, blocks[0], 1, &handle) == SHMBUS_OK);
    CHECK(shmbus_pool_adopt(reader, &handle, &adopted) == SHMBUS_OK);
    CHECK(shmbus_block_data(adopted) != NULL);
    CHECK(shmbus_block_release(adopted) == SHMBUS_OK);
    /* Two copies, one adopted and one dropped unread. */
    CHECK(shmbus_pool_hand_on(writer, blocks[1], 2, &handle) == SHMBUS_OK);
    blocks[1] = NULL;
    CHECK(shmbus_pool_adopt(reader, &handle, &adopted) == SHMBUS_OK);
    CHECK(shmbus_pool_adopt(reader, &handle, &block) == SHMBUS_E_ALREADY_EXISTS);
    CHECK(shmbus_pool_drop(reader, &handle) == SHMBUS_OK);
    CHECK(shmbus_block_release(adopted) == SHMBUS_OK);
    /* That block is free again: one more can be taken. */
    CHECK(shmbus_pool_acquire(writer, 0, &blocks[4]) == SHMBUS_OK);
    for (i = 0; i < 5; ++i) {
        if (blocks[i] != NULL) {
            CHECK(shmbus_block_release(blocks[i]) == SHMBUS_OK);
        }
    }

    /* A block outlives its pool handle: the endpoint leaves with the last block. */
    CHECK(shmbus_pool_acquire(writer, 0, &block) == SHMBUS_OK);
    shmbus_pool_close(writer);
    strcpy((char*)shmbus_block_mutable_data(block), "after close");
    CHECK(strcmp((const char*)shmbus_block_data(block), "after close") == 0);
    CHECK(shmbus_block_release(block) == SHMBUS_OK);
    shmbus_pool_close(reader);
}

/* Sends `count` blocks, "c block I" in each, by handle through `handles`. */
static int send_blocks(shmbus_client* client, unsigned long count) {
    shmbus_pool* pool = open_pool(client, SHMBUS_ROLE_PUBLISHER);
    shmbus_publisher* handles = NULL;
    unsigned long i;
    if (shmbus_open_publisher(client, "handles", NULL, &handles) != SHMBUS_OK) {
        fprintf(stderr, "%s: open handles: %s\n", PROGRAM_NAME, shmbus_last_error_message());
        return 1;
    }
    for (i = 0; i < count && failures == 0; ++i) {
        shmbus_block* block = NULL;
        shmbus_block_handle handle;
        CHECK(shmbus_pool_acquire(pool, kWait, &block) == SHMBUS_OK);
        if (block == NULL) {
            break;
        }
        snprintf((char*)shmbus_block_mutable_data(block), (size_t)shmbus_block_size(block),
                 "c block %lu", i);
        CHECK(shmbus_pool_hand_on(pool, block, 1, &handle) == SHMBUS_OK);
        CHECK(shmbus_publisher_send(handles, &handle, sizeof handle, kWait) == SHMBUS_OK);
    }
    shmbus_publisher_close(handles);
    shmbus_pool_close(pool);
    return failures == 0 ? 0 : 1;
}

/* Adopts `count` handles from `handles`, expecting "cpp block I" in each block. */
static int receive_blocks(shmbus_client* client, unsigned long count) {
    shmbus_pool* pool = open_pool(client, SHMBUS_ROLE_SUBSCRIBER);
    shmbus_subscriber* handles = NULL;
    unsigned long i;
    if (shmbus_open_subscriber(client, "handles", NULL, &handles) != SHMBUS_OK) {
        fprintf(stderr, "%s: open handles: %s\n", PROGRAM_NAME, shmbus_last_error_message());
        return 1;
    }
    for (i = 0; i < count && failures == 0; ++i) {
        shmbus_block_handle handle;
        shmbus_received received;
        shmbus_block* block = NULL;
        char want[32];
        CHECK(shmbus_subscriber_receive_copy(handles, &handle, sizeof handle, kWait, &received) ==
              SHMBUS_OK);
        CHECK(received.size == sizeof handle);
        CHECK(shmbus_pool_adopt(pool, &handle, &block) == SHMBUS_OK);
        if (block == NULL) {
            break;
        }
        snprintf(want, sizeof want, "cpp block %lu", i);
        CHECK(strcmp((const char*)shmbus_block_data(block), want) == 0);
        CHECK(shmbus_block_release(block) == SHMBUS_OK);
    }
    shmbus_subscriber_close(handles);
    shmbus_pool_close(pool);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
    shmbus_client* client;
    int rc = 1;
    if (argc < 3) {
        fprintf(stderr, "usage: c_api_pool_client SOCKET selftest|send N|receive N\n");
        return 2;
    }
    client = connect_to(argv[1]);
    if (strcmp(argv[2], "selftest") == 0 && argc == 3) {
        selftest_arguments(client);
        selftest_blocks(client);
        rc = failures == 0 ? 0 : 1;
    } else if (strcmp(argv[2], "send") == 0 && argc == 4) {
        rc = send_blocks(client, strtoul(argv[3], NULL, 10));
    } else if (strcmp(argv[2], "receive") == 0 && argc == 4) {
        rc = receive_blocks(client, strtoul(argv[3], NULL, 10));
    } else {
        fprintf(stderr, "c_api_pool_client: unknown command or arguments\n");
        rc = 2;
    }
    shmbus_client_close(client);
    return rc;
}
