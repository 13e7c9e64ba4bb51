// One client's requests, answered. See client_session.hpp for the rules.
#include "client_session.hpp"

#include "bridges.hpp"

#include "logging.hpp"
#include "uid_quota.hpp"

#include <assert.hpp>

#include <shmbus/version.hpp>

#include <unistd.h>

#include <algorithm>

namespace shmbus::daemon {

namespace {

LogFields fields_of(const ClientRecord& c, std::string_view channel = {}) {
    return client_fields(c.credentials.pid, c.credentials.uid, c.name, channel);
}

// Client names are free text from an untrusted peer: keep them short and printable.
std::string sanitized_name(const std::string& name) {
    std::string out;
    for (char ch : name.substr(0, 64)) {
        out += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    return out;
}

} // namespace

ChannelSummary summarize(const RegisteredChannel& channel) {
    ChannelSummary s;
    s.info = channel.info;
    s.stats = channel.supervisor.stats();
    s.dynamic = channel.origin.dynamic;
    return s;
}

ClientRecord& ClientSession::client() {
    ClientRecord* c = state_.find_client(client_id_);
    SHMBUS_ASSERT(c != nullptr, "a session's client record lives as long as its connection");
    return *c;
}

Reply ClientSession::reply(std::uint32_t request_id, proto::Body body, std::vector<UniqueFd> fds) {
    auto bytes = proto::encode(proto::Message{request_id, std::move(body)});
    if (!bytes) {
        // Only a reply too large for the protocol can fail to encode (a huge list).
        return error(request_id, Errc::limit_reached,
                     "the reply does not fit one message: " + bytes.error().message());
    }
    return Reply{std::move(*bytes), std::move(fds), false};
}

Reply ClientSession::error(std::uint32_t request_id, Errc code, std::string message) {
    auto bytes =
        proto::encode(proto::Message{request_id, proto::ErrorReply{code, std::move(message)}});
    if (!bytes) {
        auto fallback = proto::encode(proto::Message{
            request_id, proto::ErrorReply{code, "(the error message was too long)"}});
        return Reply{fallback ? std::move(*fallback) : std::vector<std::byte>{}, {}, !fallback};
    }
    return Reply{std::move(*bytes), {}, false};
}

Reply ClientSession::error(std::uint32_t request_id, const Error& e) {
    return error(request_id, e.code, e.detail.empty() ? e.message() : e.detail);
}

Reply ClientSession::over_limit(std::uint32_t request_id, const Error& e) {
    const ClientRecord& c = client();
    refusals_.warn(c.credentials.uid, "refused a request of " + describe(c) + ": " + e.detail,
                   fields_of(c));
    return error(request_id, e);
}

bool ClientSession::admin() {
    return is_admin(state_.config(), client().credentials, state_.daemon_uid());
}

Reply ClientSession::refused(const proto::Refusal& refusal) {
    const ClientRecord& c = client();
    const bool ends = refusal.ends_connection() || refusal.error.code == Errc::version_mismatch;
    const std::string what = refusal.fault == proto::Fault::malformed
                                 ? " sent a malformed message: "
                                 : " sent a datagram that was refused: ";
    log_warning(describe(c) + what + refusal.error.detail + (ends ? "; disconnected" : ""),
                fields_of(c));
    Reply r = error(refusal.request_id, refusal.error);
    r.disconnect = r.disconnect || ends;
    return r;
}

Reply ClientSession::handle(proto::Received received) {
    proto::Message& msg = received.message;
    const std::uint32_t id = msg.request_id;
    if (!greeted_ && !std::holds_alternative<proto::Hello>(msg.body)) {
        return error(id, Errc::protocol_error,
                     "send hello first (got " +
                         std::string{proto::msg_type_name(proto::type_of(msg.body))} + ")");
    }
    return std::visit(
        [&](auto& body) -> Reply {
            using T = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<T, proto::Hello>) {
                return on_hello(id, body);
            } else if constexpr (std::is_same_v<T, proto::Open>) {
                return on_open(id, body);
            } else if constexpr (std::is_same_v<T, proto::Close>) {
                return on_close(id, body);
            } else if constexpr (std::is_same_v<T, proto::Create>) {
                return on_create(id, body);
            } else if constexpr (std::is_same_v<T, proto::ListChannels>) {
                return on_list_channels(id);
            } else if constexpr (std::is_same_v<T, proto::ChannelInfoRequest>) {
                return on_channel_info(id, body);
            } else if constexpr (std::is_same_v<T, proto::ListClients>) {
                return on_list_clients(id);
            } else if constexpr (std::is_same_v<T, proto::Reload>) {
                return on_reload(id);
            } else if constexpr (std::is_same_v<T, proto::Ping>) {
                return reply(id, proto::Pong{body.token});
            } else if constexpr (std::is_same_v<T, proto::Status>) {
                return on_status(id);
            } else if constexpr (std::is_same_v<T, proto::ListBridges>) {
                return on_list_bridges(id);
            } else if constexpr (std::is_same_v<T, proto::ReclaimOffer>) {
                return on_reclaim_offer(id, body, std::move(received.fds));
            } else {
                return error(id, Errc::protocol_error,
                             "'" + std::string{proto::msg_type_name(proto::type_of(msg.body))} +
                                 "' is a reply, not a request");
            }
        },
        msg.body);
}

Reply ClientSession::on_hello(std::uint32_t id, const proto::Hello& m) {
    ClientRecord& c = client();
    if (m.major != proto::kProtocolMajor) {
        Reply r = error(id, Errc::version_mismatch,
                        "client speaks protocol " + std::to_string(m.major) + "." +
                            std::to_string(m.minor) + ", the daemon speaks " +
                            std::to_string(proto::kProtocolMajor) + "." +
                            std::to_string(proto::kProtocolMinor));
        r.disconnect = true;
        return r;
    }
    if (m.layout_version != 0 && m.layout_version != kLayoutVersion) {
        Reply r = error(id, Errc::version_mismatch,
                        "client uses shared-memory layout " + std::to_string(m.layout_version) +
                            ", the daemon's segments are layout " + std::to_string(kLayoutVersion));
        r.disconnect = true;
        return r;
    }
    const bool first = !greeted_;
    greeted_ = true;
    c.name = sanitized_name(m.client_name);
    if (first) {
        log_info(describe(c) + " connected (protocol " + std::to_string(m.major) + "." +
                     std::to_string(m.minor) + ")",
                 fields_of(c));
    }
    proto::HelloReply hr;
    hr.layout_version = kLayoutVersion;
    hr.daemon_pid = static_cast<std::uint32_t>(getpid());
    hr.client_id = c.id;
    hr.daemon_version = SHMBUS_VERSION_STRING;
    return reply(id, std::move(hr));
}

Reply ClientSession::on_open(std::uint32_t id, const proto::Open& m) {
    ClientRecord& c = client();
    RegisteredChannel* ch = state_.registry().find(m.channel);
    if (ch == nullptr && state_.awaiting(m.channel)) {
        // A dynamic channel of the previous run (a configured one has a stand-in meanwhile).
        return error(id, Errc::not_found,
                     "no channel '" + m.channel +
                         "' yet: the clients of a channel of that name from before the daemon "
                         "restarted may still offer it back during the grace period");
    }
    if (ch == nullptr || ch->draining) {
        return error(id, Errc::not_found,
                     "no channel '" + m.channel + "'" +
                         (ch != nullptr ? " (it was removed from the configuration)" : ""));
    }
    if (m.role != Role::publisher && m.role != Role::subscriber) {
        return error(id, Errc::invalid_argument, "unknown role");
    }
    if (!may_open(ch->acl, m.role, c.credentials, state_.daemon_uid())) {
        // On an rpc channel callers take the publisher role and servers the subscriber role.
        const bool rpc = ch->info.kind == ChannelKind::rpc;
        const bool pub = m.role == Role::publisher;
        const std::string verb =
            rpc ? (pub ? "call" : "serve") : (pub ? "publish on" : "subscribe to");
        log_info(describe(c) + " may not " + verb + " '" + m.channel + "': denied",
                 fields_of(c, m.channel));
        return error(id, Errc::permission_denied,
                     "uid " + std::to_string(c.credentials.uid) + " may not " + verb +
                         " channel '" + m.channel + "' (its acl." +
                         (rpc ? (pub ? "call" : "serve") : (pub ? "publish" : "subscribe")) +
                         " does not list this user or its groups)");
    }
    const std::uint32_t held = state_.registry().endpoints_of(c.id);
    const std::uint32_t limit = state_.config().limits.per_client.max_open_channels;
    if (held >= limit) {
        return over_limit(
            id, make_error(Errc::limit_reached, "this client has " + std::to_string(held) +
                                                    " endpoints open; "
                                                    "limits.per_client.max_open_channels is " +
                                                    std::to_string(limit)));
    }
    if (!admin()) {
        const std::uint32_t of_uid = state_.registry().endpoints_of_uid(c.credentials.uid);
        if (auto quota = admit_endpoint(state_.config().limits.per_uid, c.credentials.uid, of_uid);
            !quota) {
            return over_limit(id, quota.error());
        }
    }
    auto files = ch->files_for(m.role);
    if (!files) {
        return error(id, files.error());
    }
    auto index = state_.registry().assign_endpoint(
        *ch, m.role, EndpointClaim{c.id, m.role, 0, c.credentials.pid, c.credentials.uid, c.name});
    if (!index) {
        return error(id, index.error());
    }
    log_info(describe(c) + " opened '" + m.channel + "' as " + std::string{to_string(m.role)} +
                 " " + std::to_string(*index),
             fields_of(c, m.channel));
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(files->control));
    fds.push_back(std::move(files->payload));
    return reply(id, proto::OpenReply{ch->info, *index}, std::move(fds));
}

Reply ClientSession::on_close(std::uint32_t id, const proto::Close& m) {
    ClientRecord& c = client();
    auto released = state_.registry().release_endpoint(c.id, m.channel, m.role, m.endpoint_index);
    if (!released) {
        return error(id, released.error());
    }
    log_debug(describe(c) + " closed " + std::string{to_string(m.role)} + " " +
                  std::to_string(m.endpoint_index) + " on '" + m.channel + "'",
              fields_of(c, m.channel));
    state_.remove_unused_channels();
    return reply(id, proto::Ok{});
}

Reply ClientSession::on_create(std::uint32_t id, const proto::Create& m) {
    auto created = state_.create_dynamic(client(), m.spec, m.given);
    if (!created) {
        return created.code() == Errc::limit_reached ? over_limit(id, created.error())
                                                     : error(id, created.error());
    }
    return reply(id, proto::Ok{"channel '" + m.spec.name + "' created"});
}

Reply ClientSession::on_list_channels(std::uint32_t id) {
    const ClientRecord& me = client();
    proto::ChannelList list;
    for (const RegisteredChannel* ch : state_.registry().channels()) {
        if (!ch->draining &&
            may_see_channel(state_.config(), ch->acl, me.credentials, state_.daemon_uid())) {
            list.channels.push_back(summarize(*ch));
        }
    }
    return reply(id, std::move(list));
}

Reply ClientSession::on_channel_info(std::uint32_t id, const proto::ChannelInfoRequest& m) {
    const ClientRecord& me = client();
    const Config& config = state_.config();
    const RegisteredChannel* ch = state_.registry().find(m.channel);
    if (ch == nullptr || !may_see_channel(config, ch->acl, me.credentials, state_.daemon_uid())) {
        // The same answer whether the channel exists or is hidden from this user.
        return error(id, Errc::not_found,
                     "no channel '" + m.channel + "'" +
                         (admin()
                              ? std::string{}
                              : " that uid " + std::to_string(me.credentials.uid) + " may open"));
    }
    ChannelDetail detail;
    detail.summary = summarize(*ch);
    const auto entries = ch->supervisor.endpoints();
    for (const auto& claim : ch->claims) {
        EndpointDetail d;
        d.role = claim.role;
        d.index = claim.index;
        d.uid = claim.uid;
        if (may_see_client(config, claim.uid, me.credentials, state_.daemon_uid())) {
            d.client_id = claim.client_id;
            d.pid = claim.pid;
            d.client_name = claim.client_name;
        }
        for (const auto& e : entries) {
            if (e.role == claim.role && e.index == claim.index) {
                d.cursor = e.cursor;
                d.lost = e.lost;
                d.held = e.held;
            }
        }
        detail.endpoints.push_back(std::move(d));
    }
    return reply(id, std::move(detail));
}

Reply ClientSession::on_list_clients(std::uint32_t id) {
    const ClientRecord& me = client();
    proto::ClientList list;
    for (const auto& [cid, rec] : state_.clients()) {
        if (!may_see_client(state_.config(), rec.credentials.uid, me.credentials,
                            state_.daemon_uid())) {
            continue;
        }
        ClientSummary s;
        s.client_id = rec.id;
        s.pid = rec.credentials.pid;
        s.uid = rec.credentials.uid;
        s.gid = rec.credentials.gid;
        s.name = rec.name;
        s.endpoints = state_.registry().endpoints_of(rec.id);
        s.connected_since_ms = rec.connected_since_ms;
        list.clients.push_back(std::move(s));
    }
    return reply(id, std::move(list));
}

Reply ClientSession::on_list_bridges(std::uint32_t id) {
    proto::BridgeList list;
    if (const Bridges* bridges = state_.bridges(); bridges != nullptr) {
        list.bridges = bridges->summaries();
    }
    return reply(id, std::move(list));
}

Reply ClientSession::on_status(std::uint32_t id) {
    DaemonStatus s = state_.status();
    s.protocol_major = proto::kProtocolMajor;
    s.protocol_minor = proto::kProtocolMinor;
    return reply(id, std::move(s));
}

Reply ClientSession::on_reload(std::uint32_t id) {
    const ClientRecord& c = client();
    if (!admin()) {
        return error(id, Errc::permission_denied,
                     "reload is an admin operation; uid " + std::to_string(c.credentials.uid) +
                         " is not root, the daemon's user, or in daemon.admin");
    }
    log_info(describe(c) + " asked for a reload", fields_of(c));
    auto summary = state_.reload();
    if (!summary) {
        return error(id, summary.error());
    }
    return reply(id, proto::Ok{std::move(*summary)});
}

Reply ClientSession::on_reclaim_offer(std::uint32_t id, const proto::ReclaimOffer& m,
                                      std::vector<UniqueFd> fds) {
    ClientRecord& c = client();
    auto accepted = state_.take_back(c, m, std::move(fds));
    if (!accepted) {
        log_warning(describe(c) + " offered back " + std::string{to_string(m.role)} + " " +
                        std::to_string(m.endpoint_index) + " on '" + m.channel +
                        "': refused: " + accepted.error().message(),
                    fields_of(c, m.channel));
        return error(id, accepted.error());
    }
    return reply(id, proto::Ok{});
}

} // namespace shmbus::daemon
