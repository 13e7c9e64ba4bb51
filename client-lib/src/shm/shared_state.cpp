// The endpoint part the shared-state kinds share (shared_state.hpp).
#include "shm/shared_state.hpp"

#include <string>
#include <unistd.h>

namespace shmbus::detail {

StateEndpointCore::~StateEndpointCore() {
    if (ch.control == nullptr || getpid() != attached_by) {
        return;
    }
    release_endpoint(role == Role::publisher ? ch.publishers[index] : ch.subscribers[index]);
    if (on_detach) {
        on_detach();
    }
}

Result<void> open_state_endpoint(StateEndpointCore& core, const ChannelFiles& files, Role role,
                                 const EndpointOptions& options, ChannelKind kind) noexcept {
    core.role = role;
    if (auto opened = open_endpoint(core, files, role, options); !opened) {
        return opened;
    }
    if (core.ch.info.kind != kind) {
        return make_error(Errc::invalid_argument, "channel '" + core.ch.info.name + "' is a " +
                                                      std::string{to_string(core.ch.info.kind)} +
                                                      ", not a " + std::string{to_string(kind)} +
                                                      " channel");
    }
    return ok();
}

} // namespace shmbus::detail
