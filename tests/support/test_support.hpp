// Helpers shared by the tests: unique channel names, test scale, message stamping.
#pragma once

#include <shmbus/shmbus.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <unistd.h>
#include <vector>

namespace shmbus::test {

/// A channel name unique to this process and call.
inline std::string unique_name(const std::string& stem) {
    static std::atomic<int> counter{0};
    return "test-" + stem + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

/// Multiplier for message counts (SHMBUS_TEST_SCALE, default 1): sanitizer runs shrink it.
inline double scale() {
    const char* s = std::getenv("SHMBUS_TEST_SCALE");
    const double v = s != nullptr ? std::atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

inline std::uint64_t scaled(std::uint64_t n, std::uint64_t minimum = 1000) {
    const auto v = static_cast<std::uint64_t>(static_cast<double>(n) * scale());
    return v < minimum ? minimum : v;
}

/// The seed of a randomised test: SHMBUS_TEST_SEED if set (to replay a run), else random.
/// Print it, so that a failure can be replayed.
inline std::uint64_t test_seed() {
    if (const char* s = std::getenv("SHMBUS_TEST_SEED"); s != nullptr && *s != '\0') {
        return std::strtoull(s, nullptr, 0);
    }
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) | rd();
}

/// The bytes of `s`, to send.
inline std::vector<std::byte> bytes_of(const std::string& s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

/// `b` as text, to compare.
inline std::string text_of(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

/// A message body derived from (id, length) so a reader can check every byte.
inline void stamp(std::span<std::byte> out, std::uint64_t id) {
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::byte>((id * 131 + i * 7) & 0xff);
    }
    if (out.size() >= 8) {
        std::memcpy(out.data(), &id, 8);
    }
}

/// The id stamped into `in`, or UINT64_MAX if any byte differs from what stamp() wrote.
inline std::uint64_t check_stamp(std::span<const std::byte> in) {
    if (in.size() < 8) {
        return UINT64_MAX;
    }
    std::uint64_t id = 0;
    std::memcpy(&id, in.data(), 8);
    for (std::size_t i = 8; i < in.size(); ++i) {
        if (in[i] != static_cast<std::byte>((id * 131 + i * 7) & 0xff)) {
            return UINT64_MAX;
        }
    }
    return id;
}

inline ChannelSpec spec(const std::string& stem, ChannelKind kind, std::uint64_t slot_size,
                        std::uint64_t slot_count, std::uint32_t pubs = 1, std::uint32_t subs = 1,
                        Overflow overflow = Overflow::block) {
    ChannelSpec s;
    s.name = unique_name(stem);
    s.kind = kind;
    s.slot_size = slot_size;
    s.slot_count = slot_count;
    s.max_publishers = pubs;
    s.max_subscribers = subs;
    s.overflow = overflow;
    return s;
}

} // namespace shmbus::test
