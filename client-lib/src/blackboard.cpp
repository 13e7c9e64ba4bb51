// Blackboard: the element seqlock with a writer lock inside the word (blackboard.hpp).
//
// Owns: one endpoint's mapping and table entry (EndpointCore), released in the destructor.
// Runs on the caller's thread; one thread per Blackboard.
//
// Invariants: an element's state word (shm/shared_state.hpp) is only changed by a writer's
// compare-and-swap from an unlocked value to its own owner tag, then by that writer's
// release store of the next version, or by a supervisor tearing the element of a writer it
// knows is dead. A reader only loads. The inline read in the header handles the stable case;
// everything else (contention, torn and damaged words, bad arguments) comes here.
//
// Failure policy: nothing read from the segment is trusted. An index is checked against the
// validated geometry (never against the header in shared memory); a damaged state word is
// Errc::corrupted naming the element; a word that never settles is Errc::would_block after
// a bounded number of attempts, never a livelock.
#include <shmbus/blackboard.hpp>

#include "endpoint_hooks.hpp"
#include "shm/endpoint_table.hpp"
#include "shm/shared_state.hpp"

#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <unistd.h>
#include <vector>

namespace shmbus {

using namespace detail;

static_assert(offsetof(SlotHeader, state) == 8, "Blackboard::kStateOffset");
static_assert(kSlotDataOffset == 16, "Blackboard::kDataOffset");

struct Blackboard::Impl : StateEndpointCore {
    [[nodiscard]] std::string element_name(std::uint64_t i) const {
        return "blackboard '" + ch.info.name + "' element " + std::to_string(i);
    }

    [[nodiscard]] Result<void> check_range(std::uint64_t first, std::uint64_t count,
                                           const char* what) const {
        if (first >= ch.geo.slot_count || count > ch.geo.slot_count - first) {
            return make_error(Errc::invalid_argument,
                              "blackboard '" + ch.info.name + "': " + what + " elements " +
                                  std::to_string(first) + ".." + std::to_string(first + count) +
                                  " are beyond its " + std::to_string(ch.geo.slot_count));
        }
        return ok();
    }

    [[nodiscard]] Result<void> check_writer() const {
        if (role != Role::publisher) {
            return make_error(Errc::permission_denied,
                              "blackboard '" + ch.info.name +
                                  "' is open for reading: open it as a writer to change it");
        }
        return ok();
    }

    /// One element, read consistently by `read(data)`: the copy of read(), or the function
    /// of read_in_place(). Retried while writers move the element, a bounded number of times.
    template <typename Read>
    [[nodiscard]] Result<std::uint64_t> read_one(std::uint64_t i, Read&& read) const {
        const SlotHeader* e = ch.element(i);
        const auto* data = reinterpret_cast<const std::byte*>(e) + kSlotDataOffset;
        for (std::uint32_t attempt = 0; attempt < kBlackboardReadAttempts; ++attempt) {
            // acquire: pairs with the release store that ended the last write.
            const std::uint64_t before = atom_load(e->state, std::memory_order_acquire);
            const std::uint64_t low = element_lock_word(before);
            if (low == kElementTorn) {
                return make_error(Errc::corrupted,
                                  element_name(i) +
                                      " is torn: its writer died in the middle of a write; "
                                      "the next write repairs it");
            }
            if (low != 0) {
                if (!element_locked_by_writer(low, ch.geo.max_publishers)) {
                    return corrupted("element " + std::to_string(i) + " has state word " +
                                     std::to_string(before) + ", which names no writer");
                }
                cpu_relax(); // a writer holds it: its write takes a few nanoseconds
                continue;
            }
            read(data);
            seqlock_read_fence();
            // relaxed: ordered after the copy by the fence (seqlock.hpp).
            if (atom_load(e->state, std::memory_order_relaxed) == before) {
                return element_version(before);
            }
            cpu_relax();
        }
        return make_error(Errc::would_block,
                          element_name(i) + " was being written during each of " +
                              std::to_string(kBlackboardReadAttempts) + " attempts to read it");
    }

    /// Takes the writer lock of element `i`; returns the word it replaced.
    [[nodiscard]] Result<std::uint64_t> lock(std::uint64_t i) const {
        std::uint64_t& word = ch.element(i)->state;
        for (std::uint32_t attempt = 0; attempt < kBlackboardLockAttempts; ++attempt) {
            // relaxed: only a hint; the CAS below decides.
            std::uint64_t seen = atom(word).load(std::memory_order_relaxed);
            const std::uint64_t low = element_lock_word(seen);
            if (low != owner && element_locked_by_writer(low, ch.geo.max_publishers)) {
                cpu_relax(); // another writer's write in progress
                continue;
            }
            // Stable, torn (this write repairs it), damaged (likewise), or our own tag
            // (impossible unless damaged): take it. acquire: pairs with the release store
            // of the previous write, whose data update() reads and we overwrite.
            if (atom(word).compare_exchange_weak(seen, (seen & ~0xFFFF'FFFFULL) | owner,
                                                 std::memory_order_acquire,
                                                 std::memory_order_relaxed)) {
                // Our data stores must not become visible before the lock does.
                seqlock_write_fence();
                return seen;
            }
        }
        return make_error(Errc::would_block, element_name(i) +
                                                 " was held by another writer "
                                                 "during each of " +
                                                 std::to_string(kBlackboardLockAttempts) +
                                                 " attempts to take it");
    }

    /// Ends the write of element `i` taken from `before`: the next version, unlocked.
    void unlock(std::uint64_t i, std::uint64_t before) const {
        // release: publishes the data stores to readers' acquire loads of the word.
        atom(ch.element(i)->state)
            .store((before & ~0xFFFF'FFFFULL) + kElementVersionOne, std::memory_order_release);
    }

    [[nodiscard]] std::byte* data_of(std::uint64_t i) const {
        return reinterpret_cast<std::byte*>(ch.element(i)) + kSlotDataOffset;
    }

    [[nodiscard]] Result<void> write_one(std::uint64_t i, const std::byte* src, std::size_t n) {
        auto before = lock(i);
        if (!before) {
            return before.take_error();
        }
        std::byte* dst = data_of(i);
        seqlock_copy_in(dst, src, n);
        const std::size_t written = (n + 7) / 8 * 8;
        if (written < ch.geo.slot_size) {
            seqlock_zero(dst + written, static_cast<std::size_t>(ch.geo.slot_size) - written);
        }
        unlock(i, *before);
        return ok();
    }
};

Blackboard::Blackboard(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {
    const AttachedChannel& ch = impl_->ch;
    base_ = reinterpret_cast<const std::byte*>(ch.slots);
    stride_ = ch.geo.stride;
    count_ = ch.geo.slot_count;
    element_size_ = ch.geo.slot_size;
}
Blackboard::Blackboard(Blackboard&&) noexcept = default;
Blackboard& Blackboard::operator=(Blackboard&&) noexcept = default;
Blackboard::~Blackboard() = default;

void EndpointHooks::set_on_detach(Blackboard& endpoint, std::function<void()> hook) noexcept {
    endpoint.impl_->on_detach = std::move(hook);
}

Result<Blackboard> Blackboard::attach(ChannelFiles files, Role role,
                                      const EndpointOptions& options) noexcept {
    try {
        auto impl = std::make_unique<Impl>();
        if (auto opened = open_state_endpoint(*impl, files, role, options, ChannelKind::blackboard);
            !opened) {
            return opened.take_error();
        }
        return Blackboard{std::move(impl)};
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

std::uint64_t Blackboard::size() const noexcept {
    return count_;
}
std::uint64_t Blackboard::element_size() const noexcept {
    return element_size_;
}
const ChannelInfo& Blackboard::info() const noexcept {
    return impl_->ch.info;
}
std::uint32_t Blackboard::endpoint_index() const noexcept {
    return impl_->index;
}
Role Blackboard::role() const noexcept {
    return impl_->role;
}

Result<std::uint64_t> Blackboard::read_slow(std::uint64_t index,
                                            std::span<std::byte> out) const noexcept {
    try {
        if (auto in = impl_->check_range(index, 1, "read of"); !in) {
            return in.take_error();
        }
        if (out.size() < element_size_) {
            return make_error(Errc::invalid_argument,
                              impl_->element_name(index) + " has " + std::to_string(element_size_) +
                                  " bytes; the buffer only " + std::to_string(out.size()));
        }
        return impl_->read_one(index, [&](const std::byte* data) {
            seqlock_copy_out(out.data(), data, static_cast<std::size_t>(element_size_));
        });
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<std::uint64_t> Blackboard::read_in_place_with(std::uint64_t index,
                                                     void (*read)(const ElementView&, void*),
                                                     void* ctx) const noexcept {
    try {
        if (auto in = impl_->check_range(index, 1, "read of"); !in) {
            return in.take_error();
        }
        return impl_->read_one(index, [&](const std::byte* data) {
            read(ElementView{data, element_size_}, ctx);
        });
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<void> Blackboard::read_range(std::uint64_t first, std::span<std::byte> out) const noexcept {
    try {
        if (out.size() % element_size_ != 0) {
            return make_error(Errc::invalid_argument,
                              "blackboard '" + impl_->ch.info.name + "': a buffer of " +
                                  std::to_string(out.size()) +
                                  " bytes is not a whole number of elements of " +
                                  std::to_string(element_size_));
        }
        const std::uint64_t count = out.size() / element_size_;
        if (auto in = impl_->check_range(first, count, "read of"); !in) {
            return in.take_error();
        }
        for (std::uint64_t i = 0; i < count; ++i) {
            auto got = read(first + i, out.subspan(i * element_size_, element_size_));
            if (!got) {
                return got.take_error();
            }
        }
        return ok();
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<void> Blackboard::write(std::uint64_t index, std::span<const std::byte> data) noexcept {
    try {
        if (auto w = impl_->check_writer(); !w) {
            return w.take_error();
        }
        if (auto in = impl_->check_range(index, 1, "write of"); !in) {
            return in.take_error();
        }
        if (data.size() > element_size_) {
            return make_error(Errc::message_too_large,
                              impl_->element_name(index) + " has " + std::to_string(element_size_) +
                                  " bytes; the data " + std::to_string(data.size()));
        }
        return impl_->write_one(index, data.data(), data.size());
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<void> Blackboard::write_range(std::uint64_t first,
                                     std::span<const std::byte> data) noexcept {
    try {
        if (auto w = impl_->check_writer(); !w) {
            return w.take_error();
        }
        if (data.size() % element_size_ != 0) {
            return make_error(Errc::invalid_argument,
                              "blackboard '" + impl_->ch.info.name +
                                  "': " + std::to_string(data.size()) +
                                  " bytes are not a whole number of elements of " +
                                  std::to_string(element_size_));
        }
        const std::uint64_t count = data.size() / element_size_;
        if (auto in = impl_->check_range(first, count, "write of"); !in) {
            return in.take_error();
        }
        for (std::uint64_t i = 0; i < count; ++i) {
            auto w = impl_->write_one(first + i, data.data() + i * element_size_,
                                      static_cast<std::size_t>(element_size_));
            if (!w) {
                return w;
            }
        }
        return ok();
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<void> Blackboard::update_with(std::uint64_t index, void (*edit)(std::span<std::byte>, void*),
                                     void* ctx) noexcept {
    try {
        if (auto w = impl_->check_writer(); !w) {
            return w.take_error();
        }
        if (auto in = impl_->check_range(index, 1, "update of"); !in) {
            return in.take_error();
        }
        // Allocated before the lock is taken, so that nothing can fail while it is held.
        std::vector<std::byte> bytes(static_cast<std::size_t>(element_size_));
        auto before = impl_->lock(index);
        if (!before) {
            return before.take_error();
        }
        const std::byte* data = impl_->data_of(index);
        // Under our lock nobody else writes: the copy is consistent (a torn element's bytes
        // are whatever its dead writer left; the edit sees them as they are).
        seqlock_copy_out(bytes.data(), data, bytes.size());
        edit(bytes, ctx);
        seqlock_copy_in(impl_->data_of(index), bytes.data(), bytes.size());
        impl_->unlock(index, *before);
        return ok();
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

namespace detail {

std::uint64_t tear_locked_elements(const AttachedChannel& ch, std::uint32_t owner) noexcept {
    std::uint64_t torn = 0;
    for (std::uint64_t i = 0; i < ch.geo.slot_count; ++i) {
        std::uint64_t& word = ch.element(i)->state;
        // relaxed: the CAS below decides; the dead writer can no longer move it.
        std::uint64_t seen = atom(word).load(std::memory_order_relaxed);
        if (element_lock_word(seen) != owner) {
            continue;
        }
        // release: readers that see the torn mark (acquire) see it after whatever the dead
        // writer left; a new version, so a reader that copied before notices.
        if (atom(word).compare_exchange_strong(
                seen, ((seen & ~0xFFFF'FFFFULL) + kElementVersionOne) | kElementTorn,
                std::memory_order_release, std::memory_order_relaxed)) {
            ++torn;
        }
    }
    if (torn != 0) {
        // relaxed: a statistic.
        atom(ch.control->abandoned).fetch_add(torn, std::memory_order_relaxed);
    }
    return torn;
}

} // namespace detail

} // namespace shmbus
