// libFuzzer target for the gateway's bridge frame decoder (daemon/gateway/frame.cpp) and the
// reassembler of fragmented messages (daemon/gateway/fragments.cpp), fed as a link would feed
// them: the input is a byte stream cut into frames by a FrameReader, once as a link that
// agreed on protocol 1 (which refuses any flags) and once as one that agreed on protocol 2,
// where every fragment goes to a Reassembler as the session's link reader gives it.
//
// Nothing may crash, read out of bounds or hang on any input (ASan and UBSan are on), and a
// refusal is always a protocol error or a version mismatch. Whatever is accepted must be a
// fixed point of the codec: a frame encodes again, and decoding that encoding and encoding
// once more gives the same bytes (the first encoding may differ from the input: a hello's
// tail is dropped). A data frame's prefix and messages, origin_data frames with their origin,
// and a fragment's prefix, origin and bytes, encoded again, are the bytes they arrived as.
// The reassembler refuses only with a protocol error, hands out only whole messages of the
// size and origin their start announced, and holds no more than one buffer per stream. A
// violation aborts, which libFuzzer reports with the input that caused it.
#include "gateway/fragments.hpp"
#include "gateway/frame.hpp"

#include <cstddef>
#include <cstdint>
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

void reassemble(Reassembler& r, std::set<std::uint32_t>& open, const FragmentView& f) {
    auto out = r.add(f, kMaxMessage);
    if (!out) {
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
        open.erase(f.stream);
    } else {
        open.insert(f.stream);
    }
    if (r.in_progress(f.stream) != (open.count(f.stream) != 0) ||
        r.held_bytes() > open.size() * (4 + kMaxMessage) * 2) {
        __builtin_trap();
    }
}

void run_link(std::span<const std::byte> input, std::uint16_t version) {
    FrameReader reader{kMaxData};
    reader.set_version(version);
    reader.append(input);
    Reassembler reassembler{kMaxMessage};
    std::set<std::uint32_t> open;
    for (;;) {
        auto frame = reader.next();
        if (!frame) {
            if (frame.code() != shmbus::Errc::protocol_error &&
                frame.code() != shmbus::Errc::version_mismatch) {
                __builtin_trap();
            }
            return;
        }
        if (!*frame) {
            return;
        }
        if (const auto* d = std::get_if<DataView>(&**frame)) {
            check_data(*d, version);
        } else if (const auto* f = std::get_if<FragmentView>(&**frame)) {
            if (version < kFragmentsVersion) {
                __builtin_trap(); // a protocol 1 link never hands out a fragment
            }
            check_fragment(*f);
            reassemble(reassembler, open, *f);
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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> input{reinterpret_cast<const std::byte*>(data), size};
    run_link(input, kVersionMin);
    run_link(input, kFragmentsVersion);
    return 0;
}
