// The daemon's state file: what a restarted daemon needs to take its channels back from
// their clients when no service manager kept the segments (no descriptor store).
//
// Contents, one record per line, text, written whole to a temporary file and renamed over
// the state file (mode 0600):
//   shmbusd-state 1
//   channel <name> <creation_id> <control dev> <control ino> <payload dev> <payload ino>
//           <dynamic 0|1> <creator uid>
// The device and inode numbers identify the very memory files: a reconnecting client's
// offer (reclaim_offer) is believed only if fstat() of its descriptors gives the same pair.
//
// Only channels are recorded, so the file changes when a channel is created or removed and
// not on every open and close. Which endpoints were attached needs no record: each channel's
// own endpoint table says so, and a restarted daemon reclaims at the end of its grace period
// every attached entry that no reconnecting client claimed. `endpoint` lines, written by
// earlier versions, are accepted and ignored.
//
// One daemon, one state file. Its name comes from the control socket's ("shmbusd.sock" ->
// "shmbusd.state"), and StateFile holds a lock on it (an fcntl write lock on "<state file>.lock"
// beside it) for the daemon's whole life: a second daemon that would share it refuses to
// start, naming the first one's pid and socket, before it reads or writes anything. The
// kernel drops the lock when the holder dies, however it dies.
//
// What is recorded is what a client could still offer back: while the daemon runs, every
// channel (any of them may gain a client before the next write) and every channel of an
// earlier run that is still awaited (restart_recovery.hpp); at a graceful stop, only the
// channels a client holds and those still awaited — none at all removes the file, so that
// the next start has nothing to wait for.
//
// format_state() and parse_state() are pure; parse_state() treats the file as untrusted
// (it lives in a directory the daemon's user owns, but may be truncated by a crash) and
// refuses anything malformed as a whole. Failure policy: values; the caller logs.
#pragma once

#include "channel_registry.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>
#include <shmbus/unique_fd.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::daemon {

struct FileIdentity {
    std::uint64_t dev{0};
    std::uint64_t ino{0};
    bool operator==(const FileIdentity&) const = default;
};

/// The identity of the file behind `fd`; nothing if fstat() fails.
[[nodiscard]] std::optional<FileIdentity> identity_of(int fd) noexcept;

struct ChannelRecord {
    std::string name;
    std::uint64_t creation_id{0};
    FileIdentity control;
    FileIdentity payload;
    bool dynamic{false};
    std::uint32_t creator_uid{0};
};

struct SavedState {
    std::vector<ChannelRecord> channels;
};

/// The name of the state file of the daemon whose control socket is `socket`: its file name
/// without a trailing ".sock", then ".state" ("shmbusd.sock" -> "shmbusd.state", "bus" ->
/// "bus.state"). Never the socket's own name.
[[nodiscard]] std::string state_file_name(const std::filesystem::path& socket);

[[nodiscard]] std::string format_state(const SavedState& state);
/// Errc::corrupted naming the line for anything malformed.
[[nodiscard]] Result<SavedState> parse_state(std::string_view text);

/// How a state file records `channel`.
[[nodiscard]] ChannelRecord record_of(const RegisteredChannel& channel);

/// Writes `state` to `file` atomically (a temporary file renamed over it), mode 0600.
[[nodiscard]] Result<void> write_state_file(const std::filesystem::path& file,
                                            const SavedState& state);
/// Reads `file`; nothing if there is none.
[[nodiscard]] Result<std::optional<SavedState>> read_state_file(const std::filesystem::path& file);

/// The state file of this daemon, locked against every other daemon for as long as the
/// object lives. Move-only; the lock goes with the descriptor.
class StateFile {
public:
    /// Locks `file` for this process; `socket` is written into the lock file so that another
    /// daemon can name this one. Errc::already_exists naming the holder's pid and socket when
    /// another process holds the lock; Errc::system_error naming the path otherwise.
    [[nodiscard]] static Result<StateFile> lock(std::filesystem::path file,
                                                const std::filesystem::path& socket);

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] Result<std::optional<SavedState>> read() const { return read_state_file(path_); }
    /// Writes `state`; an empty state removes the file (there is nothing to take back).
    [[nodiscard]] Result<void> write(const SavedState& state) const;

private:
    StateFile(std::filesystem::path path, UniqueFd lock) noexcept
        : path_{std::move(path)}, lock_{std::move(lock)} {}
    std::filesystem::path path_;
    UniqueFd lock_;
};

} // namespace shmbus::daemon
