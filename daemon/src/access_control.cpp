// Credentials from the kernel and access decisions. See access_control.hpp.
#include "access_control.hpp"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <grp.h>
#include <pwd.h>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

namespace shmbus::daemon {

namespace {

// SO_PEERGROUPS (Linux 4.13): the supplementary groups of the credentials the peer connected
// with, from the socket itself, like SO_PEERCRED. No /proc read, no race with the peer's exit
// or a reused pid. False where the kernel does not have it.
bool groups_from_socket(int fd, std::vector<std::uint32_t>& out) {
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 4; ++attempt) {
        auto len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            out.assign(groups.begin(), groups.end());
            return true;
        }
        if (errno != ERANGE) {
            return false;
        }
        groups.resize(len / sizeof(gid_t) + 1); // the kernel said how much it needs
    }
    return false;
}

// "Groups:\t4 24 27\n" from /proc/PID/status; false if the file or line is missing.
bool groups_from_proc(std::uint32_t pid, std::vector<std::uint32_t>& out) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Groups:", 0) == 0) {
            std::istringstream fields(line.substr(7));
            std::uint32_t g = 0;
            while (fields >> g) {
                out.push_back(g);
            }
            return true;
        }
    }
    return false;
}

void groups_from_database(std::uint32_t uid, std::uint32_t gid, std::vector<std::uint32_t>& out) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
        return;
    }
    int n = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    if (getgrouplist(pw.pw_name, gid, groups.data(), &n) < 0) {
        groups.resize(static_cast<std::size_t>(n));
        if (getgrouplist(pw.pw_name, gid, groups.data(), &n) < 0) {
            return;
        }
    }
    out.assign(groups.begin(), groups.begin() + n);
}

bool listed(const std::vector<AccountRef>& refs, std::uint32_t id) noexcept {
    return std::any_of(refs.begin(), refs.end(),
                       [id](const AccountRef& r) { return r.id && *r.id == id; });
}

} // namespace

Result<Credentials> peer_credentials(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return make_error(Errc::system_error, "SO_PEERCRED", errno);
    }
    Credentials who;
    who.pid = static_cast<std::uint32_t>(cred.pid);
    who.uid = cred.uid;
    who.gid = cred.gid;
    // The socket tells the groups the peer connected with (setgroups() included); /proc
    // those of the process on an older kernel; the database is the last resort when the
    // process is gone or lives in another pid namespace (pid 0).
    if (groups_from_socket(fd, who.groups)) {
        return who;
    }
    if (cred.pid <= 0 || !groups_from_proc(who.pid, who.groups)) {
        groups_from_database(who.uid, who.gid, who.groups);
    }
    return who;
}

bool admits(const AccessList& list, const Credentials& who, std::uint32_t daemon_uid) noexcept {
    if (who.uid == 0 || who.uid == daemon_uid || list.anyone || listed(list.users, who.uid)) {
        return true;
    }
    if (listed(list.groups, who.gid)) {
        return true;
    }
    return std::any_of(who.groups.begin(), who.groups.end(),
                       [&](std::uint32_t g) { return listed(list.groups, g); });
}

bool may_open(const ChannelAcl& acl, Role role, const Credentials& who,
              std::uint32_t daemon_uid) noexcept {
    return admits(role == Role::publisher ? acl.publish : acl.subscribe, who, daemon_uid);
}

bool is_admin(const Config& config, const Credentials& who, std::uint32_t daemon_uid) noexcept {
    return admits(config.admins, who, daemon_uid);
}

bool may_see_channel(const Config& config, const ChannelAcl& acl, const Credentials& who,
                     std::uint32_t daemon_uid) noexcept {
    return is_admin(config, who, daemon_uid) || may_open(acl, Role::publisher, who, daemon_uid) ||
           may_open(acl, Role::subscriber, who, daemon_uid);
}

bool may_see_client(const Config& config, std::uint32_t owner_uid, const Credentials& who,
                    std::uint32_t daemon_uid) noexcept {
    return owner_uid == who.uid || is_admin(config, who, daemon_uid);
}

bool may_create(const Config& config, const Credentials& who, std::uint32_t daemon_uid) noexcept {
    return admits(config.dynamic_channels.creators, who, daemon_uid);
}

std::string describe(const Credentials& who) {
    return "pid " + std::to_string(who.pid) + ", uid " + std::to_string(who.uid);
}

} // namespace shmbus::daemon
