// shmbus-uv-example: a subscriber served by a libuv loop through uv_poll, beside a libuv
// signal handler. The same pattern works for asio (posix::stream_descriptor::async_wait) and
// Qt (QSocketNotifier): watch the wait handle for readability, and on each wake-up drain the
// endpoint — messages until try_receive() would block, events until events() runs out —
// which re-arms the handle.
//
// usage: shmbus-uv-example [--socket PATH] CHANNEL
//        Stops on SIGINT. The socket defaults to shmbus::default_socket_path().
#include <shmbus/shmbus.hpp>

#include <uv.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

namespace {

struct App {
    std::string channel;
    std::optional<shmbus::Subscriber> sub;
    uv_poll_t poll{};
    uv_signal_t sigint{};
};

void on_readable(uv_poll_t* handle, int status, int /*events*/) {
    App& app = *static_cast<App*>(handle->data);
    if (status < 0) {
        std::fprintf(stderr, "shmbus-uv-example: poll: %s\n", uv_strerror(status));
        return;
    }
    for (;;) {
        std::array<std::byte, 4096> buf;
        auto r = app.sub->try_receive_copy(buf);
        if (!r) {
            if (r.code() == shmbus::Errc::would_block) {
                break; // drained; the handle is armed again
            }
            std::fprintf(stderr, "%s: %s\n", app.channel.c_str(), r.error().message().c_str());
            if (r.code() == shmbus::Errc::message_too_large) {
                break; // a larger buffer would be needed: leave it
            }
            continue;
        }
        std::printf("%s #%llu: %llu bytes\n", app.channel.c_str(),
                    static_cast<unsigned long long>(r->sequence),
                    static_cast<unsigned long long>(r->size));
    }
    std::array<shmbus::PeerEvent, 8> events;
    std::size_t n = 0;
    do {
        n = app.sub->events(events);
        for (std::size_t i = 0; i < n; ++i) {
            std::printf("%s: %s %u %s\n", app.channel.c_str(),
                        std::string{shmbus::to_string(events[i].role)}.c_str(),
                        events[i].endpoint_index,
                        std::string{shmbus::to_string(events[i].kind)}.c_str());
        }
    } while (n == events.size());
    std::fflush(stdout);
}

void on_sigint(uv_signal_t* handle, int /*signum*/) {
    App& app = *static_cast<App*>(handle->data);
    // Every handle closed before the loop ends (and before the subscriber goes).
    uv_poll_stop(&app.poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&app.poll), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&app.sigint), nullptr);
}

} // namespace

int main(int argc, char** argv) {
    shmbus::ClientOptions options;
    App app;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            options.socket_path = argv[++i];
        } else {
            app.channel = argv[i];
        }
    }
    if (app.channel.empty()) {
        std::fprintf(stderr, "usage: shmbus-uv-example [--socket PATH] CHANNEL\n");
        return 2;
    }
    options.client_name = "shmbus-uv-example";
    auto client = shmbus::Client::connect(options);
    if (!client) {
        std::fprintf(stderr, "shmbus-uv-example: %s\n", client.error().message().c_str());
        return 1;
    }
    shmbus::EndpointOptions eo;
    eo.peer_events = true;
    auto sub = client->open_subscriber(app.channel, eo);
    if (!sub) {
        std::fprintf(stderr, "shmbus-uv-example: %s\n", sub.error().message().c_str());
        return 1;
    }
    app.sub.emplace(std::move(*sub));
    auto fd = app.sub->wait_handle();
    if (!fd) {
        std::fprintf(stderr, "shmbus-uv-example: %s\n", fd.error().message().c_str());
        return 1;
    }

    uv_loop_t* loop = uv_default_loop();
    uv_poll_init(loop, &app.poll, *fd);
    app.poll.data = &app;
    uv_poll_start(&app.poll, UV_READABLE, on_readable);
    uv_signal_init(loop, &app.sigint);
    app.sigint.data = &app;
    uv_signal_start_oneshot(&app.sigint, on_sigint, SIGINT);
    on_readable(&app.poll, 0, UV_READABLE); // what came before we polled
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
