// The daemon's discovery table: which endpoint index a client gets, what the limits say, and
// that a client's going away frees exactly what it held.
#include "channel_registry.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

using namespace shmbus;
using namespace shmbus::daemon;

namespace {

ChannelSpec small_queue(const std::string& stem, std::uint32_t subscribers = 2) {
    ChannelSpec s;
    s.name = stem + "-" + std::to_string(::getpid());
    s.kind = ChannelKind::queue;
    s.slot_size = 64;
    s.slot_count = 8;
    s.max_publishers = 1;
    s.max_subscribers = subscribers;
    return s;
}

EndpointClaim client(std::uint64_t id) {
    return EndpointClaim{id,   Role::subscriber,
                         0,    100 + static_cast<std::uint32_t>(id),
                         1000, "client-" + std::to_string(id)};
}

} // namespace

TEST_CASE("lowest_free_index picks the lowest index nobody holds") {
    CHECK(lowest_free_index(4, {}) == 0u);
    CHECK(lowest_free_index(4, {0, 1, 3}) == 2u);
    CHECK(lowest_free_index(4, {3, 2, 1, 0}) == std::nullopt);
    CHECK(lowest_free_index(2, {7}) == 0u); // out-of-range entries are ignored
}

TEST_CASE("endpoint indices are assigned lowest first, per role, up to the table size") {
    ChannelRegistry registry;
    auto ch = registry.create(small_queue("assign"), {}, {}, kDefaultMaxChannelBytes);
    REQUIRE(ch);
    auto a = registry.assign_endpoint(**ch, Role::subscriber, client(1));
    auto b = registry.assign_endpoint(**ch, Role::subscriber, client(2));
    auto p = registry.assign_endpoint(**ch, Role::publisher, client(1));
    auto c = registry.assign_endpoint(**ch, Role::subscriber, client(3));
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(p);
    CHECK(*a == 0);
    CHECK(*b == 1);
    CHECK(*p == 0);
    CHECK(c.code() == Errc::limit_reached);
    CHECK_THAT(c.error().detail, Catch::Contains("max_subscribers"));
    CHECK(registry.endpoints_of(1) == 2);
}

TEST_CASE("a channel of the previous run does not hand out an index attached without a claim") {
    // Segments a client kept across a daemon restart: entry 0 is attached, unclaimed.
    auto segments = create_channel(small_queue("foreign"), kDefaultMaxChannelBytes);
    REQUIRE(segments);
    auto files = segments->duplicate_for(Role::subscriber);
    REQUIRE(files);
    auto stranger = Subscriber::attach(std::move(*files), {}); // takes entry 0 on its own
    REQUIRE(stranger);
    ChannelRegistry registry;
    auto ch = registry.adopt(std::move(*segments), {}, {});
    REQUIRE(ch);
    CHECK((*ch)->from_previous_run);
    auto a = registry.assign_endpoint(**ch, Role::subscriber, client(1));
    REQUIRE(a);
    CHECK(*a == 1);
}

TEST_CASE("a new channel hands out indexes from its claims alone") {
    ChannelRegistry registry;
    auto ch = registry.create(small_queue("fresh"), {}, {}, kDefaultMaxChannelBytes);
    REQUIRE(ch);
    CHECK_FALSE((*ch)->from_previous_run);
    auto a = registry.assign_endpoint(**ch, Role::subscriber, client(1));
    auto b = registry.assign_endpoint(**ch, Role::subscriber, client(2));
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*a == 0);
    CHECK(*b == 1);
}

TEST_CASE("reclaiming a client frees its attached endpoints and its claims, not others'") {
    ChannelRegistry registry;
    auto ch = registry.create(small_queue("reclaim"), {}, {}, kDefaultMaxChannelBytes);
    REQUIRE(ch);
    auto a = registry.assign_endpoint(**ch, Role::subscriber, client(1));
    auto b = registry.assign_endpoint(**ch, Role::subscriber, client(2));
    REQUIRE(a);
    REQUIRE(b);
    EndpointOptions opts;
    opts.endpoint_index = static_cast<std::int32_t>(*a);
    auto files = (*ch)->files.duplicate_for(Role::subscriber);
    REQUIRE(files);
    auto sub = Subscriber::attach(std::move(*files), opts);
    REQUIRE(sub);
    CHECK((*ch)->supervisor.stats().subscribers == 1);

    const auto reclaimed = registry.reclaim_client(1);
    REQUIRE(reclaimed.size() == 1);
    CHECK(reclaimed[0].was_attached);
    CHECK_FALSE(reclaimed[0].error);
    CHECK((*ch)->supervisor.stats().subscribers == 0);
    CHECK(registry.endpoints_of(1) == 0);
    CHECK(registry.endpoints_of(2) == 1);
    auto again = registry.assign_endpoint(**ch, Role::subscriber, client(3));
    REQUIRE(again);
    CHECK(*again == 0);
}

TEST_CASE("a released endpoint still attached in the segment stays claimed") {
    ChannelRegistry registry;
    auto ch = registry.create(small_queue("release"), {}, {}, kDefaultMaxChannelBytes);
    REQUIRE(ch);
    auto a = registry.assign_endpoint(**ch, Role::subscriber, client(1));
    REQUIRE(a);
    EndpointOptions opts;
    opts.endpoint_index = static_cast<std::int32_t>(*a);
    auto files = (*ch)->files.duplicate_for(Role::subscriber);
    REQUIRE(files);
    auto sub = Subscriber::attach(std::move(*files), opts);
    REQUIRE(sub);
    REQUIRE(registry.release_endpoint(1, (*ch)->info.name, Role::subscriber, *a));
    CHECK(registry.endpoints_of(1) == 1); // still attached: reclaimed when the client goes
    { auto detached = std::move(*sub); }  // the client detaches, then says so again
    REQUIRE(registry.release_endpoint(1, (*ch)->info.name, Role::subscriber, *a));
    CHECK(registry.endpoints_of(1) == 0);
    CHECK(registry.release_endpoint(1, (*ch)->info.name, Role::subscriber, *a).code() ==
          Errc::not_found);
}

TEST_CASE("draining and orphaned dynamic channels go once nobody holds them") {
    ChannelRegistry registry;
    auto kept = registry.create(small_queue("kept"), {}, {}, kDefaultMaxChannelBytes);
    auto draining = registry.create(small_queue("draining"), {}, {}, kDefaultMaxChannelBytes);
    auto dynamic = registry.create(small_queue("dynamic"), {}, ChannelOrigin{true, 9, 1000},
                                   kDefaultMaxChannelBytes);
    REQUIRE(kept);
    REQUIRE(draining);
    REQUIRE(dynamic);
    (*draining)->draining = true;
    REQUIRE(registry.assign_endpoint(**draining, Role::subscriber, client(1)));
    CHECK(registry.dynamic_channels_of(9) == 1);
    CHECK(registry.collect_unused().empty()); // draining is held; the creator is connected

    (void)registry.reclaim_client(9); // the creator goes
    const auto removed = registry.collect_unused();
    REQUIRE(removed.size() == 1);
    CHECK(removed[0] == small_queue("dynamic").name);
    (void)registry.reclaim_client(1);
    CHECK(registry.collect_unused() == std::vector<std::string>{small_queue("draining").name});
    CHECK(registry.size() == 1);
}

TEST_CASE("a second channel of the same name is already_exists") {
    ChannelRegistry registry;
    REQUIRE(registry.create(small_queue("twice"), {}, {}, kDefaultMaxChannelBytes));
    CHECK(registry.create(small_queue("twice"), {}, {}, kDefaultMaxChannelBytes).code() ==
          Errc::already_exists);
}
