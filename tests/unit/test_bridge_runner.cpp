// Tests of what a bridge's runner does to its own thread before its links (bridge_runner.hpp,
// "Priority"): it lowers its priority, and the kernel behaviours that rely on — a thread's
// nice value is its own, and a thread it starts inherits it and its name. Each test runs in
// a thread of its own, so that the test program's main thread keeps its priority.
#include "gateway/bridge_runner.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <pthread.h>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

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
