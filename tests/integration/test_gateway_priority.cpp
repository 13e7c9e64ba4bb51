// A bridge's threads run below the daemon's priority (docs/gateway.md, "Threads and priority"): two
// real daemons joined over TCP loopback, their threads read from /proc/PID/task/*/stat as an
// operator's `top -H` would show them — by name ("bridge:NAME") and nice value.
#include "bridge_daemons.hpp"
#include "daemon_process.hpp"
#include "gateway/bridge_rules.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;

namespace {

/// One thread of a process as /proc/PID/task/TID/stat shows it.
struct Task {
    long tid{0};
    std::string name;
    int nice{0};
};

/// Every thread of `pid` still there when read.
std::vector<Task> tasks_of(pid_t pid) {
    std::vector<Task> out;
    const std::filesystem::path dir = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator{dir, ec}) {
        std::ifstream in{entry.path() / "stat"};
        std::string line;
        if (!std::getline(in, line)) {
            continue; // the thread ended meanwhile
        }
        // "TID (NAME) STATE ...": the name may hold spaces and parentheses, so it ends at the
        // last ')'. After it, nice is the 17th field (field 19 of proc(5)).
        const auto open = line.find('(');
        const auto close = line.rfind(')');
        REQUIRE(open != std::string::npos);
        REQUIRE(close != std::string::npos);
        Task t;
        t.tid = std::stol(line.substr(0, open));
        t.name = line.substr(open + 1, close - open - 1);
        std::istringstream rest{line.substr(close + 1)};
        std::string field;
        for (int i = 0; i < 17 && rest >> field; ++i) {
        }
        REQUIRE(rest);
        t.nice = std::stoi(field);
        out.push_back(t);
    }
    return out;
}

/// The threads of `pid` named `name`.
std::vector<Task> named(const std::vector<Task>& tasks, const std::string& name) {
    std::vector<Task> out;
    std::copy_if(tasks.begin(), tasks.end(), std::back_inserter(out),
                 [&](const Task& t) { return t.name == name; });
    return out;
}

/// The nice value of `pid`'s main thread (its control loop).
int main_nice(pid_t pid) {
    for (const Task& t : tasks_of(pid)) {
        if (t.tid == pid) {
            return t.nice;
        }
    }
    FAIL("no main thread in /proc/" << pid << "/task");
    return 0;
}

} // namespace

TEST_CASE("a bridge's threads run its nice levels below the daemon's control loop") {
    TempDir dir;
    const std::string key = make_secret(dir);
    DaemonProcess ground{channels_yaml({bridged("jobs"), bridged("telemetry")}) +
                         "bridges:\n"
                         "  - name: robot\n"
                         "    listen: tcp://127.0.0.1:0\n"
                         "    secret_file: " +
                         key +
                         "\n"
                         "    nice: 0\n"
                         "    export: [jobs]\n"
                         "    import: [telemetry]\n"};
    REQUIRE(ground.start());
    const auto port = listening_port(ground, "robot");
    DaemonProcess robot{channels_yaml({bridged("jobs"), bridged("telemetry")}) +
                        "bridges:\n"
                        "  - name: ground\n"
                        "    connect: tcp://127.0.0.1:" +
                        std::to_string(port) +
                        "\n"
                        "    secret_file: " +
                        key +
                        "\n"
                        "    export: [telemetry]\n"
                        "    import: [jobs]\n"};
    REQUIRE(robot.start());
    REQUIRE(wait_streaming(robot, "ground", 2));
    REQUIRE(wait_streaming(ground, "robot", 2));
    check_flow(robot, "telemetry", ground, "telemetry", 100);
    check_flow(ground, "jobs", robot, "jobs", 100);

    // Each end: the link reader (the runner's thread) and one thread per stream.
    constexpr std::size_t kBridgeThreads = 3;
    REQUIRE(wait_until(
        [&] { return named(tasks_of(robot.pid()), "bridge:ground").size() >= kBridgeThreads; }));
    REQUIRE(wait_until(
        [&] { return named(tasks_of(ground.pid()), "bridge:robot").size() >= kBridgeThreads; }));

    // The default: 10 levels below the daemon (at most nice 19), its control loop untouched.
    const int robot_loop = main_nice(robot.pid());
    const int lowered = std::min(robot_loop + shmbus::gateway::kDefaultBridgeNice, 19);
    for (const Task& t : named(tasks_of(robot.pid()), "bridge:ground")) {
        INFO("robot's thread " << t.tid);
        CHECK(t.nice == lowered);
    }
    // `nice: 0`: the bridge keeps the daemon's priority.
    const int ground_loop = main_nice(ground.pid());
    for (const Task& t : named(tasks_of(ground.pid()), "bridge:robot")) {
        INFO("ground's thread " << t.tid);
        CHECK(t.nice == ground_loop);
    }
    // Where the tests run at nice 19 already, the default cannot lower anything further.
    if (robot_loop < 19) {
        CHECK(lowered > robot_loop);
    }
}
