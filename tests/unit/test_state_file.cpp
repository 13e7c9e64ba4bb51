// The daemon's state file: what a restart without a descriptor store relies on.
#include "state_file.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

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
    const auto file = dir / "shmbusd.state";
    REQUIRE(write_state_file(file, sample()));
    const auto perms = std::filesystem::status(file).permissions();
    CHECK(perms == (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    auto back = read_state_file(file);
    REQUIRE(back);
    REQUIRE(back->has_value());
    CHECK((*back)->channels.size() == 2);
    std::filesystem::remove_all(dir);
    auto none = read_state_file(file);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
}

TEST_CASE("the state file is named after the control socket") {
    CHECK(state_file_name("/run/shmbusd/shmbusd.sock") == "shmbusd.state");
    CHECK(state_file_name("/tmp/a/s.sock") == "s.state");
    CHECK(state_file_name("/tmp/a/bus") == "bus.state");
    CHECK(state_file_name("/tmp/a/x.state") == "x.state.state"); // never the socket itself
}

TEST_CASE("a second process cannot lock a state file in use, and is told who holds it") {
    char tmpl[] = "/tmp/shmbus-state-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::filesystem::path dir{tmpl};
    auto held = StateFile::lock(dir / "shmbusd.state", "/tmp/a/shmbusd.sock");
    REQUIRE(held);
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // POSIX locks are per process: only another process sees this one's.
        auto second = StateFile::lock(dir / "shmbusd.state", "/tmp/b/shmbusd.sock");
        const std::string said = second ? std::string{"locked"} : second.error().message();
        (void)!::write(pipe_fds[1], said.data(), said.size());
        ::_exit(second ? 1 : (second.code() == Errc::already_exists ? 0 : 2));
    }
    ::close(pipe_fds[1]);
    std::string said;
    char buf[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) {
        said.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipe_fds[0]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    INFO(said);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_THAT(said, Catch::Contains("pid " + std::to_string(::getpid())) &&
                         Catch::Contains("socket /tmp/a/shmbusd.sock"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("writing an empty state removes the state file") {
    char tmpl[] = "/tmp/shmbus-state-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::filesystem::path dir{tmpl};
    auto file = StateFile::lock(dir / "shmbusd.state", dir / "shmbusd.sock");
    REQUIRE(file);
    REQUIRE(file->write(sample()));
    CHECK(std::filesystem::exists(file->path()));
    REQUIRE(file->write(SavedState{}));
    CHECK_FALSE(std::filesystem::exists(file->path()));
    REQUIRE(file->write(SavedState{})); // nothing there is no error either
    std::filesystem::remove_all(dir);
}
