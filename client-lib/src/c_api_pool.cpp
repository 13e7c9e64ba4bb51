// The C ABI of pool channels (the "Pool channels" section of include/shmbus/shmbus.h) on the
// C++ Pool and PoolBlock.
//
// A shmbus_pool handle keeps its Pool; a shmbus_block keeps one PoolBlock, so that a block
// keeps its endpoint attached exactly as in C++ (the endpoint leaves with the Pool and the
// last of its blocks) and gives its reference back when released. A shmbus_block_handle is
// a BlockHandle, field for field. A block costs one small allocation at acquire or adopt:
// pool blocks carry large payloads, a few per message at most.
//
// Every entry point is noexcept and follows the error rule of c_api_support.hpp.
#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include "c_api_support.hpp"

#include <cstddef>
#include <new>
#include <utility>

using shmbus::Errc;
using namespace shmbus::c_api;

static_assert(sizeof(shmbus_block_handle) == sizeof(shmbus::BlockHandle));
static_assert(offsetof(shmbus_block_handle, pool) == offsetof(shmbus::BlockHandle, pool));
static_assert(offsetof(shmbus_block_handle, index) == offsetof(shmbus::BlockHandle, index));
static_assert(offsetof(shmbus_block_handle, generation) ==
              offsetof(shmbus::BlockHandle, generation));

struct shmbus_pool {
    shmbus::Pool pool;
};

struct shmbus_block {
    shmbus::PoolBlock block;
};

namespace {

shmbus::BlockHandle to_handle(const shmbus_block_handle& h) noexcept {
    return shmbus::BlockHandle{h.pool, h.index, h.generation};
}

shmbus_block_handle to_c(const shmbus::BlockHandle& h) noexcept {
    return shmbus_block_handle{h.pool, h.index, h.generation};
}

/// Stores a new shmbus_block holding what `r` holds in *block, or fails.
int hold(shmbus::Result<shmbus::PoolBlock>&& r, shmbus_block** block) noexcept {
    if (!r) {
        return fail(r.error());
    }
    *block = new (std::nothrow) shmbus_block{std::move(*r)};
    // Without memory for the handle the PoolBlock gives its reference back as it goes.
    return *block == nullptr ? no_memory() : SHMBUS_OK;
}

/// Stores the handle `r` made in *handle, or fails.
int handed(const shmbus::Result<shmbus::BlockHandle>& r, shmbus_block_handle* handle) noexcept {
    if (!r) {
        return fail(r.error());
    }
    *handle = to_c(*r);
    return SHMBUS_OK;
}

} // namespace

extern "C" {

int shmbus_open_pool(shmbus_client* client, const char* channel, uint32_t role,
                     const shmbus_endpoint_options* options, shmbus_pool** pool) noexcept {
    return open_with_role(client, channel, role, options, pool, "shmbus_open_pool",
                          [&](const shmbus::EndpointOptions& o, shmbus::Role r) {
                              return client->client.open_pool(channel, r, o);
                          });
}

void shmbus_pool_close(shmbus_pool* pool) noexcept {
    delete pool;
}

uint64_t shmbus_pool_size(const shmbus_pool* pool) noexcept {
    return pool == nullptr ? 0 : pool->pool.size();
}

uint64_t shmbus_pool_block_size(const shmbus_pool* pool) noexcept {
    return pool == nullptr ? 0 : pool->pool.block_size();
}

void shmbus_pool_info(const shmbus_pool* pool, shmbus_channel_info* info) noexcept {
    if (pool != nullptr && info != nullptr) {
        copy_info(pool->pool.info(), info);
    }
}

int shmbus_pool_acquire(shmbus_pool* pool, int64_t timeout_ns, shmbus_block** block) noexcept {
    if (pool == nullptr || block == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_pool_acquire: pool and block must not be NULL");
    }
    *block = nullptr;
    return hold(pool->pool.acquire(to_timeout(timeout_ns)), block);
}

int shmbus_pool_hand_on(shmbus_pool* pool, shmbus_block* block, uint32_t copies,
                        shmbus_block_handle* handle) noexcept {
    if (pool == nullptr || block == nullptr || handle == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_pool_hand_on: pool, block and handle must not be NULL");
    }
    if (const int rc = handed(pool->pool.hand_on(std::move(block->block), copies), handle);
        rc != SHMBUS_OK) {
        return rc; // hand_on() leaves the block as it was when it fails
    }
    delete block; // empty now: its reference travels in the handle
    return SHMBUS_OK;
}

int shmbus_pool_share(shmbus_pool* pool, const shmbus_block* block, uint32_t copies,
                      shmbus_block_handle* handle) noexcept {
    if (pool == nullptr || block == nullptr || handle == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_pool_share: pool, block and handle must not be NULL");
    }
    return handed(pool->pool.share(block->block, copies), handle);
}

int shmbus_pool_adopt(shmbus_pool* pool, const shmbus_block_handle* handle,
                      shmbus_block** block) noexcept {
    if (pool == nullptr || handle == nullptr || block == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_pool_adopt: pool, handle and block must not be NULL");
    }
    *block = nullptr;
    return hold(pool->pool.adopt(to_handle(*handle)), block);
}

int shmbus_pool_drop(shmbus_pool* pool, const shmbus_block_handle* handle) noexcept {
    if (pool == nullptr || handle == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_pool_drop: pool and handle must not be NULL");
    }
    auto r = pool->pool.drop(to_handle(*handle));
    return r ? SHMBUS_OK : fail(r.error());
}

const void* shmbus_block_data(const shmbus_block* block) noexcept {
    return block == nullptr ? nullptr : block->block.data().data();
}

void* shmbus_block_mutable_data(shmbus_block* block) noexcept {
    return block == nullptr || !block->block.writable() ? nullptr
                                                        : block->block.mutable_data().data();
}

uint64_t shmbus_block_size(const shmbus_block* block) noexcept {
    return block == nullptr ? 0 : block->block.data().size();
}

void shmbus_block_handle_of(const shmbus_block* block, shmbus_block_handle* handle) noexcept {
    if (handle != nullptr) {
        *handle = block == nullptr ? shmbus_block_handle{} : to_c(block->block.handle());
    }
}

int shmbus_block_release(shmbus_block* block) noexcept {
    if (block == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_block_release: block is NULL");
    }
    auto r = block->block.release();
    delete block;
    return r ? SHMBUS_OK : fail(r.error());
}

} // extern "C"
