// Pool: acquire, hand on, adopt and release blocks of a pool channel (pool.hpp), on the
// algorithms of shm/pool_blocks.hpp.
//
// Owns: one endpoint's mapping and table entry (a StateEndpointCore), shared by the Pool and
// every PoolBlock it returned, so that the entry is left only when the last of them goes and
// no reference can outlive the endpoint whose holder bit it is. The table entry is left in
// the attaching process only; a PoolBlock inherited through fork() gives nothing back (the
// reference is the parent's).
//
// Runs on the caller's threads: every operation is a few atomic operations on shared words,
// safe from any thread.
//
// Failure policy: a handle is checked against this pool's creation id and geometry before it
// addresses anything; what pool_blocks.cpp finds damaged comes back as Errc::corrupted naming
// the pool and the block. Allocation failure is Errc::no_memory; nothing throws out.
#include <shmbus/pool.hpp>

#include "endpoint_hooks.hpp"
#include "shm/endpoint_table.hpp"
#include "shm/pool_blocks.hpp"
#include "shm/shared_state.hpp"

#include <new>
#include <string>
#include <unistd.h>

namespace shmbus {

namespace detail {

struct PoolEndpoint : StateEndpointCore {
    std::uint32_t slot{0}; // holder slot (pool_blocks.hpp)

    [[nodiscard]] std::string block_name(std::uint64_t i) const {
        return "pool '" + ch.info.name + "' block " + std::to_string(i);
    }

    [[nodiscard]] std::byte* data_of(std::uint32_t i) const { return ch.slots + i * ch.geo.stride; }

    [[nodiscard]] PoolBlock make_block(const std::shared_ptr<PoolEndpoint>& self, std::uint32_t i,
                                       std::uint32_t generation) const;

    /// The error for a status other than ok, about block `i`.
    [[nodiscard]] Error error_of(PoolStatus status, std::uint64_t i, const PoolFault& fault,
                                 std::uint32_t handle_generation = 0) const {
        switch (status) {
        case PoolStatus::ok:
            break;
        case PoolStatus::empty:
            return make_error(Errc::would_block, "pool '" + ch.info.name + "': all " +
                                                     std::to_string(ch.geo.slot_count) +
                                                     " blocks are in use");
        case PoolStatus::stale:
            return make_error(
                Errc::not_found,
                block_name(i) + " is no longer generation " + std::to_string(handle_generation) +
                    ": it was given back to the pool and reused; the handle is stale");
        case PoolStatus::no_reference:
            return make_error(Errc::not_found,
                              block_name(i) + " has no reference in transit left for this handle: "
                                              "every copy handed on was adopted or dropped");
        case PoolStatus::held_already:
            return make_error(Errc::already_exists,
                              block_name(i) + " is held by this endpoint already: drop() the copy");
        case PoolStatus::too_many:
            return make_error(Errc::limit_reached, block_name(i) + " would have more than " +
                                                       std::to_string(kMaxTransit) +
                                                       " references in transit");
        case PoolStatus::corrupted:
            return make_error(Errc::corrupted, "pool '" + ch.info.name + "': block " +
                                                   std::to_string(fault.block) + " " + fault.what +
                                                   " (word " + std::to_string(fault.word) + ")");
        case PoolStatus::contended:
            return make_error(Errc::would_block, block_name(i) +
                                                     ": its state changed under each of " +
                                                     std::to_string(kPoolAttempts) + " attempts");
        }
        return make_error(Errc::corrupted, block_name(i) + ": unknown status");
    }

    /// Checks that `h` names a block of this pool.
    [[nodiscard]] Result<void> check_handle(const BlockHandle& h) const {
        if (h.pool != ch.info.creation_id) {
            return make_error(
                Errc::invalid_argument,
                "pool '" + ch.info.name + "' (creation id " + std::to_string(ch.info.creation_id) +
                    ") got a handle of another pool (creation id " + std::to_string(h.pool) + ")");
        }
        if (h.index >= ch.geo.slot_count) {
            return make_error(Errc::invalid_argument,
                              "pool '" + ch.info.name + "': a handle names block " +
                                  std::to_string(h.index) + ", beyond its " +
                                  std::to_string(ch.geo.slot_count));
        }
        return ok();
    }

    /// Releases a reference of this endpoint; nothing in a forked child.
    [[nodiscard]] Result<void> release(std::uint32_t i, std::uint32_t generation) const {
        if (getpid() != attached_by) {
            return ok(); // the parent's reference
        }
        PoolFault fault;
        const PoolStatus status = release_reference(ch, slot, i, generation, fault);
        if (status != PoolStatus::ok) {
            return error_of(status, i, fault);
        }
        return ok();
    }

    /// What adopt() and drop() share: checks that `h` names a block of this pool, then runs
    /// `op` (adopt_reference or drop_reference) on it for this endpoint's holder slot.
    template <typename Operation>
    [[nodiscard]] Result<void> on_handle(const BlockHandle& h, Operation op) const {
        if (auto valid = check_handle(h); !valid) {
            return valid;
        }
        PoolFault fault;
        const PoolStatus status = op(ch, slot, h.index, h.generation, fault);
        if (status != PoolStatus::ok) {
            return error_of(status, h.index, fault, h.generation);
        }
        return ok();
    }
};

PoolBlock PoolEndpoint::make_block(const std::shared_ptr<PoolEndpoint>& self, std::uint32_t i,
                                   std::uint32_t generation) const {
    return PoolBlock{self, data_of(i), ch.geo.slot_size,
                     BlockHandle{ch.info.creation_id, i, generation}, role == Role::publisher};
}

} // namespace detail

using namespace detail;

namespace {

Error out_of_memory() {
    return make_error(Errc::no_memory, "out of memory");
}

Error moved_from() {
    return make_error(Errc::invalid_argument, "this Pool was moved from");
}

} // namespace

// ---- PoolBlock ----

PoolBlock::PoolBlock() noexcept = default;

PoolBlock::PoolBlock(std::shared_ptr<PoolEndpoint> owner, std::byte* data, std::uint64_t size,
                     BlockHandle handle, bool writable) noexcept
    : owner_{std::move(owner)}, data_{data}, size_{size}, handle_{handle}, writable_{writable} {}

PoolBlock::PoolBlock(PoolBlock&& o) noexcept
    : owner_{std::move(o.owner_)}, data_{std::exchange(o.data_, nullptr)},
      size_{std::exchange(o.size_, 0)}, handle_{o.handle_}, writable_{o.writable_} {}

PoolBlock& PoolBlock::operator=(PoolBlock&& o) noexcept {
    if (this != &o) {
        (void)release();
        owner_ = std::move(o.owner_);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
        handle_ = o.handle_;
        writable_ = o.writable_;
    }
    return *this;
}

PoolBlock::~PoolBlock() {
    (void)release();
}

Result<void> PoolBlock::release() noexcept {
    if (data_ == nullptr || !owner_) {
        return make_error(Errc::invalid_argument, "this PoolBlock holds no block");
    }
    data_ = nullptr;
    size_ = 0;
    auto owner = std::move(owner_);
    try {
        return owner->release(handle_.index, handle_.generation);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

// ---- Pool ----

Pool::Pool(std::shared_ptr<PoolEndpoint> impl) noexcept : impl_{std::move(impl)} {}
Pool::Pool(Pool&&) noexcept = default;
Pool& Pool::operator=(Pool&&) noexcept = default;
Pool::~Pool() = default;

void EndpointHooks::set_on_detach(Pool& endpoint, std::function<void()> hook) noexcept {
    endpoint.impl_->on_detach = std::move(hook);
}

Result<Pool> Pool::attach(ChannelFiles files, Role role, const EndpointOptions& options) noexcept {
    try {
        auto impl = std::make_shared<PoolEndpoint>();
        if (auto opened = open_state_endpoint(*impl, files, role, options, ChannelKind::pool);
            !opened) {
            return opened.take_error();
        }
        impl->slot = holder_slot(impl->ch.geo, role, impl->index);
        return Pool{std::move(impl)};
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

std::uint64_t Pool::size() const noexcept {
    return impl_ ? impl_->ch.geo.slot_count : 0;
}
std::uint64_t Pool::block_size() const noexcept {
    return impl_ ? impl_->ch.geo.slot_size : 0;
}
const ChannelInfo& Pool::info() const noexcept {
    static const ChannelInfo none; // a moved-from Pool's
    return impl_ ? impl_->ch.info : none;
}
std::uint32_t Pool::endpoint_index() const noexcept {
    return impl_ ? impl_->index : 0;
}
Role Pool::role() const noexcept {
    return impl_ ? impl_->role : Role::subscriber;
}

Result<PoolBlock> Pool::acquire(std::chrono::nanoseconds timeout) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        PoolEndpoint& p = *impl_;
        if (p.role != Role::publisher) {
            return make_error(Errc::permission_denied,
                              "pool '" + p.ch.info.name +
                                  "' is open for reading: open it as a writer to acquire blocks");
        }
        const Deadline deadline = Deadline::after(timeout);
        for (;;) {
            std::uint32_t index = 0;
            std::uint32_t generation = 0;
            PoolFault fault;
            const PoolStatus status = take_block(p.ch, p.slot, index, generation, fault);
            if (status == PoolStatus::ok) {
                return p.make_block(impl_, index, generation);
            }
            if (status != PoolStatus::empty || timeout.count() <= 0) {
                return p.error_of(status, index, fault);
            }
            // Sleep until a block comes back: give_block() wakes the space waiters.
            const PoolControl& pc = *p.ch.pool;
            auto some_block = [&pc] {
                // acquire: pairs with the give's announcing CAS; we take it on waking.
                const std::uint64_t h = atom_load(pc.head, std::memory_order_acquire);
                return head_index(h) != kNoBlock || head_op(h) != PoolOp::none;
            };
            if (!wait_until(some_block, space_wait(p.ch.control), p.options.wait,
                            p.options.spin_iterations, deadline)) {
                return make_error(Errc::timed_out, "pool '" + p.ch.info.name +
                                                       "': no block of the " +
                                                       std::to_string(p.ch.geo.slot_count) +
                                                       " was given back within the timeout");
            }
        }
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<BlockHandle> Pool::hand_on(PoolBlock&& block, std::uint32_t copies) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        if (!block || block.owner_ != impl_) {
            return make_error(Errc::invalid_argument,
                              "pool '" + impl_->ch.info.name + "': hand_on() of " +
                                  (block ? "a block of another Pool endpoint" : "an empty block"));
        }
        if (copies == 0) {
            return make_error(Errc::invalid_argument,
                              "pool '" + impl_->ch.info.name + "': hand_on() of 0 copies");
        }
        const BlockHandle h = block.handle_;
        PoolFault fault;
        const PoolStatus status =
            add_transit(impl_->ch, impl_->slot, h.index, h.generation, copies, false, fault);
        if (status != PoolStatus::ok) {
            return impl_->error_of(status, h.index, fault);
        }
        // The reference is the handle's now: the block gives nothing back when it goes.
        block.data_ = nullptr;
        block.size_ = 0;
        block.owner_.reset();
        return h;
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<BlockHandle> Pool::share(const PoolBlock& block, std::uint32_t copies) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        if (!block || block.owner_ != impl_ || copies == 0) {
            return make_error(Errc::invalid_argument,
                              "pool '" + impl_->ch.info.name + "': share() of " +
                                  (copies == 0 ? std::string{"0 copies"}
                                   : block     ? "a block of another Pool endpoint"
                                               : "an empty block"));
        }
        const BlockHandle h = block.handle_;
        PoolFault fault;
        const PoolStatus status =
            add_transit(impl_->ch, impl_->slot, h.index, h.generation, copies, true, fault);
        if (status != PoolStatus::ok) {
            return impl_->error_of(status, h.index, fault);
        }
        return h;
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<PoolBlock> Pool::adopt(const BlockHandle& handle) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        if (auto adopted = impl_->on_handle(handle, adopt_reference); !adopted) {
            return adopted.take_error();
        }
        return impl_->make_block(impl_, handle.index, handle.generation);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<void> Pool::drop(const BlockHandle& handle) noexcept {
    try {
        if (!impl_) {
            return moved_from();
        }
        return impl_->on_handle(handle, drop_reference);
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

} // namespace shmbus
