// Keeping one bridge up; the policy is in bridge_runner.hpp.
#include "gateway/bridge_runner.hpp"

#include "gateway/tls_link.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <pthread.h>
#include <random>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace shmbus::gateway {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStableLink = std::chrono::minutes{1};
constexpr auto kAcceptSlice = std::chrono::milliseconds{200}; // how soon accept sees stop()
constexpr auto kConnectSlice = std::chrono::seconds{1};       // how soon connect sees stop()
constexpr auto kDrainSlice = std::chrono::seconds{1}; // how long a refused peer may take to go
constexpr int kLowestPriority = 19;                   // Linux's highest nice value
constexpr std::size_t kThreadNameBytes = 15;          // a task's name, without its NUL

} // namespace

Result<int> lower_thread_priority(int levels) {
    // PRIO_PROCESS with a thread id: on Linux, the nice value is each thread's own.
    const auto self = static_cast<id_t>(::gettid());
    // getpriority() returns the nice value itself, which may be -1: errno tells an error.
    errno = 0;
    const int now = ::getpriority(PRIO_PROCESS, self);
    if (now == -1 && errno != 0) {
        return make_error(Errc::system_error, "getpriority", errno);
    }
    const int wanted = std::min(now + std::max(levels, 0), kLowestPriority);
    if (wanted == now) {
        return now;
    }
    if (::setpriority(PRIO_PROCESS, self, wanted) != 0) {
        return make_error(Errc::system_error, "setpriority to nice " + std::to_string(wanted),
                          errno);
    }
    return wanted;
}

std::string_view to_string(BridgeState state) noexcept {
    switch (state) {
    case BridgeState::listening:
        return "listening";
    case BridgeState::connecting:
        return "connecting";
    case BridgeState::handshaking:
        return "handshaking";
    case BridgeState::connected:
        return "connected";
    case BridgeState::backing_off:
        return "backing off";
    case BridgeState::stopped:
        return "stopped";
    }
    return "unknown";
}

BridgeRunner::BridgeRunner(BridgeConfig config, ClientOptions local, std::string node,
                           std::uint64_t incarnation, std::function<void(std::string_view)> log)
    : config_{std::move(config)}, local_{std::move(local)}, node_{std::move(node)},
      incarnation_{incarnation} {
    status_.name = config_.name;
    peer_ = config_.address.text;
    if (log) {
        log_ = [log = std::move(log)](std::string_view message, std::string_view) { log(message); };
    }
}

void BridgeRunner::log_with_peer(BridgeLog log) {
    log_ = std::move(log);
}

void BridgeRunner::share_origins(std::shared_ptr<OriginLedger> origins,
                                 std::function<std::string(std::string_view)> channel_type) {
    origins_ = std::move(origins);
    channel_type_ = std::move(channel_type);
}

void BridgeRunner::emit(std::string_view message) {
    if (!log_) {
        return;
    }
    std::string peer;
    {
        std::lock_guard lock{peer_mu_};
        peer = peer_;
    }
    log_(message, peer);
}

BridgeRunner::~BridgeRunner() {
    stop();
}

void BridgeRunner::start() {
    std::lock_guard lock{mu_};
    if (!thread_.joinable() && !stopped_) {
        stopping_ = false;
        thread_ = std::thread{[this] { run(); }};
    }
}

void BridgeRunner::stop() {
    {
        std::lock_guard lock{mu_};
        stopping_ = true;
        stopped_ = true;
        if (session_ != nullptr) {
            session_->stop();
        }
        if (live_fd_ >= 0) {
            (void)::shutdown(live_fd_, SHUT_RDWR); // ENOTSOCK on a FIFO: see below
        }
        if (handshaking_ != nullptr && handshaking_->out.valid()) {
            // A FIFO pair cannot be shut down: make the handshake read a frame header
            // without the magic, so that it ends at once (the link is dropped anyway).
            const int wake =
                ::open(config_.address.in_path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (wake >= 0) {
                const std::array<char, kHeaderBytes> zeros{};
                (void)::write(wake, zeros.data(), zeros.size());
                ::close(wake);
            }
        }
        if (live_child_ != nullptr) {
            live_child_->terminate();
        }
        cv_.notify_all();
    }
    if (thread_.joinable()) {
        thread_.join();
    }
}

BridgeStatus BridgeRunner::status() const {
    std::uint64_t block_timeouts = 0;
    {
        std::lock_guard memory{memory_->mu};
        block_timeouts = memory_->block_timeouts;
    }
    std::lock_guard lock{mu_};
    BridgeStatus s = status_;
    s.block_timeouts = block_timeouts;
    if (session_ != nullptr) {
        s.session = session_->stats();
    }
    s.fragments_sent += s.session.fragments_sent;
    s.fragments_received += s.session.fragments_received;
    return s;
}

void BridgeRunner::set_state(BridgeState state, const std::string& detail) {
    bool changed = false;
    {
        std::lock_guard lock{mu_};
        changed = status_.state != state;
        status_.state = state;
    }
    if (changed) {
        emit("bridge '" + config_.name + "': " + std::string{to_string(state)} +
             (detail.empty() ? "" : ": " + detail));
    }
}

bool BridgeRunner::pause(std::chrono::milliseconds delay) {
    // A hold that falls due meanwhile is given up on time, not at the end of the wait.
    for (;;) {
        const auto step = expire_holds(delay);
        std::unique_lock lock{mu_};
        if (cv_.wait_for(lock, step, [&] { return stopping_; })) {
            return false;
        }
        if (step >= delay) {
            return true;
        }
        delay -= step;
    }
}

std::chrono::milliseconds BridgeRunner::expire_holds(std::chrono::milliseconds cap) {
    std::vector<std::pair<std::string, std::chrono::milliseconds>> released;
    auto next = cap;
    {
        std::lock_guard lock{memory_->mu};
        const auto now = Clock::now();
        for (auto it = memory_->exports.begin(); it != memory_->exports.end();) {
            const auto due = it->second.since + it->second.block_timeout;
            if (now >= due) {
                released.emplace_back(it->first, it->second.block_timeout);
                ++memory_->block_timeouts;
                it = memory_->exports.erase(it); // closes the subscriber: publishers go on
                continue;
            }
            next = std::min(next, std::chrono::ceil<std::chrono::milliseconds>(due - now));
            ++it;
        }
    }
    for (const auto& [channel, timeout] : released) {
        emit("bridge '" + config_.name + "': channel '" + channel +
             "' (on_link_down: block): the link stayed down for block_timeout (" +
             std::to_string(timeout.count()) +
             " ms); local publishers are no longer held, and the peer will count what it "
             "missed");
    }
    return std::max(next, std::chrono::milliseconds{1});
}

Result<Link> BridgeRunner::connect_until_stopped() {
    const auto deadline = Clock::now() + config_.handshake_timeout;
    for (;;) {
        auto link = connect_link(config_.address, std::min(deadline, Clock::now() + kConnectSlice),
                                 "bridge '" + config_.name + "'",
                                 [this](std::string_view message) { emit(message); });
        if (link || link.error().code != Errc::timed_out || Clock::now() >= deadline) {
            return link;
        }
        std::lock_guard lock{mu_};
        if (stopping_) {
            return link;
        }
    }
}

void BridgeRunner::run_link(Link link) {
    {
        std::lock_guard lock{peer_mu_};
        peer_ = link.peer;
    }
    {
        std::lock_guard lock{mu_};
        if (stopping_) {
            return;
        }
        live_fd_ = link.in_fd();
        live_child_ = link.child.get();
    }
    run_session(link);
    {
        std::lock_guard lock{mu_};
        live_fd_ = -1;
        live_child_ = nullptr;
    }
    if (link.child) {
        const std::string how = link.child->finish();
        std::lock_guard lock{mu_};
        status_.last_error += (status_.last_error.empty() ? "" : "; ") + how;
    }
    std::lock_guard lock{peer_mu_};
    peer_ = config_.address.text;
}

PeerAuth BridgeRunner::required() const noexcept {
    return config_.require.value_or(
        default_peer_auth(config_.tls.has_value(), config_.secret.has_value()));
}

Result<void> BridgeRunner::prepare_security() {
    const bool tcp = config_.address.kind == LinkAddress::Kind::tcp;
    if (config_.tls && !tcp) {
        return make_error(Errc::invalid_argument,
                          "tls: applies to tcp links only (" + config_.address.text + ")");
    }
    if (config_.require) {
        if (auto c = check_peer_auth(*config_.require, config_.tls.has_value(),
                                     config_.secret.has_value());
            !c) {
            return c;
        }
    }
    if (config_.tls && !tls_) {
        auto context = TlsContext::create(*config_.tls);
        if (!context) {
            return make_error(context.error().code, "tls: " + context.error().detail);
        }
        tls_ = std::move(context.value());
    }
    return ok();
}

bool BridgeRunner::secret_required(bool over_tls) const noexcept {
    switch (required()) {
    case PeerAuth::both:
    case PeerAuth::secret:
        return true;
    case PeerAuth::tls:
        return false;
    case PeerAuth::either:
        return !over_tls;
    }
    return true;
}

Result<std::unique_ptr<LinkStream>> BridgeRunner::secure_link(Link& link, Deadline deadline) {
    if (!tls_) {
        return std::unique_ptr<LinkStream>{std::make_unique<FdStream>(link.in_fd(), link.out_fd())};
    }
    const PeerAuth require = required();
    if (config_.listen) {
        auto opening = peek_opening(link.in_fd(), deadline);
        if (!opening) {
            return opening.error();
        }
        if (opening.value() == LinkOpening::plain) {
            if (require == PeerAuth::secret || require == PeerAuth::either) {
                return std::unique_ptr<LinkStream>{
                    std::make_unique<FdStream>(link.in_fd(), link.out_fd())};
            }
            const std::string why = "TLS is required (require: " + std::string{to_string(require)} +
                                    "), and the peer spoke plaintext";
            if (auto bye = encode(Goodbye{Errc::permission_denied,
                                          "bridge '" + config_.name + "' requires TLS (require: " +
                                              std::string{to_string(require)} +
                                              "), and this end spoke plaintext: give this "
                                              "end's bridge a 'tls' section"})) {
                (void)write_all(link.out_fd(), bye.value(), deadline);
            }
            return make_error(Errc::permission_denied, why);
        }
    }
    auto stream = start_tls(tls_, link.in_fd(), !config_.listen, deadline);
    if (!stream) {
        return stream.error();
    }
    return std::unique_ptr<LinkStream>{std::move(stream.value())};
}

void BridgeRunner::run_session(Link& link) {
    set_state(BridgeState::handshaking, link.peer);
    const auto deadline = Clock::now() + config_.handshake_timeout;
    // A refused link's last word (a goodbye, a TLS alert) must reach the peer before the
    // socket closes: closing with unread bytes would send a reset instead.
    const auto refused = [&](const Error& e) {
        {
            std::lock_guard lock{mu_};
            status_.last_error = e.message();
        }
        emit("bridge '" + config_.name + "': peer " + link.peer + " refused: " + e.message());
        drain_before_close(link.in_fd(), std::min(deadline, Clock::now() + kDrainSlice));
    };
    auto stream = secure_link(link, deadline);
    if (!stream) {
        {
            std::lock_guard lock{mu_};
            if (stopping_) {
                return;
            }
        }
        refused(stream.error());
        return;
    }
    LinkStream& secured = *stream.value();
    HandshakeSettings hs;
    hs.initiator = !config_.listen;
    hs.bridge = config_.name;
    hs.node = node_;
    hs.incarnation = incarnation_;
    hs.secret = config_.secret;
    hs.channel_binding = secured.channel_binding();
    hs.secret_required = secret_required(!hs.channel_binding.empty());
    auto handshake = Handshake::start(hs);
    if (!handshake) {
        std::lock_guard lock{mu_};
        status_.last_error = handshake.error().message();
        return;
    }
    {
        std::lock_guard lock{mu_};
        if (stopping_) {
            return;
        }
        handshaking_ = &link;
    }
    FrameReader reader;
    auto params = run_handshake(secured, handshake.value(), reader, deadline);
    {
        std::lock_guard lock{mu_};
        handshaking_ = nullptr;
        if (stopping_) {
            return;
        }
    }
    if (!params) {
        refused(params.error());
        return;
    }
    if (!client_) {
        ClientOptions options = local_;
        options.client_name = "bridge " + config_.name;
        auto client = Client::connect(options);
        if (!client) {
            const std::string why = "the local daemon: " + client.error().message();
            emit("bridge '" + config_.name + "': link to " + link.peer + " ended: " + why);
            std::lock_guard lock{mu_};
            status_.last_error = why;
            return;
        }
        client_.emplace(std::move(client.value()));
    }
    SessionSettings settings;
    settings.bridge = config_.name;
    settings.initiator = !config_.listen;
    settings.exports = config_.exports;
    settings.imports = config_.imports;
    settings.window = config_.window;
    settings.memory = memory_;
    settings.incarnation = incarnation_;
    settings.origins = origins_;
    settings.channel_type = channel_type_;
    settings.log = [this](std::string_view message) { emit(message); };
    BridgeSession session{std::move(settings), params.value(), *client_, secured,
                          std::move(reader)};
    {
        std::lock_guard lock{mu_};
        if (stopping_) {
            return;
        }
        session_ = &session;
        status_.peer = link.peer;
        status_.peer_node = params.value().peer_node;
        status_.peer_incarnation = params.value().peer_incarnation;
        status_.version = params.value().version;
    }
    const std::string over = secured.describe();
    set_state(BridgeState::connected, link.peer + " (" + params.value().peer_node + ")" +
                                          (over.empty() ? "" : " over " + over));
    const Error why = session.run();
    const SessionStats last = session.stats();
    std::lock_guard lock{mu_};
    status_.fragments_sent += last.fragments_sent;
    status_.fragments_received += last.fragments_received;
    session_ = nullptr;
    status_.last_error = why.message();
    status_.session = SessionStats{};
}

void BridgeRunner::run() {
    // A write to a FIFO whose reader has gone raises SIGPIPE in the writing thread (sockets
    // are written with MSG_NOSIGNAL). Blocked here, for this thread and the session's
    // threads it starts, the write fails with EPIPE instead, whatever the process does.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    // Before the first session's threads start: they inherit the name and the priority.
    const std::string thread_name = ("bridge:" + config_.name).substr(0, kThreadNameBytes);
    (void)pthread_setname_np(pthread_self(), thread_name.c_str());
    if (auto lowered = lower_thread_priority(config_.nice); !lowered) {
        emit("bridge '" + config_.name + "': its threads run at the daemon's priority, not " +
             std::to_string(config_.nice) + " nice levels below it: " + lowered.error().message());
    }
    if (auto shortfall = receive_buffer_shortfall(config_.address)) {
        emit("bridge '" + config_.name + "': " + *shortfall);
    }
    if (auto ready = prepare_security(); !ready) {
        {
            std::lock_guard lock{mu_};
            status_.last_error = ready.error().detail;
        }
        set_state(BridgeState::stopped, ready.error().detail);
        return;
    }
    std::minstd_rand jitter{
        static_cast<std::uint32_t>(incarnation_ ^ Clock::now().time_since_epoch().count())};
    auto delay = config_.backoff_first;
    for (;;) {
        {
            std::lock_guard lock{mu_};
            if (stopping_) {
                break;
            }
        }
        Result<Link> link = make_error(Errc::closed, "no link");
        if (config_.listen && config_.address.kind == LinkAddress::Kind::tcp) {
            if (!listener_) {
                auto l = TcpListener::listen(config_.address);
                if (!l) {
                    {
                        std::lock_guard lock{mu_};
                        status_.last_error = l.error().message();
                    }
                    set_state(BridgeState::backing_off, l.error().message());
                    if (!pause(config_.backoff_cap)) {
                        break;
                    }
                    continue;
                }
                listener_.emplace(std::move(l.value()));
                std::lock_guard lock{mu_};
                status_.listening_port = listener_->port();
            }
            set_state(BridgeState::listening, config_.address.text);
            (void)expire_holds(kAcceptSlice);
            link = listener_->accept(Clock::now() + kAcceptSlice);
            if (!link && link.error().code == Errc::timed_out) {
                continue; // look at stop() again
            }
        } else if (config_.listen && config_.address.kind == LinkAddress::Kind::exec) {
            const std::string why = "link '" + config_.address.text +
                                    "': an exec: link is the connecting end (the command "
                                    "answers); it cannot listen";
            {
                std::lock_guard lock{mu_};
                status_.last_error = why;
            }
            set_state(BridgeState::stopped, why);
            return;
        } else {
            set_state(BridgeState::connecting, config_.address.text);
            link = connect_until_stopped();
        }
        const auto began = Clock::now();
        if (link) {
            run_link(std::move(link.value()));
        } else {
            std::lock_guard lock{mu_};
            status_.last_error = link.error().message();
        }
        {
            std::lock_guard lock{mu_};
            if (stopping_) {
                break;
            }
            ++status_.reconnects;
        }
        if (config_.listen && config_.address.kind == LinkAddress::Kind::tcp) {
            continue; // the next peer may come at once
        }
        if (Clock::now() - began >= kStableLink) {
            delay = config_.backoff_first;
        }
        const auto base = delay.count();
        const auto wait = std::chrono::milliseconds{
            base / 2 +
            static_cast<std::int64_t>(jitter() % static_cast<std::uint32_t>(base / 2 + 1))};
        std::string last;
        {
            std::lock_guard lock{mu_};
            last = status_.last_error;
        }
        set_state(BridgeState::backing_off, last);
        if (!pause(wait)) {
            break;
        }
        delay = std::min(delay * 2, config_.backoff_cap);
    }
    set_state(BridgeState::stopped);
}

} // namespace shmbus::gateway
