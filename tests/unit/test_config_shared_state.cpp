// The configuration of the shared-state kinds (blackboard, counters, pool): a name and a kind
// are a complete entry, their own defaults, element and block counts that need not be powers
// of two, the fixed slot size of counters, blocks of up to 1 GiB, the ceiling on a pool's
// endpoints, and errors with their file:line:column.
#include "config.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace shmbus;
using namespace shmbus::daemon;

namespace {

ParseOutcome parse(std::string_view text) {
    return parse_config(text, "shmbusd.yaml");
}

std::string only_error(std::string_view text) {
    const ParseOutcome outcome = parse(text);
    INFO(text);
    REQUIRE(outcome.errors.size() == 1);
    return to_string(outcome.errors.front());
}

const ChannelConfig& only_channel(const ParseOutcome& outcome) {
    for (const ConfigError& e : outcome.errors) {
        UNSCOPED_INFO(to_string(e));
    }
    REQUIRE(outcome.ok());
    REQUIRE(outcome.config);
    REQUIRE(outcome.config->channels.size() == 1);
    return outcome.config->channels.front();
}

} // namespace

TEST_CASE("a blackboard entry with only a name and a kind takes the blackboard defaults") {
    const auto outcome = parse("channels:\n  - {name: board, kind: blackboard}\n");
    const ChannelSpec& s = only_channel(outcome).spec;
    CHECK(s.kind == ChannelKind::blackboard);
    CHECK(s.slot_size == kDefaultElementSize);
    CHECK(s.slot_count == kDefaultElementCount);
    CHECK(s.max_publishers == kDefaultSharedStateWriters);
    CHECK(s.max_subscribers == kDefaultBroadcastSubscribers);
    CHECK(channel_bytes(s)); // a valid geometry
}

TEST_CASE("a counters entry with only a name and a kind takes the counters defaults") {
    const auto outcome = parse("channels:\n  - {name: stats, kind: counters}\n");
    const ChannelSpec& s = only_channel(outcome).spec;
    CHECK(s.kind == ChannelKind::counters);
    CHECK(s.slot_size == kCounterSlotSize);
    CHECK(s.slot_count == kDefaultElementCount);
    CHECK(channel_bytes(s));
}

TEST_CASE("a blackboard may have any element count, given before or after its kind") {
    const auto before = parse("channels:\n  - {name: b, slot_count: 7, kind: blackboard}\n");
    CHECK(only_channel(before).spec.slot_count == 7);
    const auto one = parse("channels:\n  - {name: b, kind: blackboard, slot_count: 1, "
                           "slot_size: 3, max_publishers: 1}\n");
    const ChannelSpec& s = only_channel(one).spec;
    CHECK(s.slot_count == 1);
    CHECK(s.slot_size == 3);
    CHECK(s.max_publishers == 1);
}

TEST_CASE("a ring still needs a power of two from 2, wherever its kind is written") {
    CHECK(only_error("channels:\n  - {name: a, slot_count: 7, kind: queue}\n") ==
          "shmbusd.yaml:2:27: error: 'slot_count' must be a power of two, got 7 (nearest: 4 or "
          "8)");
    CHECK(only_error("channels:\n  - {name: a, kind: broadcast, slot_count: 1}\n") ==
          "shmbusd.yaml:2:44: error: 'slot_count' must be between 2 and 16777216, got 1");
}

TEST_CASE("shared-state entries report their own errors with file, line and column") {
    CHECK(only_error("channels:\n  - {name: c, kind: counters, slot_size: 64}\n") ==
          "shmbusd.yaml:2:42: error: 'slot_size' of a counters channel is fixed at 48 (a "
          "cell's name); leave it out");
    CHECK(only_error("channels:\n  - {name: b, kind: blackboard, slot_count: 0}\n") ==
          "shmbusd.yaml:2:45: error: 'slot_count' must be between 1 and 16777216, got 0");
    CHECK(only_error("channels:\n  - {name: b, kind: blackboard, overflow: drop}\n") ==
          "shmbusd.yaml:2:43: error: overflow 'drop' is only valid on a broadcast channel; a "
          "blackboard never drops");
    CHECK(only_error("channels:\n  - {name: b, kind: blackbord}\n") ==
          "shmbusd.yaml:2:21: error: unknown channel kind 'blackbord' (did you mean "
          "'blackboard'?)");
}

TEST_CASE("a pool entry with only a name and a kind takes the pool defaults") {
    const auto outcome = parse("channels:\n  - {name: big, kind: pool}\n");
    const ChannelSpec& s = only_channel(outcome).spec;
    CHECK(s.kind == ChannelKind::pool);
    CHECK(s.slot_size == kDefaultBlockSize);
    CHECK(s.slot_count == kDefaultBlockCount);
    CHECK(s.max_publishers == kDefaultSharedStateWriters);
    CHECK(s.max_subscribers == kDefaultBroadcastSubscribers);
    CHECK(s.overflow == Overflow::block);
    CHECK(channel_bytes(s)); // a valid geometry
}

TEST_CASE("a pool takes any block count and blocks of up to 1 GiB") {
    const auto outcome = parse("limits: {max_total_segment_bytes: 4GiB}\n"
                               "channels:\n  - {name: frames, kind: pool, slot_size: 1GiB, "
                               "slot_count: 3, max_publishers: 1, max_subscribers: 4}\n");
    const ChannelSpec& s = only_channel(outcome).spec;
    CHECK(s.slot_size == kMaxSlotSize);
    CHECK(s.slot_count == 3);
    CHECK(s.max_publishers == 1);
    CHECK(s.max_subscribers == 4);
    CHECK(channel_bytes(s));
}

TEST_CASE(
    "a pool with more endpoints than its blocks have holder bits is an error where it says so") {
    CHECK(only_error("channels:\n  - {name: p, kind: pool, max_subscribers: 20}\n") ==
          "shmbusd.yaml:2:44: error: a pool has at most 24 endpoints (each has a bit in every "
          "block's state), but 'max_publishers' 8 + 'max_subscribers' 20 make 28");
    CHECK(only_error("channels:\n  - {name: p, kind: pool, slot_size: 0}\n") ==
          "shmbusd.yaml:2:38: error: 'slot_size' must be between 1 B and 1 GiB, got 0 B");
    CHECK(only_error("channels:\n  - {name: p, kind: pool, overflow: drop}\n") ==
          "shmbusd.yaml:2:37: error: overflow 'drop' is only valid on a broadcast channel; a "
          "pool never drops");
}
