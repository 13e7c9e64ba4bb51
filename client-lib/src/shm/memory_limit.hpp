// How much memory this process's memory cgroup still lets it charge, read before a segment
// reserves its pages.
//
// posix_fallocate() on a memfd charges every page to the caller's memory cgroup at once. When
// the cgroup's limit is reached the kernel does not fail the call while the OOM killer is
// enabled (the default): it kills a process of the group, very likely the daemon doing the
// reserving. So a segment that cannot fit is refused by arithmetic first: the room left is
// the smallest (limit - usage) over the process's cgroup and each of its ancestors, cgroup
// v2 (memory.max, memory.current) or v1 (memory.limit_in_bytes, memory.usage_in_bytes).
// The check is advisory: usage moves while we look, and fallocate's own error stays the
// last word; it turns the common case (a channel larger than the whole limit, or than what
// is left of it) into Errc::no_memory instead of a SIGKILL.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace shmbus::detail {

/// The tightest memory limit above this process.
struct MemoryRoom {
    std::uint64_t bytes_left{0}; ///< limit - usage of the tightest group (0 if over it)
    std::uint64_t limit{0};      ///< that group's limit
    std::string group;           ///< that group's directory, for messages
};

/// The room under the tightest memory cgroup limit above this process, or nothing when no
/// limit applies or the cgroup files cannot be read (then only fallocate decides).
[[nodiscard]] std::optional<MemoryRoom> memory_room();

/// Reads a file's first line, or nothing.
using ReadFirstLine = std::function<std::optional<std::string>(const std::string& path)>;

/// The same, from the given texts and reader (for tests): `proc_self_cgroup` and `mountinfo`
/// as /proc/self/cgroup and /proc/self/mountinfo read.
[[nodiscard]] std::optional<MemoryRoom> memory_room(std::string_view proc_self_cgroup,
                                                    std::string_view mountinfo,
                                                    const ReadFirstLine& read_first_line);

} // namespace shmbus::detail
