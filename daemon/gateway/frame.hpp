// The gateway's bridge frames: what two daemons (or a daemon and `shmbusctl bridge-stdio`)
// say to each other over a link. docs/gateway.md is the reference; this header is its code.
//
// A link is a byte stream (TCP, a FIFO pair, a command's stdin/stdout). On it, every frame is
// a 12-byte header followed by a body:
//
//   u32 magic (kMagic, "SBGW")  u16 type  u16 flags  u32 body bytes
//
// Integers are little-endian and fixed-width; strings are u32 length + bytes, lists u32 count
// + elements, as in the control protocol (protocol/field_io.hpp does both). `flags` is 0 in
// protocol 1, and a decoder of a link that agreed on version 1 refuses any other value. From
// protocol 2 on, an origin_data frame's flags may say that it carries one fragment of a
// message too large for one frame (FragmentPart); its body is then a FragmentView's, which
// carries the message's origin like every origin_data frame (see below).
//
// Every body is described once by a fields() function (frame.cpp) that drives encoding and
// decoding. Data frames are the exception: they carry message bytes that must not be copied
// twice, so they are encoded as a prefix (header, stream, first sequence, count, lengths)
// that the sender follows with the messages themselves in one writev, and decoded into a
// DataView that points into the received bytes.
//
// This code is pure: bytes in, frames or an Error out. It knows no socket, no thread, no
// channel and no handshake state; which frame is allowed when is the session's rule. Every
// malformed input is Errc::protocol_error naming the frame and field (Errc::version_mismatch
// for a hello whose version range excludes ours, naming both); nothing is read out of bounds,
// nothing throws but std::bad_alloc, and nothing is allocated from a size the peer claims
// before the bytes behind it have arrived.
#pragma once

#include "gateway/bridge_rules.hpp"

#include <shmbus/channel.hpp>
#include <shmbus/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace shmbus::gateway {

inline constexpr std::uint32_t kMagic = 0x57474253; // "SBGW" little-endian
/// The bridge protocol versions this build speaks, lowest and highest.
inline constexpr std::uint16_t kVersionMin = 1;
inline constexpr std::uint16_t kVersionMax = 2;
inline constexpr std::size_t kHeaderBytes = 12;
/// Largest body of any frame but data, in every phase of a link.
inline constexpr std::size_t kMaxControlBody = std::size_t{64} * 1024;
/// Largest data frame body either end may offer in its hello (16 MiB).
inline constexpr std::size_t kMaxDataBodyLimit = std::size_t{16} * 1024 * 1024;
/// Smallest data frame body an end may offer: room for one small message.
inline constexpr std::size_t kMinDataBodyLimit = 4096;
/// Data frame body assumed until the hellos have agreed on one.
inline constexpr std::size_t kDefaultDataBody = std::size_t{1} * 1024 * 1024;
/// Most messages in one data frame.
inline constexpr std::uint32_t kMaxMessagesPerFrame = 4096;
/// The first protocol version with fragments (origin_data frames whose flags are a
/// FragmentPart).
inline constexpr std::uint16_t kFragmentsVersion = 2;
/// A fragment's fixed fields: stream, sequence, total bytes, offset, then the message's
/// origin (daemon, channel, sequence).
inline constexpr std::size_t kFragmentFixedBytes = 4 + 8 + 8 + 8 + 8 + 8 + 8;
/// A fragment's head: the frame header and the fixed fields, all a reader needs to check it
/// before its bytes arrive (FrameReader::fragment_head()).
inline constexpr std::size_t kFragmentHeadBytes = kHeaderBytes + kFragmentFixedBytes;
inline constexpr std::size_t kMaxStringBytes = 4096;
inline constexpr std::size_t kMaxListItems = 4096;
/// Random challenge and HMAC-SHA256 lengths.
inline constexpr std::size_t kNonceBytes = 32;
inline constexpr std::size_t kMacBytes = 32;
/// The first protocol version whose links carry origins (origin_data) and types (offers).
inline constexpr std::uint16_t kOriginVersion = 2;

enum class FrameType : std::uint16_t {
    hello = 1,         ///< first frame each way: versions, limits, incarnation, challenge
    auth = 2,          ///< the answer to the peer's challenge
    offer = 3,         ///< the exporter proposes a stream of one channel
    want = 4,          ///< the importer asks for the peer's channels matching a pattern
    grant = 5,         ///< the importer accepts an offer: first credits, where to resume
    refuse = 6,        ///< an offer or a want refused, with the reason
    credit = 7,        ///< the importer frees room: more messages per stream
    data = 8,          ///< messages of one stream
    ping = 9,          ///< liveness and RTT when the link is idle
    pong = 10,         ///< the answer to a ping
    close_stream = 11, ///< one stream ends (channel gone, reload), the link stays
    goodbye = 12,      ///< the link ends, with the reason
    origin_data = 13,  ///< protocol 2: messages of one stream and of one origin
};

/// "hello", "data", ...; "unknown" otherwise.
[[nodiscard]] std::string_view frame_type_name(FrameType type) noexcept;

enum class ByteOrder : std::uint8_t {
    little = 1,
    big = 2,
};

enum class AuthMethod : std::uint8_t {
    none = 0,        ///< the transport authenticates (ssh for exec:, file modes for fifo:)
    hmac_sha256 = 1, ///< mutual challenge on a shared secret
};

/// Whether a refusal answers an offer or a want.
enum class RefusedKind : std::uint8_t {
    offer = 1,
    want = 2,
};

// Enum validation for the field codec (found by argument-dependent lookup).
[[nodiscard]] bool defined(FrameType v) noexcept;
[[nodiscard]] bool defined(ByteOrder v) noexcept;
[[nodiscard]] bool defined(AuthMethod v) noexcept;
[[nodiscard]] bool defined(RefusedKind v) noexcept;
[[nodiscard]] std::string_view enum_name(FrameType) noexcept;
[[nodiscard]] std::string_view enum_name(ByteOrder) noexcept;
[[nodiscard]] std::string_view enum_name(AuthMethod) noexcept;
[[nodiscard]] std::string_view enum_name(RefusedKind) noexcept;

/// This host's byte order.
[[nodiscard]] ByteOrder host_byte_order() noexcept;

struct Hello {
    std::uint16_t version_min{kVersionMin}; ///< these two fields stay first in every version
    std::uint16_t version_max{kVersionMax};
    ByteOrder byte_order{ByteOrder::little}; ///< of the sender's host: payloads are raw bytes
    std::uint32_t max_alignment{0};          ///< alignof(std::max_align_t) on the sender
    std::uint64_t max_message_bytes{0};      ///< largest message the sender accepts
    std::uint32_t max_data_body{0};          ///< largest data frame body the sender accepts
    std::uint64_t incarnation{0};            ///< random per daemon start: a restart is new
    AuthMethod auth{AuthMethod::none};
    std::string nonce;  ///< kNonceBytes random bytes (empty if none)
    std::string node;   ///< the sender's host or instance, for logs
    std::string bridge; ///< the bridge's name on the sender, for logs
};

struct Auth {
    /// kMacBytes: HMAC-SHA256 over the transcript (docs/gateway.md); empty: the sender, which
    /// has a secret the peer lacks, waives the challenge
    std::string mac;
};

struct Offer {
    std::uint32_t stream{0};  ///< the exporter's id for this stream, unique on the link
    std::uint32_t request{0}; ///< the want this answers, 0 if the exporter's own config
    std::string wire_name;    ///< the channel's name on the link (after export `as`)
    ChannelKind kind{ChannelKind::broadcast};
    Overflow overflow{Overflow::drop};
    std::uint64_t slot_size{0}; ///< largest message of the source channel
    std::uint64_t slot_count{0};
    std::uint64_t creation_id{0};   ///< the source channel's: a re-created one is a new stream
    std::uint64_t next_sequence{0}; ///< the sequence the stream's next message will carry
    /// Protocol 2 appends the channel's type name ("" when it has none); absent in protocol 1.
    std::optional<std::string> type;
};

struct Want {
    std::uint32_t request{0}; ///< the importer's id, echoed by the offers and refusals
    std::string pattern;      ///< wire names wanted: a channel name or a glob (* and ?)
};

struct Grant {
    std::uint32_t stream{0};
    std::uint32_t credits{0};         ///< messages the exporter may send now
    std::uint64_t resume_sequence{0}; ///< next sequence the importer expects; 0 = from now
};

struct Refuse {
    RefusedKind what{RefusedKind::offer};
    std::uint32_t id{0}; ///< the offer's stream or the want's request
    Errc code{Errc::permission_denied};
    std::string reason;
};

struct CreditGrant {
    std::uint32_t stream{0};
    std::uint32_t messages{0};
};

struct Credit {
    std::vector<CreditGrant> grants;
};

struct Ping {
    std::uint64_t token{0};
    std::uint64_t sent_ns{0}; ///< the sender's monotonic clock, echoed back
};

struct Pong {
    std::uint64_t token{0};
    std::uint64_t sent_ns{0};
};

struct CloseStream {
    std::uint32_t stream{0};
    Errc code{Errc::closed};
    std::string reason;
};

struct Goodbye {
    Errc code{Errc::closed};
    std::string reason;
};

/// Where the messages of an origin_data frame were first published: the daemon (its
/// incarnation), the channel there (its creation id) and the sequence the first message had
/// in that channel's stream. The next messages of the frame follow it one by one.
struct MessageOrigin {
    std::uint64_t daemon{0};
    std::uint64_t channel{0};
    std::uint64_t first_sequence{0};

    friend bool operator==(const MessageOrigin&, const MessageOrigin&) = default;
};

/// A received data frame: views into the bytes it was decoded from, valid as long as they.
/// Decoding has checked that there are `count` lengths and that they add up exactly to the
/// payload; message(i) is therefore always in bounds.
class DataView {
public:
    DataView() = default;
    DataView(std::uint32_t stream, std::uint64_t first_sequence, std::uint32_t count,
             std::span<const std::byte> lengths, std::span<const std::byte> payload,
             std::optional<MessageOrigin> origin = std::nullopt) noexcept;

    [[nodiscard]] std::uint32_t stream() const noexcept { return stream_; }
    [[nodiscard]] std::uint64_t first_sequence() const noexcept { return first_sequence_; }
    [[nodiscard]] std::uint32_t count() const noexcept { return count_; }
    [[nodiscard]] std::uint32_t length(std::uint32_t i) const noexcept;
    [[nodiscard]] std::size_t payload_bytes() const noexcept { return payload_.size(); }
    /// The `count` lengths as they came (little-endian u32s), and the messages, concatenated.
    [[nodiscard]] std::span<const std::byte> raw_lengths() const noexcept { return lengths_; }
    [[nodiscard]] std::span<const std::byte> payload() const noexcept { return payload_; }
    /// An origin_data frame's origin; none for a protocol 1 data frame.
    [[nodiscard]] const std::optional<MessageOrigin>& origin() const noexcept { return origin_; }
    /// Messages from..from + count - 1 (from + count <= count()) as a view of their own: their
    /// sequences, lengths, bytes and origin.
    [[nodiscard]] DataView slice(std::uint32_t from, std::uint32_t count) const noexcept;

    /// Walks the messages in order: `f(sequence, bytes)` for each.
    template <typename F>
    void for_each(F&& f) const {
        std::size_t offset = 0;
        for (std::uint32_t i = 0; i < count_; ++i) {
            const std::uint32_t n = length(i);
            f(first_sequence_ + i, payload_.subspan(offset, n));
            offset += n;
        }
    }

private:
    std::uint32_t stream_{0};
    std::uint64_t first_sequence_{0};
    std::uint32_t count_{0};
    std::span<const std::byte> lengths_;
    std::span<const std::byte> payload_;
    std::optional<MessageOrigin> origin_;
};

/// Which part of a fragmented message an origin_data frame carries: the value of its header's
/// flags (protocol 2 on). Every other value of its flags is refused, and a data frame's flags
/// are always 0.
enum class FragmentPart : std::uint16_t {
    whole = 0,  ///< an ordinary origin_data frame: whole messages
    start = 1,  ///< the first bytes of a message (offset 0)
    middle = 2, ///< bytes after the start, not the last ones
    end = 3,    ///< the last bytes: the message is complete
};

/// "start", "middle", "end" ("whole" for 0).
[[nodiscard]] std::string_view fragment_part_name(FragmentPart part) noexcept;

/// A received fragment: an origin_data frame with a FragmentPart in its flags, whose body is
///   u32 stream, u64 sequence, u64 total_bytes, u64 offset,
///   origin: u64 daemon, u64 channel, u64 sequence, then the fragment's bytes.
/// Every fragment of a message repeats its sequence, total size and origin and says where its
/// bytes go, so that a reassembler can check each against the start (fragments.hpp); the
/// origin's `first_sequence` is the message's own origin sequence. Decoding has checked the
/// fields that need no context: a stream, an origin with no field 0, at least one byte, the
/// bytes within the total (offset + size <= total_bytes, in 64 bits), a start at offset 0
/// that does not hold the whole message, an end that does reach it, a middle that does not.
/// Points into the bytes it was decoded from.
struct FragmentView {
    FragmentPart part{FragmentPart::start};
    std::uint32_t stream{0};
    std::uint64_t sequence{0};
    std::uint64_t total_bytes{0}; ///< the whole message's length
    std::uint64_t offset{0};      ///< where `bytes` go in the message
    MessageOrigin origin;         ///< the message's origin (first_sequence: its own)
    std::span<const std::byte> bytes;
};

using Frame = std::variant<Hello, Auth, Offer, Want, Grant, Refuse, Credit, DataView, Ping, Pong,
                           CloseStream, Goodbye, FragmentView>;

/// The wire type of a frame.
[[nodiscard]] FrameType type_of(const Frame& frame) noexcept;

/// Encodes any frame but data: header + body. Errc::invalid_argument naming the field if a
/// value is outside what the protocol allows (a string too long, an undefined enum, a body
/// above kMaxControlBody).
[[nodiscard]] Result<std::vector<std::byte>> encode(const Frame& frame);

/// Encodes a data frame's header and fixed fields and the `lengths` of its messages into
/// `out` (replacing its contents); the message bytes, concatenated in order, follow on the
/// wire. Errc::invalid_argument if there are no messages or more than kMaxMessagesPerFrame,
/// if the body would exceed `max_body`, or if the sequences would wrap.
[[nodiscard]] Result<void> encode_data_prefix(std::uint32_t stream, std::uint64_t first_sequence,
                                              std::span<const std::uint32_t> lengths,
                                              std::size_t max_body, std::vector<std::byte>& out);

/// The same for an origin_data frame (protocol 2), whose fixed fields are followed by the
/// messages' `origin`. Errc::invalid_argument as above, or if the origin's daemon, channel or
/// first sequence is 0 or its sequences would wrap.
[[nodiscard]] Result<void>
encode_origin_data_prefix(std::uint32_t stream, std::uint64_t first_sequence,
                          const MessageOrigin& origin, std::span<const std::uint32_t> lengths,
                          std::size_t max_body, std::vector<std::byte>& out);

/// Encodes the header (an origin_data frame flagged `part`) and fixed fields of one fragment
/// of message `sequence` (`total_bytes` long, first published as `origin`, whose
/// first_sequence is the message's own) whose `size` bytes from `offset` follow on the wire,
/// into `out` (replacing its contents). Errc::invalid_argument if the fragment is empty, not
/// within the message, does not fit `max_body`, does not match `part` (a start at offset 0
/// short of the end, an end reaching it, a middle in between), or if an origin field is 0.
[[nodiscard]] Result<void> encode_fragment_prefix(FragmentPart part, std::uint32_t stream,
                                                  std::uint64_t sequence, std::uint64_t total_bytes,
                                                  std::uint64_t offset, std::size_t size,
                                                  const MessageOrigin& origin, std::size_t max_body,
                                                  std::vector<std::byte>& out);

/// A decoded frame header.
struct FrameHeader {
    FrameType type{FrameType::hello};
    std::uint16_t flags{0};
    std::uint32_t body_bytes{0};
};

/// Decodes and checks a header: magic, a known type, flags 0 (on a link of `version`
/// kFragmentsVersion or later, an origin_data frame's flags may also be a FragmentPart), and a
/// body
/// no larger than kMaxControlBody (data: `max_data_body`). Run before the body is read, so
/// that an oversized frame is refused before anything is buffered for it.
[[nodiscard]] Result<FrameHeader> decode_header(std::span<const std::byte, kHeaderBytes> bytes,
                                                std::size_t max_data_body,
                                                std::uint16_t version = kVersionMin);

/// Decodes the body of a frame of `type` whose header carried `flags` (decode_header()
/// checked them). A DataView or FragmentView points into `body` (data and whole origin_data
/// frames both decode into a DataView, fragments into a FragmentView).
[[nodiscard]] Result<Frame> decode_body(FrameType type, std::span<const std::byte> body,
                                        std::uint16_t flags = 0);

/// Decodes a fragment's fixed fields (`fixed`, the first kFragmentFixedBytes of its body) for
/// a fragment that carries `size` bytes after them, with every check decode_body() makes;
/// the view's `bytes` are left empty. Lets a reader check a fragment before its bytes arrive.
[[nodiscard]] Result<FragmentView>
decode_fragment_fields(FragmentPart part, std::span<const std::byte> fixed, std::uint64_t size);

/// Decodes exactly one whole frame (header and body, nothing after it), as a link of
/// `version` does.
[[nodiscard]] Result<Frame> decode(std::span<const std::byte> bytes, std::size_t max_data_body,
                                   std::uint16_t version = kVersionMin);

/// A fragment whose fixed fields have arrived before all of its bytes
/// (FrameReader::fragment_head()).
struct FragmentHead {
    /// Its fields, checked as decode_body() checks them; `bytes`: those of its bytes that have
    /// arrived so far.
    FragmentView view;
    /// The bytes it carries in all.
    std::size_t size{0};
};

/// Cuts a byte stream into frames. The owner appends what it read from the link; next()
/// yields the frames that are complete. A frame returned by next() (a DataView in
/// particular) points into this reader's buffer and stays valid until the next call to
/// append(), writable() or next(). Memory is bounded by the largest frame allowed plus
/// what one append adds. Not thread-safe; one reader per link direction.
///
/// Diversion: the bytes of a large fragment may skip this reader's buffer and go straight
/// from the link to where they belong (a reassembly buffer), saving a copy of each. The
/// owner asks fragment_head() for a fragment whose fields have arrived and hands divert() the
/// place for its bytes; writable() and commit() then fill that place, and the reader's own
/// reads resume after the fragment's last byte. Until the fields of the frame after it have
/// arrived, writable() offers only as many bytes as those fields need, so that a stream of
/// fragments is read into the buffer a frame head at a time and its bytes are diverted.
class FrameReader {
public:
    explicit FrameReader(std::size_t max_data_body = kDefaultDataBody) noexcept
        : max_data_body_{max_data_body} {}

    /// Changes the data frame limit (after the hellos agreed on one).
    void set_max_data_body(std::size_t bytes) noexcept { max_data_body_ = bytes; }

    /// Decodes as the protocol `version` the hellos agreed on does (kVersionMin until then).
    void set_version(std::uint16_t version) noexcept { version_ = version; }

    /// Copies `bytes` in (into a diverted fragment's place first, while it has room).
    void append(std::span<const std::byte> bytes);

    /// A region of at least `at_least` bytes to read into; commit() says how many arrived.
    /// Avoids a copy when reading straight from a socket. While a fragment is diverted: the
    /// rest of its place, however small; just after one: at most what the next frame's
    /// fields need.
    [[nodiscard]] std::span<std::byte> writable(std::size_t at_least);
    void commit(std::size_t bytes) noexcept;

    /// The next complete frame; an empty optional if more bytes are needed (always, while a
    /// fragment is diverted); an Error if the stream is malformed (the link must then be
    /// closed: nothing after it can be trusted).
    [[nodiscard]] Result<std::optional<Frame>> next();

    /// When next() has no whole frame: the frame begun, if it is a fragment whose fixed
    /// fields have arrived and of whose bytes at least `min_due` have not; an empty optional
    /// otherwise; an Error as next() would give for it. The owner then either divert()s it or
    /// leaves it to next(). The view's bytes stay valid until the next call to any member.
    [[nodiscard]] Result<std::optional<FragmentHead>> fragment_head(std::size_t min_due);

    /// Takes the fragment fragment_head() just returned out of the stream: its bytes that
    /// have arrived are copied to the start of `place` (exactly its size), and the rest go
    /// there as they are read. diverting() is true until the last of them is committed.
    void divert(std::span<std::byte> place);

    /// Whether a diverted fragment still has bytes to come.
    [[nodiscard]] bool diverting() const noexcept { return filled_ < place_.size(); }

    /// Bytes held that do not yet make a whole frame.
    [[nodiscard]] std::size_t buffered() const noexcept { return end_ - begin_; }

private:
    void compact();
    /// Decodes the header at begin_ (kHeaderBytes of it are there); a failure breaks the
    /// reader for good.
    [[nodiscard]] Result<FrameHeader> buffered_header();

    std::vector<std::byte> buffer_;
    std::size_t begin_{0}; ///< first byte not yet consumed
    std::size_t end_{0};   ///< one past the last byte received
    std::size_t max_data_body_;
    std::uint16_t version_{kVersionMin};
    std::optional<Error> failed_;             ///< once broken, always broken
    std::span<std::byte> place_;              ///< a diverted fragment's bytes' place
    std::size_t filled_{0};                   ///< how much of place_ has arrived
    bool after_diversion_{false};             ///< reads bring only the next frame's fields
    std::optional<std::size_t> head_arrived_; ///< fragment_head()'s bytes that had arrived
};

} // namespace shmbus::gateway
