// Segment creation and verification.
//
// Creation order matters: memfd_create -> ftruncate -> room under the memory cgroup's limit
// (memory_limit.hpp) -> fallocate (reserve every page now, so a memory limit is an error
// here and never a SIGBUS on some later write) -> write headers
// -> seal size and seals. Verification copies each header out of shared memory first, then
// checks the copy: magic, version, region type, kind, geometry recomputed from first
// principles and compared with what the header and fstat() claim, and the seals.
#include "shm/segment.hpp"

#include "shm/atomics.hpp"
#include "shm/memory_limit.hpp"
#include "shm/pool_blocks.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shmbus::detail {
namespace {

constexpr unsigned kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

std::string quoted(std::string_view name) {
    return "channel '" + std::string{name} + "'";
}

std::uint64_t random_creation_id() {
    std::random_device rd;
    std::uint64_t id = 0;
    while (id == 0) {
        id = (std::uint64_t{rd()} << 32) | rd();
    }
    return id;
}

bool known_kind(std::uint32_t kind) {
    switch (static_cast<ChannelKind>(kind)) {
    case ChannelKind::queue:
    case ChannelKind::broadcast:
    case ChannelKind::blackboard:
    case ChannelKind::counters:
    case ChannelKind::rpc:
    case ChannelKind::pool:
        return true;
    }
    return false;
}

Error sys_error(std::string detail) {
    return make_error(Errc::system_error, std::move(detail), errno);
}

/// Creates one memfd of `bytes`, memory reserved, header written, size sealed.
Result<UniqueFd> create_region(const std::string& name, RegionType type, const RegionHeader& header,
                               std::uint64_t bytes) {
    const std::string memfd_name =
        "shmbus:" + name + (type == RegionType::control ? ":control" : ":payload");
    UniqueFd fd{memfd_create(memfd_name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING)};
    if (!fd) {
        return sys_error("memfd_create for " + quoted(name));
    }
    // A memfd is born with mode 0777, and whoever holds a descriptor can reopen it through
    // /proc/self/fd/N with any access the mode allows: a subscriber of another user, given a
    // read-only payload descriptor, could reopen it read-write. 0600 leaves such reopening to
    // the creator's own user.
    if (fchmod(fd.get(), 0600) != 0) {
        return sys_error("fchmod of the new segment of " + quoted(name) + " to 0600");
    }
    if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
        const int err = errno;
        return make_error(
            err == EFBIG || err == ENOSPC || err == ENOMEM ? Errc::no_memory : Errc::system_error,
            "cannot size " + quoted(name) + " to " + std::to_string(bytes) + " bytes", err);
    }
    const char* region = type == RegionType::control ? " (control region)" : " (payload region)";
    // A memory cgroup whose OOM killer is on does not fail fallocate at its limit: it kills
    // a process of the group (likely ours). So what cannot fit is refused here first.
    if (const auto room = memory_room(); room && bytes > room->bytes_left) {
        return make_error(Errc::no_memory,
                          "cannot reserve " + std::to_string(bytes) + " bytes for " + quoted(name) +
                              region + ": the memory cgroup " + room->group + " has " +
                              std::to_string(room->bytes_left) + " bytes left of its " +
                              std::to_string(room->limit) + "-byte limit",
                          ENOMEM);
    }
    // Reserve the pages now: a full tmpfs or memory cgroup fails here, not on first touch.
    if (const int err = posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes)); err != 0) {
        return make_error(
            Errc::no_memory,
            "cannot reserve " + std::to_string(bytes) + " bytes for " + quoted(name) + region, err);
    }
    void* addr =
        mmap(nullptr, sizeof(RegionHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (addr == MAP_FAILED) {
        return sys_error("mmap of new " + quoted(name));
    }
    RegionHeader h = header;
    h.region_type = static_cast<std::uint32_t>(type);
    h.magic = type == RegionType::control ? kControlMagic : kPayloadMagic;
    std::memcpy(addr, &h, sizeof h);
    munmap(addr, sizeof(RegionHeader));
    if (fcntl(fd.get(), F_ADD_SEALS, kRequiredSeals) != 0) {
        return sys_error("sealing " + quoted(name));
    }
    return fd;
}

/// Checks one header copy against the geometry derived from its own fields.
Result<Geometry> verify_header(const RegionHeader& h, RegionType type, std::uint64_t file_size,
                               const char* region) {
    auto bad = [&](const std::string& field, const std::string& why) {
        std::string name(h.name, strnlen(h.name, sizeof h.name));
        return make_error(Errc::corrupted, std::string(region) + " header of " + quoted(name) +
                                               ": field '" + field + "' " + why);
    };
    const std::uint64_t magic = type == RegionType::control ? kControlMagic : kPayloadMagic;
    if (h.magic != magic) {
        return bad("magic", "does not identify a shmbus " + std::string(region) + " region");
    }
    if (h.layout_version != kLayoutVersion) {
        return make_error(Errc::version_mismatch,
                          std::string(region) + " region has layout version " +
                              std::to_string(h.layout_version) + ", this library speaks version " +
                              std::to_string(kLayoutVersion));
    }
    if (h.region_type != static_cast<std::uint32_t>(type)) {
        return bad("region_type", "is " + std::to_string(h.region_type));
    }
    if (std::memchr(h.name, '\0', sizeof h.name) == nullptr) {
        return bad("name", "is not terminated");
    }
    ChannelSpec spec;
    spec.name = h.name;
    if (!known_kind(h.kind)) {
        return bad("kind", "is " + std::to_string(h.kind));
    }
    spec.kind = static_cast<ChannelKind>(h.kind);
    if (h.overflow > 1) {
        return bad("overflow", "is " + std::to_string(h.overflow));
    }
    spec.overflow = static_cast<Overflow>(h.overflow);
    if (spec.kind != ChannelKind::broadcast && spec.overflow == Overflow::drop) {
        return bad("kind", "is " + std::string{to_string(spec.kind)} +
                               " while field 'overflow' is drop (only broadcast may drop)");
    }
    spec.slot_size = h.slot_size;
    spec.slot_count = h.slot_count;
    spec.max_publishers = h.max_publishers;
    spec.max_subscribers = h.max_subscribers;
    if (spec.kind == ChannelKind::rpc) {
        if (h.reply_slot_size == 0) {
            // Either field may be the damaged one (a scribbled kind reads as rpc): name both.
            return bad("reply_slot_size",
                       "is 0, but field 'kind' says rpc (" + std::to_string(h.kind) + ")");
        }
        spec.reply_slot_size = h.reply_slot_size;
    } else if (h.reply_slot_size != 0) {
        return bad("reply_slot_size", "is " + std::to_string(h.reply_slot_size) +
                                          " on a channel of kind " + std::to_string(h.kind));
    }
    auto geo = geometry_for(spec);
    if (!geo) {
        return make_error(Errc::corrupted, std::string(region) + " header: " + geo.error().detail);
    }
    // The sizes are derived from other fields: name those too, since either may be the
    // damaged one.
    if (h.slot_stride != geo->stride) {
        return bad("slot_stride", "is " + std::to_string(h.slot_stride) +
                                      ", but field 'slot_size' (" + std::to_string(h.slot_size) +
                                      ") needs " + std::to_string(geo->stride));
    }
    if (h.control_bytes != geo->control_bytes()) {
        return bad("control_bytes",
                   "is " + std::to_string(h.control_bytes) + ", but fields 'kind' (" +
                       std::to_string(h.kind) + "), 'slot_count' (" + std::to_string(h.slot_count) +
                       "), 'max_publishers' (" + std::to_string(h.max_publishers) +
                       "), 'max_subscribers' (" + std::to_string(h.max_subscribers) +
                       ") and 'reply_slot_size' (" + std::to_string(h.reply_slot_size) + ") need " +
                       std::to_string(geo->control_bytes()));
    }
    if (h.payload_bytes != geo->payload_bytes()) {
        // A pool lays its blocks out from a page boundary: the kind counts too.
        return bad("payload_bytes", "is " + std::to_string(h.payload_bytes) +
                                        ", but fields 'kind' (" + std::to_string(h.kind) +
                                        "), 'slot_count' (" + std::to_string(h.slot_count) +
                                        ") and 'slot_size' (" + std::to_string(h.slot_size) +
                                        ") need " + std::to_string(geo->payload_bytes()));
    }
    const std::uint64_t expected =
        type == RegionType::control ? geo->control_bytes() : geo->payload_bytes();
    if (file_size != expected) {
        return bad("size", "says " + std::to_string(expected) + " bytes but the file has " +
                               std::to_string(file_size));
    }
    return geo;
}

struct MappedRegion {
    Mapping map;
    RegionHeader header;
    Geometry geo;
};

Result<MappedRegion> map_region(int fd, RegionType type, bool writable, Prefault prefault) {
    const char* region = type == RegionType::control ? "control" : "payload";
    if (fd < 0) {
        return make_error(Errc::invalid_argument, std::string("no ") + region + " descriptor");
    }
    const int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (static_cast<unsigned>(seals) & kRequiredSeals) != kRequiredSeals) {
        return make_error(Errc::corrupted, std::string(region) +
                                               " descriptor is not a sealed shmbus memfd "
                                               "(its size could change under us)");
    }
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        return sys_error(std::string("fstat of ") + region + " descriptor");
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < sizeof(RegionHeader) + kCacheLine) {
        return make_error(Errc::corrupted, std::string(region) + " region is only " +
                                               std::to_string(size) + " bytes");
    }
    const int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    // MAP_POPULATE prefaults every page: the first message is as fast as the millionth.
    // A supervisor (the daemon holds every channel) touches only headers, tables and the
    // slots of a dead endpoint; prefaulting would charge it every page of every channel.
    const int populate = prefault == Prefault::yes ? MAP_POPULATE : 0;
    void* addr = mmap(nullptr, size, prot, MAP_SHARED | populate, fd, 0);
    if (addr == MAP_FAILED) {
        const int err = errno;
        return make_error(
            err == EACCES ? Errc::permission_denied : Errc::system_error,
            std::string("mmap of ") + region + " region" + (writable ? " for writing" : ""), err);
    }
    MappedRegion out{Mapping{addr, size}, {}, {}};
    std::memcpy(&out.header, addr, sizeof out.header);
    auto geo = verify_header(out.header, type, size, region);
    if (!geo) {
        return geo.take_error();
    }
    out.geo = *geo;
    return out;
}

} // namespace

Mapping& Mapping::operator=(Mapping&& o) noexcept {
    if (this != &o) {
        if (addr_ != nullptr) {
            munmap(addr_, size_);
        }
        addr_ = std::exchange(o.addr_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

void Mapping::drop_pages() const noexcept {
    if (addr_ != nullptr) {
        // Shared file pages stay in the memfd; only this process's page table entries go.
        (void)madvise(addr_, size_, MADV_DONTNEED);
    }
}

Mapping::~Mapping() {
    if (addr_ != nullptr) {
        munmap(addr_, size_);
    }
}

Result<Geometry> geometry_for(const ChannelSpec& spec) noexcept {
    auto bad = [&](const std::string& what) {
        return make_error(Errc::invalid_argument, quoted(spec.name) + ": " + what);
    };
    if (spec.name.empty() || spec.name.size() > kMaxNameLength) {
        return bad("name must be 1 to " + std::to_string(kMaxNameLength) + " bytes long");
    }
    for (char c : spec.name) {
        if (!valid_name_char(c)) {
            return bad(std::string("name contains '") + c +
                       "'; allowed are letters, digits and _ . : / -");
        }
    }
    if (!known_kind(static_cast<std::uint32_t>(spec.kind))) {
        return bad("unknown kind");
    }
    if (spec.kind == ChannelKind::rpc && spec.overflow != Overflow::block) {
        return bad("overflow 'drop' applies to broadcast channels only; an rpc channel never "
                   "drops a call");
    }
    if (spec.kind != ChannelKind::rpc && spec.reply_slot_size != 0) {
        return bad("reply_slot_size applies to rpc channels only");
    }
    if (spec.overflow != Overflow::block && spec.overflow != Overflow::drop) {
        return bad("unknown overflow policy");
    }
    if (spec.kind != ChannelKind::broadcast && spec.overflow == Overflow::drop) {
        return bad("overflow 'drop' applies to broadcast channels only; a " +
                   std::string{to_string(spec.kind)} + " never drops");
    }
    if (spec.slot_size < 1 || spec.slot_size > kMaxSlotSize) {
        return bad("slot_size " + std::to_string(spec.slot_size) + " is outside 1.." +
                   std::to_string(kMaxSlotSize));
    }
    if (spec.kind == ChannelKind::counters && spec.slot_size != kCounterSlotSize) {
        return bad("slot_size " + std::to_string(spec.slot_size) +
                   " of a counters channel must be " + std::to_string(kCounterSlotSize) +
                   " (a cell's name)");
    }
    // An rpc channel's depth follows a ring's rule, as its configuration key says.
    if (is_ring_kind(spec.kind) || spec.kind == ChannelKind::rpc) {
        if (spec.slot_count < 2 || spec.slot_count > kMaxSlotCount ||
            (spec.slot_count & (spec.slot_count - 1)) != 0) {
            return bad("slot_count " + std::to_string(spec.slot_count) +
                       " must be a power of two from 2 to " + std::to_string(kMaxSlotCount));
        }
    } else if (spec.slot_count < 1 || spec.slot_count > kMaxSlotCount) {
        return bad("slot_count " + std::to_string(spec.slot_count) + " is outside 1.." +
                   std::to_string(kMaxSlotCount));
    }
    if (spec.max_publishers < 1 || spec.max_publishers > kMaxEndpoints) {
        return bad("max_publishers " + std::to_string(spec.max_publishers) + " is outside 1.." +
                   std::to_string(kMaxEndpoints));
    }
    if (spec.max_subscribers < 1 || spec.max_subscribers > kMaxEndpoints) {
        return bad("max_subscribers " + std::to_string(spec.max_subscribers) + " is outside 1.." +
                   std::to_string(kMaxEndpoints));
    }
    if (spec.kind == ChannelKind::pool &&
        spec.max_publishers + spec.max_subscribers > kMaxPoolEndpoints) {
        return bad("max_publishers " + std::to_string(spec.max_publishers) + " + max_subscribers " +
                   std::to_string(spec.max_subscribers) + " is above the " +
                   std::to_string(kMaxPoolEndpoints) +
                   " endpoints a pool can have (each has a bit in every block's state)");
    }
    Geometry g{};
    g.slot_size = spec.slot_size;
    g.slot_count = spec.slot_count;
    g.pool = spec.kind == ChannelKind::pool;
    g.stride =
        g.pool ? Geometry::pool_stride_for(spec.slot_size) : Geometry::stride_for(spec.slot_size);
    g.max_publishers = spec.max_publishers;
    g.max_subscribers = spec.max_subscribers;
    g.has_cells = spec.kind == ChannelKind::queue &&
                  !is_spsc(spec.kind, spec.max_publishers, spec.max_subscribers);
    if (spec.kind == ChannelKind::rpc) {
        const std::uint64_t reply =
            spec.reply_slot_size == 0 ? spec.slot_size : spec.reply_slot_size;
        if (reply > kMaxSlotSize) {
            return bad("reply_slot_size " + std::to_string(reply) + " is outside 1.." +
                       std::to_string(kMaxSlotSize));
        }
        g.rpc = true;
        g.reply_slot_size = reply;
        g.reply_stride = Geometry::stride_for(reply);
        // Every caller has its own request and reply slots: refuse a product that would
        // overflow the 64-bit sizes (create_segments() then applies the memory limit).
        const std::uint64_t slots = g.call_slots();
        const std::uint64_t widest = std::max(g.stride, g.reply_stride);
        if (slots > (std::uint64_t{1} << 46) / widest) {
            return bad("max_callers " + std::to_string(spec.max_publishers) + " x depth " +
                       std::to_string(spec.slot_count) + " x slot size " +
                       std::to_string(std::max(spec.slot_size, reply)) + " is too large");
        }
    }
    return g;
}

Result<AttachedChannel> attach_channel(const ChannelFiles& files, PayloadAccess access,
                                       Prefault prefault) noexcept {
    auto control = map_region(files.control.get(), RegionType::control,
                              access != PayloadAccess::inspect, prefault);
    if (!control) {
        return control.take_error();
    }
    bool writable = access == PayloadAccess::writable;
    if (access == PayloadAccess::as_opened) {
        const int flags = fcntl(files.payload.get(), F_GETFL);
        writable = flags >= 0 && (flags & O_ACCMODE) == O_RDWR;
    }
    auto payload = map_region(files.payload.get(), RegionType::payload, writable, prefault);
    if (!payload) {
        return payload.take_error();
    }
    const RegionHeader& c = control->header;
    const RegionHeader& p = payload->header;
    // Name the first field the two headers disagree on: two channels' regions differ in
    // creation_id; one damaged header may differ in anything.
    const char* differing = c.creation_id != p.creation_id           ? "creation_id"
                            : c.kind != p.kind                       ? "kind"
                            : c.overflow != p.overflow               ? "overflow"
                            : c.slot_size != p.slot_size             ? "slot_size"
                            : c.slot_count != p.slot_count           ? "slot_count"
                            : c.max_publishers != p.max_publishers   ? "max_publishers"
                            : c.max_subscribers != p.max_subscribers ? "max_subscribers"
                            : c.reply_slot_size != p.reply_slot_size ? "reply_slot_size"
                            : std::strcmp(c.name, p.name) != 0       ? "name"
                                                                     : nullptr;
    if (differing != nullptr) {
        return make_error(Errc::corrupted, "control and payload regions of " + quoted(c.name) +
                                               " disagree on field '" + differing +
                                               "': they belong to different channels, or one "
                                               "header is damaged");
    }
    AttachedChannel a;
    a.geo = control->geo;
    a.info.name = c.name;
    a.info.kind = static_cast<ChannelKind>(c.kind);
    a.info.overflow = static_cast<Overflow>(c.overflow);
    a.info.slot_size = c.slot_size;
    a.info.slot_count = c.slot_count;
    a.info.max_publishers = c.max_publishers;
    a.info.max_subscribers = c.max_subscribers;
    a.info.creation_id = c.creation_id;
    a.info.reply_slot_size = a.geo.reply_slot_size;
    a.info.control_bytes = a.geo.control_bytes();
    a.info.payload_bytes = a.geo.payload_bytes();
    a.control_map = std::move(control->map);
    a.payload_map = std::move(payload->map);
    a.payload_writable = writable;
    std::byte* cb = a.control_map.data();
    a.control = reinterpret_cast<ControlBlock*>(cb + a.geo.control_block_offset());
    a.publishers = reinterpret_cast<EndpointRecord*>(cb + a.geo.publishers_offset());
    a.subscribers = reinterpret_cast<EndpointRecord*>(cb + a.geo.subscribers_offset());
    a.cells =
        a.geo.has_cells ? reinterpret_cast<std::uint64_t*>(cb + a.geo.cells_offset()) : nullptr;
    if (a.geo.rpc) {
        a.rpc_callers = reinterpret_cast<RpcCallerBlock*>(cb + a.geo.rpc_callers_offset());
        a.call_states = reinterpret_cast<std::uint64_t*>(cb + a.geo.rpc_states_offset());
        a.replies = cb + a.geo.rpc_replies_offset();
    }
    if (a.geo.pool) {
        a.pool = reinterpret_cast<PoolControl*>(cb + a.geo.pool_control_offset());
        a.block_states = reinterpret_cast<std::uint64_t*>(cb + a.geo.block_states_offset());
        a.block_next = reinterpret_cast<std::uint32_t*>(cb + a.geo.block_next_offset());
    }
    a.events = reinterpret_cast<EventRing*>(cb + a.geo.events_offset());
    std::byte* pb = a.payload_map.data();
    a.payload = reinterpret_cast<PayloadBlock*>(pb + a.geo.payload_block_offset());
    a.slots = pb + a.geo.slots_offset();
    return a;
}

Result<ChannelFiles> create_segments(const ChannelSpec& spec, std::uint64_t max_bytes) noexcept {
    auto geo = geometry_for(spec);
    if (!geo) {
        return geo.take_error();
    }
    const std::uint64_t total = geo->control_bytes() + geo->payload_bytes();
    if (total > max_bytes) {
        return make_error(Errc::limit_reached,
                          quoted(spec.name) + " needs " + std::to_string(total) +
                              " bytes (slot_size " + std::to_string(spec.slot_size) +
                              " x slot_count " + std::to_string(spec.slot_count) +
                              "), above the limit of " + std::to_string(max_bytes) + " bytes");
    }
    RegionHeader h{};
    h.layout_version = kLayoutVersion;
    h.kind = static_cast<std::uint32_t>(spec.kind);
    h.overflow = static_cast<std::uint32_t>(spec.overflow);
    h.max_publishers = spec.max_publishers;
    h.max_subscribers = spec.max_subscribers;
    h.slot_size = spec.slot_size;
    h.slot_count = spec.slot_count;
    h.slot_stride = geo->stride;
    h.reply_slot_size = geo->reply_slot_size;
    h.control_bytes = geo->control_bytes();
    h.payload_bytes = geo->payload_bytes();
    h.creation_id = random_creation_id();
    std::memcpy(h.name, spec.name.data(), spec.name.size());

    auto control = create_region(spec.name, RegionType::control, h, h.control_bytes);
    if (!control) {
        return control.take_error();
    }
    auto payload = create_region(spec.name, RegionType::payload, h, h.payload_bytes);
    if (!payload) {
        return payload.take_error();
    }
    ChannelFiles files{std::move(*control), std::move(*payload)};
    // Initial claim states: slot i is free for position i.
    auto attached = attach_channel(files, PayloadAccess::writable);
    if (!attached) {
        return attached.take_error();
    }
    // Blackboard elements, counter cells, rpc call slots and pool block states start as zeros
    // (ftruncate): version 0, free.
    for (std::uint64_t i = 0; is_ring_kind(spec.kind) && i < geo->slot_count; ++i) {
        if (attached->cells != nullptr) {
            attached->cells[i] = make_state(i, SlotPhase::free);
        }
        attached->slot(i)->state = make_state(i, SlotPhase::free);
    }
    if (spec.kind == ChannelKind::pool) {
        init_pool_free_list(*attached); // every block on the free list, in order
    }
    return files;
}

} // namespace shmbus::detail
