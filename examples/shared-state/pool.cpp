// shmbus-pool-example: camera frames too large to copy, passed by handle.
//
// A producer acquires a block of the pool 'frames', fills it in place with a frame (a small
// header, then pixels), and hands it on: the 16-byte handle goes through the queue
// 'frame-handles'. A consumer receives the handle, adopts the block (read-only), checks the
// frame, and releases it, which returns the block to the pool. Both sides live in this one
// process here, with an endpoint each, exactly as two processes would use them. Prints one
// line per frame. Exit 0 when every frame arrived whole, 1 otherwise, with the library's
// error message on stderr.
//
// usage: shmbus-pool-example [--socket PATH] [--pool NAME] [--queue NAME] [--frames N]
#include <shmbus/shmbus.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

namespace {

/// The start of every frame; the pixels follow it to the end of the block.
struct FrameHeader {
    std::uint64_t number;
    std::uint64_t pixel_bytes;
    std::uint8_t first_pixel;
};

int fail(const char* what, const shmbus::Error& error) {
    std::fprintf(stderr, "shmbus-pool-example: %s: %s\n", what, error.message().c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    shmbus::ClientOptions options;
    options.client_name = "pool-example";
    std::string pool_name = "frames";
    std::string queue_name = "frame-handles";
    long frames = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string opt = argv[i];
        if (opt == "--socket") {
            options.socket_path = argv[i + 1];
        } else if (opt == "--pool") {
            pool_name = argv[i + 1];
        } else if (opt == "--queue") {
            queue_name = argv[i + 1];
        } else if (opt == "--frames") {
            frames = std::strtol(argv[i + 1], nullptr, 10);
        }
    }
    auto client = shmbus::Client::connect(options);
    if (!client) {
        return fail("connect", client.error());
    }
    // The producer's side: the pool as a writer, the queue as a publisher.
    auto camera = client->open_pool(pool_name, shmbus::Role::publisher);
    if (!camera) {
        return fail("open the pool for writing", camera.error());
    }
    auto to_viewer = client->open_publisher(queue_name);
    if (!to_viewer) {
        return fail("open the queue for publishing", to_viewer.error());
    }
    // The consumer's side: the pool as a reader (its blocks mapped read-only), the queue as a
    // subscriber.
    auto viewer = client->open_pool(pool_name, shmbus::Role::subscriber);
    if (!viewer) {
        return fail("open the pool for reading", viewer.error());
    }
    auto from_camera = client->open_subscriber(queue_name);
    if (!from_camera) {
        return fail("open the queue for reading", from_camera.error());
    }
    if (camera->block_size() < sizeof(FrameHeader)) {
        std::fprintf(stderr, "shmbus-pool-example: '%s' has blocks of %llu bytes, too small\n",
                     pool_name.c_str(), static_cast<unsigned long long>(camera->block_size()));
        return 1;
    }
    for (long n = 1; n <= frames; ++n) {
        // Produce: fill a block in place, then send its handle (16 bytes, whatever the frame).
        auto block = camera->acquire(5s);
        if (!block) {
            return fail("acquire a block", block.error());
        }
        std::span<std::byte> bytes = block->mutable_data();
        const FrameHeader header{static_cast<std::uint64_t>(n), bytes.size() - sizeof(FrameHeader),
                                 static_cast<std::uint8_t>(n)};
        std::memset(bytes.data() + sizeof header, static_cast<int>(header.first_pixel),
                    header.pixel_bytes);
        std::memcpy(bytes.data(), &header, sizeof header);
        auto handle = camera->hand_on(std::move(*block));
        if (!handle) {
            return fail("hand on the block", handle.error());
        }
        if (auto sent = to_viewer->send(std::as_bytes(std::span{&*handle, 1}), 5s); !sent) {
            return fail("send the handle", sent.error());
        }

        // Consume: receive the handle, adopt the block, look at the frame, give it back.
        shmbus::BlockHandle received{};
        auto got = from_camera->receive_copy(std::as_writable_bytes(std::span{&received, 1}), 5s);
        if (!got) {
            return fail("receive a handle", got.error());
        }
        auto frame = viewer->adopt(received);
        if (!frame) {
            return fail("adopt the block", frame.error());
        }
        FrameHeader seen{};
        std::memcpy(&seen, frame->data().data(), sizeof seen);
        const std::byte last = frame->data().back();
        std::printf("frame %3llu: block %u generation %u, %llu pixel bytes\n",
                    static_cast<unsigned long long>(seen.number), received.index,
                    received.generation, static_cast<unsigned long long>(seen.pixel_bytes));
        if (seen.number != static_cast<std::uint64_t>(n) ||
            last != static_cast<std::byte>(seen.first_pixel)) {
            std::fprintf(stderr, "shmbus-pool-example: frame %ld arrived as frame %llu\n", n,
                         static_cast<unsigned long long>(seen.number));
            return 1;
        }
        if (auto released = frame->release(); !released) {
            return fail("release the block", released.error());
        }
    }
    return 0;
}
