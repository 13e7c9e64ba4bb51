// The systemd interfaces, spoken directly. See systemd_protocol.hpp.
#include "systemd_protocol.hpp"

#include <shmbus/unique_fd.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmbus::daemon::sd {

namespace {

/// The kernel's limit on descriptors in one SCM_RIGHTS message (SCM_MAX_FD).
constexpr std::size_t kMaxFdsPerMessage = 253;

/// Parses all of `text` as an unsigned decimal number.
template <typename T>
std::optional<T> parse_number(const char* text) noexcept {
    if (text == nullptr || *text == '\0') {
        return std::nullopt;
    }
    T value{};
    const char* end = text + std::strlen(text);
    const auto [ptr, ec] = std::from_chars(text, end, value);
    if (ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

/// Sends `payload` (may be empty) with `fds` attached to the datagram socket at `addr`.
int send_datagram(int fd, const sockaddr_un& addr, socklen_t addr_len, std::string_view payload,
                  std::span<const int> fds) noexcept {
    if (fds.size() > kMaxFdsPerMessage) {
        return -EINVAL;
    }
    iovec iov{const_cast<char*>(payload.data()), payload.size()};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr_un*>(&addr);
    msg.msg_namelen = addr_len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)> control{};
    if (!fds.empty()) {
        const std::size_t bytes = sizeof(int) * fds.size();
        msg.msg_control = control.data();
        msg.msg_controllen = CMSG_SPACE(bytes);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(bytes);
        std::memcpy(CMSG_DATA(c), fds.data(), bytes);
    }
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0) {
        return -errno;
    }
    return 0;
}

/// `path` as a socket address: a file system path, or after '@' a name in the abstract
/// namespace. False if it is neither, or too long.
bool socket_address(const char* path, sockaddr_un& addr, socklen_t& len) noexcept {
    const std::size_t n = std::strlen(path);
    if (n < 2 || n > sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) {
        return false;
    }
    addr = sockaddr_un{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path, n);
    if (path[0] == '@') {
        addr.sun_path[0] = '\0';
    }
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
    return true;
}

/// The datagram socket every journal entry leaves by: one for the process, as libsystemd
/// keeps one. Its send buffer is raised so that an entry of up to 8 MiB fits a datagram
/// where the system allows it; larger entries go in a memfd.
int journal_socket() noexcept {
    static const int fd = [] {
        const int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s >= 0) {
            const int size = 8 << 20;
            (void)setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size); // best effort
        }
        return s;
    }();
    return fd;
}

/// An entry too large for one datagram: its bytes in a sealed memfd, passed alone.
int send_journal_memfd(int fd, const sockaddr_un& addr, socklen_t addr_len,
                       std::string_view entry) noexcept {
    UniqueFd m{memfd_create("shmbusd-journal", MFD_ALLOW_SEALING | MFD_CLOEXEC)};
    if (!m) {
        return -errno;
    }
    for (std::size_t done = 0; done < entry.size();) {
        const ssize_t w = write(m.get(), entry.data() + done, entry.size() - done);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        done += static_cast<std::size_t>(w);
    }
    // journald takes a memfd only once nothing can change it.
    if (fcntl(m.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        return -errno;
    }
    const int fds[] = {m.get()};
    return send_datagram(fd, addr, addr_len, {}, fds);
}

} // namespace

int notify(std::string_view state, std::span<const int> fds) noexcept {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || *path == '\0') {
        return 0;
    }
    sockaddr_un addr{};
    socklen_t len = 0;
    if (!socket_address(path, addr, len)) {
        return -EAFNOSUPPORT;
    }
    const UniqueFd fd{socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (!fd) {
        return -errno;
    }
    const int rc = send_datagram(fd.get(), addr, len, state, fds);
    return rc < 0 ? rc : 1;
}

std::uint64_t watchdog_usec() noexcept {
    if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr) {
        const auto p = parse_number<pid_t>(pid);
        if (!p || *p != getpid()) {
            return 0;
        }
    }
    return parse_number<std::uint64_t>(std::getenv("WATCHDOG_USEC")).value_or(0);
}

std::optional<std::vector<std::string>> take_listen_fds() {
    struct Unset {
        ~Unset() {
            unsetenv("LISTEN_PID");
            unsetenv("LISTEN_FDS");
            unsetenv("LISTEN_FDNAMES");
        }
    } unset;
    const char* pid_text = std::getenv("LISTEN_PID");
    const char* count_text = std::getenv("LISTEN_FDS");
    if (pid_text == nullptr || count_text == nullptr) {
        return std::vector<std::string>{};
    }
    const auto pid = parse_number<pid_t>(pid_text);
    const auto count = parse_number<unsigned>(count_text);
    if (!pid || !count) {
        return std::nullopt;
    }
    if (*pid != getpid() || *count == 0) {
        return std::vector<std::string>{}; // meant for another process, or none passed
    }
    std::vector<std::string> names;
    if (const char* text = std::getenv("LISTEN_FDNAMES"); text != nullptr) {
        std::string_view rest{text};
        for (;;) {
            const std::size_t colon = rest.find(':');
            names.emplace_back(rest.substr(0, colon));
            if (colon == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(colon + 1);
        }
        if (names.size() != *count) {
            return std::nullopt;
        }
    } else {
        names.assign(*count, "unknown");
    }
    for (unsigned i = 0; i < *count; ++i) {
        const int fd = kListenFdsStart + static_cast<int>(i);
        const int flags = fcntl(fd, F_GETFD);
        if (flags < 0) {
            return std::nullopt; // a descriptor the variables promise is not open
        }
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    return names;
}

bool is_listening_unix_socket(int fd, int type) noexcept {
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        return false;
    }
    int value = 0;
    socklen_t len = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) != 0 || value != type) {
        return false;
    }
    len = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) != 0 || value == 0) {
        return false;
    }
    sockaddr_storage addr{};
    len = sizeof addr;
    return getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
           addr.ss_family == AF_UNIX;
}

std::optional<std::string> journal_datagram(std::span<const iovec> fields) {
    std::string out;
    for (const iovec& f : fields) {
        const std::string_view field{static_cast<const char*>(f.iov_base), f.iov_len};
        const std::size_t eq = field.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            return std::nullopt;
        }
        const std::string_view value = field.substr(eq + 1);
        if (value.find('\n') == std::string_view::npos) {
            out.append(field);
        } else {
            out.append(field.substr(0, eq));
            out.push_back('\n');
            std::uint64_t n = value.size();
            for (int byte = 0; byte < 8; ++byte) { // little endian, whatever the host's order
                out.push_back(static_cast<char>(n & 0xff));
                n >>= 8;
            }
            out.append(value);
        }
        out.push_back('\n');
    }
    return out;
}

int journal_send(std::span<const iovec> fields, const char* socket_path) noexcept {
    sockaddr_un addr{};
    socklen_t len = 0;
    if (!socket_address(socket_path, addr, len)) {
        return -EINVAL;
    }
    const int fd = journal_socket();
    if (fd < 0) {
        return -EBADF;
    }
    try {
        const std::optional<std::string> entry = journal_datagram(fields);
        if (!entry) {
            return -EINVAL;
        }
        const int rc = send_datagram(fd, addr, len, *entry, {});
        if (rc == -EMSGSIZE || rc == -ENOBUFS) {
            return send_journal_memfd(fd, addr, len, *entry);
        }
        return rc;
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
}

std::optional<Id128> machine_app_specific_id(const Id128& app, const char* machine_id_file) {
    const UniqueFd fd{open(machine_id_file, O_RDONLY | O_CLOEXEC)};
    if (!fd) {
        return std::nullopt;
    }
    std::array<char, 64> text{};
    ssize_t n = 0;
    do {
        n = read(fd.get(), text.data(), text.size());
    } while (n < 0 && errno == EINTR);
    // 32 hex digits, then at most a newline.
    if (n != 32 && !(n == 33 && text[32] == '\n')) {
        return std::nullopt;
    }
    Id128 machine{};
    for (std::size_t i = 0; i < machine.size(); ++i) {
        unsigned byte = 0;
        const char* begin = text.data() + 2 * i;
        const auto [ptr, ec] = std::from_chars(begin, begin + 2, byte, 16);
        if (ec != std::errc{} || ptr != begin + 2) {
            return std::nullopt;
        }
        machine[i] = static_cast<std::uint8_t>(byte);
    }
    if (std::all_of(machine.begin(), machine.end(), [](std::uint8_t b) { return b == 0; })) {
        return std::nullopt; // an uninitialised machine id
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned mac_len = 0;
    if (HMAC(EVP_sha256(), machine.data(), static_cast<int>(machine.size()), app.data(), app.size(),
             mac.data(), &mac_len) == nullptr ||
        mac_len < 16) {
        return std::nullopt;
    }
    Id128 id{};
    std::copy_n(mac.begin(), id.size(), id.begin());
    id[6] = static_cast<std::uint8_t>((id[6] & 0x0f) | 0x40); // version 4
    id[8] = static_cast<std::uint8_t>((id[8] & 0x3f) | 0x80); // variant 1
    return id;
}

} // namespace shmbus::daemon::sd
