// NatsServer: a real nats-server for one test, on 127.0.0.1, with JetStream and its own
// store directory if asked. The tests that need one skip (SHMBUS_SKIP) when
// nats_server_program() finds none.
//
// Ownership: a NatsServer owns its process (SIGKILLed and reaped by stop() or the destructor,
// and killed with the test process, PR_SET_PDEATHSIG) and its store directory. Its stderr
// goes to a pipe read by one thread per run, which keeps the text and wakes waiters: start()
// waits for "Server is ready", never for a time. The first start() lets the server pick a free
// port (-p -1) and reads it from the log; a restart asks for the same port again, so that
// clients find it where it was. NatsCluster: three of them routed into one cluster.
#pragma once

#include "daemon_process.hpp"
#include "process.hpp"
#include "skip.hpp"

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace shmbus::test {

/// nats-server's path: on $PATH, else in /usr/sbin or /usr/local/sbin (where Debian puts it,
/// outside a user's PATH). Nothing if it is not installed.
inline std::optional<std::string> nats_server_program() {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::string p{path};
        std::size_t at = 0;
        while (at <= p.size()) {
            const auto colon = p.find(':', at);
            dirs.push_back(
                p.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
            if (colon == std::string::npos) {
                break;
            }
            at = colon + 1;
        }
    }
    dirs.emplace_back("/usr/sbin");
    dirs.emplace_back("/usr/local/sbin");
    for (const auto& d : dirs) {
        const std::string candidate = (d.empty() ? std::string{"."} : d) + "/nats-server";
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return std::nullopt;
}

/// Declares `var`, the path of nats-server, or ends the running TEST_CASE as skipped.
#define REQUIRE_NATS_SERVER(var)                                                                   \
    const auto var = ::shmbus::test::nats_server_program();                                        \
    if (!var) {                                                                                    \
        SHMBUS_SKIP("nats-server is not installed (Debian: apt-get install nats-server)");         \
    }

class NatsServer {
public:
    /// `extra_args`: more options for nats-server (`--user`, `--pass`, ...).
    explicit NatsServer(std::string program, bool jetstream = false,
                        std::vector<std::string> extra_args = {})
        : program_{std::move(program)}, jetstream_{jetstream}, extra_args_{std::move(extra_args)} {}
    NatsServer(const NatsServer&) = delete;
    NatsServer& operator=(const NatsServer&) = delete;
    ~NatsServer() { stop(); }

    /// Starts the server and waits until it is ready. False, with what it wrote, if it exited
    /// or was not ready in time.
    bool start(std::string* why = nullptr) {
        std::vector<std::string> args{program_, "-a", "127.0.0.1", "-p",
                                      port_ == 0 ? "-1" : std::to_string(port_)};
        if (jetstream_) {
            args.insert(args.end(), {"-js", "-sd", store_.path().native()});
        }
        args.insert(args.end(), extra_args_.begin(), extra_args_.end());
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            return false;
        }
        {
            std::lock_guard lock{mu_};
            log_.clear();
            ended_ = false;
        }
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid == 0) {
            die_with_parent(parent);
            ::dup2(fds[1], STDERR_FILENO);
            ::dup2(fds[1], STDOUT_FILENO);
            ::execv(argv[0], argv.data());
            exec_failed(argv[0]);
        }
        ::close(fds[1]);
        pid_ = pid;
        reader_ = std::thread{[this, fd = fds[0]] { drain(fd); }};
        const std::regex listening{R"(Listening for client connections on 127\.0\.0\.1:(\d+))"};
        std::unique_lock lock{mu_};
        const bool ready = cv_.wait_until(lock, generous_deadline(), [this] {
            return ended_ || log_.find("Server is ready") != std::string::npos;
        });
        if (!ready || ended_ || log_.find("Server is ready") == std::string::npos) {
            if (why != nullptr) {
                *why = "nats-server did not become ready; it wrote:\n" + log_;
            }
            return false;
        }
        std::smatch m;
        if (port_ == 0 && std::regex_search(log_, m, listening)) {
            port_ = static_cast<std::uint16_t>(std::stoi(m[1].str()));
        }
        return port_ != 0;
    }

    /// SIGKILLs the server (as a crash would) and reaps it. The store directory stays.
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int raw = 0;
            while (::waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
            }
            pid_ = -1;
        }
        if (reader_.joinable()) {
            reader_.join();
        }
    }

    /// Waits until the server's log has a match of `pattern` and returns its first group
    /// (the whole match if it has none); nothing if the server ended or the deadline passed.
    std::optional<std::string>
    wait_for_log(const std::string& pattern,
                 std::chrono::steady_clock::time_point deadline = generous_deadline()) {
        const std::regex re{pattern};
        std::smatch m;
        std::unique_lock lock{mu_};
        const bool found = cv_.wait_until(lock, deadline,
                                          [&] { return std::regex_search(log_, m, re) || ended_; });
        if (!found || !std::regex_search(log_, m, re)) {
            return std::nullopt;
        }
        return m.size() > 1 ? m[1].str() : m[0].str();
    }

    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] std::string log_text() const {
        std::lock_guard lock{mu_};
        return log_;
    }

private:
    void drain(int fd) {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            std::lock_guard lock{mu_};
            if (n <= 0) {
                ended_ = true;
                cv_.notify_all();
                break;
            }
            log_.append(buf, static_cast<std::size_t>(n));
            cv_.notify_all();
        }
        ::close(fd);
    }

    std::string program_;
    bool jetstream_;
    std::vector<std::string> extra_args_;
    TempDir store_;
    std::uint16_t port_{0};
    pid_t pid_{-1};
    std::thread reader_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string log_;
    bool ended_{false};
};

/// Three nats-servers on 127.0.0.1 routed into one cluster: the first listens for routes on
/// a free port (read from its log), the other two route to it and learn of each other from it
/// (a full mesh). A client of any of them learns the others' client URLs from the cluster. Each
/// server is stopped alone (a node lost) with `at(i).stop()`.
///
/// With `jetstream`, each server also runs JetStream with a store and a name of its own.
/// nats-server then wants every server, the first too, to name its routes before it starts,
/// so the route ports are chosen up front (free_loopback_port()) rather than read from a
/// log; the cluster is ready once every server names its JetStream metadata leader.
class NatsCluster {
public:
    explicit NatsCluster(const std::string& program, bool jetstream = false) {
        if (jetstream) {
            start_jetstream(program);
            return;
        }
        std::string seed; // the first server's route URL, once it listens
        for (int i = 0; i < 3; ++i) {
            std::vector<std::string> args{"--cluster_name", "shmbus-test", "--cluster",
                                          "nats://127.0.0.1:-1"};
            if (i > 0) {
                args.insert(args.end(), {"--routes", seed});
            }
            auto& server =
                *servers_.emplace_back(std::make_unique<NatsServer>(program, false, args));
            std::string why;
            if (!server.start(&why)) {
                problem_ = "server " + std::to_string(i) + ": " + why;
                return;
            }
            const auto route_port =
                server.wait_for_log(R"(Listening for route connections on 127\.0\.0\.1:(\d+))");
            if (!route_port) {
                problem_ = "server " + std::to_string(i) + " does not listen for routes:\n" +
                           server.log_text();
                return;
            }
            if (i == 0) {
                seed = "nats://127.0.0.1:" + *route_port;
            }
        }
    }

    /// The three servers' client URLs, separated by commas (a `connect:` list).
    [[nodiscard]] std::string urls() const {
        std::string out;
        for (const auto& s : servers_) {
            out += (out.empty() ? "" : ",") + s->url();
        }
        return out;
    }

    /// Empty when all three started; else what went wrong.
    [[nodiscard]] const std::string& problem() const { return problem_; }
    [[nodiscard]] NatsServer& at(std::size_t i) { return *servers_.at(i); }
    [[nodiscard]] std::size_t size() const { return servers_.size(); }

private:
    void start_jetstream(const std::string& program) {
        // nats-server 2.9 now and then leaves a server of a fresh cluster out of the JetStream
        // metadata group (each server dials the others, and duplicate routes are closed on
        // both sides): a cluster whose servers do not all name a leader within kLeaderWait,
        // where they usually do within a second, is started afresh, on new ports.
        constexpr std::chrono::seconds kLeaderWait{20};
        for (int attempt = 0; attempt < 3; ++attempt) {
            servers_.clear();
            problem_.clear();
            std::string routes;
            std::vector<std::uint16_t> ports;
            for (int i = 0; i < 3; ++i) {
                ports.push_back(free_loopback_port());
                if (ports.back() == 0) {
                    problem_ = "no free loopback port for the routes";
                    return;
                }
                routes += (routes.empty() ? "" : ",") + route_url(ports.back());
            }
            for (int i = 0; i < 3 && problem_.empty(); ++i) {
                auto& server = *servers_.emplace_back(std::make_unique<NatsServer>(
                    program, true,
                    std::vector<std::string>{"--server_name", "s" + std::to_string(i),
                                             "--cluster_name", "shmbus-test", "--cluster",
                                             route_url(ports[static_cast<std::size_t>(i)]),
                                             "--routes", routes}));
                std::string why;
                if (!server.start(&why)) {
                    problem_ = "server " + std::to_string(i) + ": " + why;
                }
            }
            // Each server knows the leader of the cluster's JetStream metadata once it says so.
            const auto deadline = std::chrono::steady_clock::now() + kLeaderWait;
            for (std::size_t i = 0; i < servers_.size() && problem_.empty(); ++i) {
                if (!servers_[i]->wait_for_log(
                        "JetStream cluster (new metadata leader|metadata leader)", deadline)) {
                    problem_ = "server " + std::to_string(i) + " knows no JetStream leader:\n" +
                               servers_[i]->log_text();
                }
            }
            if (problem_.empty()) {
                return;
            }
        }
    }
    static std::string route_url(std::uint16_t port) {
        return "nats://127.0.0.1:" + std::to_string(port);
    }
    /// A TCP port of 127.0.0.1 that nothing listens on now (the kernel's pick for a socket
    /// bound to port 0, closed again), or 0. Another process could take it before the server
    /// does; the kernel hands out ports in turn, so that is unlikely within a test's moment.
    static std::uint16_t free_loopback_port() {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return 0;
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        std::uint16_t port = 0;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
            port = ntohs(addr.sin_port);
        }
        ::close(fd);
        return port;
    }

    std::vector<std::unique_ptr<NatsServer>> servers_;
    std::string problem_;
};

} // namespace shmbus::test
