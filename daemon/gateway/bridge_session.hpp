// One bridge link after its handshake: the streams it moves, in both directions, until the
// link ends. docs/gateway.md ("Streams", "Data and flow control", "Loss and order").
//
// The session is an ordinary client of the local daemon: it opens the channels it exports
// as a subscriber and those it imports as a publisher through a shmbus::Client, so ACLs,
// limits, statistics and reclaim apply to it as to any application. The same class serves
// shmbusd's gateway (a client of its own daemon) and `shmbusctl bridge-stdio` (a client of
// the daemon at the far end of an exec: link).
//
// Threads, all started and joined by run(), none of them the daemon's control loop:
// - the caller of run() reads the link: it decodes frames, answers offers, wants and pings,
//   hands data to the importing streams and credits to the exporting ones;
// - one thread per exported stream receives from the local channel (waiting on its futex)
//   and writes data frames, at most as many messages as the peer has granted credits for;
// - one thread per imported stream publishes what arrived into the local channel and
//   returns credits as it does.
// Writes to the link are whole frames under one mutex, so frames never interleave; a data
// frame is at most the peer's max_data_body, so a control frame (a credit, a pong) waits for
// at most one data frame. An importing stream holds at most the credits it granted, so
// memory per stream is bounded by its window and one slow stream runs out of credits alone
// while the others keep flowing.
//
// Loss: an exporting stream numbers its messages itself (starting at 1) and skips the
// numbers of messages its local subscriber lost (drop policy), so the importing side sees
// every loss as a gap and counts it. On a drop channel the exporter copies a batch out and
// releases it before sending, and discards the copy if the batch was overwritten meanwhile:
// nothing torn is ever sent. Block and queue channels are sent straight from their slots.
//
// Failure policy: a malformed or unexpected frame ends the link with a goodbye naming the
// frame and the reason; a refused stream is logged on both ends and the others continue.
#pragma once

#include "gateway/bridge_rules.hpp"
#include "gateway/frame.hpp"
#include "gateway/handshake.hpp"

#include <shmbus/client.hpp>
#include <shmbus/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::gateway {

struct SessionSettings {
    std::string bridge;   ///< the bridge's name, in every log line
    bool initiator{true}; ///< the connecting end offers its exports and asks for its imports
    std::vector<ChannelRule> exports;
    std::vector<ChannelRule> imports;
    std::uint32_t window{256}; ///< credits an importing stream grants (messages in flight)
    std::chrono::milliseconds ping_after_idle{1000};     ///< a ping when nothing was sent for this
    std::chrono::milliseconds dead_after_silence{10000}; ///< link dead if nothing arrives
    /// Where the session's lines go (one per state change: a stream granted or refused, the
    /// link's end). Called from the session's threads.
    std::function<void(std::string_view)> log;
};

/// One stream, as `shmbusctl bridges` shows it.
struct StreamStats {
    std::string wire_name;
    std::string local_name;
    bool exporting{false};
    std::uint64_t messages{0};
    std::uint64_t bytes{0};
    std::uint64_t lost{0};    ///< messages lost, from sequence gaps (import) or the source
    std::uint32_t credits{0}; ///< export: credits left; import: messages granted, not returned
};

struct SessionStats {
    std::vector<StreamStats> streams;
    std::uint64_t rtt_ns{0}; ///< the last ping's round trip; 0 before the first
};

class BridgeSession {
public:
    /// A session over a link whose handshake ended with `params`. `reader` holds any bytes
    /// that followed the handshake. `local` is the connection to the local daemon; it must
    /// outlive the session. The descriptors are not owned.
    BridgeSession(SessionSettings settings, LinkParams params, Client& local, int in_fd, int out_fd,
                  FrameReader reader);
    ~BridgeSession();
    BridgeSession(const BridgeSession&) = delete;
    BridgeSession& operator=(const BridgeSession&) = delete;

    /// Moves messages until the link ends, and returns why: Errc::closed when the peer said
    /// goodbye or hung up (its reason in the detail), Errc::protocol_error for a bad frame,
    /// Errc::timed_out when the peer went silent, Errc::closed "stopped" after stop().
    Error run();

    /// Ends run() from another thread: says goodbye to the peer and joins every stream.
    void stop() noexcept;

    /// A snapshot; safe from any thread while run() runs.
    [[nodiscard]] SessionStats stats() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace shmbus::gateway
