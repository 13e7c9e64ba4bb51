// shmbus-consumer-example: the smallest program that uses an installed libshmbus.
//
// Connects to shmbusd, opens a subscriber and then a publisher on one broadcast channel (the
// shipped configuration's 'demo'), sends `count` messages and reads every one back through
// shared memory, checking content and order. Exit 0 when all arrived, 1 otherwise, with the
// library's error message on stderr.
//
// usage: shmbus-consumer-example [--socket PATH] [--channel NAME] [--count N]
//        The socket defaults to shmbus::default_socket_path() ($SHMBUS_SOCKET, the user's
//        daemon, then /run/shmbusd/shmbusd.sock).
#include <shmbus/shmbus.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

using namespace std::chrono_literals;

namespace {

int fail(const char* what, const shmbus::Error& error) {
    std::fprintf(stderr, "shmbus-consumer-example: %s: %s\n", what, error.message().c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    shmbus::ClientOptions options;
    options.client_name = "consumer-example";
    std::string channel = "demo";
    long count = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string opt = argv[i];
        if (opt == "--socket") {
            options.socket_path = argv[i + 1];
        } else if (opt == "--channel") {
            channel = argv[i + 1];
        } else if (opt == "--count") {
            count = std::strtol(argv[i + 1], nullptr, 10);
        } else {
            std::fprintf(stderr, "usage: %s [--socket PATH] [--channel NAME] [--count N]\n",
                         argv[0]);
            return 64;
        }
    }

    auto client = shmbus::Client::connect(options);
    if (!client) {
        return fail("connect", client.error());
    }
    // Subscribe first: a broadcast subscriber starts at the next message published.
    auto subscriber = client->open_subscriber(channel);
    if (!subscriber) {
        return fail("open_subscriber", subscriber.error());
    }
    auto publisher = client->open_publisher(channel);
    if (!publisher) {
        return fail("open_publisher", publisher.error());
    }

    std::array<std::byte, 256> buffer{};
    for (long i = 0; i < count; ++i) {
        const std::string text = "message " + std::to_string(i);
        if (auto sent = publisher->send(std::as_bytes(std::span{text}), 1s); !sent) {
            return fail("send", sent.error());
        }
        auto got = subscriber->receive_copy(buffer, 1s);
        if (!got) {
            return fail("receive", got.error());
        }
        if (got->size != text.size() || std::memcmp(buffer.data(), text.data(), text.size()) != 0) {
            std::fprintf(stderr, "shmbus-consumer-example: message %ld arrived altered\n", i);
            return 1;
        }
    }
    std::printf("shmbus-consumer-example: %ld messages sent and received on '%s' via %s\n",
                count, channel.c_str(), client->socket_path().c_str());
    return 0;
}
