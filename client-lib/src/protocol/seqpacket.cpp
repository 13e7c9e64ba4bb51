// Datagrams and control messages with SCM_RIGHTS; the rules are in seqpacket.hpp.
#include "protocol/seqpacket.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <new>
#include <poll.h>
#include <sched.h>
#include <string>
#include <sys/socket.h>
#include <sys/uio.h>

namespace shmbus::proto {

namespace {

/// How long receive_message() polls without sleeping before it blocks. A daemon answers a
/// hello or an open in 20 to 80 us; blocking at once adds a sleep and a wake-up to every
/// request (an idle CPU halted, then an interrupt to wake it: on a 2-vCPU VM, channel opens
/// went from about 3.5 k/s to about 6 k/s). Each empty poll is followed by sched_yield(), so
/// a spinning client gives its CPU to anything runnable there, the daemon or other clients,
/// instead of competing with them. A request that takes longer costs at most this much CPU.
constexpr std::chrono::microseconds kReplySpin{100};

/// Milliseconds until `deadline` for poll(): 0 once passed, rounded up so that a wait
/// ending within the next millisecond does not turn into a busy loop.
int poll_timeout(std::chrono::steady_clock::time_point deadline) noexcept {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) {
        return 0;
    }
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

Error peer_gone(int err) {
    return make_error(Errc::closed, "the peer closed the control connection", err);
}

std::string plural(std::size_t n, std::string_view word) {
    return std::to_string(n) + " " + std::string{word} + (n == 1 ? "" : "s");
}

Error no_memory() {
    return make_error(Errc::no_memory, "out of memory");
}

/// The kernel's limit on descriptors in one SCM_RIGHTS message (SCM_MAX_FD).
constexpr std::size_t kMaxSentFds = 253;

Result<void> send(int fd, std::span<const std::byte> bytes, std::span<const int> fds) {
    if (fds.size() > kMaxSentFds) {
        return make_error(Errc::invalid_argument, "cannot send " +
                                                      plural(fds.size(), "descriptor") +
                                                      " in one datagram (the kernel takes " +
                                                      std::to_string(kMaxSentFds) + ")");
    }
    if (std::any_of(fds.begin(), fds.end(), [](int d) { return d < 0; })) {
        return make_error(Errc::invalid_argument, "cannot send an empty descriptor");
    }
    iovec iov{};
    iov.iov_base = const_cast<std::byte*>(bytes.data());
    iov.iov_len = bytes.size();
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxSentFds)]{};
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = -1;
    do {
        n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        const int err = errno;
        switch (err) {
        case EPIPE:
        case ECONNRESET:
        case ENOTCONN:
            return peer_gone(err);
        case EAGAIN:
            return make_error(Errc::would_block, "the socket's send buffer is full", err);
        case EMSGSIZE:
            return make_error(
                Errc::limit_reached,
                std::to_string(bytes.size()) + " bytes do not fit the socket's send buffer", err);
        default:
            return make_error(Errc::system_error, "sendmsg", err);
        }
    }
    if (static_cast<std::size_t>(n) != bytes.size()) {
        // SOCK_SEQPACKET sends a datagram whole or not at all.
        return make_error(Errc::system_error, "sendmsg sent " + std::to_string(n) + " of " +
                                                  std::to_string(bytes.size()) + " bytes");
    }
    return ok();
}

/// Takes ownership of every descriptor in `msg`'s SCM_RIGHTS data.
void collect_fds(msghdr& msg, std::vector<UniqueFd>& out) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0)) {
            continue;
        }
        const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char* data = CMSG_DATA(c);
        for (std::size_t i = 0; i < n; ++i) {
            int fd = -1;
            std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
            out.emplace_back(fd);
        }
    }
}

Result<Datagram> read_one(int fd, std::span<std::byte> buffer) {
    iovec iov{buffer.data(), buffer.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxReceivedFds)]{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = -1;
    do {
        // MSG_TRUNC: the length as sent, even when it did not fit the buffer.
        n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            return make_error(Errc::would_block);
        }
        if (err == ECONNRESET) {
            return peer_gone(err);
        }
        if (err == EBADF) {
            return make_error(Errc::system_error, "the control socket is not open", err);
        }
        return make_error(Errc::system_error, "recvmsg on the control socket", err);
    }
    Datagram out;
    collect_fds(msg, out.fds); // owned from here on: closed wherever the caller drops them
    out.size = static_cast<std::size_t>(n);
    out.cut = (msg.msg_flags & MSG_TRUNC) != 0 || out.size > buffer.size();
    out.excess_descriptors = (msg.msg_flags & MSG_CTRUNC) != 0;
    if (n == 0 && out.fds.empty() && !out.excess_descriptors) {
        return peer_gone(0);
    }
    return out;
}

Refusal refuse(Fault fault, const Datagram& d, Error error, std::uint32_t request_id = 0) {
    return Refusal{fault, std::move(error), request_id, d.size, d.fds.size()};
}

Incoming decode_datagram(Datagram d, std::span<const std::byte> buffer) {
    if (d.excess_descriptors) {
        return refuse(Fault::excess_descriptors, d,
                      make_error(Errc::protocol_error,
                                 "a datagram came with more descriptors than any message "
                                 "carries (more than " +
                                     std::to_string(kMaxReceivedFds) + "); all were closed"));
    }
    if (d.cut) {
        return refuse(Fault::oversized, d,
                      make_error(Errc::protocol_error, "a datagram larger than " +
                                                           std::to_string(kMaxMessageBytes) +
                                                           " bytes was refused"));
    }
    auto decoded = decode(buffer.first(d.size));
    if (!decoded) {
        return refuse(Fault::malformed, d, decoded.take_error());
    }
    const MsgType type = type_of(decoded->body);
    const std::size_t expected = descriptors_for(type);
    if (d.fds.size() != expected) {
        return refuse(Fault::descriptor_count, d,
                      make_error(Errc::protocol_error,
                                 std::string{msg_type_name(type)} + " came with " +
                                     plural(d.fds.size(), "descriptor") + ", it carries " +
                                     std::to_string(expected) + "; all were closed"),
                      decoded->request_id);
    }
    return Received{std::move(*decoded), std::move(d.fds)};
}

Incoming read_and_decode(int fd, std::span<std::byte> buffer) {
    if (buffer.size() < kMaxMessageBytes) {
        return make_error(Errc::invalid_argument,
                          "a message buffer must hold " + std::to_string(kMaxMessageBytes) +
                              " bytes, not " + std::to_string(buffer.size()));
    }
    auto d = read_one(fd, buffer);
    if (!d) {
        return d.take_error();
    }
    return decode_datagram(std::move(*d), buffer);
}

Result<Received> receive(int fd, std::chrono::steady_clock::time_point deadline) {
    // One buffer per call: the control plane is not a hot path, and a thread-local buffer
    // would pin 128 KiB in every thread that ever talked to the daemon.
    const std::unique_ptr<std::byte[]> buffer{new std::byte[kMaxMessageBytes]};
    // A reply usually comes within tens of microseconds: look for it without sleeping for a
    // while first. Sleeping and being woken (an idle CPU halted, then an interrupt) would cost
    // more than the daemon takes to answer; see kReplySpin.
    const auto spin_until = std::min(deadline, std::chrono::steady_clock::now() + kReplySpin);
    for (;;) {
        pollfd p{fd, POLLIN | POLLRDHUP, 0};
        const bool spinning = std::chrono::steady_clock::now() < spin_until;
        const int ready = ::poll(&p, 1, spinning ? 0 : poll_timeout(deadline));
        if (ready == 0 && spinning) {
            sched_yield();
            continue;
        }
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            return make_error(Errc::system_error, "poll on the control socket", errno);
        }
        if (ready == 0) {
            return make_error(Errc::timed_out, "no message arrived before the deadline");
        }
        if ((p.revents & POLLNVAL) != 0) {
            return make_error(Errc::system_error, "the control socket is not open", EBADF);
        }
        Incoming in = read_and_decode(fd, {buffer.get(), kMaxMessageBytes});
        if (auto* received = std::get_if<Received>(&in)) {
            return std::move(*received);
        }
        if (auto* refusal = std::get_if<Refusal>(&in)) {
            return std::move(refusal->error);
        }
        auto& error = std::get<Error>(in);
        if (error.code != Errc::would_block) {
            return std::move(error);
        }
        // Woken for nothing (another reader took it): wait again.
    }
}

} // namespace

std::size_t descriptors_for(MsgType type) noexcept {
    return type == MsgType::open_reply || type == MsgType::reclaim_offer ? kMaxFds : 0;
}

bool Refusal::ends_connection() const noexcept {
    return fault == Fault::excess_descriptors || fault == Fault::descriptor_count ||
           descriptors > 0;
}

Result<void> size_socket_buffers(int fd) noexcept {
    constexpr int kWanted = static_cast<int>(2 * kMaxMessageBytes);
    for (const int option : {SO_SNDBUF, SO_RCVBUF}) {
        if (::setsockopt(fd, SOL_SOCKET, option, &kWanted, sizeof(kWanted)) != 0) {
            return make_error(Errc::system_error,
                              option == SO_SNDBUF ? "setting SO_SNDBUF" : "setting SO_RCVBUF",
                              errno);
        }
    }
    // The kernel caps the request at net.core.wmem_max (and reports twice what it grants).
    // An AF_UNIX datagram must fit the sender's buffer less a little bookkeeping.
    int granted = 0;
    socklen_t len = sizeof(granted);
    if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &granted, &len) != 0) {
        return make_error(Errc::system_error, "reading SO_SNDBUF", errno);
    }
    if (static_cast<std::size_t>(granted) < kMaxMessageBytes + 4096) {
        return make_error(Errc::limit_reached,
                          "the kernel grants a control socket send buffer of " +
                              std::to_string(granted) + " bytes, too small for a " +
                              std::to_string(kMaxMessageBytes) +
                              "-byte message (raise net.core.wmem_max)");
    }
    return ok();
}

Result<void> send_datagram(int fd, std::span<const std::byte> bytes,
                           std::span<const int> fds) noexcept {
    try {
        return send(fd, bytes, fds);
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
}

Result<Datagram> read_datagram(int fd, std::span<std::byte> buffer) noexcept {
    try {
        return read_one(fd, buffer);
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
}

Result<void> send_message(int fd, const Message& message, std::span<const int> fds) noexcept {
    try {
        const MsgType type = type_of(message.body);
        const std::string what{msg_type_name(type)};
        if (fds.size() != descriptors_for(type)) {
            return make_error(Errc::invalid_argument,
                              what + " carries " + std::to_string(descriptors_for(type)) +
                                  " descriptors, " + std::to_string(fds.size()) + " given");
        }
        auto bytes = encode(message);
        if (!bytes) {
            return bytes.take_error();
        }
        auto sent = send(fd, *bytes, fds);
        if (!sent && sent.code() != Errc::closed) {
            Error e = sent.take_error();
            e.detail = "sending " + what + ": " + e.detail;
            return e;
        }
        return sent;
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
}

Incoming read_message(int fd, std::span<std::byte> buffer) noexcept {
    try {
        return read_and_decode(fd, buffer);
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
}

Result<Received> receive_message(int fd, std::chrono::steady_clock::time_point deadline) noexcept {
    try {
        return receive(fd, deadline);
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
}

} // namespace shmbus::proto
