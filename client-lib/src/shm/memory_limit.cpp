// The memory cgroup arithmetic of memory_limit.hpp: find this process's group in each
// mounted hierarchy that has the memory controller, then walk up to the hierarchy's root.
#include "shm/memory_limit.hpp"

#include <charconv>
#include <fstream>
#include <vector>

namespace shmbus::detail {
namespace {

/// A limit at or above this is "no limit" (v1 writes PAGE_COUNTER_MAX pages, about 2^63).
constexpr std::uint64_t kUnlimited = std::uint64_t{1} << 60;

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> parts;
    for (;;) {
        const auto at = text.find(sep);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) {
            return parts;
        }
        text.remove_prefix(at + 1);
    }
}

std::optional<std::uint64_t> number(const std::optional<std::string>& line) {
    if (!line) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    const char* end = line->data() + line->size();
    const auto [ptr, ec] = std::from_chars(line->data(), end, v);
    if (ec != std::errc{} || ptr != end) {
        return std::nullopt; // "max", or something we do not understand: no limit known
    }
    return v;
}

/// A mounted cgroup hierarchy: where it is mounted, and which of its groups is mounted there.
struct Mount {
    std::string point;
    std::string root;
};

/// The mount of the v2 hierarchy (`v2`) or of the v1 hierarchy with the memory controller.
std::optional<Mount> find_mount(std::string_view mountinfo, bool v2) {
    for (const std::string_view line : split(mountinfo, '\n')) {
        const auto dash = line.find(" - ");
        if (dash == std::string_view::npos) {
            continue;
        }
        const auto before = split(line.substr(0, dash), ' ');
        const auto after = split(line.substr(dash + 3), ' ');
        if (before.size() < 5 || after.size() < 3) {
            continue;
        }
        const bool is_v2 = after[0] == "cgroup2";
        const bool is_v1_memory = after[0] == "cgroup" && [&] {
            for (const std::string_view opt : split(after[2], ',')) {
                if (opt == "memory") {
                    return true;
                }
            }
            return false;
        }();
        if (v2 ? is_v2 : is_v1_memory) {
            return Mount{std::string{before[4]}, std::string{before[3]}};
        }
    }
    return std::nullopt;
}

/// This process's group in the v2 hierarchy ("0::/path") or the v1 memory one.
std::optional<std::string> find_group(std::string_view proc_self_cgroup, bool v2) {
    for (const std::string_view line : split(proc_self_cgroup, '\n')) {
        const auto first = line.find(':');
        const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
        if (second == std::string_view::npos) {
            continue;
        }
        const std::string_view controllers = line.substr(first + 1, second - first - 1);
        bool match = v2 && line.substr(0, first) == "0" && controllers.empty();
        if (!v2) {
            for (const std::string_view c : split(controllers, ',')) {
                match = match || c == "memory";
            }
        }
        if (match) {
            return std::string{line.substr(second + 1)};
        }
    }
    return std::nullopt;
}

/// The tightest room from `group` up to the mount point of its hierarchy.
std::optional<MemoryRoom> walk_up(const Mount& mount, std::string group, bool v2,
                                  const ReadFirstLine& read_first_line) {
    // The part of the group's path below the mounted group.
    if (mount.root != "/" && group.compare(0, mount.root.size(), mount.root) == 0) {
        group.erase(0, mount.root.size());
    }
    while (group.size() > 1 && group.back() == '/') {
        group.pop_back();
    }
    std::string dir = mount.point + (group == "/" ? "" : group);
    const char* limit_file = v2 ? "/memory.max" : "/memory.limit_in_bytes";
    const char* usage_file = v2 ? "/memory.current" : "/memory.usage_in_bytes";
    std::optional<MemoryRoom> tightest;
    for (;;) {
        const auto limit = number(read_first_line(dir + limit_file));
        const auto usage = number(read_first_line(dir + usage_file));
        if (limit && usage && *limit < kUnlimited) {
            const std::uint64_t left = *usage >= *limit ? 0 : *limit - *usage;
            if (!tightest || left < tightest->bytes_left) {
                tightest = MemoryRoom{left, *limit, dir};
            }
        }
        if (dir.size() <= mount.point.size()) {
            return tightest;
        }
        dir.erase(dir.rfind('/'));
        if (dir.size() < mount.point.size()) {
            return tightest;
        }
    }
}

std::string read_all(const char* path) {
    std::ifstream in(path);
    return std::string{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

} // namespace

std::optional<MemoryRoom> memory_room(std::string_view proc_self_cgroup, std::string_view mountinfo,
                                      const ReadFirstLine& read_first_line) {
    std::optional<MemoryRoom> tightest;
    for (const bool v2 : {true, false}) {
        const auto mount = find_mount(mountinfo, v2);
        const auto group = find_group(proc_self_cgroup, v2);
        if (!mount || !group) {
            continue;
        }
        const auto room = walk_up(*mount, *group, v2, read_first_line);
        if (room && (!tightest || room->bytes_left < tightest->bytes_left)) {
            tightest = room;
        }
    }
    return tightest;
}

std::optional<MemoryRoom> memory_room() {
    return memory_room(read_all("/proc/self/cgroup"), read_all("/proc/self/mountinfo"),
                       [](const std::string& path) -> std::optional<std::string> {
                           std::ifstream in(path);
                           std::string line;
                           if (!in || !std::getline(in, line)) {
                               return std::nullopt;
                           }
                           return line;
                       });
}

} // namespace shmbus::detail
