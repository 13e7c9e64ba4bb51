// White-box tests of the SPSC queue's recovery rules, which need to reach into the segment
// to stage the state a dead producer leaves behind.
#include "test_support.hpp"

#include "shm/atomics.hpp"
#include "shm/segment.hpp"

#include <catch2/catch.hpp>

using namespace shmbus;
using namespace shmbus::test;

namespace {

/// Stages what a producer that died between marking slot `pos` committed and storing head
/// leaves: a complete message in the slot, its state committed, head unchanged.
void stage_unannounced_commit(const ChannelFiles& files, std::uint64_t pos, std::uint64_t id) {
    auto ch = detail::attach_channel(files, detail::PayloadAccess::writable);
    REQUIRE(ch);
    detail::SlotHeader* slot = ch->slot(pos);
    auto* data = reinterpret_cast<std::byte*>(slot) + detail::kSlotDataOffset;
    stamp({data, 16}, id);
    slot->length = 16;
    detail::atom(slot->state)
        .store(detail::make_state(pos, detail::SlotPhase::committed), std::memory_order_release);
}

/// Sends messages stamped 1 and 2 on `files`, then overwrites the first slot's state with
/// `state`. Returns the attached subscriber (the publisher has detached).
Subscriber two_sent_then_state(const ChannelFiles& files, std::uint64_t state) {
    auto sub = Subscriber::attach(*files.duplicate_for(Role::subscriber));
    REQUIRE(sub);
    {
        auto pub = Publisher::attach(*files.duplicate_for(Role::publisher));
        REQUIRE(pub);
        std::byte msg[16];
        stamp(msg, 1);
        REQUIRE(pub->try_send(msg));
        stamp(msg, 2);
        REQUIRE(pub->try_send(msg));
    }
    auto ch = detail::attach_channel(files, detail::PayloadAccess::writable);
    REQUIRE(ch);
    ch->slot(0)->state = state;
    return std::move(sub).value();
}

} // namespace

TEST_CASE("an SPSC consumer reads a message whose producer died before announcing it") {
    auto files = create_channel(spec("spsc-unannounced", ChannelKind::queue, 16, 8));
    REQUIRE(files);
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(sub);
    stage_unannounced_commit(*files, 0, 42);
    std::byte buf[16];
    auto r = sub->try_receive_copy(buf);
    REQUIRE(r);
    CHECK(r->sequence == 0);
    CHECK(check_stamp({buf, r->size}) == 42);
}

TEST_CASE("a successor SPSC producer resumes past slots its predecessor committed unannounced") {
    auto files = create_channel(spec("spsc-successor", ChannelKind::queue, 16, 8));
    REQUIRE(files);
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(sub);
    stage_unannounced_commit(*files, 0, 7);
    stage_unannounced_commit(*files, 1, 8);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    REQUIRE(pub);
    std::byte msg[16];
    stamp(msg, 9);
    REQUIRE(pub->try_send(msg));
    std::byte buf[16];
    for (std::uint64_t expect = 7; expect <= 9; ++expect) {
        auto r = sub->try_receive_copy(buf);
        REQUIRE(r);
        CHECK(r->sequence == expect - 7);
        CHECK(check_stamp({buf, r->size}) == expect);
    }
    CHECK(sub->try_receive().code() == Errc::would_block);
}

TEST_CASE("an SPSC slot state damaged behind the producer is skipped and reported") {
    auto files = create_channel(spec("spsc-damaged", ChannelKind::queue, 16, 8));
    REQUIRE(files);
    auto sub = two_sent_then_state(*files, 0xdeadbeef); // scribbled by a buggy or hostile writer
    std::byte buf[16];
    auto bad = sub.try_receive_copy(buf);
    REQUIRE_FALSE(bad);
    CHECK(bad.code() == Errc::corrupted);
    CHECK(bad.error().detail.find("message 0") != std::string::npos);
    auto good = sub.try_receive_copy(buf);
    REQUIRE(good);
    CHECK(check_stamp({buf, good->size}) == 2);
    auto st = read_stats(*files);
    REQUIRE(st);
    CHECK(st->corrupted == 1);
}

TEST_CASE("an SPSC slot state damaged to look unwritten is found within 256 empty polls") {
    // An empty poll reads only the slot state; a state that looks as the channel was created
    // passes for "empty" until the periodic look at the producer's index finds the lie.
    auto files = create_channel(spec("spsc-looks-empty", ChannelKind::queue, 16, 8));
    REQUIRE(files);
    auto sub = two_sent_then_state(*files, detail::make_state(0, detail::SlotPhase::free));
    int polls = 0;
    Errc code = Errc::would_block;
    while (code == Errc::would_block && polls < 256) {
        code = sub.try_receive().code();
        ++polls;
    }
    CHECK(code == Errc::corrupted);
    std::byte buf[16];
    auto good = sub.try_receive_copy(buf);
    REQUIRE(good);
    CHECK(check_stamp({buf, good->size}) == 2);
}
