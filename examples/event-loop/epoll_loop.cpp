// shmbus-epoll-example: a plain epoll loop that serves two subscribers and a signal, with no
// thread of its own for either channel.
//
// Each subscriber's wait_handle() goes into the epoll set beside a signalfd. When a handle is
// readable, the loop drains that subscriber — messages until try_receive() would block, then
// its peer events until events() runs out — which also re-arms the handle. Between messages
// the loop sleeps in epoll_wait() and costs no CPU; the publishers pay for a wake-up only
// while the loop sleeps.
//
// usage: shmbus-epoll-example [--socket PATH] CHANNEL_A CHANNEL_B
//        Stops on SIGINT or SIGTERM. The socket defaults to shmbus::default_socket_path().
#include <shmbus/shmbus.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <vector>

namespace {

int fail(const std::string& what, const shmbus::Error& error) {
    std::fprintf(stderr, "shmbus-epoll-example: %s: %s\n", what.c_str(), error.message().c_str());
    return 1;
}

/// Receives every message waiting on `sub`, then every event: what a readable handle asks.
void drain(const std::string& channel, shmbus::Subscriber& sub) {
    for (;;) {
        auto batch = sub.try_receive(32);
        if (!batch) {
            if (batch.code() != shmbus::Errc::would_block) {
                std::fprintf(stderr, "%s: %s\n", channel.c_str(), batch.error().message().c_str());
                continue; // a damaged message is skipped and counted; read on
            }
            break; // drained; the handle is armed again
        }
        for (std::size_t i = 0; i < batch->size(); ++i) {
            const shmbus::Message m = batch->message(i);
            std::printf("%s #%llu: %zu bytes\n", channel.c_str(),
                        static_cast<unsigned long long>(m.sequence), m.data.size());
        }
        (void)sub.release(*batch);
    }
    std::array<shmbus::PeerEvent, 8> events;
    std::size_t n = 0;
    do {
        n = sub.events(events);
        for (std::size_t i = 0; i < n; ++i) {
            const shmbus::PeerEvent& e = events[i];
            std::printf("%s: %s %u (pid %u) %s\n", channel.c_str(),
                        std::string{shmbus::to_string(e.role)}.c_str(), e.endpoint_index, e.pid,
                        std::string{shmbus::to_string(e.kind)}.c_str());
        }
    } while (n == events.size());
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    shmbus::ClientOptions options;
    std::vector<std::string> channels;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            options.socket_path = argv[++i];
        } else {
            channels.emplace_back(argv[i]);
        }
    }
    if (channels.size() != 2) {
        std::fprintf(stderr, "usage: shmbus-epoll-example [--socket PATH] CHANNEL_A CHANNEL_B\n");
        return 2;
    }
    options.client_name = "shmbus-epoll-example";
    auto client = shmbus::Client::connect(options);
    if (!client) {
        return fail("connect", client.error());
    }

    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    const int sfd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC);
    if (ep < 0 || sfd < 0) {
        std::perror("shmbus-epoll-example: epoll/signalfd");
        return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = channels.size(); // the signalfd: one past the subscribers
    ::epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    shmbus::EndpointOptions eo;
    eo.peer_events = true; // attached, detached, died, lapped
    std::vector<shmbus::Subscriber> subs;
    for (std::size_t i = 0; i < channels.size(); ++i) {
        auto sub = client->open_subscriber(channels[i], eo);
        if (!sub) {
            return fail("subscribe to '" + channels[i] + "'", sub.error());
        }
        auto fd = sub->wait_handle();
        if (!fd) {
            return fail("wait handle of '" + channels[i] + "'", fd.error());
        }
        ev.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, *fd, &ev);
        subs.push_back(std::move(*sub));
        drain(channels[i], subs.back()); // what came before we polled
    }

    for (;;) {
        std::array<epoll_event, 4> ready;
        const int n = ::epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), -1);
        for (int i = 0; i < n; ++i) {
            const std::size_t which = ready[static_cast<std::size_t>(i)].data.u64;
            if (which == channels.size()) {
                ::close(sfd);
                ::close(ep);
                return 0; // SIGINT or SIGTERM
            }
            drain(channels[which], subs[which]);
        }
    }
}
