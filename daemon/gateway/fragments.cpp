// Reassembly of fragmented messages; the rules are in fragments.hpp and docs/gateway.md.
#include "gateway/fragments.hpp"

#include "protocol/field_io.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace shmbus::gateway {

namespace {

std::string where(const FragmentView& f) {
    return "origin_data (fragment " + std::string{fragment_part_name(f.part)} + "): stream " +
           std::to_string(f.stream) + ", message " + std::to_string(f.sequence);
}

std::string origin_text(const MessageOrigin& o) {
    return "daemon " + std::to_string(o.daemon) + " channel " + std::to_string(o.channel) +
           " sequence " + std::to_string(o.first_sequence);
}

} // namespace

Result<std::optional<WholeMessage>>
Reassembler::add(const FragmentView& f, std::uint64_t stream_limit, MessageBuffer spare) {
    auto place = this->place(f, f.bytes.size(), stream_limit, std::move(spare));
    if (!place) {
        return place.take_error();
    }
    if (!f.bytes.empty()) {
        std::memcpy(place.value().data(), f.bytes.data(), f.bytes.size());
    }
    return placed(f.stream);
}

Result<std::span<std::byte>> Reassembler::place(const FragmentView& f, std::size_t size,
                                                std::uint64_t stream_limit, MessageBuffer spare,
                                                std::span<std::byte> into) {
    auto it = partial_.find(f.stream);
    if (f.part == FragmentPart::start) {
        if (it != partial_.end()) {
            return make_error(Errc::protocol_error,
                              where(f) + ": a new start before the end of message " +
                                  std::to_string(it->second.sequence) + " (" +
                                  std::to_string(it->second.received) + " of " +
                                  std::to_string(it->second.total) + " bytes received)");
        }
        const std::uint64_t limit = std::min(max_, stream_limit);
        if (f.total_bytes > limit) {
            return make_error(Errc::protocol_error,
                              where(f) + ": total_bytes " + std::to_string(f.total_bytes) +
                                  " exceeds the limit of " + std::to_string(limit) +
                                  (limit == max_
                                       ? " (the link's max_message_bytes)"
                                       : " (the slot_size the stream's offer announced)"));
        }
        // total_bytes <= limit <= kMaxSlotSize (the handshake's and the offer's checks), so
        // the u32 length holds it and the buffer is bounded memory.
        Partial p;
        p.sequence = f.sequence;
        p.total = f.total_bytes;
        p.origin = f.origin;
        if (!into.empty()) {
            if (into.size() < f.total_bytes) {
                return make_error(Errc::invalid_argument,
                                  where(f) + ": the place given holds " +
                                      std::to_string(into.size()) + " of its " +
                                      std::to_string(f.total_bytes) + " bytes");
            }
            p.into = into.first(static_cast<std::size_t>(f.total_bytes));
        } else {
            p.framed = std::move(spare);
            p.framed.clear(); // nothing of an earlier message is kept but its memory
            if (p.framed.capacity() < 4 + f.total_bytes) {
                MessageBuffer{}.swap(p.framed); // freed before the larger one is taken
                p.framed.reserve(4 + f.total_bytes);
            }
            // Room for every byte at once (left uninitialized: MessageBuffer), so that what
            // is placed never moves; the vector's heap block moves with the Partial.
            p.framed.resize(4 + f.total_bytes);
            proto::store_u32(p.framed.data(), static_cast<std::uint32_t>(f.total_bytes));
            p.into = std::span<std::byte>{p.framed}.subspan(4);
        }
        it = partial_.emplace(f.stream, std::move(p)).first;
    } else {
        if (it == partial_.end()) {
            return make_error(Errc::protocol_error,
                              where(f) + (f.part == FragmentPart::end ? ": an end" : ": a middle") +
                                  " without a start");
        }
        const Partial& p = it->second;
        if (f.sequence != p.sequence) {
            return make_error(Errc::protocol_error,
                              where(f) + ": the start was message " + std::to_string(p.sequence));
        }
        if (f.total_bytes != p.total) {
            return make_error(Errc::protocol_error,
                              where(f) + ": total_bytes " + std::to_string(f.total_bytes) +
                                  ", the start said " + std::to_string(p.total));
        }
        if (f.origin != p.origin) {
            return make_error(Errc::protocol_error, where(f) + ": origin " + origin_text(f.origin) +
                                                        ", the start said " +
                                                        origin_text(p.origin));
        }
        if (f.offset != p.received) {
            return make_error(Errc::protocol_error,
                              where(f) + ": offset " + std::to_string(f.offset) + ", but " +
                                  std::to_string(p.received) +
                                  " bytes have arrived (the fragments' lengths do not add up)");
        }
    }
    // The decoder checked that the bytes fit the total from `offset` (so the place made at
    // the start holds them), that a start and a middle stop short of the end and that an end
    // reaches it.
    Partial& p = it->second;
    p.placing = size;
    return p.into.subspan(static_cast<std::size_t>(p.received), size);
}

std::optional<WholeMessage> Reassembler::placed(std::uint32_t stream) {
    auto it = partial_.find(stream);
    if (it == partial_.end()) {
        return std::nullopt;
    }
    Partial& p = it->second;
    p.received += std::exchange(p.placing, 0);
    if (p.received < p.total) {
        return std::nullopt;
    }
    const bool in_place = p.framed.empty();
    WholeMessage whole{stream, p.sequence, p.origin, std::move(p.framed), in_place, p.total};
    partial_.erase(it);
    return whole;
}

std::optional<DroppedMessage> Reassembler::drop(std::uint32_t stream) {
    auto it = partial_.find(stream);
    if (it == partial_.end()) {
        return std::nullopt;
    }
    DroppedMessage d{stream, it->second.sequence, it->second.received, it->second.total};
    partial_.erase(it);
    return d;
}

std::vector<DroppedMessage> Reassembler::drop_all() {
    std::vector<DroppedMessage> out;
    for (const auto& [stream, p] : partial_) {
        out.push_back(DroppedMessage{stream, p.sequence, p.received, p.total});
    }
    partial_.clear();
    return out;
}

std::uint64_t Reassembler::held_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const auto& [stream, p] : partial_) {
        n += p.framed.capacity();
    }
    return n;
}

} // namespace shmbus::gateway
