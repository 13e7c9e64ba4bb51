// A bridge link's streams after the handshake; the design is in bridge_session.hpp.
//
// Locks, in the order they may nest: Impl::streams_mu_ (the stream tables) before a
// stream's own mu, and write_mu_ (the link's write side) is only ever taken alone or last.
// An importing stream's Publisher is used by one thread at a time, handed over under the
// stream's mu: the link reader publishes while the stream's queue is empty and its thread is
// not draining it; once something is queued, only the stream's thread publishes until it has
// caught up.
// The local Client is used by the run() thread only (it is one-thread-at-a-time): every
// channel is opened there, and a stream's thread uses only its own endpoint.
#include "gateway/bridge_session.hpp"

#include "gateway/fragments.hpp"
#include "gateway/link_io.hpp"
#include "gateway/write_turns.hpp"
#include "protocol/field_io.hpp"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <random>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace shmbus::gateway {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Fixed fields of the larger data frame, origin_data: stream, first sequence, count, origin.
constexpr std::size_t kDataFixedBytes = 16 + 24;
constexpr auto kEndpointPoll = 50ms; // how soon a stream's thread notices a stop
/// How often a draining stream without credits takes what its ring holds: the longest a
/// local publisher of a block channel waits for it when the ring is full.
constexpr auto kDrainEvery = 1ms;
/// Messages a draining stream takes from its ring at once.
constexpr std::size_t kDrainBatch = 64;
constexpr auto kGoodbyeDeadline = 1s;
/// How long credits held back (fewer than a quarter of the window) wait for a quiet link
/// before they go back anyway.
constexpr auto kCreditLinger = 5ms;
/// A read of at least this much says the peer is streaming: read again before polling.
constexpr std::size_t kStreamingRead = std::size_t{16} * 1024;
/// A fragment with at least this many bytes still to come is read straight into its
/// reassembly buffer rather than through the frame reader's (one copy fewer per byte; below
/// this, the extra read a diversion costs is not worth it).
constexpr std::size_t kDivertAtLeast = std::size_t{16} * 1024;
/// An offer's next_sequence when the stream carries the channel's positions (+ 1): the
/// first data frame says where it starts.
constexpr std::uint64_t kChannelPositions = 0;
/// Bytes of a message in each fragment (protocol 2), less if the peer's data frames are
/// smaller: large enough that a fragment costs little beyond its copy, small enough that a
/// stream waiting behind one waits for about 100 us of a 2.5 GB/s link.
constexpr std::size_t kFragmentBytes = std::size_t{256} * 1024;

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count());
}

/// A random incarnation, never 0.
std::uint64_t draw_incarnation() {
    std::random_device entropy;
    std::uint64_t v = 0;
    while (v == 0) {
        v = (std::uint64_t{entropy()} << 32) | entropy();
    }
    return v;
}

/// Messages of `slot_size` that fit one data frame of `max_body`, at least 1.
std::size_t per_frame(std::uint64_t slot_size, std::uint32_t max_body) {
    const std::uint64_t each = slot_size + 4;
    const std::uint64_t room = max_body > kDataFixedBytes ? max_body - kDataFixedBytes : 0;
    return static_cast<std::size_t>(
        std::clamp<std::uint64_t>(room / each, 1, kMaxMessagesPerFrame));
}

} // namespace

struct ExportStream {
    std::uint32_t id{0};
    std::string wire_name;
    std::string local_name;
    std::optional<Subscriber> subscriber;
    bool copy_out{false};  ///< drop policy: copy, release, then send (never send a torn slot)
    bool positions{false}; ///< broadcast: sequences are the channel's positions + 1
    bool keep{false};      ///< on_link_down: block (broadcast only)
    /// on_congestion: block, or keep (broadcast only): waits for credits at most
    /// block_timeout, then ends the link. Else a stream waits as long as it takes.
    bool blocks{false};
    /// drop_oldest on a block channel, or keep_latest (broadcast only): while the peer grants
    /// nothing, the stream keeps up with the ring by copying what it cannot send into `held`,
    /// at most `held_most` messages, letting go of the oldest (counted lost).
    bool drains{false};
    std::size_t held_most{0};
    std::deque<SentMessage> held; // the stream's thread only: to go before the ring's next
    CongestionPolicy on_congestion{CongestionPolicy::drop_oldest}; ///< its rule's, as applied
    std::uint8_t priority{kDefaultPriority};                       ///< its rule's
    std::chrono::milliseconds block_timeout{kDefaultBlockTimeout}; ///< keep, blocks: its rule's
    std::uint64_t slot_size{0};
    std::uint64_t creation_id{0};            ///< the local channel's
    std::shared_ptr<ChannelOrigins> origins; ///< where its imported messages came from

    std::mutex mu;
    std::condition_variable cv;
    std::uint32_t credits{0};
    bool closed{false};
    bool granted{false};
    std::uint64_t resume{0};             ///< the grant's resume_sequence
    std::deque<SentMessage> unconfirmed; ///< keep: sent, credit not yet back
    std::uint64_t credit_carry{0};       ///< keep: credits back for part of unconfirmed's front
    bool gave_up{false};                 ///< keep: no credit for block_timeout; not kept

    std::uint64_t next_sequence{1}; // the stream's thread only
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> lost{0};
    std::thread thread;
};

/// A run of messages to send in one data frame: `count` messages from index `at` of a batch,
/// all of one origin (protocol 2).
struct Segment {
    std::size_t at{0};
    std::size_t count{0};
    MessageOrigin origin;
};

/// Part of a data frame that could not be published at once (the local ring was full, or
/// earlier frames still wait): a gap lost upstream, then messages, copied out of the frame in
/// one piece for the stream's thread.
struct ImportItem {
    std::uint64_t gap{0};                ///< messages lost upstream just before `first`; 0 = none
    std::uint64_t first{0};              ///< the sequence of the first message
    std::uint32_t count{0};              ///< messages (0: a gap alone)
    MessageBuffer body;                  ///< as in the frame: count u32 lengths, then the messages
    std::optional<MessageOrigin> origin; ///< of the first message, if the frame had one
    /// `body` is a reassembly buffer: given back to the stream once published (keep_spare()).
    bool reassembled{false};

    /// The messages, as the frame they came in showed them.
    [[nodiscard]] DataView view(std::uint32_t stream) const noexcept {
        const std::span<const std::byte> all{body};
        return DataView{stream,
                        first,
                        count,
                        all.first(std::size_t{4} * count),
                        all.subspan(std::size_t{4} * count),
                        origin};
    }
};

/// An origin_data frame the dedup marks admitted: its hop numbers, its origin, the messages
/// skipped at its start and the origin's gap before them. On a queue channel, one run of
/// messages admit_once() took (`once`; no skip, no gap).
struct PendingFrame {
    std::uint64_t hop_first{0};
    std::uint64_t count{0};
    MessageOrigin origin;
    std::uint64_t skip{0};
    std::uint64_t gap{0};
    bool once{false};
};

struct ImportStream {
    std::uint32_t id{0}; ///< the peer's stream id
    std::string wire_name;
    std::string local_name;
    /// Used by one thread at a time: the link reader while `queue` is empty and `draining`
    /// false (it publishes what arrives straight from the frame), else the stream's thread.
    std::optional<Publisher> publisher;
    /// The local channel has no writer but this stream (max_publishers 1): a message in
    /// fragments may hold a slot reserved while its bytes arrive (docs/gateway.md).
    bool in_place_ok{false};
    /// The run() thread only: the message in fragments, admitted at its start; and the slot
    /// it is reassembled in, if it has one (reserved while the reader held the publisher,
    /// which it keeps until the end: nothing else of the stream is queued meanwhile).
    std::optional<Admission> started;
    std::optional<WriteBatch> slot;
    std::uint64_t creation_id{0}; ///< of the peer's channel
    std::uint64_t slot_size{0};   ///< the offer's: no message of the stream is longer
    bool positions{false};        ///< the offer said the stream carries channel positions
    bool queue_channel{false};    ///< a queue channel: admitted by admit_once()
    std::uint64_t expected{0};    // the run() thread only: next sequence due; 0 = any
    /// No frame has arrived yet on this link: a gap before the first is what a cut cost.
    bool first_frame{true};                  // the run() thread only
    std::uint64_t local_creation_id{0};      ///< of the local channel
    std::shared_ptr<ChannelOrigins> origins; ///< the local channel's (dedup, runs)
    /// Frames admitted (origin_data) and not yet wholly published, oldest first: what the
    /// dedup marks must give back if the link ends first. The run() thread only.
    std::deque<PendingFrame> pending;
    /// The first sequence not yet published locally (written by whoever publishes).
    std::atomic<std::uint64_t> published_next{0};
    std::atomic<bool> gap_refused_logged{false};

    std::mutex mu;
    std::condition_variable cv;
    std::deque<ImportItem> queue; ///< in sequence order, for the stream's thread
    bool draining{false};         ///< the stream's thread holds the publisher
    bool credit_due{false};       ///< the stream's thread is to give `unreturned` back
    std::uint32_t outstanding{0}; ///< credits the exporter holds (granted, not yet used)
    std::uint32_t unreturned{0};  ///< published locally, credit not yet returned
    /// Fragments buffered while the stream was behind (queue not empty): their credits go
    /// back once it has caught up, so that what waits here stays within the window.
    std::uint32_t withheld{0};
    bool closed{false};
    /// The buffer of the last message that came in fragments, once published: the next
    /// one's start reassembles into it (fragments.hpp). At most 4 + slot_size bytes; freed
    /// when the stream ends.
    MessageBuffer spare;

    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> lost{0};
    std::atomic<std::uint64_t> lost_link_down{0};
    std::atomic<std::uint64_t> lost_congestion{0};
    std::atomic<std::uint64_t> lost_upstream{0};
    std::atomic<std::uint64_t> duplicates{0};
    std::atomic<std::uint64_t> looped{0};
    std::thread thread;
};

struct BridgeSession::Impl {
    Impl(SessionSettings s, LinkParams p, Client& c, std::unique_ptr<LinkStream> owned,
         LinkStream& l, FrameReader r)
        : settings{std::move(s)}, params{std::move(p)}, local{c},
          owned_link{std::move(owned)}, link{l}, reader{std::move(r)} {}

    SessionSettings settings;
    LinkParams params;
    Client& local;
    std::unique_ptr<LinkStream> owned_link; ///< a plain link's stream, made here; else none
    LinkStream& link;
    FrameReader reader;
    UniqueFd wake{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};

    /// By priority, then first come, first served: one frame per turn (write_turns.hpp).
    WriteTurns write_mu;
    std::atomic<bool> stopping{false};
    std::mutex failure_mu;
    std::optional<Error> failure;
    bool failure_from_peer{false};

    std::mutex streams_mu;
    std::map<std::uint32_t, std::unique_ptr<ExportStream>> exports;
    std::map<std::uint32_t, std::unique_ptr<ImportStream>> imports;
    std::uint32_t next_stream{1};
    std::uint32_t next_request{1};
    std::map<std::uint32_t, std::string> wants; // request -> pattern

    std::atomic<std::uint64_t> rtt_ns{0};
    std::atomic<std::uint64_t> type_refusals{0};
    /// Protocol 2: data frames carry origins, offers types.
    const bool with_origins{params.version >= kOriginVersion};
    /// The origin of this daemon's own messages: settings.incarnation, or, where the caller
    /// has none, one drawn for this session (its messages then look new to every peer).
    const std::uint64_t incarnation{settings.incarnation != 0 ? settings.incarnation
                                                              : draw_incarnation()};
    const std::shared_ptr<OriginLedger> ledger{settings.origins ? settings.origins
                                                                : std::make_shared<OriginLedger>()};
    /// The runs of new messages admit_frame() found in the last frame of a queue stream:
    /// (index, count), in order (the run() thread only).
    std::vector<std::pair<std::uint32_t, std::uint32_t>> once_runs;
    std::atomic<std::int64_t> last_sent{Clock::now().time_since_epoch().count()};
    /// Credits an importing stream returns together: a quarter of the window.
    const std::uint32_t return_at{std::max<std::uint32_t>(1, settings.window / 4)};
    /// Some importing stream holds credits back (published(), return_idle_credits()).
    std::atomic<bool> credits_pending{false};
    /// Messages in fragments from the peer (the run() thread only).
    Reassembler reassembler{params.max_message_bytes};
    /// A fragment whose bytes the reader is diverting into `reassembler` (divert_fragment()).
    struct DivertedFragment {
        FragmentView view;
        ImportStream* stream{nullptr};
    };
    std::optional<DivertedFragment> diverted;
    std::atomic<std::uint64_t> fragments_sent{0};
    std::atomic<std::uint64_t> fragments_received{0};

    void log(const std::string& line) const {
        if (settings.log) {
            settings.log("bridge '" + settings.bridge + "': " + line);
        }
    }

    /// Records why the link ends (the first reason wins) and wakes everything.
    void fail(Error e, bool from_peer = false) {
        {
            std::lock_guard lock{failure_mu};
            if (!failure) {
                failure = std::move(e);
                failure_from_peer = from_peer;
            }
        }
        stopping.store(true);
        const std::uint64_t one = 1;
        (void)!::write(wake.get(), &one, sizeof one);
        std::lock_guard lock{streams_mu};
        for (auto& [id, s] : exports) {
            std::lock_guard sl{s->mu};
            s->cv.notify_all();
        }
        for (auto& [id, s] : imports) {
            std::lock_guard sl{s->mu};
            s->cv.notify_all();
        }
    }

    void mark_sent() {
        last_sent.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    }

    void send(const Frame& frame) {
        auto bytes = encode(frame);
        if (!bytes) {
            fail(bytes.take_error());
            return;
        }
        Result<void> w;
        {
            const WriteTurns::Turn turn{write_mu, WriteTurns::kControlPriority};
            w = link.write_all(bytes.value(), Clock::now() + settings.dead_after_silence);
        }
        if (!w) {
            fail(w.take_error());
            return;
        }
        mark_sent();
    }

    /// Writes one data frame of export `s` gathered from `iov` in its turn (WriteTurns, at
    /// its priority). False, with the link failed, if the write failed.
    bool write_frame(const ExportStream& s, std::vector<iovec>& iov) {
        Result<void> w;
        {
            const WriteTurns::Turn turn{write_mu, s.priority};
            w = link.write_gather(iov, Clock::now() + settings.dead_after_silence);
        }
        if (!w) {
            fail(w.take_error());
            return false;
        }
        mark_sent();
        return true;
    }

    // ---- exporting ----

    /// How a stream's endpoint waits: asleep on the channel's futex at once, never spinning,
    /// so that a streaming bridge leaves the CPU to the local publishers and subscribers it
    /// waits for (on two cores a spinning waiter takes the core its peer needs).
    static EndpointOptions stream_endpoint() {
        EndpointOptions options;
        options.wait = WaitMode::blocking;
        return options;
    }

    /// The subscriber a `block` export kept over the last link's end, and what it sent that
    /// the peer has not confirmed; nothing if it has none.
    std::optional<KeptExport> take_kept(const std::string& local_name) {
        if (!settings.memory) {
            return std::nullopt;
        }
        std::lock_guard lock{settings.memory->mu};
        auto it = settings.memory->exports.find(local_name);
        if (it == settings.memory->exports.end()) {
            return std::nullopt;
        }
        std::optional<KeptExport> kept{std::move(it->second)};
        settings.memory->exports.erase(it);
        return kept;
    }

    /// Opens `local_name` (or takes back the subscriber a `block` export kept) and offers it
    /// to the peer as `wire_name`, under export `rule` (the run() thread).
    void offer(const std::string& local_name, const std::string& wire_name, std::uint32_t request,
               const ChannelRule& rule) {
        const LinkDownPolicy on_link_down = rule.on_link_down;
        const EndpointOptions options = stream_endpoint();
        std::optional<KeptExport> kept = take_kept(local_name);
        Result<Subscriber> sub = kept ? Result<Subscriber>{std::move(kept->subscriber)}
                                      : local.open_subscriber(local_name, options);
        if (!sub) {
            log("cannot export channel '" + local_name + "': " + sub.error().message());
            if (request != 0) {
                send(Refuse{RefusedKind::want, request, sub.error().code,
                            "channel '" + local_name +
                                "' cannot be read here: " + sub.error().message()});
            }
            return;
        }
        auto s = std::make_unique<ExportStream>();
        const ChannelInfo& info = sub.value().info();
        s->wire_name = wire_name;
        s->local_name = local_name;
        s->copy_out = info.kind == ChannelKind::broadcast && info.overflow == Overflow::drop;
        s->positions = info.kind == ChannelKind::broadcast;
        s->keep = s->positions && on_link_down == LinkDownPolicy::block;
        s->block_timeout = rule.block_timeout;
        s->priority = std::min(rule.priority, kMaxPriority);
        apply_congestion(*s, rule, info);
        if (kept) {
            s->unconfirmed = std::move(kept->unconfirmed);
            log("channel '" + local_name + "' resumes from where the last link left it (" +
                std::to_string(s->unconfirmed.size()) + " messages to send again if the peer " +
                "lacks them)");
        }
        if (!s->positions && on_link_down == LinkDownPolicy::block) {
            log("channel '" + local_name +
                "' is a queue: on_link_down: block applies to broadcast channels; it is "
                "exported as drop");
        }
        s->slot_size = info.slot_size;
        s->creation_id = info.creation_id;
        s->origins = ledger->channel(local_name, info.creation_id);
        Offer o{0,
                request,
                wire_name,
                info.kind,
                info.overflow,
                info.slot_size,
                info.slot_count,
                info.creation_id,
                s->positions ? kChannelPositions : s->next_sequence,
                std::nullopt};
        if (with_origins) {
            o.type = type_of_channel(local_name);
        }
        s->subscriber.emplace(std::move(sub.value()));
        ExportStream* raw = s.get();
        {
            std::lock_guard lock{streams_mu};
            s->id = next_stream++;
            o.stream = s->id;
            exports.emplace(s->id, std::move(s));
        }
        raw->thread = std::thread{[this, raw] { run_export(*raw); }};
        send(o);
    }

    /// What export `s` does without credits, from its rule and its channel (`info`):
    /// docs/gateway.md, "Congestion". A queue export takes no work without credits, whatever
    /// the rule says, so that the channel's other consumers get it.
    void apply_congestion(ExportStream& s, const ChannelRule& rule, const ChannelInfo& info) {
        s.on_congestion = s.keep ? CongestionPolicy::block : rule.on_congestion;
        if (!s.positions) {
            if (s.on_congestion == CongestionPolicy::keep_latest) {
                log("channel '" + s.local_name +
                    "' is a queue: on_congestion: keep_latest applies to broadcast channels (a "
                    "queue's messages are work, never conflated); it is exported as drop_oldest");
            }
            s.on_congestion = CongestionPolicy::drop_oldest;
            return;
        }
        switch (s.on_congestion) {
        case CongestionPolicy::block:
            s.blocks = true;
            break;
        case CongestionPolicy::keep_latest:
            s.drains = true;
            s.held_most = 1;
            break;
        case CongestionPolicy::drop_oldest:
            // On a drop channel the ring's own overwrite lets go of the oldest.
            s.drains = info.overflow == Overflow::block;
            s.held_most = static_cast<std::size_t>(info.slot_count);
            break;
        }
    }

    /// Takes what the ring of draining stream `s` holds into its `held` copies, letting go
    /// of the oldest beyond held_most; each one let go, or lost in the ring, is counted and
    /// becomes a gap in the stream's numbers. The stream's thread, without credits.
    void drain_ring(ExportStream& s) {
        for (;;) {
            auto batch = s.subscriber->try_receive(kDrainBatch);
            if (!batch) {
                if (batch.error().code == Errc::corrupted) {
                    continue; // skipped and counted by the library
                }
                return; // would_block: the ring is empty
            }
            ReadBatch& b = batch.value();
            s.lost += b.lost_before();
            const std::size_t n = b.size();
            for (std::size_t i = 0; i < n; ++i) {
                const auto m = b.message(i);
                s.held.push_back(SentMessage{m.sequence + 1, {m.data.begin(), m.data.end()}});
            }
            if (auto r = s.subscriber->release(b); !r) {
                // A drop channel overwrote the batch while it was copied: never sent.
                s.held.erase(s.held.end() - static_cast<std::ptrdiff_t>(n), s.held.end());
                s.lost += n;
            }
            while (s.held.size() > s.held_most) {
                s.held.pop_front();
                s.lost += 1;
            }
        }
    }

    /// Logs, counts and fails the link of blocking stream `s`, which had no credit for its
    /// block_timeout.
    void give_up_blocking(ExportStream& s) {
        const std::string why =
            "channel '" + s.local_name + "' (" +
            (s.keep ? "on_link_down: block" : "on_congestion: block") +
            "): the peer gave no credit for block_timeout (" +
            std::to_string(s.block_timeout.count()) +
            " ms); the link is dropped so that local publishers are not held up";
        log(why);
        if (settings.memory) {
            std::lock_guard m{settings.memory->mu};
            ++settings.memory->block_timeouts;
        }
        fail(make_error(Errc::timed_out, why));
    }

    /// Takes the credits of a frame about to be written (`count` messages or one fragment).
    /// Before the write, not after: once written, the frame's messages may reach the peer's
    /// subscribers before the write returns, and a count taken only after it would meanwhile
    /// show the window whole (status(): every message sent confirmed) while the frame's
    /// copies still wait for their credits.
    static void take_credits_for(ExportStream& s, std::size_t count) {
        std::lock_guard lock{s.mu};
        s.credits -= static_cast<std::uint32_t>(count);
    }

    /// Waits for credits; how many may go in the next frame (at most `most`), or 0 when the
    /// stream ends. A blocking stream waits at most block_timeout, then ends the link; a
    /// draining one takes its ring into `held` meanwhile (docs/gateway.md, "Congestion").
    std::size_t wait_for_credits(ExportStream& s, std::size_t most) {
        std::unique_lock lock{s.mu};
        auto ready = [&] { return s.credits > 0 || s.closed || stopping.load(); };
        if (s.drains) {
            bool congested = false;
            while (!s.cv.wait_for(lock, kDrainEvery, ready)) {
                lock.unlock();
                drain_ring(s);
                congested = true;
                lock.lock();
            }
            if (congested && s.on_congestion == CongestionPolicy::keep_latest) {
                // Only the newest as credits return: what came since the last drain too.
                lock.unlock();
                drain_ring(s);
                lock.lock();
            }
        } else if (!s.blocks) {
            s.cv.wait(lock, ready);
        } else if (!s.cv.wait_for(lock, s.block_timeout, ready)) {
            s.gave_up = s.keep;
            lock.unlock();
            give_up_blocking(s);
            return 0;
        }
        if (s.closed || stopping.load()) {
            return 0;
        }
        return std::min<std::size_t>(s.credits, most);
    }

    /// The type name of local channel `name`, "" if it has none.
    std::string type_of_channel(std::string_view name) const {
        return settings.channel_type ? settings.channel_type(name) : std::string{};
    }

    /// Cuts `n` messages of hop sequences first_hop.. into the runs that go in one data frame
    /// each: all of them on a protocol 1 link; on protocol 2, runs of one origin with
    /// consecutive origin sequences, leaving out (and counting as lost) any message whose
    /// origin the ledger no longer knows. `local(i)` is message i's sequence in the local
    /// channel. A broadcast channel no import ever published into is one run, its origin this
    /// daemon; a queue's, runs of consecutive local sequences (its other consumers take the
    /// rest), numbered by them, so that every export of the channel gives a message the same
    /// origin sequence.
    template <typename LocalSequence>
    void plan_segments(ExportStream& s, std::uint64_t first_hop, std::size_t n,
                       LocalSequence&& local, std::vector<Segment>& out) {
        out.clear();
        const MessageOrigin own{incarnation, s.creation_id, first_hop};
        const bool imports = with_origins && s.origins->has_imports();
        if (!with_origins || (s.positions && !imports)) {
            out.push_back(Segment{0, n, own}); // a broadcast stream's hop numbers are positions + 1
            return;
        }
        for (std::size_t i = 0; i < n; ++i) {
            LocalOrigin found;
            if (imports) {
                found = s.origins->find(local(i));
            } else {
                found.origin.first_sequence = local(i) + 1; // as find() says with no imports
            }
            if (found.kind == LocalOrigin::Kind::unknown) {
                s.lost += 1;
                continue;
            }
            // A local message's number leaves out the imported ones (origin.hpp).
            MessageOrigin o =
                found.kind == LocalOrigin::Kind::imported
                    ? found.origin
                    : MessageOrigin{own.daemon, own.channel, found.origin.first_sequence};
            if (!out.empty()) {
                Segment& last = out.back();
                if (last.at + last.count == i && last.origin.daemon == o.daemon &&
                    last.origin.channel == o.channel &&
                    last.origin.first_sequence + last.count == o.first_sequence) {
                    ++last.count;
                    continue;
                }
            }
            out.push_back(Segment{i, 1, o});
        }
    }

    /// Writes messages `spans` (hop sequences from `first_hop`) as one data frame per
    /// segment, and takes their credits. False if the link failed.
    bool send_segments(ExportStream& s, std::uint64_t first_hop,
                       std::span<const std::span<const std::byte>> spans,
                       std::span<const Segment> segments, std::vector<std::uint32_t>& lengths,
                       std::vector<std::byte>& prefix, std::vector<iovec>& iov) {
        for (const Segment& seg : segments) {
            lengths.clear();
            iov.clear();
            std::uint64_t total = 0;
            for (std::size_t i = seg.at; i < seg.at + seg.count; ++i) {
                lengths.push_back(static_cast<std::uint32_t>(spans[i].size()));
                total += spans[i].size();
            }
            const std::uint64_t first = first_hop + seg.at;
            auto p = with_origins
                         ? encode_origin_data_prefix(s.id, first, seg.origin, lengths,
                                                     params.send_data_body, prefix)
                         : encode_data_prefix(s.id, first, lengths, params.send_data_body, prefix);
            if (!p) {
                fail(p.take_error());
                return false;
            }
            iov.push_back({prefix.data(), prefix.size()});
            for (std::size_t i = seg.at; i < seg.at + seg.count; ++i) {
                iov.push_back({const_cast<std::byte*>(spans[i].data()), spans[i].size()});
            }
            take_credits_for(s, seg.count);
            if (!write_frame(s, iov)) {
                return false;
            }
            s.messages += seg.count;
            s.bytes += total;
        }
        return true;
    }

    /// Writes copies (consecutive sequences from `first`). False if the link failed.
    bool send_copies(ExportStream& s, std::uint64_t first, std::span<const SentMessage> copies,
                     std::vector<std::uint32_t>& lengths, std::vector<std::byte>& prefix,
                     std::vector<iovec>& iov) {
        std::vector<std::span<const std::byte>> spans;
        spans.reserve(copies.size());
        for (const auto& c : copies) {
            spans.emplace_back(c.bytes);
        }
        std::vector<Segment> segments;
        // Copies are kept for broadcast streams only, whose sequences are positions + 1.
        plan_segments(
            s, first, copies.size(), [&](std::size_t i) { return first + i - 1; }, segments);
        return send_segments(s, first, spans, segments, lengths, prefix, iov);
    }

    /// A `block` stream's first duty on a new link: send again what the peer has not
    /// published, from the grant's resume_sequence (all of it if the peer remembers nothing).
    /// False if the stream ends.
    bool resend_unconfirmed(ExportStream& s, std::size_t most, std::vector<std::uint32_t>& lengths,
                            std::vector<std::byte>& prefix, std::vector<iovec>& iov) {
        std::vector<SentMessage> again;
        std::vector<Segment> segments;
        {
            std::unique_lock lock{s.mu};
            s.cv.wait(lock, [&] { return s.granted || s.closed || stopping.load(); });
            while (s.resume != 0 && !s.unconfirmed.empty() &&
                   s.unconfirmed.front().sequence < s.resume) {
                s.unconfirmed.pop_front(); // published by the peer; its credit was lost
            }
            again.assign(s.unconfirmed.begin(), s.unconfirmed.end());
        }
        std::size_t at = 0;
        while (at < again.size()) {
            if (!fits_one_frame(again[at].bytes.size())) {
                // Copies are kept for broadcast streams only, whose sequences are positions + 1.
                const std::uint64_t hop = again[at].sequence;
                plan_segments(
                    s, hop, 1, [&](std::size_t) { return hop - 1; }, segments);
                if (segments.empty()) {
                    ++at; // its origin is no longer known: counted lost, never sent
                    continue;
                }
                if (!send_fragments(s, hop, again[at].bytes, segments.front().origin, prefix,
                                    iov)) {
                    return false;
                }
                s.messages += 1;
                s.bytes += again[at].bytes.size();
                ++at;
                continue;
            }
            const std::size_t allowed = wait_for_credits(s, most);
            if (allowed == 0) {
                return false;
            }
            std::size_t n = 1; // a run of consecutive sequences, at most `allowed`
            while (at + n < again.size() && n < allowed &&
                   again[at + n].sequence == again[at].sequence + n &&
                   fits_one_frame(again[at + n].bytes.size())) {
                ++n;
            }
            if (!send_copies(s, again[at].sequence, std::span{again}.subspan(at, n), lengths,
                             prefix, iov)) {
                return false;
            }
            at += n;
        }
        return true;
    }

    /// Sends what draining stream `s` took into `held` while it had no credits, oldest first,
    /// in runs of consecutive sequences (a gap between two is what it let go, which the peer
    /// counts). False if the stream or the link ended.
    bool send_held(ExportStream& s, std::size_t most, std::vector<std::uint32_t>& lengths,
                   std::vector<std::byte>& prefix, std::vector<iovec>& iov) {
        std::vector<SentMessage> run;
        std::vector<Segment> segments;
        while (!s.held.empty()) {
            if (!fits_one_frame(s.held.front().bytes.size())) {
                const SentMessage m = std::move(s.held.front());
                s.held.pop_front();
                // Held copies are of broadcast streams only, whose sequences are positions + 1.
                plan_segments(
                    s, m.sequence, 1, [&](std::size_t) { return m.sequence - 1; }, segments);
                s.next_sequence = m.sequence + 1;
                if (segments.empty()) {
                    continue; // its origin is no longer known: counted lost, never sent
                }
                if (!send_fragments(s, m.sequence, m.bytes, segments.front().origin, prefix, iov)) {
                    return false;
                }
                s.messages += 1;
                s.bytes += m.bytes.size();
                continue;
            }
            const std::size_t allowed = wait_for_credits(s, most);
            if (allowed == 0) {
                return false;
            }
            if (!fits_one_frame(s.held.front().bytes.size())) {
                continue; // the front changed while waiting
            }
            std::size_t n = 1; // a run of consecutive sequences, at most `allowed`
            while (n < s.held.size() && n < allowed &&
                   s.held[n].sequence == s.held.front().sequence + n &&
                   fits_one_frame(s.held[n].bytes.size())) {
                ++n;
            }
            const auto end = s.held.begin() + static_cast<std::ptrdiff_t>(n);
            run.assign(std::make_move_iterator(s.held.begin()), std::make_move_iterator(end));
            s.held.erase(s.held.begin(), end);
            s.next_sequence = run.back().sequence + 1;
            if (!send_copies(s, run.front().sequence, run, lengths, prefix, iov)) {
                return false;
            }
        }
        return true;
    }

    /// Keeps copies of the batch just copied out (`staging`, `lengths`) until the peer
    /// confirms them.
    void keep_copies(ExportStream& s, const std::vector<std::byte>& staging,
                     const std::vector<std::uint32_t>& lengths) {
        std::lock_guard lock{s.mu};
        std::size_t at = 0;
        for (std::size_t i = 0; i < lengths.size(); ++i) {
            const auto* from = staging.data() + at;
            s.unconfirmed.push_back(SentMessage{s.next_sequence + i, {from, from + lengths[i]}});
            at += lengths[i];
        }
    }

    void run_export(ExportStream& s) {
        const std::size_t most = per_frame(s.slot_size, params.send_data_body);
        std::vector<std::uint32_t> lengths;
        std::vector<std::byte> prefix;
        std::vector<std::byte> staging;
        std::vector<iovec> iov;
        std::vector<std::span<const std::byte>> spans;
        std::vector<Segment> segments;
        if (s.keep && !resend_unconfirmed(s, most, lengths, prefix, iov)) {
            return;
        }
        while (!stopping.load()) {
            if (!s.held.empty()) {
                if (!send_held(s, most, lengths, prefix, iov)) {
                    return;
                }
                continue;
            }
            const std::size_t allowed = wait_for_credits(s, most);
            if (allowed == 0) {
                return;
            }
            if (!s.held.empty()) {
                continue; // taken from the ring while waiting: older, so they go first
            }
            auto batch = s.subscriber->receive(allowed, kEndpointPoll);
            if (!batch) {
                if (batch.error().code == Errc::would_block ||
                    batch.error().code == Errc::timed_out) {
                    continue;
                }
                if (batch.error().code == Errc::corrupted) {
                    continue; // skipped and counted by the library; the next one may be fine
                }
                log("exporting '" + s.local_name + "' stopped: " + batch.error().message());
                return;
            }
            ReadBatch& b = batch.value();
            if (b.lost_before() > 0) {
                s.next_sequence += b.lost_before();
                s.lost += b.lost_before();
            }
            if (s.positions) {
                // The channel's own numbering: every position skipped (lost, abandoned,
                // discarded as torn, published while no link was up) is a gap the importer
                // counts.
                s.next_sequence = b.message(0).sequence + 1;
            }
            const std::size_t n = b.size();
            lengths.resize(n);
            std::uint64_t total = 0;
            for (std::size_t i = 0; i < n; ++i) {
                lengths[i] = static_cast<std::uint32_t>(b.message(i).data.size());
                total += lengths[i];
            }
            // Planned while the batch is held: a released batch shows no messages.
            plan_segments(
                s, s.next_sequence, n, [&](std::size_t i) { return b.message(i).sequence; },
                segments);
            spans.resize(n);
            if (n == 1 && !fits_one_frame(lengths[0])) {
                // Only a stream whose slots exceed a data frame receives one at a time.
                if (!export_in_fragments(s, b, segments, staging, prefix, iov)) {
                    return;
                }
                continue;
            }
            if (s.copy_out) {
                staging.resize(total);
                std::size_t at = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    const auto m = b.message(i).data;
                    std::memcpy(staging.data() + at, m.data(), m.size());
                    spans[i] = std::span<const std::byte>{staging.data() + at, m.size()};
                    at += m.size();
                }
                if (auto r = s.subscriber->release(b); !r) {
                    // Overwritten while copied: what was copied may be torn. Never send it;
                    // the numbers are skipped, so the peer counts the loss.
                    s.next_sequence += n;
                    s.lost += n;
                    continue;
                }
                if (s.keep) {
                    keep_copies(s, staging, lengths);
                }
            } else {
                for (std::size_t i = 0; i < n; ++i) {
                    spans[i] = b.message(i).data;
                }
                if (s.keep) {
                    std::lock_guard lock{s.mu};
                    for (std::size_t i = 0; i < n; ++i) {
                        const auto m = b.message(i).data;
                        s.unconfirmed.push_back(
                            SentMessage{s.next_sequence + i, {m.begin(), m.end()}});
                    }
                }
            }
            const bool sent =
                send_segments(s, s.next_sequence, spans, segments, lengths, prefix, iov);
            if (!s.copy_out) {
                // Block and queue channels: nothing overwrites a slot being read.
                if (auto r = s.subscriber->release(b); !r && sent) {
                    log("exporting '" + s.local_name + "' stopped: " + r.error().message());
                    fail(r.take_error());
                    return;
                }
            }
            if (!sent) {
                return;
            }
            s.next_sequence += n;
        }
    }

    // ---- importing ----

    /// The answer to an offer (the run() thread): a grant, or a refusal naming why.
    void on_offer(const Offer& o) {
        auto refuse = [&](Errc code, const std::string& reason) {
            log("refused channel '" + o.wire_name + "' from the peer: " + reason);
            send(Refuse{RefusedKind::offer, o.stream, code, reason});
        };
        bool known = false;
        {
            std::lock_guard lock{streams_mu};
            known = imports.count(o.stream) != 0;
        }
        if (known) {
            fail(make_error(Errc::protocol_error,
                            "offer: stream " + std::to_string(o.stream) + " offered twice"));
            return;
        }
        if (o.type.has_value() != with_origins) {
            fail(make_error(Errc::protocol_error,
                            "offer: field 'type' " +
                                std::string{with_origins ? "is missing, which protocol 2 needs"
                                                         : "is not part of protocol 1"}));
            return;
        }
        auto match = first_match(settings.imports, o.wire_name);
        if (!match) {
            refuse(Errc::permission_denied, "channel '" + o.wire_name + "' is not in bridge '" +
                                                settings.bridge + "''s import list");
            return;
        }
        if (auto why = type_conflict(o, match->mapped)) {
            type_refusals.fetch_add(1, std::memory_order_relaxed);
            refuse(Errc::version_mismatch, *why);
            return;
        }
        if (o.slot_size > params.max_message_bytes) {
            refuse(Errc::message_too_large,
                   "channel '" + o.wire_name + "': slot_size " + std::to_string(o.slot_size) +
                       " is above the link's largest message, " +
                       std::to_string(params.max_message_bytes) + " bytes");
            return;
        }
        if (params.version < kFragmentsVersion &&
            o.slot_size + 4 + kDataFixedBytes > params.receive_data_body) {
            refuse(Errc::message_too_large,
                   "channel '" + o.wire_name + "': slot_size " + std::to_string(o.slot_size) +
                       " does not fit this end's data frames of " +
                       std::to_string(params.receive_data_body) + " bytes");
            return;
        }
        const std::string& local_name = match->mapped;
        auto pub = local.open_publisher(local_name, stream_endpoint());
        if (!pub && pub.error().code == Errc::not_found) {
            ChannelSpec spec;
            spec.name = local_name;
            spec.kind = o.kind;
            spec.overflow = o.overflow;
            spec.slot_size = o.slot_size;
            spec.slot_count = o.slot_count;
            if (auto c = local.create_channel(spec); !c) {
                refuse(c.error().code,
                       "channel '" + local_name +
                           "' does not exist here and cannot be created: " + c.error().message());
                return;
            }
            pub = local.open_publisher(local_name, stream_endpoint());
        }
        if (!pub) {
            refuse(pub.error().code,
                   "channel '" + local_name + "' cannot be written here: " + pub.error().message());
            return;
        }
        const ChannelInfo& info = pub.value().info();
        if (info.kind != o.kind) {
            refuse(Errc::invalid_argument, "channel '" + local_name + "': kind differs: " +
                                               std::string{to_string(info.kind)} + " here, " +
                                               std::string{to_string(o.kind)} + " on the peer");
            return;
        }
        if (info.kind == ChannelKind::broadcast && info.overflow != o.overflow) {
            refuse(Errc::invalid_argument, "channel '" + local_name + "': overflow differs: " +
                                               std::string{to_string(info.overflow)} + " here, " +
                                               std::string{to_string(o.overflow)} + " on the peer");
            return;
        }
        if (info.slot_size < o.slot_size) {
            refuse(Errc::invalid_argument,
                   "channel '" + local_name + "': slot_size differs: " +
                       std::to_string(info.slot_size) + " here, " + std::to_string(o.slot_size) +
                       " on the peer (a message of the peer's size would not fit)");
            return;
        }
        auto s = std::make_unique<ImportStream>();
        s->id = o.stream;
        s->wire_name = o.wire_name;
        s->local_name = local_name;
        s->publisher.emplace(std::move(pub.value()));
        s->in_place_ok = s->publisher->info().max_publishers == 1;
        s->creation_id = o.creation_id;
        s->slot_size = o.slot_size;
        s->positions = o.next_sequence == kChannelPositions;
        s->queue_channel = info.kind == ChannelKind::queue;
        s->expected = o.next_sequence;
        if (s->positions) {
            s->expected = resume_point(o);
        }
        s->local_creation_id = info.creation_id;
        s->origins = ledger->channel(local_name, info.creation_id);
        s->published_next.store(s->expected);
        s->outstanding = settings.window;
        ImportStream* raw = s.get();
        {
            std::lock_guard lock{streams_mu};
            imports.emplace(o.stream, std::move(s));
        }
        raw->thread = std::thread{[this, raw] { run_import(*raw); }};
        log("importing channel '" + o.wire_name + "' as '" + local_name + "'");
        send(Grant{o.stream, settings.window, raw->expected});
    }

    /// Why channel `o` cannot be imported as `local_name` for its type: both ends name one and
    /// they differ. None if it can (either end has no type: nothing to compare).
    std::optional<std::string> type_conflict(const Offer& o, const std::string& local_name) const {
        const std::string here = type_of_channel(local_name);
        const std::string& there = o.type ? *o.type : std::string{};
        if (here.empty() || there.empty() || here == there) {
            return std::nullopt;
        }
        return "channel '" + local_name + "': type differs: '" + here + "' here, '" + there +
               "' on the peer";
    }

    /// Where an offered broadcast stream resumes: where the last link left it, if it is the
    /// same channel (the same creation id, whether or not the peer restarted), else anywhere
    /// (0: the first data frame sets it). The run() thread.
    std::uint64_t resume_point(const Offer& o) {
        if (!settings.memory) {
            return 0;
        }
        std::lock_guard lock{settings.memory->mu};
        auto it = settings.memory->imports.find(o.wire_name);
        if (it == settings.memory->imports.end()) {
            return 0;
        }
        const ImportMark& mark = it->second;
        if (mark.creation_id != o.creation_id) {
            log("channel '" + o.wire_name +
                "' was created anew on the peer: its messages are numbered afresh");
            return 0;
        }
        if (mark.peer_incarnation != params.peer_incarnation) {
            log("channel '" + o.wire_name +
                "' comes from a restarted peer; what it missed meanwhile is counted as lost");
        }
        return mark.next;
    }

    /// Hands each `block` export's subscriber and unconfirmed copies to the StreamMemory,
    /// where its cursor keeps holding the local publishers until the next link or
    /// block_timeout (the run() thread, once the streams' threads have ended).
    void keep_exports() {
        if (!settings.memory) {
            return;
        }
        std::scoped_lock lock{settings.memory->mu, streams_mu};
        for (auto& [id, s] : exports) {
            if (s->keep && !s->gave_up && !s->closed && s->subscriber) {
                settings.memory->exports.insert_or_assign(
                    s->local_name, KeptExport{std::move(*s->subscriber), std::move(s->unconfirmed),
                                              Clock::now(), s->block_timeout});
                s->subscriber.reset();
            }
        }
    }

    /// Hands the dedup marks back what `s` admitted but did not publish before its link ended
    /// (queued behind a full ring), so that the next link, or another path, delivers it or
    /// counts it lost, exactly as this hop's numbers do. Newest first, so that consecutive
    /// frames fold back one into the other. The run() thread, once the streams' threads have
    /// ended.
    static void give_back_unpublished(ImportStream& s) {
        const std::uint64_t published = s.published_next.load();
        for (auto it = s.pending.rbegin(); it != s.pending.rend(); ++it) {
            const PendingFrame& f = *it;
            const std::uint64_t end = f.origin.first_sequence + f.count;
            if (f.once) {
                // A queue's run: what was not published is not seen, whatever came after.
                const std::uint64_t done =
                    published > f.hop_first ? std::min(published - f.hop_first, f.count) : 0;
                s.origins->give_back_once(f.origin.channel, f.origin.first_sequence + done, end);
                continue;
            }
            std::uint64_t from = f.origin.first_sequence + f.skip;
            if (published < f.hop_first) {
                from -= std::min(f.gap, from); // the gap was not shown either
            } else if (published - f.hop_first >= f.count) {
                continue; // wholly published
            } else {
                from = std::max(from, f.origin.first_sequence + (published - f.hop_first));
            }
            s.origins->give_back(f.origin.channel, from, end);
        }
        s.pending.clear();
    }

    /// Remembers where each broadcast stream stood, for the next link (the run() thread, once
    /// the streams' threads have ended).
    void remember_imports() {
        if (!settings.memory) {
            return;
        }
        std::scoped_lock lock{settings.memory->mu, streams_mu};
        for (const auto& [id, s] : imports) {
            const std::uint64_t next = s->published_next.load();
            if (s->positions && next != 0) {
                settings.memory->imports[s->wire_name] =
                    ImportMark{s->creation_id, params.peer_incarnation, next};
            }
        }
    }

    /// How a publishing step ended.
    enum class Halt {
        none,   ///< everything asked for is published
        full,   ///< the local ring had no room (in the time allowed): the rest waits
        broken, ///< the stream cannot go on (logged; the stream is closed)
    };

    /// Publishes a gap of `count` messages lost upstream, in order with the messages, so
    /// that the local subscribers are told (Publisher::record_gap()); `next` is the sequence
    /// after it. `wait`: up to kEndpointPoll for room, else only if there is room now. True
    /// when done, which on a queue (no way to tell its consumers) means counted here only.
    bool publish_gap(ImportStream& s, std::uint64_t count, std::uint64_t next, bool wait,
                     Halt& halt) {
        auto g = s.publisher->record_gap(count, wait ? kEndpointPoll : 0ns);
        if (g) {
            s.published_next.store(next);
            return true;
        }
        if (g.error().code == Errc::timed_out || g.error().code == Errc::would_block) {
            halt = Halt::full;
            return false;
        }
        if (g.error().code == Errc::invalid_argument) {
            if (!s.gap_refused_logged.exchange(true)) {
                log("importing '" + s.wire_name + "': " + std::to_string(count) +
                    " messages lost upstream are counted here only: " + g.error().message());
            }
            s.published_next.store(next);
            return true;
        }
        log("importing '" + s.wire_name + "' stopped: " + g.error().message());
        halt = Halt::broken;
        return false;
    }

    /// Publishes the messages of `d` from index `from` on, in order, copying each straight
    /// from the frame into its reserved slot, as many per reservation as the ring has
    /// consecutive room for; `wait` as for publish_gap(). Returns how many it published, and
    /// why it stopped short in `halt`. Every length was checked against the stream's slot
    /// size when the frame arrived (on_data()), and the local slots are at least as large.
    std::size_t publish_run(ImportStream& s, const DataView& d, std::size_t from, bool wait,
                            Halt& halt) {
        const std::byte* at = d.payload().data();
        for (std::uint32_t i = 0; i < from; ++i) {
            at += d.length(i);
        }
        std::size_t i = from;
        while (i < d.count()) {
            const std::size_t want = d.count() - i;
            auto batch =
                wait ? s.publisher->reserve(want, kEndpointPoll) : s.publisher->try_reserve(want);
            if (!batch) {
                if (batch.error().code == Errc::timed_out ||
                    batch.error().code == Errc::would_block) {
                    halt = Halt::full;
                } else {
                    log("importing '" + s.wire_name + "' stopped: " + batch.error().message());
                    halt = Halt::broken;
                }
                break;
            }
            WriteBatch& w = batch.value();
            const std::size_t n = w.size(); // commit() empties the batch
            std::uint64_t bytes = 0;
            for (std::size_t k = 0; k < n; ++k) {
                const std::uint32_t length = d.length(static_cast<std::uint32_t>(i + k));
                if (length != 0) {
                    std::memcpy(w.data(k).data(), at, length);
                }
                w.set_length(k, length);
                at += length;
                bytes += length;
            }
            note_origins(s, d, i, w.sequence(0), n);
            if (auto c = s.publisher->commit(w); !c) {
                log("importing '" + s.wire_name + "' stopped: " + c.error().message());
                halt = Halt::broken;
                break;
            }
            i += n;
            s.published_next.store(d.first_sequence() + i);
            s.messages.fetch_add(n, std::memory_order_relaxed);
            s.bytes.fetch_add(bytes, std::memory_order_relaxed);
        }
        return i - from;
    }

    /// Notes in the channel's origins that local sequences local_first.. carry messages
    /// from..from + count - 1 of `d` (before they are committed, so that an exporter of the
    /// channel finds them). Their origin is the frame's; on a protocol 1 link, the peer's
    /// channel with this hop's numbers, which are its own positions there.
    void note_origins(ImportStream& s, const DataView& d, std::size_t from,
                      std::uint64_t local_first, std::size_t count) {
        MessageOrigin o;
        if (d.origin()) {
            o = *d.origin();
        } else if (s.positions && s.creation_id != 0) {
            o = MessageOrigin{params.peer_incarnation, s.creation_id, d.first_sequence()};
        } else {
            return;
        }
        o.first_sequence += from;
        s.origins->note(local_first, count, o);
    }

    /// Takes the credits of what `s` has published, to give back to the peer (under s.mu).
    static std::uint32_t take_credits(ImportStream& s) {
        const std::uint32_t give = std::exchange(s.unreturned, 0);
        s.outstanding += give;
        s.credit_due = false;
        return give;
    }

    /// Counts `n` messages published on `s` and gives their credits back to the peer when
    /// due: once a quarter of the window has gathered, or at once with `now` (the stream is
    /// held up by a full ring, so that the peer's window is exactly what waits here). The
    /// stream's thread sends them itself; the link reader (`reader`) leaves that to the
    /// stream's thread, so that it never waits on the link's write side: two ends each
    /// blocked writing to the other while neither reads would never move again. What stays
    /// is given back after kCreditLinger of quiet (return_idle_credits()).
    void published(ImportStream& s, std::size_t n, bool now, bool reader) {
        std::uint32_t give = 0;
        bool left = false;
        {
            std::lock_guard lock{s.mu};
            s.unreturned += static_cast<std::uint32_t>(n);
            if (s.unreturned > 0 && (now || s.unreturned >= return_at)) {
                if (reader) {
                    s.credit_due = true;
                    s.cv.notify_one();
                } else {
                    give = take_credits(s);
                }
            }
            left = s.unreturned > 0 && !s.credit_due;
        }
        if (left) {
            credits_pending.store(true, std::memory_order_relaxed); // the run() thread reads it
        }
        if (give > 0) {
            send(Credit{{{s.id, give}}});
        }
    }

    /// Has every credit held back given back (the run() thread, once the link has been quiet
    /// for kCreditLinger), by the streams' threads.
    void return_idle_credits() {
        credits_pending.store(false, std::memory_order_relaxed);
        std::lock_guard lock{streams_mu};
        for (auto& [id, s] : imports) {
            std::lock_guard sl{s->mu};
            if (s->unreturned > 0) {
                s->credit_due = true;
                s->cv.notify_one();
            }
        }
    }

    /// Ends an importing stream that cannot go on: nothing more is published or queued.
    static void end_import(ImportStream& s) {
        MessageBuffer spare;
        std::lock_guard lock{s.mu};
        s.closed = true;
        s.queue.clear();
        spare.swap(s.spare); // freed once the lock is released
        s.cv.notify_all();
    }

    /// Keeps `buffer`, a message's reassembly buffer it no longer needs, as the stream's
    /// spare for its next message in fragments, unless the stream has ended or keeps a larger
    /// one already. Whatever is not kept is freed outside the lock.
    static void keep_spare(ImportStream& s, MessageBuffer&& buffer) {
        if (buffer.capacity() == 0 || buffer.capacity() > 4 + s.slot_size) {
            return;
        }
        std::lock_guard lock{s.mu};
        if (!s.closed && buffer.capacity() > s.spare.capacity()) {
            buffer.swap(s.spare);
        }
    }

    /// A data frame (the run() thread). It is checked whole first: the stream granted, the
    /// sequence not going back, the credits, every length within the stream's slot size.
    /// Then, if nothing of the stream waits, its messages are published at once from the
    /// frame, with no copy but the one into the slots; what the local ring has no room for
    /// (and everything while earlier messages wait) is copied out in one piece for the
    /// stream's thread, which publishes it as room comes.
    ///
    /// `reassembled`: a message that came in fragments, `d` a one-message view of it (with its
    /// origin) over these bytes (its length, then the message). Its credits were taken
    /// fragment by fragment; it is admitted (loops, duplicates) exactly as a whole one, and
    /// then always queued for the stream's thread, these bytes moved rather than copied, so
    /// that the link's reader never copies a large message.
    void on_data(const DataView& d) {
        ImportStream* s = import_stream(d.stream());
        if (s == nullptr) {
            fail(make_error(Errc::protocol_error,
                            "data: stream " + std::to_string(d.stream()) + " was never granted"));
            return;
        }
        if (reassembler.in_progress(d.stream())) {
            fail(make_error(Errc::protocol_error,
                            "data: stream " + std::to_string(d.stream()) + " ('" + s->wire_name +
                                "') sent whole messages before the end of its fragmented one"));
            return;
        }
        auto a = admit_data(*s, d);
        if (!a) {
            return;
        }
        const bool one_run =
            once_runs.empty() ||
            (once_runs.size() == 1 && once_runs[0].first + once_runs[0].second == d.count());
        if (!s->queue_channel || !d.origin() || one_run) {
            deliver_data(*s, d, *a); // the new messages, if any, are one run ending the frame
            return;
        }
        // A queue's frame with messages seen before between new ones: each run of new
        // messages goes with the seen ones before it, skipped; then the seen ones at the end.
        std::uint64_t gap = a->gap;
        std::uint32_t at = 0;
        for (const auto& [first, count] : once_runs) {
            if (!deliver_data(*s, d.slice(at, first + count - at), Admission{first - at, gap})) {
                return;
            }
            gap = 0;
            at = first + count;
        }
        if (at < d.count()) {
            (void)deliver_data(*s, d.slice(at, d.count() - at), Admission{d.count() - at, 0});
        }
    }

    /// The first half of on_data(): `d` checked against the stream (its sequence, its
    /// lengths), the messages lost before it counted, and its origin's verdict (loops,
    /// duplicates). For a message in fragments, `d` is its start's one-message view. An empty
    /// optional once the link has failed.
    std::optional<Admission> admit_data(ImportStream& s, const DataView& d) {
        if (d.origin().has_value() != with_origins) {
            fail(make_error(Errc::protocol_error,
                            with_origins ? "data: a protocol 2 link carries origin_data frames"
                                         : "origin_data: not part of protocol 1"));
            return std::nullopt;
        }
        if (s.expected != 0 && d.first_sequence() < s.expected) {
            fail(make_error(Errc::protocol_error,
                            "data: stream " + std::to_string(d.stream()) + " ('" + s.wire_name +
                                "') went back from sequence " + std::to_string(s.expected) +
                                " to " + std::to_string(d.first_sequence())));
            return std::nullopt;
        }
        for (std::uint32_t i = 0; i < d.count(); ++i) {
            if (d.length(i) > s.slot_size) {
                fail(make_error(Errc::protocol_error,
                                "data: stream " + std::to_string(d.stream()) + " ('" + s.wire_name +
                                    "'): message " + std::to_string(d.first_sequence() + i) +
                                    " is " + std::to_string(d.length(i)) +
                                    " bytes, above the slot_size its offer announced (" +
                                    std::to_string(s.slot_size) + ")"));
                return std::nullopt;
            }
        }
        Admission a;
        if (s.expected != 0 && d.first_sequence() > s.expected) {
            a.gap = d.first_sequence() - s.expected;
            s.lost += a.gap;
        }
        if (d.origin()) {
            // What the local subscribers of a broadcast channel are told is the origin's gap,
            // which another path may have filled already; the messages another path
            // delivered are skipped.
            a = admit_frame(s, d, a.gap);
        }
        count_cause(s, d, a.gap);
        return a;
    }

    /// The second half: the credits, then the messages published at once if the stream is
    /// idle and its ring has room, else queued (in order) for the stream's thread.
    ///
    /// `reassembled`: a message that came in fragments, `d` a one-message view of it (with its
    /// origin) over these bytes (its length, then the message). Its credits were taken
    /// fragment by fragment; it was admitted at its start exactly as a whole one, and is
    /// always queued for the stream's thread, these bytes moved rather than copied, so that
    /// the link's reader never copies a large message.
    /// False if the link failed.
    bool deliver_data(ImportStream& s, const DataView& d, const Admission& a,
                      MessageBuffer* reassembled = nullptr) {
        std::uint64_t gap = a.gap;
        const auto skip = static_cast<std::size_t>(a.skip);
        bool idle = false;
        {
            std::lock_guard lock{s.mu};
            const std::uint32_t held = s.outstanding;
            if (reassembled != nullptr) {
                // Credits taken by its fragments already.
            } else if (d.count() > held) {
                fail(make_error(Errc::protocol_error, "data: stream " + std::to_string(d.stream()) +
                                                          " sent " + std::to_string(d.count()) +
                                                          " messages on " + std::to_string(held) +
                                                          " credits"));
                return false;
            }
            if (reassembled == nullptr) {
                s.outstanding -= d.count();
            }
            if (s.closed) {
                return true; // the stream has ended here; what still arrives for it is dropped
            }
            // The stream's thread touches the publisher only while something is queued.
            idle = s.queue.empty() && !s.draining;
        }
        // A reassembled message is always left to the stream's thread.
        const bool direct = idle && reassembled == nullptr;
        s.expected = d.first_sequence() + d.count();
        std::size_t done = skip;
        if (skip == d.count()) {
            // Nothing new here: the credits go back, and nothing waits.
            if (idle) {
                s.published_next.store(s.expected);
            }
            published(s, skip, false, true);
            return true;
        }
        if (direct) {
            Halt halt = Halt::none;
            if (gap != 0 && publish_gap(s, gap, d.first_sequence() + skip, false, halt)) {
                gap = 0;
            }
            if (gap == 0 && halt == Halt::none) {
                done += publish_run(s, d, skip, false, halt);
            }
            if (halt == Halt::broken) {
                end_import(s);
                return true;
            }
            published(s, done, halt == Halt::full, true);
            if (halt == Halt::none) {
                return true;
            }
        }
        if (!direct && skip > 0) {
            published(s, skip, false, true);
        }
        ImportItem item;
        item.gap = gap;
        item.first = d.first_sequence() + done;
        if (d.origin()) {
            item.origin = *d.origin();
            item.origin->first_sequence += done;
        }
        item.count = d.count() - static_cast<std::uint32_t>(done);
        if (reassembled != nullptr && done == 0) {
            item.body = std::move(*reassembled); // `d` views these very bytes
            item.reassembled = true;
            std::lock_guard lock{s.mu};
            s.queue.push_back(std::move(item));
            s.cv.notify_one();
            return true;
        }
        const DataView rest = d.slice(static_cast<std::uint32_t>(done), item.count);
        const auto lengths = rest.raw_lengths();
        const auto bytes = rest.payload();
        item.body.reserve(lengths.size() + bytes.size());
        item.body.insert(item.body.end(), lengths.begin(), lengths.end());
        item.body.insert(item.body.end(), bytes.begin(), bytes.end());
        std::lock_guard lock{s.mu};
        s.queue.push_back(std::move(item));
        s.cv.notify_one();
        return true;
    }

    /// Counts `gap` messages lost before data frame `d` of `s` by cause (docs/gateway.md,
    /// "Loss by cause"): found by a stream's first frame on a link, the link was down; else
    /// lost before the peer when they were first published elsewhere (protocol 2), or by the
    /// peer itself (its export overran). The run() thread.
    void count_cause(ImportStream& s, const DataView& d, std::uint64_t gap) {
        const bool first = std::exchange(s.first_frame, false);
        if (gap == 0) {
            return;
        }
        if (first) {
            s.lost_link_down.fetch_add(gap, std::memory_order_relaxed);
        } else if (!s.queue_channel && d.origin() &&
                   d.origin()->daemon != params.peer_incarnation) {
            // (A queue's gaps are this hop's numbers: the peer's own loss.)
            s.lost_upstream.fetch_add(gap, std::memory_order_relaxed);
        } else {
            s.lost_congestion.fetch_add(gap, std::memory_order_relaxed);
        }
    }

    /// The origin's verdict on data frame `d` of `s` (protocol 2): a loop (this daemon's own
    /// message, or one first published in the very channel it would go into) is skipped
    /// whole; otherwise the channel's dedup marks say what is new and what was lost before
    /// it. A queue's messages are admitted one by one (admit_queue_frame()); `hop_gap` is
    /// what this hop's numbers showed lost before `d`. The run() thread.
    Admission admit_frame(ImportStream& s, const DataView& d, std::uint64_t hop_gap) {
        const MessageOrigin& o = *d.origin();
        Admission a;
        once_runs.clear();
        if (o.daemon == incarnation || o.channel == s.local_creation_id) {
            a.skip = d.count();
            s.looped.fetch_add(d.count(), std::memory_order_relaxed);
            return a;
        }
        if (s.queue_channel) {
            return admit_queue_frame(s, d, hop_gap);
        }
        a = s.origins->admit(o, d.count());
        s.duplicates.fetch_add(a.skip, std::memory_order_relaxed);
        if (a.skip < d.count()) {
            s.pending.push_back(PendingFrame{d.first_sequence(), d.count(), o, a.skip, a.gap});
        }
        prune_pending(s);
        return a;
    }

    /// A queue's frame (docs/gateway.md, "Multi-hop"): its messages travel one path each, so
    /// the origin's numbers come with holes and, by different paths, out of order, and none
    /// of that is loss; a message seen here before came around a cycle, and is skipped as a
    /// loop. The runs of new messages go to `once_runs`; the Admission says the seen ones
    /// before the first. Loss is this hop's own (`hop_gap`), counted here only: a queue has no
    /// way to tell its consumers.
    Admission admit_queue_frame(ImportStream& s, const DataView& d, std::uint64_t hop_gap) {
        MessageOrigin o = *d.origin();
        const std::uint64_t first = o.first_sequence;
        std::uint32_t at = 0;
        std::uint64_t taken = 0;
        while (at < d.count()) {
            o.first_sequence = first + at;
            const OnceAdmission once = s.origins->admit_once(o, d.count() - at);
            at += static_cast<std::uint32_t>(once.skip);
            if (once.take == 0) {
                break; // the rest was seen
            }
            once_runs.emplace_back(at, static_cast<std::uint32_t>(once.take));
            s.pending.push_back(PendingFrame{d.first_sequence() + at, once.take,
                                             MessageOrigin{o.daemon, o.channel, first + at}, 0, 0,
                                             true});
            at += static_cast<std::uint32_t>(once.take);
            taken += once.take;
        }
        s.looped.fetch_add(d.count() - taken, std::memory_order_relaxed);
        prune_pending(s);
        Admission a;
        a.gap = hop_gap;
        a.skip = once_runs.empty() ? d.count() : once_runs.front().first;
        return a;
    }

    /// What is published is no longer pending (bounded by the window: what is pending holds
    /// credits).
    static void prune_pending(ImportStream& s) {
        const std::uint64_t done = s.published_next.load();
        while (!s.pending.empty() &&
               s.pending.front().hop_first + s.pending.front().count <= done) {
            s.pending.pop_front();
        }
    }

    /// Publishes what on_data() queued (the stream's thread): it runs only while the local
    /// ring is full or the queue has not yet caught up, and waits on the ring's room.
    void run_import(ImportStream& s) {
        std::deque<ImportItem> taken;
        for (;;) {
            std::uint32_t give = 0;
            bool drain = false;
            {
                std::unique_lock lock{s.mu};
                s.cv.wait_for(lock, kEndpointPoll, [&] {
                    return !s.queue.empty() || s.credit_due || s.closed || stopping.load();
                });
                if (s.closed || stopping.load()) {
                    return;
                }
                if (s.credit_due) {
                    give = take_credits(s); // due before what is queued is published
                }
                if (!s.queue.empty()) {
                    taken.swap(s.queue); // `taken` was empty: the queue is now
                    s.draining = true;
                    drain = true;
                }
            }
            if (give > 0) {
                send(Credit{{{s.id, give}}});
            }
            while (!taken.empty()) {
                ImportItem& item = taken.front();
                Halt halt = Halt::none;
                while (item.gap != 0 && !publish_gap(s, item.gap, item.first, true, halt)) {
                    if (halt == Halt::broken) {
                        end_import(s);
                        return;
                    }
                    if (stopping.load()) {
                        return;
                    }
                    halt = Halt::none; // the local subscribers are slow: wait, as for a message
                }
                item.gap = 0;
                const DataView d = item.view(s.id);
                std::size_t from = 0;
                while (from < d.count()) {
                    halt = Halt::none;
                    const std::size_t n = publish_run(s, d, from, true, halt);
                    from += n;
                    if (halt == Halt::broken) {
                        end_import(s);
                        return;
                    }
                    // On a full ring the withheld credits hold the peer; what was published
                    // is confirmed now, so that the peer's window is exactly what waits here.
                    published(s, n, halt == Halt::full, false);
                    if (halt == Halt::full && stopping.load()) {
                        return;
                    }
                }
                if (item.reassembled) {
                    keep_spare(s, std::move(item.body));
                }
                taken.pop_front();
            }
            if (!drain) {
                continue; // only credits were due
            }
            give = 0;
            {
                std::lock_guard lock{s.mu};
                if (s.queue.empty()) {
                    s.draining = false; // caught up: the link reader publishes again
                    s.unreturned += std::exchange(s.withheld, 0);
                    give = take_credits(s);
                }
            }
            if (give > 0) {
                send(Credit{{{s.id, give}}});
            }
        }
    }

    // ---- messages in fragments (protocol 2; fragments.hpp) ----

    /// Whether a message of `length` bytes fits one data frame of the peer's.
    [[nodiscard]] bool fits_one_frame(std::uint64_t length) const noexcept {
        return kDataFixedBytes + 4 + length <= params.send_data_body;
    }

    /// Gives `credits` back to a `block` stream's unconfirmed copies, each of which goes once
    /// all it cost has come back (under s.mu).
    static void confirm(ExportStream& s, std::uint64_t credits) {
        std::uint64_t back = s.credit_carry + credits;
        while (!s.unconfirmed.empty() && back >= s.unconfirmed.front().credits) {
            back -= s.unconfirmed.front().credits;
            s.unconfirmed.pop_front(); // published by the peer
        }
        s.credit_carry = s.unconfirmed.empty() ? 0 : back;
    }

    /// Sends message `sequence` (`bytes`, larger than one data frame) as fragments, one
    /// credit and one turn at the link's write side each, so that the other streams' frames
    /// go between them. False if the stream or the link ended meanwhile.
    bool send_fragments(ExportStream& s, std::uint64_t sequence, std::span<const std::byte> bytes,
                        const MessageOrigin& origin, std::vector<std::byte>& prefix,
                        std::vector<iovec>& iov) {
        const std::size_t room = params.send_data_body - kFragmentFixedBytes;
        const std::size_t each = std::min(kFragmentBytes, room);
        std::size_t offset = 0;
        while (offset < bytes.size()) {
            if (wait_for_credits(s, 1) == 0) {
                return false;
            }
            const std::size_t n = std::min(each, bytes.size() - offset);
            const FragmentPart part = offset == 0                  ? FragmentPart::start
                                      : offset + n == bytes.size() ? FragmentPart::end
                                                                   : FragmentPart::middle;
            if (auto p = encode_fragment_prefix(part, s.id, sequence, bytes.size(), offset, n,
                                                origin, params.send_data_body, prefix);
                !p) {
                fail(p.take_error());
                return false;
            }
            iov.clear();
            iov.push_back({prefix.data(), prefix.size()});
            iov.push_back({const_cast<std::byte*>(bytes.data() + offset), n});
            take_credits_for(s, 1);
            if (!write_frame(s, iov)) {
                return false;
            }
            fragments_sent.fetch_add(1, std::memory_order_relaxed);
            offset += n;
        }
        return true;
    }

    /// Sends the one message of `b` in fragments: from its slot on block and queue channels,
    /// from a copy taken and released first on drop channels (discarded, and counted lost,
    /// if it was overwritten meanwhile). `segments` is what plan_segments() made of `b`: its
    /// origin, or nothing if that is no longer known (counted lost there; never sent).
    /// Releases `b`. False if the stream or link ended.
    bool export_in_fragments(ExportStream& s, ReadBatch& b, std::span<const Segment> segments,
                             std::vector<std::byte>& staging, std::vector<std::byte>& prefix,
                             std::vector<iovec>& iov) {
        if (segments.empty()) {
            if (auto r = s.subscriber->release(b); !r && !s.copy_out) {
                log("exporting '" + s.local_name + "' stopped: " + r.error().message());
                fail(r.take_error());
                return false;
            }
            s.next_sequence += 1;
            return true;
        }
        const MessageOrigin origin = segments.front().origin;
        const auto m = b.message(0).data;
        std::span<const std::byte> bytes = m;
        // A draining stream takes its ring while it waits for the fragments' credits: it
        // holds no slot meanwhile.
        const bool copy = s.copy_out || s.drains;
        if (copy) {
            staging.assign(m.begin(), m.end());
            if (auto r = s.subscriber->release(b); !r) {
                s.next_sequence += 1;
                s.lost += 1;
                return true;
            }
            bytes = staging;
        }
        const std::size_t room = params.send_data_body - kFragmentFixedBytes;
        const std::size_t each = std::min(kFragmentBytes, room);
        if (s.keep) {
            std::lock_guard lock{s.mu};
            s.unconfirmed.push_back(SentMessage{
                s.next_sequence, {bytes.begin(), bytes.end()}, (bytes.size() + each - 1) / each});
        }
        const std::uint64_t sequence = s.next_sequence;
        const bool sent = send_fragments(s, sequence, bytes, origin, prefix, iov);
        if (!copy) {
            // Block and queue channels: nothing overwrites a slot being read.
            if (auto r = s.subscriber->release(b); !r && sent) {
                log("exporting '" + s.local_name + "' stopped: " + r.error().message());
                fail(r.take_error());
                return false;
            }
        }
        if (!sent) {
            return false;
        }
        s.next_sequence += 1;
        s.messages += 1;
        s.bytes += bytes.size();
        return true;
    }

    /// A fragment (the run() thread). Costs one credit like a message. Its bytes are copied
    /// into the stream's reassembly buffer and its credit goes back at once (unless the
    /// stream is behind), so a message larger than the window never stalls; the end's credit
    /// goes back once the whole message is published. The whole message is queued for the
    /// stream's thread, which publishes it, so the link reader never copies more than one
    /// fragment before it reads the next frame (another stream's, perhaps).
    void on_fragment(const FragmentView& f) {
        auto place = place_fragment(f, f.bytes.size());
        if (!place) {
            return;
        }
        if (!f.bytes.empty()) {
            std::memcpy(place->bytes.data(), f.bytes.data(), f.bytes.size());
        }
        fragment_placed(*place->stream, f);
    }

    /// A large fragment whose fields have arrived before its bytes: checked and counted as
    /// on_fragment() does, and its bytes read from the link straight into the stream's
    /// reassembly buffer (FrameReader::divert()); fragment_placed() follows once they are
    /// all there. False if the link has failed.
    bool divert_fragment(const FragmentHead& head) {
        auto place = place_fragment(head.view, head.size);
        if (!place) {
            return false;
        }
        diverted = DivertedFragment{head.view, place->stream};
        diverted->view.bytes = {};
        reader.divert(place->bytes);
        return true;
    }

    /// Where a fragment's bytes go, and its stream.
    struct PlacedFragment {
        ImportStream* stream{nullptr};
        std::span<std::byte> bytes;
    };

    /// The first half of a fragment: the checks, its credit, and where its `size` bytes go
    /// in the stream's reassembly buffer; an empty optional once the link has failed.
    std::optional<PlacedFragment> place_fragment(const FragmentView& f, std::size_t size) {
        fragments_received.fetch_add(1, std::memory_order_relaxed);
        ImportStream* s = import_stream(f.stream);
        const std::string what = "origin_data (fragment " +
                                 std::string{fragment_part_name(f.part)} + "): stream " +
                                 std::to_string(f.stream);
        if (s == nullptr) {
            fail(make_error(Errc::protocol_error, what + " was never granted"));
            return std::nullopt;
        }
        if (f.part == FragmentPart::start && s->expected != 0 && f.sequence < s->expected) {
            fail(make_error(Errc::protocol_error,
                            what + " ('" + s->wire_name + "') went back from sequence " +
                                std::to_string(s->expected) + " to " + std::to_string(f.sequence)));
            return std::nullopt;
        }
        {
            std::lock_guard lock{s->mu};
            if (s->outstanding == 0) {
                fail(make_error(Errc::protocol_error,
                                what + " ('" + s->wire_name + "') sent a fragment on 0 credits"));
                return std::nullopt;
            }
            s->outstanding -= 1;
        }
        MessageBuffer spare;
        std::span<std::byte> into;
        if (f.part == FragmentPart::start) {
            if (reassembler.in_progress(f.stream)) {
                // A new start before the end: Reassembler::place() names it.
            } else if (!start_message(*s, f)) {
                return std::nullopt;
            } else if (s->slot) {
                into = s->slot->data(0);
            } else {
                std::lock_guard lock{s->mu};
                spare.swap(s->spare);
            }
        }
        auto place = reassembler.place(f, size, s->slot_size, std::move(spare), into);
        if (!place) {
            fail(place.take_error());
            return std::nullopt;
        }
        return PlacedFragment{s, place.value()};
    }

    /// A message's start (the run() thread): admitted as a one-message frame would be (the
    /// same checks, the same loss count, the same verdict on loops and duplicates), and, if
    /// it is new, the stream idle (the reader holds the publisher) and the channel's only
    /// writer this stream, reassembled in a slot reserved now, any gap before it published
    /// first: its bytes then go from the link straight into the ring, with no copy between.
    /// Without room now it is reassembled in a buffer, as any other. False if the link failed.
    bool start_message(ImportStream& s, const FragmentView& f) {
        std::array<std::byte, 4> length{};
        // total_bytes fits: the reassembler refuses one above the stream's slot size.
        proto::store_u32(length.data(), static_cast<std::uint32_t>(f.total_bytes));
        const DataView head{f.stream, f.sequence, 1, length, {}, f.origin};
        auto a = admit_data(s, head);
        if (!a) {
            return false;
        }
        s.started = *a;
        if (a->skip != 0 || !s.in_place_ok || f.total_bytes > s.slot_size) {
            return true;
        }
        {
            std::lock_guard lock{s.mu};
            if (s.closed || !s.queue.empty() || s.draining) {
                return true;
            }
        }
        Halt halt = Halt::none;
        if (a->gap != 0 && publish_gap(s, a->gap, f.sequence, false, halt)) {
            s.started->gap = 0;
        }
        if (halt == Halt::broken) {
            end_import(s);
            return true;
        }
        if (s.started->gap != 0) {
            return true;
        }
        if (auto w = s.publisher->try_reserve(1)) {
            s.slot = w.value();
        }
        return true;
    }

    /// Gives back the slot the message in fragments of `s` was placed in, if any, unpublished
    /// (its subscribers skip it; the message is lost whole, as in a buffer).
    static void abandon_slot(ImportStream& s) {
        if (s.slot) {
            s.publisher->abandon(*s.slot);
            s.slot.reset();
        }
        s.started.reset();
    }

    /// Publishes the message in fragments of `s` that was placed in its slot, whole (the run()
    /// thread); its end's credit goes back as for any message published.
    void commit_slot(ImportStream& s, const WholeMessage& m) {
        WriteBatch w = *s.slot;
        s.slot.reset();
        s.started.reset();
        std::array<std::byte, 4> length{};
        const DataView d{m.stream, m.sequence, 1, length, {}, m.origin};
        w.set_length(0, m.total);
        note_origins(s, d, 0, w.sequence(0), 1);
        if (auto c = s.publisher->commit(w); !c) {
            log("importing '" + s.wire_name + "' stopped: " + c.error().message());
            s.publisher->abandon(w);
            end_import(s);
            return;
        }
        s.expected = m.sequence + 1;
        s.published_next.store(s.expected);
        s.messages.fetch_add(1, std::memory_order_relaxed);
        s.bytes.fetch_add(m.total, std::memory_order_relaxed);
        published(s, 1, false, true);
    }

    /// The second half, once the fragment's bytes are in place: its credit back, or the
    /// whole message on its way.
    void fragment_placed(ImportStream& s, const FragmentView& f) {
        auto whole = reassembler.placed(f.stream);
        bool behind = false;
        {
            std::unique_lock lock{s.mu};
            if (s.closed) {
                lock.unlock();
                if (whole) {
                    abandon_slot(s);
                }
                return; // the stream has ended here; what still arrives for it is dropped
            }
            if (!whole) {
                behind = !s.queue.empty() || s.draining;
                if (behind) {
                    ++s.withheld;
                }
            }
        }
        if (!whole) {
            if (!behind) {
                published(s, 1, false, true);
            }
            return;
        }
        WholeMessage& m = *whole;
        if (m.in_place) {
            commit_slot(s, m);
            return;
        }
        // The whole message goes the way of a one-message origin_data frame admitted at its
        // start.
        const auto framed = std::span<const std::byte>{m.framed};
        const DataView d{m.stream, m.sequence, 1, framed.first(4), framed.subspan(4), m.origin};
        const Admission a = s.started.value_or(Admission{});
        s.started.reset();
        deliver_data(s, d, a, &m.framed);
        // Not queued (a loop, a duplicate, the stream closed meanwhile): its buffer serves
        // the next message.
        keep_spare(s, std::move(m.framed));
    }

    /// The importing stream granted as `stream`, or null. Streams are never removed while
    /// the session runs, so the pointer stays valid.
    ImportStream* import_stream(std::uint32_t stream) {
        std::lock_guard lock{streams_mu};
        auto it = imports.find(stream);
        return it != imports.end() ? it->second.get() : nullptr;
    }

    /// Drops what `stream` has in fragments (its stream ended): nothing partial is published;
    /// its number stays unpublished, so the next link counts it lost with any gap.
    void drop_fragments(std::uint32_t stream, const std::string& why) {
        if (auto d = reassembler.drop(stream)) {
            if (ImportStream* s = import_stream(stream)) {
                abandon_slot(*s);
            }
            log_dropped(*d, why);
        }
    }

    /// The same for every stream (the link ended).
    void drop_all_fragments() {
        for (const auto& d : reassembler.drop_all()) {
            if (ImportStream* s = import_stream(d.stream)) {
                abandon_slot(*s);
            }
            log_dropped(d, "the link ended");
        }
    }

    void log_dropped(const DroppedMessage& d, const std::string& why) {
        std::string name = "stream " + std::to_string(d.stream);
        if (const ImportStream* s = import_stream(d.stream)) {
            name = "'" + s->wire_name + "'";
        }
        log("message " + std::to_string(d.sequence) + " of " + name + " had " +
            std::to_string(d.received) + " of its " + std::to_string(d.total) + " bytes when " +
            why + ": it is lost whole, never published in part");
    }

    // ---- the run() thread ----

    void start_initiator() {
        if (!settings.exports.empty()) {
            auto channels = local.list_channels();
            if (!channels) {
                log("cannot list local channels to export: " + channels.error().message());
            } else {
                for (const auto& c : channels.value()) {
                    if (auto m = first_match(settings.exports, c.info.name)) {
                        offer(c.info.name, m->mapped, 0, *m->rule);
                    }
                }
            }
        }
        for (const auto& rule : settings.imports) {
            std::uint32_t request = 0;
            {
                std::lock_guard lock{streams_mu};
                request = next_request++;
                wants.emplace(request, rule.channel);
            }
            send(Want{request, rule.channel});
        }
    }

    void on_want(const Want& w) {
        auto channels = local.list_channels();
        std::size_t offered = 0;
        if (channels) {
            for (const auto& c : channels.value()) {
                auto m = first_match(settings.exports, c.info.name);
                if (m && glob_match(w.pattern, m->mapped)) {
                    offer(c.info.name, m->mapped, w.request, *m->rule);
                    ++offered;
                }
            }
        }
        if (offered == 0) {
            const std::string reason = "no channel matching '" + w.pattern + "' is in bridge '" +
                                       settings.bridge + "''s export list";
            log("refused the peer's request for '" + w.pattern + "': " + reason);
            send(Refuse{RefusedKind::want, w.request, Errc::permission_denied, reason});
        }
    }

    void on_grant(const Grant& g) {
        std::lock_guard lock{streams_mu};
        auto it = exports.find(g.stream);
        if (it == exports.end()) {
            return; // closed meanwhile
        }
        ExportStream& s = *it->second;
        std::lock_guard sl{s.mu};
        s.credits += g.credits;
        s.granted = true;
        s.resume = g.resume_sequence;
        s.cv.notify_one();
        log("exporting channel '" + s.local_name + "' as '" + s.wire_name + "'");
    }

    void on_credit(const Credit& c) {
        std::lock_guard lock{streams_mu};
        for (const auto& g : c.grants) {
            auto it = exports.find(g.stream);
            if (it == exports.end()) {
                continue;
            }
            ExportStream& s = *it->second;
            std::lock_guard sl{s.mu};
            s.credits += g.messages;
            confirm(s, g.messages);
            s.cv.notify_one();
        }
    }

    void close_export(std::uint32_t id) {
        std::lock_guard lock{streams_mu};
        auto it = exports.find(id);
        if (it != exports.end()) {
            std::lock_guard sl{it->second->mu};
            it->second->closed = true;
            it->second->cv.notify_all();
        }
    }

    void on_refuse(const Refuse& r) {
        if (r.what == RefusedKind::want) {
            std::string pattern;
            {
                std::lock_guard lock{streams_mu};
                auto it = wants.find(r.id);
                pattern = it == wants.end() ? "?" : it->second;
            }
            log("the peer refused to export '" + pattern + "': " + r.reason);
            return;
        }
        std::string name;
        {
            std::lock_guard lock{streams_mu};
            auto it = exports.find(r.id);
            name = it == exports.end() ? "?" : it->second->wire_name;
        }
        log("the peer refused channel '" + name + "': " + r.reason);
        if (r.code == Errc::version_mismatch) {
            type_refusals.fetch_add(1, std::memory_order_relaxed); // a type that differs
        }
        close_export(r.id);
    }

    void on_close_stream(const CloseStream& c) {
        close_export(c.stream);
        drop_fragments(c.stream, "its stream was closed");
        std::lock_guard lock{streams_mu};
        auto it = imports.find(c.stream);
        if (it != imports.end()) {
            std::lock_guard sl{it->second->mu};
            it->second->closed = true;
            it->second->cv.notify_all();
        }
    }

    void handle(const Frame& frame) {
        std::visit(
            [&](const auto& f) {
                using T = std::decay_t<decltype(f)>;
                if constexpr (std::is_same_v<T, DataView>) {
                    on_data(f);
                } else if constexpr (std::is_same_v<T, FragmentView>) {
                    on_fragment(f);
                } else if constexpr (std::is_same_v<T, Offer>) {
                    on_offer(f);
                } else if constexpr (std::is_same_v<T, Want>) {
                    on_want(f);
                } else if constexpr (std::is_same_v<T, Grant>) {
                    on_grant(f);
                } else if constexpr (std::is_same_v<T, Credit>) {
                    on_credit(f);
                } else if constexpr (std::is_same_v<T, Refuse>) {
                    on_refuse(f);
                } else if constexpr (std::is_same_v<T, CloseStream>) {
                    on_close_stream(f);
                } else if constexpr (std::is_same_v<T, Ping>) {
                    send(Pong{f.token, f.sent_ns});
                } else if constexpr (std::is_same_v<T, Pong>) {
                    const std::uint64_t now = now_ns();
                    rtt_ns.store(now > f.sent_ns ? now - f.sent_ns : 0);
                } else if constexpr (std::is_same_v<T, Goodbye>) {
                    fail(make_error(Errc::closed, "the peer ended the link: " + f.reason), true);
                } else {
                    fail(make_error(Errc::protocol_error,
                                    "unexpected '" + std::string{frame_type_name(type_of(frame))} +
                                        "' frame after the handshake"));
                }
            },
            frame);
    }

    /// Reads and handles frames until the link ends. After a read that brought a good deal,
    /// the next read is tried at once (the peer is streaming: more is likely there); after a
    /// small one, the loop waits in poll() first, so that a quiet link costs one poll and one
    /// read per wake-up. The link is alive while bytes arrive, whole frames or not: a large
    /// frame on a slow link may take longer than dead_after_silence to arrive.
    void read_loop() {
        auto last_received = Clock::now();
        std::uint64_t ping_token = 0;
        bool streaming = false;
        auto note_read = [&](const Result<std::size_t>& r) {
            if (!r) {
                Error e = r.error();
                fail(e, e.code == Errc::closed);
                return false;
            }
            if (r.value() > 0) {
                last_received = Clock::now();
            }
            streaming = r.value() >= kStreamingRead;
            return true;
        };
        while (!stopping.load()) {
            if (diverted && !reader.diverting()) {
                const DivertedFragment f = *diverted;
                diverted.reset();
                fragment_placed(*f.stream, f.view);
                continue;
            }
            auto frame = reader.next();
            if (!frame) {
                fail(frame.take_error());
                return;
            }
            if (frame.value()) {
                handle(*frame.value());
                continue;
            }
            if (!diverted) {
                auto head = reader.fragment_head(kDivertAtLeast);
                if (!head) {
                    fail(head.take_error());
                    return;
                }
                if (head.value() && with_origins) {
                    if (!divert_fragment(*head.value())) {
                        return;
                    }
                    continue;
                }
            }
            if (streaming) {
                auto r = link.read_available(reader);
                if (!note_read(r)) {
                    return;
                }
                if (r.value() > 0) {
                    continue;
                }
            }
            const auto now = Clock::now();
            const auto sent = Clock::time_point{Clock::duration{last_sent.load()}};
            if (now - last_received >= settings.dead_after_silence) {
                fail(make_error(Errc::timed_out,
                                "nothing arrived from the peer for " +
                                    std::to_string(settings.dead_after_silence.count()) + " ms"));
                return;
            }
            if (now - sent >= settings.ping_after_idle) {
                send(Ping{++ping_token, now_ns()});
            }
            const auto until = std::min(last_received + settings.dead_after_silence,
                                        Clock::time_point{Clock::duration{last_sent.load()}} +
                                            settings.ping_after_idle);
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
            const bool lingering = credits_pending.load(std::memory_order_relaxed);
            if (lingering) {
                wait = std::min<std::chrono::milliseconds>(wait, kCreditLinger);
            }
            pollfd fds[2] = {{link.readable_fd(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
            const int n =
                ::poll(fds, 2, static_cast<int>(std::max<std::int64_t>(1, wait.count() + 1)));
            if (n < 0 && errno != EINTR) {
                fail(make_error(Errc::system_error, "poll on the link failed", errno));
                return;
            }
            if (n == 0 && lingering) {
                return_idle_credits();
            }
            if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                if (!note_read(
                        link.read_into(reader, Clock::now() + settings.dead_after_silence))) {
                    return;
                }
            }
        }
    }

    Error run() {
        if (!wake) {
            return make_error(Errc::system_error, "eventfd for the bridge session failed", errno);
        }
        if (settings.initiator) {
            start_initiator();
        }
        read_loop();
        drop_all_fragments();
        Error why = [&] {
            std::lock_guard lock{failure_mu};
            return failure ? *failure : make_error(Errc::closed, "stopped");
        }();
        bool tell_peer = false;
        {
            std::lock_guard lock{failure_mu};
            tell_peer = !failure_from_peer;
        }
        stopping.store(true);
        std::vector<std::thread*> threads;
        {
            std::lock_guard lock{streams_mu};
            for (auto& [id, s] : exports) {
                std::lock_guard sl{s->mu};
                s->cv.notify_all();
                threads.push_back(&s->thread);
            }
            for (auto& [id, s] : imports) {
                std::lock_guard sl{s->mu};
                s->cv.notify_all();
                threads.push_back(&s->thread);
            }
        }
        for (std::thread* t : threads) {
            if (t->joinable()) {
                t->join();
            }
        }
        {
            std::lock_guard lock{streams_mu};
            for (auto& [id, s] : imports) {
                give_back_unpublished(*s);
            }
        }
        remember_imports();
        keep_exports();
        if (tell_peer) {
            if (auto bye = encode(Goodbye{why.code, why.detail})) {
                const WriteTurns::Turn turn{write_mu, WriteTurns::kControlPriority};
                (void)link.write_all(bye.value(), Clock::now() + kGoodbyeDeadline);
            }
        }
        log("link ended: " + why.message());
        return why;
    }
};

BridgeSession::BridgeSession(SessionSettings settings, LinkParams params, Client& local,
                             LinkStream& link, FrameReader reader)
    : impl_{std::make_unique<Impl>(std::move(settings), std::move(params), local, nullptr, link,
                                   std::move(reader))} {}

BridgeSession::BridgeSession(SessionSettings settings, LinkParams params, Client& local, int in_fd,
                             int out_fd, FrameReader reader) {
    auto plain = std::make_unique<FdStream>(in_fd, out_fd);
    LinkStream& link = *plain;
    impl_ = std::make_unique<Impl>(std::move(settings), std::move(params), local, std::move(plain),
                                   link, std::move(reader));
}

BridgeSession::~BridgeSession() = default;

Error BridgeSession::run() {
    return impl_->run();
}

void BridgeSession::stop() noexcept {
    impl_->fail(make_error(Errc::closed, "stopped"));
}

SessionStats BridgeSession::stats() const {
    SessionStats out;
    out.rtt_ns = impl_->rtt_ns.load();
    out.type_refusals = impl_->type_refusals.load();
    out.fragments_sent = impl_->fragments_sent.load(std::memory_order_relaxed);
    out.fragments_received = impl_->fragments_received.load(std::memory_order_relaxed);
    out.writers = impl_->write_mu.waiting();
    std::lock_guard lock{impl_->streams_mu};
    for (const auto& [id, s] : impl_->exports) {
        std::lock_guard sl{s->mu};
        StreamStats st{s->wire_name,    s->local_name,  true,      s->messages.load(),
                       s->bytes.load(), s->lost.load(), s->credits};
        st.lost_congestion = st.lost;
        st.on_congestion = s->on_congestion;
        st.priority = s->priority;
        out.streams.push_back(std::move(st));
    }
    for (const auto& [id, s] : impl_->imports) {
        std::lock_guard sl{s->mu};
        StreamStats st{s->wire_name,    s->local_name,  false,         s->messages.load(),
                       s->bytes.load(), s->lost.load(), s->outstanding};
        st.lost_link_down = s->lost_link_down.load();
        st.lost_congestion = s->lost_congestion.load();
        st.lost_upstream = s->lost_upstream.load();
        st.duplicates = s->duplicates.load();
        st.looped = s->looped.load();
        out.streams.push_back(std::move(st));
    }
    return out;
}

} // namespace shmbus::gateway
