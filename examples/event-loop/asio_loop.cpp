// shmbus-asio-example: an rpc server and a subscriber served by a standalone asio io_context
// (Debian libasio-dev), each endpoint's wait handle watched with
// asio::posix::stream_descriptor::async_wait(wait_read), beside asio's own signal_set.
//
// The pattern is the one of every loop (docs/events-and-waiting.md): wait for the handle to
// be readable, drain the endpoint — requests until try_receive() would block, messages
// likewise, events until events() runs out — which re-arms the handle, then wait again. asio
// closes the descriptor it is given, and the handle belongs to the endpoint, so asio gets a
// dup() of it; the watches go before the endpoints.
//
// usage: shmbus-asio-example [--socket PATH] [--serve RPC_CHANNEL] [CHANNEL]
//        --serve answers every call on RPC_CHANNEL with its request (an echo) and prints
//        the callers that come and go; CHANNEL prints each message's sequence and size, and
//        the publishers that come and go. Stops on SIGINT or SIGTERM, exit status 0.
#include <shmbus/shmbus.hpp>

#include <asio.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

/// One endpoint's wait handle in the io_context: `drain` runs on every wake-up (and once at
/// the start, for what came before the first wait).
class Watch {
public:
    Watch(asio::io_context& io, int handle, std::function<void()> drain)
        : fd_{io, ::dup(handle)}, drain_{std::move(drain)} {}

    void start() {
        drain_();
        arm();
    }
    void stop() {
        asio::error_code ignored;
        fd_.cancel(ignored);
    }

private:
    void arm() {
        fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [this](const asio::error_code& ec) {
                           if (ec) {
                               return; // cancelled: stopping
                           }
                           drain_();
                           arm();
                       });
    }

    asio::posix::stream_descriptor fd_;
    std::function<void()> drain_;
};

/// Prints the events `endpoint` has, until events() runs out (which re-arms its handle).
template <typename Endpoint>
void print_events(Endpoint& endpoint, const std::string& channel) {
    std::array<shmbus::PeerEvent, 8> events;
    std::size_t n = 0;
    do {
        n = endpoint.events(events);
        for (std::size_t i = 0; i < n; ++i) {
            std::printf("%s: %s %u %s\n", channel.c_str(),
                        std::string{shmbus::to_string(events[i].role)}.c_str(),
                        events[i].endpoint_index,
                        std::string{shmbus::to_string(events[i].kind)}.c_str());
        }
    } while (n == events.size());
}

/// Answers every request waiting with its own bytes.
void serve(shmbus::Server& server, const std::string& channel) {
    for (;;) {
        auto batch = server.try_receive(16);
        if (!batch) {
            if (batch.code() != shmbus::Errc::would_block) {
                std::fprintf(stderr, "%s: %s\n", channel.c_str(), batch.error().message().c_str());
                continue; // a corrupted request was failed back: take the others
            }
            break; // drained: the handle is armed again
        }
        for (const shmbus::Request& r : *batch) {
            if (auto answered = server.respond(r, r.data); !answered) {
                std::fprintf(stderr, "%s: call %llu: %s\n", channel.c_str(),
                             static_cast<unsigned long long>(r.id),
                             answered.error().message().c_str());
            }
        }
    }
    print_events(server, channel);
    std::fflush(stdout);
}

/// Prints every message waiting.
void follow(shmbus::Subscriber& sub, const std::string& channel) {
    for (;;) {
        std::array<std::byte, 4096> buf;
        auto r = sub.try_receive_copy(buf);
        if (!r) {
            if (r.code() == shmbus::Errc::would_block) {
                break; // drained: the handle is armed again
            }
            std::fprintf(stderr, "%s: %s\n", channel.c_str(), r.error().message().c_str());
            if (r.code() == shmbus::Errc::message_too_large) {
                break; // a larger buffer would be needed: leave it
            }
            continue;
        }
        std::printf("%s #%llu: %llu bytes\n", channel.c_str(),
                    static_cast<unsigned long long>(r->sequence),
                    static_cast<unsigned long long>(r->size));
    }
    print_events(sub, channel);
    std::fflush(stdout);
}

int fail(const char* what, const shmbus::Error& e) {
    std::fprintf(stderr, "shmbus-asio-example: %s: %s\n", what, e.message().c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    shmbus::ClientOptions options;
    std::string rpc_channel;
    std::string channel;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            options.socket_path = argv[++i];
        } else if (std::strcmp(argv[i], "--serve") == 0 && i + 1 < argc) {
            rpc_channel = argv[++i];
        } else {
            channel = argv[i];
        }
    }
    if (rpc_channel.empty() && channel.empty()) {
        std::fprintf(
            stderr, "usage: shmbus-asio-example [--socket PATH] [--serve RPC_CHANNEL] [CHANNEL]\n");
        return 2;
    }
    options.client_name = "shmbus-asio-example";
    auto client = shmbus::Client::connect(options);
    if (!client) {
        return fail("connect", client.error());
    }
    shmbus::EndpointOptions eo;
    eo.peer_events = true;

    // The endpoints first, so that the watches (declared after) go before them.
    std::optional<shmbus::Server> server;
    std::optional<shmbus::Subscriber> sub;
    if (!rpc_channel.empty()) {
        auto s = client->open_server(rpc_channel, eo);
        if (!s) {
            return fail(rpc_channel.c_str(), s.error());
        }
        server.emplace(std::move(*s));
    }
    if (!channel.empty()) {
        auto s = client->open_subscriber(channel, eo);
        if (!s) {
            return fail(channel.c_str(), s.error());
        }
        sub.emplace(std::move(*s));
    }

    asio::io_context io;
    std::vector<std::unique_ptr<Watch>> watches;
    if (server) {
        auto fd = server->wait_handle();
        if (!fd) {
            return fail(rpc_channel.c_str(), fd.error());
        }
        watches.push_back(std::make_unique<Watch>(io, *fd, [&] { serve(*server, rpc_channel); }));
    }
    if (sub) {
        auto fd = sub->wait_handle();
        if (!fd) {
            return fail(channel.c_str(), fd.error());
        }
        watches.push_back(std::make_unique<Watch>(io, *fd, [&] { follow(*sub, channel); }));
    }
    asio::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&](const asio::error_code&, int) {
        for (auto& w : watches) {
            w->stop(); // their handlers end, and run() returns with nothing left to do
        }
    });
    for (auto& w : watches) {
        w->start();
    }
    // Ready: the endpoints are attached and watched (a test waits for this line).
    std::printf("ready\n");
    std::fflush(stdout);
    io.run();
    return 0;
}
