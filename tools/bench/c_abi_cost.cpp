// shmbus-c-abi-cost: the work per message of the C ABI's fast path beside the inline C++ one,
// in one thread, where the machine's load does not change it (docs/benchmarks.md, "The C ABI
// and the Python package beside C++"). Run it under callgrind for instructions, or as it is
// for thread CPU time.
//
// usage: shmbus-c-abi-cost SOCKET CPP_QUEUE C_QUEUE MESSAGES [ROUNDS] [PER_ROUND] [cpp|c|both]
//
// CPP_QUEUE and C_QUEUE are two single-producer single-consumer queues of the daemon at
// SOCKET with slots of at least 128 bytes and at least PER_ROUND of them, used by nothing
// else. It writes PER_ROUND (default 512) messages of 128 bytes one per reserve and commit,
// then reads them one per receive and release, MESSAGES (a multiple of PER_ROUND) in all,
// once through the C++ calls (try_reserve, commit, try_receive, release) and once through
// shmbus.h, and prints the thread CPU time per message of each; ROUNDS (default 1) times,
// alternating.
#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

namespace {

volatile std::uint64_t g_sink; // what was read, so that the reads are not optimised away

std::int64_t thread_cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

int fail(const char* what, const char* why) {
    std::fprintf(stderr, "shmbus-c-abi-cost: %s: %s\n", what, why);
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: shmbus-c-abi-cost SOCKET CPP_QUEUE C_QUEUE MESSAGES "
                             "[ROUNDS] [PER_ROUND] [cpp|c|both]\n");
        return 2;
    }
    const char* socket = argv[1];
    const std::uint64_t messages = std::stoull(argv[4]);
    const int rounds = argc > 5 ? std::stoi(argv[5]) : 1;
    const std::uint64_t per_round = argc > 6 ? std::stoull(argv[6]) : 512;
    const std::string which = argc > 7 ? argv[7] : "both";

    shmbus::ClientOptions options;
    options.socket_path = socket;
    auto client = shmbus::Client::connect(options);
    if (!client) {
        return fail("connect", client.error().message().c_str());
    }
    auto pub = client->open_publisher(argv[2]);
    auto sub = client->open_subscriber(argv[2]);
    if (!pub || !sub) {
        return fail(argv[2], (pub ? sub.error() : pub.error()).message().c_str());
    }
    shmbus_client_options co;
    shmbus_client_options_init(&co);
    co.socket_path = socket;
    shmbus_client* c = nullptr;
    shmbus_publisher* cpub = nullptr;
    shmbus_subscriber* csub = nullptr;
    if (shmbus_connect(&co, &c) != SHMBUS_OK ||
        shmbus_open_publisher(c, argv[3], nullptr, &cpub) != SHMBUS_OK ||
        shmbus_open_subscriber(c, argv[3], nullptr, &csub) != SHMBUS_OK) {
        return fail(argv[3], shmbus_last_error_message());
    }
    char payload[128];
    std::memset(payload, 7, sizeof payload);

    const auto cpp_round = [&]() -> bool {
        for (std::uint64_t i = 0; i < messages; i += per_round) {
            for (std::uint64_t j = 0; j < per_round; ++j) {
                auto b = pub->try_reserve(1);
                if (!b) {
                    return false;
                }
                std::memcpy(b->data(0).data(), payload, sizeof payload);
                b->set_length(0, sizeof payload);
                if (!pub->commit(*b)) {
                    return false;
                }
            }
            for (std::uint64_t j = 0; j < per_round; ++j) {
                auto r = sub->try_receive(1);
                if (!r) {
                    return false;
                }
                g_sink = g_sink + static_cast<std::uint64_t>(r->message(0).data[5]);
                if (!sub->release(*r)) {
                    return false;
                }
            }
        }
        return true;
    };
    const auto c_round = [&]() -> bool {
        shmbus_slot slot;
        shmbus_message msg;
        size_t count = 0;
        const std::uint64_t length = sizeof payload;
        for (std::uint64_t i = 0; i < messages; i += per_round) {
            for (std::uint64_t j = 0; j < per_round; ++j) {
                if (shmbus_publisher_reserve(cpub, &slot, 1, 0, &count) != SHMBUS_OK) {
                    return false;
                }
                std::memcpy(slot.data, payload, sizeof payload);
                if (shmbus_publisher_commit(cpub, &length, 1) != SHMBUS_OK) {
                    return false;
                }
            }
            for (std::uint64_t j = 0; j < per_round; ++j) {
                if (shmbus_subscriber_receive(csub, &msg, 1, 0, &count, nullptr) != SHMBUS_OK) {
                    return false;
                }
                g_sink = g_sink + static_cast<const unsigned char*>(msg.data)[5];
                if (shmbus_subscriber_release(csub, nullptr) != SHMBUS_OK) {
                    return false;
                }
            }
        }
        return true;
    };
    const auto timed = [&](const char* name, auto&& round) -> bool {
        const std::int64_t t0 = thread_cpu_ns();
        if (!round()) {
            return false;
        }
        std::printf("%s: %.2f ns of CPU per message\n", name,
                    static_cast<double>(thread_cpu_ns() - t0) / static_cast<double>(messages));
        return true;
    };
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; ++r) {
        if (which != "c" && !timed("cpp", cpp_round)) {
            rc = fail(argv[2], "a call failed (is the queue used by another process?)");
        }
        if (rc == 0 && which != "cpp" && !timed("c", c_round)) {
            rc = fail(argv[3], shmbus_last_error_message());
        }
    }
    shmbus_subscriber_close(csub);
    shmbus_publisher_close(cpub);
    shmbus_client_close(c);
    return rc;
}
