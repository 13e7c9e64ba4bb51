// Tests of client-lib/src/endpoint_hooks: the detach hook the Client uses to send Close runs
// exactly once, after the endpoint's table entry is free, and never in a fork()ed child that
// destroys an inherited copy (the child shares the parent's control socket).
#include "endpoint_hooks.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace shmbus;
using namespace shmbus::test;

namespace {

ChannelFiles channel(ChannelKind kind) {
    auto files = create_channel(spec("hooks", kind, 64, 8));
    REQUIRE(files);
    return std::move(*files);
}

ChannelFiles copy_for(const ChannelFiles& files, Role role) {
    auto copy = files.duplicate_for(role);
    REQUIRE(copy);
    return std::move(*copy);
}

} // namespace

TEST_CASE("a publisher's detach hook runs once, after its table entry is free") {
    const ChannelFiles files = channel(ChannelKind::queue);
    int calls = 0;
    std::uint32_t publishers_seen = 99;
    {
        auto pub = Publisher::attach(copy_for(files, Role::publisher));
        REQUIRE(pub);
        detail::EndpointHooks::set_on_detach(*pub, [&] {
            ++calls;
            auto stats = read_stats(files);
            publishers_seen = stats ? stats->publishers : 98;
        });
        Publisher moved = std::move(*pub); // the hook travels with the endpoint
        CHECK(calls == 0);
    }
    CHECK(calls == 1);
    CHECK(publishers_seen == 0);
}

TEST_CASE("a subscriber's detach hook runs once, after its table entry is free") {
    const ChannelFiles files = channel(ChannelKind::broadcast);
    int calls = 0;
    std::uint32_t subscribers_seen = 99;
    {
        auto sub = Subscriber::attach(copy_for(files, Role::subscriber));
        REQUIRE(sub);
        detail::EndpointHooks::set_on_detach(*sub, [&] {
            ++calls;
            auto stats = read_stats(files);
            subscribers_seen = stats ? stats->subscribers : 98;
        });
    }
    CHECK(calls == 1);
    CHECK(subscribers_seen == 0);
}

TEST_CASE("a copy of an endpoint inherited through fork() runs no detach hook") {
    const ChannelFiles files = channel(ChannelKind::queue);
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    const UniqueFd read_end{fds[0]};
    UniqueFd write_end{fds[1]};
    std::optional<Publisher> pub;
    {
        auto attached = Publisher::attach(copy_for(files, Role::publisher));
        REQUIRE(attached);
        pub.emplace(std::move(*attached));
    }
    const int w = write_end.get();
    detail::EndpointHooks::set_on_detach(*pub, [w] { (void)::write(w, "h", 1); });

    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        pub.reset(); // the inherited copy: must not run the hook
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    pollfd p{read_end.get(), POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == 0); // nothing written by the child

    pub.reset(); // the parent's own: runs it
    char c = 0;
    CHECK(::read(read_end.get(), &c, 1) == 1);
    CHECK(c == 'h');
}
