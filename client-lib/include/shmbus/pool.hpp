// Pool: blocks of memory for payloads too large to copy through a ring, passed between
// processes by handle.
//
// A pool channel is slot_count blocks of slot_size bytes each (up to 1 GiB per block), its
// memory reserved when the channel is created, like every segment. A writer (Role::publisher)
// acquires a free block, fills it in place, and hands it on: the 16-byte BlockHandle that
// comes back travels through any queue or broadcast channel (or a socket, or a file), and the
// receiver adopts it to read the same memory. A 64 MiB camera frame moves between processes
// by sending 16 bytes.
//
// References. A block stays out of the free list while anyone references it: an endpoint
// that holds it (a PoolBlock) or a handle that carries a reference nobody adopted yet.
// hand_on() turns the holder's reference into `copies` references carried by the handle
// (one per receiver: a queue has one, a broadcast channel as many as its subscribers);
// each adopt() takes one of them, each drop() gives one back unread. When the last reference
// is released the block returns to the free list and its generation moves on, so a handle
// kept too long is refused (Errc::not_found), never read. One endpoint holds at most one
// reference to a block at a time.
//
// Access. Readers (Role::subscriber) map the blocks read-only: they adopt, read, release
// and hand on, but cannot acquire or change a block. The channel's ACL (`publish` = may
// write) decides who is which, and the kernel enforces it.
//
// Dead processes. The daemon learns of a death when the process's control connection closes,
// and gives back every reference the dead endpoint held (acquired or adopted, not yet handed
// on). References handed on in a handle belong to the handle: whoever receives it adopts or
// drops them; a handle that is lost with its message (a consumer killed with it unread, a
// broadcast subscriber that dropped it) keeps its block out of the pool, and `shmbusctl info`
// shows such references under `in transit`.
//
// Nothing read from shared memory is trusted: a handle, a free-list link or a block state
// that makes no sense is Errc::invalid_argument or Errc::corrupted naming the block, never a
// crash. acquire() and release() are lock-free and O(1), and safe against ABA (a tagged
// free-list head, generations on blocks).
//
// Thread-safety: a Pool and the PoolBlocks it returns may be used from any threads at once;
// one PoolBlock by one thread at a time. A PoolBlock keeps its pool attached: the endpoint
// detaches when the Pool and the last of its blocks are gone.
#pragma once

#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>
#include <shmbus/export.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>

namespace shmbus {

namespace detail {
struct EndpointHooks;
struct PoolEndpoint;
} // namespace detail

/// A reference to one block of a pool as it travels in a message: which pool (its creation
/// id), which block, which generation of it. Plain bytes: copy it into any message.
struct BlockHandle {
    std::uint64_t pool{0};
    std::uint32_t index{0};
    std::uint32_t generation{0};
};
static_assert(sizeof(BlockHandle) == 16);
static_assert(std::is_trivially_copyable_v<BlockHandle>);

class Pool;

/// One reference to a block, held by this process. Move-only; gives the reference back when
/// destroyed (release() does so with a result). Empty after a move or release.
class SHMBUS_EXPORT PoolBlock {
public:
    PoolBlock() noexcept;
    PoolBlock(PoolBlock&&) noexcept;
    PoolBlock& operator=(PoolBlock&&) noexcept;
    PoolBlock(const PoolBlock&) = delete;
    PoolBlock& operator=(const PoolBlock&) = delete;
    ~PoolBlock();

    /// Whether this holds a reference.
    [[nodiscard]] explicit operator bool() const noexcept { return data_ != nullptr; }
    /// The block's bytes, read-only.
    [[nodiscard]] std::span<const std::byte> data() const noexcept { return {data_, size_}; }
    /// The block's bytes to write: empty unless the pool is open for writing.
    [[nodiscard]] std::span<std::byte> mutable_data() noexcept {
        return writable_ ? std::span<std::byte>{data_, size_} : std::span<std::byte>{};
    }
    /// Whether mutable_data() gives the bytes (the pool is open for writing).
    [[nodiscard]] bool writable() const noexcept { return writable_; }
    /// The handle of this block (carrying no reference of its own: see Pool::hand_on()).
    [[nodiscard]] BlockHandle handle() const noexcept { return handle_; }

    /// Gives the reference back now; the last one returns the block to the pool.
    /// Errc::invalid_argument when empty; Errc::corrupted naming the block when its state
    /// no longer names this endpoint as a holder (someone scribbled on it).
    [[nodiscard]] Result<void> release() noexcept;

private:
    friend class Pool;
    friend struct detail::PoolEndpoint;
    PoolBlock(std::shared_ptr<detail::PoolEndpoint> owner, std::byte* data, std::uint64_t size,
              BlockHandle handle, bool writable) noexcept;
    std::shared_ptr<detail::PoolEndpoint> owner_;
    std::byte* data_{nullptr};
    std::uint64_t size_{0};
    BlockHandle handle_{};
    bool writable_{false};
};

class SHMBUS_EXPORT Pool {
public:
    /// Attaches to the pool in `files` as a writer (Role::publisher: writable payload
    /// required) or a reader (Role::subscriber), taking an entry of that role's table.
    /// Errc::invalid_argument if the channel is not a pool, Errc::limit_reached when the
    /// table is full, Errc::corrupted / version_mismatch when its headers fail validation.
    [[nodiscard]] static Result<Pool> attach(ChannelFiles files, Role role,
                                             const EndpointOptions& options = {}) noexcept;

    Pool(Pool&&) noexcept;
    Pool& operator=(Pool&&) noexcept;
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    ~Pool();

    /// Number of blocks.
    [[nodiscard]] std::uint64_t size() const noexcept;
    /// Bytes per block.
    [[nodiscard]] std::uint64_t block_size() const noexcept;

    /// Takes a free block (writers only), waiting up to `timeout` for one to be given back
    /// (zero: not at all; the wait spins, then sleeps on a futex as `options.wait` says).
    /// Its bytes are as the last holder left them. Errors: Errc::permission_denied for a
    /// reader, Errc::would_block when every block is in use (timeout zero),
    /// Errc::timed_out when none came back in time, Errc::corrupted naming the block when
    /// the free list is damaged. Lock-free and O(1) when a block is free.
    [[nodiscard]] Result<PoolBlock> acquire(std::chrono::nanoseconds timeout = {}) noexcept;

    /// Gives up `block`'s reference and puts `copies` references (1..255) into the handle
    /// it returns, for receivers to adopt(), in one step: the block is never unreferenced in
    /// between, and once this returns this process is no longer accountable for it.
    /// Errors: Errc::invalid_argument for an empty block, one of another pool, or copies 0;
    /// Errc::limit_reached when the block would have more than 255 references in transit;
    /// Errc::corrupted as PoolBlock::release(). `block` is left empty on success.
    [[nodiscard]] Result<BlockHandle> hand_on(PoolBlock&& block, std::uint32_t copies = 1) noexcept;
    /// As hand_on(), but keeps `block`'s own reference too.
    [[nodiscard]] Result<BlockHandle> share(const PoolBlock& block,
                                            std::uint32_t copies = 1) noexcept;
    /// Takes one of the references `handle` carries: the block, read-only for a reader.
    /// Errors: Errc::invalid_argument for a handle of another pool or a block beyond this
    /// one; Errc::not_found when the block's generation is no longer the handle's (it was
    /// given back and reused) or every reference the handle carried was taken already;
    /// Errc::already_exists when this endpoint holds the block already (drop() the copy).
    [[nodiscard]] Result<PoolBlock> adopt(const BlockHandle& handle) noexcept;
    /// Gives back one of the references `handle` carries without reading the block (the last
    /// one returns it to the pool). Errors as adopt(), without already_exists.
    [[nodiscard]] Result<void> drop(const BlockHandle& handle) noexcept;

    /// The channel.
    [[nodiscard]] const ChannelInfo& info() const noexcept;
    /// This endpoint's entry in its role's table.
    [[nodiscard]] std::uint32_t endpoint_index() const noexcept;
    /// Role::publisher for a writer, Role::subscriber for a reader.
    [[nodiscard]] Role role() const noexcept;

private:
    friend struct detail::EndpointHooks;
    explicit Pool(std::shared_ptr<detail::PoolEndpoint> impl) noexcept;
    std::shared_ptr<detail::PoolEndpoint> impl_;
};

} // namespace shmbus
