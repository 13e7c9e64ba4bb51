// UniqueFd: closes what it owns.
#include <shmbus/unique_fd.hpp>

#include <unistd.h>

namespace shmbus {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0 && fd_ != fd) {
        ::close(fd_);
    }
    fd_ = fd;
}

} // namespace shmbus
