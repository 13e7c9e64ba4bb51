// Segments: creating a channel's two sealed memfds, and mapping and verifying them.
//
// Owns: the mappings of one attachment (Mapping unmaps in its destructor). Creation writes
// the headers once, before the sizes are sealed; after that, headers are only read, and
// every reader works from its own validated copy (`Geometry`, `ChannelInfo`) so that a
// process scribbling on a header later cannot make another read out of bounds.
//
// Failure policy: everything is a value. A descriptor that is not a sealed memfd of the
// expected size is refused (a truncatable file could SIGBUS us later).
#pragma once

#include "shm/layout.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace shmbus::detail {

/// One mmap()ed range, unmapped on destruction. Empty: data() == nullptr.
class Mapping {
public:
    Mapping() noexcept = default;
    Mapping(void* addr, std::size_t size) noexcept : addr_{addr}, size_{size} {}
    Mapping(Mapping&& o) noexcept
        : addr_{std::exchange(o.addr_, nullptr)}, size_{std::exchange(o.size_, 0)} {}
    Mapping& operator=(Mapping&& o) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping();

    [[nodiscard]] std::byte* data() const noexcept { return static_cast<std::byte*>(addr_); }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// Unmaps this process's pages of the range (MADV_DONTNEED) without changing the shared
    /// memory: the next access maps them again. Keeps a process that reads a little of many
    /// channels from being charged the kernel's fault-around (up to 64 KiB per read fault).
    void drop_pages() const noexcept;

private:
    void* addr_{nullptr};
    std::size_t size_{0};
};

/// Whether `c` may appear in a channel name: [A-Za-z0-9_.:/-].
inline bool valid_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '/' || c == '-';
}

/// Validates `spec` and computes its geometry. Errc::invalid_argument naming the field.
Result<Geometry> geometry_for(const ChannelSpec& spec) noexcept;

/// A channel mapped into this process, with pointers into both regions computed from the
/// validated geometry.
struct AttachedChannel {
    ChannelInfo info;
    Geometry geo{};
    Mapping control_map;
    Mapping payload_map;
    bool payload_writable{false};

    ControlBlock* control{nullptr};
    EndpointRecord* publishers{nullptr};
    EndpointRecord* subscribers{nullptr};
    std::uint64_t* cells{nullptr}; // MPMC queue only
    EventRing* events{nullptr};
    PayloadBlock* payload{nullptr};
    std::byte* slots{nullptr};
    // rpc only (see layout.hpp): per-caller blocks, call states, reply slots.
    RpcCallerBlock* rpc_callers{nullptr};
    std::uint64_t* call_states{nullptr};
    std::byte* replies{nullptr};
    // pool only (see layout.hpp): free list and counters, block states, free-list links.
    PoolControl* pool{nullptr};
    std::uint64_t* block_states{nullptr};
    std::uint32_t* block_next{nullptr};

    [[nodiscard]] SlotHeader* slot(std::uint64_t pos) const noexcept {
        return reinterpret_cast<SlotHeader*>(slots + (pos & (geo.slot_count - 1)) * geo.stride);
    }
    /// Blackboard element / counter cell `index` (< geo.slot_count, checked by the caller).
    [[nodiscard]] SlotHeader* element(std::uint64_t index) const noexcept {
        return reinterpret_cast<SlotHeader*>(slots + index * geo.stride);
    }
    [[nodiscard]] std::uint64_t& cell(std::uint64_t pos) const noexcept {
        return cells[pos & (geo.slot_count - 1)];
    }
    void drop_pages() const noexcept {
        control_map.drop_pages();
        payload_map.drop_pages();
    }
};

enum class PayloadAccess {
    read_only, // subscribers: payload PROT_READ, control writable
    writable,  // publishers, supervisors: both writable
    as_opened, // payload writable if its descriptor is
    inspect,   // tools: both regions PROT_READ
};

/// Creates both regions of a channel (see create_channel()).
Result<ChannelFiles> create_segments(const ChannelSpec& spec, std::uint64_t max_bytes) noexcept;

/// Whether attach_channel() faults every page in up front.
enum class Prefault {
    yes, // endpoints: the first message is as fast as the millionth
    no,  // supervisors and tools: they touch a few pages, and only those count in their RSS
};

/// Maps and verifies `files`. `access` says whether the payload must be writable
/// (publishers, supervisors), is mapped read-only (subscribers) or as the descriptor allows.
Result<AttachedChannel> attach_channel(const ChannelFiles& files, PayloadAccess access,
                                       Prefault prefault = Prefault::yes) noexcept;

} // namespace shmbus::detail
