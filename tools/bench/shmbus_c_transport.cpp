// The shmbus transport through the C ABI: see shmbus_c_transport.hpp.
#include "shmbus_c_transport.hpp"

#include "patterns.hpp"
#include "shmbusd_process.hpp"

#include <shmbus/shmbus.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace bench {
namespace {

// A blocking reserve that waits this long for room means the reader is gone: fail the run.
constexpr std::int64_t kStuckNs = 10'000'000'000;
// Stream readers' blocking receives return this often when idle (as the C++ transport's).
constexpr std::int64_t kIdlePollNs = 2'000'000;
// The most slots one call hands out: the largest batch of any suite.
constexpr std::size_t kMaxBatch = 64;

std::string last_error(const char* what) {
    return std::string{what} + ": " + shmbus_last_error_message();
}

class CWriter {
public:
    CWriter(shmbus_publisher* pub, bool spin) : pub_{pub}, spin_{spin} {}
    CWriter(const CWriter&) = delete;
    CWriter& operator=(const CWriter&) = delete;
    ~CWriter() { shmbus_publisher_close(pub_); }

    std::size_t acquire(std::size_t n) {
        n = std::min(n, kMaxBatch);
        std::int64_t stuck_at = 0;
        for (std::uint64_t spins = 1;; ++spins) {
            const int rc =
                shmbus_publisher_reserve(pub_, slots_.data(), n, spin_ ? 0 : kStuckNs, &count_);
            if (rc == SHMBUS_OK) {
                return count_;
            }
            if (rc != SHMBUS_E_WOULD_BLOCK) {
                error_ = last_error("shmbus_publisher_reserve");
                return 0;
            }
            // Spinning on a full ring: give up as the blocking form would, after kStuckNs.
            if (spins % 4096 == 0) {
                const std::int64_t now = now_ns();
                stuck_at = stuck_at == 0 ? now + kStuckNs : stuck_at;
                if (now >= stuck_at) {
                    error_ = "no free slot for 10 s (is the reader gone?)";
                    return 0;
                }
            }
        }
    }
    std::span<std::byte> slot(std::size_t i) {
        return {static_cast<std::byte*>(slots_[i].data),
                static_cast<std::size_t>(slots_[i].capacity)};
    }
    void set_length(std::size_t i, std::uint64_t len) { lengths_[i] = len; }
    bool publish() {
        if (shmbus_publisher_commit(pub_, lengths_.data(), count_) != SHMBUS_OK) {
            error_ = last_error("shmbus_publisher_commit");
            return false;
        }
        return true;
    }
    const std::string& error() const { return error_; }

private:
    shmbus_publisher* pub_;
    bool spin_;
    std::array<shmbus_slot, kMaxBatch> slots_{};
    std::array<std::uint64_t, kMaxBatch> lengths_{};
    std::size_t count_{0};
    std::string error_;
};

class CReader {
public:
    CReader(shmbus_subscriber* sub, bool spin) : sub_{sub}, spin_{spin} {}
    CReader(const CReader&) = delete;
    CReader& operator=(const CReader&) = delete;
    ~CReader() { shmbus_subscriber_close(sub_); }

    /// Messages ready now (spin) or within the idle poll (blocking form); 0 when none.
    std::size_t take(std::size_t n) {
        n = std::min(n, kMaxBatch);
        std::size_t count = 0;
        const int rc = shmbus_subscriber_receive(sub_, messages_.data(), n, spin_ ? 0 : kIdlePollNs,
                                                 &count, nullptr);
        if (rc == SHMBUS_OK) {
            return count;
        }
        if (rc != SHMBUS_E_WOULD_BLOCK && rc != SHMBUS_E_TIMED_OUT) {
            error_ = last_error("shmbus_subscriber_receive");
        }
        return 0;
    }
    bool failed() const { return !error_.empty(); }
    std::span<const std::byte> message(std::size_t i) const {
        return {static_cast<const std::byte*>(messages_[i].data),
                static_cast<std::size_t>(messages_[i].length)};
    }
    Released release() {
        const int rc = shmbus_subscriber_release(sub_, nullptr);
        if (rc == SHMBUS_OK) {
            return Released::ok;
        }
        if (rc == SHMBUS_E_LOST) {
            return Released::lost;
        }
        error_ = last_error("shmbus_subscriber_release");
        return Released::error;
    }
    const std::string& error() const { return error_; }

private:
    shmbus_subscriber* sub_;
    bool spin_;
    std::array<shmbus_message, kMaxBatch> messages_{};
    std::string error_;
};

/// A child's connection to the run's daemon, closed when the child's body returns.
struct Connection {
    shmbus_client* client{nullptr};
    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { shmbus_client_close(client); }
};

shmbus_endpoint_options endpoint_options(Wait w) {
    shmbus_endpoint_options o;
    shmbus_endpoint_options_init(&o);
    o.wait = w == Wait::spin    ? SHMBUS_WAIT_SPIN
             : w == Wait::futex ? SHMBUS_WAIT_BLOCKING
                                : SHMBUS_WAIT_ADAPTIVE;
    return o;
}

/// Spawns a child that connects to `socket`, opens the writer or the reader of `channel`
/// and runs the stream pattern on it.
std::string spawn_c_role(Team& team, const std::string& socket, const std::string& channel,
                         Wait wait, bool writer, const PatternParams& p) {
    return team.spawn([=](StartGate& gate) {
        Report r;
        Connection c;
        shmbus_client_options o;
        shmbus_client_options_init(&o);
        o.socket_path = socket.c_str();
        o.client_name = writer ? "bench-c-writer" : "bench-c-reader";
        o.reconnect_in_background = 0;
        if (shmbus_connect(&o, &c.client) != SHMBUS_OK) {
            r.error = last_error("shmbus_connect");
            return r;
        }
        const shmbus_endpoint_options eo = endpoint_options(wait);
        if (writer) {
            shmbus_publisher* pub = nullptr;
            if (shmbus_open_publisher(c.client, channel.c_str(), &eo, &pub) != SHMBUS_OK) {
                r.error = last_error("shmbus_open_publisher");
                return r;
            }
            CWriter out{pub, wait == Wait::spin};
            return run_sender(out, gate, p);
        }
        shmbus_subscriber* sub = nullptr;
        if (shmbus_open_subscriber(c.client, channel.c_str(), &eo, &sub) != SHMBUS_OK) {
            r.error = last_error("shmbus_open_subscriber");
            return r;
        }
        CReader in{sub, wait == Wait::spin};
        return run_receiver(in, gate, p);
    });
}

} // namespace

std::string run_shmbus_c(const Scenario& s, const RunSettings& settings,
                         std::vector<Report>& reports) {
    if (s.test != Test::throughput || s.kind != Kind::queue_spsc || s.batch > kMaxBatch) {
        return "the C ABI rows measure throughput on a single-producer single-consumer queue, "
               "at most 64 per publish";
    }
    SharedBoard board;
    if (!board.valid()) {
        return std::string{"mmap: "} + std::strerror(errno);
    }
    const PatternParams p = make_params(s, settings, board.get());
    ShmbusdProcess daemon;
    if (std::string e = daemon.start(settings.shmbusd, spsc_stream_channel(s.msg_size, s.batch), 8);
        !e.empty()) {
        return e;
    }
    Team team{settings.pin};
    std::string error = spawn_c_role(team, daemon.socket_path(), channel_name(0), s.wait, true, p);
    if (error.empty()) {
        error = spawn_c_role(team, daemon.socket_path(), channel_name(0), s.wait, false, p);
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{20}, reports);
}

} // namespace bench
