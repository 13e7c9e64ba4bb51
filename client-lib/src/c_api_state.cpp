// The C ABI of the shared-state channels (include/shmbus/shmbus.h, "Shared state"): blackboard
// and counters handles over shmbus::Blackboard and shmbus::Counters.
//
// A shmbus_blackboard or shmbus_counters handle holds its C++ endpoint and nothing else. Reads
// of a blackboard go through Blackboard::read(), whose uncontended case runs inline here. A
// shmbus_counter is the C image of a shmbus::Counter (the cell's address, index and whether
// it may be written): each operation rebuilds that Counter (EndpointHooks) and runs its
// inline member, so that it is one atomic instruction on shared memory with no lookup, by
// the very rules of counters.hpp.
//
// Every entry point is noexcept and follows the error rule of c_api_support.hpp.
#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include "c_api_support.hpp"
#include "endpoint_hooks.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <utility>

using shmbus::Errc;
using shmbus::detail::EndpointHooks;
using namespace shmbus::c_api;

static_assert(SHMBUS_MAX_COUNTER_NAME_LENGTH == shmbus::kMaxCounterNameLength);

struct shmbus_blackboard {
    shmbus::Blackboard board;
};

struct shmbus_counters {
    shmbus::Counters counters;
};

namespace {

// The shmbus::Counter a shmbus_counter describes, or the error of a NULL or empty one.
bool counter_of(const shmbus_counter* counter, shmbus::Counter& out, int& rc) noexcept {
    if (counter == nullptr || counter->cell == nullptr) [[unlikely]] {
        rc = fail(Errc::invalid_argument,
                  "shmbus_counter: NULL or empty (fill it with shmbus_counters_cell())");
        return false;
    }
    out = EndpointHooks::counter(counter->cell, counter->index, counter->writable != 0);
    return true;
}

// Runs `op` on the Counter behind `counter`, storing its value in *out (may be NULL).
template <typename Op>
int on_counter(const shmbus_counter* counter, uint64_t* out, Op&& op) noexcept {
    shmbus::Counter c;
    int rc = SHMBUS_OK;
    if (!counter_of(counter, c, rc)) [[unlikely]] {
        return rc;
    }
    auto r = op(c);
    if (!r) [[unlikely]] {
        return fail(r.error());
    }
    if (out != nullptr) {
        *out = *r;
    }
    return SHMBUS_OK;
}

} // namespace

extern "C" {

// ---- Blackboard ---------------------------------------------------------------------------

int shmbus_open_blackboard(shmbus_client* client, const char* channel, uint32_t role,
                           const shmbus_endpoint_options* options,
                           shmbus_blackboard** blackboard) noexcept {
    return open_with_role(client, channel, role, options, blackboard, "shmbus_open_blackboard",
                          [&](const shmbus::EndpointOptions& o, shmbus::Role r) {
                              return client->client.open_blackboard(channel, r, o);
                          });
}

void shmbus_blackboard_close(shmbus_blackboard* blackboard) noexcept {
    delete blackboard;
}

uint64_t shmbus_blackboard_size(const shmbus_blackboard* blackboard) noexcept {
    return blackboard == nullptr ? 0 : blackboard->board.size();
}

uint64_t shmbus_blackboard_element_size(const shmbus_blackboard* blackboard) noexcept {
    return blackboard == nullptr ? 0 : blackboard->board.element_size();
}

void shmbus_blackboard_info(const shmbus_blackboard* blackboard,
                            shmbus_channel_info* info) noexcept {
    if (blackboard != nullptr && info != nullptr) {
        copy_info(blackboard->board.info(), info);
    }
}

int shmbus_blackboard_read(const shmbus_blackboard* blackboard, uint64_t index, void* out,
                           size_t capacity, uint64_t* version) noexcept {
    if (blackboard == nullptr || (out == nullptr && capacity != 0)) [[unlikely]] {
        return fail(Errc::invalid_argument, "shmbus_blackboard_read: blackboard is NULL, or "
                                            "out is NULL with a capacity");
    }
    auto r = blackboard->board.read(index, std::span{static_cast<std::byte*>(out), capacity});
    if (!r) [[unlikely]] {
        return fail(r.error());
    }
    if (version != nullptr) {
        *version = *r;
    }
    return SHMBUS_OK;
}

int shmbus_blackboard_read_range(const shmbus_blackboard* blackboard, uint64_t first, void* out,
                                 size_t size) noexcept {
    if (blackboard == nullptr || (out == nullptr && size != 0)) {
        return fail(Errc::invalid_argument, "shmbus_blackboard_read_range: blackboard is NULL, "
                                            "or out is NULL with a size");
    }
    auto r = blackboard->board.read_range(first, std::span{static_cast<std::byte*>(out), size});
    return r ? SHMBUS_OK : fail(r.error());
}

int shmbus_blackboard_write(shmbus_blackboard* blackboard, uint64_t index, const void* data,
                            size_t size) noexcept {
    if (blackboard == nullptr || (data == nullptr && size != 0)) [[unlikely]] {
        return fail(Errc::invalid_argument, "shmbus_blackboard_write: blackboard is NULL, or "
                                            "data is NULL with a size");
    }
    auto r = blackboard->board.write(index, std::span{static_cast<const std::byte*>(data), size});
    return r ? SHMBUS_OK : fail(r.error());
}

int shmbus_blackboard_write_range(shmbus_blackboard* blackboard, uint64_t first, const void* data,
                                  size_t size) noexcept {
    if (blackboard == nullptr || (data == nullptr && size != 0)) {
        return fail(Errc::invalid_argument, "shmbus_blackboard_write_range: blackboard is NULL, "
                                            "or data is NULL with a size");
    }
    auto r =
        blackboard->board.write_range(first, std::span{static_cast<const std::byte*>(data), size});
    return r ? SHMBUS_OK : fail(r.error());
}

int shmbus_blackboard_update(shmbus_blackboard* blackboard, uint64_t index,
                             shmbus_blackboard_edit_fn edit, void* user) noexcept {
    if (blackboard == nullptr || edit == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_blackboard_update: blackboard and edit must not be NULL");
    }
    auto r = blackboard->board.update(index, [edit, user](std::span<std::byte> bytes) noexcept {
        edit(user, bytes.data(), bytes.size());
    });
    return r ? SHMBUS_OK : fail(r.error());
}

// ---- Counters -----------------------------------------------------------------------------

int shmbus_open_counters(shmbus_client* client, const char* channel, uint32_t role,
                         const shmbus_endpoint_options* options,
                         shmbus_counters** counters) noexcept {
    return open_with_role(client, channel, role, options, counters, "shmbus_open_counters",
                          [&](const shmbus::EndpointOptions& o, shmbus::Role r) {
                              return client->client.open_counters(channel, r, o);
                          });
}

void shmbus_counters_close(shmbus_counters* counters) noexcept {
    delete counters;
}

uint64_t shmbus_counters_capacity(const shmbus_counters* counters) noexcept {
    return counters == nullptr ? 0 : counters->counters.capacity();
}

void shmbus_counters_info(const shmbus_counters* counters, shmbus_channel_info* info) noexcept {
    if (counters != nullptr && info != nullptr) {
        copy_info(counters->counters.info(), info);
    }
}

int shmbus_counters_cell(shmbus_counters* counters, const char* name,
                         shmbus_counter* counter) noexcept {
    if (counters == nullptr || name == nullptr || counter == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_counters_cell: counters, name and counter must not be NULL");
    }
    *counter = shmbus_counter{};
    auto cell = counters->counters.cell(name);
    if (!cell) {
        return fail(cell.error());
    }
    *counter = shmbus_counter{EndpointHooks::cell(*cell), cell->index(),
                              EndpointHooks::writable(*cell) ? 1U : 0U, 0};
    return SHMBUS_OK;
}

int shmbus_counters_list(const shmbus_counters* counters, shmbus_counter_value* values,
                         size_t capacity, size_t* count) noexcept {
    if (counters == nullptr || count == nullptr || (values == nullptr && capacity != 0)) {
        return fail(Errc::invalid_argument, "shmbus_counters_list: counters or count is NULL, "
                                            "or values is NULL with a capacity");
    }
    *count = 0;
    auto listed = counters->counters.list();
    if (!listed) {
        return fail(listed.error());
    }
    const std::size_t n = std::min(capacity, listed->size());
    for (std::size_t i = 0; i < n; ++i) {
        const shmbus::CounterValue& from = (*listed)[i];
        shmbus_counter_value& to = values[i];
        to = shmbus_counter_value{};
        const std::size_t len =
            std::min(from.name.size(), std::size_t{SHMBUS_MAX_COUNTER_NAME_LENGTH});
        std::memcpy(to.name, from.name.data(), len);
        to.name[len] = '\0';
        to.value = from.value;
        to.index = from.index;
    }
    *count = listed->size();
    return SHMBUS_OK;
}

uint64_t shmbus_counter_load(const shmbus_counter* counter) noexcept {
    shmbus::Counter c;
    int rc = SHMBUS_OK;
    return counter_of(counter, c, rc) ? c.load() : 0;
}

int shmbus_counter_store(const shmbus_counter* counter, uint64_t value) noexcept {
    shmbus::Counter c;
    int rc = SHMBUS_OK;
    if (!counter_of(counter, c, rc)) [[unlikely]] {
        return rc;
    }
    auto r = c.store(value);
    return r ? SHMBUS_OK : fail(r.error());
}

int shmbus_counter_fetch_add(const shmbus_counter* counter, uint64_t delta,
                             uint64_t* before) noexcept {
    return on_counter(counter, before, [delta](shmbus::Counter& c) { return c.fetch_add(delta); });
}

int shmbus_counter_fetch_sub(const shmbus_counter* counter, uint64_t delta,
                             uint64_t* before) noexcept {
    return on_counter(counter, before, [delta](shmbus::Counter& c) { return c.fetch_sub(delta); });
}

int shmbus_counter_fetch_max(const shmbus_counter* counter, uint64_t value,
                             uint64_t* before) noexcept {
    return on_counter(counter, before, [value](shmbus::Counter& c) { return c.fetch_max(value); });
}

int shmbus_counter_compare_exchange(const shmbus_counter* counter, uint64_t* expected,
                                    uint64_t desired, int* swapped) noexcept {
    if (expected == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_counter_compare_exchange: expected is NULL");
    }
    shmbus::Counter c;
    int rc = SHMBUS_OK;
    if (!counter_of(counter, c, rc)) [[unlikely]] {
        return rc;
    }
    auto r = c.compare_exchange(*expected, desired);
    if (!r) {
        return fail(r.error());
    }
    if (swapped != nullptr) {
        *swapped = *r ? 1 : 0;
    }
    return SHMBUS_OK;
}

} // extern "C"
