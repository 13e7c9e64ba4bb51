// The ClientOptions a test's Client uses to reach the daemon it started.
#pragma once

#include "daemon_process.hpp"

#include <shmbus/client.hpp>

#include <chrono>
#include <string>

namespace shmbus::test {

/// Options for a Client of `d`, named `name`. In a forked child of a multi-threaded test
/// process pass `in_child`: no reconnect thread, because a thread started after fork() is not
/// something ThreadSanitizer supports.
inline ClientOptions client_options(const DaemonProcess& d, const std::string& name,
                                    bool in_child = false) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.request_timeout = std::chrono::seconds{30};
    o.reconnect_in_background = !in_child;
    return o;
}

} // namespace shmbus::test
