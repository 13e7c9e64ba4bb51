// SHMBUS_ASSERT: the second kind of error (STYLE.md, "two kinds of error"), a broken internal
// invariant. Expected conditions are values (Result<T>); a condition that can only be false
// if this process's own code is wrong is asserted, and a false one is a bug: the process
// says where and what, and aborts, rather than carrying on with state it no longer
// understands.
//
// Never assert on a value read from shared memory, a socket or a file: any other process
// may write those, so they are untrusted input, checked and answered with an Error.
//
// Always on, in every build type: an assertion sits where a wrong value would corrupt
// memory or deliver a wrong message, and a release build must not do that silently either.
// Keep them off the inline fast path (the failure path is out of line and cold, but the
// check itself is not free).
//
// Usable from client-lib/src and from the daemon, which includes client-lib's private
// headers; it needs nothing but the C library, so it cannot fail while reporting.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace shmbus::detail {

/// Reports a failed SHMBUS_ASSERT on stderr ("file:line: assertion failed: condition:
/// message") and aborts. Called only by the macro.
[[noreturn, gnu::cold, gnu::noinline]] inline void
assertion_failed(const char* file, int line, const char* condition, const char* message) noexcept {
    std::fprintf(stderr, "%s:%d: shmbus internal error: assertion failed: %s: %s\n", file, line,
                 condition, message);
    std::fflush(stderr);
    std::abort();
}

} // namespace shmbus::detail

/// Aborts with `message` (a string literal saying which invariant broke) if `cond` is false.
/// `cond` is evaluated exactly once.
#define SHMBUS_ASSERT(cond, message)                                                               \
    do {                                                                                           \
        if (!(cond)) [[unlikely]] {                                                                \
            ::shmbus::detail::assertion_failed(__FILE__, __LINE__, #cond, message);                \
        }                                                                                          \
    } while (false)
