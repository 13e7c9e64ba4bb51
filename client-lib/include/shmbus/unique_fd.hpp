// UniqueFd: the one owner of a file descriptor. -1 is the visible empty state.
#pragma once

#include <shmbus/export.hpp>

#include <utility>

namespace shmbus {

/// Owns one file descriptor and closes it in its destructor. Move-only.
class SHMBUS_EXPORT UniqueFd {
public:
    UniqueFd() noexcept = default;
    /// Takes ownership of `fd` (may be -1 for empty).
    explicit UniqueFd(int fd) noexcept : fd_{fd} {}
    UniqueFd(UniqueFd&& other) noexcept : fd_{std::exchange(other.fd_, -1)} {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset(std::exchange(other.fd_, -1));
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }
    /// Gives up ownership without closing; the caller now owns the descriptor.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the current descriptor (if any) and takes `fd`.
    void reset(int fd = -1) noexcept;

private:
    int fd_{-1};
};

} // namespace shmbus
