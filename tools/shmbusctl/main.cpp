// shmbusctl: the operator's command-line tool for shmbusd (docs/shmbusctl.md).
//
// This file is the command line: CLI11 declares the global options and the subcommands,
// and each subcommand calls one run_*() function that returns the exit code. CLI11 reports
// usage errors by exception; they are caught here and become exit code 2 — nothing else in
// the program throws. Single-threaded, but for bridge-stdio (the gateway's session threads).
#include "bridge_stdio.hpp"
#include "check_config.hpp"
#include "context.hpp"
#include "format.hpp"
#include "inspect.hpp"
#include "json_view.hpp"
#include "rpc_commands.hpp"
#include "shared_state.hpp"
#include "traffic.hpp"

#include <shmbus/version.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

namespace {

using namespace shmbusctl;

int print_version(const GlobalOptions& options) {
    if (options.json) {
        print_json({{"shmbusctl", SHMBUS_VERSION_STRING},
                    {"library", shmbus::library_version()},
                    {"layout_version", shmbus::kLayoutVersion}});
    } else {
        std::printf("shmbusctl %s\nlibshmbus %s, shared-memory layout %u\n", SHMBUS_VERSION_STRING,
                    shmbus::library_version(), shmbus::kLayoutVersion);
    }
    return kExitOk;
}

int run(int argc, char** argv) {
    CLI::App app{"shmbusctl: inspect and operate shmbusd, the shmbus message bus daemon.",
                 "shmbusctl"};
    app.require_subcommand(1);
    app.fallthrough(); // global options are accepted after the subcommand too

    GlobalOptions options;
    options.colour = colour_allowed(stdout);
    app.add_option("--socket", options.socket_path,
                   "shmbusd's control socket (default: $SHMBUS_SOCKET, else the user's or the "
                   "system daemon's)")
        ->envname("SHMBUS_SOCKET");
    app.add_flag("--json", options.json, "print one JSON document instead of a table");
    app.add_flag("--no-legend", options.no_legend, "leave out column headers and footers");

    int result = kExitOk;
    auto* status = app.add_subcommand("status", "the daemon: version, pid, uptime, paths, totals");
    status->callback([&] { result = run_status(options); });

    double list_interval = 0.2;
    auto* list = app.add_subcommand("list", "one row per channel: geometry, endpoints, counters");
    list->add_option("--interval", list_interval,
                     "seconds between the two samples that give each rate; 0: one sample, no "
                     "rate")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    list->callback([&] { result = run_list(options, list_interval); });

    std::string info_channel;
    auto* info = app.add_subcommand("info", "everything known about one channel and its endpoints");
    info->add_option("CHANNEL", info_channel, "channel name")->required();
    info->callback([&] { result = run_info(options, info_channel); });

    auto* bridges = app.add_subcommand("bridges", "the gateway's bridges: state, peer, counters");
    bridges->callback([&] { result = run_bridges(options); });

    auto* clients = app.add_subcommand("clients", "connected clients and what they hold");
    clients->callback([&] { result = run_clients(options); });

    double stats_interval = 1.0;
    std::uint64_t stats_count = 0;
    auto* stats = app.add_subcommand("stats", "live counters and rates, refreshed each interval");
    stats->add_option("--interval,-i", stats_interval, "seconds between samples")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    stats->add_option("--count,-n", stats_count, "samples to show; 0: until interrupted")
        ->capture_default_str();
    stats->callback([&] { result = run_stats(options, stats_interval, stats_count); });

    TailOptions tail;
    std::string tail_format = "text";
    auto* tail_cmd = app.add_subcommand("tail", "subscribe and print messages as they arrive");
    tail_cmd->add_option("CHANNEL", tail.channel, "channel name")->required();
    tail_cmd->add_option("--count,-n", tail.count, "stop after N messages; 0: until interrupted")
        ->capture_default_str();
    tail_cmd->add_option("--format,-f", tail_format, "text, hex or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "hex", "json"}));
    tail_cmd
        ->add_option("--timeout", tail.timeout_s,
                     "fail (exit 1) after S seconds without a message; 0: wait forever")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    tail_cmd->add_flag("--summary", tail.summary,
                       "at the end, print how many messages were received and lost even when "
                       "none was lost (a loss is always reported)");
    tail_cmd->add_flag("--events", tail.events,
                       "print peer events too: publishers and subscribers attached, detached or "
                       "died, and this subscriber lapped; on an rpc channel (required there) "
                       "servers and callers, and server_gone");
    tail_cmd->callback([&] {
        tail.format = tail_format == "hex"    ? TailFormat::hex
                      : tail_format == "json" ? TailFormat::json
                                              : TailFormat::text;
        if (options.json) {
            tail.format = TailFormat::json;
        }
        result = run_tail(options, tail);
    });

    PubOptions pub;
    auto* pub_cmd = app.add_subcommand(
        "pub", "publish the given messages, each line of stdin, or N generated messages");
    pub_cmd->add_option("CHANNEL", pub.channel, "channel name")->required();
    pub_cmd->add_option("MESSAGE", pub.messages, "messages to send (default: lines of stdin)");
    pub_cmd->add_option("--count,-n", pub.count,
                        "send N messages: the given ones in turn, or generated ones");
    pub_cmd->add_option("--rate,-r", pub.rate, "messages per second (default: as fast as possible)")
        ->check(CLI::PositiveNumber);
    pub_cmd->add_option("--size,-s", pub.size, "bytes per generated message (default: 64)")
        ->check(CLI::PositiveNumber);
    pub_cmd->add_flag("--hex", pub.hex, "messages are hex digits (\"00ff10\", \"de ad be ef\")");
    pub_cmd->add_flag("--verbose,-v", pub.verbose, "print each message sent");
    pub_cmd
        ->add_option("--timeout", pub.timeout_s, "longest wait in seconds for room in a full ring")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    pub_cmd->callback([&] { result = run_pub(options, pub); });

    CallOptions call;
    auto* call_cmd = app.add_subcommand("call", "call an rpc channel and print the reply and the "
                                                "round trip");
    call_cmd->add_option("CHANNEL", call.channel, "rpc channel name")->required();
    call_cmd->add_option("DATA", call.data, "the request: the words joined by spaces");
    call_cmd->add_flag("--hex", call.hex, "DATA is hex digits; the reply is printed in hex");
    call_cmd->add_flag("--wait", call.wait_for_server,
                       "wait for a server to attach instead of failing at once");
    call_cmd->add_option("--timeout", call.timeout_s, "longest wait in seconds for the reply")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    call_cmd->callback([&] { result = run_call(options, call); });

    ServeOptions serve;
    auto* serve_cmd = app.add_subcommand("serve", "serve an rpc channel (--echo: answer each "
                                                  "request with itself)");
    serve_cmd->add_option("CHANNEL", serve.channel, "rpc channel name")->required();
    serve_cmd->add_flag("--echo", serve.echo, "answer each request with the request")->required();
    serve_cmd->add_option("--count,-n", serve.count, "stop after N requests; 0: until interrupted")
        ->capture_default_str();
    serve_cmd->add_flag("--quiet,-q", serve.quiet, "do not print each request served");
    serve_cmd->callback([&] { result = run_serve(options, serve); });

    GetOptions get;
    auto* get_cmd = app.add_subcommand("get", "print one element of a blackboard channel");
    get_cmd->add_option("CHANNEL", get.channel, "blackboard channel")->required();
    get_cmd->add_option("INDEX", get.index, "element index, from 0")->required();
    get_cmd->add_flag("--hex", get.hex, "print the element as hex digits");
    get_cmd->callback([&] { result = run_get(options, get); });

    SetOptions set;
    auto* set_cmd = app.add_subcommand(
        "set", "write one element of a blackboard channel (the rest of it becomes zeros)");
    set_cmd->add_option("CHANNEL", set.channel, "blackboard channel")->required();
    set_cmd->add_option("INDEX", set.index, "element index, from 0")->required();
    set_cmd->add_option("DATA", set.data, "the element's new bytes")->required();
    set_cmd->add_flag("--hex", set.hex, "DATA is hex digits (\"00ff10\", \"de ad be ef\")");
    set_cmd->callback([&] { result = run_set(options, set); });

    std::string counters_channel;
    auto* counters_cmd =
        app.add_subcommand("counters", "the cells of a counters channel and their values");
    counters_cmd->add_option("CHANNEL", counters_channel, "counters channel")->required();
    counters_cmd->callback([&] { result = run_counters(options, counters_channel); });

    std::uint64_t ping_count = 1;
    auto* ping = app.add_subcommand("ping", "round trip to the daemon");
    ping->add_option("--count,-n", ping_count, "pings to send")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    ping->callback([&] { result = run_ping(options, ping_count); });

    auto* reload = app.add_subcommand("reload", "make the daemon re-read its configuration "
                                                "(admin)");
    reload->callback([&] { result = run_reload(options); });

    std::string config_file;
    auto* check = app.add_subcommand(
        "check-config", "validate a configuration file exactly as shmbusd --check-config does");
    check->add_option("FILE", config_file, "file to check (default: the file shmbusd would read)");
    check->callback([&] { result = run_check_config(options, config_file); });

    BridgeStdioOptions bridge;
    auto* bridge_cmd = app.add_subcommand(
        "bridge-stdio", "the far end of a bridge's exec: link: speak the bridge protocol on "
                        "stdin/stdout as a client of the local daemon");
    bridge_cmd->add_option("--name", bridge.name, "the bridge's name in logs on both ends")
        ->capture_default_str();
    bridge_cmd->add_option("--export", bridge.exports,
                           "CHANNEL[=AS]: a local channel (or glob) the peer may import, and "
                           "its name on the link; repeatable");
    bridge_cmd->add_option("--import", bridge.imports,
                           "CHANNEL[=AS]: a channel name (or glob) on the link the peer may "
                           "export into, and its local name; repeatable. Without --export "
                           "and --import, everything this user's ACLs allow");
    bridge_cmd->add_option("--secret-file", bridge.secret_file,
                           "the shared secret (mode 0600) when the daemon's bridge has one");
    bridge_cmd
        ->add_option("--handshake-timeout", bridge.handshake_timeout_s,
                     "seconds the handshake may take")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    bridge_cmd->callback([&] { result = run_bridge_stdio(options, bridge); });

    auto* version = app.add_subcommand("version", "versions of shmbusctl and the library");
    version->callback([&] { result = print_version(options); });

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? kExitOk : kExitUsage;
    }
    return result;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmbusctl: %s\n", e.what());
        return kExitFailed;
    }
}
