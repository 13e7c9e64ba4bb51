// Access decisions of the daemon: pure functions of an access list and the credentials the
// kernel reported, so every rule is pinned here without sockets.
#include "access_control.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

using namespace shmbus;
using namespace shmbus::daemon;

namespace {

constexpr std::uint32_t kDaemonUid = 500;

Credentials user(std::uint32_t uid, std::uint32_t gid = 100,
                 std::vector<std::uint32_t> groups = {}) {
    return Credentials{1234, uid, gid, std::move(groups)};
}

AccountRef id(std::uint32_t n) {
    return AccountRef{std::to_string(n), n, {}};
}

} // namespace

TEST_CASE("an empty access list admits root and the daemon's own user only") {
    const AccessList empty;
    CHECK(admits(empty, user(0), kDaemonUid));
    CHECK(admits(empty, user(kDaemonUid), kDaemonUid));
    CHECK_FALSE(admits(empty, user(1000), kDaemonUid));
}

TEST_CASE("a listed uid is admitted, another is not") {
    AccessList list;
    list.users.push_back(id(1000));
    CHECK(admits(list, user(1000), kDaemonUid));
    CHECK_FALSE(admits(list, user(1001), kDaemonUid));
}

TEST_CASE("a listed group admits its members by primary or supplementary group") {
    AccessList list;
    list.groups.push_back(id(42));
    CHECK(admits(list, user(1000, 42), kDaemonUid));
    CHECK(admits(list, user(1001, 100, {7, 42}), kDaemonUid));
    CHECK_FALSE(admits(list, user(1002, 100, {7, 8}), kDaemonUid));
}

TEST_CASE("'*' admits every user") {
    AccessList list;
    list.anyone = true;
    CHECK(admits(list, user(65534), kDaemonUid));
}

TEST_CASE("a name that was never resolved to an id admits nobody") {
    AccessList list;
    list.users.push_back(AccountRef{"alice", std::nullopt, {}});
    CHECK_FALSE(admits(list, user(1000), kDaemonUid));
}

TEST_CASE("publish and subscribe rights are separate") {
    ChannelAcl acl;
    acl.subscribe.anyone = true;
    CHECK(may_open(acl, Role::subscriber, user(1000), kDaemonUid));
    CHECK_FALSE(may_open(acl, Role::publisher, user(1000), kDaemonUid));
}

TEST_CASE("admins are root, the daemon's user and daemon.admin") {
    Config config;
    CHECK(is_admin(config, user(0), kDaemonUid));
    CHECK(is_admin(config, user(kDaemonUid), kDaemonUid));
    CHECK_FALSE(is_admin(config, user(1000), kDaemonUid));
    config.admins.groups.push_back(id(10));
    CHECK(is_admin(config, user(1000, 100, {10}), kDaemonUid));
}

TEST_CASE("SO_PEERCRED reports the peer's pid and uid, and /proc its groups") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0);
    auto who = peer_credentials(fds[0]);
    ::close(fds[0]);
    ::close(fds[1]);
    REQUIRE(who);
    CHECK(who->pid == static_cast<std::uint32_t>(::getpid()));
    CHECK(who->uid == ::geteuid());
    CHECK(who->gid == ::getegid());
    std::vector<gid_t> mine(static_cast<std::size_t>(::getgroups(0, nullptr)));
    REQUIRE(::getgroups(static_cast<int>(mine.size()), mine.data()) ==
            static_cast<int>(mine.size()));
    CHECK(who->groups.size() == mine.size());
}
