// The configuration of rpc channels: `{name: svc, kind: rpc}` is complete, every rpc key
// lands in the ChannelSpec field it stands for, and a key of the other family is an error at
// its file:line:column.
#include "config.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace shmbus;
using namespace shmbus::daemon;

namespace {

Config valid(std::string_view text) {
    ParseOutcome outcome = parse_config(text, "shmbusd.yaml");
    INFO(text);
    for (const ConfigError& e : outcome.errors) {
        UNSCOPED_INFO(to_string(e));
    }
    REQUIRE(outcome.ok());
    REQUIRE(outcome.config);
    return std::move(*outcome.config);
}

std::string only_error(std::string_view text) {
    const ParseOutcome outcome = parse_config(text, "shmbusd.yaml");
    INFO(text);
    REQUIRE(outcome.errors.size() == 1);
    return to_string(outcome.errors.front());
}

} // namespace

TEST_CASE("an rpc channel with only a name and a kind takes every default") {
    const Config c = valid("channels:\n  - {name: svc, kind: rpc}\n");
    REQUIRE(c.channels.size() == 1);
    const ChannelSpec& s = c.channels[0].spec;
    CHECK(s.kind == ChannelKind::rpc);
    CHECK(s.slot_size == kDefaultRpcRequestSize);
    CHECK(s.reply_slot_size == kDefaultRpcReplySize);
    CHECK(s.slot_count == kDefaultRpcDepth);
    CHECK(s.max_subscribers == kDefaultRpcServers);
    CHECK(s.max_publishers == kDefaultRpcCallers);
    CHECK(channel_bytes(s)); // a channel the library can create
}

TEST_CASE("the rpc keys and acl serve / call land in their fields") {
    const Config c = valid(R"(channels:
  - name: svc
    kind: rpc
    request_size: 200
    reply_size: 4KiB
    depth: 64
    max_servers: 3
    max_callers: 5
    acl:
      serve: {users: [0]}
      call: {users: ["*"]}
)");
    const ChannelConfig& ch = c.channels.at(0);
    CHECK(ch.spec.slot_size == 200);
    CHECK(ch.spec.reply_slot_size == 4096);
    CHECK(ch.spec.slot_count == 64);
    CHECK(ch.spec.max_subscribers == 3);
    CHECK(ch.spec.max_publishers == 5);
    CHECK(ch.acl.subscribe.users.size() == 1); // serve
    CHECK(ch.acl.publish.anyone);              // call
}

TEST_CASE("keys of the other family are errors at their line and column") {
    CHECK(only_error("channels:\n  - name: svc\n    kind: rpc\n    slot_size: 64\n") ==
          "shmbusd.yaml:4:5: error: 'slot_size' does not apply to an rpc channel (its keys are "
          "request_size, reply_size, depth, max_servers and max_callers)");
    CHECK(only_error("channels:\n  - name: q\n    kind: queue\n    depth: 64\n") ==
          "shmbusd.yaml:4:5: error: 'depth' applies to rpc channels only");
    CHECK(only_error("channels:\n  - name: svc\n    kind: rpc\n    acl:\n      publish: "
                     "{users: [0]}\n") ==
          "shmbusd.yaml:5:7: error: 'publish' does not apply to an rpc channel (its acl keys "
          "are serve and call)");
    CHECK(only_error("channels:\n  - name: q\n    kind: broadcast\n    acl:\n      serve: "
                     "{users: [0]}\n") ==
          "shmbusd.yaml:5:7: error: 'serve' applies to rpc channels only (use publish / "
          "subscribe)");
}

TEST_CASE("an rpc depth must be a power of two") {
    const std::string e = only_error("channels:\n  - name: svc\n    kind: rpc\n    depth: 3\n");
    CHECK(e.rfind("shmbusd.yaml:4:12: error:", 0) == 0);
}
