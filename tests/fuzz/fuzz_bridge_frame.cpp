// libFuzzer target for the gateway's bridge frame decoder (daemon/gateway/frame.cpp) and the
// reassembler of fragmented messages (daemon/gateway/fragments.cpp), fed as a link would feed
// them: the input is a byte stream cut into frames by a FrameReader, once as a link that
// agreed on protocol 1 (which refuses any flags) and once as one that agreed on protocol 2,
// where every fragment goes to a Reassembler as the session's link reader gives it; then once
// more on protocol 2, read in pieces of sizes the input decides, with every fragment whose head
// comes before its bytes diverted straight into its reassembly buffer as the session does;
// and that once more with every message reassembled in a place of its own (a slot, for the
// session), as a start given `into` does.
//
// Nothing may crash, read out of bounds or hang on any input (ASan and UBSan are on), and a
// refusal is always a protocol error or a version mismatch. Whatever is accepted must be a
// fixed point of the codec: a frame encodes again, and decoding that encoding and encoding
// once more gives the same bytes (the first encoding may differ from the input: a hello's
// tail is dropped). A data frame's prefix and messages, origin_data frames with their origin,
// and a fragment's prefix, origin and bytes, encoded again, are the bytes they arrived as.
// The reassembler refuses only with a protocol error, hands out only whole messages of the
// size and origin their start announced, and holds no more than one buffer per stream. The
// diverted reading hands out the same frames and the same whole messages, byte for byte, as
// reading the input at once, and in places the same as in buffers. A violation aborts, which
// libFuzzer reports with the input that caused it.
#include "gateway/fragments.hpp"
#include "gateway/frame.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <span>
#include <vector>

namespace {

using namespace shmbus::gateway;

constexpr std::size_t kMaxData = 64 * 1024;
/// The largest message the fuzzed link accepts: small, so that a claimed size costs little.
constexpr std::uint64_t kMaxMessage = 1024 * 1024;

void check_data(const DataView& d, std::uint16_t version) {
    std::vector<std::uint32_t> lengths;
    std::vector<std::byte> payload;
    d.for_each([&](std::uint64_t, std::span<const std::byte> m) {
        lengths.push_back(static_cast<std::uint32_t>(m.size()));
        payload.insert(payload.end(), m.begin(), m.end());
    });
    std::vector<std::byte> bytes;
    const bool encoded =
        d.origin() ? encode_origin_data_prefix(d.stream(), d.first_sequence(), *d.origin(), lengths,
                                               kMaxData, bytes)
                         .has_value()
                   : encode_data_prefix(d.stream(), d.first_sequence(), lengths, kMaxData, bytes)
                         .has_value();
    if (!encoded) {
        __builtin_trap();
    }
    bytes.insert(bytes.end(), payload.begin(), payload.end());
    const auto again = decode(bytes, kMaxData, version);
    if (!again || std::get<DataView>(*again).count() != d.count() ||
        std::get<DataView>(*again).origin() != d.origin()) {
        __builtin_trap();
    }
}

void check_fragment(const FragmentView& f) {
    std::vector<std::byte> bytes;
    if (!encode_fragment_prefix(f.part, f.stream, f.sequence, f.total_bytes, f.offset,
                                f.bytes.size(), f.origin, kMaxData, bytes)) {
        __builtin_trap();
    }
    bytes.insert(bytes.end(), f.bytes.begin(), f.bytes.end());
    const auto again = decode(bytes, kMaxData, kFragmentsVersion);
    if (!again) {
        __builtin_trap();
    }
    const auto& g = std::get<FragmentView>(*again);
    if (g.part != f.part || g.stream != f.stream || g.sequence != f.sequence ||
        g.total_bytes != f.total_bytes || g.offset != f.offset || g.origin != f.origin ||
        g.bytes.size() != f.bytes.size()) {
        __builtin_trap();
    }
}

/// What a link handed out, in order: a frame's type, a whole message's stream, size and bytes'
/// sum, a refused fragment; then how it ended.
using Events = std::vector<std::uint64_t>;

constexpr std::uint64_t kRefused = 1000;
constexpr std::uint64_t kWhole = 1001;
constexpr std::uint64_t kFailed = 1002;

/// `bytes`: where the message is, if not in m.framed (reassembled in a place given).
void note_whole(Events& events, const WholeMessage& m, std::span<const std::byte> bytes = {}) {
    if (m.in_place != !bytes.empty() || (m.in_place && bytes.size() != m.total)) {
        __builtin_trap();
    }
    if (!m.in_place) {
        bytes = m.bytes();
    }
    std::uint64_t sum = 0;
    for (const std::byte b : bytes) {
        sum = sum * 31 + static_cast<std::uint64_t>(b);
    }
    events.insert(events.end(), {kWhole, m.stream, m.sequence, bytes.size(), sum});
}

void reassemble(Reassembler& r, std::set<std::uint32_t>& open, const FragmentView& f,
                Events& events) {
    auto out = r.add(f, kMaxMessage);
    if (!out) {
        events.push_back(kRefused);
        if (out.code() != shmbus::Errc::protocol_error) {
            __builtin_trap();
        }
        return;
    }
    if (*out) {
        const WholeMessage& m = **out;
        if (m.stream != f.stream || m.origin != f.origin || m.bytes().size() != f.total_bytes ||
            m.framed.size() != 4 + f.total_bytes) {
            __builtin_trap();
        }
        note_whole(events, m);
        open.erase(f.stream);
    } else {
        open.insert(f.stream);
    }
    if (r.in_progress(f.stream) != (open.count(f.stream) != 0) ||
        r.held_bytes() > open.size() * (4 + kMaxMessage) * 2) {
        __builtin_trap();
    }
}

Events run_link(std::span<const std::byte> input, std::uint16_t version) {
    FrameReader reader{kMaxData};
    reader.set_version(version);
    reader.append(input);
    Reassembler reassembler{kMaxMessage};
    std::set<std::uint32_t> open;
    Events events;
    for (;;) {
        auto frame = reader.next();
        if (!frame) {
            if (frame.code() != shmbus::Errc::protocol_error &&
                frame.code() != shmbus::Errc::version_mismatch) {
                __builtin_trap();
            }
            events.push_back(kFailed);
            return events;
        }
        if (!*frame) {
            return events;
        }
        events.push_back(static_cast<std::uint64_t>(type_of(**frame)));
        if (const auto* d = std::get_if<DataView>(&**frame)) {
            check_data(*d, version);
        } else if (const auto* f = std::get_if<FragmentView>(&**frame)) {
            if (version < kFragmentsVersion) {
                __builtin_trap(); // a protocol 1 link never hands out a fragment
            }
            check_fragment(*f);
            reassemble(reassembler, open, *f, events);
        } else {
            const auto once = encode(**frame);
            if (!once) {
                __builtin_trap();
            }
            const auto again = decode(*once, kMaxData, version);
            if (!again) {
                __builtin_trap();
            }
            const auto twice = encode(*again);
            if (!twice || *twice != *once) {
                __builtin_trap();
            }
        }
    }
}

/// The same protocol 2 link read in pieces, diverting every fragment whose head arrives
/// before its bytes (FrameReader::divert()) into its place in the reassembler, or into a
/// scratch buffer when the reassembler refuses it (the session would close the link; here
/// the stream goes on, as run_link() goes on after a refused fragment). `in_place`: each
/// start is given a place of its stream's, of its total size, to reassemble in.
Events run_diverted(std::span<const std::byte> input, bool in_place) {
    FrameReader reader{kMaxData};
    reader.set_version(kFragmentsVersion);
    Reassembler reassembler{kMaxMessage};
    std::map<std::uint32_t, std::vector<std::byte>> places;
    // Where a start goes: a place of its stream's if in_place (a claimed size above the
    // limit is refused before its place is used, so none is made larger than the limit).
    const auto place_for = [&](const FragmentView& f) -> std::span<std::byte> {
        if (!in_place || f.part != FragmentPart::start || reassembler.in_progress(f.stream)) {
            return {};
        }
        auto& p = places[f.stream];
        p.assign(static_cast<std::size_t>(std::min(f.total_bytes, kMaxMessage)), std::byte{0});
        return p;
    };
    const auto where = [&](const WholeMessage& m) -> std::span<const std::byte> {
        if (!m.in_place) {
            return {};
        }
        return std::span<const std::byte>{places[m.stream]}.first(
            static_cast<std::size_t>(m.total));
    };
    std::vector<std::byte> scratch;
    std::optional<FragmentView> diverted;
    bool refused = false;
    Events events;
    std::size_t at = 0;
    for (;;) {
        if (diverted && !reader.diverting()) {
            events.push_back(static_cast<std::uint64_t>(FrameType::origin_data));
            if (refused) {
                events.push_back(kRefused);
            } else if (auto whole = reassembler.placed(diverted->stream)) {
                if (whole->total != diverted->total_bytes || whole->in_place != in_place) {
                    __builtin_trap();
                }
                note_whole(events, *whole, where(*whole));
            }
            diverted.reset();
            continue;
        }
        auto frame = reader.next();
        if (!frame) {
            events.push_back(kFailed);
            return events;
        }
        if (*frame) {
            events.push_back(static_cast<std::uint64_t>(type_of(**frame)));
            if (const auto* f = std::get_if<FragmentView>(&**frame)) {
                const auto into = place_for(*f);
                auto out = reassembler.place(*f, f->bytes.size(), kMaxMessage, {}, into);
                if (!out) {
                    events.push_back(kRefused);
                } else {
                    if (!f->bytes.empty()) {
                        std::memcpy(out->data(), f->bytes.data(), f->bytes.size());
                    }
                    if (auto whole = reassembler.placed(f->stream)) {
                        if (whole->in_place != in_place) {
                            __builtin_trap();
                        }
                        note_whole(events, *whole, where(*whole));
                    }
                }
            }
            continue;
        }
        if (!diverted) {
            auto head = reader.fragment_head(1);
            if (!head) {
                events.push_back(kFailed);
                return events;
            }
            if (*head) {
                const FragmentHead& h = **head;
                if (h.view.bytes.size() >= h.size) {
                    __builtin_trap(); // a head's bytes are never all there
                }
                auto place = reassembler.place(h.view, h.size, kMaxMessage, {}, place_for(h.view));
                refused = !place;
                std::span<std::byte> into;
                if (place) {
                    into = *place;
                } else {
                    scratch.resize(h.size);
                    into = scratch;
                }
                if (into.size() != h.size) {
                    __builtin_trap();
                }
                diverted = h.view;
                reader.divert(into);
                continue;
            }
        }
        if (at == input.size()) {
            return events;
        }
        // Pieces of 1 to 4096 bytes, as the input's own bytes say.
        const auto room = reader.writable(4096);
        const std::size_t piece = 1 + (static_cast<std::size_t>(input[at]) * 131 + at) % 4096;
        const std::size_t n = std::min({room.size(), piece, input.size() - at});
        std::memcpy(room.data(), input.data() + at, n);
        reader.commit(n);
        at += n;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> input{reinterpret_cast<const std::byte*>(data), size};
    run_link(input, kVersionMin);
    const Events whole = run_link(input, kFragmentsVersion);
    const Events pieces = run_diverted(input, false);
    if (run_diverted(input, true) != pieces) {
        __builtin_trap(); // reassembled in places, the same messages as in buffers
    }
    // A fragment's head is checked before its bytes arrive: the diverted reading may refuse
    // one the whole input cuts short, else both hand out the same.
    const bool same = pieces == whole;
    const bool earlier = !pieces.empty() && pieces.back() == kFailed &&
                         Events(pieces.begin(), pieces.end() - 1) == whole;
    if (!same && !earlier) {
        __builtin_trap();
    }
    return 0;
}
