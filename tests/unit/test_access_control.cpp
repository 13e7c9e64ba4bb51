// Access decisions of the daemon: pure functions of an access list and the credentials the
// kernel reported, so every rule is pinned here without sockets.
#include "access_control.hpp"
#include "skip.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <fcntl.h>
#include <grp.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
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

TEST_CASE("a non-admin is shown the channels it may open in some role, an admin every one") {
    Config config;
    config.admins.users.push_back(id(2000));
    ChannelAcl acl;
    acl.subscribe.users.push_back(id(1000)); // may subscribe only
    CHECK(may_see_channel(config, acl, user(1000), kDaemonUid));
    CHECK_FALSE(may_see_channel(config, acl, user(1001), kDaemonUid));
    CHECK(may_see_channel(config, acl, user(2000), kDaemonUid)); // a listed admin
    CHECK(may_see_channel(config, acl, user(0), kDaemonUid));
    CHECK(may_see_channel(config, acl, user(kDaemonUid), kDaemonUid));
    ChannelAcl publish_only;
    publish_only.publish.groups.push_back(id(42));
    CHECK(may_see_channel(config, publish_only, user(1001, 42), kDaemonUid));
}

TEST_CASE("a non-admin is shown the pids and names of its own uid's clients only") {
    Config config;
    config.admins.groups.push_back(id(7));
    CHECK(may_see_client(config, 1000, user(1000), kDaemonUid));
    CHECK_FALSE(may_see_client(config, 1001, user(1000), kDaemonUid));
    CHECK(may_see_client(config, 1001, user(1000, 100, {7}), kDaemonUid)); // admin by group
    CHECK(may_see_client(config, 1001, user(0), kDaemonUid));
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

TEST_CASE("SO_PEERCRED reports the peer's pid and uid, and SO_PEERGROUPS its groups") {
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

TEST_CASE("SO_PEERGROUPS reports the groups a peer connected with, not those it has later") {
    if (::geteuid() != 0) {
        SHMBUS_SKIP("needs root to call setgroups() in a child");
    }
    char dir_template[] = "/tmp/shmbus-peergroups-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string path = std::string{dir_template} + "/s";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, path.size());
    const int listener = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 1) == 0);
    int go[2];
    REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // Connects with groups 4242 and 4343, then takes other groups and waits to be told
        // to leave, so that /proc would show the new ones while the socket keeps the old.
        ::close(go[1]);
        const std::array<gid_t, 2> first{4242, 4343};
        const std::array<gid_t, 1> later{5555};
        const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (::setgroups(first.size(), first.data()) != 0 ||
            ::connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
            ::setgroups(later.size(), later.data()) != 0 || ::send(s, "x", 1, 0) != 1) {
            _exit(1);
        }
        char byte = 0;
        (void)!::read(go[0], &byte, 1);
        _exit(0);
    }
    ::close(go[0]);
    const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(conn >= 0);
    char byte = 0;
    REQUIRE(::recv(conn, &byte, 1, 0) == 1); // the child has taken its later groups now
    auto who = peer_credentials(conn);
    ::close(go[1]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    ::close(conn);
    ::close(listener);
    ::unlink(path.c_str());
    ::rmdir(dir_template);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(who);
    std::vector<std::uint32_t> groups = who->groups;
    std::sort(groups.begin(), groups.end());
    CHECK(groups == std::vector<std::uint32_t>{4242, 4343});
}
