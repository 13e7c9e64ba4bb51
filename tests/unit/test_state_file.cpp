// The daemon's state file: what a restart without a descriptor store relies on.
#include "state_file.hpp"

#include <catch2/catch.hpp>

using namespace shmbus;
using namespace shmbus::daemon;

namespace {

SavedState sample() {
    SavedState s;
    s.channels.push_back(ChannelRecord{"sensors:imu", 42, {1, 2}, {3, 4}, false, 0});
    s.channels.push_back(ChannelRecord{"scratch", 7, {5, 6}, {7, 8}, true, 1000});
    return s;
}

} // namespace

TEST_CASE("a state file reads back as it was written") {
    auto parsed = parse_state(format_state(sample()));
    REQUIRE(parsed);
    REQUIRE(parsed->channels.size() == 2);
    CHECK(parsed->channels[0].name == "sensors:imu");
    CHECK(parsed->channels[0].creation_id == 42);
    CHECK(parsed->channels[0].payload == FileIdentity{3, 4});
    CHECK(parsed->channels[1].dynamic);
    CHECK(parsed->channels[1].creator_uid == 1000);
    // Channels only: the endpoints attached are in each channel's own table.
    CHECK(format_state(sample()).find("endpoint") == std::string::npos);
}

TEST_CASE("endpoint records of an earlier version are read past") {
    auto parsed = parse_state("shmbusd-state 1\n"
                              "channel a 1 2 3 4 5 0 0\n"
                              "endpoint a publisher 0 99 1000 imu driver\n"
                              "channel b 6 7 8 9 10 1 1000\n");
    REQUIRE(parsed);
    REQUIRE(parsed->channels.size() == 2);
    CHECK(parsed->channels[1].name == "b");
    CHECK(parsed->channels[1].dynamic);
}

TEST_CASE("a truncated or altered state file is refused whole") {
    const std::string text = format_state(sample());
    CHECK(parse_state(text.substr(0, text.size() - 3)).code() == Errc::corrupted);
    CHECK(parse_state("shmbusd-state 2\n").code() == Errc::corrupted);
    CHECK(parse_state("shmbusd-state 1\nchannel x 1 2 3 4 5 0 0 extra\n").code() ==
          Errc::corrupted);
    CHECK(parse_state("shmbusd-state 1\nsubscriber x 0 1 2 n\n").code() == Errc::corrupted);
    CHECK(parse_state("").code() == Errc::corrupted);
}

TEST_CASE("the state file is written atomically with mode 0600") {
    char tmpl[] = "/tmp/shmbus-state-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::filesystem::path dir{tmpl};
    REQUIRE(write_state_file(dir, sample()));
    const auto perms = std::filesystem::status(dir / kStateFileName).permissions();
    CHECK(perms == (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    auto back = read_state_file(dir);
    REQUIRE(back);
    REQUIRE(back->has_value());
    CHECK((*back)->channels.size() == 2);
    std::filesystem::remove_all(dir);
    auto none = read_state_file(dir);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
}
