// The application's log function and the lifetime of what it belongs to: the library never
// calls it once the Client and every endpoint it opened are gone, not even from a restore
// its background thread had begun before, and it keeps calling it while an endpoint is left
// (test_client.cpp, "an idle client restores its connection on its own...").
#include "daemon_process.hpp"
#include "test_channels.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

/// What the log function saw, shared with it (so that it outlives the Client either way).
struct Probe {
    std::mutex mutex;
    std::condition_variable changed;
    bool in_log{false};     // the background thread is inside the log function
    bool dropping{false};   // the test is dropping the Client and its endpoint
    bool gone{false};       // both are gone
    bool overlapped{false}; // they were gone while the log function still ran
    int calls_after{0};     // calls that began once they were gone
};

} // namespace

TEST_CASE("the log function is never called once the Client and its endpoints are gone, even "
          "by a restore begun before") {
    DaemonProcess d{standard_channels_yaml()};
    REQUIRE(d.start());
    auto probe = std::make_shared<Probe>();
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = "log-lifetime";
    o.log = [probe](std::string_view line) {
        std::unique_lock lock{probe->mutex};
        if (probe->gone) {
            ++probe->calls_after;
            return;
        }
        if (probe->in_log || line.find("lost the connection") == std::string_view::npos) {
            return;
        }
        // The background thread is restoring the connection: hold it here while the test
        // drops the last handles on its own thread.
        probe->in_log = true;
        probe->changed.notify_all();
        // (No REQUIRE here: this is the library's thread.)
        probe->changed.wait_for(lock, 60s, [&] { return probe->dropping; });
        // The handles must not finish going while this call runs. Their going is an event
        // that must not happen now, so it is awaited for a bounded while only: long enough
        // for a destructor that does not wait for this call to have returned.
        probe->overlapped = probe->changed.wait_for(lock, 500ms, [&] { return probe->gone; });
    };
    auto client = std::make_unique<Client>(*Client::connect(o));
    auto sub = std::make_unique<Subscriber>(*client->open_subscriber("telemetry"));

    REQUIRE(d.kill_hard().has_value());
    {
        std::unique_lock lock{probe->mutex};
        REQUIRE(probe->changed.wait_for(lock, 60s, [&] { return probe->in_log; }));
    }
    std::thread dropper{[&] {
        {
            const std::lock_guard lock{probe->mutex};
            probe->dropping = true;
            probe->changed.notify_all();
        }
        sub.reset();
        client.reset();
        const std::lock_guard lock{probe->mutex};
        probe->gone = true;
        probe->changed.notify_all();
    }};
    dropper.join();

    // A daemon to reconnect to, for a restore that would still be under way.
    REQUIRE(d.start());
    const std::lock_guard lock{probe->mutex};
    CHECK_FALSE(probe->overlapped);
    CHECK(probe->calls_after == 0);
}
