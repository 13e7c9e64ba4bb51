// libFuzzer target for the control protocol decoder (client-lib/src/protocol/wire.cpp).
//
// decode() must never crash, read out of bounds or hang on any input (ASan and UBSan are on).
// Beyond that, whatever it accepts must be a fixed point of the codec: it encodes again, and
// decoding that encoding and encoding once more gives the same bytes. (The first encoding may
// differ from the input: extension bytes are dropped.) A violation aborts, which libFuzzer
// reports with the input that caused it.
#include "protocol/wire.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace shmbus::proto;
    const auto decoded = decode({reinterpret_cast<const std::byte*>(data), size});
    if (!decoded) {
        if (decoded.code() != shmbus::Errc::protocol_error &&
            decoded.code() != shmbus::Errc::version_mismatch) {
            __builtin_trap();
        }
        return 0;
    }
    const auto once = encode(*decoded);
    if (!once) {
        __builtin_trap();
    }
    const auto again = decode(*once);
    if (!again) {
        __builtin_trap();
    }
    const auto twice = encode(*again);
    if (!twice || *twice != *once) {
        __builtin_trap();
    }
    return 0;
}
