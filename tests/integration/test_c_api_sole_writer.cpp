// The C ABI's data path on a block broadcast channel with one publisher, against the real
// shmbusd. That publisher runs the SPSC algorithm and its subscribers read on the inline
// path (publisher.cpp, the sole writer); the C calls run the same inline steps as the C++
// endpoints (DataPort's reserve_inline() ... release_inline()), so what the C++ side keeps
// must hold through C too: a gap a C subscriber polled alone comes with its next batch, and
// C and C++ endpoints stream through many laps of the ring without a message lost or out of
// order.
//
// Synchronisation: none needed; every endpoint is in this thread.
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "test_channels.hpp"

#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <span>
#include <string>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

const std::string kChannels = channels_yaml({
    {.name = "sole",
     .kind = "broadcast",
     .slot_size = 64,
     .slot_count = 16,
     .max_publishers = 1,
     .max_subscribers = 2},
});

Client connect_to(const DaemonProcess& d) {
    auto c = Client::connect(client_options(d, "test_c_api_sole_writer"));
    INFO((c ? std::string{} : c.error().message()));
    REQUIRE(c);
    return std::move(*c);
}

/// A connected C client; closed at the end of the scope.
struct CClient {
    shmbus_client* c{nullptr};
    explicit CClient(const DaemonProcess& d) {
        shmbus_client_options o;
        shmbus_client_options_init(&o);
        const std::string socket = d.socket_path().native();
        o.socket_path = socket.c_str();
        INFO(shmbus_last_error_message());
        REQUIRE(shmbus_connect(&o, &c) == SHMBUS_OK);
    }
    CClient(const CClient&) = delete;
    CClient& operator=(const CClient&) = delete;
    ~CClient() { shmbus_client_close(c); }
};

const DaemonProcess& started(DaemonProcess& d) {
    REQUIRE(d.start());
    return d;
}

/// shmbusd with the channel, a C client and a C++ client of it.
struct Daemon {
    DaemonProcess d{kChannels};
    CClient c{started(d)};
    Client client = connect_to(d);

    /// A C subscriber of "sole"; the caller closes it.
    shmbus_subscriber* c_subscriber() const {
        shmbus_subscriber* sub = nullptr;
        INFO(shmbus_last_error_message());
        REQUIRE(shmbus_open_subscriber(c.c, "sole", nullptr, &sub) == SHMBUS_OK);
        return sub;
    }
};

std::string text_of(const shmbus_message& m) {
    return {static_cast<const char*>(m.data), static_cast<std::size_t>(m.length)};
}

} // namespace

TEST_CASE("a C subscriber of a sole publisher gets a gap it polled alone with the next batch") {
    Daemon d;
    shmbus_subscriber* sub = d.c_subscriber();
    auto pub = d.client.open_publisher("sole");
    REQUIRE(pub);

    REQUIRE(pub->record_gap(5, 1s));
    shmbus_message msg{};
    std::size_t count = 0;
    std::uint64_t lost_before = 99;
    // The poll counts the gap but has no message to report it with.
    CHECK(shmbus_subscriber_receive(sub, &msg, 1, 0, &count, &lost_before) == SHMBUS_E_WOULD_BLOCK);
    CHECK(shmbus_subscriber_lost(sub) == 5);

    const std::string after = "after the gap";
    REQUIRE(pub->try_send(std::as_bytes(std::span{after})));
    REQUIRE(shmbus_subscriber_receive(sub, &msg, 4, 0, &count, &lost_before) == SHMBUS_OK);
    CHECK(count == 1);
    CHECK(lost_before == 5);
    CHECK(text_of(msg) == after);
    REQUIRE(shmbus_subscriber_release(sub, nullptr) == SHMBUS_OK);

    // Reported once: the next batch has no loss before it.
    const std::string next = "next";
    REQUIRE(pub->try_send(std::as_bytes(std::span{next})));
    REQUIRE(shmbus_subscriber_receive(sub, &msg, 1, 0, &count, &lost_before) == SHMBUS_OK);
    CHECK(lost_before == 0);
    CHECK(text_of(msg) == next);
    REQUIRE(shmbus_subscriber_release(sub, nullptr) == SHMBUS_OK);
    shmbus_subscriber_close(sub);
}

TEST_CASE("a C sole publisher streams laps of its ring to a C and a C++ subscriber") {
    Daemon d;
    shmbus_subscriber* c_sub = d.c_subscriber();
    auto cpp_sub = d.client.open_subscriber("sole");
    REQUIRE(cpp_sub);
    shmbus_publisher* pub = nullptr;
    REQUIRE(shmbus_open_publisher(d.c.c, "sole", nullptr, &pub) == SHMBUS_OK);

    // Batches of 1 to 3 messages, each read by both subscribers before the next: the
    // publisher always finds room, and every lap reuses the slots both have passed.
    constexpr std::uint64_t kMessages = 200; // over 12 laps of 16 slots
    std::uint64_t sent = 0;
    std::uint64_t read_c = 0;
    std::uint64_t read_cpp = 0;
    while (sent < kMessages) {
        shmbus_slot slots[3];
        std::size_t reserved = 0;
        REQUIRE(shmbus_publisher_reserve(pub, slots, 1 + sent % 3, 0, &reserved) == SHMBUS_OK);
        std::uint64_t lengths[3];
        for (std::size_t i = 0; i < reserved; ++i) {
            const std::string text = "m" + std::to_string(sent + i);
            REQUIRE(slots[i].capacity >= text.size());
            std::memcpy(slots[i].data, text.data(), text.size());
            lengths[i] = text.size();
            CHECK(slots[i].sequence == sent + i);
        }
        REQUIRE(shmbus_publisher_commit(pub, lengths, reserved) == SHMBUS_OK);
        sent += reserved;

        while (read_c < sent) {
            shmbus_message msgs[4];
            std::size_t count = 0;
            std::uint64_t lost_before = 99;
            REQUIRE(shmbus_subscriber_receive(c_sub, msgs, 4, 0, &count, &lost_before) ==
                    SHMBUS_OK);
            CHECK(lost_before == 0);
            for (std::size_t i = 0; i < count; ++i) {
                CHECK(msgs[i].sequence == read_c + i);
                CHECK(text_of(msgs[i]) == "m" + std::to_string(read_c + i));
            }
            read_c += count;
            REQUIRE(shmbus_subscriber_release(c_sub, nullptr) == SHMBUS_OK);
        }
        while (read_cpp < sent) {
            auto batch = cpp_sub->try_receive(4);
            REQUIRE(batch);
            CHECK(batch->lost_before() == 0);
            for (std::size_t i = 0; i < batch->size(); ++i) {
                const auto m = batch->message(i);
                CHECK(m.sequence == read_cpp + i);
                CHECK(std::string(reinterpret_cast<const char*>(m.data.data()), m.data.size()) ==
                      "m" + std::to_string(read_cpp + i));
            }
            read_cpp += batch->size();
            REQUIRE(cpp_sub->release(*batch));
        }
    }
    CHECK(shmbus_subscriber_lost(c_sub) == 0);
    CHECK(cpp_sub->lost() == 0);
    shmbus_publisher_close(pub);
    shmbus_subscriber_close(c_sub);
}
