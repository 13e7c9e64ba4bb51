// NATS transports: see nats_transport.hpp.
//
// Ownership: run_nats() owns the nats-server it starts (NatsServerProcess: SIGKILLed and
// reaped at the end of the run, killed with the benchmark by PR_SET_PDEATHSIG, its log in a
// temporary directory removed with it) and, for transport nats, the two ShmbusdProcess.
// libnats is used only in the forked children, never in the parent, so no libnats thread
// exists when the parent forks.

#include "nats_transport.hpp"

#include "patterns.hpp"
#include "shm_endpoints.hpp"
#include "shmbusd_process.hpp"

#include <shmbus/client.hpp>
#include <shmbus/endpoint.hpp>

#if SHMBUS_BENCH_HAVE_NATS
#include <nats/nats.h>
#endif

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

bool nats_built() noexcept {
    return SHMBUS_BENCH_HAVE_NATS != 0;
}

std::string find_nats_server() {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::istringstream in{path};
        for (std::string d; std::getline(in, d, ':');) {
            dirs.push_back(d.empty() ? "." : d);
        }
    }
    dirs.emplace_back("/usr/sbin");
    dirs.emplace_back("/usr/local/sbin");
    for (const auto& d : dirs) {
        const std::string candidate = d + "/nats-server";
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return {};
}

#if !SHMBUS_BENCH_HAVE_NATS

std::string run_nats(const Scenario&, const RunSettings&, std::vector<Report>&) {
    return "shmbus-bench was built without libnats (Debian: libnats-dev)";
}

#else

namespace {

using namespace std::chrono_literals;

// A run's set-up (a server, two daemons, their bridges) on a loaded machine: it bounds a
// hang, it never paces anything.
constexpr auto kSetupDeadline = 30s;
// Stream readers return this often when idle, to notice that the writers are done: an end
// marker lost by core NATS (a slow consumer) must not hang the run. Generous: the first
// message of a run through two daemons and a server on a loaded machine may take a while.
constexpr auto kIdlePoll = 1s;
constexpr auto kForever = std::chrono::nanoseconds::max();

const std::string kOut = "bench.nats.out";   // the stream, and the pings
const std::string kBack = "bench.nats.back"; // the pongs

/// nats-server for one run, on 127.0.0.1 and a port it picks; its log goes to a file.
class NatsServerProcess {
public:
    NatsServerProcess() = default;
    NatsServerProcess(const NatsServerProcess&) = delete;
    NatsServerProcess& operator=(const NatsServerProcess&) = delete;
    ~NatsServerProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
    }

    /// Starts `program` and waits until it says it is ready. An error sentence, or empty.
    std::string start(const std::string& program) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "shmbus-nats-XXXXXX").native();
        if (::mkdtemp(tmpl.data()) == nullptr) {
            return "mkdtemp: " + std::string{std::strerror(errno)};
        }
        dir_ = tmpl;
        const std::string log = (dir_ / "nats-server.log").native();
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) {
            return "fork: " + std::string{std::strerror(errno)};
        }
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(1);
            }
            const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
            ::dup2(null, STDIN_FILENO);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            ::execl(program.c_str(), program.c_str(), "-a", "127.0.0.1", "-p", "-1", "-l",
                    log.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        pid_ = pid;
        // The log says when the server listens, and where; the server writes it at once.
        const std::regex listening{R"(Listening for client connections on 127\.0\.0\.1:(\d+))"};
        const auto deadline = std::chrono::steady_clock::now() + kSetupDeadline;
        for (;;) {
            std::ifstream in{log};
            const std::string text{std::istreambuf_iterator<char>{in}, {}};
            std::smatch m;
            if (text.find("Server is ready") != std::string::npos &&
                std::regex_search(text, m, listening)) {
                url_ = "nats://127.0.0.1:" + m[1].str();
                return {};
            }
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return "nats-server exited before it was ready: " + text;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                return "nats-server was not ready within 30 s: " + text;
            }
            std::this_thread::sleep_for(5ms);
        }
    }

    [[nodiscard]] const std::string& url() const { return url_; }

private:
    std::filesystem::path dir_;
    pid_t pid_{-1};
    std::string url_;
};

/// The baseline's ends: libnats publishes and a synchronous subscription, core NATS.
class NatsWriter {
public:
    NatsWriter(natsConnection* nc, std::string subject, std::uint64_t msg_size, std::size_t batch)
        : nc_{nc}, subject_{std::move(subject)}, msg_size_{msg_size},
          buf_(msg_size * std::max<std::size_t>(batch, 1)),
          lengths_(std::max<std::size_t>(batch, 1)) {}
    std::size_t acquire(std::size_t n) {
        count_ = std::min(n, lengths_.size());
        return count_;
    }
    std::span<std::byte> slot(std::size_t i) {
        return std::span{buf_}.subspan(i * msg_size_, msg_size_);
    }
    void set_length(std::size_t i, std::uint64_t len) { lengths_[i] = len; }
    bool publish() {
        for (std::size_t i = 0; i < count_; ++i) {
            const natsStatus s = natsConnection_Publish(nc_, subject_.c_str(), slot(i).data(),
                                                        static_cast<int>(lengths_[i]));
            if (s != NATS_OK) {
                error_ = natsStatus_GetText(s);
                return false;
            }
        }
        return true;
    }
    const std::string& error() const { return error_; }

private:
    natsConnection* nc_;
    std::string subject_;
    std::uint64_t msg_size_;
    std::vector<std::byte> buf_;
    std::vector<std::uint64_t> lengths_;
    std::size_t count_{0};
    std::string error_;
};

class NatsReader {
public:
    NatsReader(natsSubscription* sub, std::chrono::nanoseconds timeout)
        : sub_{sub},
          timeout_ms_{
              timeout == kForever
                  ? std::int64_t{1} << 40
                  : std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()} {}
    ~NatsReader() { release(); }
    NatsReader(const NatsReader&) = delete;
    NatsReader& operator=(const NatsReader&) = delete;

    std::size_t take(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            natsMsg* m = nullptr;
            const natsStatus s = natsSubscription_NextMsg(&m, sub_, i == 0 ? timeout_ms_ : 0);
            if (s == NATS_TIMEOUT) {
                break;
            }
            if (s != NATS_OK && s != NATS_SLOW_CONSUMER) {
                error_ = natsStatus_GetText(s);
                break;
            }
            if (m != nullptr) {
                msgs_.push_back(m);
            }
        }
        return msgs_.size();
    }
    bool failed() const { return !error_.empty(); }
    std::span<const std::byte> message(std::size_t i) const {
        return std::as_bytes(std::span{natsMsg_GetData(msgs_[i]),
                                       static_cast<std::size_t>(natsMsg_GetDataLength(msgs_[i]))});
    }
    Released release() {
        for (natsMsg* m : msgs_) {
            natsMsg_Destroy(m);
        }
        msgs_.clear();
        return Released::ok;
    }
    const std::string& error() const { return error_; }

private:
    natsSubscription* sub_;
    std::int64_t timeout_ms_;
    std::vector<natsMsg*> msgs_;
    std::string error_;
};

Report failed(const std::string& what) {
    Report r;
    r.error = what;
    return r;
}

/// Where a child reads and writes: the subjects (nats-raw) or the daemons' sockets and
/// channels (nats).
struct Ends {
    std::string out_socket, in_socket; ///< nats: the daemons; empty for nats-raw
    std::string out, in;               ///< channels (nats) or subjects (nats-raw)
};

/// A child running `body(writer*, reader*, gate)` on `ends` (an empty `out` or `in`: none).
template <typename Body>
std::string spawn_role(Team& team, const Scenario& s, const std::string& url, const Ends& ends,
                       std::chrono::nanoseconds timeout, Body body) {
    return team.spawn([=](StartGate& gate) -> Report {
        if (s.transport == Transport::nats) {
            shmbus::ClientOptions o;
            o.client_name = "shmbus-bench";
            o.reconnect_in_background = false;
            std::optional<shmbus::Client> out_client;
            std::optional<shmbus::Client> in_client;
            std::optional<ShmWriter> writer;
            std::optional<ShmReader> reader;
            if (!ends.out.empty()) {
                o.socket_path = ends.out_socket;
                auto c = shmbus::Client::connect(o);
                if (!c) {
                    return failed("connect: " + c.error().message());
                }
                auto pub = c->open_publisher(ends.out);
                if (!pub) {
                    return failed("open_publisher " + ends.out + ": " + pub.error().message());
                }
                out_client.emplace(std::move(c).value());
                writer.emplace(std::move(pub).value(), false);
            }
            if (!ends.in.empty()) {
                o.socket_path = ends.in_socket;
                auto c = shmbus::Client::connect(o);
                if (!c) {
                    return failed("connect: " + c.error().message());
                }
                auto sub = c->open_subscriber(ends.in);
                if (!sub) {
                    return failed("open_subscriber " + ends.in + ": " + sub.error().message());
                }
                in_client.emplace(std::move(c).value());
                reader.emplace(std::move(sub).value(), false, timeout);
            }
            return body(writer ? &*writer : nullptr, reader ? &*reader : nullptr, gate);
        }
        natsConnection* nc = nullptr;
        if (const natsStatus st = natsConnection_ConnectTo(&nc, url.c_str()); st != NATS_OK) {
            return failed("connect to " + url + ": " + natsStatus_GetText(st));
        }
        natsSubscription* sub = nullptr;
        std::optional<NatsReader> reader;
        if (!ends.in.empty()) {
            if (natsConnection_SubscribeSync(&sub, nc, ends.in.c_str()) != NATS_OK ||
                natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
                natsConnection_Flush(nc) != NATS_OK) { // subscribed before the gate opens
                return failed("subscribe " + ends.in);
            }
            reader.emplace(sub, timeout);
        }
        std::optional<NatsWriter> writer;
        if (!ends.out.empty()) {
            writer.emplace(nc, ends.out, s.msg_size, s.batch);
        }
        Report r = body(writer ? &*writer : nullptr, reader ? &*reader : nullptr, gate);
        // What libnats still buffers (the end markers, say) goes out before the child exits.
        natsConnection_FlushTimeout(nc, 10000);
        return r;
    });
}

/// The `bridges:` section of one daemon of the nats path: it exports `exported` to `to`
/// and imports `from` into `imported`.
std::string bridge_yaml(const std::string& url, const std::string& exported, const std::string& to,
                        const std::string& from, const std::string& imported) {
    return "bridges:\n"
           "  - name: bench\n"
           "    connect: " +
           url +
           "\n"
           "    export:\n"
           "      - {channel: " +
           exported + ", subject: " + to +
           "}\n"
           "    import:\n"
           "      - {subject: " +
           from + ", channel: " + imported + "}\n";
}

/// Waits until bridge `bench` of the daemon at `socket` is connected with both streams.
std::string wait_bridge(const std::string& socket) {
    shmbus::ClientOptions o;
    o.socket_path = socket;
    o.client_name = "shmbus-bench";
    o.reconnect_in_background = false; // no thread of ours when the parent forks
    const auto deadline = std::chrono::steady_clock::now() + kSetupDeadline;
    std::string last = "no answer";
    while (std::chrono::steady_clock::now() < deadline) {
        auto c = shmbus::Client::connect(o);
        if (c) {
            auto list = c->list_bridges();
            if (list && !list->empty()) {
                const auto& b = list->front();
                if (b.state == "connected" && b.streams.size() == 2) {
                    return {};
                }
                last = b.state + (b.last_error.empty() ? "" : ": " + b.last_error);
            }
        }
        std::this_thread::sleep_for(10ms);
    }
    return "the daemon's NATS bridge did not connect within 30 s (" + last + ")";
}

} // namespace

std::string run_nats(const Scenario& s, const RunSettings& settings, std::vector<Report>& reports) {
    if (settings.nats_server.empty()) {
        return "no nats-server";
    }
    NatsServerProcess server;
    if (std::string e = server.start(settings.nats_server); !e.empty()) {
        return e;
    }
    const std::string url = server.url();
    const bool latency = s.test == Test::latency;

    // nats: daemon `a` has the writer's channel (ch000, exported) and the pong channel
    // (ch001, imported); daemon `b` the reader's (ch000, imported) and the pongs' (ch001,
    // exported).
    ShmbusdProcess a;
    ShmbusdProcess b;
    Ends forth{};
    Ends back{};
    if (s.transport == Transport::nats) {
        ChannelSet set;
        set.count = 2;
        set.slot_size = s.msg_size;
        set.slot_count = latency ? 64 : 1024;
        set.max_subscribers = 2;
        const std::string ch0 = channel_name(0);
        const std::string ch1 = channel_name(1);
        const auto bridges = [&](std::string yaml) -> ConfigExtra {
            return [yaml = std::move(yaml)](const std::filesystem::path&, std::string&) {
                return yaml;
            };
        };
        if (std::string e = a.start(settings.shmbusd, set, 16,
                                    bridges(bridge_yaml(url, ch0, kOut, kBack, ch1)));
            !e.empty()) {
            return "first shmbusd: " + e;
        }
        if (std::string e = b.start(settings.shmbusd, set, 16,
                                    bridges(bridge_yaml(url, ch1, kBack, kOut, ch0)));
            !e.empty()) {
            return "second shmbusd: " + e;
        }
        for (const ShmbusdProcess* d : {&a, &b}) {
            if (std::string e = wait_bridge(d->socket_path()); !e.empty()) {
                return e;
            }
        }
        forth = {a.socket_path(), b.socket_path(), ch0, ch0};
        back = {b.socket_path(), a.socket_path(), ch1, ch1};
    } else {
        forth = {{}, {}, kOut, kOut};
        back = {{}, {}, kBack, kBack};
    }

    SharedBoard board;
    if (!board.valid()) {
        return std::string{"mmap: "} + std::strerror(errno);
    }
    PatternParams p = make_params(s, settings, board.get());
    Team team{settings.pin};
    std::string error;
    if (latency) {
        // The pinger writes forth and reads back; the ponger the other way round.
        const Ends pinger{forth.out_socket, back.in_socket, forth.out, back.in};
        const Ends ponger{back.out_socket, forth.in_socket, back.out, forth.in};
        error = spawn_role(team, s, url, pinger, kForever, [p](auto* out, auto* in, StartGate& g) {
            return run_pinger(*out, *in, g, p);
        });
        if (error.empty()) {
            error =
                spawn_role(team, s, url, ponger, kForever, [p](auto* out, auto* in, StartGate& g) {
                    return run_ponger(*out, *in, g, p);
                });
        }
    } else {
        const Ends sender{forth.out_socket, {}, forth.out, {}};
        const Ends receiver{{}, forth.in_socket, {}, forth.in};
        error = spawn_role(team, s, url, sender, kIdlePoll,
                           [p](auto* out, auto*, StartGate& g) { return run_sender(*out, g, p); });
        if (error.empty()) {
            error =
                spawn_role(team, s, url, receiver, kIdlePoll,
                           [p](auto*, auto* in, StartGate& g) { return run_receiver(*in, g, p); });
        }
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{60}, reports);
}

#endif

} // namespace bench
