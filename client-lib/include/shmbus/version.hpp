// Versions of the library, of the shared-memory layout and of the control protocol.
#pragma once

#include <shmbus/export.hpp>

#include <cstdint>

namespace shmbus {

/// Version of the shared-memory layout; a segment of another version is refused.
inline constexpr std::uint32_t kLayoutVersion = 3;

/// The library's version string, "major.minor.patch".
[[nodiscard]] SHMBUS_EXPORT const char* library_version() noexcept;

} // namespace shmbus
