// The far side of a NATS bridge in tests: a plain libnats connection, and the JetStream
// stream the durable-import tests publish into. For tests that link libnats
// (shmbus_libnats); nats_server.hpp starts the server they talk to.
#pragma once

#include "daemon_process.hpp"

#include <catch2/catch.hpp>
#include <nats/nats.h>

#include <chrono>
#include <string>

namespace shmbus::test {

/// A plain libnats connection, for the far side of a bridge.
struct PlainNats {
    natsConnection* nc{nullptr};
    explicit PlainNats(const std::string& url) {
        REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
    }
    ~PlainNats() { natsConnection_Destroy(nc); }
};

/// A file-backed stream JOBS holding the subject shmbus.ground.jobs, kept on `replicas`
/// servers. A cluster that is still electing its JetStream leader refuses it for a moment:
/// asked again until the generous deadline.
inline void add_jobs_stream(const std::string& url, int replicas = 1) {
    PlainNats admin{url};
    jsCtx* js = nullptr;
    REQUIRE(natsConnection_JetStream(&js, admin.nc, nullptr) == NATS_OK);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = "JOBS";
    const char* subjects[] = {"shmbus.ground.jobs"};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = replicas;
    jsErrCode code{};
    natsStatus added = js_AddStream(nullptr, js, &sc, nullptr, &code);
    const auto deadline = generous_deadline();
    while (added != NATS_OK && replicas > 1 && std::chrono::steady_clock::now() < deadline) {
        added = js_AddStream(nullptr, js, &sc, nullptr, &code);
    }
    jsCtx_Destroy(js);
    INFO("js_AddStream: " << natsStatus_GetText(added) << ", JetStream error " << code);
    REQUIRE(added == NATS_OK);
}

} // namespace shmbus::test
