// Publisher::record_gap(): a publisher that learned of messages lost before they reached it
// (a bridge whose link was cut) tells its subscribers, who count them exactly as messages a
// publisher overwrote: lost_before on the next message or batch, lost(), the channel's
// dropped counter. One slot per gap, whatever its size; broadcast channels only.
#include "channel_endpoints.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <shmbus/channel.hpp>
#include <shmbus/endpoint.hpp>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

TEST_CASE("a recorded gap reaches every subscriber as exactly that many lost messages") {
    for (const Overflow overflow : {Overflow::block, Overflow::drop}) {
        CAPTURE(to_string(overflow));
        auto f = make(spec("gap", ChannelKind::broadcast, 32, 8, 1, 2, overflow));
        auto pub = publisher(f);
        auto first = subscriber(f);
        auto second = subscriber(f);
        send_id(pub, 1);
        REQUIRE(pub.record_gap(1000, 1s)); // far more than the ring holds: still one slot
        send_id(pub, 1002);
        for (Subscriber* s : {&first, &second}) {
            std::byte buf[64];
            auto a = s->try_receive_copy(buf);
            REQUIRE(a);
            CHECK(check_stamp({buf, a->size}) == 1);
            CHECK(a->lost_before == 0);
            auto b = s->try_receive_copy(buf);
            REQUIRE(b);
            CHECK(check_stamp({buf, b->size}) == 1002);
            CHECK(b->lost_before == 1000);
            CHECK(s->lost() == 1000);
            CHECK(s->try_receive().code() == Errc::would_block);
        }
        auto st = read_stats(f);
        REQUIRE(st);
        CHECK(st->dropped == 2000); // summed over the two subscribers
    }
}

TEST_CASE("a recorded gap is reported with the next zero-copy batch") {
    auto f = make(spec("gapbatch", ChannelKind::broadcast, 32, 16, 1, 1));
    auto pub = publisher(f);
    auto sub = subscriber(f);
    REQUIRE(pub.record_gap(3, 1s));
    REQUIRE(pub.record_gap(4, 1s));
    send_id(pub, 7);
    send_id(pub, 8);
    auto batch = sub.try_receive(16);
    REQUIRE(batch);
    CHECK(batch->size() == 2);
    CHECK(batch->lost_before() == 7);
    CHECK(check_stamp(batch->message(0).data) == 7);
    REQUIRE(sub.release(*batch));
}

TEST_CASE("a gap is recorded only on a broadcast channel, and only of 1 to 2^47 messages") {
    auto q = make(spec("gapqueue", ChannelKind::queue, 32, 8, 1, 1));
    auto qpub = publisher(q);
    auto r = qpub.record_gap(5, 1s);
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::invalid_argument);
    CHECK_THAT(r.error().detail, Catch::Contains("broadcast"));

    auto f = make(spec("gapcount", ChannelKind::broadcast, 32, 8, 1, 1));
    auto pub = publisher(f);
    CHECK(pub.record_gap(0, 1s).code() == Errc::invalid_argument);
    CHECK(pub.record_gap((std::uint64_t{1} << 47) + 1, 1s).code() == Errc::invalid_argument);
}

TEST_CASE("a recorded gap takes a slot like a message: on a full block channel it waits") {
    auto f = make(spec("gapfull", ChannelKind::broadcast, 32, 4, 1, 1));
    auto pub = publisher(f);
    auto sub = subscriber(f);
    for (std::uint64_t id = 0; id < 4; ++id) {
        send_id(pub, id);
    }
    CHECK(pub.record_gap(9, 10ms).code() == Errc::timed_out);
    std::byte buf[64];
    REQUIRE(sub.try_receive_copy(buf));
    REQUIRE(pub.record_gap(9, 1s));
    for (std::uint64_t id = 1; id < 4; ++id) {
        auto m = sub.try_receive_copy(buf);
        REQUIRE(m);
        CHECK(check_stamp({buf, m->size}) == id);
    }
    send_id(pub, 13);
    auto m = sub.try_receive_copy(buf);
    REQUIRE(m);
    CHECK(m->lost_before == 9);
    CHECK(check_stamp({buf, m->size}) == 13);
}
