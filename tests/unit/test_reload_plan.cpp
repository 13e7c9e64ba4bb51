// Reload as a plan: what a new configuration does to the running channels, stated without a
// daemon — the registry holds real (small) channels, nothing is changed by planning.
#include "reload_plan.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

using namespace shmbus;
using namespace shmbus::daemon;
using shmbus::test::spec;

namespace {

ChannelSpec queue(const std::string& stem) {
    return spec(stem, ChannelKind::queue, 64, 8, 1, 2);
}

/// `s` with another slot size: the same channel in another geometry.
ChannelSpec resized(ChannelSpec s, std::uint64_t slot_size) {
    s.slot_size = slot_size;
    return s;
}

ChannelConfig configured(const ChannelSpec& spec) {
    ChannelConfig cc;
    cc.spec = spec;
    return cc;
}

RegisteredChannel& add(ChannelRegistry& registry, const ChannelSpec& spec,
                       ChannelOrigin origin = {}) {
    auto made = registry.create(spec, {}, origin, kDefaultMaxChannelBytes);
    REQUIRE(made);
    return **made;
}

const ChannelChange& change_of(const ReloadPlan& plan, const ChannelSpec& spec) {
    for (const auto& c : plan.channels) {
        if (c.config.spec.name == spec.name) {
            return c;
        }
    }
    FAIL("the plan has no step for channel '" << spec.name << "'");
    throw std::logic_error("unreachable");
}

EndpointClaim claim_by(std::uint64_t client) {
    return EndpointClaim{client, Role::subscriber, 0, 100, 1000, "client"};
}

} // namespace

TEST_CASE("a reload plan keeps an unchanged channel, creates a new one and drains a removed one") {
    ChannelRegistry registry;
    const ChannelSpec same = queue("same");
    const ChannelSpec gone = queue("gone");
    const ChannelSpec fresh = queue("fresh");
    add(registry, same);
    RegisteredChannel& removed = add(registry, gone);
    REQUIRE(registry.assign_endpoint(removed, Role::subscriber, claim_by(1)));
    Config current;
    current.channels = {configured(same), configured(gone)};
    Config next;
    next.channels = {configured(same), configured(fresh)};

    const ReloadPlan plan = plan_reload(registry, current, next);
    CHECK(change_of(plan, same).action == ReloadAction::keep);
    CHECK(describe(change_of(plan, same)).empty());
    CHECK(change_of(plan, fresh).action == ReloadAction::create);
    CHECK(describe(change_of(plan, fresh)) == "channel '" + fresh.name + "' created");
    const ChannelChange& drained = change_of(plan, gone);
    CHECK(drained.action == ReloadAction::drain);
    CHECK(drained.held);
    CHECK_THAT(describe(drained), Catch::Contains("it goes when its last client closes it"));
    CHECK_FALSE(plan.log_level);
    // Planning changed nothing.
    CHECK(registry.size() == 2);
    CHECK_FALSE(removed.draining);
    CHECK(registry.find(fresh.name) == nullptr);
}

TEST_CASE("a reload plan re-creates an unused channel whose geometry changed and refuses a held "
          "one") {
    ChannelRegistry registry;
    const ChannelSpec unused = queue("unused");
    const ChannelSpec used = queue("used");
    add(registry, unused);
    RegisteredChannel& held = add(registry, used);
    REQUIRE(registry.assign_endpoint(held, Role::subscriber, claim_by(1)));
    Config next;
    next.channels = {configured(resized(unused, 128)), configured(resized(used, 128))};

    const ReloadPlan plan = plan_reload(registry, Config{}, next);
    const ChannelChange& re = change_of(plan, unused);
    CHECK(re.action == ReloadAction::recreate);
    CHECK(describe(re) == "channel '" + unused.name + "' re-created (slot_size 64 -> 128)");
    const ChannelChange& refused = change_of(plan, used);
    CHECK(refused.action == ReloadAction::refuse_in_use);
    CHECK(describe(refused) == "channel '" + used.name +
                                   "' not changed (slot_size 64 -> 128): it has 1 endpoints "
                                   "open; the old channel keeps running");
}

TEST_CASE("a reload plan does not re-create a stand-in that the previous run's clients may still "
          "offer back") {
    ChannelRegistry registry;
    const ChannelSpec standing_in = queue("standing-in");
    add(registry, standing_in).stand_in = true;
    Config next;
    next.channels = {configured(resized(standing_in, 128))};

    const ReloadPlan plan = plan_reload(registry, Config{}, next);
    const ChannelChange& c = change_of(plan, standing_in);
    CHECK(c.action == ReloadAction::refuse_in_use);
    CHECK_THAT(describe(c), Catch::Contains("clients of the daemon's previous run"));
}

TEST_CASE("a reload plan judges room by the new limits, counting the steps before it") {
    ChannelRegistry registry;
    const ChannelSpec existing = queue("existing");
    add(registry, existing);
    Config next;
    next.limits.max_channels = 2;
    const ChannelSpec first = queue("first");
    const ChannelSpec second = queue("second");
    next.channels = {configured(existing), configured(first), configured(second)};

    const ReloadPlan plan = plan_reload(registry, Config{}, next);
    CHECK(change_of(plan, first).action == ReloadAction::create);
    const ChannelChange& no_room = change_of(plan, second);
    CHECK(no_room.action == ReloadAction::create_no_room);
    CHECK_THAT(describe(no_room), Catch::Contains("limits.max_channels is 2"));
}

TEST_CASE("a reload plan re-creates in the room its old channel leaves, or says there is none") {
    ChannelRegistry registry;
    const ChannelSpec growing = queue("growing");
    add(registry, growing);
    const std::uint64_t old_bytes = registry.total_bytes();
    const ChannelSpec bigger = resized(growing, 4096);
    const std::uint64_t new_bytes = channel_bytes(bigger).value();
    Config next;
    next.channels = {configured(bigger)};

    next.limits.max_total_segment_bytes = new_bytes; // fits once the old one is gone
    CHECK(change_of(plan_reload(registry, Config{}, next), growing).action ==
          ReloadAction::recreate);

    next.limits.max_total_segment_bytes = new_bytes - 1;
    const ReloadPlan plan = plan_reload(registry, Config{}, next);
    const ChannelChange& c = change_of(plan, growing);
    CHECK(c.action == ReloadAction::remove_no_room);
    CHECK_THAT(describe(c), Catch::Contains("removed but not re-created") &&
                                Catch::Contains("limits.max_total_segment_bytes"));
    CHECK(old_bytes < new_bytes);
}

TEST_CASE("a reload plan leaves a dynamic channel of a configured name alone and undrains a "
          "channel configured again") {
    ChannelRegistry registry;
    const ChannelSpec dynamic = queue("dynamic");
    const ChannelSpec back = queue("back");
    add(registry, dynamic, ChannelOrigin{true, 7, 1000});
    add(registry, back).draining = true;
    Config current;
    current.log_level = LogLevel::info;
    Config next;
    next.log_level = LogLevel::debug;
    next.channels = {configured(dynamic), configured(back)};

    const ReloadPlan plan = plan_reload(registry, current, next);
    CHECK(change_of(plan, dynamic).action == ReloadAction::dynamic_clash);
    CHECK_THAT(describe(change_of(plan, dynamic)), Catch::Contains("a dynamic channel"));
    CHECK(change_of(plan, back).action == ReloadAction::undrain);
    CHECK(plan.log_level == LogLevel::debug);
    // Neither a dynamic channel nor one already draining is drained (again) by a
    // configuration that does not name it.
    CHECK(plan_reload(registry, current, Config{}).channels.empty());
}
