// What one participant of a channel cannot do to the others, and the kernel behaviour that
// makes it so. Descriptors travel between processes the way the daemon hands them out
// (SCM_RIGHTS over a Unix socket), and the hostile side is a forked child that tries.
//
//  - A received descriptor cannot be shrunk or grown (its size is sealed), so no process
//    can make another one's mapping fault with SIGBUS.
//  - A subscriber's payload descriptor is read-only: it cannot be mapped writable, a
//    read-only mapping cannot be made writable, a private writable copy changes nothing
//    others read, and a process of another user cannot reopen it for writing through
//    /proc/self/fd (create_channel makes the memfds 0600). A publisher cannot attach
//    through it.
//  - Creation fails with a clear error, never later with a SIGBUS, when memory is short:
//    above the configured ceiling (limit_reached), above RLIMIT_FSIZE (no_memory), above a
//    memory cgroup's limit (no_memory, never the OOM killer; needs root and a writable
//    cgroup v2 hierarchy with the memory controller or a v1 memory hierarchy, else it is
//    skipped with the reason).
//  - One test per kernel behaviour the design relies on.
#include "process.hpp"
#include "protocol/seqpacket.hpp"
#include "skip.hpp"
#include "test_support.hpp"
#include "traffic.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;

namespace {

constexpr std::uint64_t kSlotSize = 48;
constexpr std::uint64_t kSlotCount = 1024; // several pages of slots

/// A connected pair of Unix sockets, the daemon's transport for descriptors.
struct SocketPair {
    UniqueFd a;
    UniqueFd b;
    static SocketPair make() {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        return {UniqueFd{sv[0]}, UniqueFd{sv[1]}};
    }
};

/// Sends `fds` in one datagram with a one-byte body, through the datagram layer the daemon
/// hands out descriptors with (protocol/seqpacket.hpp). `fds` are NOT consumed: the caller
/// still owns (and may close) its copies.
bool send_fds(int sock, const std::vector<int>& fds) {
    const std::byte body{'F'};
    return static_cast<bool>(proto::send_datagram(sock, {&body, 1}, fds));
}

/// Receives the descriptors of one datagram sent by send_fds(), waiting (generously) for it;
/// each is owned by the result. Empty if none came in time.
std::vector<UniqueFd> receive_fds(int sock) {
    if (!becomes_readable(sock)) {
        return {};
    }
    std::byte body{};
    auto datagram = proto::read_datagram(sock, {&body, 1});
    if (!datagram) {
        return {};
    }
    return std::move(datagram->fds);
}

/// Sends a channel's two descriptors.
void send_channel(int sock, const ChannelFiles& files) {
    REQUIRE(send_fds(sock, {files.control.get(), files.payload.get()}));
}

/// Receives what send_channel() sent.
std::optional<ChannelFiles> receive_channel(int sock) {
    auto fds = receive_fds(sock);
    if (fds.size() != 2) {
        return std::nullopt;
    }
    return ChannelFiles{std::move(fds[0]), std::move(fds[1])};
}

std::uint64_t file_size(int fd) {
    struct stat st {};
    REQUIRE(fstat(fd, &st) == 0);
    return static_cast<std::uint64_t>(st.st_size);
}

/// What a hostile child saw when it tried to resize the descriptors it received.
struct ResizeAttempts {
    int shrink_payload{0}; ///< errno of ftruncate(payload, 0), 0 if it succeeded
    int grow_payload{0};   ///< errno of ftruncate(payload, 2 x size)
    int shrink_control{0}; ///< errno of ftruncate(control, 0)
    int grow_by_fallocate{0};
    int shrink_read_only{0}; ///< errno of ftruncate on the read-only payload
};

int errno_of(int rc) {
    return rc == 0 ? 0 : errno;
}

/// errno of reopening a descriptor read-write and read-only (0: it worked).
struct ReopenErrors {
    int read_write;
    int read_only;
};

/// Whether this process may run a child as another user.
bool can_switch_user() {
    return geteuid() == 0;
}

} // namespace

// ---- The channel's own guarantees ----

TEST_CASE("a channel descriptor received over SCM_RIGHTS cannot be shrunk or grown, and nobody "
          "gets SIGBUS") {
    auto files = create_channel(spec("resize", ChannelKind::queue, kSlotSize, kSlotCount, 1, 1));
    REQUIRE(files);
    auto ro = files->duplicate_for(Role::subscriber);
    REQUIRE(ro);
    const std::uint64_t payload_size = file_size(files->payload.get());
    const std::uint64_t control_size = file_size(files->control.get());
    SocketPair sock = SocketPair::make();
    Pipe report = Pipe::make();
    const int child_sock = sock.b.get();
    const int report_fd = report.write_end.get();
    // The hostile participant: receives writable and read-only descriptors, tries to
    // resize them all, then uses the channel as a publisher.
    Child hostile = Child::spawn([child_sock, report_fd, payload_size] {
        auto rw = receive_channel(child_sock);
        auto ro = receive_fds(child_sock);
        if (!rw || ro.size() != 1) {
            return child_failure("descriptors did not arrive");
        }
        std::signal(SIGXFSZ, SIG_IGN);
        const auto big = static_cast<off_t>(2 * payload_size);
        ResizeAttempts a;
        a.shrink_payload = errno_of(ftruncate(rw->payload.get(), 0));
        a.grow_payload = errno_of(ftruncate(rw->payload.get(), big));
        a.shrink_control = errno_of(ftruncate(rw->control.get(), 0));
        a.grow_by_fallocate = errno_of(fallocate(rw->payload.get(), 0, 0, big));
        a.shrink_read_only = errno_of(ftruncate(ro[0].get(), 0));
        if (!send_record(report_fd, a)) {
            return child_failure("cannot report");
        }
        auto pub = Publisher::attach(std::move(*rw));
        if (!pub) {
            return child_failure(pub.error().message());
        }
        std::vector<std::byte> buf(kSlotSize);
        for (std::uint64_t c = 0; c < 3 * kSlotCount; ++c) {
            const std::size_t len = write_message(buf, 0, c, kSlotSize);
            if (auto r = pub->send({buf.data(), len}, kCallTimeout); !r) {
                return child_failure(r.error().message());
            }
        }
        return 0;
    });
    report.write_end.reset();
    send_channel(sock.a.get(), *files);
    REQUIRE(send_fds(sock.a.get(), {ro->payload.get()}));

    auto a = receive_record<ResizeAttempts>(report.read_end.get());
    REQUIRE(a);
    CHECK(a->shrink_payload == EPERM);
    CHECK(a->grow_payload == EPERM);
    CHECK(a->shrink_control == EPERM);
    CHECK(a->grow_by_fallocate == EPERM);
    CHECK(a->shrink_read_only != 0); // not even open for writing (EINVAL)
    CHECK(file_size(files->payload.get()) == payload_size);
    CHECK(file_size(files->control.get()) == control_size);

    // This process reads all the hostile one publishes: three laps over every page.
    auto sub = Subscriber::attach(std::move(*ro));
    REQUIRE(sub);
    std::vector<std::byte> buf(kSlotSize);
    std::uint64_t intact = 0;
    for (std::uint64_t c = 0; c < 3 * kSlotCount; ++c) {
        auto r = sub->receive_copy(buf, kCallTimeout);
        REQUIRE(r);
        auto id = verify_message({buf.data(), static_cast<std::size_t>(r->size)}, 1, kSlotSize);
        intact += id && id->counter == c ? 1 : 0;
    }
    CHECK(intact == 3 * kSlotCount);
    auto st = hostile.wait();
    REQUIRE(st);
    INFO(st->describe());
    CHECK(st->exited_ok()); // in particular, not killed by SIGBUS
}

TEST_CASE("a subscriber's payload descriptor cannot be mapped writable, nor its read-only "
          "mapping made writable") {
    auto files = create_channel(spec("ro-map", ChannelKind::broadcast, kSlotSize, kSlotCount));
    REQUIRE(files);
    auto ro = files->duplicate_for(Role::subscriber);
    REQUIRE(ro);
    SocketPair sock = SocketPair::make();
    Pipe report = Pipe::make();
    const int child_sock = sock.b.get();
    const int report_fd = report.write_end.get();
    const std::size_t size = file_size(ro->payload.get());
    struct Attempts {
        int map_shared_writable;
        int mprotect_writable;
        int open_flags;
    };
    Child subscriber = Child::spawn([child_sock, report_fd, size] {
        auto fds = receive_fds(child_sock);
        if (fds.size() != 1) {
            return child_failure("descriptor did not arrive");
        }
        Attempts a{};
        void* w = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0].get(), 0);
        a.map_shared_writable = w == MAP_FAILED ? errno : 0;
        void* r = mmap(nullptr, size, PROT_READ, MAP_SHARED, fds[0].get(), 0);
        if (r == MAP_FAILED) {
            return child_failure("a read-only mapping failed");
        }
        a.mprotect_writable = errno_of(mprotect(r, size, PROT_READ | PROT_WRITE));
        a.open_flags = fcntl(fds[0].get(), F_GETFL);
        return send_record(report_fd, a) ? 0 : child_failure("cannot report");
    });
    report.write_end.reset();
    REQUIRE(send_fds(sock.a.get(), {ro->payload.get()}));
    auto a = receive_record<Attempts>(report.read_end.get());
    REQUIRE(a);
    CHECK((a->open_flags & O_ACCMODE) == O_RDONLY);
    CHECK(a->map_shared_writable == EACCES);
    CHECK(a->mprotect_writable == EACCES);
    auto st = subscriber.wait();
    REQUIRE(st);
    CHECK(st->exited_ok());
}

TEST_CASE("a subscriber's private writable mapping of its payload changes nothing others read") {
    auto files = create_channel(spec("ro-private", ChannelKind::broadcast, kSlotSize, 16, 1, 2));
    REQUIRE(files);
    auto pub = Publisher::attach(*files->duplicate_for(Role::publisher));
    auto reader = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(pub);
    REQUIRE(reader);
    std::vector<std::byte> buf(kSlotSize);
    for (std::uint64_t c = 0; c < 8; ++c) {
        REQUIRE(pub->try_send({buf.data(), write_message(buf, 0, c, kSlotSize)}));
    }
    auto ro = files->duplicate_for(Role::subscriber);
    REQUIRE(ro);
    const std::size_t size = file_size(ro->payload.get());
    Child scribbler = Child::spawn([&ro, size] {
        void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro->payload.get(), 0);
        if (p == MAP_FAILED) {
            return child_failure("a private mapping failed");
        }
        std::memset(p, 0xA5, size); // copy-on-write: its own pages only
        return 0;
    });
    auto st = scribbler.wait();
    REQUIRE(st);
    REQUIRE(st->exited_ok());
    for (std::uint64_t c = 0; c < 8; ++c) {
        auto r = reader->try_receive_copy(buf);
        REQUIRE(r);
        auto id = verify_message({buf.data(), static_cast<std::size_t>(r->size)}, 1, kSlotSize);
        REQUIRE(id);
        CHECK(id->counter == c);
    }
}

TEST_CASE("a subscriber of another user cannot reopen its read-only payload descriptor for "
          "writing") {
    if (!can_switch_user()) {
        SHMBUS_SKIP("needs root to run the subscriber as another user");
    }
    auto files = create_channel(spec("ro-reopen", ChannelKind::broadcast, kSlotSize, kSlotCount));
    REQUIRE(files);
    // memfd_create() makes a file of mode 0777; create_channel() narrows both to 0600.
    struct stat mode {};
    REQUIRE(fstat(files->payload.get(), &mode) == 0);
    CHECK((mode.st_mode & 0777) == 0600);
    REQUIRE(fstat(files->control.get(), &mode) == 0);
    CHECK((mode.st_mode & 0777) == 0600);
    auto ro = files->duplicate_for(Role::subscriber);
    REQUIRE(ro);
    Pipe report = Pipe::make();
    const int report_fd = report.write_end.get();
    const int ro_fd = ro->payload.get();
    Child other_user = Child::spawn([report_fd, ro_fd] {
        if (setgid(65534) != 0 || setuid(65534) != 0) {
            return child_failure("cannot become nobody");
        }
        const std::string path = "/proc/self/fd/" + std::to_string(ro_fd);
        const int rw = open(path.c_str(), O_RDWR | O_CLOEXEC);
        const int err = rw < 0 ? errno : 0;
        return send_record(report_fd, err) ? 0 : child_failure("cannot report");
    });
    report.write_end.reset();
    auto err = receive_record<int>(report.read_end.get());
    REQUIRE(err);
    INFO("errno " << *err << " (" << std::strerror(*err) << ")");
    CHECK(*err == EACCES);
    auto st = other_user.wait();
    REQUIRE(st);
    CHECK(st->exited_ok());
}

TEST_CASE("a publisher cannot attach through a received read-only payload descriptor") {
    auto files = create_channel(spec("ro-pub", ChannelKind::queue, kSlotSize, kSlotCount));
    REQUIRE(files);
    auto ro = files->duplicate_for(Role::subscriber);
    REQUIRE(ro);
    SocketPair sock = SocketPair::make();
    send_channel(sock.a.get(), *ro);
    auto received = receive_channel(sock.b.get());
    REQUIRE(received);
    auto pub = Publisher::attach(*received->duplicate_for(Role::subscriber));
    REQUIRE_FALSE(pub);
    INFO(pub.error().message());
    CHECK(pub.error().code == Errc::permission_denied);
    auto sup = ChannelSupervisor::attach(*received->duplicate_for(Role::subscriber));
    REQUIRE_FALSE(sup);
    CHECK(sup.error().code == Errc::permission_denied);
    auto dup = received->duplicate_for(Role::publisher);
    REQUIRE_FALSE(dup);
    CHECK(dup.error().code == Errc::permission_denied);
    // What it may do: read.
    CHECK(Subscriber::attach(std::move(*received)));
}

// ---- Memory limits: a clear error at creation ----

TEST_CASE("a channel above the configured ceiling is refused with limit_reached naming the "
          "bytes it needs") {
    const ChannelSpec s = spec("ceiling", ChannelKind::broadcast, 4096, 4096, 1, 4);
    auto need = channel_bytes(s);
    REQUIRE(need);
    auto r = create_channel(s, *need - 1);
    REQUIRE_FALSE(r);
    INFO(r.error().message());
    CHECK(r.error().code == Errc::limit_reached);
    CHECK(r.error().detail.find(std::to_string(*need)) != std::string::npos);
    CHECK(create_channel(s, *need)); // exactly at the ceiling is fine
}

namespace {

/// What a child that tried to create a channel under a limit reports.
struct CreateOutcome {
    bool created{false};
    Errc code{};
    int sys_errno{0};
    char detail[512]{};
};

CreateOutcome try_create(const ChannelSpec& s) {
    CreateOutcome o;
    auto r = create_channel(s);
    o.created = r.has_value();
    if (!r) {
        o.code = r.error().code;
        o.sys_errno = r.error().sys_errno;
        std::snprintf(o.detail, sizeof o.detail, "%s", r.error().message().c_str());
    }
    return o;
}

/// The size of the payload region a channel of `s` has (creating one to look).
std::uint64_t payload_bytes_of(const ChannelSpec& s) {
    auto files = create_channel(s);
    REQUIRE(files);
    auto info = inspect_channel(*files);
    REQUIRE(info);
    return info->payload_bytes;
}

} // namespace

TEST_CASE("under a small RLIMIT_FSIZE channel creation fails with no_memory naming the bytes") {
    const ChannelSpec s = spec("fsize", ChannelKind::queue, 1024, 1024); // ~1 MiB payload
    const std::uint64_t payload = payload_bytes_of(s);
    Pipe report = Pipe::make();
    const int report_fd = report.write_end.get();
    Child limited = Child::spawn([&s, report_fd] {
        std::signal(SIGXFSZ, SIG_IGN); // else the kernel kills us instead of failing the call
        const rlimit small{64 * 1024, 64 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &small) != 0) {
            return child_failure("setrlimit");
        }
        return send_record(report_fd, try_create(s)) ? 0 : child_failure("cannot report");
    });
    report.write_end.reset();
    auto o = receive_record<CreateOutcome>(report.read_end.get());
    REQUIRE(o);
    auto st = limited.wait();
    REQUIRE(st);
    INFO(st->describe());
    CHECK(st->exited_ok());
    INFO(o->detail);
    REQUIRE_FALSE(o->created);
    CHECK(o->code == Errc::no_memory);
    CHECK(o->sys_errno == EFBIG);
    CHECK(std::string(o->detail).find(std::to_string(payload)) != std::string::npos);
}

namespace {

/// A memory cgroup of its own for one test, limited to `limit` bytes: under cgroup v2 at
/// /sys/fs/cgroup, else under v1's memory hierarchy. Removed again by the destructor.
class MemoryGroup {
public:
    /// The group, or the reason this machine cannot make one.
    static std::variant<std::unique_ptr<MemoryGroup>, std::string> make(std::uint64_t limit) {
        namespace fs = std::filesystem;
        const auto first_line = [](const fs::path& p) {
            std::ifstream in(p);
            std::string line;
            std::getline(in, line);
            return line;
        };
        if (geteuid() != 0) {
            return std::string{"needs root to make a memory cgroup"};
        }
        const std::string enabled = first_line("/sys/fs/cgroup/cgroup.subtree_control");
        fs::path root;
        const char* limit_file = nullptr;
        if (enabled.find("memory") != std::string::npos) {
            root = "/sys/fs/cgroup";
            limit_file = "memory.max";
        } else if (fs::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
            root = "/sys/fs/cgroup/memory";
            limit_file = "memory.limit_in_bytes";
        } else {
            return "needs a cgroup v2 hierarchy at /sys/fs/cgroup with the memory controller "
                   "enabled for its children (enabled: '" +
                   enabled + "') or a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory";
        }
        auto group =
            std::unique_ptr<MemoryGroup>(new MemoryGroup{root / unique_name("shmbus-memcg")});
        std::error_code ec;
        if (access(root.c_str(), W_OK) != 0 || !fs::create_directory(group->path_, ec)) {
            group->path_.clear();
            return "cannot create a memory cgroup under " + root.native() + ": " +
                   (ec ? ec.message() : std::string{"not writable"});
        }
        if (!group->write(limit_file, std::to_string(limit))) {
            return "cannot set " + (group->path_ / limit_file).native();
        }
        group->write("memory.swap.max", "0"); // v2; absent without swap accounting
        return group;
    }
    MemoryGroup(const MemoryGroup&) = delete;
    MemoryGroup& operator=(const MemoryGroup&) = delete;
    ~MemoryGroup() {
        if (!path_.empty()) {
            rmdir(path_.c_str());
        }
    }
    /// Moves process `pid` into the group.
    bool add(pid_t pid) const { return write("cgroup.procs", std::to_string(pid)); }

private:
    explicit MemoryGroup(std::filesystem::path path) : path_{std::move(path)} {}
    bool write(const char* file, const std::string& value) const {
        std::ofstream f(path_ / file);
        f << value;
        f.flush();
        return f.good();
    }
    std::filesystem::path path_;
};

} // namespace

TEST_CASE("in a memory cgroup too small for it channel creation fails with no_memory naming the "
          "bytes") {
    // 32 MiB: room for a sanitizer build's own pages, half what the channel needs.
    auto made = MemoryGroup::make(std::uint64_t{32} << 20);
    if (auto* why = std::get_if<std::string>(&made)) {
        SHMBUS_SKIP(*why);
    }
    const auto& group = std::get<std::unique_ptr<MemoryGroup>>(made);

    const ChannelSpec s = spec("memcg", ChannelKind::queue, 64 * 1024, 1024); // ~64 MiB
    Pipe go = Pipe::make();
    Pipe report = Pipe::make();
    const int go_fd = go.read_end.get();
    const int report_fd = report.write_end.get();
    Child limited = Child::spawn([&s, go_fd, report_fd] {
        std::byte b{};
        if (read_exact(go_fd, {&b, 1}, Deadline{}) != ReadOutcome::complete) {
            return child_failure("never moved into the cgroup");
        }
        return send_record(report_fd, try_create(s)) ? 0 : child_failure("cannot report");
    });
    report.write_end.reset();
    REQUIRE(group->add(limited.pid()));
    const std::byte one{1};
    REQUIRE(write_all(go.write_end.get(), {&one, 1}));
    auto o = receive_record<CreateOutcome>(report.read_end.get());
    auto st = limited.wait();
    REQUIRE(st);
    INFO(st->describe()); // killed by SIGKILL here would mean the OOM killer, not an error
    REQUIRE(o);
    CHECK(st->exited_ok());
    INFO(o->detail);
    REQUIRE_FALSE(o->created);
    CHECK(o->code == Errc::no_memory);
    CHECK(std::string(o->detail).find("bytes") != std::string::npos);
}

// ---- Kernel behaviours the design relies on ----

TEST_CASE("a memfd sealed against shrinking refuses ftruncate") {
    UniqueFd fd{memfd_create("seal-shrink", MFD_CLOEXEC | MFD_ALLOW_SEALING)};
    REQUIRE(fd);
    REQUIRE(ftruncate(fd.get(), 8192) == 0);
    REQUIRE(fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK) == 0);
    CHECK(ftruncate(fd.get(), 4096) == -1);
    CHECK(errno == EPERM);
    CHECK(ftruncate(fd.get(), 0) == -1);
    CHECK(errno == EPERM);
    CHECK(ftruncate(fd.get(), 16384) == 0); // only shrinking is sealed
    CHECK(file_size(fd.get()) == 16384);
}

TEST_CASE("an fd passed by SCM_RIGHTS survives the sender's close") {
    SocketPair sock = SocketPair::make();
    const int child_sock = sock.b.get();
    const std::string text = "still here";
    // The sender writes a memfd, sends it, closes its copy and exits altogether.
    Child sender = Child::spawn([child_sock, &text] {
        UniqueFd fd{memfd_create("scm", MFD_CLOEXEC)};
        if (!fd ||
            pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
            return child_failure("memfd");
        }
        if (!send_fds(child_sock, {fd.get()})) {
            return child_failure("send_datagram");
        }
        fd.reset();
        return 0;
    });
    auto st = sender.wait();
    REQUIRE(st);
    REQUIRE(st->exited_ok());
    auto fds = receive_fds(sock.a.get());
    REQUIRE(fds.size() == 1);
    std::string got(text.size(), '\0');
    CHECK(pread(fds[0].get(), got.data(), got.size(), 0) == static_cast<ssize_t>(text.size()));
    CHECK(got == text);
}

TEST_CASE("a descriptor reopened O_RDONLY through /proc/self/fd cannot be mapped writable") {
    UniqueFd rw{memfd_create("reopen", MFD_CLOEXEC)};
    REQUIRE(rw);
    REQUIRE(ftruncate(rw.get(), 4096) == 0);
    const std::string path = "/proc/self/fd/" + std::to_string(rw.get());
    UniqueFd ro{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    REQUIRE(ro);
    CHECK((fcntl(ro.get(), F_GETFL) & O_ACCMODE) == O_RDONLY);
    void* w = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro.get(), 0);
    CHECK(w == MAP_FAILED);
    CHECK(errno == EACCES);
    void* r = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, ro.get(), 0);
    REQUIRE(r != MAP_FAILED);
    munmap(r, 4096);
}

TEST_CASE("a memfd of mode 0600 cannot be reopened through /proc/self/fd by another user") {
    if (!can_switch_user()) {
        SHMBUS_SKIP("needs root to run a process as another user");
    }
    UniqueFd fd{memfd_create("mode", MFD_CLOEXEC)};
    REQUIRE(fd);
    // memfd_create makes the file mode 0777: whoever holds a descriptor, even read-only, can
    // reopen it read-write through /proc. Hence create_channel's 0600.
    struct stat st {};
    REQUIRE(fstat(fd.get(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0777);
    REQUIRE(fchmod(fd.get(), 0600) == 0);
    Pipe report = Pipe::make();
    const int report_fd = report.write_end.get();
    const int target = fd.get();
    Child other_user = Child::spawn([report_fd, target] {
        if (setgid(65534) != 0 || setuid(65534) != 0) {
            return child_failure("cannot become nobody");
        }
        const std::string path = "/proc/self/fd/" + std::to_string(target);
        const int rw = open(path.c_str(), O_RDWR | O_CLOEXEC);
        const int rw_err = rw < 0 ? errno : 0;
        const int r = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        const int ro_err = r < 0 ? errno : 0;
        return send_record(report_fd, ReopenErrors{rw_err, ro_err})
                   ? 0
                   : child_failure("cannot report");
    });
    report.write_end.reset();
    auto errs = receive_record<ReopenErrors>(report.read_end.get());
    REQUIRE(errs);
    CHECK(errs->read_write == EACCES);
    CHECK(errs->read_only == EACCES);
    auto done = other_user.wait();
    REQUIRE(done);
    CHECK(done->exited_ok());
}

TEST_CASE("futex wake on a MAP_SHARED word reaches another process") {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    auto* word = static_cast<std::uint32_t*>(p);
    *word = 0;
    // The waiter sleeps on the word (value unchanged: only a wake can end the wait early).
    Child waiter = Child::spawn([word] {
        const timespec limit{static_cast<time_t>(kGenerousDeadline.count()), 0};
        const long rc = syscall(SYS_futex, word, FUTEX_WAIT, 0U, &limit, nullptr, 0);
        if (rc != 0) {
            return child_failure(std::string("futex_wait: ") + std::strerror(errno));
        }
        return 0;
    });
    // Wake until the kernel says it woke someone: the waiter is then known to have slept.
    Deadline deadline;
    long woken = 0;
    while (woken == 0 && !deadline.passed()) {
        woken = syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
        if (woken == 0) {
            sched_yield();
        }
    }
    CHECK(woken == 1);
    auto st = waiter.wait();
    REQUIRE(st);
    INFO(st->describe());
    CHECK(st->exited_ok());
    munmap(p, 4096);
}
