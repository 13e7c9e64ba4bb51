// The administration calls of the C ABI (shmbus/shmbus.h) against the real shmbusd:
// creating a dynamic channel, listing clients, the daemon's status, reload and ping, each
// with what it hands out and with the errors that name what was wrong. The C functions are
// called from C++ here (the header is C and C++); c_api_client.c compiles the same
// declarations as C11.
#include "daemon_process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.h>

#include <catch2/catch.hpp>

#include <string>
#include <unistd.h>
#include <vector>

using namespace shmbus::test;

namespace {

const std::string kConfig = "dynamic_channels:\n  users: [\"*\"]\n" + standard_channels_yaml();

/// A connected C client; closed at the end of the scope.
struct CClient {
    shmbus_client* c{nullptr};
    explicit CClient(const DaemonProcess& d, const char* name) {
        shmbus_client_options o;
        shmbus_client_options_init(&o);
        const std::string socket = d.socket_path().native();
        o.socket_path = socket.c_str();
        o.client_name = name;
        o.reconnect_in_background = 0;
        INFO(shmbus_last_error_message());
        REQUIRE(shmbus_connect(&o, &c) == SHMBUS_OK);
    }
    CClient(const CClient&) = delete;
    CClient& operator=(const CClient&) = delete;
    ~CClient() { shmbus_client_close(c); }
};

std::string last_error() {
    return shmbus_last_error_message();
}

} // namespace

TEST_CASE("a C client creates a dynamic channel with what it leaves out taken from the "
          "daemon's defaults, and the errors name what was wrong") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    CClient client{d, "c-admin"};

    shmbus_channel_request r;
    shmbus_channel_request_init(&r);
    CHECK(r.name == nullptr);
    CHECK(r.kind == 0);
    CHECK(r.overflow == -1);
    r.name = "made-in-c";
    r.kind = SHMBUS_KIND_BROADCAST;
    r.overflow = SHMBUS_OVERFLOW_DROP;
    r.slot_size = 128;
    r.slot_count = 32;
    INFO(last_error());
    REQUIRE(shmbus_client_create_channel(client.c, &r) == SHMBUS_OK);

    shmbus_channel_summary s;
    REQUIRE(shmbus_client_channel_info(client.c, "made-in-c", &s) == SHMBUS_OK);
    CHECK(std::string{s.info.name} == "made-in-c");
    CHECK(s.info.kind == SHMBUS_KIND_BROADCAST);
    CHECK(s.info.overflow == SHMBUS_OVERFLOW_DROP);
    CHECK(s.info.slot_size == 128);
    CHECK(s.info.slot_count == 32);
    CHECK(s.dynamic != 0);

    // The same name again: already_exists, naming the channel.
    CHECK(shmbus_client_create_channel(client.c, &r) == SHMBUS_E_ALREADY_EXISTS);
    CHECK_THAT(last_error(), Catch::Contains("made-in-c"));
    // Values that are none of the enumerations' are refused before the daemon sees them.
    shmbus_channel_request bad = r;
    bad.name = "other";
    bad.kind = 7;
    CHECK(shmbus_client_create_channel(client.c, &bad) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK_THAT(last_error(), Catch::Contains("shmbus_channel_request.kind"));
    bad.kind = 0;
    bad.overflow = 5;
    CHECK(shmbus_client_create_channel(client.c, &bad) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK_THAT(last_error(), Catch::Contains("shmbus_channel_request.overflow"));
    bad.overflow = -1;
    bad.name = nullptr;
    CHECK(shmbus_client_create_channel(client.c, &bad) == SHMBUS_E_INVALID_ARGUMENT);
    CHECK_THAT(last_error(), Catch::Contains("request->name"));
    CHECK(shmbus_client_create_channel(nullptr, &r) == SHMBUS_E_INVALID_ARGUMENT);
}

TEST_CASE("a C client lists the connected clients, with names that stay valid until the next "
          "list") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    CClient client{d, "c-lister"};
    CClient other{d, "c-other"};
    shmbus_subscriber* sub = nullptr;
    REQUIRE(shmbus_open_subscriber(other.c, "telemetry", nullptr, &sub) == SHMBUS_OK);

    size_t count = 0;
    REQUIRE(shmbus_client_list_clients(client.c, nullptr, 0, &count) == SHMBUS_OK);
    REQUIRE(count == 2);
    std::vector<shmbus_client_summary> all(count);
    REQUIRE(shmbus_client_list_clients(client.c, all.data(), all.size(), &count) == SHMBUS_OK);
    REQUIRE(count == 2);
    int seen = 0;
    for (const shmbus_client_summary& c : all) {
        CHECK(c.client_id != 0);
        CHECK(c.pid == static_cast<uint32_t>(::getpid()));
        CHECK(c.uid == ::getuid());
        CHECK(c.connected_since_ms > 0);
        const std::string name = c.name;
        if (name == "c-lister") {
            CHECK(c.endpoints == 0);
            ++seen;
        } else if (name == "c-other") {
            CHECK(c.endpoints == 1);
            ++seen;
        }
    }
    CHECK(seen == 2);
    // A capacity below the count fills what fits and says how many there are.
    shmbus_client_summary one;
    REQUIRE(shmbus_client_list_clients(client.c, &one, 1, &count) == SHMBUS_OK);
    CHECK(count == 2);
    CHECK(shmbus_client_list_clients(client.c, nullptr, 1, &count) == SHMBUS_E_INVALID_ARGUMENT);
    shmbus_subscriber_close(sub);
}

TEST_CASE("a C client reads the daemon's status, reloads it and pings it") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    CClient client{d, "c-status"};

    shmbus_daemon_status st;
    INFO(last_error());
    REQUIRE(shmbus_client_status(client.c, &st) == SHMBUS_OK);
    CHECK(std::string{st.daemon_version} == shmbus_version());
    CHECK(st.pid != 0);
    CHECK(std::string{st.socket_path} == d.socket_path().native());
    CHECK(std::string{st.state_directory}.size() > 0);
    REQUIRE(st.config_file_count >= 1);
    CHECK(std::string{st.config_files[0]}.size() > 0);
    CHECK(st.clients == 1);
    CHECK(st.channels == 2);
    CHECK(st.segment_bytes > 0);
    CHECK(st.protocol_major >= 1);
    CHECK(shmbus_client_status(client.c, nullptr) == SHMBUS_E_INVALID_ARGUMENT);

    // The daemon's own user is an admin: this test's.
    const char* said = nullptr;
    REQUIRE(shmbus_client_reload(client.c, &said) == SHMBUS_OK);
    REQUIRE(said != nullptr);
    CHECK(std::string{said}.size() > 0);
    CHECK(shmbus_client_reload(client.c, nullptr) == SHMBUS_OK);

    int64_t rtt = -1;
    REQUIRE(shmbus_client_ping(client.c, &rtt) == SHMBUS_OK);
    CHECK(rtt > 0);
    CHECK(shmbus_client_ping(client.c, nullptr) == SHMBUS_OK);
    CHECK(shmbus_client_ping(nullptr, &rtt) == SHMBUS_E_INVALID_ARGUMENT);
}
