// shmbusctl tail's closing summary, "N message(s) received, M lost": printed however tail
// ends (its count, --timeout, an interrupt, an error) when it lost anything, and always with
// --summary, so that an operator never misses a loss because of how tail stopped.
//
// The loss is made certain, not raced: the tail process is stopped (SIGSTOP) while a
// publisher laps the drop channel's ring, then continued. Every wait is on an event (READY=1,
// the tail's subscription in `info --json`, a process exit); --timeout is the behaviour under
// test, not a synchronisation.
#include "daemon_process.hpp"
#include "shmbusctl_process.hpp"
#include "test_channels.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

using namespace shmbus::test;

namespace {

// `telemetry` blocks; `drops` overwrites when its 8 slots are lapped.
const std::string kConfig = [] {
    TestChannel drops = telemetry_channel();
    drops.name = "drops";
    drops.overflow = "drop";
    return channels_yaml({telemetry_channel(), drops});
}();

struct Summary {
    unsigned long long received{0};
    unsigned long long lost{0};
};

/// The numbers of the summary line in tail's stderr, if there is one.
std::optional<Summary> summary_in(const std::string& err) {
    const auto at = err.find("shmbusctl: ");
    for (auto pos = at; pos != std::string::npos; pos = err.find("shmbusctl: ", pos + 1)) {
        Summary s;
        if (std::sscanf(err.c_str() + pos, "shmbusctl: %llu message(s) received, %llu lost",
                        &s.received, &s.lost) == 2) {
            return s;
        }
    }
    return std::nullopt;
}

} // namespace

TEST_CASE("tail --timeout reports what it received and lost before it exits 1") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    // The timeout counts from the subscription, so it must outlast the steps up to SIGSTOP
    // (an `info` poll, a signal) on a loaded machine: 4 s, not 1, or the tail may give up
    // before the publisher has even started.
    Ctl tail(at(d, {"tail", "drops", "--timeout", "4"}));
    REQUIRE(wait_for_tails(d, "drops", 1));

    // Stopped, the tail cannot read: 100 messages lap its 8 slots, so it must lose some.
    REQUIRE(::kill(tail.pid(), SIGSTOP) == 0);
    const Outcome pub = ctl(at(d, {"pub", "drops", "--count", "100"}));
    REQUIRE(pub.code == 0);
    REQUIRE(::kill(tail.pid(), SIGCONT) == 0);

    // It reads what is left, then has no message for 4 s: exit 1, the summary first.
    const Outcome got = tail.finish();
    INFO(got.err);
    CHECK(got.code == 1);
    CHECK(got.err.find("shmbusctl: tail 'drops': no message for 4 s\n") != std::string::npos);
    const auto s = summary_in(got.err);
    REQUIRE(s);
    CHECK(s->lost > 0);
    CHECK(s->received + s->lost == 100); // subscribed before the first: each one accounted for
    CHECK(got.err.find("message(s) received") < got.err.find("no message for"));
}

TEST_CASE("tail --summary reports what it received even when nothing was lost") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Ctl tail(at(d, {"tail", "telemetry", "--count", "3", "--summary"}));
    REQUIRE(wait_for_tails(d, "telemetry", 1));
    REQUIRE(ctl(at(d, {"pub", "telemetry", "one", "two", "three"})).code == 0);
    const Outcome got = tail.finish();
    INFO(got.err);
    CHECK(got.code == 0);
    CHECK(got.err.find("shmbusctl: 3 message(s) received, 0 lost\n") != std::string::npos);
}

TEST_CASE("tail without --summary says nothing at the end when nothing was lost") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Ctl tail(at(d, {"tail", "telemetry", "--count", "1"}));
    REQUIRE(wait_for_tails(d, "telemetry", 1));
    REQUIRE(ctl(at(d, {"pub", "telemetry", "only"})).code == 0);
    const Outcome got = tail.finish();
    CHECK(got.code == 0);
    CHECK(got.out.find("only") != std::string::npos);
    CHECK_FALSE(summary_in(got.err));
}

TEST_CASE("tail --timeout --summary on a silent channel exits 1 saying it received nothing") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    const Outcome got = ctl(at(d, {"tail", "telemetry", "--timeout", "0.3", "--summary"}));
    INFO(got.err);
    CHECK(got.code == 1);
    CHECK(got.err.find("shmbusctl: 0 message(s) received, 0 lost\n") != std::string::npos);
    CHECK(got.err.find("no message for") != std::string::npos);
}
