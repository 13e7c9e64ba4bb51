// Counters: cells named on first use, found by a scan in creation order (counters.hpp).
//
// Owns: one endpoint's mapping and table entry (EndpointCore), released in the destructor.
//
// Cell naming: a writer that does not find a name takes the first free cell with a
// compare-and-swap to `naming | owner` (shm/shared_state.hpp), writes the name and a zero
// value, then stores `ready` (release). Every writer scans from cell 0 and waits for a cell
// being named before passing it (it may be getting the very name it looks for), so two
// writers can never create the same name twice. A writer that dies while naming leaves the
// cell `naming`; the supervisor frees it again once the writer is known dead.
//
// Failure policy: names are copied out and checked (terminated, allowed characters) before
// use; a state word that is none of the valid ones is Errc::corrupted naming the cell; a
// wait for another writer's naming is bounded (Errc::would_block).
#include <shmbus/counters.hpp>

#include "endpoint_hooks.hpp"
#include "shm/endpoint_table.hpp"
#include "shm/shared_state.hpp"

#include <cstring>
#include <new>
#include <string>
#include <unistd.h>

namespace shmbus {

using namespace detail;

namespace {

constexpr std::uint32_t kNamingWaitAttempts = 1u << 16;

/// The name bytes of cell `i`, after its SlotHeader (value = length word, state).
char* name_of(const AttachedChannel& ch, std::uint64_t i) {
    return reinterpret_cast<char*>(ch.element(i)) + kSlotDataOffset;
}
std::uint64_t* value_of(const AttachedChannel& ch, std::uint64_t i) {
    return &ch.element(i)->length;
}

Result<void> check_counter_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxCounterNameLength) {
        return make_error(Errc::invalid_argument,
                          "counter name '" + std::string{name} + "' must be 1 to " +
                              std::to_string(kMaxCounterNameLength) + " bytes long");
    }
    for (const char c : name) {
        if (!valid_name_char(c)) {
            return make_error(Errc::invalid_argument,
                              "counter name '" + std::string{name} + "' contains '" +
                                  std::string(1, c) +
                                  "'; allowed are letters, digits and _ . : / -");
        }
    }
    return ok();
}

} // namespace

struct Counters::Impl : StateEndpointCore {
    /// The name of ready cell `i`, validated; Errc::corrupted otherwise.
    [[nodiscard]] Result<std::string> name(std::uint64_t i) const {
        char copy[kCounterSlotSize];
        std::memcpy(copy, name_of(ch, i), sizeof copy);
        const void* end = std::memchr(copy, '\0', sizeof copy);
        std::string_view n{
            copy, end == nullptr ? sizeof copy
                                 : static_cast<std::size_t>(static_cast<const char*>(end) - copy)};
        if (end == nullptr || !check_counter_name(n)) {
            return corrupted("counter cell " + std::to_string(i) +
                             " has a name that is not a valid, terminated counter name");
        }
        return std::string{n};
    }

    /// Waits while cell `i` is being named by a live writer; returns its state after.
    [[nodiscard]] Result<std::uint64_t> settled_state(std::uint64_t i) const {
        for (std::uint32_t attempt = 0; attempt < kNamingWaitAttempts; ++attempt) {
            // acquire: pairs with the release store of `ready` (the name is then complete)
            // or of `free` (a supervisor's, after a dead writer).
            const std::uint64_t s = atom_load(ch.element(i)->state, std::memory_order_acquire);
            if (s == kCellFree || s == kCellReady) {
                return s;
            }
            const std::uint64_t tag = s - kCellNaming;
            if (s < kCellNaming || tag < 1 || tag > ch.geo.max_publishers) {
                return corrupted("counter cell " + std::to_string(i) + " has state word " +
                                 std::to_string(s) + ", which is no valid state");
            }
            cpu_relax();
        }
        return make_error(Errc::would_block, "counters '" + ch.info.name + "': cell " +
                                                 std::to_string(i) +
                                                 " is still being named by another writer");
    }

    Counter handle(std::uint64_t i) const {
        return Counter{value_of(ch, i), i, role == Role::publisher};
    }

    [[nodiscard]] Result<Counter> find_or_create(std::string_view wanted) {
        for (std::uint64_t i = 0; i < ch.geo.slot_count; ++i) {
            for (;;) {
                auto s = settled_state(i);
                if (!s) {
                    return s.take_error();
                }
                if (*s == kCellReady) {
                    auto n = name(i);
                    if (!n) {
                        return n.take_error();
                    }
                    if (*n == wanted) {
                        return handle(i);
                    }
                    break; // next cell
                }
                // Free: cells are taken in order, so the name exists nowhere further on.
                if (role != Role::publisher) {
                    return make_error(Errc::not_found, "counters '" + ch.info.name +
                                                           "' has no cell '" + std::string{wanted} +
                                                           "'");
                }
                std::uint64_t expected = kCellFree;
                // acquire: pairs with a supervisor's release of a cell a dead writer left.
                if (!atom(ch.element(i)->state)
                         .compare_exchange_strong(expected, kCellNaming | owner,
                                                  std::memory_order_acquire,
                                                  std::memory_order_relaxed)) {
                    continue; // another writer took it: see what it becomes
                }
                char* n = name_of(ch, i);
                std::memset(n, 0, kCounterSlotSize);
                std::memcpy(n, wanted.data(), wanted.size());
                // relaxed: published by the release store of `ready` below.
                atom(*value_of(ch, i)).store(0, std::memory_order_relaxed);
                // release: the name and the zero value before the state that says ready.
                atom(ch.element(i)->state).store(kCellReady, std::memory_order_release);
                return handle(i);
            }
        }
        if (role != Role::publisher) {
            return make_error(Errc::not_found, "counters '" + ch.info.name + "' has no cell '" +
                                                   std::string{wanted} + "'");
        }
        return make_error(
            Errc::limit_reached,
            "counters '" + ch.info.name + "' has all its " + std::to_string(ch.geo.slot_count) +
                " cells in use (raise slot_count) and none is '" + std::string{wanted} + "'");
    }
};

Counters::Counters(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
Counters::Counters(Counters&&) noexcept = default;
Counters& Counters::operator=(Counters&&) noexcept = default;
Counters::~Counters() = default;

void EndpointHooks::set_on_detach(Counters& endpoint, std::function<void()> hook) noexcept {
    endpoint.impl_->on_detach = std::move(hook);
}

Result<Counters> Counters::attach(ChannelFiles files, Role role,
                                  const EndpointOptions& options) noexcept {
    try {
        auto impl = std::make_unique<Impl>();
        if (auto opened = open_state_endpoint(*impl, files, role, options, ChannelKind::counters);
            !opened) {
            return opened.take_error();
        }
        return Counters{std::move(impl)};
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<Counter> Counters::cell(std::string_view name) noexcept {
    try {
        if (auto checked = check_counter_name(name); !checked) {
            return checked.take_error();
        }
        return impl_->find_or_create(name);
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

Result<std::vector<CounterValue>> Counters::list() const noexcept {
    try {
        std::vector<CounterValue> out;
        const AttachedChannel& ch = impl_->ch;
        for (std::uint64_t i = 0; i < ch.geo.slot_count; ++i) {
            // acquire: pairs with the release store of `ready`: the name is complete.
            const std::uint64_t s = atom_load(ch.element(i)->state, std::memory_order_acquire);
            if (s == kCellFree || (s > kCellNaming && s - kCellNaming <= ch.geo.max_publishers)) {
                continue; // not (yet) a cell
            }
            if (s != kCellReady) {
                return impl_->corrupted("counter cell " + std::to_string(i) + " has state word " +
                                        std::to_string(s) + ", which is no valid state");
            }
            auto n = impl_->name(i);
            if (!n) {
                return n.take_error();
            }
            out.push_back({std::move(*n), impl_->handle(i).load(), i});
        }
        return out;
    } catch (const std::bad_alloc&) {
        return make_error(Errc::no_memory, "out of memory");
    }
}

std::uint64_t Counters::capacity() const noexcept {
    return impl_->ch.geo.slot_count;
}
const ChannelInfo& Counters::info() const noexcept {
    return impl_->ch.info;
}
std::uint32_t Counters::endpoint_index() const noexcept {
    return impl_->index;
}
Role Counters::role() const noexcept {
    return impl_->role;
}

namespace detail {

std::uint64_t free_unnamed_cells(const AttachedChannel& ch, std::uint32_t owner) noexcept {
    std::uint64_t freed = 0;
    for (std::uint64_t i = 0; i < ch.geo.slot_count; ++i) {
        std::uint64_t expected = kCellNaming | owner;
        // release: pairs with the acquire CAS of the next writer to take the cell.
        if (atom(ch.element(i)->state)
                .compare_exchange_strong(expected, kCellFree, std::memory_order_release,
                                         std::memory_order_relaxed)) {
            ++freed;
        }
    }
    return freed;
}

} // namespace detail

} // namespace shmbus
