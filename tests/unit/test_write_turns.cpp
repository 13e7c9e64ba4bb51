// Tests of WriteTurns (gateway/write_turns.hpp), the order in which a bridge link's writers
// take the link: the highest priority first, first come first served within a priority,
// the session's own frames above every export, and how many waited at each level.
#include "gateway/write_turns.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using shmbus::gateway::WriteTurns;
using namespace std::chrono_literals;

namespace {

std::uint32_t total_waiting(const WriteTurns& turns) {
    const auto now = turns.waiting().now;
    return std::accumulate(now.begin(), now.end(), std::uint32_t{0});
}

/// Waits until `count` writers wait for their turn; false after a generous deadline.
bool wait_for_waiting(const WriteTurns& turns, std::uint32_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (total_waiting(turns) != count) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::yield();
    }
    return true;
}

} // namespace

TEST_CASE("a free link is taken at once, whatever the priority") {
    WriteTurns turns;
    turns.lock(0);
    turns.unlock();
    turns.lock(WriteTurns::kControlPriority);
    turns.unlock();
    CHECK(total_waiting(turns) == 0);
    CHECK(turns.waiting().most == WriteTurns::Waiting{}.most);
}

TEST_CASE("waiting writers take the link by priority, first come first served within one, the "
          "session's own frames first") {
    WriteTurns turns;
    std::mutex order_mu;
    std::vector<std::string> order;
    std::vector<std::thread> writers;
    turns.lock(0); // the link is busy: everyone below queues
    const std::vector<std::pair<std::string, unsigned>> arrivals{
        {"a2", 2}, {"b5", 5}, {"c2", 2}, {"control", WriteTurns::kControlPriority},
        {"d5", 5}, {"e0", 0}};
    std::uint32_t queued = 0;
    for (const auto& arrival : arrivals) {
        writers.emplace_back(
            [&turns, &order_mu, &order, name = arrival.first, priority = arrival.second] {
                const WriteTurns::Turn turn{turns, priority};
                std::lock_guard lock{order_mu};
                order.push_back(name);
            });
        REQUIRE(wait_for_waiting(turns, ++queued)); // in this order, one after the other
    }
    const WriteTurns::Waiting before = turns.waiting();
    CHECK(before.now[2] == 2);
    CHECK(before.now[5] == 2);
    CHECK(before.now[0] == 1);
    CHECK(before.now[WriteTurns::kControlPriority] == 1);
    turns.unlock();
    for (auto& w : writers) {
        w.join();
    }
    CHECK(order == std::vector<std::string>{"control", "b5", "d5", "a2", "c2", "e0"});
    const WriteTurns::Waiting after = turns.waiting();
    CHECK(after.now == WriteTurns::Waiting{}.now);
    CHECK(after.most[2] == 2);
    CHECK(after.most[5] == 2);
    CHECK(after.most[0] == 1);
    CHECK(after.most[WriteTurns::kControlPriority] == 1);
    CHECK(after.most[7] == 0);
}

TEST_CASE("a writer that asks again goes behind the writers of its priority already waiting") {
    // A message in fragments asks for a turn per fragment: the other streams of its priority
    // write between them.
    WriteTurns turns;
    std::mutex order_mu;
    std::vector<std::string> order;
    turns.lock(3); // the first fragment is being written
    std::thread other{[&] {
        const WriteTurns::Turn turn{turns, 3};
        std::lock_guard lock{order_mu};
        order.push_back("other");
    }};
    REQUIRE(wait_for_waiting(turns, 1));
    std::thread next_fragment{[&] {
        const WriteTurns::Turn turn{turns, 3};
        std::lock_guard lock{order_mu};
        order.push_back("second fragment");
    }};
    REQUIRE(wait_for_waiting(turns, 2));
    turns.unlock();
    other.join();
    next_fragment.join();
    CHECK(order == std::vector<std::string>{"other", "second fragment"});
}
