// A NATS bridge; the design is in nats_bridge.hpp.
//
// Locks: Impl::mu guards the state shown by status() and the stop flag; it is never held
// while calling into libnats or the local client, so libnats' callbacks (which take it) can
// never wait on a thread that waits on them.
#include "gateway/nats_bridge.hpp"

#include "gateway/nats_messages.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace shmbus::gateway {

namespace {

using namespace std::chrono_literals;

constexpr auto kEndpointPoll = 50ms; // how soon an export's thread notices a stop
constexpr auto kLocalRetry = 500ms;  // between attempts to reach the local daemon
/// A durable message that could not be published (the local daemon refused it) comes back
/// after this long rather than at once.
constexpr std::chrono::milliseconds kRedeliveryDelay = 1s;
/// How much longer than ack_wait a durable import waits for the messages of a gap.
constexpr std::chrono::milliseconds kGapGrace = 2s;
/// At most one line per this long for errors libnats reports in bursts.
constexpr auto kAsyncLogEvery = 10s;
/// An export's batch: at most this many messages, or this many bytes, between flushes.
constexpr std::size_t kExportBatch = 1024;
constexpr std::uint64_t kExportBatchBytes = 1 << 20;
/// How long an export waits for the server to answer a batch's flush before going on.
constexpr std::chrono::milliseconds kFlushTimeout = 1s;

/// Every exported message's one header of ours: "NODE INCARNATION CHANNEL SEQUENCE" (none
/// of them holds a space). One header rather than four: every header is bytes to write and
/// to find (nats_messages.hpp), and more if libnats parses them.
constexpr const char* kHeaderOrigin = "Shmbus-Origin";
/// An export's heartbeat, an empty message: "NODE INCARNATION CHANNEL LAST", the last
/// sequence number it has used.
constexpr const char* kHeaderIdle = "Shmbus-Idle";
/// JetStream's de-duplication id, with JetStream: "NODE/INCARNATION/CHANNEL/SEQUENCE".
constexpr const char* kHeaderMsgId = "Nats-Msg-Id";

/// A core NATS export that falls idle says which sequence number it has reached (a
/// heartbeat) after kHeartbeatIdle, then every kHeartbeatEvery while it stays idle: without
/// it, messages lost after the last one an importer received (a server that went down with
/// them, an importer not yet subscribed again after a reconnect) would show as a gap only
/// when the next message comes, which may be never.
constexpr auto kHeartbeatIdle = 100ms;
constexpr auto kHeartbeatEvery = 1s;

std::string nats_error(natsStatus s) {
    std::string text = natsStatus_GetText(s);
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    std::string_view said = detail != nullptr ? detail : "";
    // libnats starts it with where in its sources it was set: "(conn.c:1905): ".
    if (said.starts_with('(')) {
        if (const auto end = said.find("): "); end != std::string_view::npos) {
            said.remove_prefix(end + 3);
        }
    }
    if (!said.empty() && text != said) {
        text += " (" + std::string{said} + ")";
    }
    return text;
}

/// Whether a publish or record_gap() into a local channel failed only for want of room.
bool channel_full(Errc code) noexcept {
    return code == Errc::timed_out || code == Errc::would_block;
}

} // namespace

/// The local sequence numbers of the messages the imports published into a channel that the
/// same bridge also exports, one set per such export: that export skips them, so that a message
/// never goes back out to NATS (where the daemon it came from would take it for a new one, and so
/// on for ever). An import adds each number before the message becomes visible; the export
/// drops the numbers up to the one it reads. Bounded by the channel's depth: the export reads
/// every message within one lap (block) or learns it lost the rest (drop).
struct ImportedSequences {
    std::mutex mu;
    std::set<std::uint64_t> sequences; // several imports into one channel may note out of order

    void note(std::uint64_t sequence) {
        std::lock_guard lock{mu};
        sequences.insert(sequence);
    }
    void forget(std::uint64_t sequence) {
        std::lock_guard lock{mu};
        sequences.erase(sequence);
    }
    /// Whether the message of local sequence `sequence` is one an import published (and
    /// forgets the numbers up to it: the export has gone past them).
    bool was_imported(std::uint64_t sequence) {
        std::lock_guard lock{mu};
        const bool found = sequences.contains(sequence);
        sequences.erase(sequences.begin(), sequences.upper_bound(sequence));
        return found;
    }
};

struct NatsExportStream {
    NatsExport rule;
    std::shared_ptr<ImportedSequences> imported; ///< set if the bridge imports this channel too
    std::optional<Subscriber> subscriber;
    std::uint64_t next_sequence{1}; // the stream's thread only
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> lost{0};
    /// Whether the loss of a publish libnats refused was logged since the last success: one
    /// line per outage, not one per message.
    bool refusal_logged{false}; // the stream's thread only
    /// When the next heartbeat is due, if the export stays idle until then.
    std::chrono::steady_clock::time_point heartbeat_at{}; // the stream's thread only
    std::thread thread;
};

/// What became of an imported message.
enum class Delivery {
    published, ///< into the local channel
    lost,      ///< not published, and never will be: counted once as lost
    retry,     ///< durable only: not published; JetStream delivers it again
};

struct NatsImportStream {
    NatsBridgeRunner::Impl* owner{nullptr};
    NatsImport rule;
    std::optional<Publisher> publisher;
    /// One per export of this channel by the same bridge (usually none).
    std::vector<std::shared_ptr<ImportedSequences>> exported_too;
    natsSubscription* sub{nullptr};
    /// Held by libnats' thread while it handles a message; teardown() takes it to set
    /// `closing`, after which a message is dropped unacknowledged (a durable one is then
    /// delivered again, to the next bridge).
    std::mutex cb_mu;
    bool closing{false};
    /// Reads the headers of the messages libnats' thread hands on_message().
    NatsHeaderReader headers;
    /// Per origin (node, channel): its incarnation and the last sequence accounted for here
    /// (published, or counted as lost). Only libnats' thread for this subscription touches
    /// it, and `unshown` and `gap_refusal_logged`.
    struct Origin {
        std::uint64_t incarnation{0};
        std::uint64_t last{0};
        /// Durable imports: since when messages after a gap have been sent back to wait for
        /// the missing ones (zero: no gap is waited for).
        std::chrono::steady_clock::time_point gap_since{};
    };
    std::map<std::string, Origin, std::less<>> origins;
    /// The origin of the previous message, which the next one most likely shares: found
    /// without building a key.
    std::string last_node, last_channel;
    Origin* last_origin{nullptr};

    Origin& origin_of(const OriginFields& f) {
        if (last_origin == nullptr || f.node != last_node || f.channel != last_channel) {
            last_node = f.node;
            last_channel = f.channel;
            last_origin = &origins[last_node + '\0' + last_channel];
        }
        return *last_origin;
    }
    /// Messages counted in `lost` that the local subscribers have not yet been shown
    /// (Publisher::record_gap() found no room): shown before the next message published.
    std::uint64_t unshown{0};
    bool gap_refusal_logged{false};
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> lost{0};
    std::atomic<std::uint64_t> duplicates{0};
    std::atomic<std::uint64_t> looped{0};
};

struct NatsBridgeRunner::Impl {
    NatsBridgeConfig config;
    ClientOptions local_options;
    std::string node;
    std::uint64_t incarnation;
    std::string incarnation_text;
    std::function<void(std::string_view)> log_fn;

    mutable std::mutex mu;
    std::condition_variable cv;
    bool stopping{false};
    bool nats_closed{false}; ///< libnats' last callback for the connection ran
    bool ready{false};       ///< nc, exports and imports are set up (status() may read them)
    std::atomic<bool> exports_stop{false};
    NatsBridgeStatus status;
    /// When libnats last reported an asynchronous error that was logged: such errors (a slow
    /// consumer, a refused JetStream publish) come in bursts, and one line per burst is
    /// enough. The counters say how many there were.
    std::chrono::steady_clock::time_point last_async_log{};
    /// The last error libnats reported about the connection itself (connection_error()).
    std::string last_connection_error;

    std::thread thread;
    std::optional<Client> local;
    natsConnection* nc{nullptr}; // set by run() before any export or import starts
    jsCtx* js{nullptr};
    std::vector<std::unique_ptr<NatsExportStream>> exports;
    std::vector<std::unique_ptr<NatsImportStream>> imports;

    void log(const std::string& line) const {
        if (log_fn) {
            log_fn("bridge '" + config.name + "': " + line);
        }
    }

    /// Logs `line` unless another asynchronous error was logged in the last kAsyncLogEvery.
    void log_burst(const std::string& line) {
        const auto now = std::chrono::steady_clock::now();
        {
            std::lock_guard lock{mu};
            if (last_async_log != std::chrono::steady_clock::time_point{} &&
                now - last_async_log < kAsyncLogEvery) {
                return;
            }
            last_async_log = now;
        }
        log(line);
    }

    void set_state(BridgeState s, const std::string& detail = {}) {
        {
            std::lock_guard lock{mu};
            if (status.bridge.state == s && detail.empty()) {
                return;
            }
            status.bridge.state = s;
            if (!detail.empty()) {
                status.bridge.last_error = detail;
            }
        }
        log(std::string{to_string(s)} + (detail.empty() ? "" : ": " + detail));
    }

    bool stopped() const {
        std::lock_guard lock{mu};
        return stopping;
    }
    /// stop() was called, or the bridge stopped itself, its reason given (set_state()).
    bool stopped_for_good() const {
        std::lock_guard lock{mu};
        return stopping || status.bridge.state == BridgeState::stopped;
    }

    /// Waits `delay` or until stop(); false if stopped.
    bool pause(std::chrono::milliseconds delay) {
        std::unique_lock lock{mu};
        return !cv.wait_for(lock, delay, [this] { return stopping; });
    }

    void run();
    bool connect_local();
    bool open_endpoints();
    /// Opens an export for each channel of the daemon that `rule`'s glob matches and no
    /// earlier entry exported; logs each, and each it cannot open or map to a subject.
    void open_glob_export(const NatsExport& rule);
    bool connect_nats();
    void export_loop(NatsExportStream& s);
    /// What an export's thread reuses from message to message.
    struct ExportScratch {
        /// `room` bytes for a message's headers (written just in front of its payload, see
        /// nats_messages.hpp), then one slot's worth for the payload.
        std::vector<std::byte> buf;
        std::size_t room{0};
        std::string origin_prefix; ///< "NODE INCARNATION CHANNEL "
        std::string origin_text;   ///< the prefix and a message's sequence
    };
    /// Turns the message received into `x.buf` into a NATS message and publishes it into
    /// libnats' buffer (not flushed), or counts it lost.
    void export_one(NatsExportStream& s, ExportScratch& x, const Received& got);
    /// Writes out what libnats buffered and waits for the server to have read it.
    void flush_batch();
    /// Publishes one export's message `m` to NATS; whether libnats took it. `m` is taken
    /// (JetStream) or left to the caller to destroy.
    bool publish(NatsExportStream& s, natsMsg*& m);
    /// Shows the local subscribers of `s` the loss counted and not yet shown
    /// (Publisher::record_gap()), waiting for room while `keep_waiting()`; false if it gave up.
    template <typename KeepWaiting>
    bool show_loss(NatsImportStream& s, KeepWaiting keep_waiting);
    /// Counts `gap` messages of origin `from` as lost on import `s`, to be shown
    /// to its local subscribers; logs it (`where`: "before sequence N").
    void count_gap(NatsImportStream& s, std::uint64_t gap, const OriginFields& from,
                   const std::string& where) {
        s.lost.fetch_add(gap, std::memory_order_relaxed);
        s.unshown += gap;
        log_burst("import of '" + s.rule.subject + "' into '" + s.rule.channel +
                  "': " + std::to_string(gap) + " message(s) from '" + std::string{from.node} +
                  "' channel '" + std::string{from.channel} + "' lost " + where);
    }
    /// A durable import met `gap` missing messages of origin `o` before `sequence`: whether
    /// to send this one back and wait for them. JetStream delivers out of order after a
    /// failover: what the lost connection held unacknowledged comes again only after
    /// ack_wait, while newer messages come at once. So the import waits up to ack_wait and
    /// kGapGrace from the first sight of the gap, keeping the order and losing nothing;
    /// a gap still open then (a message the exporter never got into the stream) is lost.
    bool wait_for_gap(NatsImportStream& s, NatsImportStream::Origin& o, std::uint64_t gap,
                      const OriginFields& from, std::uint64_t sequence) {
        const auto now = std::chrono::steady_clock::now();
        if (o.gap_since == std::chrono::steady_clock::time_point{}) {
            o.gap_since = now;
            log_burst("import of '" + s.rule.subject + "' into '" + s.rule.channel +
                      "': waiting for " + std::to_string(gap) + " message(s) from '" +
                      std::string{from.node} + "' channel '" + std::string{from.channel} +
                      "' before sequence " + std::to_string(sequence) +
                      " (JetStream delivers them again)");
        }
        return now - o.gap_since < config.ack_wait + kGapGrace;
    }
    /// Publishes `data` into the channel of `s`, which the bridge also exports, noting its
    /// sequence number for those exports to skip; waits up to kEndpointPoll for room.
    Result<void> send_noted(NatsImportStream& s, std::span<const std::byte> data);
    /// Publishes an imported message into the local channel, after the loss before it.
    Delivery deliver(NatsImportStream& s, natsMsg* m, std::span<const std::byte> data,
                     bool durable);
    /// "NODE INCARNATION CHANNEL ": what the headers of export `s` start with.
    std::string origin_header_prefix(const NatsExportStream& s) const {
        return node + ' ' + incarnation_text + ' ' + s.rule.channel + ' ';
    }
    /// JetStream's de-duplication id of the message numbered `seq` (kHeaderMsgId).
    std::string message_id(const NatsExportStream& s, std::string_view seq) const {
        return node + '/' + incarnation_text + '/' + s.rule.channel + '/' + std::string{seq};
    }
    /// Publishes a heartbeat of `s` (kHeaderIdle); what NATS refuses is not counted.
    void heartbeat(NatsExportStream& s);
    void teardown();

    static void on_disconnected(natsConnection*, void* self) {
        auto* impl = static_cast<Impl*>(self);
        if (!impl->stopped_for_good()) {
            impl->set_state(BridgeState::connecting, "disconnected from NATS");
        }
    }
    /// libnats calls it last, from its own thread, after the connection is closed: the
    /// Impl must outlive it, so teardown() waits for it.
    static void on_closed(natsConnection* nc, void* self) {
        auto* impl = static_cast<Impl*>(self);
        bool stopping = false;
        std::string earlier;
        {
            std::lock_guard lock{impl->mu};
            impl->nats_closed = true;
            // stop(), or the bridge stopped itself with its reason (run()): nothing to add.
            stopping = impl->stopping || impl->status.bridge.state == BridgeState::stopped;
            earlier = impl->last_connection_error;
            impl->cv.notify_all();
        }
        if (!stopping) {
            // libnats gave up: a server refused this bridge's credentials twice in a row, or
            // answered with an error that ends a connection. Nothing more moves until a
            // reload restarts the bridge. Its last error is then often only "no server";
            // the reason came before.
            const char* text = nullptr;
            const bool vague = natsConnection_GetLastError(nc, &text) == NATS_NO_SERVER;
            impl->set_state(BridgeState::stopped,
                            "NATS closed the connection: " +
                                (vague && !earlier.empty() ? earlier : impl->connection_error(nc)) +
                                "; fix it, then reload");
        }
    }
    /// The configured servers as they may be shown.
    std::string servers_shown() const {
        std::string out;
        for (const auto& url : config.servers) {
            out += (out.empty() ? "" : ", ") + redact_nats_url(url);
        }
        return out;
    }
    /// The last error libnats has for `nc`, with the servers it was trying.
    std::string connection_error(natsConnection* nc) const {
        const char* text = nullptr;
        const natsStatus s = natsConnection_GetLastError(nc, &text);
        return (s != NATS_OK && text != nullptr && *text != '\0' ? std::string{text}
                                                                 : std::string{"no error given"}) +
               " (servers " + servers_shown() + ")";
    }
    static void on_reconnected(natsConnection* nc, void* self) {
        auto* impl = static_cast<Impl*>(self);
        char url[256] = {0};
        natsConnection_GetConnectedUrl(nc, url, sizeof url);
        {
            std::lock_guard lock{impl->mu};
            ++impl->status.bridge.reconnects;
            impl->status.bridge.peer = redact_nats_url(url);
        }
        impl->log("reconnected to " + redact_nats_url(url));
        impl->set_state(BridgeState::connected);
    }
    static void on_connected(natsConnection* nc, void* self) {
        auto* impl = static_cast<Impl*>(self);
        char url[256] = {0};
        natsConnection_GetConnectedUrl(nc, url, sizeof url);
        {
            std::lock_guard lock{impl->mu};
            impl->status.bridge.peer = redact_nats_url(url);
        }
        impl->log("connected to " + redact_nats_url(url));
        impl->set_state(BridgeState::connected);
    }
    static void on_async_error(natsConnection* nc, natsSubscription* sub, natsStatus err,
                               void* self) {
        auto* impl = static_cast<Impl*>(self);
        std::string subject;
        for (const auto& s : impl->imports) {
            if (s->sub == sub) {
                subject = " (import of '" + s->rule.subject + "')";
            }
        }
        if (sub == nullptr) {
            // About the connection (credentials refused on a reconnect, say): kept for the
            // line on_closed() writes if libnats then gives up.
            const std::string text = impl->connection_error(nc);
            std::lock_guard lock{impl->mu};
            impl->last_connection_error = text;
        }
        // What a slow consumer dropped shows as a sequence gap on the next message from the
        // same origin: counted there, and shown to the local subscribers.
        impl->log_burst("NATS reports " + std::string{natsStatus_GetText(err)} + subject);
    }
    /// A JetStream export's message that the stream refused, or did not acknowledge within
    /// ack_timeout: counted once as lost, on the export that sent it (by its headers).
    static void on_pub_ack_error(jsCtx*, jsPubAckErr* pae, void* self) {
        auto* impl = static_cast<Impl*>(self);
        const auto from =
            pae->Msg != nullptr ? parse_origin(nats_header(pae->Msg, kHeaderOrigin)) : std::nullopt;
        const char* subject = pae->Msg != nullptr ? natsMsg_GetSubject(pae->Msg) : nullptr;
        for (const auto& e : impl->exports) {
            if (from && subject != nullptr && e->rule.channel == from->channel &&
                e->rule.subject == subject) {
                e->lost.fetch_add(1, std::memory_order_relaxed);
                e->messages.fetch_sub(1, std::memory_order_relaxed);
                e->bytes.fetch_sub(static_cast<std::uint64_t>(natsMsg_GetDataLength(pae->Msg)),
                                   std::memory_order_relaxed);
                break;
            }
        }
        impl->log_burst("JetStream did not take a message of the export to '" +
                        std::string{subject != nullptr ? subject : "?"} +
                        "'; it is counted as lost: " +
                        (pae->ErrText != nullptr && *pae->ErrText != '\0'
                             ? std::string{pae->ErrText}
                             : std::string{natsStatus_GetText(pae->Err)}));
    }
    static void on_message(natsConnection*, natsSubscription*, natsMsg* m, void* closure);
};

template <typename KeepWaiting>
bool NatsBridgeRunner::Impl::show_loss(NatsImportStream& s, KeepWaiting keep_waiting) {
    while (s.unshown > 0) {
        auto g = s.publisher->record_gap(s.unshown, kEndpointPoll);
        if (g.has_value()) {
            s.unshown = 0;
        } else if (channel_full(g.code())) {
            if (!keep_waiting()) {
                return false;
            }
        } else {
            // A queue has no way to tell its consumers (Errc::invalid_argument); anything
            // else shows again on the message itself. The loss stays in the statistics.
            if (!s.gap_refusal_logged) {
                s.gap_refusal_logged = true;
                log("import into '" + s.rule.channel +
                    "': lost messages are counted here only: " + g.error().message());
            }
            s.unshown = 0;
        }
    }
    return true;
}

Result<void> NatsBridgeRunner::Impl::send_noted(NatsImportStream& s,
                                                std::span<const std::byte> data) {
    auto reserved = s.publisher->reserve(1, kEndpointPoll);
    if (!reserved.has_value()) {
        return reserved.error();
    }
    WriteBatch& batch = reserved.value();
    if (data.size() > batch.capacity()) {
        s.publisher->abandon(batch);
        return make_error(Errc::message_too_large,
                          "a message of " + std::to_string(data.size()) +
                              " bytes does not fit the slots of '" + s.rule.channel + "' (" +
                              std::to_string(batch.capacity()) + " bytes)");
    }
    std::copy(data.begin(), data.end(), batch.data(0).begin());
    batch.set_length(0, data.size());
    for (const auto& export_set : s.exported_too) {
        export_set->note(batch.sequence(0)); // before the export can read it
    }
    auto committed = s.publisher->commit(batch);
    if (!committed.has_value()) {
        for (const auto& export_set : s.exported_too) {
            export_set->forget(batch.sequence(0));
        }
        s.publisher->abandon(batch);
    }
    return committed;
}

Delivery NatsBridgeRunner::Impl::deliver(NatsImportStream& s, natsMsg* m,
                                         std::span<const std::byte> data, bool durable) {
    // A full local channel (block overflow) makes the import wait, for as long as it stays
    // full: this pauses the subscription. libnats keeps what arrives meanwhile up to the
    // subscription's pending limits and drops the rest (a slow consumer), which the next
    // message's sequence shows as a gap. A durable message tells JetStream it is still being
    // worked on, so that it is not delivered again meanwhile.
    // The clock is read only once the import waits, not for each message that has room: the
    // half ack_wait before the first InProgress counts from the first wait.
    const auto half_ack_wait = config.ack_wait / 2;
    std::optional<std::chrono::steady_clock::time_point> progress_at;
    const auto keep_waiting = [&] {
        if (stopped()) {
            return false;
        }
        if (durable) {
            const auto now = std::chrono::steady_clock::now();
            if (!progress_at) {
                progress_at = now + half_ack_wait;
            } else if (now >= *progress_at) {
                natsMsg_InProgress(m, nullptr);
                progress_at = now + half_ack_wait;
            }
        }
        return true;
    };
    // A stop while waiting: a durable message comes again to the next bridge; a core NATS
    // message cannot, and is lost.
    const Delivery given_up = durable ? Delivery::retry : Delivery::lost;

    if (!show_loss(s, keep_waiting)) {
        return given_up;
    }
    for (;;) {
        auto sent = s.exported_too.empty() ? s.publisher->try_send(data) : send_noted(s, data);
        if (sent.has_value()) {
            return Delivery::published;
        }
        if (channel_full(sent.code()) && s.exported_too.empty()) {
            sent = s.publisher->send(data, kEndpointPoll);
            if (sent.has_value()) {
                return Delivery::published;
            }
        }
        if (channel_full(sent.code())) {
            if (!keep_waiting()) {
                return given_up;
            }
            continue;
        }
        log_burst("import of '" + s.rule.subject + "' into '" + s.rule.channel +
                  "': a message could not be published" +
                  (durable && sent.code() != Errc::message_too_large
                       ? " (JetStream delivers it again)"
                       : " and is lost") +
                  ": " + sent.error().message());
        // A message too large for the channel's slots never fits; another refusal (the local
        // daemon gone, say) may pass, and a durable message is asked for again later.
        return durable && sent.code() != Errc::message_too_large ? Delivery::retry : Delivery::lost;
    }
}

void NatsBridgeRunner::Impl::on_message(natsConnection*, natsSubscription*, natsMsg* m,
                                        void* closure) {
    auto* s = static_cast<NatsImportStream*>(closure);
    std::lock_guard cb_lock{s->cb_mu};
    if (s->closing) {
        natsMsg_Destroy(m);
        return;
    }
    Impl* impl = s->owner;
    const bool durable = !s->rule.durable.empty();
    const auto done = [&](Delivery d) {
        if (durable) {
            switch (d) {
            case Delivery::published:
                natsMsg_Ack(m, nullptr);
                break;
            case Delivery::lost:
                natsMsg_Term(m, nullptr); // never deliverable: do not send it again
                break;
            case Delivery::retry:
                natsMsg_NakWithDelay(m, kRedeliveryDelay.count(), nullptr);
                break;
            }
        }
        nats_free(m); // libnats does not touch a message after its callback
    };

    // Origin first: every message but a heartbeat has it, and libnats formats an error
    // message for each header it does not find.
    s->headers.read(m);
    const char* origin_text = s->headers.find(kHeaderOrigin);
    const char* idle = origin_text == nullptr ? s->headers.find(kHeaderIdle) : nullptr;
    const auto fields = parse_origin(idle != nullptr ? idle : origin_text);
    if (fields && fields->node == impl->node) {
        if (idle == nullptr) {
            s->looped.fetch_add(1, std::memory_order_relaxed);
        }
        done(Delivery::published);
        return;
    }
    if (idle != nullptr) {
        // An idle exporter's heartbeat: what it sent up to its last sequence and this import
        // has not accounted for was lost on the way.
        if (fields) {
            auto& o = s->origin_of(*fields);
            if (o.incarnation != fields->incarnation) {
                o = {fields->incarnation, fields->number}; // met first idle: nothing missed
            } else if (fields->number > o.last) {
                impl->count_gap(*s, fields->number - o.last, *fields,
                                "after sequence " + std::to_string(o.last));
                o.last = fields->number;
                impl->show_loss(*s, [impl] { return !impl->stopped(); });
            }
        }
        done(Delivery::published);
        return;
    }
    NatsImportStream::Origin* origin = nullptr;
    const std::uint64_t sequence = fields ? fields->number : 0;
    if (sequence > 0) {
        auto& o = s->origin_of(*fields);
        if (o.incarnation != fields->incarnation) {
            o = {fields->incarnation, sequence - 1}; // a new origin (or a restarted one)
        }
        if (sequence <= o.last) {
            s->duplicates.fetch_add(1, std::memory_order_relaxed);
            done(Delivery::published);
            return;
        }
        origin = &o;
        // Every number skipped was lost on the way (a publish the exporter could not make,
        // core NATS dropping while a connection was down, a slow consumer): counted here
        // once, and shown to the local subscribers before this message. The message itself
        // is accounted for below, whatever becomes of it.
        if (const std::uint64_t gap = sequence - o.last - 1; gap > 0) {
            if (durable && impl->wait_for_gap(*s, o, gap, *fields, sequence)) {
                done(Delivery::retry); // comes again, after the missing ones
                return;
            }
            impl->count_gap(*s, gap, *fields, "before sequence " + std::to_string(sequence));
        }
        o.gap_since = {};
        o.last = sequence - 1;
    }

    const auto data = std::as_bytes(
        std::span{natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))});
    const Delivery d = impl->deliver(*s, m, data, durable);
    switch (d) {
    case Delivery::published:
        s->messages.fetch_add(1, std::memory_order_relaxed);
        s->bytes.fetch_add(data.size(), std::memory_order_relaxed);
        break;
    case Delivery::lost:
        s->lost.fetch_add(1, std::memory_order_relaxed);
        s->unshown += 1;
        break;
    case Delivery::retry:
        break; // not accounted for: it comes again
    }
    if (origin != nullptr && d != Delivery::retry) {
        origin->last = sequence;
    }
    done(d);
}

bool NatsBridgeRunner::Impl::connect_local() {
    bool said = false;
    while (!stopped()) {
        auto c = Client::connect(local_options);
        if (c.has_value()) {
            local.emplace(std::move(c.value()));
            return true;
        }
        if (!said) {
            set_state(BridgeState::backing_off,
                      "cannot reach the local daemon: " + c.error().message());
            said = true;
        }
        if (!pause(kLocalRetry)) {
            return false;
        }
    }
    return false;
}

bool NatsBridgeRunner::Impl::open_endpoints() {
    for (const auto& e : config.exports) {
        if (is_glob(e.channel)) {
            open_glob_export(e);
            continue;
        }
        auto sub = local->open_subscriber(e.channel);
        if (!sub.has_value()) {
            set_state(BridgeState::stopped,
                      "export of '" + e.channel + "': " + sub.error().message());
            return false;
        }
        auto s = std::make_unique<NatsExportStream>();
        s->rule = e;
        s->subscriber.emplace(std::move(sub.value()));
        exports.push_back(std::move(s));
    }
    for (const auto& i : config.imports) {
        auto pub = local->open_publisher(i.channel);
        if (!pub.has_value()) {
            set_state(BridgeState::stopped,
                      "import into '" + i.channel + "': " + pub.error().message());
            return false;
        }
        auto s = std::make_unique<NatsImportStream>();
        s->owner = this;
        s->rule = i;
        s->publisher.emplace(std::move(pub.value()));
        for (auto& e : exports) {
            if (e->rule.channel == i.channel) {
                if (!e->imported) {
                    e->imported = std::make_shared<ImportedSequences>();
                }
                s->exported_too.push_back(e->imported);
            }
        }
        imports.push_back(std::move(s));
    }
    return true;
}

void NatsBridgeRunner::Impl::open_glob_export(const NatsExport& rule) {
    auto channels = local->list_channels();
    if (!channels.has_value()) {
        log("export of '" + rule.channel +
            "': the daemon's channels cannot be listed: " + channels.error().message());
        return;
    }
    const auto named = [this](const std::string& name) {
        // A channel that an entry names, or that an earlier glob matched, is exported as
        // that entry says, and once.
        return std::any_of(config.exports.begin(), config.exports.end(),
                           [&](const NatsExport& e) { return e.channel == name; }) ||
               std::any_of(exports.begin(), exports.end(),
                           [&](const auto& s) { return s->rule.channel == name; });
    };
    std::size_t opened = 0;
    for (const ChannelSummary& c : channels.value()) {
        const std::string& name = c.info.name;
        auto subject = export_subject(rule, name);
        if (!subject.has_value()) {
            if (subject.code() != Errc::not_found) {
                log(subject.error().detail + "; it is not exported");
            }
            continue;
        }
        if (named(name)) {
            continue;
        }
        auto sub = local->open_subscriber(name);
        if (!sub.has_value()) {
            // One channel the glob matches and the bridge may not read (an ACL) does not
            // stop the others.
            log("export of '" + rule.channel + "': channel '" + name +
                "' is not exported: " + sub.error().message());
            continue;
        }
        auto s = std::make_unique<NatsExportStream>();
        s->rule = {name, std::move(subject.value())};
        s->subscriber.emplace(std::move(sub.value()));
        log("export of '" + rule.channel + "': channel '" + name + "' to '" + s->rule.subject +
            "'");
        exports.push_back(std::move(s));
        ++opened;
    }
    if (opened == 0) {
        log("export of '" + rule.channel +
            "' matches no channel of the daemon yet; one created later is exported when the "
            "bridge restarts");
    }
}

bool NatsBridgeRunner::Impl::connect_nats() {
    natsOptions* opts = nullptr;
    natsStatus s = natsOptions_Create(&opts);
    std::vector<const char*> urls;
    for (const auto& u : config.servers) {
        urls.push_back(u.c_str());
    }
    std::string step = "options";
    const auto check = [&](natsStatus st, const char* what) {
        if (s == NATS_OK && st != NATS_OK) {
            s = st;
            step = what;
        }
    };
    if (s == NATS_OK) {
        check(natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size())), "servers");
        check(natsOptions_SetName(opts, ("shmbusd bridge " + config.name).c_str()), "name");
        // Publishes go into libnats' buffer, and each export flushes its batch itself
        // (flush_batch()): libnats' flusher thread, which would otherwise wait a
        // millisecond for more, only writes out what a heartbeat leaves behind.
        check(natsOptions_SetMaxReconnect(opts, -1), "reconnect");
        check(natsOptions_SetReconnectWait(opts, config.reconnect_wait.count()), "reconnect");
        check(natsOptions_SetTimeout(opts, config.connect_timeout.count()), "timeout");
        check(natsOptions_SetReconnectBufSize(opts, static_cast<int>(config.reconnect_buffer)),
              "reconnect buffer");
        check(natsOptions_SetDisconnectedCB(opts, &Impl::on_disconnected, this), "callbacks");
        check(natsOptions_SetReconnectedCB(opts, &Impl::on_reconnected, this), "callbacks");
        check(natsOptions_SetClosedCB(opts, &Impl::on_closed, this), "callbacks");
        check(natsOptions_SetErrorHandler(opts, &Impl::on_async_error, this), "callbacks");
        if (!config.credentials_file.empty()) {
            check(natsOptions_SetUserCredentialsFromFiles(opts, config.credentials_file.c_str(),
                                                          nullptr),
                  "credentials file");
        }
        if (config.tls) {
            check(natsOptions_SetSecure(opts, true), "tls");
            if (!config.tls->ca_file.empty()) {
                check(natsOptions_LoadCATrustedCertificates(opts, config.tls->ca_file.c_str()),
                      "tls ca_file");
            }
            if (!config.tls->cert_file.empty() || !config.tls->key_file.empty()) {
                check(natsOptions_LoadCertificatesChain(opts, config.tls->cert_file.c_str(),
                                                        config.tls->key_file.c_str()),
                      "tls cert_file/key_file");
            }
            if (config.tls->skip_verify) {
                check(natsOptions_SkipServerVerification(opts, true), "tls");
            }
        }
    }
    natsConnection* conn = nullptr;
    if (s == NATS_OK) {
        // A first attempt of our own: a server that answers and refuses (credentials, TLS)
        // is reported at once, in libnats' words. Only when none answers at all does libnats
        // go on trying (RetryOnFailedConnect); on_connected() says when it got in.
        s = natsConnection_Connect(&conn, opts);
        step = "connect";
        if (s == NATS_NO_SERVER) {
            s = natsOptions_SetRetryOnFailedConnect(opts, true, &Impl::on_connected, this);
            if (s == NATS_OK) {
                s = natsConnection_Connect(&conn, opts);
            }
            if (s == NATS_NOT_YET_CONNECTED) {
                set_state(BridgeState::connecting, "no NATS server answers yet; retrying");
                s = NATS_OK;
            }
        }
    }
    if (s != NATS_OK) {
        const std::string why = nats_error(s);
        natsOptions_Destroy(opts);
        set_state(BridgeState::stopped,
                  "NATS " + step + " (servers " + servers_shown() + "): " + why);
        return false;
    }
    natsOptions_Destroy(opts);
    nc = conn;
    if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
        on_connected(nc, this);
    }
    const bool need_js =
        config.jetstream || std::any_of(config.imports.begin(), config.imports.end(),
                                        [](const NatsImport& i) { return !i.durable.empty(); });
    if (need_js) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.PublishAsync.MaxPending = config.max_pending_acks;
        if (config.jetstream) {
            jo.PublishAsync.ErrHandler = &Impl::on_pub_ack_error;
            jo.PublishAsync.ErrHandlerClosure = this;
        }
        s = natsConnection_JetStream(&js, nc, &jo);
        if (s != NATS_OK) {
            set_state(BridgeState::stopped, "JetStream context: " + nats_error(s));
            return false;
        }
    }
    for (auto& imp : imports) {
        if (imp->rule.durable.empty()) {
            s = natsConnection_Subscribe(&imp->sub, nc, imp->rule.subject.c_str(),
                                         &Impl::on_message, imp.get());
            if (s == NATS_OK) {
                // Generous limits: a slow local channel is felt by the server's slow-consumer
                // handling rather than by a small library queue.
                s = natsSubscription_SetPendingLimits(imp->sub, 1 << 20, 256 << 20);
            }
        } else {
            jsSubOptions so;
            jsSubOptions_Init(&so);
            so.ManualAck = true;
            so.Config.Durable = imp->rule.durable.c_str();
            so.Config.AckPolicy = js_AckExplicit;
            so.Config.DeliverPolicy = js_DeliverAll;
            so.Config.AckWait = std::chrono::nanoseconds{config.ack_wait}.count();
            jsErrCode code{};
            s = js_Subscribe(&imp->sub, js, imp->rule.subject.c_str(), &Impl::on_message, imp.get(),
                             nullptr, &so, &code);
        }
        if (s != NATS_OK) {
            set_state(BridgeState::stopped,
                      "import of '" + imp->rule.subject + "'" +
                          (imp->rule.durable.empty() ? std::string{}
                                                     : " (durable '" + imp->rule.durable + "')") +
                          ": " + nats_error(s));
            return false;
        }
    }
    if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
        // The server has every subscription once this returns: a publisher that starts
        // after status() shows the bridge connected loses nothing to a subscription in flight.
        natsConnection_FlushTimeout(nc, config.connect_timeout.count());
    }
    return true;
}

bool NatsBridgeRunner::Impl::publish(NatsExportStream& s, natsMsg*& m) {
    natsStatus st = NATS_OK;
    if (js != nullptr && config.jetstream) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        // Past this an acknowledgement that never came (its server crashed with the message
        // in flight) is reported to on_pub_ack_error() and counted, and frees its place.
        po.MaxWait = config.ack_timeout.count();
        st = js_PublishMsgAsync(js, &m, &po); // takes m on success
        // NATS_TIMEOUT: max_pending_acks are in flight (libnats waited StallWait for one to
        // come back). The export waits with the message in hand: the local channel applies
        // its own policy meanwhile, as with any slow subscriber.
        while (st == NATS_TIMEOUT && !exports_stop.load(std::memory_order_relaxed)) {
            st = js_PublishMsgAsync(js, &m, &po);
        }
    } else {
        st = natsConnection_PublishMsg(nc, m); // copies m into libnats' buffer
    }
    if (st != NATS_OK && !s.refusal_logged) {
        s.refusal_logged = true;
        log("export of '" + s.rule.channel + "' to '" + s.rule.subject +
            "': NATS refuses messages, which are counted as lost until it takes them again: " +
            nats_error(st));
    } else if (st == NATS_OK) {
        s.refusal_logged = false;
    }
    return st == NATS_OK;
}

void NatsBridgeRunner::Impl::export_loop(NatsExportStream& s) {
    ExportScratch x;
    x.origin_prefix = origin_header_prefix(s);
    x.origin_text = x.origin_prefix;
    {
        const std::string longest_number(20, '9'); // of a 64-bit sequence
        const std::string origin = x.origin_prefix + longest_number;
        const std::string id = message_id(s, longest_number);
        const NatsHeader longest[] = {{kHeaderOrigin, origin}, {kHeaderMsgId, id}};
        x.room = nats_encoded_size(longest);
    }
    x.buf.resize(x.room + static_cast<std::size_t>(s.subscriber->info().slot_size));
    const auto into = std::span{x.buf}.subspan(x.room);
    while (!exports_stop.load(std::memory_order_relaxed)) {
        auto r = s.subscriber->receive_copy(into, kEndpointPoll);
        if (!r.has_value()) {
            if (r.code() == Errc::timed_out || r.code() == Errc::would_block) {
                const auto now = std::chrono::steady_clock::now();
                if (!config.jetstream && s.next_sequence > 1 && now >= s.heartbeat_at) {
                    heartbeat(s);
                    s.heartbeat_at = now + kHeartbeatEvery;
                }
                continue;
            }
            set_state(BridgeState::stopped,
                      "export of '" + s.rule.channel + "': " + r.error().message());
            return;
        }
        // A batch: what the channel already holds, up to a bound, each publish only written
        // into libnats' buffer (which writes itself out whenever it fills), then one flush.
        // The flush waits for the server's answer, and what arrives meanwhile makes the next
        // batch: at a low rate each message goes out alone and at once, at a high rate the
        // writes and the server's work are shared by many. A batch cut at the bound (the
        // channel holds more) is not flushed: the next one follows at once, libnats' full
        // buffer writes itself out (waiting on the socket, which is the server's pace), and
        // the batch that empties the channel flushes them all.
        std::size_t count = 1;
        std::uint64_t bytes = r.value().size;
        const auto batch_full = [&] { return count >= kExportBatch || bytes >= kExportBatchBytes; };
        export_one(s, x, r.value());
        while (!batch_full()) {
            auto more = s.subscriber->try_receive_copy(into);
            if (!more.has_value()) {
                break; // empty for now; an error comes back on the blocking receive
            }
            ++count;
            bytes += more.value().size;
            export_one(s, x, more.value());
        }
        if (!batch_full()) {
            flush_batch();
        }
        s.heartbeat_at = std::chrono::steady_clock::now() + kHeartbeatIdle;
    }
}

void NatsBridgeRunner::Impl::export_one(NatsExportStream& s, ExportScratch& x,
                                        const Received& got) {
    if (s.imported) {
        if (s.imported->was_imported(got.sequence)) {
            return; // it came from NATS: it does not go back
        }
        // What this subscriber lost includes the gaps the import recorded (loss that
        // happened elsewhere): passing them on would send each gap round between the
        // daemons for ever. The channel's own counters show what was lost here.
    } else if (got.lost_before > 0) {
        s.lost.fetch_add(got.lost_before, std::memory_order_relaxed);
        s.next_sequence += got.lost_before; // the importer sees the gap
    }
    // Every sequence number is taken, published or not: a message NATS refuses is
    // counted here once, and its importers see the gap it leaves.
    const std::uint64_t seq = s.next_sequence++;
    const std::string seq_text = std::to_string(seq);
    x.origin_text.resize(x.origin_prefix.size());
    x.origin_text += seq_text;
    const std::string id = config.jetstream ? message_id(s, seq_text) : std::string{};
    const NatsHeader headers[] = {{kHeaderOrigin, x.origin_text}, {kHeaderMsgId, id}};
    natsMsg* m = nullptr;
    const natsStatus st = nats_message(&m, s.rule.subject, x.buf, x.room, got.size,
                                       std::span{headers}.first(config.jetstream ? 2 : 1));
    // Counted before the publish: a JetStream acknowledgement error may arrive (and take
    // them back) before the publish returns.
    s.messages.fetch_add(1, std::memory_order_relaxed);
    s.bytes.fetch_add(got.size, std::memory_order_relaxed);
    const bool published = st == NATS_OK && publish(s, m);
    if (m != nullptr) {
        // NULL after a successful asynchronous (JetStream) publish; else libnats has copied
        // it into its buffer, or refused it.
        nats_free(m);
    }
    if (!published) {
        s.messages.fetch_sub(1, std::memory_order_relaxed);
        s.bytes.fetch_sub(got.size, std::memory_order_relaxed);
        s.lost.fetch_add(1, std::memory_order_relaxed);
    }
}

void NatsBridgeRunner::Impl::flush_batch() {
    // While libnats reconnects, publishes go to its reconnect buffer and a flush would only
    // wait for the reconnection: the batch goes out when it is back.
    if (natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED) {
        return;
    }
    // A flush that times out loses nothing (what is buffered goes out with the next one, or
    // with libnats' own flusher); it only bounds how long the export waits for the server.
    natsConnection_FlushTimeout(nc, kFlushTimeout.count());
}

void NatsBridgeRunner::Impl::heartbeat(NatsExportStream& s) {
    const std::string idle = origin_header_prefix(s) + std::to_string(s.next_sequence - 1);
    const NatsHeader headers[] = {{kHeaderIdle, idle}};
    natsMsg* m = nullptr;
    if (nats_message(&m, s.rule.subject, {}, 0, 0, headers) == NATS_OK) {
        natsConnection_PublishMsg(nc, m); // a heartbeat lost is made good by the next one
        nats_free(m);
    }
}

void NatsBridgeRunner::Impl::run() {
    if (auto v = validate(config); !v.has_value()) {
        set_state(BridgeState::stopped, v.error().message());
        return;
    }
    set_state(BridgeState::connecting);
    if (!connect_local() || !open_endpoints() || !connect_nats()) {
        return;
    }
    // A message too large for the servers would be refused by libnats: refuse the export
    // instead, naming it, before anything is sent (the configuration does so for the channels
    // it declares; here also for channels created at run time).
    const std::int64_t announced = natsConnection_GetMaxPayload(nc);
    for (const auto& e : exports) {
        const auto slot = e->subscriber->info().slot_size;
        auto fits = check_export_payload(e->rule.channel, slot, config.max_payload,
                                         "the servers' ('nats.max_payload')");
        if (fits && announced > 0) {
            fits =
                check_export_payload(e->rule.channel, slot, static_cast<std::uint64_t>(announced),
                                     "the connected server's");
        }
        if (!fits) {
            set_state(BridgeState::stopped, fits.error().detail);
            natsConnection_Close(nc); // the imports stop too; teardown() waits for the close
            return;
        }
    }
    {
        std::lock_guard lock{mu};
        ready = true;
    }
    for (auto& e : exports) {
        e->thread = std::thread{[this, s = e.get()] { export_loop(*s); }};
    }
    std::unique_lock lock{mu};
    cv.wait(lock, [this] { return stopping; });
}

void NatsBridgeRunner::Impl::teardown() {
    {
        std::lock_guard lock{mu};
        ready = false;
    }
    exports_stop = true;
    for (auto& e : exports) {
        if (e->thread.joinable()) {
            e->thread.join();
        }
    }
    if (js != nullptr && config.jetstream) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 5000;
        js_PublishAsyncComplete(js, &po);
    }
    for (auto& i : imports) {
        {
            std::lock_guard cb_lock{i->cb_mu}; // after the message in hand, if any
            i->closing = true;
        }
        // A durable consumer must stay on the server for the next bridge: libnats deletes one
        // it created on Unsubscribe or Drain, so its subscription ends with the connection.
        if (i->sub != nullptr && i->rule.durable.empty()) {
            natsSubscription_Unsubscribe(i->sub);
        }
    }
    if (nc != nullptr) {
        natsConnection_FlushTimeout(nc, 2000); // acknowledgements and exports out
    }
    for (auto& i : imports) {
        if (i->sub != nullptr) {
            natsSubscription_Destroy(i->sub);
            i->sub = nullptr;
        }
    }
    if (js != nullptr) {
        jsCtx_Destroy(js);
        js = nullptr;
    }
    if (nc != nullptr) {
        natsConnection_Close(nc);
        {
            std::unique_lock lock{mu};
            if (!cv.wait_for(lock, 10s, [this] { return nats_closed; })) {
                log("libnats did not confirm the connection's close within 10 s");
            }
        }
        natsConnection_Destroy(nc);
        nc = nullptr;
    }
    imports.clear();
    exports.clear();
    local.reset();
}

NatsBridgeRunner::NatsBridgeRunner(NatsBridgeConfig config, ClientOptions local, std::string node,
                                   std::uint64_t incarnation,
                                   std::function<void(std::string_view)> log)
    : impl_{std::make_unique<Impl>()} {
    impl_->config = std::move(config);
    impl_->local_options = std::move(local);
    impl_->node = std::move(node);
    impl_->incarnation = incarnation;
    impl_->incarnation_text = std::to_string(incarnation);
    impl_->log_fn = std::move(log);
    impl_->status.bridge.name = impl_->config.name;
}

NatsBridgeRunner::~NatsBridgeRunner() {
    stop();
}

void NatsBridgeRunner::start() {
    std::lock_guard lock{impl_->mu};
    if (!impl_->thread.joinable() && !impl_->stopping) {
        impl_->exports_stop = false;
        impl_->nats_closed = false;
        impl_->thread = std::thread{[impl = impl_.get()] { impl->run(); }};
    }
}

void NatsBridgeRunner::stop() {
    {
        std::lock_guard lock{impl_->mu};
        impl_->stopping = true;
    }
    impl_->cv.notify_all();
    if (impl_->thread.joinable()) {
        impl_->thread.join();
        impl_->teardown();
        std::lock_guard lock{impl_->mu};
        impl_->status.bridge.state = BridgeState::stopped;
    }
}

NatsBridgeStatus NatsBridgeRunner::status() const {
    NatsBridgeStatus out;
    std::lock_guard lock{impl_->mu};
    out = impl_->status;
    if (!impl_->ready) {
        return out;
    }
    // The streams and the connection stay as they are from `ready` until teardown() clears it.
    for (const auto& e : impl_->exports) {
        StreamStats st;
        st.wire_name = e->rule.subject;
        st.local_name = e->rule.channel;
        st.exporting = true;
        st.messages = e->messages.load();
        st.bytes = e->bytes.load();
        st.lost = e->lost.load();
        out.bridge.session.streams.push_back(std::move(st));
    }
    for (const auto& i : impl_->imports) {
        StreamStats st;
        st.wire_name = i->rule.subject;
        st.local_name = i->rule.channel;
        st.messages = i->messages.load();
        st.bytes = i->bytes.load();
        st.lost = i->lost.load();
        out.duplicates += i->duplicates.load();
        out.looped += i->looped.load();
        out.bridge.session.streams.push_back(std::move(st));
    }
    {
        const int buffered = natsConnection_Buffered(impl_->nc);
        out.pending_bytes = buffered > 0 ? static_cast<std::uint64_t>(buffered) : 0;
        char** servers = nullptr;
        int count = 0;
        if (natsConnection_GetServers(impl_->nc, &servers, &count) == NATS_OK) {
            for (int k = 0; k < count; ++k) {
                out.known_servers.push_back(redact_nats_url(servers[k]));
                free(servers[k]);
            }
            free(servers);
        }
    }
    return out;
}

} // namespace shmbus::gateway
