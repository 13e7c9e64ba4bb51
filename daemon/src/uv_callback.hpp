// The rules for code that libuv calls back, and for the return codes of its calls.
//
// libuv is C: an exception that unwinds through its frames is undefined behaviour. So every
// callback the daemon hands to libuv is a noexcept function that runs its handler through
// guarded(): an exception that escapes the handler (out of memory, or a bug) is caught there
// and logged naming the callback, and guarded() returns false so that the caller can put
// right what the handler left half done (the event loop closes that client's connection).
// Logging itself may fail at that point; then one fixed line goes to stderr.
//
// Every libuv call that returns a code has it checked: uv_ok() logs a failure naming the
// call; the caller decides what the failure ends.
//
// Thread: whichever runs the loop. Nothing here keeps state.
#pragma once

#include "logging.hpp"

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <uv.h>

namespace shmbus::daemon {

/// Logs that an exception escaped the handler of `where`. Never throws.
inline void report_escape(const char* where, const char* what) noexcept {
    try {
        log_error(std::string{"an exception escaped the handler of "} + where + ": " + what);
    } catch (...) {
        std::fputs("shmbusd: an exception escaped the handler of a libuv callback\n", stderr);
    }
}

/// Runs `handler` inside a libuv callback. Returns false when an exception escaped it
/// (logged, naming `where`); it never reaches libuv's C frames.
template <typename Handler>
bool guarded(const char* where, Handler&& handler) noexcept {
    try {
        std::forward<Handler>(handler)();
        return true;
    } catch (const std::exception& e) {
        report_escape(where, e.what());
    } catch (...) {
        report_escape(where, "an exception of unknown type");
    }
    return false;
}

/// libuv's text for error code `rc`.
inline std::string uv_message(int rc) {
    return uv_strerror(rc);
}

/// Whether libuv call `what` succeeded (rc == 0); logs the failure with uv_message().
inline bool uv_ok(int rc, std::string_view what) {
    if (rc == 0) {
        return true;
    }
    log_error(std::string{what} + ": " + uv_message(rc));
    return false;
}

/// Any libuv handle as the uv_handle_t it starts with.
template <typename Handle>
uv_handle_t* as_handle(Handle* h) noexcept {
    return reinterpret_cast<uv_handle_t*>(h);
}

} // namespace shmbus::daemon
