// Encoding and decoding of bridge frames; the rules are in frame.hpp and docs/gateway.md.
//
// Each body but data's is described once, by a fields() function below, which the Reader and
// Writer of protocol/field_io.hpp walk to decode and encode. Checks that a field's value is
// allowed (a nonce of the right length, a channel name of the right characters) sit in the
// same function as require() calls, so both directions enforce them: we never send what a
// peer would refuse.
//
// Unlike the control protocol, a body must end exactly where its fields do: a newer peer
// adds fields only in a protocol version both ends have agreed on in the hello, so trailing
// bytes are a malformed frame, not an extension. The one exception is the hello itself,
// whose leading version range stays put in every version and whose tail a newer version may
// extend; bytes after the fields this version knows are ignored there.
//
// Data frames are decoded by hand: after the fixed fields come `count` u32 lengths and the
// messages, and the lengths must add up exactly to the bytes left (checked in 64 bits, so
// no sum of hostile lengths can wrap).
#include "gateway/frame.hpp"

#include "protocol/field_io.hpp"
#include "shm/segment.hpp"

#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <limits>
#include <type_traits>

namespace shmbus::gateway {

using proto::FieldLimits;
using proto::FieldPath;
using proto::hex32;
using proto::Is;
using proto::load_u16;
using proto::load_u32;
using proto::Reader;
using proto::store_u32;
using proto::Writer;

std::string_view frame_type_name(FrameType type) noexcept {
    switch (type) {
    case FrameType::hello:
        return "hello";
    case FrameType::auth:
        return "auth";
    case FrameType::offer:
        return "offer";
    case FrameType::want:
        return "want";
    case FrameType::grant:
        return "grant";
    case FrameType::refuse:
        return "refuse";
    case FrameType::credit:
        return "credit";
    case FrameType::data:
        return "data";
    case FrameType::ping:
        return "ping";
    case FrameType::pong:
        return "pong";
    case FrameType::close_stream:
        return "close_stream";
    case FrameType::goodbye:
        return "goodbye";
    case FrameType::origin_data:
        return "origin_data";
    }
    return "unknown";
}

bool defined(FrameType v) noexcept {
    return frame_type_name(v) != "unknown";
}
bool defined(ByteOrder v) noexcept {
    return v == ByteOrder::little || v == ByteOrder::big;
}
bool defined(AuthMethod v) noexcept {
    return v == AuthMethod::none || v == AuthMethod::hmac_sha256;
}
bool defined(RefusedKind v) noexcept {
    return v == RefusedKind::offer || v == RefusedKind::want;
}
std::string_view enum_name(FrameType) noexcept {
    return "FrameType";
}
std::string_view enum_name(ByteOrder) noexcept {
    return "ByteOrder";
}
std::string_view enum_name(AuthMethod) noexcept {
    return "AuthMethod";
}
std::string_view enum_name(RefusedKind) noexcept {
    return "RefusedKind";
}

std::string_view fragment_part_name(FragmentPart part) noexcept {
    switch (part) {
    case FragmentPart::whole:
        return "whole";
    case FragmentPart::start:
        return "start";
    case FragmentPart::middle:
        return "middle";
    case FragmentPart::end:
        return "end";
    }
    return "unknown";
}

ByteOrder host_byte_order() noexcept {
    return std::endian::native == std::endian::big ? ByteOrder::big : ByteOrder::little;
}

namespace {

constexpr FieldLimits kLimits{kMaxStringBytes, kMaxListItems, kHeaderBytes + kMaxControlBody};

// The wire type of each alternative of Frame, in the variant's order.
constexpr std::array<FrameType, std::variant_size_v<Frame>> kTypeOfAlternative{
    FrameType::hello,       FrameType::auth,   FrameType::offer,        FrameType::want,
    FrameType::grant,       FrameType::refuse, FrameType::credit,       FrameType::data,
    FrameType::ping,        FrameType::pong,   FrameType::close_stream, FrameType::goodbye,
    FrameType::origin_data, // FragmentView: an origin_data frame with a FragmentPart in its flags
};
static_assert(std::is_same_v<std::variant_alternative_t<0, Frame>, Hello>);
static_assert(std::is_same_v<std::variant_alternative_t<7, Frame>, DataView>);
static_assert(std::is_same_v<std::variant_alternative_t<11, Frame>, Goodbye>);
static_assert(std::is_same_v<std::variant_alternative_t<12, Frame>, FragmentView>);

/// Whether `name` is a channel name: 1..kMaxNameLength bytes of [A-Za-z0-9_.:/-].
bool channel_name_ok(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxNameLength) {
        return false;
    }
    for (char c : name) {
        if (!detail::valid_name_char(c)) {
            return false;
        }
    }
    return true;
}

/// A want's pattern: a channel name in which * and ? may stand for characters.
bool pattern_ok(std::string_view pattern) noexcept {
    if (pattern.empty() || pattern.size() > kMaxNameLength) {
        return false;
    }
    for (char c : pattern) {
        if (c != '*' && c != '?' && !detail::valid_name_char(c)) {
            return false;
        }
    }
    return true;
}

} // namespace

// ---- the fields of every body but data's, in wire order ----

template <typename Io, Is<Hello> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.version_min, {&p, "version_min"});
    io.field(v.version_max, {&p, "version_max"});
    io.require(v.version_min <= v.version_max, {&p, "version_max"}, "is below version_min");
    io.field(v.byte_order, {&p, "byte_order"});
    io.field(v.max_alignment, {&p, "max_alignment"});
    io.require(std::has_single_bit(v.max_alignment) && v.max_alignment <= 4096,
               {&p, "max_alignment"}, "is not a power of two up to 4096");
    io.field(v.max_message_bytes, {&p, "max_message_bytes"});
    io.require(v.max_message_bytes >= 1 && v.max_message_bytes <= kMaxSlotSize,
               {&p, "max_message_bytes"}, "is not 1 to 1 GiB");
    io.field(v.max_data_body, {&p, "max_data_body"});
    io.require(v.max_data_body >= kMinDataBodyLimit && v.max_data_body <= kMaxDataBodyLimit,
               {&p, "max_data_body"}, "is not 4 KiB to 16 MiB");
    io.field(v.incarnation, {&p, "incarnation"});
    io.require(v.incarnation != 0, {&p, "incarnation"}, "is 0");
    io.field(v.auth, {&p, "auth"});
    io.field(v.nonce, {&p, "nonce"});
    io.require(v.nonce.size() == (v.auth == AuthMethod::none ? 0 : kNonceBytes), {&p, "nonce"},
               "does not have the length its auth method needs (0 for none, 32 for "
               "hmac_sha256)");
    io.field(v.node, {&p, "node"});
    io.require(v.node.size() <= 255, {&p, "node"}, "is longer than 255 bytes");
    io.field(v.bridge, {&p, "bridge"});
    io.require(v.bridge.size() <= kMaxNameLength, {&p, "bridge"}, "is longer than 63 bytes");
}

template <typename Io, Is<Auth> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.mac, {&p, "mac"});
    io.require(v.mac.empty() || v.mac.size() == kMacBytes, {&p, "mac"},
               "is neither 32 bytes nor empty (a waiver)");
}

template <typename Io, Is<Offer> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.stream, {&p, "stream"});
    io.require(v.stream != 0, {&p, "stream"}, "is 0");
    io.field(v.request, {&p, "request"});
    io.field(v.wire_name, {&p, "wire_name"});
    io.require(channel_name_ok(v.wire_name), {&p, "wire_name"},
               "is not a channel name (1 to 63 bytes of letters, digits and _ . : / -)");
    io.field(v.kind, {&p, "kind"});
    io.field(v.overflow, {&p, "overflow"});
    io.require(v.kind == ChannelKind::broadcast || v.overflow == Overflow::block, {&p, "overflow"},
               "is drop on a queue, which always blocks");
    io.field(v.slot_size, {&p, "slot_size"});
    io.require(v.slot_size >= 1 && v.slot_size <= kMaxSlotSize, {&p, "slot_size"},
               "is not 1 to 1 GiB");
    io.field(v.slot_count, {&p, "slot_count"});
    io.require(v.slot_count >= 2 && v.slot_count <= kMaxSlotCount &&
                   std::has_single_bit(v.slot_count),
               {&p, "slot_count"}, "is not a power of two from 2 to 2^24");
    io.field(v.creation_id, {&p, "creation_id"});
    io.field(v.next_sequence, {&p, "next_sequence"});
}

/// Protocol 2's addition to an offer, after its protocol 1 fields: the channel's type name.
template <typename Io, typename T>
requires Is<T, std::string>
void offer_type_field(Io& io, T& type, const FieldPath& p) {
    io.field(type, {&p, "type"});
    io.require(type.empty() || type_name_ok(type), {&p, "type"},
               "is not a type name (1 to 255 visible ASCII characters, or empty)");
}

template <typename Io, Is<Want> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.request, {&p, "request"});
    io.require(v.request != 0, {&p, "request"}, "is 0");
    io.field(v.pattern, {&p, "pattern"});
    io.require(pattern_ok(v.pattern), {&p, "pattern"},
               "is not a channel name or glob (1 to 63 bytes of letters, digits, _ . : / - "
               "* ?)");
}

template <typename Io, Is<Grant> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.stream, {&p, "stream"});
    io.require(v.stream != 0, {&p, "stream"}, "is 0");
    io.field(v.credits, {&p, "credits"});
    io.field(v.resume_sequence, {&p, "resume_sequence"});
}

template <typename Io, Is<Refuse> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.what, {&p, "what"});
    io.field(v.id, {&p, "id"});
    io.require(v.id != 0, {&p, "id"}, "is 0");
    io.field(v.code, {&p, "code"});
    io.field(v.reason, {&p, "reason"});
}

template <typename Io, Is<CreditGrant> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.stream, {&p, "stream"});
    io.require(v.stream != 0, {&p, "stream"}, "is 0");
    io.field(v.messages, {&p, "messages"});
    io.require(v.messages != 0, {&p, "messages"}, "is 0");
}

template <typename Io, Is<Credit> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.grants, {&p, "grants"});
    io.require(!v.grants.empty(), {&p, "grants"}, "is empty");
}

template <typename Io, typename T>
requires Is<T, Ping> || Is<T, Pong>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.token, {&p, "token"});
    io.field(v.sent_ns, {&p, "sent_ns"});
}

template <typename Io, Is<CloseStream> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.stream, {&p, "stream"});
    io.require(v.stream != 0, {&p, "stream"}, "is 0");
    io.field(v.code, {&p, "code"});
    io.field(v.reason, {&p, "reason"});
}

template <typename Io, Is<Goodbye> T>
void fields(Io& io, T& v, const FieldPath& p) {
    io.field(v.code, {&p, "code"});
    io.field(v.reason, {&p, "reason"});
}

// ---- data frames ----

DataView::DataView(std::uint32_t stream, std::uint64_t first_sequence, std::uint32_t count,
                   std::span<const std::byte> lengths, std::span<const std::byte> payload,
                   std::optional<MessageOrigin> origin) noexcept
    : stream_{stream}, first_sequence_{first_sequence}, count_{count}, lengths_{lengths},
      payload_{payload}, origin_{origin} {}

std::uint32_t DataView::length(std::uint32_t i) const noexcept {
    // i < count_ and lengths_ holds count_ u32s (checked when decoded).
    return load_u32(lengths_.data() + std::size_t{4} * i);
}

DataView DataView::slice(std::uint32_t from, std::uint32_t count) const noexcept {
    std::size_t offset = 0;
    for (std::uint32_t i = 0; i < from; ++i) {
        offset += length(i);
    }
    std::size_t bytes = 0;
    for (std::uint32_t i = from; i < from + count; ++i) {
        bytes += length(i);
    }
    std::optional<MessageOrigin> origin = origin_;
    if (origin) {
        origin->first_sequence += from;
    }
    return DataView{stream_,
                    first_sequence_ + from,
                    count,
                    lengths_.subspan(std::size_t{4} * from, std::size_t{4} * count),
                    payload_.subspan(offset, bytes),
                    origin};
}

namespace {

constexpr std::size_t kDataFixedBytes = 4 + 8 + 4; // stream, first sequence, count

constexpr std::size_t kOriginBytes = 8 + 8 + 8; // daemon, channel, first sequence

Result<Frame> decode_data(std::span<const std::byte> body, FrameType type) {
    Reader reader{body, frame_type_name(type), kLimits};
    const FieldPath top{};
    std::uint32_t stream = 0;
    std::uint64_t first_sequence = 0;
    std::uint32_t count = 0;
    reader.field(stream, {&top, "stream"});
    reader.require(stream != 0, {&top, "stream"}, "is 0");
    reader.field(first_sequence, {&top, "first_sequence"});
    reader.field(count, {&top, "count"});
    reader.require(count >= 1 && count <= kMaxMessagesPerFrame, {&top, "count"},
                   "is not 1 to " + std::to_string(kMaxMessagesPerFrame));
    reader.require(count <= std::numeric_limits<std::uint64_t>::max() - first_sequence,
                   {&top, "first_sequence"}, "wraps around with count messages");
    std::optional<MessageOrigin> origin;
    if (type == FrameType::origin_data) {
        origin.emplace();
        const FieldPath at{&top, "origin"};
        reader.field(origin->daemon, {&at, "daemon"});
        reader.require(origin->daemon != 0, {&at, "daemon"}, "is 0");
        reader.field(origin->channel, {&at, "channel"});
        reader.require(origin->channel != 0, {&at, "channel"}, "is 0");
        reader.field(origin->first_sequence, {&at, "first_sequence"});
        reader.require(origin->first_sequence != 0, {&at, "first_sequence"}, "is 0");
        reader.require(count <= std::numeric_limits<std::uint64_t>::max() - origin->first_sequence,
                       {&at, "first_sequence"}, "wraps around with count messages");
    }
    if (!reader.ok()) {
        return reader.take_error();
    }
    const auto lengths = reader.raw(std::size_t{4} * count, {&top, "lengths"});
    if (!reader.ok()) {
        return reader.take_error();
    }
    std::uint64_t total = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        total += load_u32(lengths.data() + std::size_t{4} * i); // <= 4096 * 2^32: no wrap
    }
    if (total != reader.remaining()) {
        return make_error(Errc::protocol_error,
                          std::string{frame_type_name(type)} + ": field 'lengths' adds up to " +
                              std::to_string(total) + " bytes, the frame carries " +
                              std::to_string(reader.remaining()));
    }
    const auto payload = reader.raw(reader.remaining(), {&top, "payload"});
    return Frame{
        std::in_place_type<DataView>, stream, first_sequence, count, lengths, payload, origin};
}

/// Why a fragment's placement does not fit its part, or an empty string if it does: a start
/// at offset 0 short of the end, a middle after the start short of the end, an end reaching
/// it. `size` > 0 and offset + size <= total have been checked.
std::string fragment_shape_error(FragmentPart part, std::uint64_t total, std::uint64_t offset,
                                 std::uint64_t size) {
    const std::uint64_t reach = offset + size;
    switch (part) {
    case FragmentPart::start:
        if (offset != 0) {
            return "a start at offset " + std::to_string(offset) + ", not 0";
        }
        if (reach == total) {
            return "a start that holds the whole message (" + std::to_string(total) +
                   " bytes): a message that fits one frame is sent whole";
        }
        return {};
    case FragmentPart::middle:
        if (offset == 0) {
            return "a middle at offset 0";
        }
        if (reach == total) {
            return "a middle that reaches the end of the message (" + std::to_string(total) +
                   " bytes)";
        }
        return {};
    case FragmentPart::end:
        if (offset == 0) {
            return "an end at offset 0";
        }
        if (reach != total) {
            return "an end that stops at byte " + std::to_string(reach) + " of " +
                   std::to_string(total);
        }
        return {};
    case FragmentPart::whole:
        break;
    }
    return "not a fragment";
}

Result<Frame> decode_fragment(FragmentPart part, std::span<const std::byte> body) {
    const auto fixed = body.first(std::min(body.size(), kFragmentFixedBytes));
    auto f = decode_fragment_fields(part, fixed, body.size() - fixed.size());
    if (!f) {
        return f.take_error();
    }
    f.value().bytes = body.subspan(fixed.size());
    return Frame{std::in_place_type<FragmentView>, f.value()};
}

template <typename T>
Result<Frame> decode_fields(FrameType type, std::span<const std::byte> body) {
    Reader reader{body, frame_type_name(type), kLimits};
    T value{};
    fields(reader, value, FieldPath{});
    if constexpr (std::is_same_v<T, Offer>) {
        if (reader.ok() && reader.remaining() != 0) {
            offer_type_field(reader, value.type.emplace(), FieldPath{});
        }
    }
    if (!reader.ok()) {
        return reader.take_error();
    }
    if (type != FrameType::hello && reader.remaining() != 0) {
        return make_error(Errc::protocol_error, std::string{frame_type_name(type)} + ": " +
                                                    std::to_string(reader.remaining()) +
                                                    " bytes after the last field");
    }
    return Frame{std::in_place_type<T>, std::move(value)};
}

/// A hello's version range is read before anything else: a peer of another version is
/// refused for that, naming both ranges, not for a field this version does not know.
Result<Frame> decode_hello(std::span<const std::byte> body) {
    Reader reader{body, "hello", kLimits};
    const FieldPath top{};
    std::uint16_t min = 0;
    std::uint16_t max = 0;
    reader.field(min, {&top, "version_min"});
    reader.field(max, {&top, "version_max"});
    if (!reader.ok()) {
        return reader.take_error();
    }
    if (max < kVersionMin || min > kVersionMax) {
        return make_error(Errc::version_mismatch,
                          "the peer speaks bridge protocol " + std::to_string(min) + ".." +
                              std::to_string(max) + ", this side speaks " +
                              std::to_string(kVersionMin) + ".." + std::to_string(kVersionMax));
    }
    return decode_fields<Hello>(FrameType::hello, body);
}

void put_header(std::byte* p, FrameType type, std::uint32_t body_bytes,
                std::uint16_t flags = 0) noexcept {
    store_u32(p, kMagic);
    const auto t = static_cast<std::uint16_t>(type);
    p[4] = static_cast<std::byte>(t & 0xffU);
    p[5] = static_cast<std::byte>(t >> 8);
    p[6] = static_cast<std::byte>(flags & 0xffU);
    p[7] = static_cast<std::byte>(flags >> 8);
    store_u32(p + 8, body_bytes);
}

void store_u64(std::byte* p, std::uint64_t v) noexcept {
    store_u32(p, static_cast<std::uint32_t>(v));
    store_u32(p + 4, static_cast<std::uint32_t>(v >> 32));
}

} // namespace

FrameType type_of(const Frame& frame) noexcept {
    if (const auto* d = std::get_if<DataView>(&frame); d != nullptr && d->origin()) {
        return FrameType::origin_data;
    }
    const std::size_t i = frame.index();
    return i < kTypeOfAlternative.size() ? kTypeOfAlternative[i] : FrameType{0};
}

Result<std::vector<std::byte>> encode(const Frame& frame) {
    if (frame.valueless_by_exception()) {
        return make_error(Errc::invalid_argument, "cannot encode a frame without a body");
    }
    if (std::holds_alternative<DataView>(frame)) {
        return make_error(Errc::invalid_argument,
                          "data frames are encoded with encode_data_prefix()");
    }
    if (std::holds_alternative<FragmentView>(frame)) {
        return make_error(Errc::invalid_argument,
                          "fragments are encoded with encode_fragment_prefix()");
    }
    const FrameType type = type_of(frame);
    std::vector<std::byte> out(kHeaderBytes);
    Writer writer{out, frame_type_name(type), kLimits};
    std::visit(
        [&](const auto& body) {
            using T = std::decay_t<decltype(body)>;
            if constexpr (!std::is_same_v<T, DataView> && !std::is_same_v<T, FragmentView>) {
                fields(writer, body, FieldPath{});
            }
            if constexpr (std::is_same_v<std::decay_t<decltype(body)>, Offer>) {
                if (body.type) {
                    offer_type_field(writer, *body.type, FieldPath{});
                }
            }
        },
        frame);
    if (!writer.ok()) {
        return writer.take_error();
    }
    put_header(out.data(), type, static_cast<std::uint32_t>(out.size() - kHeaderBytes));
    return out;
}

namespace {

/// Both data frames' prefix: `origin` makes it an origin_data frame.
Result<void> encode_prefix(std::uint32_t stream, std::uint64_t first_sequence,
                           const MessageOrigin* origin, std::span<const std::uint32_t> lengths,
                           std::size_t max_body, std::vector<std::byte>& out) {
    if (stream == 0) {
        return make_error(Errc::invalid_argument, "cannot encode data: stream 0");
    }
    if (lengths.empty() || lengths.size() > kMaxMessagesPerFrame) {
        return make_error(Errc::invalid_argument,
                          "cannot encode data: " + std::to_string(lengths.size()) +
                              " messages, 1 to " + std::to_string(kMaxMessagesPerFrame) +
                              " allowed");
    }
    if (lengths.size() > std::numeric_limits<std::uint64_t>::max() - first_sequence) {
        return make_error(Errc::invalid_argument, "cannot encode data: the sequences wrap");
    }
    if (origin != nullptr &&
        (origin->daemon == 0 || origin->channel == 0 || origin->first_sequence == 0 ||
         lengths.size() > std::numeric_limits<std::uint64_t>::max() - origin->first_sequence)) {
        return make_error(Errc::invalid_argument,
                          "cannot encode origin_data: an origin field is 0 or its sequences wrap");
    }
    const std::size_t fixed = kDataFixedBytes + (origin != nullptr ? kOriginBytes : 0);
    std::uint64_t body = fixed + 4 * lengths.size();
    for (std::uint32_t n : lengths) {
        body += n;
    }
    if (body > max_body) {
        return make_error(Errc::invalid_argument,
                          "cannot encode data: a body of " + std::to_string(body) +
                              " bytes exceeds the link's limit of " + std::to_string(max_body));
    }
    out.resize(kHeaderBytes + fixed + 4 * lengths.size());
    std::byte* p = out.data();
    put_header(p, origin != nullptr ? FrameType::origin_data : FrameType::data,
               static_cast<std::uint32_t>(body));
    p += kHeaderBytes;
    store_u32(p, stream);
    store_u32(p + 4, static_cast<std::uint32_t>(first_sequence));
    store_u32(p + 8, static_cast<std::uint32_t>(first_sequence >> 32));
    store_u32(p + 12, static_cast<std::uint32_t>(lengths.size()));
    p += kDataFixedBytes;
    if (origin != nullptr) {
        for (std::uint64_t v : {origin->daemon, origin->channel, origin->first_sequence}) {
            store_u32(p, static_cast<std::uint32_t>(v));
            store_u32(p + 4, static_cast<std::uint32_t>(v >> 32));
            p += 8;
        }
    }
    for (std::uint32_t n : lengths) {
        store_u32(p, n);
        p += 4;
    }
    return ok();
}

} // namespace

Result<void> encode_data_prefix(std::uint32_t stream, std::uint64_t first_sequence,
                                std::span<const std::uint32_t> lengths, std::size_t max_body,
                                std::vector<std::byte>& out) {
    return encode_prefix(stream, first_sequence, nullptr, lengths, max_body, out);
}

Result<void> encode_origin_data_prefix(std::uint32_t stream, std::uint64_t first_sequence,
                                       const MessageOrigin& origin,
                                       std::span<const std::uint32_t> lengths, std::size_t max_body,
                                       std::vector<std::byte>& out) {
    return encode_prefix(stream, first_sequence, &origin, lengths, max_body, out);
}

Result<void> encode_fragment_prefix(FragmentPart part, std::uint32_t stream, std::uint64_t sequence,
                                    std::uint64_t total_bytes, std::uint64_t offset,
                                    std::size_t size, const MessageOrigin& origin,
                                    std::size_t max_body, std::vector<std::byte>& out) {
    const std::string what =
        "cannot encode a fragment (" + std::string{fragment_part_name(part)} + ")";
    if (stream == 0) {
        return make_error(Errc::invalid_argument, what + ": stream 0");
    }
    if (size == 0 || offset > total_bytes || size > total_bytes - offset) {
        return make_error(Errc::invalid_argument, what + ": " + std::to_string(size) +
                                                      " bytes at offset " + std::to_string(offset) +
                                                      " of a message of " +
                                                      std::to_string(total_bytes));
    }
    if (auto why = fragment_shape_error(part, total_bytes, offset, size); !why.empty()) {
        return make_error(Errc::invalid_argument, what + ": " + why);
    }
    if (origin.daemon == 0 || origin.channel == 0 || origin.first_sequence == 0) {
        return make_error(Errc::invalid_argument, what + ": an origin field is 0");
    }
    const std::uint64_t body = kFragmentFixedBytes + std::uint64_t{size};
    if (body > max_body) {
        return make_error(Errc::invalid_argument, what + ": a body of " + std::to_string(body) +
                                                      " bytes exceeds the link's limit of " +
                                                      std::to_string(max_body));
    }
    out.resize(kHeaderBytes + kFragmentFixedBytes);
    std::byte* p = out.data();
    put_header(p, FrameType::origin_data, static_cast<std::uint32_t>(body),
               static_cast<std::uint16_t>(part));
    p += kHeaderBytes;
    store_u32(p, stream);
    store_u64(p + 4, sequence);
    store_u64(p + 12, total_bytes);
    store_u64(p + 20, offset);
    store_u64(p + 28, origin.daemon);
    store_u64(p + 36, origin.channel);
    store_u64(p + 44, origin.first_sequence);
    return ok();
}

Result<FrameHeader> decode_header(std::span<const std::byte, kHeaderBytes> bytes,
                                  std::size_t max_data_body, std::uint16_t version) {
    const std::uint32_t magic = load_u32(bytes.data());
    if (magic != kMagic) {
        // A TLS record starts with its type (22, handshake) and version (3.x).
        const bool tls = bytes[0] == std::byte{0x16} && bytes[1] == std::byte{0x03};
        return make_error(Errc::protocol_error,
                          "bad frame magic " + hex32(magic) + ", expected " + hex32(kMagic) +
                              (tls ? " (the peer opens TLS: its bridge has a 'tls' section, and "
                                     "this one has not)"
                                   : " (not a shmbus bridge, or out of step)"));
    }
    const std::uint16_t raw_type = load_u16(bytes.data() + 4);
    const std::uint16_t flags = load_u16(bytes.data() + 6);
    const std::uint32_t body_bytes = load_u32(bytes.data() + 8);
    const auto type = static_cast<FrameType>(raw_type);
    if (!defined(type)) {
        return make_error(Errc::protocol_error, "unknown frame type " + std::to_string(raw_type));
    }
    const std::string name{frame_type_name(type)};
    const bool fragment = type == FrameType::origin_data && version >= kFragmentsVersion &&
                          flags <= static_cast<std::uint16_t>(FragmentPart::end);
    if (flags != 0 && !fragment) {
        return make_error(Errc::protocol_error,
                          name + ": flags " + std::to_string(flags) +
                              " set, which bridge protocol " + std::to_string(version) +
                              " does not define" +
                              (type == FrameType::origin_data && version >= kFragmentsVersion
                                   ? " (a fragment is 1 start, 2 middle or 3 end)"
                                   : ""));
    }
    const bool data = type == FrameType::data || type == FrameType::origin_data;
    const std::size_t limit = data ? max_data_body : kMaxControlBody;
    if (body_bytes > limit) {
        return make_error(Errc::protocol_error, name + ": body of " + std::to_string(body_bytes) +
                                                    " bytes exceeds the limit of " +
                                                    std::to_string(limit));
    }
    return FrameHeader{type, flags, body_bytes};
}

Result<FragmentView> decode_fragment_fields(FragmentPart part, std::span<const std::byte> fixed,
                                            std::uint64_t size) {
    const std::string what = "origin_data (fragment " + std::string{fragment_part_name(part)} + ")";
    Reader reader{fixed, what, kLimits};
    const FieldPath top{};
    FragmentView f;
    f.part = part;
    reader.field(f.stream, {&top, "stream"});
    reader.require(f.stream != 0, {&top, "stream"}, "is 0");
    reader.field(f.sequence, {&top, "sequence"});
    reader.field(f.total_bytes, {&top, "total_bytes"});
    reader.field(f.offset, {&top, "offset"});
    const FieldPath at{&top, "origin"};
    reader.field(f.origin.daemon, {&at, "daemon"});
    reader.require(f.origin.daemon != 0, {&at, "daemon"}, "is 0");
    reader.field(f.origin.channel, {&at, "channel"});
    reader.require(f.origin.channel != 0, {&at, "channel"}, "is 0");
    reader.field(f.origin.first_sequence, {&at, "first_sequence"});
    reader.require(f.origin.first_sequence != 0, {&at, "first_sequence"}, "is 0");
    if (!reader.ok()) {
        return reader.take_error();
    }
    if (size == 0) {
        return make_error(Errc::protocol_error, what + ": carries no bytes");
    }
    if (f.offset > f.total_bytes || size > f.total_bytes - f.offset) {
        return make_error(Errc::protocol_error,
                          what + ": " + std::to_string(size) + " bytes at offset " +
                              std::to_string(f.offset) + " do not fit a message of " +
                              std::to_string(f.total_bytes) + " bytes (field 'total_bytes')");
    }
    if (auto why = fragment_shape_error(part, f.total_bytes, f.offset, size); !why.empty()) {
        return make_error(Errc::protocol_error, what + ": " + why);
    }
    return f;
}

Result<Frame> decode_body(FrameType type, std::span<const std::byte> body, std::uint16_t flags) {
    if (flags != 0) {
        const auto part = static_cast<FragmentPart>(flags);
        if (type != FrameType::origin_data) {
            return make_error(Errc::protocol_error,
                              std::string{frame_type_name(type)} + ": flags " +
                                  std::to_string(flags) +
                                  " set; only an origin_data frame is ever a fragment");
        }
        if (part != FragmentPart::start && part != FragmentPart::middle &&
            part != FragmentPart::end) {
            return make_error(Errc::protocol_error, "origin_data: flags " + std::to_string(flags) +
                                                        " is no fragment part");
        }
        return decode_fragment(part, body);
    }
    switch (type) {
    case FrameType::hello:
        return decode_hello(body);
    case FrameType::auth:
        return decode_fields<Auth>(type, body);
    case FrameType::offer:
        return decode_fields<Offer>(type, body);
    case FrameType::want:
        return decode_fields<Want>(type, body);
    case FrameType::grant:
        return decode_fields<Grant>(type, body);
    case FrameType::refuse:
        return decode_fields<Refuse>(type, body);
    case FrameType::credit:
        return decode_fields<Credit>(type, body);
    case FrameType::data:
    case FrameType::origin_data:
        return decode_data(body, type);
    case FrameType::ping:
        return decode_fields<Ping>(type, body);
    case FrameType::pong:
        return decode_fields<Pong>(type, body);
    case FrameType::close_stream:
        return decode_fields<CloseStream>(type, body);
    case FrameType::goodbye:
        return decode_fields<Goodbye>(type, body);
    }
    return make_error(Errc::protocol_error,
                      "unknown frame type " + std::to_string(static_cast<unsigned>(type)));
}

Result<Frame> decode(std::span<const std::byte> bytes, std::size_t max_data_body,
                     std::uint16_t version) {
    if (bytes.size() < kHeaderBytes) {
        return make_error(Errc::protocol_error, "frame of " + std::to_string(bytes.size()) +
                                                    " bytes is shorter than the " +
                                                    std::to_string(kHeaderBytes) + "-byte header");
    }
    auto header = decode_header(bytes.first<kHeaderBytes>(), max_data_body, version);
    if (!header) {
        return header.error();
    }
    const std::size_t body = bytes.size() - kHeaderBytes;
    if (body != header.value().body_bytes) {
        return make_error(Errc::protocol_error, std::string{frame_type_name(header.value().type)} +
                                                    ": the header announces " +
                                                    std::to_string(header.value().body_bytes) +
                                                    " body bytes, " + std::to_string(body) +
                                                    " follow");
    }
    return decode_body(header.value().type, bytes.subspan(kHeaderBytes), header.value().flags);
}

// ---- FrameReader ----

void FrameReader::compact() {
    if (begin_ == 0) {
        return;
    }
    if (begin_ != end_) {
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    }
    end_ -= begin_;
    begin_ = 0;
}

std::span<std::byte> FrameReader::writable(std::size_t at_least) {
    if (diverting()) {
        return place_.subspan(filled_);
    }
    if (begin_ == end_) {
        begin_ = end_ = 0; // nothing to move
    } else if (buffer_.size() - end_ < at_least) {
        // Only when short of room: a streaming link's reads mostly end inside a frame, and
        // moving that frame's first part down before every read would copy it once more.
        compact();
    }
    if (buffer_.size() - end_ < at_least) {
        buffer_.resize(end_ + at_least);
    }
    const std::span<std::byte> room{buffer_.data() + end_, buffer_.size() - end_};
    if (after_diversion_ && end_ - begin_ < kFragmentHeadBytes) {
        return room.first(kFragmentHeadBytes -
                          (end_ - begin_)); // the next frame's fields, not its bytes
    }
    return room;
}

void FrameReader::commit(std::size_t bytes) noexcept {
    if (diverting()) {
        filled_ += std::min(bytes, place_.size() - filled_);
        if (!diverting()) {
            place_ = {};
            filled_ = 0;
            after_diversion_ = true;
        }
        return;
    }
    end_ += std::min(bytes, buffer_.size() - end_);
}

void FrameReader::append(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        // memcpy may not be given the null pointer of an empty buffer: the loop stops first.
        auto room = writable(bytes.size());
        const std::size_t n = std::min(room.size(), bytes.size());
        std::memcpy(room.data(), bytes.data(), n);
        commit(n);
        bytes = bytes.subspan(n);
    }
}

Result<std::optional<Frame>> FrameReader::next() {
    if (failed_) {
        return *failed_;
    }
    if (diverting() || end_ - begin_ < kHeaderBytes) {
        return std::optional<Frame>{};
    }
    auto header = buffered_header();
    if (!header) {
        return header.take_error();
    }
    if (header.value().flags == 0) {
        after_diversion_ = false; // not a fragment: read its bytes as they come
    }
    const std::size_t whole = kHeaderBytes + header.value().body_bytes;
    if (end_ - begin_ < whole) {
        // The header is checked, so the body it announces is within the limit: room for it
        // is bounded memory, reserved only now.
        if (buffer_.size() - begin_ < whole) {
            compact();
            buffer_.resize(whole);
        }
        return std::optional<Frame>{};
    }
    after_diversion_ = false;
    auto frame = decode_body(header.value().type,
                             std::span<const std::byte>{buffer_.data() + begin_ + kHeaderBytes,
                                                        header.value().body_bytes},
                             header.value().flags);
    begin_ += whole;
    if (!frame) {
        failed_ = frame.error();
        return *failed_;
    }
    return std::optional<Frame>{std::move(frame.value())};
}

Result<std::optional<FragmentHead>> FrameReader::fragment_head(std::size_t min_due) {
    head_arrived_.reset();
    if (failed_) {
        return *failed_;
    }
    const std::size_t have = end_ - begin_;
    if (diverting() || have < kFragmentHeadBytes) {
        return std::optional<FragmentHead>{};
    }
    auto header = buffered_header();
    if (!header) {
        return header.take_error();
    }
    const FrameHeader& h = header.value();
    // decode_header() allows flags on an origin_data frame only, and only a FragmentPart's
    // (start, middle or end).
    if (h.flags == 0 || h.body_bytes < kFragmentFixedBytes) {
        return std::optional<FragmentHead>{}; // next() decodes it, or names what is wrong
    }
    const std::size_t size = h.body_bytes - kFragmentFixedBytes;
    const std::size_t arrived = have - kFragmentHeadBytes;
    if (arrived >= size || size - arrived < min_due) {
        after_diversion_ = false;
        return std::optional<FragmentHead>{};
    }
    auto f = decode_fragment_fields(
        static_cast<FragmentPart>(h.flags),
        std::span<const std::byte>{buffer_.data() + begin_ + kHeaderBytes, kFragmentFixedBytes},
        size);
    if (!f) {
        failed_ = f.error();
        return *failed_;
    }
    f.value().bytes =
        std::span<const std::byte>{buffer_.data() + begin_ + kFragmentHeadBytes, arrived};
    head_arrived_ = arrived;
    return std::optional<FragmentHead>{FragmentHead{f.value(), size}};
}

Result<FrameHeader> FrameReader::buffered_header() {
    auto header = decode_header(
        std::span<const std::byte, kHeaderBytes>{buffer_.data() + begin_, kHeaderBytes},
        max_data_body_, version_);
    if (!header) {
        failed_ = header.error();
    }
    return header;
}

void FrameReader::divert(std::span<std::byte> place) {
    const std::size_t arrived = head_arrived_.value_or(0);
    head_arrived_.reset();
    if (arrived > 0) {
        std::memcpy(place.data(), buffer_.data() + begin_ + kFragmentHeadBytes, arrived);
    }
    begin_ += kFragmentHeadBytes + arrived;
    place_ = place;
    filled_ = arrived;
    if (!diverting()) {
        place_ = {};
        filled_ = 0;
        after_diversion_ = true;
    }
}

} // namespace shmbus::gateway
