// call and serve: see rpc_commands.hpp.
#include "rpc_commands.hpp"

#include "format.hpp"
#include "json_view.hpp"

#include <chrono>
#include <cstdio>
#include <string>

namespace shmbusctl {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string round_trip_text(std::chrono::nanoseconds d) {
    char buf[32];
    if (d < 1ms) {
        std::snprintf(buf, sizeof buf, "%.1fµs", static_cast<double>(d.count()) / 1e3);
    } else {
        std::snprintf(buf, sizeof buf, "%.2fms", static_cast<double>(d.count()) / 1e6);
    }
    return buf;
}

} // namespace

int run_call(const GlobalOptions& options, const CallOptions& call) {
    std::string joined;
    for (const auto& word : call.data) {
        joined += (joined.empty() ? "" : " ") + word;
    }
    auto request = bytes_given(joined, call.hex);
    if (!request) {
        return fail("call: '" + joined + "' is not hex (pairs of 0-9a-f)", kExitUsage);
    }
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto caller = client->open_caller(call.channel, {}, call.wait_for_server);
    if (!caller) {
        return fail("cannot call '" + call.channel + "'", caller.error(), ErrorSite::channel);
    }
    const auto timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(call.timeout_s));
    const auto start = Clock::now();
    auto reply = caller->call(*request, timeout);
    const auto round_trip = Clock::now() - start;
    if (!reply) {
        return fail("call '" + call.channel + "'", reply.error(), ErrorSite::other);
    }
    const std::span<const std::byte> data{reply->data};
    if (options.json) {
        print_json({{"channel", call.channel},
                    {"id", reply->id},
                    {"size", data.size()},
                    {"hex", to_hex(data, false)},
                    {"text", escaped_text(data)},
                    {"round_trip_ns", std::chrono::nanoseconds(round_trip).count()}});
    } else {
        std::printf("%s\n", (call.hex ? to_hex(data, true) : escaped_text(data)).c_str());
        std::fprintf(stderr, "reply of %zu B to call %llu in %s\n", data.size(),
                     static_cast<unsigned long long>(reply->id),
                     round_trip_text(round_trip).c_str());
    }
    return kExitOk;
}

int run_serve(const GlobalOptions& options, const ServeOptions& serve) {
    if (!serve.echo) {
        return fail("serve: say what to answer with (--echo)", kExitUsage);
    }
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto server = client->open_server(serve.channel, blocking_endpoint());
    if (!server) {
        return fail("cannot serve '" + serve.channel + "'", server.error(), ErrorSite::channel);
    }
    catch_interrupts();
    std::uint64_t served = 0;
    while (!interrupted() && (serve.count == 0 || served < serve.count)) {
        auto batch = server->receive(16, kTick);
        if (!batch && batch.code() == shmbus::Errc::timed_out) {
            continue;
        }
        if (!batch) {
            return fail("serve '" + serve.channel + "'", batch.error(), ErrorSite::other);
        }
        for (const shmbus::Request& r : *batch) {
            auto answered = server->respond(r, r.data);
            if (!serve.quiet) {
                if (options.json) {
                    print_json({{"id", r.id},
                                {"caller", r.caller},
                                {"size", r.data.size()},
                                {"text", escaped_text(r.data)},
                                {"dropped", !answered}});
                } else {
                    std::printf("#%llu from caller %u (%zu B) %s%s\n",
                                static_cast<unsigned long long>(r.id), r.caller, r.data.size(),
                                escaped_text(r.data).c_str(),
                                answered ? "" : " [reply dropped: the caller gave up]");
                }
                std::fflush(stdout);
            }
            ++served;
        }
    }
    return kExitOk;
}

} // namespace shmbusctl
