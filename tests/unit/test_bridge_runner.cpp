// Tests of what a bridge's runner does to its own thread before its links (bridge_runner.hpp,
// "Priority"): it lowers its priority, the kernel behaviours that relies on — a thread's nice
// value is its own, and a thread it starts inherits it and its name —, and what it does where
// a seccomp filter forbids setpriority (one log line, and the bridge runs). Each test runs in
// a thread of its own, so that the test program's main thread keeps its priority and has no
// filter (a seccomp filter installed without TSYNC is the calling thread's and its children's).
#include "gateway/bridge_runner.hpp"
#include "skip.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <mutex>
#include <pthread.h>
#include <string>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

using shmbus::gateway::lower_thread_priority;

namespace {

/// The calling thread's nice value.
int own_nice() {
    errno = 0;
    const int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
    REQUIRE(errno == 0);
    return n;
}

/// The calling thread's name.
std::string own_name() {
    std::array<char, 16> name{};
    REQUIRE(pthread_getname_np(pthread_self(), name.data(), name.size()) == 0);
    return name.data();
}

/// Makes setpriority fail with EPERM in the calling thread and the threads it starts from
/// now on, as the system unit's ~@resources did. Native system calls only: the test runs
/// nothing else.
void forbid_setpriority() {
    std::array<sock_filter, 4> program{{
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setpriority, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    }};
    sock_fprog filter{static_cast<unsigned short>(program.size()), program.data()};
    REQUIRE(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    REQUIRE(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) == 0);
}

/// Under `nice -n 19`, a bridge's thread is at the floor already and never calls setpriority:
/// a filter that forbids it changes nothing to observe.
constexpr const char* kAtTheFloor =
    "the tests run at nice 19: a thread has no priority left to give up, so setpriority is "
    "never called";

/// Runs `fn` in a new thread and waits for it.
template <typename Fn>
void in_thread(Fn fn) {
    std::thread t{fn};
    t.join();
}

} // namespace

TEST_CASE("a thread's nice value is its own: lowering it leaves its process's others alone") {
    const int main_before = own_nice();
    int lowered = 0;
    int wanted = 0;
    in_thread([&] {
        wanted = std::min(own_nice() + 5, 19);
        auto r = lower_thread_priority(5);
        REQUIRE(r.has_value());
        lowered = own_nice();
        CHECK(r.value() == lowered);
    });
    CHECK(lowered == wanted);
    CHECK(own_nice() == main_before);
}

TEST_CASE("a thread inherits the nice value and the name of the thread that starts it") {
    int parent = 0;
    int child = 0;
    std::string child_name;
    in_thread([&] {
        REQUIRE(pthread_setname_np(pthread_self(), "bridge:test") == 0);
        REQUIRE(lower_thread_priority(3).has_value());
        parent = own_nice();
        in_thread([&] {
            child = own_nice();
            child_name = own_name();
        });
    });
    CHECK(child == parent);
    CHECK(child_name == "bridge:test");
}

TEST_CASE("lowering the priority stops at nice 19, and 0 levels change nothing") {
    in_thread([] {
        const int before = own_nice();
        auto same = lower_thread_priority(0);
        REQUIRE(same.has_value());
        CHECK(same.value() == before);
        CHECK(own_nice() == before);
        auto lowest = lower_thread_priority(40);
        REQUIRE(lowest.has_value());
        CHECK(lowest.value() == 19);
        CHECK(own_nice() == 19);
        auto again = lower_thread_priority(1);
        REQUIRE(again.has_value());
        CHECK(again.value() == 19);
    });
}

TEST_CASE("a seccomp filter without setpriority is an error naming the call and EPERM") {
    if (own_nice() >= 19) {
        SHMBUS_SKIP(kAtTheFloor);
    }
    in_thread([] {
        forbid_setpriority();
        const int before = own_nice();
        auto r = lower_thread_priority(10);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == shmbus::Errc::system_error);
        CHECK(r.error().sys_errno == EPERM);
        CHECK_THAT(r.error().message(), Catch::Contains("setpriority"));
        CHECK(own_nice() == before);
    });
}

TEST_CASE("a bridge that may not lower its priority says so once and runs at the daemon's") {
    if (own_nice() >= 19) {
        SHMBUS_SKIP(kAtTheFloor);
    }
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> lines;
    in_thread([&] {
        forbid_setpriority(); // the runner's thread inherits the filter
        auto address = shmbus::gateway::parse_link("tcp://127.0.0.1:1");
        REQUIRE(address.has_value());
        shmbus::gateway::BridgeConfig config;
        config.name = "filtered";
        config.address = address.value();
        shmbus::gateway::ChannelRule rule;
        rule.channel = "telemetry";
        config.exports.push_back(rule);
        shmbus::gateway::BridgeRunner runner{config, shmbus::ClientOptions{}, "test", 1,
                                             [&](std::string_view line) {
                                                 std::lock_guard lock{mu};
                                                 lines.emplace_back(line);
                                                 cv.notify_all();
                                             }};
        runner.start();
        {
            std::unique_lock lock{mu};
            REQUIRE(cv.wait_for(lock, std::chrono::seconds{30}, [&] {
                return std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
                    return l.find("connecting") != std::string::npos;
                });
            }));
        }
        runner.stop();
    });
    std::lock_guard lock{mu};
    const auto refused = std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
        return l.find("its threads run at the daemon's priority") != std::string::npos;
    });
    CHECK(refused == 1);
    CHECK(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
        return l.find("Operation not permitted") != std::string::npos &&
               l.find("bridge 'filtered'") != std::string::npos;
    }));
}
