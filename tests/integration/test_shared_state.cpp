// Blackboard and counters channels through the real shmbusd: configured in YAML with their
// defaults, opened by clients, shown and changed by shmbusctl (list, info, get, set,
// counters), a writer killed with SIGKILL in the middle of an update reclaimed by the daemon
// (the element reads as torn, the next write repairs it), and the examples/ programs run
// against the daemon. Every wait is on the event itself, with a generous deadline.
#include "daemon_process.hpp"
#include "process.hpp"
#include "shmbusctl_process.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;

namespace {

// A name and a kind are a complete entry; 'joints' is sized.
const std::string kConfig = "channels:\n"
                            "  - {name: board, kind: blackboard}\n"
                            "  - {name: stats, kind: counters}\n"
                            "  - {name: joints, kind: blackboard, slot_size: 24, slot_count: 7}\n";

ClientOptions options_for(const DaemonProcess& d, const std::string& name) {
    ClientOptions o;
    o.socket_path = d.socket_path().native();
    o.client_name = name;
    o.reconnect_in_background = false; // also used in forked children
    return o;
}

Client connect_to(const DaemonProcess& d, const std::string& name = "test_shared_state") {
    auto c = Client::connect(options_for(d, name));
    REQUIRE(c);
    return std::move(*c);
}

std::vector<std::byte> bytes_of(const std::string& s) {
    std::vector<std::byte> v(s.size());
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}

} // namespace

TEST_CASE("shmbusctl list and info show the shared-state channels with their defaults") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome list = ctl(at(d, {"list", "--json", "--interval", "0"}));
    REQUIRE(list.code == 0);
    std::map<std::string, nlohmann::json> by_name;
    const nlohmann::json doc = list.document();
    for (const auto& c : doc["channels"]) {
        by_name[c["name"].get<std::string>()] = c;
    }
    REQUIRE(by_name.count("board") == 1);
    CHECK(by_name["board"]["kind"] == "blackboard");
    CHECK(by_name["board"]["slot_size"] == 64);
    CHECK(by_name["board"]["slot_count"] == 64);
    CHECK(by_name["stats"]["kind"] == "counters");
    CHECK(by_name["joints"]["slot_count"] == 7);
    const Outcome info = ctl(at(d, {"info", "board"}));
    REQUIRE(info.code == 0);
    CHECK(info.out.find("blackboard") != std::string::npos);
}

TEST_CASE("shmbusctl set writes an element that get and a client read back") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    REQUIRE(ctl(at(d, {"set", "joints", "3", "elbow=42"})).code == 0);
    const Outcome got = ctl(at(d, {"get", "joints", "3"}));
    REQUIRE(got.code == 0);
    CHECK(got.out.find("#3 v1 (24 B) elbow=42") != std::string::npos);
    const Outcome json = ctl(at(d, {"get", "joints", "3", "--json"}));
    REQUIRE(json.code == 0);
    CHECK(json.document()["version"] == 1);
    CHECK(json.document()["text"].get<std::string>().rfind("elbow=42", 0) == 0);

    Client c = connect_to(d);
    auto board = c.open_blackboard("joints", Role::subscriber);
    REQUIRE(board);
    std::vector<std::byte> out(24);
    auto v = board->read(3, out);
    REQUIRE(v);
    CHECK(std::memcmp(out.data(), "elbow=42", 8) == 0);

    const Outcome past = ctl(at(d, {"get", "joints", "7"}));
    CHECK(past.code == 1);
    CHECK(past.err.find("beyond its 7") != std::string::npos);
    const Outcome too_long = ctl(at(d, {"set", "joints", "0", std::string(25, 'x')}));
    CHECK(too_long.code == 1);
    CHECK(too_long.err.find("has 24 bytes") != std::string::npos);
    const Outcome wrong_kind = ctl(at(d, {"get", "stats", "0"}));
    CHECK(wrong_kind.code == 1);
    CHECK(wrong_kind.err.find("not a blackboard") != std::string::npos);
}

TEST_CASE("shmbusctl counters lists the cells writers created, as a table and as JSON") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto writer = c.open_counters("stats", Role::publisher);
    REQUIRE(writer);
    auto requests = writer->cell("requests");
    REQUIRE(requests);
    REQUIRE(requests->fetch_add(41));
    REQUIRE(requests->fetch_add(1));
    auto peak = writer->cell("peak");
    REQUIRE(peak);
    REQUIRE(peak->fetch_max(7));

    const Outcome table = ctl(at(d, {"counters", "stats"}));
    REQUIRE(table.code == 0);
    CHECK(table.out.find("requests") != std::string::npos);
    CHECK(table.out.find("42") != std::string::npos);
    CHECK(table.out.find("2 of 64 cells in use") != std::string::npos);
    const Outcome json = ctl(at(d, {"counters", "stats", "--json"}));
    REQUIRE(json.code == 0);
    const auto doc = json.document();
    REQUIRE(doc["counters"].size() == 2);
    CHECK(doc["counters"][0]["name"] == "requests");
    CHECK(doc["counters"][0]["value"] == 42);
    CHECK(doc["counters"][1]["name"] == "peak");
    CHECK(doc["counters"][1]["value"] == 7);
    CHECK(doc["capacity"] == 64);

    // A reader opened through the daemon can look but not change.
    auto reader = c.open_counters("stats", Role::subscriber);
    REQUIRE(reader);
    auto seen = reader->cell("requests");
    REQUIRE(seen);
    CHECK(seen->load() == 42);
    CHECK(seen->fetch_add(1).code() == Errc::permission_denied);
    CHECK(ctl(at(d, {"counters", "nosuch"})).code == 4);
}

TEST_CASE("a writer killed mid-update is reclaimed by the daemon: torn, then repaired") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto writer = c.open_blackboard("board", Role::publisher);
    REQUIRE(writer);
    REQUIRE(writer->write(5, bytes_of("before")));
    auto reader = c.open_blackboard("board", Role::subscriber);
    REQUIRE(reader);

    Pipe ready = Pipe::make();
    Child victim = Child::spawn([&] {
        auto client = Client::connect(options_for(d, "victim"));
        if (!client) {
            return 1;
        }
        auto w = client->open_blackboard("board", Role::publisher);
        if (!w) {
            return 2;
        }
        (void)w->update(5, [&](std::span<std::byte> bytes) {
            std::memcpy(bytes.data(), "half", 4);
            (void)send_record(ready.write_end.get(), 1);
            for (;;) {
                ::pause();
            }
        });
        return 3;
    });
    REQUIRE(receive_record<int>(ready.read_end.get(), Deadline{}));
    victim.kill_and_wait(SIGKILL);

    // The daemon sees the victim's connection close and marks the element torn.
    std::vector<std::byte> out(64);
    const Deadline deadline;
    Result<std::uint64_t> read = reader->read(5, out);
    while (read.code() == Errc::would_block && !deadline.passed()) {
        std::this_thread::yield();
        read = reader->read(5, out);
    }
    REQUIRE_FALSE(read);
    CHECK(read.code() == Errc::corrupted);
    CHECK(read.error().detail.find("element 5 is torn") != std::string::npos);
    const Outcome got = ctl(at(d, {"get", "board", "5"}));
    CHECK(got.code == 1);
    CHECK(got.err.find("torn") != std::string::npos);

    REQUIRE(writer->write(5, bytes_of("after")));
    auto repaired = reader->read(5, out);
    REQUIRE(repaired);
    CHECK(std::memcmp(out.data(), "after", 5) == 0);
}

TEST_CASE("the shared-state examples run against the daemon") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    for (const char* program : {SHMBUS_BLACKBOARD_EXAMPLE, SHMBUS_COUNTERS_EXAMPLE}) {
        INFO(program);
        Child child = Child::spawn([&] {
            ::execl(program, program, "--socket", d.socket_path().c_str(), nullptr);
            return 127;
        });
        auto st = child.wait();
        REQUIRE(st);
        INFO(st->describe());
        CHECK(st->exited_ok());
    }
    const Outcome table = ctl(at(d, {"counters", "stats", "--json"}));
    REQUIRE(table.code == 0);
    CHECK(table.document()["counters"][0]["value"] == 1000); // 'requests'
}
