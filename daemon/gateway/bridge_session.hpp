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
//   hands credits to the exporting streams, and publishes each data frame straight into its
//   local channel (reserved slots, one copy, one commit and one wake-up per frame) whenever
//   its stream has nothing queued and the ring has room;
// - one thread per exported stream receives from the local channel (asleep on its futex,
//   never spinning) and writes data frames, at most as many messages as the peer has granted
//   credits for;
// - one thread per imported stream publishes what the ring had no room for, waiting on the
//   ring as its subscribers free it, and sends the stream's credits back to the peer, a
//   quarter of the window at a time (so that the link reader never waits on the link's write
//   side: two ends blocked writing to each other would never read again).
// Writes to the link are whole frames, one writer at a time, taken in turns by priority and
// first come, first served within one (WriteTurns): an export's data frames at its rule's
// priority, the session's own frames (offers, grants, credits, pings) above them all, so
// frames never interleave, credits never wait behind data, and a frame waits for at most those
// of its priority queued before it, one per writer, each at most the peer's max_data_body. From
// protocol 2, a message larger than one data frame goes as fragments (fragments.hpp), one per turn
// and one credit each, so the other streams' frames go between them; the importer reassembles it,
// admits it by its origin exactly as a whole one (loops, duplicates), and its stream's thread
// publishes it whole, or drops it whole if the stream or link ends first. An
// importing stream holds at most the credits it granted (its window, SessionSettings::window), so
// memory per stream is bounded by the window and one slow stream runs out of credits alone while
// the others keep flowing.
//
// Loss: a broadcast stream carries the channel's own positions (sequence + 1), which survive
// a link cut and a daemon restart; a queue stream numbers its messages itself (from 1). Either
// way every message the exporter's subscriber lost (drop policy) or discarded is a gap in the
// numbers, so the importing side sees every loss as a gap, counts it, and hands it to its
// local subscribers with Publisher::record_gap() (broadcast channels), in order with the
// messages. The importer remembers, in the StreamMemory its runner keeps from link to link,
// where each broadcast stream stood (the first sequence not yet published locally, the
// channel's creation id): when the same channel is offered again, by the same peer or by a
// restarted one, the messages it missed meanwhile are counted exactly; a channel with a new
// creation id starts afresh. On a drop channel the exporter copies a batch out and releases
// it before sending, and discards the copy if the batch was overwritten meanwhile: nothing
// torn is ever sent. Block and queue channels are sent straight from their slots.
//
// `on_link_down: block` (exports of broadcast channels): the stream keeps a copy of every
// message it sent until the peer returns its credit, which the peer does once the message is
// published on its side. When the link ends, the session hands the subscriber and those
// copies to the StreamMemory; the next link's offer of that channel takes them back and,
// when the peer grants, sends again what the peer has not published (from the grant's
// resume_sequence, or all of it to a peer that remembers nothing), then goes on from the
// subscriber's cursor, which held the local publishers meanwhile: nothing is lost. A peer
// that gives no credit for the export's block_timeout (each export rule has its own) ends the
// link, with a log line and a count, rather than hold the local publishers for ever; the
// runner likewise gives each hold up after its own block_timeout with the link down.
//
// Congestion (the link is up, the peer grants no credits; docs/gateway.md, "Congestion"): a
// `block` export (on_congestion: block, or on_link_down: block) waits for credits at most its
// block_timeout, then ends the link as above. A `drop_oldest` export of a block broadcast
// channel, and any `keep_latest` broadcast export, drains: every millisecond without credits
// its thread copies what the ring holds into the stream's own `held` copies, at most a ring's
// worth (drop_oldest) or one (keep_latest), letting go of the oldest, so that its cursor never
// holds the local publishers; when credits come it sends the held copies first, in order, and
// what it let go is a gap the importer counts. A `drop_oldest` export of a drop channel lets
// the ring overwrite; a queue export takes no work without credits.
//
// The link is a LinkStream (link_io.hpp): plain descriptors or TLS, which the session neither
// knows nor needs to.
//
// Failure policy: a malformed or unexpected frame ends the link with a goodbye naming the
// frame and the reason; a refused stream is logged on both ends and the others continue.
#pragma once

#include "gateway/bridge_rules.hpp"
#include "gateway/frame.hpp"
#include "gateway/handshake.hpp"
#include "gateway/origin.hpp"
#include "gateway/write_turns.hpp"

#include <shmbus/client.hpp>
#include <shmbus/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::gateway {

/// Where an imported broadcast stream stood when its last link ended.
struct ImportMark {
    std::uint64_t creation_id{0};      ///< of the peer's channel
    std::uint64_t peer_incarnation{0}; ///< the peer daemon it came from
    std::uint64_t next{0};             ///< the first sequence not published locally
};

/// A message an exporting `block` stream sent and the peer has not yet confirmed (returned
/// its credit, which it does once its local publisher has committed it).
struct SentMessage {
    std::uint64_t sequence{0};
    std::vector<std::byte> bytes;
    std::uint64_t credits{1}; ///< what it cost: 1, or its fragments when sent in fragments
};

/// An exported broadcast channel with `on_link_down: block` while its link is down: its
/// subscriber, whose cursor holds the local publishers back once the ring is full, and what
/// the peer may not have received, to be sent again on the next link.
struct KeptExport {
    Subscriber subscriber;
    std::deque<SentMessage> unconfirmed;
    std::chrono::steady_clock::time_point since;                   ///< when its link ended
    std::chrono::milliseconds block_timeout{kDefaultBlockTimeout}; ///< its rule's: the hold's limit
};

/// What a bridge remembers of its streams from one link to the next. Owned by its runner
/// (shared with each session); any thread, under `mu`.
struct StreamMemory {
    std::mutex mu;
    std::map<std::string, ImportMark> imports; ///< by wire name
    std::map<std::string, KeptExport> exports; ///< by local name
    std::uint64_t block_timeouts{0};           ///< `block` holds given up after block_timeout
};

struct SessionSettings {
    std::string bridge;   ///< the bridge's name, in every log line
    bool initiator{true}; ///< the connecting end offers its exports and asks for its imports
    std::vector<ChannelRule> exports;
    std::vector<ChannelRule> imports;
    std::uint32_t window{kDefaultCreditWindow};          ///< credits an importing stream grants
    std::chrono::milliseconds ping_after_idle{1000};     ///< a ping when nothing was sent for this
    std::chrono::milliseconds dead_after_silence{10000}; ///< link dead if nothing arrives
    /// Kept from link to link by the runner; none = every link starts afresh.
    std::shared_ptr<StreamMemory> memory;
    /// This daemon's incarnation: the origin of what its own channels publish (protocol 2).
    std::uint64_t incarnation{0};
    /// Origins per local channel, shared by every bridge of the daemon so that two paths into
    /// one channel deliver each message once; none = a ledger of this session's own.
    std::shared_ptr<OriginLedger> origins;
    /// The type name of a local channel ("" for none): offered with each export and checked
    /// against each offer's (protocol 2). None = no channel has a type.
    std::function<std::string(std::string_view)> channel_type;
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
    /// Loss by cause (docs/gateway.md, "Loss by cause"): import, what the local subscribers
    /// were told was lost (protocol 2: by the origin's numbers; 1: this hop's); export, what
    /// the export's own subscriber lost.
    std::uint64_t lost_link_down{0};  ///< import: found by a stream's first frame on a link
    std::uint64_t lost_congestion{0}; ///< export: overrun here; import: skipped by the peer
    std::uint64_t lost_upstream{0};   ///< import: lost before the peer, where it came from
    std::uint64_t duplicates{0};      ///< import: dropped as delivered already (another path)
    std::uint64_t looped{0};          ///< import: dropped as this daemon's own (a loop)
    /// Export: what it does without credits, as applied to its channel (a queue's is
    /// drop_oldest: it takes no work), and its priority on the link.
    CongestionPolicy on_congestion{CongestionPolicy::drop_oldest};
    std::uint8_t priority{kDefaultPriority};
};

struct SessionStats {
    std::vector<StreamStats> streams;
    std::uint64_t rtt_ns{0}; ///< the last ping's round trip; 0 before the first
    /// Channels refused for their type, by either end, on this link.
    std::uint64_t type_refusals{0};
    std::uint64_t fragments_sent{0};     ///< of messages too large for one data frame
    std::uint64_t fragments_received{0}; ///< the same, from the peer
    /// Writers waiting for the link, per priority (the last level: the session's own frames),
    /// now and at most since the link began.
    WriteTurns::Waiting writers;
};

class BridgeSession {
public:
    /// A session over a link whose handshake ended with `params`. `reader` holds any bytes
    /// that followed the handshake. `local` is the connection to the local daemon; it and
    /// `link` must outlive the session.
    BridgeSession(SessionSettings settings, LinkParams params, Client& local, LinkStream& link,
                  FrameReader reader);
    /// The same over a plain link's descriptors, which are not owned.
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
