// A NATS bridge's messages without libnats' costs per message: headers written and read as the
// bytes NATS carries, and messages freed by the thread that is done with them.
//
// libnats keeps a message's headers in a hash table: setting one allocates the table, an entry
// and copies of the key and the value, and reading one from a received message first parses
// every header into such a table; destroying the message frees them all. And it frees every
// message destroyed in a collector thread of its own, which it wakes for a message destroyed
// while that thread is idle. At a bridge's rate of small messages those were most of its
// daemons' own work per message (docs/nats.md, "Figures"). A bridge needs one header of its
// own per message, and its messages are done with the moment they are published or handled.
//
// So an export writes its headers as NATS carries them ("NATS/1.0\r\nKey: value\r\n\r\n")
// just in front of the payload and hands both to libnats as one message with encoded
// headers, the way libnats builds every message it receives; and an import copies a received
// message's encoded headers out and finds its header among them without building the table.
// A header block that is not in the plain form (a folded line, a malformed one) is left to
// libnats' own parser, so that what is read never differs from what libnats would have read.
// Both free their messages at once (nats_free()): no collector, no wake-up, and the export's
// next message reuses the memory its last one had, from this thread's cache of free blocks.
//
// These use functions that libnats exports but does not declare in nats.h: natsMsg_create(),
// natsMsg_free(), natsMsgHeader_encodedLen(), natsMsgHeader_encode() and natsBuffer's
// constructor, reset and destructor, with the same signatures from libnats 2.2 (which brought
// headers) to 3.x. The build checks that the library has them (SHMBUS_NATS_ENCODED_HEADERS)
// and, without them or with a major version not known to keep them, uses libnats' public
// header functions and natsMsg_Destroy() instead.
#pragma once

#include <nats/nats.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shmbus::gateway {

/// Whether this build writes and reads headers as bytes (else through libnats' table) and
/// frees messages itself.
bool nats_encoded_headers() noexcept;

/// One header of a message: `key` and `value` hold no CR or LF (the caller's names and
/// numbers) and `key` no colon.
struct NatsHeader {
    std::string_view key;
    std::string_view value;
};

/// The bytes NATS carries for `headers` ("NATS/1.0\r\n", "Key: value\r\n" each, "\r\n").
std::size_t nats_encoded_size(std::span<const NatsHeader> headers) noexcept;

/// Creates in `*out` a message to `subject` whose payload is `buf[room, room + size)` and
/// whose headers are `headers`. With encoded headers they are written into the `room` bytes in
/// front of the payload (the caller keeps enough: nats_encoded_size()) and libnats copies
/// headers and payload in one piece; otherwise, or when they do not fit, they are set one by
/// one. What libnats returns; `*out` is null unless NATS_OK.
natsStatus nats_message(natsMsg** out, const std::string& subject, std::span<std::byte> buf,
                        std::size_t room, std::size_t size,
                        std::span<const NatsHeader> headers) noexcept;

/// The first value of `m`'s header `key` as libnats reads it (its table), or null.
const char* nats_header(natsMsg* m, const char* key) noexcept;

/// Frees `m` now, in this thread: a message made by nats_message() once libnats has copied
/// it (a publish returned), or one libnats delivered once it is handled (acknowledged, if
/// durable). natsMsg_Destroy() where the build has no natsMsg_free().
void nats_free(natsMsg* m) noexcept;

/// The fields of a Shmbus-Origin or Shmbus-Idle header's value; views into its text.
struct OriginFields {
    std::string_view node;
    std::uint64_t incarnation{0};
    std::string_view channel;
    std::uint64_t number{0}; ///< the sequence (Origin) or the last sequence (Idle)
};

/// Parses "NODE INCARNATION CHANNEL NUMBER" (single spaces, decimal numbers); nothing if
/// `text` is absent or not that.
std::optional<OriginFields> parse_origin(const char* text) noexcept;

/// Finds headers in received messages. One per thread that reads them (libnats delivers a
/// subscription's messages from one thread at a time).
class NatsHeaderReader {
public:
    NatsHeaderReader() noexcept;
    ~NatsHeaderReader();
    NatsHeaderReader(const NatsHeaderReader&) = delete;
    NatsHeaderReader& operator=(const NatsHeaderReader&) = delete;

    /// Takes `m`'s headers for the next calls of find(): their bytes, copied if they are in the
    /// plain form and fit, else `m` itself for libnats to parse.
    void read(natsMsg* m) noexcept;
    /// The first value of the header `key` of the message read (trimmed of spaces, as libnats
    /// trims it), or null if it has none. The view lives until the next read() or the
    /// message's destruction.
    const char* find(const char* key) noexcept;

    /// Whether the last read() found its headers in the plain form, parsed here (tests).
    bool parsed_here() const noexcept { return msg_ == nullptr; }

private:
    /// Header blocks longer than this are parsed by libnats (a bridge's own are under 300).
    static constexpr std::size_t kCapacity = 2048;
    /// Parses bytes_[0, size) in place: every line's value NUL-terminated, keys noted.
    bool parse(std::size_t size) noexcept;

    struct Line {
        std::string_view key;
        const char* value;
    };
    static constexpr std::size_t kMaxLines = 16;

    std::array<char, kCapacity + 1> bytes_{};
    std::array<Line, kMaxLines> lines_{};
    std::size_t line_count_{0};
    void* buffer_{nullptr}; ///< libnats' natsBuffer, writing into bytes_
    natsMsg* msg_{nullptr}; ///< set when libnats is left to parse
};

} // namespace shmbus::gateway
