// The C ABI's listing and administration calls (in include/shmbus/shmbus.h: the channel list
// and details of "Channels", and "Administration") on Client's: channel and client lists,
// channel details, dynamic channels, the daemon's status, reload and ping. Each copies the
// library's answer into the caller's structs and arrays, never past the capacity given, and
// says how many there were.
#include <shmbus/shmbus.h>
#include <shmbus/shmbus.hpp>

#include "c_api_support.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

using shmbus::Errc;
using namespace shmbus::c_api;

namespace {

void copy_summary(const shmbus::ChannelSummary& from, shmbus_channel_summary* to) noexcept {
    *to = shmbus_channel_summary{};
    copy_info(from.info, &to->info);
    const shmbus::ChannelStats& s = from.stats;
    to->stats =
        shmbus_channel_stats{s.published, s.consumed,   s.dropped,    s.abandoned,   s.redelivered,
                             s.corrupted, s.data_waits, s.data_wakes, s.space_waits, s.space_wakes,
                             s.depth,     s.high_water, s.publishers, s.subscribers};
    to->dynamic = from.dynamic ? 1 : 0;
}

} // namespace

extern "C" {

int shmbus_client_list_channels(shmbus_client* client, shmbus_channel_summary* summaries,
                                size_t capacity, size_t* count) noexcept {
    if (client == nullptr || count == nullptr || (summaries == nullptr && capacity != 0)) {
        return fail(Errc::invalid_argument, "shmbus_client_list_channels: client or count is "
                                            "NULL, or summaries is NULL with a capacity");
    }
    *count = 0;
    auto listed = client->client.list_channels();
    if (!listed) {
        return fail(listed.error());
    }
    const std::size_t n = std::min(capacity, listed->size());
    for (std::size_t i = 0; i < n; ++i) {
        copy_summary((*listed)[i], &summaries[i]);
    }
    *count = listed->size();
    return SHMBUS_OK;
}

int shmbus_client_channel_info(shmbus_client* client, const char* channel,
                               shmbus_channel_summary* summary) noexcept {
    if (client == nullptr || channel == nullptr || summary == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_client_channel_info: client, channel and summary must not be NULL");
    }
    auto detail = client->client.channel_info(channel);
    if (!detail) {
        return fail(detail.error());
    }
    copy_summary(detail->summary, summary);
    return SHMBUS_OK;
}

void shmbus_channel_request_init(shmbus_channel_request* request) noexcept {
    if (request != nullptr) {
        *request = shmbus_channel_request{};
        request->overflow = -1;
    }
}

int shmbus_client_create_channel(shmbus_client* client,
                                 const shmbus_channel_request* request) noexcept {
    if (client == nullptr || request == nullptr || request->name == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_client_create_channel: client, request and request->name must not "
                    "be NULL");
    }
    if (request->kind != 0 && request->kind != SHMBUS_KIND_QUEUE &&
        request->kind != SHMBUS_KIND_BROADCAST) {
        return fail(Errc::invalid_argument, "shmbus_channel_request.kind is not a "
                                            "shmbus_channel_kind (1 or 2), nor 0 (left out)");
    }
    if (request->overflow != -1 && request->overflow != SHMBUS_OVERFLOW_BLOCK &&
        request->overflow != SHMBUS_OVERFLOW_DROP) {
        return fail(Errc::invalid_argument, "shmbus_channel_request.overflow is not a "
                                            "shmbus_overflow (0 or 1), nor -1 (left out)");
    }
    try {
        shmbus::ChannelRequest r;
        r.name = request->name;
        if (request->kind != 0) {
            r.kind = static_cast<shmbus::ChannelKind>(request->kind);
        }
        if (request->overflow != -1) {
            r.overflow = static_cast<shmbus::Overflow>(request->overflow);
        }
        // A zero size or count is left out, as ChannelSpec's create_channel() has it.
        auto given = [](auto v, auto& into) {
            if (v != 0) {
                into = v;
            }
        };
        given(request->slot_size, r.slot_size);
        given(request->slot_count, r.slot_count);
        given(request->max_publishers, r.max_publishers);
        given(request->max_subscribers, r.max_subscribers);
        auto created = client->client.create_channel(r);
        return created ? SHMBUS_OK : fail(created.error());
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
}

int shmbus_client_list_clients(shmbus_client* client, shmbus_client_summary* summaries,
                               size_t capacity, size_t* count) noexcept {
    if (client == nullptr || count == nullptr || (summaries == nullptr && capacity != 0)) {
        return fail(Errc::invalid_argument, "shmbus_client_list_clients: client or count is "
                                            "NULL, or summaries is NULL with a capacity");
    }
    *count = 0;
    auto listed = client->client.list_clients();
    if (!listed) {
        return fail(listed.error());
    }
    client->clients = std::move(*listed); // the names handed out point into it
    const std::size_t n = std::min(capacity, client->clients.size());
    for (std::size_t i = 0; i < n; ++i) {
        const shmbus::ClientSummary& c = client->clients[i];
        summaries[i] = shmbus_client_summary{
            c.client_id, c.pid, c.uid, c.gid, c.endpoints, c.connected_since_ms, c.name.c_str()};
    }
    *count = client->clients.size();
    return SHMBUS_OK;
}

int shmbus_client_status(shmbus_client* client, shmbus_daemon_status* status) noexcept {
    if (client == nullptr || status == nullptr) {
        return fail(Errc::invalid_argument,
                    "shmbus_client_status: client and status must not be NULL");
    }
    auto got = client->client.status();
    if (!got) {
        return fail(got.error());
    }
    try {
        std::vector<const char*> files;
        files.reserve(got->config_files.size());
        client->status = std::move(*got); // the strings handed out point into it
        for (const std::string& f : client->status.config_files) {
            files.push_back(f.c_str());
        }
        client->config_files = std::move(files);
    } catch (const std::bad_alloc&) {
        return no_memory();
    }
    const shmbus::DaemonStatus& d = client->status;
    *status = shmbus_daemon_status{d.daemon_version.c_str(),
                                   d.pid,
                                   d.uptime_ms,
                                   client->config_files.data(),
                                   client->config_files.size(),
                                   d.socket_path.c_str(),
                                   d.state_directory.c_str(),
                                   d.clients,
                                   d.channels,
                                   d.segment_bytes,
                                   d.protocol_major,
                                   d.protocol_minor};
    return SHMBUS_OK;
}

int shmbus_client_reload(shmbus_client* client, const char** message) noexcept {
    if (client == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_client_reload: client is NULL");
    }
    auto reloaded = client->client.reload();
    if (!reloaded) {
        return fail(reloaded.error());
    }
    client->reloaded = std::move(*reloaded); // what *message points into
    if (message != nullptr) {
        *message = client->reloaded.c_str();
    }
    return SHMBUS_OK;
}

int shmbus_client_ping(shmbus_client* client, int64_t* round_trip_ns) noexcept {
    if (client == nullptr) {
        return fail(Errc::invalid_argument, "shmbus_client_ping: client is NULL");
    }
    auto pinged = client->client.ping();
    if (!pinged) {
        return fail(pinged.error());
    }
    if (round_trip_ns != nullptr) {
        *round_trip_ns = static_cast<int64_t>(pinged->count());
    }
    return SHMBUS_OK;
}

} // extern "C"
