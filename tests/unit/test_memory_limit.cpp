// memory_room(): the room under the tightest memory cgroup limit above a process, from the
// texts of /proc/self/cgroup and /proc/self/mountinfo and the group files (a map here).
#include "shm/memory_limit.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <string>

using shmbus::detail::memory_room;

namespace {

/// Group files as the kernel shows them, first lines only.
struct Files {
    std::map<std::string, std::string> lines;
    [[nodiscard]] shmbus::detail::ReadFirstLine reader() const {
        return [this](const std::string& path) -> std::optional<std::string> {
            const auto it = lines.find(path);
            if (it == lines.end()) {
                return std::nullopt;
            }
            return it->second;
        };
    }
};

const char* const kV2Mounts =
    "25 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
const char* const kV1Mounts =
    "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "31 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";

} // namespace

TEST_CASE("cgroup v2: the tightest of the group and its ancestors decides") {
    Files f;
    const std::string app = "/sys/fs/cgroup/system.slice/shmbusd.service";
    f.lines[app + "/memory.max"] = "1000000";
    f.lines[app + "/memory.current"] = "400000";
    f.lines["/sys/fs/cgroup/system.slice/memory.max"] = "max";
    f.lines["/sys/fs/cgroup/system.slice/memory.current"] = "9000000";
    auto room = memory_room("0::/system.slice/shmbusd.service\n", kV2Mounts, f.reader());
    REQUIRE(room);
    CHECK(room->bytes_left == 600000);
    CHECK(room->limit == 1000000);
    CHECK(room->group == app);

    // A parent with less room left wins over the group's own limit.
    f.lines["/sys/fs/cgroup/system.slice/memory.max"] = "9100000";
    room = memory_room("0::/system.slice/shmbusd.service\n", kV2Mounts, f.reader());
    REQUIRE(room);
    CHECK(room->bytes_left == 100000);
    CHECK(room->group == "/sys/fs/cgroup/system.slice");
}

TEST_CASE("cgroup v2: usage over the limit leaves no room, and no limit gives nothing") {
    Files f;
    f.lines["/sys/fs/cgroup/a/memory.max"] = "100";
    f.lines["/sys/fs/cgroup/a/memory.current"] = "150";
    auto room = memory_room("0::/a\n", kV2Mounts, f.reader());
    REQUIRE(room);
    CHECK(room->bytes_left == 0);

    f.lines["/sys/fs/cgroup/a/memory.max"] = "max";
    CHECK_FALSE(memory_room("0::/a\n", kV2Mounts, f.reader()));
    // The root group has no memory.max at all; a process there has no limit.
    CHECK_FALSE(memory_room("0::/\n", kV2Mounts, f.reader()));
}

TEST_CASE("cgroup v1: the memory hierarchy's group, and v1's 'no limit' value") {
    Files f;
    const std::string group = "/sys/fs/cgroup/memory/jobs/one";
    f.lines[group + "/memory.limit_in_bytes"] = "8388608";
    f.lines[group + "/memory.usage_in_bytes"] = "1048576";
    f.lines["/sys/fs/cgroup/memory/jobs/memory.limit_in_bytes"] = "9223372036854771712";
    f.lines["/sys/fs/cgroup/memory/jobs/memory.usage_in_bytes"] = "5";
    const char* const cgroup = "9:name=systemd:/\n4:memory:/jobs/one\n2:cpu,cpuacct:/\n0::/\n";
    auto room = memory_room(cgroup, kV1Mounts, f.reader());
    REQUIRE(room);
    CHECK(room->bytes_left == 8388608 - 1048576);
    CHECK(room->group == group);
}

TEST_CASE("unreadable or malformed cgroup files leave the decision to fallocate") {
    Files f;
    f.lines["/sys/fs/cgroup/a/memory.max"] = "12x";
    f.lines["/sys/fs/cgroup/a/memory.current"] = "1";
    CHECK_FALSE(memory_room("0::/a\n", kV2Mounts, f.reader()));
    CHECK_FALSE(memory_room("garbage\n", kV2Mounts, f.reader()));
    CHECK_FALSE(memory_room("0::/a\n", "not a mountinfo line\n", f.reader()));
    CHECK_FALSE(memory_room("", "", f.reader()));
}
