// Baselines: see baselines.hpp. Streams (FIFO, uds-stream, TCP) carry fixed-size frames,
// since every message of a scenario has the same size; datagram transports keep message
// boundaries themselves. The descriptors are owned by the parent's Channel set; children
// inherit copies and use only their side.

#include "baselines.hpp"

#include "patterns.hpp"

#include <shmbus/unique_fd.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bench {
namespace {

using shmbus::UniqueFd;

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

/// One direction of a path between two processes: tx is written in the sending process,
/// rx read in the receiving one (the same socket may serve both directions).
struct Path {
    int tx{-1};
    int rx{-1};
};

/// Descriptors of one run: a forward path (ping / stream) and a backward one (pong).
struct Links {
    std::vector<UniqueFd> owned; // mq descriptors too: on Linux mqd_t is a file descriptor
    Path forward;
    Path backward;
    std::string error;

    int keep(int fd) {
        owned.emplace_back(fd);
        return fd;
    }
};

// --- writers and readers (see patterns.hpp for the interface) ---------------------------

class StreamWriter {
public:
    StreamWriter(int fd, std::uint64_t size, std::size_t batch)
        : fd_{fd}, size_{size}, batch_{batch}, buf_(size * batch) {}
    std::size_t acquire(std::size_t n) { return count_ = std::min(n, batch_); }
    std::span<std::byte> slot(std::size_t i) { return {buf_.data() + i * size_, size_}; }
    void set_length(std::size_t, std::uint64_t) {} // frames are fixed-size
    bool publish() {
        const std::byte* p = buf_.data();
        std::size_t n = count_ * size_;
        while (n > 0) {
            const ssize_t w = ::write(fd_, p, n);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                error_ = errno_text("write");
                return false;
            }
            p += w;
            n -= static_cast<std::size_t>(w);
        }
        return true;
    }
    const std::string& error() const { return error_; }

private:
    int fd_;
    std::uint64_t size_;
    std::size_t batch_;
    std::vector<std::byte> buf_;
    std::size_t count_{0};
    std::string error_;
};

class StreamReader {
public:
    StreamReader(int fd, std::uint64_t size, std::size_t batch)
        : fd_{fd}, size_{size}, batch_{batch}, buf_(size * batch) {}
    /// Reads at most `n` frames' worth per read(), as a receiver sized for `n` would.
    std::size_t take(std::size_t n) {
        n = std::min(n, batch_);
        while (have_ < size_) {
            const ssize_t got = ::read(fd_, buf_.data() + have_, n * size_ - have_);
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got <= 0) {
                error_ = got == 0 ? std::string{"peer closed the stream"} : errno_text("read");
                return 0;
            }
            have_ += static_cast<std::size_t>(got);
        }
        count_ = std::min(have_ / size_, n);
        return count_;
    }
    bool failed() const { return !error_.empty(); }
    std::span<const std::byte> message(std::size_t i) const {
        return {buf_.data() + i * size_, size_};
    }
    Released release() {
        const std::size_t used = count_ * size_;
        std::memmove(buf_.data(), buf_.data() + used, have_ - used); // a partial frame
        have_ -= used;
        count_ = 0;
        return Released::ok;
    }
    const std::string& error() const { return error_; }

private:
    int fd_;
    std::uint64_t size_;
    std::size_t batch_;
    std::vector<std::byte> buf_;
    std::size_t have_{0};
    std::size_t count_{0};
    std::string error_;
};

// A batch of datagrams of one size: the buffer, one iovec per slot and the mmsghdr array that
// sendmmsg() and recvmmsg() take, for the packet writer and reader alike. The headers point
// into the buffer, so it is neither copied nor moved.
struct PacketSlots {
    PacketSlots(std::uint64_t size, std::size_t batch)
        : buf(size * batch), iov(batch), msgs(batch) {
        for (std::size_t i = 0; i < batch; ++i) {
            iov[i] = iovec{buf.data() + i * size, size};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
    }
    PacketSlots(const PacketSlots&) = delete;
    PacketSlots& operator=(const PacketSlots&) = delete;

    std::vector<std::byte> buf;
    std::vector<iovec> iov;
    std::vector<mmsghdr> msgs;
};

class PacketWriter {
public:
    PacketWriter(int fd, std::uint64_t size, std::size_t batch)
        : fd_{fd}, size_{size}, batch_{batch}, slots_{size, batch} {}
    std::size_t acquire(std::size_t n) { return count_ = std::min(n, batch_); }
    std::span<std::byte> slot(std::size_t i) { return {slots_.buf.data() + i * size_, size_}; }
    void set_length(std::size_t i, std::uint64_t len) { slots_.iov[i].iov_len = len; }
    bool publish() {
        if (count_ == 1) {
            while (::send(fd_, slots_.buf.data(), slots_.iov[0].iov_len, MSG_NOSIGNAL) < 0) {
                if (errno != EINTR) {
                    error_ = errno_text("send");
                    return false;
                }
            }
            return true;
        }
        std::size_t sent = 0;
        while (sent < count_) { // sendmmsg() may stop early; send the rest
            const int n = ::sendmmsg(fd_, slots_.msgs.data() + sent,
                                     static_cast<unsigned>(count_ - sent), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                error_ = errno_text("sendmmsg");
                return false;
            }
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }
    const std::string& error() const { return error_; }

private:
    int fd_;
    std::uint64_t size_;
    std::size_t batch_;
    PacketSlots slots_;
    std::size_t count_{0};
    std::string error_;
};

class PacketReader {
public:
    PacketReader(int fd, std::uint64_t size, std::size_t batch)
        : fd_{fd}, size_{size}, batch_{batch}, slots_{size, batch} {}
    std::size_t take(std::size_t n) {
        n = std::min(n, batch_);
        if (n == 1) {
            for (;;) {
                const ssize_t got = ::recv(fd_, slots_.buf.data(), size_, 0);
                if (got > 0) {
                    slots_.msgs[0].msg_len = static_cast<unsigned>(got);
                    return 1;
                }
                if (got < 0 && errno == EINTR) {
                    continue;
                }
                error_ = got == 0 ? std::string{"peer closed the socket"} : errno_text("recv");
                return 0;
            }
        }
        for (;;) {
            const int got = ::recvmmsg(fd_, slots_.msgs.data(), static_cast<unsigned>(n),
                                       MSG_WAITFORONE, nullptr);
            if (got > 0) {
                return static_cast<std::size_t>(got);
            }
            if (got < 0 && errno == EINTR) {
                continue;
            }
            error_ = got == 0 ? std::string{"peer closed the socket"} : errno_text("recvmmsg");
            return 0;
        }
    }
    bool failed() const { return !error_.empty(); }
    std::span<const std::byte> message(std::size_t i) const {
        return {slots_.buf.data() + i * size_, slots_.msgs[i].msg_len};
    }
    Released release() { return Released::ok; }
    const std::string& error() const { return error_; }

private:
    int fd_;
    std::uint64_t size_;
    std::size_t batch_;
    PacketSlots slots_;
    std::string error_;
};

class MqWriter {
public:
    MqWriter(int mq, std::uint64_t size, std::size_t) : mq_{mq}, buf_(size) {}
    std::size_t acquire(std::size_t) { return 1; } // no batched send exists
    std::span<std::byte> slot(std::size_t) { return buf_; }
    void set_length(std::size_t, std::uint64_t len) { len_ = len; }
    bool publish() {
        while (::mq_send(mq_, reinterpret_cast<const char*>(buf_.data()), len_, 0) != 0) {
            if (errno != EINTR) {
                error_ = errno_text("mq_send");
                return false;
            }
        }
        return true;
    }
    const std::string& error() const { return error_; }

private:
    mqd_t mq_;
    std::vector<std::byte> buf_;
    std::size_t len_{0};
    std::string error_;
};

class MqReader {
public:
    MqReader(int mq, std::uint64_t size, std::size_t) : mq_{mq}, buf_(size) {}
    std::size_t take(std::size_t) {
        for (;;) {
            const ssize_t got =
                ::mq_receive(mq_, reinterpret_cast<char*>(buf_.data()), buf_.size(), nullptr);
            if (got >= 0) {
                len_ = static_cast<std::size_t>(got);
                return 1;
            }
            if (errno != EINTR) {
                error_ = errno_text("mq_receive");
                return 0;
            }
        }
    }
    bool failed() const { return !error_.empty(); }
    std::span<const std::byte> message(std::size_t) const { return {buf_.data(), len_}; }
    Released release() { return Released::ok; }
    const std::string& error() const { return error_; }

private:
    mqd_t mq_;
    std::vector<std::byte> buf_;
    std::size_t len_{0};
    std::string error_;
};

// --- descriptors --------------------------------------------------------------------------

void make_socket_links(Links& l, int type) {
    int sv[2];
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) {
        l.error = errno_text("socketpair");
        return;
    }
    const int a = l.keep(sv[0]);
    const int b = l.keep(sv[1]);
    l.forward = {a, b};
    l.backward = {b, a};
}

void make_tcp_links(Links& l) {
    UniqueFd listener{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0; // any free port
    socklen_t len = sizeof addr;
    auto* sa = reinterpret_cast<sockaddr*>(&addr);
    if (!listener || ::bind(listener.get(), sa, sizeof addr) != 0 ||
        ::listen(listener.get(), 1) != 0 || ::getsockname(listener.get(), sa, &len) != 0) {
        l.error = errno_text("TCP listener on 127.0.0.1");
        return;
    }
    const int client = l.keep(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (client < 0 || ::connect(client, sa, sizeof addr) != 0) {
        l.error = errno_text("connect to 127.0.0.1");
        return;
    }
    const int server = l.keep(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (server < 0) {
        l.error = errno_text("accept");
        return;
    }
    const int one = 1;
    for (int fd : {client, server}) {
        if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
            l.error = errno_text("TCP_NODELAY");
            return;
        }
    }
    l.forward = {client, server};
    l.backward = {server, client};
}

/// A FIFO opened at both ends in this process, and unlinked.
Path make_fifo(Links& l, const std::string& dir, const char* name) {
    const std::string path = dir + "/" + name;
    if (::mkfifo(path.c_str(), 0600) != 0) {
        l.error = errno_text("mkfifo " + path);
        return {};
    }
    // Opening the read end without O_NONBLOCK would wait for a writer that is us.
    const int rx = l.keep(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    const int tx = l.keep(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    ::unlink(path.c_str());
    if (rx < 0 || tx < 0 || ::fcntl(rx, F_SETFL, 0) != 0) {
        l.error = errno_text("open FIFO " + path);
        return {};
    }
    return {tx, rx};
}

void make_fifo_links(Links& l, bool two_way) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir =
        std::string{tmp != nullptr && *tmp != '\0' ? tmp : "/tmp"} + "/shmbus-bench-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
        l.error = errno_text("mkdtemp " + dir);
        return;
    }
    l.forward = make_fifo(l, dir, "forward");
    if (two_way && l.error.empty()) {
        l.backward = make_fifo(l, dir, "backward");
    }
    ::rmdir(dir.c_str());
}

Path make_mq(Links& l, std::uint64_t msg_size, int serial) {
    const std::string name =
        "/shmbus-bench-" + std::to_string(::getpid()) + "-" + std::to_string(serial);
    mq_attr attr{};
    attr.mq_maxmsg = 10; // the unprivileged default ceiling (fs.mqueue.msg_max)
    attr.mq_msgsize = static_cast<long>(msg_size);
    const mqd_t mq = ::mq_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
    if (mq == static_cast<mqd_t>(-1)) {
        l.error = errno_text("mq_open " + name);
        return {};
    }
    ::mq_unlink(name.c_str());
    l.keep(mq);
    return {mq, mq};
}

Links make_links(const Scenario& s) {
    static int serial = 0;
    Links l;
    const bool two_way = s.test == Test::latency;
    switch (s.transport) {
    case Transport::fifo:
        make_fifo_links(l, two_way);
        break;
    case Transport::uds_stream:
        make_socket_links(l, SOCK_STREAM);
        break;
    case Transport::uds_seqpacket:
        make_socket_links(l, SOCK_SEQPACKET);
        break;
    case Transport::tcp:
        make_tcp_links(l);
        break;
    case Transport::posix_mq:
        l.forward = make_mq(l, s.msg_size, ++serial);
        if (two_way && l.error.empty()) {
            l.backward = make_mq(l, s.msg_size, ++serial);
        }
        break;
    default:
        l.error = "not a baseline transport";
    }
    return l;
}

template <typename Writer, typename Reader>
std::string run_with(const Scenario& s, const RunSettings& settings, const Links& l,
                     std::vector<Report>& reports) {
    SharedBoard board;
    if (!board.valid()) {
        return errno_text("mmap");
    }
    const PatternParams p = make_params(s, settings, board.get());
    // One message per write for ping-pong, the scenario's batch for a stream.
    const std::size_t batch = s.test == Test::latency ? 1 : s.batch;
    const auto path = [&l](Direction d) {
        return d == Direction::forward ? l.forward : l.backward;
    };
    return run_one_to_one(
        s, settings, p,
        [&](Direction d) {
            return Writer{path(d).tx, s.msg_size, batch};
        },
        [&](Direction d) {
            return Reader{path(d).rx, s.msg_size, batch};
        },
        reports);
}

} // namespace

std::string run_baseline(const Scenario& s, const RunSettings& settings,
                         std::vector<Report>& reports) {
    const Links links = make_links(s);
    if (!links.error.empty()) {
        return links.error;
    }
    switch (s.transport) {
    case Transport::uds_seqpacket:
        return run_with<PacketWriter, PacketReader>(s, settings, links, reports);
    case Transport::posix_mq:
        return run_with<MqWriter, MqReader>(s, settings, links, reports);
    default:
        return run_with<StreamWriter, StreamReader>(s, settings, links, reports);
    }
}

} // namespace bench
