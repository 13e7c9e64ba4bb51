// Zero-copy writes need a length for every message: commit() refuses a batch with a slot whose
// length was never set for it (set_length() notes each fitting length in the publisher's own
// memory), instead of publishing the length the slot had a lap before (and with it the
// previous message's bytes). In every channel shape, for batches wider than one word of
// those notes, and without turning a drop-policy reader's race with a lapping publisher into
// a false report of damage.
#include "../support/process.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <shmbus/supervisor.hpp>

#include <span>
#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;

namespace {

struct Shape {
    const char* name;
    ChannelKind kind;
    std::uint32_t publishers;
    std::uint32_t subscribers;
    Overflow overflow;
};

constexpr Shape kShapes[] = {
    {"spsc queue", ChannelKind::queue, 1, 1, Overflow::block},
    {"mpmc queue", ChannelKind::queue, 2, 2, Overflow::block},
    {"broadcast block", ChannelKind::broadcast, 1, 1, Overflow::block},
    {"broadcast drop", ChannelKind::broadcast, 1, 1, Overflow::drop},
};

constexpr std::uint64_t kSlots = 4;

struct Endpoints {
    ChannelFiles files;
    Publisher pub;
    Subscriber sub;
};

Endpoints open_shape(const Shape& s) {
    auto files = create_channel(
        spec("commit-length", s.kind, 64, kSlots, s.publishers, s.subscribers, s.overflow));
    REQUIRE(files);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    REQUIRE(pub);
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(sub);
    return {std::move(*files), std::move(*pub), std::move(*sub)};
}

/// Copies the next message out into `buf` (a whole slot) and returns its size.
std::size_t receive_copy(Endpoints& e, std::span<std::byte, 64> buf) {
    auto r = e.sub.try_receive_copy(buf);
    REQUIRE(r);
    return r->size;
}

/// Fills every slot once with a 40-byte message and reads it: the lap before the test's.
void fill_one_lap(Endpoints& e) {
    const std::vector<std::byte> old(40, std::byte{0x5A});
    for (std::uint64_t i = 0; i < kSlots; ++i) {
        REQUIRE(e.pub.try_send(old));
        std::byte buf[64];
        REQUIRE(receive_copy(e, buf) == 40);
    }
}

} // namespace

TEST_CASE("a commit of a slot whose length was never set is refused and publishes nothing") {
    for (const Shape& shape : kShapes) {
        SECTION(shape.name) {
            Endpoints e = open_shape(shape);
            fill_one_lap(e); // every slot's length word now says 40

            auto w = e.pub.try_reserve();
            REQUIRE(w);
            std::memcpy(w->data(0).data(), "abc", 3);
            auto r = e.pub.commit(*w);
            REQUIRE_FALSE(r);
            CHECK(r.code() == Errc::invalid_argument);
            CHECK(r.error().detail.find("message 0") != std::string::npos);
            CHECK(r.error().detail.find("set_length()") != std::string::npos);
            CHECK(e.sub.try_receive().code() == Errc::would_block);

            // The batch is still outstanding: set the length and commit it.
            w->set_length(0, 3);
            REQUIRE(e.pub.commit(*w));
            std::byte buf[64];
            CHECK(receive_copy(e, buf) == 3);
            CHECK(std::string(reinterpret_cast<const char*>(buf), 3) == "abc");
        }
    }
}

TEST_CASE("a batch with one unset length is refused naming that message, and none of it "
          "is published") {
    for (const Shape& shape : kShapes) {
        SECTION(shape.name) {
            Endpoints e = open_shape(shape);
            fill_one_lap(e);
            auto w = e.pub.try_reserve(3);
            REQUIRE(w);
            REQUIRE(w->size() == 3);
            w->set_length(0, 1);
            w->set_length(2, 1);
            auto r = e.pub.commit(*w);
            REQUIRE_FALSE(r);
            CHECK(r.code() == Errc::invalid_argument);
            CHECK(r.error().detail.find("message 1 of the batch") != std::string::npos);
            CHECK(e.sub.try_receive().code() == Errc::would_block);
            e.pub.abandon(*w);
        }
    }
}

TEST_CASE("a length too large is still refused as message_too_large, not as unset") {
    Endpoints e = open_shape(kShapes[0]);
    auto w = e.pub.try_reserve();
    REQUIRE(w);
    w->set_length(0, 65);
    auto r = e.pub.commit(*w);
    CHECK(r.code() == Errc::message_too_large);
    CHECK(r.error().detail.find("65 bytes") != std::string::npos);
}

TEST_CASE("a batch wider than 64 slots is refused for the one length never set, and "
          "commits once it is") {
    // Room for a lap and then every batch below, so that each reservation gets all it asks.
    constexpr std::uint64_t kWide = 1024;
    constexpr std::size_t kBatch = 130; // two whole words of length bits and two bits more
    auto files = create_channel(
        spec("commit-length-wide", ChannelKind::queue, 64, kWide, 1, 1, Overflow::block));
    REQUIRE(files);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    REQUIRE(pub);
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(sub);
    // A lap first, so that every slot's length word holds a length that fits.
    for (int lap = 0; lap < 2; ++lap) {
        auto w = pub->try_reserve(kWide / 2);
        REQUIRE(w);
        REQUIRE(w->size() == kWide / 2);
        for (std::size_t i = 0; i < w->size(); ++i) {
            w->set_length(i, 7);
        }
        REQUIRE(pub->commit(*w));
        auto b = sub->try_receive(kWide / 2);
        REQUIRE(b);
        CHECK(b->size() == kWide / 2);
        REQUIRE(sub->release(*b));
    }
    for (const std::size_t missing :
         {std::size_t{0}, std::size_t{63}, std::size_t{64}, std::size_t{127}, std::size_t{129}}) {
        CAPTURE(missing);
        auto w = pub->try_reserve(kBatch);
        REQUIRE(w);
        REQUIRE(w->size() == kBatch);
        for (std::size_t i = 0; i < kBatch; ++i) {
            if (i != missing) {
                w->set_length(i, i % 60);
            }
        }
        auto r = pub->commit(*w);
        REQUIRE_FALSE(r);
        CHECK(r.code() == Errc::invalid_argument);
        CHECK(r.error().detail.find("message " + std::to_string(missing) + " of the batch") !=
              std::string::npos);
        CHECK(sub->try_receive().code() == Errc::would_block);
        w->set_length(missing, missing % 60);
        REQUIRE(pub->commit(*w));
        auto b = sub->try_receive(kBatch);
        REQUIRE(b);
        REQUIRE(b->size() == kBatch);
        for (std::size_t i = 0; i < kBatch; ++i) {
            CHECK(b->message(i).data.size() == i % 60);
        }
        REQUIRE(sub->release(*b));
    }
}

TEST_CASE("the last length set is the one checked: too large then fitting commits, fitting "
          "then too large is refused") {
    for (const Shape& shape : kShapes) {
        SECTION(shape.name) {
            Endpoints e = open_shape(shape);
            fill_one_lap(e);
            auto w = e.pub.try_reserve();
            REQUIRE(w);
            w->set_length(0, 10);
            w->set_length(0, 65);
            auto r = e.pub.commit(*w);
            REQUIRE_FALSE(r);
            CHECK(r.code() == Errc::message_too_large);
            CHECK(e.sub.try_receive().code() == Errc::would_block);
            w->set_length(0, 64);
            REQUIRE(e.pub.commit(*w));
            std::byte buf[64];
            CHECK(receive_copy(e, buf) == 64);
        }
    }
}

TEST_CASE("a drop-policy batch whose slot a publisher re-reserves reads as lost, not damaged") {
    Endpoints e = open_shape(kShapes[3]);
    REQUIRE(e.pub.try_send(std::vector<std::byte>(8, std::byte{1})));
    auto held = e.sub.try_receive();
    REQUIRE(held);
    REQUIRE(held->message(0).data.size() == 8);
    // Lap the ring until the held slot is reserved again, for a message of another length.
    for (std::uint64_t i = 1; i < kSlots; ++i) {
        REQUIRE(e.pub.try_send(std::vector<std::byte>(8, std::byte{2})));
    }
    auto w = e.pub.try_reserve();
    REQUIRE(w);
    // The reader's view stays within its slot, and release() says to discard it.
    CHECK(held->message(0).data.size() <= 64);
    auto rel = e.sub.release(*held);
    CHECK(rel.code() == Errc::lost);
    w->set_length(0, 8);
    REQUIRE(e.pub.commit(*w));
    auto st = read_stats(e.files);
    REQUIRE(st);
    CHECK(st->corrupted == 0);
}

TEST_CASE("a drop-policy subscriber racing a lapping publisher never reports damage") {
    // The publisher (another process) laps a 4-slot ring as fast as it can, rewriting each
    // slot's length under the subscriber. The subscriber reads with both APIs into a buffer
    // that holds every real message but not a whole slot: a length it catches mid-rewrite
    // must come out as a loss, never as corrupted or message_too_large.
    auto files = create_channel(
        spec("commit-length-race", ChannelKind::broadcast, 64, kSlots, 1, 1, Overflow::drop));
    REQUIRE(files);
    auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(sub);
    const std::uint64_t messages = scaled(400'000, 20'000);
    Child writer = Child::spawn([&] {
        auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
        if (!pub) {
            return child_failure("attach: " + pub.error().message());
        }
        for (std::uint64_t i = 0; i < messages; ++i) {
            auto w = pub->try_reserve();
            if (!w) {
                return child_failure("try_reserve: " + w.error().message());
            }
            std::memset(w->data(0).data(), static_cast<int>(i & 0xff), 16);
            w->set_length(0, 16);
            if (auto r = pub->commit(*w); !r) {
                return child_failure("commit: " + r.error().message());
            }
        }
        return 0;
    });
    std::uint64_t received = 0;
    std::uint64_t lost_reports = 0;
    std::vector<std::string> unexpected;
    auto one_round = [&](bool zero_copy) {
        if (zero_copy) {
            auto b = sub->try_receive(2);
            if (!b) {
                if (b.code() != Errc::would_block) {
                    unexpected.push_back(b.error().message());
                }
                return;
            }
            auto rel = sub->release(*b);
            if (rel) {
                received += b->size();
            } else if (rel.code() == Errc::lost) {
                ++lost_reports;
            } else {
                unexpected.push_back(rel.error().message());
            }
            return;
        }
        std::byte buf[32];
        auto r = sub->try_receive_copy(buf);
        if (r) {
            ++received;
            if (r->size != 16) {
                unexpected.push_back("a copied message of " + std::to_string(r->size) + " bytes");
            }
        } else if (r.code() != Errc::would_block) {
            unexpected.push_back(r.error().message());
        }
    };
    std::uint64_t round = 0;
    const Deadline deadline;
    while (writer.running() && !deadline.passed() && unexpected.size() < 10) {
        one_round((++round & 1) != 0);
        if ((round & 1023) == 0) {
            writer.wait(Deadline{std::chrono::nanoseconds{0}});
        }
    }
    auto st = writer.wait(deadline);
    REQUIRE(st);
    CHECK(st->exited_ok());
    for (const auto& u : unexpected) {
        FAIL_CHECK(u);
    }
    INFO("received " << received << ", lost reports " << lost_reports);
    auto stats = read_stats(*files);
    REQUIRE(stats);
    CHECK(stats->corrupted == 0);
}
