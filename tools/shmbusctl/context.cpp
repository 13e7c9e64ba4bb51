// Global options, the connection, exit codes: see context.hpp.
#include "context.hpp"

#include <cstdio>
#include <string>

namespace shmbusctl {

namespace {
volatile std::sig_atomic_t g_interrupted = 0; // written only by the signal handler

extern "C" void on_interrupt(int /*signal*/) {
    g_interrupted = 1;
}
} // namespace

std::string socket_of(const GlobalOptions& options) {
    return options.socket_path.empty() ? shmbus::default_socket_path() : options.socket_path;
}

shmbus::Result<shmbus::Client> connect(const GlobalOptions& options, int& exit_code) {
    shmbus::ClientOptions o;
    o.socket_path = socket_of(options);
    o.client_name = "shmbusctl";
    auto client = shmbus::Client::connect(o);
    if (!client) {
        exit_code = fail("cannot connect to shmbusd at " + o.socket_path, client.error(),
                         ErrorSite::connect);
    }
    return client;
}

shmbus::EndpointOptions blocking_endpoint(bool peer_events) noexcept {
    shmbus::EndpointOptions o;
    o.wait = shmbus::WaitMode::blocking;
    o.peer_events = peer_events;
    return o;
}

int exit_code_for(const shmbus::Error& error, ErrorSite site) noexcept {
    switch (error.code) {
    case shmbus::Errc::not_found:
        if (site == ErrorSite::connect) {
            return kExitNoDaemon;
        }
        return site == ErrorSite::channel ? kExitNoChannel : kExitFailed;
    case shmbus::Errc::permission_denied:
        return kExitPermission;
    default:
        return kExitFailed;
    }
}

int fail(std::string_view what, const shmbus::Error& error, ErrorSite site) {
    std::fprintf(stderr, "shmbusctl: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                 error.message().c_str());
    return exit_code_for(error, site);
}

int fail(std::string_view message, int code) {
    std::fprintf(stderr, "shmbusctl: %.*s\n", static_cast<int>(message.size()), message.data());
    return code;
}

bool interrupted() noexcept {
    return g_interrupted != 0;
}

void catch_interrupts() noexcept {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

} // namespace shmbusctl
