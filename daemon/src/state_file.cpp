// The state file: format, parse, snapshot, atomic write. See state_file.hpp.
#include "state_file.hpp"

#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace shmbus::daemon {

namespace {

constexpr const char* kHeader = "shmbusd-state 1";
constexpr std::size_t kMaxStateBytes = 16 * 1024 * 1024;

template <typename T>
bool parse_number(std::string_view s, T& out) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

std::vector<std::string_view> split(std::string_view line, std::size_t max_fields) {
    std::vector<std::string_view> out;
    while (!line.empty() && out.size() + 1 < max_fields) {
        const auto sp = line.find(' ');
        out.push_back(line.substr(0, sp));
        if (sp == std::string_view::npos) {
            return out;
        }
        line.remove_prefix(sp + 1);
    }
    out.push_back(line);
    return out;
}

Error bad_line(std::size_t n, const std::string& what) {
    return make_error(Errc::corrupted, "state file line " + std::to_string(n) + ": " + what);
}

} // namespace

std::optional<FileIdentity> identity_of(int fd) noexcept {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return std::nullopt;
    }
    return FileIdentity{static_cast<std::uint64_t>(st.st_dev),
                        static_cast<std::uint64_t>(st.st_ino)};
}

std::string format_state(const SavedState& state) {
    std::ostringstream out;
    out << kHeader << '\n';
    for (const auto& c : state.channels) {
        out << "channel " << c.name << ' ' << c.creation_id << ' ' << c.control.dev << ' '
            << c.control.ino << ' ' << c.payload.dev << ' ' << c.payload.ino << ' '
            << (c.dynamic ? 1 : 0) << ' ' << c.creator_uid << '\n';
    }
    return out.str();
}

Result<SavedState> parse_state(std::string_view text) {
    SavedState state;
    std::size_t n = 0;
    bool header = false;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        if (nl == std::string_view::npos) {
            return bad_line(n + 1, "truncated (no end of line)");
        }
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        ++n;
        if (!header) {
            if (line != kHeader) {
                return bad_line(n, "not a shmbusd state file of version 1");
            }
            header = true;
            continue;
        }
        if (line.rfind("channel ", 0) == 0) {
            // Nine fields; anything trailing stays in the last one and fails its parse.
            const auto f = split(line, 9);
            ChannelRecord c;
            unsigned dynamic = 0;
            if (f.size() != 9 || f[1].empty() || f[1].size() > kMaxNameLength ||
                !parse_number(f[2], c.creation_id) || !parse_number(f[3], c.control.dev) ||
                !parse_number(f[4], c.control.ino) || !parse_number(f[5], c.payload.dev) ||
                !parse_number(f[6], c.payload.ino) || !parse_number(f[7], dynamic) || dynamic > 1 ||
                !parse_number(f[8], c.creator_uid)) {
                return bad_line(n, "malformed channel record");
            }
            c.name = std::string{f[1]};
            c.dynamic = dynamic == 1;
            state.channels.push_back(std::move(c));
        } else if (line.rfind("endpoint ", 0) == 0) {
            // Written by earlier versions; the channels' endpoint tables say the same.
            continue;
        } else {
            return bad_line(n, "unknown record");
        }
    }
    if (!header) {
        return bad_line(1, "empty");
    }
    return state;
}

ChannelRecord record_of(const RegisteredChannel& channel) {
    ChannelRecord c;
    c.name = channel.info.name;
    c.creation_id = channel.info.creation_id;
    c.control = identity_of(channel.files.control.get()).value_or(FileIdentity{});
    c.payload = identity_of(channel.files.payload.get()).value_or(FileIdentity{});
    c.dynamic = channel.origin.dynamic;
    c.creator_uid = channel.origin.creator_uid;
    return c;
}

std::string state_file_name(const std::filesystem::path& socket) {
    std::string name = socket.filename().native();
    constexpr std::string_view kSocketSuffix = ".sock";
    if (name.size() > kSocketSuffix.size() &&
        name.compare(name.size() - kSocketSuffix.size(), kSocketSuffix.size(), kSocketSuffix) ==
            0) {
        name.resize(name.size() - kSocketSuffix.size());
    }
    return name + ".state";
}

Result<void> write_state_file(const std::filesystem::path& file, const SavedState& state) {
    const std::string text = format_state(state);
    const std::filesystem::path& final_path = file;
    const std::filesystem::path tmp = file.native() + ".new";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return make_error(Errc::system_error, "cannot write '" + tmp.native() + "'", errno);
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            const int err = errno;
            ::close(fd);
            return make_error(Errc::system_error, "cannot write '" + tmp.native() + "'", err);
        }
        done += static_cast<std::size_t>(w);
    }
    ::fchmod(fd, 0600);
    ::close(fd);
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
        return make_error(Errc::system_error, "cannot rename to '" + final_path.native() + "'",
                          errno);
    }
    return ok();
}

Result<std::optional<SavedState>> read_state_file(const std::filesystem::path& file) {
    const std::filesystem::path& path = file;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            return std::optional<SavedState>{};
        }
        return make_error(Errc::system_error, "cannot read '" + path.native() + "'", errno);
    }
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t r = ::read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(r));
        if (text.size() > kMaxStateBytes) {
            ::close(fd);
            return make_error(Errc::corrupted, "'" + path.native() + "' is too large");
        }
    }
    ::close(fd);
    auto parsed = parse_state(text);
    if (!parsed) {
        return parsed.take_error();
    }
    return std::optional<SavedState>{std::move(*parsed)};
}

Result<StateFile> StateFile::lock(std::filesystem::path file, const std::filesystem::path& socket) {
    const std::string lock_path = file.native() + ".lock";
    UniqueFd fd{::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (!fd) {
        return make_error(Errc::system_error, "cannot open the lock file '" + lock_path + "'",
                          errno);
    }
    struct flock want {};
    want.l_type = F_WRLCK;
    want.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_SETLK, &want) != 0) {
        const int err = errno;
        if (err != EACCES && err != EAGAIN) {
            return make_error(Errc::system_error, "cannot lock '" + lock_path + "'", err);
        }
        struct flock held = want;
        const bool known = ::fcntl(fd.get(), F_GETLK, &held) == 0 && held.l_type != F_UNLCK;
        std::string holder_socket;
        char buf[512];
        const ssize_t n = ::pread(fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            holder_socket.assign(buf, static_cast<std::size_t>(n));
            holder_socket = holder_socket.substr(0, holder_socket.find('\n'));
        }
        return make_error(
            Errc::already_exists,
            "another shmbusd" +
                (known ? " (pid " + std::to_string(held.l_pid) +
                             (holder_socket.empty() ? "" : ", socket " + holder_socket) + ")"
                       : std::string{}) +
                " keeps its state in '" + file.native() +
                "': give this daemon a socket or a state directory of its own "
                "(--socket, --state-dir)");
    }
    // Who holds it, for the message above in another daemon. Best effort: the lock is what
    // counts.
    const std::string line = socket.native() + "\n";
    if (::ftruncate(fd.get(), 0) == 0) {
        (void)!::pwrite(fd.get(), line.data(), line.size(), 0);
    }
    return StateFile{std::move(file), std::move(fd)};
}

Result<void> StateFile::write(const SavedState& state) const {
    if (!state.channels.empty()) {
        return write_state_file(path_, state);
    }
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
        return make_error(Errc::system_error, "cannot remove '" + path_.native() + "'", errno);
    }
    return ok();
}

} // namespace shmbus::daemon
