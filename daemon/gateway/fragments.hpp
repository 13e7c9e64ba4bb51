// Messages too large for one data frame: the importing side's reassembly of their fragments.
// docs/gateway.md ("Fragments") is the reference.
//
// From bridge protocol 2 on, an exporter sends a message larger than one data frame of the
// peer's as fragments (FragmentView, frame.hpp): a start, middles, an end, each repeating the
// message's sequence, total size and origin and saying at which offset its bytes go. The
// whole message carries that origin on, so the session admits it (loops, duplicates) exactly
// as a one-message origin_data frame. Fragments of
// different streams interleave on the link (the exporter's stream threads take turns at the
// link's write side, one frame each), but the fragments of one stream's message arrive in
// order and nothing else of that stream comes between them.
//
// A Reassembler is a link's table of messages in fragments, at most one per stream. add()
// checks each fragment against what that stream has so far and copies its bytes in; the end
// hands the whole message out, laid out as a one-message data frame's lengths and payload
// (a u32 length, then the bytes) so that it can be queued for publishing without another
// copy. Nothing partial ever leaves it: a message is handed out whole or dropped whole (its
// stream closed, the link ended), and the sequence numbers then make the loss visible to the
// importing side exactly as any other.
//
// The bytes of a large fragment need not pass through the link's frame buffer: place() checks
// a fragment from its fields alone and says where its bytes go, the link reader reads them
// straight there (FrameReader::divert()), and placed() takes them in. add() is the same for a
// fragment whose bytes have arrived with it.
//
// A start may instead be given the place its message goes (`into`: a slot reserved in the
// local ring, at least total_bytes long): its fragments' bytes are placed there, the buffer
// is neither allocated nor kept, and the end hands out the message with nothing in `framed`
// (in_place); the caller publishes the place it gave.
//
// Memory: a message's buffer is reserved at its start, of its announced total size, which
// add() has checked against the stream's limit (its offer's slot size, at most the link's
// negotiated max_message_bytes) before anything is allocated; so a link holds at most one
// such buffer per importing stream. A start may be handed the buffer of the stream's
// previous message (`spare`): its bytes are discarded and its memory kept if it is large
// enough, so that a stream of large messages does not allocate, fault in and free a whole
// message's pages for each. The caller bounds what it keeps that way (docs/gateway.md).
//
// Failure policy: every malformed sequence of fragments — a middle or end without a start, a
// new start before the end, a sequence, total or origin that differs from the start's, an
// offset that is not where the bytes so far end (lengths that do not add up), a total above
// the limit — is Errc::protocol_error naming the stream, the message and what was wrong; the
// session then closes that link. Pure: no I/O, no threads; one per link, used by its reader only.
#pragma once

#include "gateway/frame.hpp"

#include <shmbus/error.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace shmbus::gateway {

/// An allocator that leaves what a vector grows by uninitialized (std::allocator would zero
/// bytes that are about to be overwritten, touching every page of a large message once more).
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
    UninitializedAllocator() = default;
    template <typename U>
    explicit UninitializedAllocator(const UninitializedAllocator<U>& /*other*/) noexcept {}

    template <typename U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
        ::new (static_cast<void*>(p)) U; // default-initialized: for bytes, nothing is written
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};

/// A message's bytes as they are reassembled and queued for publishing.
using MessageBuffer = std::vector<std::byte, UninitializedAllocator<std::byte>>;

/// A message whose end has arrived.
struct WholeMessage {
    std::uint32_t stream{0};
    std::uint64_t sequence{0};
    /// Where it was first published; first_sequence is the message's own origin sequence.
    MessageOrigin origin;
    /// A u32 length (little-endian), then the message's bytes; empty if in_place.
    MessageBuffer framed;
    /// Its bytes are where the start was told to place them (place()'s `into`).
    bool in_place{false};
    std::uint64_t total{0}; ///< its size in bytes

    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        return std::span<const std::byte>{framed}.subspan(4);
    }
};

/// A message dropped while in fragments: how far it had come.
struct DroppedMessage {
    std::uint32_t stream{0};
    std::uint64_t sequence{0};
    std::uint64_t received{0};
    std::uint64_t total{0};
};

class Reassembler {
public:
    /// `max_message_bytes`: the link's negotiated limit on any message.
    explicit Reassembler(std::uint64_t max_message_bytes) noexcept : max_{max_message_bytes} {}

    /// Takes one fragment of a stream whose messages may be at most `stream_limit` bytes (its
    /// offer's slot size). The whole message once `f` is its end; an empty optional while
    /// more is due; Errc::protocol_error for a fragment that does not follow what the stream
    /// has so far. A start reassembles into `spare` (an earlier message's buffer: nothing of
    /// its bytes is kept) if its capacity holds the message, else frees it first; any other
    /// fragment ignores it.
    [[nodiscard]] Result<std::optional<WholeMessage>>
    add(const FragmentView& f, std::uint64_t stream_limit, MessageBuffer spare = {});

    /// The same in two steps, for a fragment whose bytes have not arrived: place() checks
    /// `f` as add() does, for a fragment of `size` bytes (f.bytes is ignored), and returns
    /// where those bytes go; once they are all there, placed() takes them in and returns the
    /// whole message if `f` was its end. Until then nothing else may be added to the stream.
    /// A start given `into` (at least its total_bytes long; `spare` is then left alone)
    /// reassembles there instead of in a buffer.
    [[nodiscard]] Result<std::span<std::byte>> place(const FragmentView& f, std::size_t size,
                                                     std::uint64_t stream_limit,
                                                     MessageBuffer spare = {},
                                                     std::span<std::byte> into = {});
    std::optional<WholeMessage> placed(std::uint32_t stream);

    /// Whether `stream` has a message in fragments.
    [[nodiscard]] bool in_progress(std::uint32_t stream) const noexcept {
        return partial_.count(stream) != 0;
    }

    /// Drops the message `stream` has in fragments, if any (its stream ended).
    std::optional<DroppedMessage> drop(std::uint32_t stream);

    /// Drops every message in fragments (the link ended).
    std::vector<DroppedMessage> drop_all();

    /// Bytes held in buffers for messages in fragments (reserved at their starts).
    [[nodiscard]] std::uint64_t held_bytes() const noexcept;

private:
    struct Partial {
        std::uint64_t sequence{0};
        std::uint64_t total{0};
        MessageOrigin origin;
        /// The u32 length, then room for the message's bytes; empty if they go elsewhere.
        MessageBuffer framed;
        std::span<std::byte> into; ///< where the message's bytes go (in `framed`, or not)
        std::uint64_t received{0}; ///< bytes taken in (placed() or add())
        std::uint64_t placing{0};  ///< bytes place()d and not yet taken in
    };

    std::uint64_t max_;
    std::map<std::uint32_t, Partial> partial_;
};

} // namespace shmbus::gateway
