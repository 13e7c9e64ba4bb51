// Errors as values. Expected conditions (ring full, unknown channel, corrupted segment) are
// returned as Error inside Result<T>; no exception ever crosses the library boundary.
#pragma once

#include <shmbus/export.hpp>

#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace shmbus {

/// Stable error codes. The numeric values are part of the wire protocol: never renumber.
enum class Errc : std::uint16_t {
    would_block = 1,       ///< nothing to read, or no free slot, right now (try_ calls)
    timed_out = 2,         ///< a blocking call reached its deadline
    invalid_argument = 3,  ///< the caller passed something unusable; detail says what
    message_too_large = 4, ///< the message does not fit the channel's slot
    corrupted = 5,         ///< a value read from shared memory failed validation
    version_mismatch = 6,  ///< the segment or peer speaks another layout/protocol version
    no_memory = 7,         ///< memory for a segment could not be reserved
    limit_reached = 8,     ///< a configured limit (endpoints, sizes, ...) was hit
    permission_denied = 9, ///< the caller may not do this
    not_found = 10,        ///< no such channel or endpoint
    system_error = 11,     ///< a system call failed; sys_errno says which errno
    closed = 12,           ///< the endpoint or connection was closed
    lost = 13,             ///< messages were overwritten before they were read (drop policy)
    already_exists = 14,   ///< a channel or endpoint of that name exists already
    protocol_error = 15,   ///< a peer sent a malformed or unexpected message
};

/// A short, stable name for `code` ("would_block", "corrupted", ...).
[[nodiscard]] SHMBUS_EXPORT std::string_view errc_name(Errc code) noexcept;

/// What went wrong: a stable code, the errno where a system call failed (else 0), and a
/// sentence a user can act on (which channel, which field, which size).
struct Error {
    Errc code{Errc::invalid_argument};
    int sys_errno{0};
    std::string detail;

    /// "corrupted: channel 'telemetry': control header field 'slot_count' is 0".
    [[nodiscard]] SHMBUS_EXPORT std::string message() const;
};

/// Builds an Error; `detail` may be empty for the cheap, frequent codes (would_block).
[[nodiscard]] inline Error make_error(Errc code, std::string detail = {}, int sys_errno = 0) {
    return Error{code, sys_errno, std::move(detail)};
}

namespace detail {
/// Reports a Result used for what it does not hold, a bug in the calling code, on stderr and
/// aborts: value() of an error result (`error` is then its Error, whose message is printed),
/// or error() / take_error() of a result holding a value (`error` is then null).
[[noreturn]] SHMBUS_EXPORT void bad_result_access(const Error* error) noexcept;
} // namespace detail

/// Holds either a value or an Error. Small, `[[nodiscard]]`, never throws on its own.
/// Accessing value() of an error result is a bug: it prints the error's message on stderr
/// and aborts; so does error() of a result that holds a value.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_{true} {
        new (&storage_.value) T(std::move(value));
    }
    Result(Error error) noexcept : ok_{false} { new (&storage_.error) Error(std::move(error)); }
    Result(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_{other.ok_} {
        if (ok_) {
            new (&storage_.value) T(std::move(other.storage_.value));
        } else {
            new (&storage_.error) Error(std::move(other.storage_.error));
        }
    }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    Result& operator=(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) {
        if (this != &other) {
            destroy();
            ok_ = other.ok_;
            if (ok_) {
                new (&storage_.value) T(std::move(other.storage_.value));
            } else {
                new (&storage_.error) Error(std::move(other.storage_.error));
            }
        }
        return *this;
    }
    ~Result() { destroy(); }

    [[nodiscard]] bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }

    [[nodiscard]] T& value() & noexcept { return check_value(), storage_.value; }
    [[nodiscard]] const T& value() const& noexcept { return check_value(), storage_.value; }
    [[nodiscard]] T&& value() && noexcept { return check_value(), std::move(storage_.value); }
    T* operator->() noexcept { return &value(); }
    const T* operator->() const noexcept { return &value(); }
    T& operator*() & noexcept { return value(); }
    const T& operator*() const& noexcept { return value(); }
    T&& operator*() && noexcept { return std::move(*this).value(); }

    [[nodiscard]] const Error& error() const noexcept { return check_error(), storage_.error; }
    [[nodiscard]] Error&& take_error() noexcept { return check_error(), std::move(storage_.error); }
    /// The error code, or Errc{} (0) when this holds a value.
    [[nodiscard]] Errc code() const noexcept { return ok_ ? Errc{} : storage_.error.code; }

private:
    void check_value() const noexcept {
        if (!ok_) [[unlikely]] {
            detail::bad_result_access(&storage_.error);
        }
    }
    void check_error() const noexcept {
        if (ok_) [[unlikely]] {
            detail::bad_result_access(nullptr);
        }
    }
    void destroy() noexcept {
        if (ok_) {
            storage_.value.~T();
        } else {
            storage_.error.~Error();
        }
    }
    union Storage {
        Storage() noexcept {}
        ~Storage() {}
        T value;
        Error error;
    } storage_;
    bool ok_;
};

/// Result of an operation that yields nothing but success or an Error.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() noexcept = default;
    Result(Error error) noexcept : error_{std::move(error)}, ok_{false} {}
    [[nodiscard]] bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    [[nodiscard]] const Error& error() const noexcept {
        if (ok_) [[unlikely]] {
            detail::bad_result_access(nullptr);
        }
        return error_;
    }
    [[nodiscard]] Error&& take_error() noexcept {
        if (ok_) [[unlikely]] {
            detail::bad_result_access(nullptr);
        }
        return std::move(error_);
    }
    [[nodiscard]] Errc code() const noexcept { return ok_ ? Errc{} : error_.code; }

private:
    Error error_;
    bool ok_{true};
};

/// Success for Result<void>.
[[nodiscard]] inline Result<void> ok() noexcept {
    return {};
}

} // namespace shmbus
