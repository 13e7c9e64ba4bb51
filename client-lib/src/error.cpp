// Names and messages of Errc / Error, and the report of a Result used for what it does not hold.
#include <shmbus/error.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace shmbus {

std::string_view errc_name(Errc code) noexcept {
    switch (code) {
    case Errc::would_block:
        return "would_block";
    case Errc::timed_out:
        return "timed_out";
    case Errc::invalid_argument:
        return "invalid_argument";
    case Errc::message_too_large:
        return "message_too_large";
    case Errc::corrupted:
        return "corrupted";
    case Errc::version_mismatch:
        return "version_mismatch";
    case Errc::no_memory:
        return "no_memory";
    case Errc::limit_reached:
        return "limit_reached";
    case Errc::permission_denied:
        return "permission_denied";
    case Errc::not_found:
        return "not_found";
    case Errc::system_error:
        return "system_error";
    case Errc::closed:
        return "closed";
    case Errc::lost:
        return "lost";
    case Errc::already_exists:
        return "already_exists";
    case Errc::protocol_error:
        return "protocol_error";
    }
    return "unknown_error";
}

std::string Error::message() const {
    std::string out{errc_name(code)};
    if (!detail.empty()) {
        out += ": ";
        out += detail;
    }
    if (sys_errno != 0) {
        out += " (";
        out += std::strerror(sys_errno);
        out += ")";
    }
    return out;
}

namespace detail {

void bad_result_access(const Error* error) noexcept {
    if (error == nullptr) {
        std::fputs("shmbus: Result::error() called on a result that holds a value\n", stderr);
    } else {
        std::fprintf(stderr, "shmbus: Result::value() called on an error result: %s\n",
                     error->message().c_str());
    }
    std::fflush(stderr);
    std::abort();
}

} // namespace detail

} // namespace shmbus
