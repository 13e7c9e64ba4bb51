// libFuzzer target for the gateway's bridge frame decoder (daemon/gateway/frame.cpp), fed as
// a link would feed it: the input is a byte stream cut into frames by a FrameReader.
//
// Nothing may crash, read out of bounds or hang on any input (ASan and UBSan are on), and a
// refusal is always a protocol error or a version mismatch. Whatever is accepted must be a
// fixed point of the codec: a frame encodes again, and decoding that encoding and encoding
// once more gives the same bytes (the first encoding may differ from the input: a hello's
// tail is dropped). A data frame's prefix and messages, encoded again, are the bytes it
// arrived as, origin_data frames with their origin. A violation aborts, which libFuzzer reports
// with the input that caused it.
#include "gateway/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace {

using namespace shmbus::gateway;

constexpr std::size_t kMaxData = 64 * 1024;

void check_data(const DataView& d) {
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
    const auto again = decode(bytes, kMaxData);
    if (!again || std::get<DataView>(*again).count() != d.count() ||
        std::get<DataView>(*again).origin() != d.origin()) {
        __builtin_trap();
    }
}

void check_control(const Frame& frame) {
    const auto once = encode(frame);
    if (!once) {
        __builtin_trap();
    }
    const auto again = decode(*once, kMaxData);
    if (!again) {
        __builtin_trap();
    }
    const auto twice = encode(*again);
    if (!twice || *twice != *once) {
        __builtin_trap();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FrameReader reader{kMaxData};
    reader.append({reinterpret_cast<const std::byte*>(data), size});
    for (;;) {
        auto frame = reader.next();
        if (!frame) {
            if (frame.code() != shmbus::Errc::protocol_error &&
                frame.code() != shmbus::Errc::version_mismatch) {
                __builtin_trap();
            }
            return 0;
        }
        if (!*frame) {
            return 0;
        }
        if (const auto* d = std::get_if<DataView>(&**frame)) {
            check_data(*d);
        } else {
            check_control(**frame);
        }
    }
}
