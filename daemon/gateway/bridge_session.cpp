// A bridge link's streams after the handshake; the design is in bridge_session.hpp.
//
// Locks, in the order they may nest: Impl::streams_mu_ (the stream tables) before a
// stream's own mu, and write_mu_ (the link's write side) is only ever taken alone or last.
// The local Client is used by the run() thread only (it is one-thread-at-a-time): every
// channel is opened there, and a stream's thread uses only its own endpoint.
#include "gateway/bridge_session.hpp"

#include "gateway/link_io.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

namespace shmbus::gateway {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kDataFixedBytes = 16; // stream, first sequence, count
constexpr auto kEndpointPoll = 50ms;        // how soon a stream's thread notices a stop
constexpr auto kGoodbyeDeadline = 1s;

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count());
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
    bool copy_out{false}; ///< drop policy: copy, release, then send (never send a torn slot)
    std::uint64_t slot_size{0};

    std::mutex mu;
    std::condition_variable cv;
    std::uint32_t credits{0};
    bool closed{false};

    std::uint64_t next_sequence{1}; // the stream's thread only
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> lost{0};
    std::thread thread;
};

struct ImportStream {
    std::uint32_t id{0}; ///< the peer's stream id
    std::string wire_name;
    std::string local_name;
    std::optional<Publisher> publisher;
    std::uint64_t expected{0}; // the run() thread only: next sequence due

    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::vector<std::byte>> queue;
    std::uint32_t outstanding{0}; ///< credits the exporter holds (granted, not yet used)
    bool closed{false};

    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> lost{0};
    std::thread thread;
};

struct BridgeSession::Impl {
    Impl(SessionSettings s, LinkParams p, Client& c, int in, int out, FrameReader r)
        : settings{std::move(s)}, params{std::move(p)}, local{c}, in_fd{in}, out_fd{out},
          reader{std::move(r)} {}

    SessionSettings settings;
    LinkParams params;
    Client& local;
    int in_fd;
    int out_fd;
    FrameReader reader;
    UniqueFd wake{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};

    std::mutex write_mu;
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
    std::atomic<std::int64_t> last_sent{Clock::now().time_since_epoch().count()};

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
            std::lock_guard lock{write_mu};
            w = write_all(out_fd, bytes.value(), Clock::now() + settings.dead_after_silence);
        }
        if (!w) {
            fail(w.take_error());
            return;
        }
        mark_sent();
    }

    // ---- exporting ----

    /// Opens `local_name` and offers it to the peer as `wire_name` (the run() thread).
    void offer(const std::string& local_name, const std::string& wire_name, std::uint32_t request) {
        EndpointOptions options;
        options.wait = WaitMode::adaptive;
        auto sub = local.open_subscriber(local_name, options);
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
        s->slot_size = info.slot_size;
        Offer o{0,
                request,
                wire_name,
                info.kind,
                info.overflow,
                info.slot_size,
                info.slot_count,
                info.creation_id,
                s->next_sequence};
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

    void run_export(ExportStream& s) {
        const std::size_t most = per_frame(s.slot_size, params.send_data_body);
        std::vector<std::uint32_t> lengths;
        std::vector<std::byte> prefix;
        std::vector<std::byte> staging;
        std::vector<iovec> iov;
        while (!stopping.load()) {
            std::size_t allowed = 0;
            {
                std::unique_lock lock{s.mu};
                s.cv.wait(lock, [&] { return s.credits > 0 || s.closed || stopping.load(); });
                if (s.closed || stopping.load()) {
                    return;
                }
                allowed = std::min<std::size_t>(s.credits, most);
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
            const std::size_t n = b.size();
            lengths.resize(n);
            std::uint64_t total = 0;
            for (std::size_t i = 0; i < n; ++i) {
                lengths[i] = static_cast<std::uint32_t>(b.message(i).data.size());
                total += lengths[i];
            }
            if (auto p = encode_data_prefix(s.id, s.next_sequence, lengths, params.send_data_body,
                                            prefix);
                !p) {
                (void)s.subscriber->release(b);
                fail(p.take_error());
                return;
            }
            iov.clear();
            iov.push_back({prefix.data(), prefix.size()});
            if (s.copy_out) {
                staging.resize(total);
                std::size_t at = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    const auto m = b.message(i).data;
                    std::memcpy(staging.data() + at, m.data(), m.size());
                    at += m.size();
                }
                if (auto r = s.subscriber->release(b); !r) {
                    // Overwritten while copied: what was copied may be torn. Never send it;
                    // the numbers are skipped, so the peer counts the loss.
                    s.next_sequence += n;
                    s.lost += n;
                    continue;
                }
                iov.push_back({staging.data(), staging.size()});
            } else {
                for (std::size_t i = 0; i < n; ++i) {
                    const auto m = b.message(i).data;
                    iov.push_back({const_cast<std::byte*>(m.data()), m.size()});
                }
            }
            Result<void> w;
            {
                std::lock_guard lock{write_mu};
                w = write_gather(out_fd, iov, Clock::now() + settings.dead_after_silence);
            }
            if (!w) {
                if (!s.copy_out) {
                    (void)s.subscriber->release(b);
                }
                fail(w.take_error());
                return;
            }
            mark_sent();
            if (!s.copy_out) {
                // Block and queue channels: nothing overwrites a slot being read.
                if (auto r = s.subscriber->release(b); !r) {
                    log("exporting '" + s.local_name + "' stopped: " + r.error().message());
                    fail(r.take_error());
                    return;
                }
            }
            s.next_sequence += n;
            s.messages += n;
            s.bytes += total;
            std::lock_guard lock{s.mu};
            s.credits -= static_cast<std::uint32_t>(n);
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
        auto match = first_match(settings.imports, o.wire_name);
        if (!match) {
            refuse(Errc::permission_denied, "channel '" + o.wire_name + "' is not in bridge '" +
                                                settings.bridge + "''s import list");
            return;
        }
        if (o.slot_size > params.max_message_bytes) {
            refuse(Errc::message_too_large,
                   "channel '" + o.wire_name + "': slot_size " + std::to_string(o.slot_size) +
                       " is above the link's largest message, " +
                       std::to_string(params.max_message_bytes) + " bytes");
            return;
        }
        if (o.slot_size + 4 + kDataFixedBytes > params.receive_data_body) {
            refuse(Errc::message_too_large,
                   "channel '" + o.wire_name + "': slot_size " + std::to_string(o.slot_size) +
                       " does not fit this end's data frames of " +
                       std::to_string(params.receive_data_body) + " bytes");
            return;
        }
        const std::string& local_name = match->mapped;
        auto pub = local.open_publisher(local_name);
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
            pub = local.open_publisher(local_name);
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
        s->expected = o.next_sequence;
        s->outstanding = settings.window;
        ImportStream* raw = s.get();
        {
            std::lock_guard lock{streams_mu};
            imports.emplace(o.stream, std::move(s));
        }
        raw->thread = std::thread{[this, raw] { run_import(*raw); }};
        log("importing channel '" + o.wire_name + "' as '" + local_name + "'");
        send(Grant{o.stream, settings.window, 0});
    }

    void on_data(const DataView& d) {
        ImportStream* s = nullptr;
        {
            std::lock_guard lock{streams_mu};
            auto it = imports.find(d.stream());
            if (it != imports.end()) {
                s = it->second.get();
            }
        }
        if (s == nullptr) {
            fail(make_error(Errc::protocol_error,
                            "data: stream " + std::to_string(d.stream()) + " was never granted"));
            return;
        }
        if (d.first_sequence() < s->expected) {
            fail(make_error(Errc::protocol_error,
                            "data: stream " + std::to_string(d.stream()) + " ('" + s->wire_name +
                                "') went back from sequence " + std::to_string(s->expected) +
                                " to " + std::to_string(d.first_sequence())));
            return;
        }
        if (d.first_sequence() > s->expected) {
            s->lost += d.first_sequence() - s->expected;
        }
        s->expected = d.first_sequence() + d.count();
        std::uint32_t held = 0;
        {
            std::lock_guard lock{s->mu};
            held = s->outstanding;
            if (d.count() <= held) {
                s->outstanding -= d.count();
                d.for_each([&](std::uint64_t, std::span<const std::byte> m) {
                    s->queue.emplace_back(m.begin(), m.end());
                });
                s->cv.notify_one();
                return;
            }
        }
        fail(make_error(Errc::protocol_error, "data: stream " + std::to_string(d.stream()) +
                                                  " sent " + std::to_string(d.count()) +
                                                  " messages on " + std::to_string(held) +
                                                  " credits"));
    }

    void run_import(ImportStream& s) {
        const std::uint32_t return_at = std::max<std::uint32_t>(1, settings.window / 4);
        std::uint32_t unreturned = 0;
        std::vector<std::vector<std::byte>> taken;
        while (!stopping.load()) {
            {
                std::unique_lock lock{s.mu};
                const bool woke = s.cv.wait_for(lock, kEndpointPoll, [&] {
                    return !s.queue.empty() || s.closed || stopping.load();
                });
                if (s.closed || stopping.load()) {
                    return;
                }
                if (!woke && unreturned == 0) {
                    continue;
                }
                taken.clear();
                while (!s.queue.empty() && taken.size() < kMaxMessagesPerFrame) {
                    taken.push_back(std::move(s.queue.front()));
                    s.queue.pop_front();
                }
            }
            std::size_t done = 0;
            while (done < taken.size() && !stopping.load()) {
                auto batch = s.publisher->reserve(taken.size() - done, kEndpointPoll);
                if (!batch) {
                    if (batch.error().code == Errc::timed_out ||
                        batch.error().code == Errc::would_block) {
                        continue; // the local subscribers are slow: wait, credits hold the peer
                    }
                    log("importing '" + s.wire_name + "' stopped: " + batch.error().message());
                    return;
                }
                WriteBatch& w = batch.value();
                const std::size_t n = w.size(); // commit() empties the batch
                for (std::size_t i = 0; i < n; ++i) {
                    const auto& m = taken[done + i];
                    std::memcpy(w.data(i).data(), m.data(), m.size());
                    w.set_length(i, m.size());
                    s.bytes += m.size();
                }
                if (auto c = s.publisher->commit(w); !c) {
                    log("importing '" + s.wire_name + "' stopped: " + c.error().message());
                    return;
                }
                done += n;
                s.messages += n;
            }
            unreturned += static_cast<std::uint32_t>(done);
            bool queue_empty = false;
            {
                std::lock_guard lock{s.mu};
                queue_empty = s.queue.empty();
            }
            if (unreturned >= return_at || (queue_empty && unreturned > 0)) {
                {
                    std::lock_guard lock{s.mu};
                    s.outstanding += unreturned;
                }
                send(Credit{{{s.id, unreturned}}});
                unreturned = 0;
            }
        }
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
                        offer(c.info.name, m->mapped, 0);
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
                    offer(c.info.name, m->mapped, w.request);
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
        close_export(r.id);
    }

    void on_close_stream(const CloseStream& c) {
        close_export(c.stream);
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

    void read_loop() {
        auto last_received = Clock::now();
        std::uint64_t ping_token = 0;
        while (!stopping.load()) {
            auto frame = reader.next();
            if (!frame) {
                fail(frame.take_error());
                return;
            }
            if (frame.value()) {
                last_received = Clock::now();
                handle(*frame.value());
                continue;
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
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
            pollfd fds[2] = {{in_fd, POLLIN, 0}, {wake.get(), POLLIN, 0}};
            const int n =
                ::poll(fds, 2, static_cast<int>(std::max<std::int64_t>(1, wait.count() + 1)));
            if (n < 0 && errno != EINTR) {
                fail(make_error(Errc::system_error, "poll on the link failed", errno));
                return;
            }
            if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                auto r = read_into(in_fd, reader, Clock::now() + settings.dead_after_silence);
                if (!r) {
                    Error e = r.take_error();
                    fail(std::move(e), e.code == Errc::closed);
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
        if (tell_peer) {
            if (auto bye = encode(Goodbye{why.code, why.detail})) {
                std::lock_guard lock{write_mu};
                (void)write_all(out_fd, bye.value(), Clock::now() + kGoodbyeDeadline);
            }
        }
        log("link ended: " + why.message());
        return why;
    }
};

BridgeSession::BridgeSession(SessionSettings settings, LinkParams params, Client& local, int in_fd,
                             int out_fd, FrameReader reader)
    : impl_{std::make_unique<Impl>(std::move(settings), std::move(params), local, in_fd, out_fd,
                                   std::move(reader))} {}

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
    std::lock_guard lock{impl_->streams_mu};
    for (const auto& [id, s] : impl_->exports) {
        std::lock_guard sl{s->mu};
        out.streams.push_back(StreamStats{s->wire_name, s->local_name, true, s->messages.load(),
                                          s->bytes.load(), s->lost.load(), s->credits});
    }
    for (const auto& [id, s] : impl_->imports) {
        std::lock_guard sl{s->mu};
        out.streams.push_back(StreamStats{s->wire_name, s->local_name, false, s->messages.load(),
                                          s->bytes.load(), s->lost.load(), s->outstanding});
    }
    return out;
}

} // namespace shmbus::gateway
