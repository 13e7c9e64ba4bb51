// The daemon's state file: what a restarted daemon needs to take its channels back from
// their clients when no service manager kept the segments (no descriptor store).
//
// Contents, one record per line, text, written whole to a temporary file and renamed over
// `shmbusd.state` in the state directory (mode 0600):
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
// format_state() and parse_state() are pure; parse_state() treats the file as untrusted
// (it lives in a directory the daemon's user owns, but may be truncated by a crash) and
// refuses anything malformed as a whole. Failure policy: values; the caller logs.
#pragma once

#include "channel_registry.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>

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

/// File name inside the state directory.
inline constexpr const char* kStateFileName = "shmbusd.state";

[[nodiscard]] std::string format_state(const SavedState& state);
/// Errc::corrupted naming the line for anything malformed.
[[nodiscard]] Result<SavedState> parse_state(std::string_view text);

/// What the registry holds now, as a state file records it.
[[nodiscard]] SavedState snapshot(const ChannelRegistry& registry);

/// Writes `state` to `dir`/shmbusd.state atomically, mode 0600.
[[nodiscard]] Result<void> write_state_file(const std::filesystem::path& dir,
                                            const SavedState& state);
/// Reads `dir`/shmbusd.state; nothing if there is none.
[[nodiscard]] Result<std::optional<SavedState>> read_state_file(const std::filesystem::path& dir);

} // namespace shmbus::daemon
