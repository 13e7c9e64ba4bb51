// A NATS bridge; the design is in nats_bridge.hpp.
//
// Locks: Impl::mu guards the state shown by status() and the stop flag; it is never held
// while calling into libnats or the local client, so libnats' callbacks (which take it) can
// never wait on a thread that waits on them.
#include "gateway/nats_bridge.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace shmbus::gateway {

namespace {

using namespace std::chrono_literals;

constexpr auto kEndpointPoll = 50ms; // how soon an export's thread notices a stop
constexpr auto kLocalRetry = 500ms;  // between attempts to reach the local daemon

constexpr const char* kHeaderNode = "Shmbus-Node";
constexpr const char* kHeaderIncarnation = "Shmbus-Incarnation";
constexpr const char* kHeaderChannel = "Shmbus-Channel";
constexpr const char* kHeaderSequence = "Shmbus-Seq";

Error invalid(const std::string& bridge, const std::string& what) {
    return Error{Errc::invalid_argument, 0, "NATS bridge '" + bridge + "': " + what};
}

std::string nats_error(natsStatus s) {
    std::string text = natsStatus_GetText(s);
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    if (detail != nullptr && *detail != '\0' && text != detail) {
        text += " (" + std::string{detail} + ")";
    }
    return text;
}

std::optional<std::uint64_t> parse_u64(const char* text) {
    if (text == nullptr) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    const std::string_view s{text};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

const char* header(natsMsg* m, const char* key) {
    const char* v = nullptr;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : nullptr;
}

} // namespace

Result<void> validate(const NatsBridgeConfig& c) {
    if (c.name.empty() || c.name.size() > 63) {
        return invalid(c.name, "the name must be 1..63 bytes");
    }
    if (c.servers.empty()) {
        return invalid(c.name, "'connect' names no server");
    }
    for (const auto& url : c.servers) {
        if (!url.starts_with("nats://") && !url.starts_with("tls://")) {
            return invalid(c.name, "server '" + url + "' is not a nats:// or tls:// URL");
        }
    }
    for (const auto& e : c.exports) {
        if (e.channel.empty() || is_glob(e.channel)) {
            return invalid(c.name, "export channel '" + e.channel +
                                       "' must be one channel's name (globs are not supported "
                                       "on NATS exports)");
        }
        if (e.subject.empty() || e.subject.find_first_of("*> \t") != std::string::npos) {
            return invalid(c.name, "export of '" + e.channel + "': subject '" + e.subject +
                                       "' must be non-empty, without wildcards or spaces");
        }
    }
    for (const auto& i : c.imports) {
        if (i.subject.empty() || i.subject.find_first_of(" \t") != std::string::npos) {
            return invalid(c.name, "import into '" + i.channel + "': subject '" + i.subject +
                                       "' must be non-empty, without spaces");
        }
        if (i.channel.empty() || is_glob(i.channel)) {
            return invalid(c.name, "import of '" + i.subject + "': channel '" + i.channel +
                                       "' must be one channel's name");
        }
        if (i.durable.find_first_of(".*> \t") != std::string::npos) {
            return invalid(c.name, "import of '" + i.subject + "': durable name '" + i.durable +
                                       "' may not hold '.', '*', '>' or spaces");
        }
    }
    return ok();
}

struct NatsExportStream {
    NatsExport rule;
    std::optional<Subscriber> subscriber;
    std::uint64_t next_sequence{1}; // the stream's thread only
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> lost{0};
    std::thread thread;
};

struct NatsImportStream {
    NatsBridgeRunner::Impl* owner{nullptr};
    NatsImport rule;
    std::optional<Publisher> publisher;
    natsSubscription* sub{nullptr};
    /// Held by libnats' thread while it handles a message; teardown() takes it to set
    /// `closing`, after which a message is dropped unacknowledged (a durable one is then
    /// delivered again, to the next bridge).
    std::mutex cb_mu;
    bool closing{false};
    /// Per origin (node, channel): its incarnation and the last sequence published here.
    /// Only libnats' thread for this subscription touches it.
    struct Origin {
        std::uint64_t incarnation{0};
        std::uint64_t last{0};
    };
    std::map<std::string, Origin> origins;
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

    /// Waits `delay` or until stop(); false if stopped.
    bool pause(std::chrono::milliseconds delay) {
        std::unique_lock lock{mu};
        return !cv.wait_for(lock, delay, [this] { return stopping; });
    }

    void run();
    bool connect_local();
    bool open_endpoints();
    bool connect_nats();
    void export_loop(NatsExportStream& s);
    void teardown();

    static void on_disconnected(natsConnection*, void* self) {
        auto* impl = static_cast<Impl*>(self);
        if (!impl->stopped()) {
            impl->set_state(BridgeState::connecting, "disconnected from NATS");
        }
    }
    /// libnats calls it last, from its own thread, after the connection is closed: the
    /// Impl must outlive it, so teardown() waits for it.
    static void on_closed(natsConnection*, void* self) {
        auto* impl = static_cast<Impl*>(self);
        std::lock_guard lock{impl->mu};
        impl->nats_closed = true;
        impl->cv.notify_all();
    }
    static void on_reconnected(natsConnection* nc, void* self) {
        auto* impl = static_cast<Impl*>(self);
        char url[256] = {0};
        natsConnection_GetConnectedUrl(nc, url, sizeof url);
        {
            std::lock_guard lock{impl->mu};
            ++impl->status.bridge.reconnects;
            impl->status.bridge.peer = url;
        }
        impl->log(std::string{"reconnected to "} + url);
        impl->set_state(BridgeState::connected);
    }
    static void on_connected(natsConnection* nc, void* self) {
        auto* impl = static_cast<Impl*>(self);
        char url[256] = {0};
        natsConnection_GetConnectedUrl(nc, url, sizeof url);
        {
            std::lock_guard lock{impl->mu};
            impl->status.bridge.peer = url;
        }
        impl->log(std::string{"connected to "} + url);
        impl->set_state(BridgeState::connected);
    }
    static void on_async_error(natsConnection*, natsSubscription* sub, natsStatus err, void* self) {
        auto* impl = static_cast<Impl*>(self);
        std::string subject;
        for (const auto& s : impl->imports) {
            if (s->sub == sub) {
                subject = " (import of '" + s->rule.subject + "')";
            }
        }
        // A slow-consumer drop shows as a sequence gap on the next message, counted there.
        impl->log("NATS reports " + std::string{natsStatus_GetText(err)} + subject);
    }
    static void on_pub_ack_error(jsCtx*, jsPubAckErr* pae, void* closure) {
        auto* s = static_cast<NatsExportStream*>(closure);
        s->lost.fetch_add(1, std::memory_order_relaxed);
        s->messages.fetch_sub(1, std::memory_order_relaxed);
        (void)pae;
    }
    static void on_message(natsConnection*, natsSubscription*, natsMsg* m, void* closure);
};

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
    const auto done = [&](bool ack) {
        if (durable) {
            if (ack) {
                natsMsg_Ack(m, nullptr);
            } else {
                natsMsg_Nak(m, nullptr);
            }
        }
        natsMsg_Destroy(m);
    };

    const char* node = header(m, kHeaderNode);
    if (node != nullptr && impl->node == node) {
        s->looped.fetch_add(1, std::memory_order_relaxed);
        done(true);
        return;
    }
    const char* channel = header(m, kHeaderChannel);
    const auto incarnation = parse_u64(header(m, kHeaderIncarnation));
    const auto sequence = parse_u64(header(m, kHeaderSequence));
    NatsImportStream::Origin* origin = nullptr;
    if (node != nullptr && channel != nullptr && incarnation && sequence && *sequence > 0) {
        auto& o = s->origins[std::string{node} + '\0' + channel];
        if (o.incarnation != *incarnation) {
            o = {*incarnation, *sequence - 1}; // a new origin (or a restarted one): no gap yet
        }
        if (*sequence <= o.last) {
            s->duplicates.fetch_add(1, std::memory_order_relaxed);
            done(true);
            return;
        }
        origin = &o;
    }

    const auto data = std::as_bytes(
        std::span{natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))});
    const auto deadline = std::chrono::steady_clock::now() + impl->config.import_send_timeout;
    Result<void> sent = s->publisher->try_send(data);
    while (!sent.has_value() && sent.code() == Errc::would_block &&
           std::chrono::steady_clock::now() < deadline && !impl->stopped()) {
        sent = s->publisher->send(data, kEndpointPoll);
        if (!sent.has_value() && sent.code() == Errc::timed_out) {
            sent = Error{Errc::would_block, 0, ""};
        }
    }
    if (!sent.has_value()) {
        if (durable) {
            done(false); // the stream keeps it and delivers it again
            return;
        }
        s->lost.fetch_add(1, std::memory_order_relaxed);
        impl->log("import of '" + s->rule.subject + "' into '" + s->rule.channel +
                  "': a message could not be published and is lost: " + sent.error().message());
        if (origin != nullptr) {
            origin->last = *sequence;
        }
        done(true);
        return;
    }
    if (origin != nullptr) {
        const std::uint64_t gap = *sequence - origin->last - 1;
        if (gap > 0) {
            // Until libshmbus lets a publisher commit a gap, the loss is counted here (and in
            // `shmbusctl bridges`) and logged, not shown to local subscribers.
            s->lost.fetch_add(gap, std::memory_order_relaxed);
            impl->log("import of '" + s->rule.subject + "' into '" + s->rule.channel +
                      "': " + std::to_string(gap) + " message(s) from '" + node + "' channel '" +
                      channel + "' lost before sequence " + std::to_string(*sequence));
        }
        origin->last = *sequence;
    }
    s->messages.fetch_add(1, std::memory_order_relaxed);
    s->bytes.fetch_add(data.size(), std::memory_order_relaxed);
    done(true);
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
        imports.push_back(std::move(s));
    }
    return true;
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
        check(natsOptions_SetMaxReconnect(opts, -1), "reconnect");
        check(natsOptions_SetReconnectWait(opts, config.reconnect_wait.count()), "reconnect");
        check(natsOptions_SetTimeout(opts, config.connect_timeout.count()), "timeout");
        check(natsOptions_SetReconnectBufSize(opts, static_cast<int>(config.reconnect_buffer)),
              "reconnect buffer");
        check(natsOptions_SetDisconnectedCB(opts, &Impl::on_disconnected, this), "callbacks");
        check(natsOptions_SetReconnectedCB(opts, &Impl::on_reconnected, this), "callbacks");
        check(natsOptions_SetClosedCB(opts, &Impl::on_closed, this), "callbacks");
        check(natsOptions_SetErrorHandler(opts, &Impl::on_async_error, this), "callbacks");
        check(natsOptions_SetRetryOnFailedConnect(opts, true, &Impl::on_connected, this), "retry");
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
        s = natsConnection_Connect(&conn, opts);
        step = "connect";
        if (s == NATS_NOT_YET_CONNECTED) {
            // RetryOnFailedConnect: libnats keeps trying; on_connected() says when it is in.
            set_state(BridgeState::connecting, "no NATS server answers yet; retrying");
            s = NATS_OK;
        }
    }
    if (s != NATS_OK) {
        const std::string why = nats_error(s);
        natsOptions_Destroy(opts);
        set_state(BridgeState::stopped, "NATS " + step + ": " + why);
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
        if (config.jetstream && !exports.empty()) {
            // One handler per context: a bridge's JetStream exports count refused publishes
            // into the first export until the handler can tell them apart.
            jo.PublishAsync.ErrHandler = &Impl::on_pub_ack_error;
            jo.PublishAsync.ErrHandlerClosure = exports.front().get();
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

void NatsBridgeRunner::Impl::export_loop(NatsExportStream& s) {
    std::vector<std::byte> buf(static_cast<std::size_t>(s.subscriber->info().slot_size));
    const std::string channel = s.rule.channel;
    std::string seq_text;
    while (!exports_stop.load(std::memory_order_relaxed)) {
        auto r = s.subscriber->receive_copy(buf, kEndpointPoll);
        if (!r.has_value()) {
            if (r.code() == Errc::timed_out || r.code() == Errc::would_block) {
                continue;
            }
            set_state(BridgeState::stopped, "export of '" + channel + "': " + r.error().message());
            return;
        }
        const Received got = r.value();
        if (got.lost_before > 0) {
            s.lost.fetch_add(got.lost_before, std::memory_order_relaxed);
            s.next_sequence += got.lost_before; // the importer sees the gap
        }
        const std::uint64_t seq = s.next_sequence++;
        seq_text = std::to_string(seq);
        natsMsg* m = nullptr;
        natsStatus st =
            natsMsg_Create(&m, s.rule.subject.c_str(), nullptr,
                           reinterpret_cast<const char*>(buf.data()), static_cast<int>(got.size));
        if (st == NATS_OK) {
            natsMsgHeader_Set(m, kHeaderNode, node.c_str());
            natsMsgHeader_Set(m, kHeaderIncarnation, incarnation_text.c_str());
            natsMsgHeader_Set(m, kHeaderChannel, channel.c_str());
            st = natsMsgHeader_Set(m, kHeaderSequence, seq_text.c_str());
        }
        if (st == NATS_OK) {
            s.messages.fetch_add(1, std::memory_order_relaxed); // the ack handler may undo it
            if (js != nullptr && config.jetstream) {
                const std::string id =
                    node + "/" + incarnation_text + "/" + channel + "/" + seq_text;
                natsMsgHeader_Set(m, "Nats-Msg-Id", id.c_str());
                jsPubOptions po;
                jsPubOptions_Init(&po);
                st = js_PublishMsgAsync(js, &m, &po); // takes m on success
            } else {
                st = natsConnection_PublishMsg(nc, m);
            }
            if (st != NATS_OK) {
                s.messages.fetch_sub(1, std::memory_order_relaxed);
            }
        }
        natsMsg_Destroy(m); // NULL after a successful async publish
        if (st != NATS_OK) {
            s.lost.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        s.bytes.fetch_add(got.size, std::memory_order_relaxed);
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
    {
        std::lock_guard lock{mu};
        ready = true;
    }
    const int max_payload = static_cast<int>(natsConnection_GetMaxPayload(nc));
    for (auto& e : exports) {
        const auto slot = e->subscriber->info().slot_size;
        if (max_payload > 0 && slot > static_cast<std::uint64_t>(max_payload) - 512) {
            log("export of '" + e->rule.channel + "': its slots (" + std::to_string(slot) +
                " bytes) may exceed the server's max_payload (" + std::to_string(max_payload) +
                " bytes); such messages are counted as lost");
        }
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
    if (!impl_->thread.joinable()) {
        impl_->stopping = false;
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
                out.known_servers.emplace_back(servers[k]);
                free(servers[k]);
            }
            free(servers);
        }
    }
    return out;
}

} // namespace shmbus::gateway
