// systemd's interfaces as the daemon speaks them without libsystemd: notification datagrams
// (with descriptors), the watchdog's and socket activation's environment, journald's native
// protocol (binary fields, the memfd for a large entry) and the machine's application-specific
// id, checked against what systemd itself computes.
#include "systemd_protocol.hpp"
#include "temp_dir.hpp"

#include <shmbus/unique_fd.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::daemon;
using shmbus::test::TempDir;
using shmbus::test::write_file;

namespace {

/// A datagram socket bound at `path` ('@' first: in the abstract namespace).
UniqueFd bound_datagram_socket(const std::string& path) {
    UniqueFd fd{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    REQUIRE(fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (path[0] == '@') {
        addr.sun_path[0] = '\0';
    }
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0);
    return fd;
}

struct Datagram {
    std::string bytes;
    std::vector<UniqueFd> fds;
};

/// The datagram already queued on `fd` (never waits: every sender here has returned).
Datagram take_datagram(int fd) {
    std::string buf(1 << 16, '\0');
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * 8)> control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    REQUIRE(n >= 0);
    Datagram d;
    d.bytes.assign(buf.data(), static_cast<std::size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int passed = -1;
                std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
                d.fds.emplace_back(passed);
            }
        }
    }
    return d;
}

bool same_file(int a, int b) {
    struct stat sa {};
    struct stat sb {};
    return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

iovec field(const std::string& text) {
    return iovec{const_cast<char*>(text.data()), text.size()};
}

/// Sets an environment variable for one test, and restores it after.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_{name} {
        if (const char* old = std::getenv(name); old != nullptr) {
            old_ = old;
        }
        if (value != nullptr) {
            ::setenv(name, value, 1);
        } else {
            ::unsetenv(name);
        }
    }
    ~ScopedEnv() {
        if (old_) {
            ::setenv(name_, old_->c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

} // namespace

TEST_CASE("notifications reach NOTIFY_SOCKET, a path or an abstract address") {
    TempDir dir;
    const std::string path = (dir.path() / "notify").native();
    const UniqueFd listener = bound_datagram_socket(path);

    SECTION("a path") {
        const ScopedEnv env{"NOTIFY_SOCKET", path.c_str()};
        CHECK(sd::notify("READY=1") == 1);
        CHECK(take_datagram(listener.get()).bytes == "READY=1");
        CHECK(sd::notify("RELOADING=1\nMONOTONIC_USEC=12") == 1);
        CHECK(take_datagram(listener.get()).bytes == "RELOADING=1\nMONOTONIC_USEC=12");
    }
    SECTION("an abstract address") {
        const std::string name = "@shmbus-test-notify-" + std::to_string(::getpid());
        const UniqueFd abstract = bound_datagram_socket(name);
        const ScopedEnv env{"NOTIFY_SOCKET", name.c_str()};
        CHECK(sd::notify("STOPPING=1") == 1);
        CHECK(take_datagram(abstract.get()).bytes == "STOPPING=1");
    }
    SECTION("descriptors travel with the message") {
        const ScopedEnv env{"NOTIFY_SOCKET", path.c_str()};
        int pipe_fds[2];
        REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
        const UniqueFd r{pipe_fds[0]};
        const UniqueFd w{pipe_fds[1]};
        const int fds[] = {r.get(), w.get()};
        CHECK(sd::notify("FDSTORE=1\nFDNAME=jobs", fds) == 1);
        const Datagram d = take_datagram(listener.get());
        CHECK(d.bytes == "FDSTORE=1\nFDNAME=jobs");
        REQUIRE(d.fds.size() == 2);
        CHECK(same_file(d.fds[0].get(), r.get()));
        CHECK(same_file(d.fds[1].get(), w.get()));
    }
    SECTION("without NOTIFY_SOCKET nothing is sent") {
        const ScopedEnv env{"NOTIFY_SOCKET", nullptr};
        CHECK(sd::notify("READY=1") == 0);
    }
    SECTION("an address of neither kind is refused") {
        const ScopedEnv env{"NOTIFY_SOCKET", "vsock:2:1234"};
        CHECK(sd::notify("READY=1") == -EAFNOSUPPORT);
    }
    SECTION("nobody listening is an error, not a hang") {
        const std::string gone = (dir.path() / "gone").native();
        const ScopedEnv env{"NOTIFY_SOCKET", gone.c_str()};
        CHECK(sd::notify("READY=1") == -ENOENT);
    }
}

TEST_CASE("the watchdog interval is read for this process only") {
    const ScopedEnv usec{"WATCHDOG_USEC", "200000"};
    SECTION("no WATCHDOG_PID") {
        const ScopedEnv pid{"WATCHDOG_PID", nullptr};
        CHECK(sd::watchdog_usec() == 200000);
    }
    SECTION("WATCHDOG_PID names this process") {
        const std::string self = std::to_string(::getpid());
        const ScopedEnv pid{"WATCHDOG_PID", self.c_str()};
        CHECK(sd::watchdog_usec() == 200000);
    }
    SECTION("WATCHDOG_PID names another process") {
        const std::string other = std::to_string(::getpid() + 1);
        const ScopedEnv pid{"WATCHDOG_PID", other.c_str()};
        CHECK(sd::watchdog_usec() == 0);
    }
    SECTION("a malformed interval") {
        const ScopedEnv pid{"WATCHDOG_PID", nullptr};
        const ScopedEnv bad{"WATCHDOG_USEC", "20ms"};
        CHECK(sd::watchdog_usec() == 0);
    }
}

TEST_CASE("passed descriptors: named, close-on-exec, and the variables unset") {
    const std::string self = std::to_string(::getpid());

    SECTION("variables for another process pass nothing") {
        const std::string other = std::to_string(::getpid() + 1);
        const ScopedEnv pid{"LISTEN_PID", other.c_str()};
        const ScopedEnv fds{"LISTEN_FDS", "2"};
        const auto names = sd::take_listen_fds();
        REQUIRE(names);
        CHECK(names->empty());
        CHECK(std::getenv("LISTEN_PID") == nullptr);
        CHECK(std::getenv("LISTEN_FDS") == nullptr);
    }
    SECTION("a count that is not a number is malformed") {
        const ScopedEnv pid{"LISTEN_PID", self.c_str()};
        const ScopedEnv fds{"LISTEN_FDS", "two"};
        CHECK_FALSE(sd::take_listen_fds());
        CHECK(std::getenv("LISTEN_FDS") == nullptr);
    }
    SECTION("names that do not match the count are malformed") {
        const ScopedEnv pid{"LISTEN_PID", self.c_str()};
        const ScopedEnv fds{"LISTEN_FDS", "2"};
        const ScopedEnv names{"LISTEN_FDNAMES", "control"};
        CHECK_FALSE(sd::take_listen_fds());
        CHECK(std::getenv("LISTEN_FDNAMES") == nullptr);
    }
    SECTION("two descriptors from 3 on, as the service manager passes them") {
        // In a child, whose descriptors 3 and 4 this test may take over.
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            int p[2];
            if (::pipe(p) != 0 || ::dup2(p[0], 3) != 3 || ::dup2(p[1], 4) != 4) {
                ::_exit(10);
            }
            const std::string me = std::to_string(::getpid());
            ::setenv("LISTEN_PID", me.c_str(), 1);
            ::setenv("LISTEN_FDS", "2", 1);
            ::setenv("LISTEN_FDNAMES", "control:", 1);
            const auto names = sd::take_listen_fds();
            if (!names || names->size() != 2 || (*names)[0] != "control" || !(*names)[1].empty()) {
                ::_exit(11);
            }
            if ((::fcntl(3, F_GETFD) & FD_CLOEXEC) == 0 ||
                (::fcntl(4, F_GETFD) & FD_CLOEXEC) == 0) {
                ::_exit(12);
            }
            if (std::getenv("LISTEN_PID") != nullptr || std::getenv("LISTEN_FDNAMES") != nullptr) {
                ::_exit(13);
            }
            ::_exit(0);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0); // 10 setup, 11 names, 12 close-on-exec, 13 environment
    }
}

TEST_CASE("a listening Unix socket of the asked type is recognised, nothing else") {
    UniqueFd seqpacket{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
    REQUIRE(seqpacket);
    TempDir dir;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = (dir.path() / "control").native();
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(seqpacket.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    CHECK_FALSE(sd::is_listening_unix_socket(seqpacket.get(), SOCK_SEQPACKET)); // not listening
    REQUIRE(::listen(seqpacket.get(), 4) == 0);
    CHECK(sd::is_listening_unix_socket(seqpacket.get(), SOCK_SEQPACKET));
    CHECK_FALSE(sd::is_listening_unix_socket(seqpacket.get(), SOCK_STREAM));

    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    const UniqueFd r{p[0]};
    const UniqueFd w{p[1]};
    CHECK_FALSE(sd::is_listening_unix_socket(r.get(), SOCK_SEQPACKET));
    CHECK_FALSE(sd::is_listening_unix_socket(-1, SOCK_SEQPACKET));
}

TEST_CASE("journal entries in the native protocol") {
    const std::string message = "MESSAGE=client 'a%nb' opened jobs";
    const std::string priority = "PRIORITY=6";
    const std::string multi = "CLIENT_NAME=two\nlines";

    SECTION("plain fields are NAME=value lines, a value with a newline is binary") {
        const std::array fields{field(message), field(priority), field(multi)};
        const auto d = sd::journal_datagram(fields);
        REQUIRE(d);
        std::string expected = message + "\n" + priority + "\n" + "CLIENT_NAME\n";
        expected += std::string{"\x09\0\0\0\0\0\0\0", 8};
        expected += "two\nlines\n";
        CHECK(*d == expected);
    }
    SECTION("a field without a name is refused") {
        const std::string nameless = "=value";
        const std::string bare = "VALUE";
        CHECK_FALSE(sd::journal_datagram(std::array{field(message), field(nameless)}));
        CHECK_FALSE(sd::journal_datagram(std::array{field(bare)}));
        TempDir dir;
        const std::string path = (dir.path() / "journal").native();
        const UniqueFd journal = bound_datagram_socket(path);
        CHECK(sd::journal_send(std::array{field(bare)}, path.c_str()) == -EINVAL);
    }
    SECTION("an entry arrives as one datagram") {
        TempDir dir;
        const std::string path = (dir.path() / "journal").native();
        const UniqueFd journal = bound_datagram_socket(path);
        const std::array fields{field(message), field(priority), field(multi)};
        REQUIRE(sd::journal_send(fields, path.c_str()) == 0);
        const Datagram d = take_datagram(journal.get());
        CHECK(d.fds.empty());
        CHECK(d.bytes == *sd::journal_datagram(fields));
    }
    SECTION("an entry too large for a datagram arrives in a sealed memfd") {
        TempDir dir;
        const std::string path = (dir.path() / "journal").native();
        const UniqueFd journal = bound_datagram_socket(path);
        const std::string large = "MESSAGE=" + std::string(16 << 20, 'x');
        const std::array fields{field(large), field(priority)};
        REQUIRE(sd::journal_send(fields, path.c_str()) == 0);
        const Datagram d = take_datagram(journal.get());
        CHECK(d.bytes.empty());
        REQUIRE(d.fds.size() == 1);
        const int seals = ::fcntl(d.fds[0].get(), F_GET_SEALS);
        CHECK((seals & (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) ==
              (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL));
        const std::string expected = *sd::journal_datagram(fields);
        std::string got(expected.size() + 1, '\0');
        const ssize_t n = ::pread(d.fds[0].get(), got.data(), got.size(), 0);
        REQUIRE(n == static_cast<ssize_t>(expected.size()));
        got.resize(static_cast<std::size_t>(n));
        CHECK(got == expected);
    }
    SECTION("no journal listening") {
        TempDir dir;
        const std::string path = (dir.path() / "no-journal").native();
        CHECK(sd::journal_send(std::array{field(message)}, path.c_str()) == -ENOENT);
    }
}

TEST_CASE("the machine's application-specific id is systemd's") {
    TempDir dir;
    const std::string file = (dir.path() / "machine-id").native();
    constexpr sd::Id128 kApp{0x5a, 0x7e, 0x0c, 0x31, 0x9b, 0x44, 0x4e, 0x2f,
                             0x8d, 0x61, 0x0e, 0x93, 0xc2, 0x1a, 0x77, 0x58};

    SECTION("as sd_id128_get_machine_app_specific() derives it") {
        // The vector: `systemd-id128 machine-id --app-specific=5a7e0c319b444e2f8d610e93c21a7758`
        // on a machine whose /etc/machine-id is the one written here.
        write_file(file, "3d1219c7c4c5404aaa1f6d2a48adfda4\n");
        const auto id = sd::machine_app_specific_id(kApp, file.c_str());
        REQUIRE(id);
        constexpr sd::Id128 kExpected{0xd0, 0xb0, 0x2a, 0x4a, 0x25, 0xff, 0x48, 0xb0,
                                      0xa1, 0x98, 0x2e, 0xee, 0x74, 0xab, 0x67, 0x38};
        CHECK(*id == kExpected);
    }
    SECTION("a file that holds no machine id gives none") {
        for (const char* text :
             {"", "uninitialized\n", "00000000000000000000000000000000\n",
              "3d1219c7c4c5404aaa1f6d2a48adfd\n", "3d1219c7c4c5404aaa1f6d2a48adfdzz\n",
              "3d1219c7c4c5404aaa1f6d2a48adfda4\nmore\n"}) {
            CAPTURE(text);
            write_file(file, text);
            CHECK_FALSE(sd::machine_app_specific_id(kApp, file.c_str()));
        }
        CHECK_FALSE(sd::machine_app_specific_id(kApp, (dir.path() / "missing").c_str()));
    }
}
