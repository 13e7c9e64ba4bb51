/* A client of the shared-state channels written against the C ABI alone (shmbus/shmbus.h,
 * "Shared state"), compiled as C11. test_c_api_state runs it against a real daemon whose
 * channels are a blackboard `board` (8 elements of 32 bytes) and counters `stats` (8 cells):
 *
 *   c_api_state_client SOCKET selftest      errors with their messages, reads and writes,
 *                                           ranges, update, every counter operation
 *   c_api_state_client SOCKET count N       adds 1 to cell "from_c" N times and writes
 *                                           "from C" into element 6, for a C++ reader
 *   c_api_state_client SOCKET expect VALUE  reads cell "from_cpp" and element 7, which a C++
 *                                           writer set to VALUE and "from C++ VALUE"
 *
 * Exit status 0 when every check held; otherwise 1, with what failed on stderr. */
#include <shmbus/shmbus.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "c_api_state_client:%d: check failed: %s (last error: %s)\n",          \
                    __LINE__, #cond, shmbus_last_error_message());                                 \
            ++failures;                                                                            \
        }                                                                                          \
    } while (0)

/* Whether the last error's message contains `part`. */
static int message_has(const char* part) {
    return strstr(shmbus_last_error_message(), part) != NULL;
}

static shmbus_client* connect_to(const char* socket_path) {
    shmbus_client_options options;
    shmbus_client* client = NULL;
    shmbus_client_options_init(&options);
    options.socket_path = socket_path;
    options.client_name = "c_api_state_client";
    options.reconnect_in_background = 0;
    if (shmbus_connect(&options, &client) != SHMBUS_OK) {
        fprintf(stderr, "c_api_state_client: connect: %s\n", shmbus_last_error_message());
        exit(1);
    }
    return client;
}

/* Adds 1 to every byte of an element: the edit of shmbus_blackboard_update(). */
static void increment_bytes(void* user, void* element, size_t size) {
    unsigned char* bytes = element;
    size_t i;
    *(size_t*)user = size;
    for (i = 0; i < size; ++i) {
        ++bytes[i];
    }
}

static void blackboard_selftest(shmbus_client* client) {
    shmbus_blackboard* writer = NULL;
    shmbus_blackboard* reader = NULL;
    shmbus_counters* wrong = NULL;
    shmbus_channel_info info;
    unsigned char element[32];
    unsigned char range[3 * 32];
    unsigned char small[8];
    uint64_t version = 0;
    uint64_t version2 = 0;
    size_t edited = 0;
    size_t i;

    /* Opening: roles, kinds, arguments. */
    CHECK(shmbus_open_blackboard(client, "board", 3, NULL, &writer) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(message_has("role 3"));
    CHECK(writer == NULL);
    CHECK(shmbus_open_blackboard(client, "board", SHMBUS_ROLE_PUBLISHER, NULL, NULL) ==
          SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_open_blackboard(client, "nosuch", SHMBUS_ROLE_SUBSCRIBER, NULL, &reader) ==
          SHMBUS_E_NOT_FOUND);
    CHECK(message_has("nosuch"));
    CHECK(shmbus_open_counters(client, "board", SHMBUS_ROLE_SUBSCRIBER, NULL, &wrong) ==
          SHMBUS_E_INVALID_ARGUMENT);
    CHECK(wrong == NULL);
    CHECK(shmbus_open_blackboard(client, "board", SHMBUS_ROLE_PUBLISHER, NULL, &writer) ==
          SHMBUS_OK);
    CHECK(shmbus_open_blackboard(client, "board", SHMBUS_ROLE_SUBSCRIBER, NULL, &reader) ==
          SHMBUS_OK);
    if (writer == NULL || reader == NULL) {
        shmbus_blackboard_close(writer);
        shmbus_blackboard_close(reader);
        return;
    }
    CHECK(shmbus_blackboard_size(reader) == 8);
    CHECK(shmbus_blackboard_element_size(reader) == 32);
    CHECK(shmbus_blackboard_size(NULL) == 0);
    shmbus_blackboard_info(reader, &info);
    CHECK(strcmp(info.name, "board") == 0);
    CHECK(info.kind == SHMBUS_KIND_BLACKBOARD);

    /* A write is read back whole, with a version that counts writes. */
    CHECK(shmbus_blackboard_read(reader, 2, element, sizeof element, &version) == SHMBUS_OK);
    CHECK(shmbus_blackboard_write(writer, 2, "hello", 5) == SHMBUS_OK);
    memset(element, 0xAA, sizeof element);
    CHECK(shmbus_blackboard_read(reader, 2, element, sizeof element, &version2) == SHMBUS_OK);
    CHECK(memcmp(element, "hello", 5) == 0);
    CHECK(element[5] == 0 && element[31] == 0); /* the rest of the element became zeros */
    CHECK(version2 == version + 1);

    /* Errors name what was wrong. */
    CHECK(shmbus_blackboard_read(reader, 8, element, sizeof element, NULL) ==
          SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_blackboard_read(reader, 0, small, sizeof small, NULL) ==
          SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_blackboard_read(NULL, 0, element, sizeof element, NULL) ==
          SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_blackboard_write(writer, 0, range, 33) == SHMBUS_E_MESSAGE_TOO_LARGE);
    CHECK(message_has("32 bytes"));
    CHECK(shmbus_blackboard_write(reader, 0, "x", 1) == SHMBUS_E_PERMISSION_DENIED);
    CHECK(shmbus_blackboard_write(writer, 0, NULL, 1) == SHMBUS_E_INVALID_ARGUMENT);

    /* Ranges, element by element. */
    for (i = 0; i < sizeof range; ++i) {
        range[i] = (unsigned char)(i / 32 + 1);
    }
    CHECK(shmbus_blackboard_write_range(writer, 3, range, sizeof range) == SHMBUS_OK);
    memset(range, 0, sizeof range);
    CHECK(shmbus_blackboard_read_range(reader, 3, range, sizeof range) == SHMBUS_OK);
    CHECK(range[0] == 1 && range[32] == 2 && range[95] == 3);
    CHECK(shmbus_blackboard_read_range(reader, 6, range, sizeof range) ==
          SHMBUS_E_INVALID_ARGUMENT); /* 6, 7, 8: past the end */
    CHECK(shmbus_blackboard_write_range(writer, 0, range, 40) == SHMBUS_E_INVALID_ARGUMENT);

    /* Read-modify-write. */
    CHECK(shmbus_blackboard_update(writer, 2, increment_bytes, &edited) == SHMBUS_OK);
    CHECK(edited == 32);
    CHECK(shmbus_blackboard_read(reader, 2, element, sizeof element, NULL) == SHMBUS_OK);
    CHECK(memcmp(element, "ifmmp", 5) == 0 && element[5] == 1);
    CHECK(shmbus_blackboard_update(reader, 2, increment_bytes, &edited) ==
          SHMBUS_E_PERMISSION_DENIED);
    CHECK(shmbus_blackboard_update(writer, 2, NULL, NULL) == SHMBUS_E_INVALID_ARGUMENT);

    shmbus_blackboard_close(writer);
    shmbus_blackboard_close(reader);
    shmbus_blackboard_close(NULL);
}

static void counters_selftest(shmbus_client* client) {
    shmbus_counters* writer = NULL;
    shmbus_counters* reader = NULL;
    shmbus_counter hits;
    shmbus_counter seen;
    shmbus_counter nothing;
    shmbus_counter_value values[8];
    shmbus_channel_info info;
    uint64_t before = 99;
    uint64_t expected = 0;
    int swapped = -1;
    size_t count = 0;

    CHECK(shmbus_open_counters(client, "stats", SHMBUS_ROLE_PUBLISHER, NULL, &writer) == SHMBUS_OK);
    CHECK(shmbus_open_counters(client, "stats", SHMBUS_ROLE_SUBSCRIBER, NULL, &reader) ==
          SHMBUS_OK);
    if (writer == NULL || reader == NULL) {
        shmbus_counters_close(writer);
        shmbus_counters_close(reader);
        return;
    }
    CHECK(shmbus_counters_capacity(writer) == 8);
    shmbus_counters_info(writer, &info);
    CHECK(info.kind == SHMBUS_KIND_COUNTERS);

    /* A reader finds only what exists; a writer creates. */
    CHECK(shmbus_counters_cell(reader, "hits", &seen) == SHMBUS_E_NOT_FOUND);
    CHECK(message_has("hits"));
    CHECK(shmbus_counters_cell(writer, "no spaces", &hits) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_counters_cell(writer, "hits", &hits) == SHMBUS_OK);
    CHECK(shmbus_counters_cell(reader, "hits", &seen) == SHMBUS_OK);
    CHECK(hits.index == seen.index);
    CHECK(shmbus_counter_load(&seen) == 0);

    /* Every operation, seen through the reader's read-only mapping. */
    CHECK(shmbus_counter_fetch_add(&hits, 5, &before) == SHMBUS_OK);
    CHECK(before == 0);
    CHECK(shmbus_counter_fetch_sub(&hits, 2, &before) == SHMBUS_OK);
    CHECK(before == 5);
    CHECK(shmbus_counter_load(&seen) == 3);
    CHECK(shmbus_counter_fetch_max(&hits, 10, &before) == SHMBUS_OK);
    CHECK(before == 3);
    CHECK(shmbus_counter_fetch_max(&hits, 4, &before) == SHMBUS_OK);
    CHECK(before == 10);
    expected = 7;
    CHECK(shmbus_counter_compare_exchange(&hits, &expected, 20, &swapped) == SHMBUS_OK);
    CHECK(swapped == 0 && expected == 10);
    CHECK(shmbus_counter_compare_exchange(&hits, &expected, 20, &swapped) == SHMBUS_OK);
    CHECK(swapped == 1);
    CHECK(shmbus_counter_store(&hits, UINT64_MAX) == SHMBUS_OK);
    CHECK(shmbus_counter_fetch_add(&hits, 2, NULL) == SHMBUS_OK); /* wraps */
    CHECK(shmbus_counter_load(&seen) == 1);

    /* A reader's cell is read-only; an empty one is refused. */
    CHECK(shmbus_counter_fetch_add(&seen, 1, NULL) == SHMBUS_E_PERMISSION_DENIED);
    CHECK(message_has("reading"));
    CHECK(shmbus_counter_store(&seen, 1) == SHMBUS_E_PERMISSION_DENIED);
    memset(&nothing, 0, sizeof nothing);
    CHECK(shmbus_counter_fetch_add(&nothing, 1, NULL) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_counter_fetch_add(NULL, 1, NULL) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK(shmbus_counter_load(NULL) == 0);
    CHECK(shmbus_counter_compare_exchange(&hits, NULL, 1, NULL) == SHMBUS_E_INVALID_ARGUMENT);

    /* The list, in creation order. */
    CHECK(shmbus_counters_cell(writer, "misses", &seen) == SHMBUS_OK);
    CHECK(shmbus_counters_list(reader, NULL, 0, &count) == SHMBUS_OK);
    CHECK(count == 2);
    CHECK(shmbus_counters_list(reader, values, 8, &count) == SHMBUS_OK);
    CHECK(count == 2);
    CHECK(strcmp(values[0].name, "hits") == 0 && values[0].value == 1);
    CHECK(strcmp(values[1].name, "misses") == 0 && values[1].value == 0);
    CHECK(shmbus_counters_list(reader, NULL, 1, &count) == SHMBUS_E_INVALID_ARGUMENT);

    shmbus_counters_close(writer);
    shmbus_counters_close(reader);
    shmbus_counters_close(NULL);
}

static int count_up(shmbus_client* client, uint64_t n) {
    shmbus_counters* counters = NULL;
    shmbus_blackboard* board = NULL;
    shmbus_counter cell;
    uint64_t i;
    CHECK(shmbus_open_counters(client, "stats", SHMBUS_ROLE_PUBLISHER, NULL, &counters) ==
          SHMBUS_OK);
    CHECK(shmbus_open_blackboard(client, "board", SHMBUS_ROLE_PUBLISHER, NULL, &board) ==
          SHMBUS_OK);
    if (counters == NULL || board == NULL) {
        return 1;
    }
    CHECK(shmbus_counters_cell(counters, "from_c", &cell) == SHMBUS_OK);
    for (i = 0; i < n && failures == 0; ++i) {
        CHECK(shmbus_counter_fetch_add(&cell, 1, NULL) == SHMBUS_OK);
    }
    CHECK(shmbus_blackboard_write(board, 6, "from C", 6) == SHMBUS_OK);
    shmbus_counters_close(counters);
    shmbus_blackboard_close(board);
    return failures == 0 ? 0 : 1;
}

static int expect(shmbus_client* client, uint64_t value) {
    shmbus_counters* counters = NULL;
    shmbus_blackboard* board = NULL;
    shmbus_counter cell;
    char element[32];
    char text[32];
    CHECK(shmbus_open_counters(client, "stats", SHMBUS_ROLE_SUBSCRIBER, NULL, &counters) ==
          SHMBUS_OK);
    CHECK(shmbus_open_blackboard(client, "board", SHMBUS_ROLE_SUBSCRIBER, NULL, &board) ==
          SHMBUS_OK);
    if (counters == NULL || board == NULL) {
        return 1;
    }
    CHECK(shmbus_counters_cell(counters, "from_cpp", &cell) == SHMBUS_OK);
    CHECK(shmbus_counter_load(&cell) == value);
    CHECK(shmbus_blackboard_read(board, 7, element, sizeof element, NULL) == SHMBUS_OK);
    snprintf(text, sizeof text, "from C++ %" PRIu64, value);
    CHECK(strncmp(element, text, sizeof element) == 0);
    shmbus_counters_close(counters);
    shmbus_blackboard_close(board);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
    shmbus_client* client;
    int rc = 1;
    if (argc < 3) {
        fprintf(stderr, "usage: c_api_state_client SOCKET selftest|count N|expect VALUE\n");
        return 2;
    }
    client = connect_to(argv[1]);
    if (strcmp(argv[2], "selftest") == 0) {
        blackboard_selftest(client);
        counters_selftest(client);
        rc = failures == 0 ? 0 : 1;
    } else if (argc == 4 && strcmp(argv[2], "count") == 0) {
        rc = count_up(client, strtoull(argv[3], NULL, 10));
    } else if (argc == 4 && strcmp(argv[2], "expect") == 0) {
        rc = expect(client, strtoull(argv[3], NULL, 10));
    } else {
        fprintf(stderr, "c_api_state_client: unknown mode '%s'\n", argv[2]);
        rc = 2;
    }
    shmbus_client_close(client);
    return rc;
}
