// The rate limit on refusal warnings: one line per uid per interval, and a count of what was
// refused meanwhile, so that a flood of refusals neither floods the journal nor disappears.
// The clock is passed in: no sleeping.
#include "refusal_log.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace shmbus::daemon;
using namespace std::chrono_literals;

namespace {

const RefusalLog::Clock::time_point t0{std::chrono::seconds{1000}};

} // namespace

TEST_CASE("a uid's first refusal is logged at once, and says that more will be counted") {
    RefusalLog log{10s};
    const auto line = log.note(1000, "refused a connection", t0);
    REQUIRE(line);
    CHECK(*line == "refused a connection; further refusals of uid 1000 in the next 10 s are "
                   "counted in one line");
    CHECK_FALSE(log.next_due()); // nothing counted yet: no summary to wait for
}

TEST_CASE("refusals within the interval are counted, then summarised in one line with the "
          "last one's text") {
    RefusalLog log{10s};
    int counted = 0;
    log.on_counted = [&] { ++counted; };
    REQUIRE(log.note(1000, "first", t0));
    CHECK_FALSE(log.note(1000, "second", t0 + 1s));
    CHECK_FALSE(log.note(1000, "third", t0 + 9s));
    CHECK(counted == 2);
    REQUIRE(log.next_due());
    CHECK(*log.next_due() == t0 + 10s);
    CHECK(log.due(t0 + 9999ms).empty());
    const auto lines = log.due(t0 + 10s);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].uid == 1000);
    CHECK(lines[0].text == "uid 1000: 2 more refusals in the last 10 s, the last: third");
    // A new interval began with the summary: a refusal right after it is counted again.
    CHECK_FALSE(log.note(1000, "fourth", t0 + 11s));
    CHECK(*log.next_due() == t0 + 20s);
}

TEST_CASE("each uid has its own interval") {
    RefusalLog log{10s};
    REQUIRE(log.note(1000, "a", t0));
    CHECK(log.note(1001, "b", t0 + 1s)); // another uid: logged at once
    CHECK_FALSE(log.note(1000, "a again", t0 + 2s));
    const auto lines = log.due(t0 + 10s);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].uid == 1000);
}

TEST_CASE("after a quiet interval a uid's next refusal is logged at once") {
    RefusalLog log{10s};
    REQUIRE(log.note(1000, "a", t0));
    CHECK(log.due(t0 + 10s).empty()); // nothing counted: nothing to say, the uid is forgotten
    CHECK(log.note(1000, "b", t0 + 10s));
}

TEST_CASE("counted refusals not yet summarised ride on the next line rather than vanish") {
    RefusalLog log{10s};
    REQUIRE(log.note(1000, "a", t0));
    CHECK_FALSE(log.note(1000, "b", t0 + 1s));
    const auto line = log.note(1000, "c", t0 + 15s); // due() was not called in between
    REQUIRE(line);
    CHECK(*line == "c (and 1 more refusal of uid 1000 before this one, the last: b); further "
                   "refusals of uid 1000 in the next 10 s are counted in one line");
}

TEST_CASE("at a stop every counted refusal is summarised, due or not") {
    RefusalLog log{10s};
    REQUIRE(log.note(1000, "a", t0));
    CHECK_FALSE(log.note(1000, "b", t0 + 1s));
    CHECK(log.due(t0 + 2s).empty());
    const auto lines = log.due(t0 + 2s, true);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].text == "uid 1000: 1 more refusal in the last 2 s, the last: b");
}
