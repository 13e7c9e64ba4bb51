// libFuzzer target for the segment validator (client-lib/src/shm/segment.cpp) and the code
// that reads a control region after it: the input is a whole control region.
//
// The control region is writable by every participant of a channel, so any process may
// have written anything into it: attaching must refuse what does not describe a channel,
// and whatever it accepts must never make a reader fault, read out of bounds or hang (ASan
// and UBSan are on). Each input becomes a sealed memfd holding exactly its bytes, beside a
// payload region built to match the header the input claims (so that the fuzzer does not
// have to guess a random creation id). Then, in the order a tool, a subscriber and the
// daemon meet a channel:
//  1. inspect_channel() and read_stats() attach it read-only (PROT_READ, as shmbusctl and
//     the daemon's descriptor-store check do): a refusal must be Errc::corrupted or
//     Errc::version_mismatch, an acceptance must report the header's own fields;
//  2. a subscriber attaches with a read-only payload and polls a few times (on a pool, a
//     reader adopts and drops handles to a few blocks, and gives back what it adopted);
//  3. a supervisor lists the endpoint tables and reclaims every entry, as the daemon does
//     when a client dies.
// Nothing of it may block: every call here is a try_ form or returns at once.
#include "shm/layout.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/pool.hpp>
#include <shmbus/supervisor.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

using namespace shmbus;
using detail::RegionHeader;

void check(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

/// Largest payload region built for an input; a header claiming more gets a 4 KiB payload,
/// which the validator must refuse as the wrong size.
constexpr std::uint64_t kMaxPayloadBytes = std::uint64_t{4} << 20;

/// A sealed memfd holding `size` bytes, the first `bytes.size()` of them copied in.
UniqueFd sealed_region(std::span<const std::uint8_t> bytes, std::uint64_t size) {
    UniqueFd fd{memfd_create("fuzz_segment", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
    check(static_cast<bool>(fd));
    check(ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n =
            pwrite(fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
        check(n > 0);
        done += static_cast<std::size_t>(n);
    }
    check(fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
    return fd;
}

/// A payload region whose header agrees with the control header `control` claims.
UniqueFd matching_payload(const RegionHeader& control) {
    RegionHeader header = control;
    header.magic = detail::kPayloadMagic;
    header.region_type = static_cast<std::uint32_t>(detail::RegionType::payload);
    const bool plausible =
        control.payload_bytes >= sizeof(RegionHeader) && control.payload_bytes <= kMaxPayloadBytes;
    const std::uint64_t size = plausible ? control.payload_bytes : 4096;
    std::array<std::uint8_t, sizeof header> bytes{};
    std::memcpy(bytes.data(), &header, sizeof header);
    return sealed_region(bytes, size);
}

/// A new read-only descriptor of the same memfd, as the daemon gives subscribers.
UniqueFd read_only(const UniqueFd& fd) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd.get());
    UniqueFd ro{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    check(static_cast<bool>(ro));
    return ro;
}

ChannelFiles copy_of(const ChannelFiles& files) {
    auto copy = files.duplicate();
    check(static_cast<bool>(copy));
    return std::move(*copy);
}

void poll_as_subscriber(const ChannelFiles& files) {
    ChannelFiles mine{copy_of(files).control, read_only(files.payload)};
    auto subscriber = Subscriber::attach(std::move(mine));
    if (!subscriber) {
        return;
    }
    std::array<std::byte, 256> buffer{};
    for (int i = 0; i < 8; ++i) {
        auto got = subscriber->try_receive_copy(buffer);
        if (!got && got.code() == Errc::would_block) {
            break;
        }
    }
    auto batch = subscriber->try_receive(4);
    if (batch) {
        (void)subscriber->release(*batch);
    }
}

void use_as_pool_reader(const ChannelFiles& files, std::uint64_t creation_id) {
    ChannelFiles mine{copy_of(files).control, read_only(files.payload)};
    auto pool = Pool::attach(std::move(mine), Role::subscriber);
    if (!pool) {
        return;
    }
    for (std::uint32_t i = 0; i < 4; ++i) {
        const BlockHandle handle{creation_id, i, i};
        if (auto block = pool->adopt(handle); block) {
            check(block->data().size() == pool->block_size());
            (void)block->release();
        }
        (void)pool->drop(handle);
    }
}

void reclaim_as_daemon(const ChannelFiles& files) {
    auto supervisor = ChannelSupervisor::attach(copy_of(files));
    if (!supervisor) {
        return;
    }
    (void)supervisor->stats();
    for (const EndpointEntry& entry : supervisor->endpoints()) {
        if (entry.role == Role::publisher) {
            (void)supervisor->reclaim_publisher(entry.index);
        } else {
            (void)supervisor->reclaim_subscriber(entry.index);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0; // a memfd of 0 bytes cannot be mapped: no region at all
    }
    RegionHeader claimed{};
    std::memcpy(&claimed, data, std::min(size, sizeof claimed));
    const std::span<const std::uint8_t> input(data, size);
    ChannelFiles files{sealed_region(input, size), matching_payload(claimed)};

    auto info = inspect_channel(files);
    auto stats = read_stats(files);
    check(static_cast<bool>(info) == static_cast<bool>(stats));
    if (!info) {
        check(info.code() == Errc::corrupted || info.code() == Errc::version_mismatch);
        check(!info.error().message().empty());
        return 0;
    }
    check(info->slot_size == claimed.slot_size && info->slot_count == claimed.slot_count);
    check(info->control_bytes == size && info->creation_id == claimed.creation_id);
    check(info->name.size() < sizeof claimed.name);

    poll_as_subscriber(files);
    use_as_pool_reader(files, info->creation_id);
    reclaim_as_daemon(files);
    return 0;
}
