// shmbusctl call and serve --echo against the real shmbusd, rpc channels in list / info, and
// tail --events on an rpc channel (servers coming and going, server_gone). Every wait is on
// an event: READY=1, an attachment as the daemon's own table shows it (info --json), a
// process exit.
#include "daemon_process.hpp"
#include "shmbusctl_process.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <csignal>
#include <sstream>
#include <string>
#include <vector>

using namespace shmbus::test;

namespace {

const std::string kConfig = "channels:\n  - {name: svc, kind: rpc}\n";

/// Polls `info --json` until `channel` has at least one of `side` ("servers", "callers").
bool wait_for_rpc(const DaemonProcess& d, const std::string& channel, const char* side) {
    const auto deadline = generous_deadline();
    while (std::chrono::steady_clock::now() < deadline) {
        const Outcome info = ctl(at(d, {"info", channel, "--json"}));
        if (info.code != 0) {
            return false;
        }
        if (info.document().at("rpc").at(side).get<int>() >= 1) {
            return true;
        }
    }
    return false;
}

bool wait_for_server(const DaemonProcess& d, const std::string& channel) {
    return wait_for_rpc(d, channel, "servers");
}

} // namespace

TEST_CASE("shmbusctl call fails with not_found while nobody serves, then gets the echo") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome none = ctl(at(d, {"call", "svc", "hello"}));
    CHECK(none.code == 1);
    CHECK(none.err.find("no server is attached to 'svc'") != std::string::npos);

    Ctl server(at(d, {"serve", "svc", "--echo", "--count", "2"}));
    REQUIRE(wait_for_server(d, "svc"));
    const Outcome call = ctl(at(d, {"call", "svc", "hello", "world"}));
    INFO(call.err);
    CHECK(call.code == 0);
    CHECK(call.out == "hello world\n");
    CHECK(call.err.find("reply of 11 B to call") != std::string::npos);

    const Outcome json = ctl(at(d, {"call", "svc", "again", "--json"}));
    REQUIRE(json.code == 0);
    const auto doc = json.document();
    CHECK(doc.at("text").get<std::string>() == "again");
    CHECK(doc.at("round_trip_ns").get<long long>() > 0);

    const Outcome served = server.finish();
    CHECK(served.code == 0);
    CHECK(served.out.find("hello world") != std::string::npos);

    const Outcome info = ctl(at(d, {"info", "svc", "--json"}));
    REQUIRE(info.code == 0);
    const auto rpc = info.document().at("rpc");
    CHECK(rpc.at("calls").get<int>() == 2);
    CHECK(rpc.at("replies").get<int>() == 2);
    CHECK(rpc.at("failures").get<int>() == 0);
    CHECK(rpc.at("in_flight").get<int>() == 0);
    const Outcome text = ctl(at(d, {"info", "svc"}));
    CHECK(text.out.find("Calls made") != std::string::npos);
    const Outcome list = ctl(at(d, {"list", "--interval", "0"}));
    CHECK(list.out.find("svc") != std::string::npos);
    CHECK(list.out.find("rpc") != std::string::npos);
}

TEST_CASE("tail --events on an rpc channel prints a server that came and died, and server_gone") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome plain = ctl(at(d, {"tail", "svc"}));
    CHECK(plain.code == 2);
    CHECK(plain.err.find("an rpc channel carries calls, not messages to tail") !=
          std::string::npos);

    Ctl tail(at(d, {"tail", "svc", "--events", "--count", "3", "--format", "json"}));
    REQUIRE(wait_for_rpc(d, "svc", "callers")); // the tail follows as a caller
    Ctl server(at(d, {"serve", "svc", "--echo"}));
    REQUIRE(wait_for_server(d, "svc"));
    const pid_t server_pid = server.pid();
    REQUIRE(::kill(server_pid, SIGKILL) == 0);
    (void)server.finish();

    const Outcome got = tail.finish();
    INFO(got.out << got.err);
    REQUIRE(got.code == 0);
    std::vector<nlohmann::json> events;
    std::istringstream lines{got.out};
    for (std::string line; std::getline(lines, line);) {
        events.push_back(nlohmann::json::parse(line));
    }
    REQUIRE(events.size() == 3);
    CHECK(events[0].at("event") == "attached");
    CHECK(events[1].at("event") == "died");
    CHECK(events[2].at("event") == "server_gone");
    for (const auto& e : events) {
        CHECK(e.at("role") == "server");
        CHECK(e.at("pid").get<pid_t>() == server_pid);
    }
    CHECK(events[2].at("sequence") == events[1].at("sequence"));
}
