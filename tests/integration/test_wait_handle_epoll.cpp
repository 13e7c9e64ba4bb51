// A wait handle in an application's epoll loop, through the real shmbusd: 1,000,000 messages
// (times SHMBUS_TEST_SCALE) from a publisher in another process arrive in bursts, every one
// in order and none lost, and between bursts the loop sleeps: the process uses (almost) no
// CPU and epoll_wait() does not return. The unit tests of the handle (wait modes, room,
// events, wake-ups only while armed) are in tests/unit/test_wait_handle.cpp.
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <thread>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kBursts = 10;
constexpr std::size_t kMessageBytes = 32;

TestChannel stream_channel() {
    return {.name = "stream", .kind = "queue", .slot_size = 64, .slot_count = 1024};
}

/// CPU time (user + system) of this process so far.
std::chrono::microseconds process_cpu() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const auto us = [](const timeval& t) {
        return std::chrono::seconds{t.tv_sec} + std::chrono::microseconds{t.tv_usec};
    };
    return us(u.ru_utime) + us(u.ru_stime);
}

} // namespace

TEST_CASE("an epoll loop receives a million messages through a wait handle and idles between "
          "bursts") {
    DaemonProcess d{channels_yaml({stream_channel()})};
    REQUIRE(d.start());
    const std::uint64_t total = scaled(1'000'000, 10'000) / kBursts * kBursts;
    const std::uint64_t per_burst = total / kBursts;

    // The publisher, in another process: one burst per byte it reads from `go`.
    Pipe go = Pipe::make();
    Child producer = Child::spawn([&d, &go, per_burst]() -> int {
        auto c = Client::connect(client_options(d, "burst-publisher", true));
        if (!c) {
            return 2;
        }
        auto pub = c->open_publisher("stream");
        if (!pub) {
            return 3;
        }
        std::byte msg[kMessageBytes];
        std::uint64_t id = 0;
        for (std::uint64_t b = 0; b < kBursts; ++b) {
            if (!receive_record<char>(go.read_end.get())) {
                return 4;
            }
            for (std::uint64_t i = 0; i < per_burst; ++i, ++id) {
                stamp(msg, id);
                if (!pub->send(msg, 60s)) {
                    return 5;
                }
            }
        }
        return 0;
    });

    auto client = Client::connect(client_options(d, "epoll-loop"));
    REQUIRE(client);
    EndpointOptions eo;
    eo.wait = WaitMode::spin; // the loop never uses the endpoint's own waits
    auto sub = client->open_subscriber("stream", eo);
    REQUIRE(sub);
    auto handle = sub->wait_handle();
    REQUIRE(handle);

    // The loop: epoll_wait() on the handle and on `stop`; drains the subscriber on each wake.
    UniqueFd ep{::epoll_create1(EPOLL_CLOEXEC)};
    REQUIRE(ep);
    Pipe stop = Pipe::make();
    Pipe progress = Pipe::make(); // the loop says each burst's end here
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = *handle;
    REQUIRE(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, *handle, &ev) == 0);
    ev.data.fd = stop.read_end.get();
    REQUIRE(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, stop.read_end.get(), &ev) == 0);
    std::atomic<std::uint64_t> wakeups{0};
    std::uint64_t received = 0;
    std::uint64_t out_of_order = 0;
    std::thread loop{[&] {
        for (;;) {
            epoll_event ready[2];
            const int n = ::epoll_wait(ep.get(), ready, 2, -1);
            if (n < 0) {
                continue; // EINTR
            }
            wakeups.fetch_add(1, std::memory_order_relaxed);
            for (int i = 0; i < n; ++i) {
                if (ready[i].data.fd == stop.read_end.get()) {
                    return;
                }
            }
            for (;;) {
                auto batch = sub->try_receive(64);
                if (!batch) {
                    break; // would_block: drained, and the handle re-armed
                }
                for (std::size_t m = 0; m < batch->size(); ++m) {
                    if (check_stamp(batch->message(m).data) != received) {
                        ++out_of_order;
                    }
                    ++received;
                    if (received % per_burst == 0) {
                        (void)send_record(progress.write_end.get(), received);
                    }
                }
                (void)sub->release(*batch);
            }
        }
    }};

    for (std::uint64_t b = 0; b < kBursts; ++b) {
        REQUIRE(send_record(go.write_end.get(), 'g'));
        auto at = receive_record<std::uint64_t>(progress.read_end.get());
        REQUIRE(at == (b + 1) * per_burst);
        // Between bursts nothing happens: measure what the process spends on that. The window
        // is a measurement, not a synchronisation (the burst's end was awaited above).
        const auto cpu_before = process_cpu();
        const std::uint64_t woke_before = wakeups.load(std::memory_order_relaxed);
        const auto window_start = std::chrono::steady_clock::now();
        pollfd none{-1, 0, 0};
        (void)::poll(&none, 1, 100);
        const auto window = std::chrono::steady_clock::now() - window_start;
        const auto spent = process_cpu() - cpu_before;
        INFO("burst " << b << ": " << spent.count() << " µs of CPU in a window of "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(window).count()
                      << " ms");
        CHECK(wakeups.load(std::memory_order_relaxed) == woke_before);
        CHECK(spent < 5ms); // a polling loop would spend the whole window
    }
    REQUIRE(send_record(stop.write_end.get(), 's'));
    loop.join();
    CHECK(received == total);
    CHECK(out_of_order == 0);
    REQUIRE(producer.wait());
    CHECK(producer.wait()->exited_ok());
}
