// Client: the public face of a control connection to shmbusd (client.hpp).
//
// Each public call checks that the Client is usable (not moved from), runs one request on its
// Impl (client_impl.hpp: requests, reconnects, endpoint records) and turns allocation failure
// into Errc::no_memory, so that nothing throws across the library's ABI. The connection below
// the protocol is client_connection.hpp; the background reconnect thread client_watcher.hpp.
//
// Thread: the Client's (one at a time, client.hpp); the Impl takes care of the rest.
#include <shmbus/client.hpp>

#include "client_impl.hpp"
#include "client_watcher.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>
#include <string>
#include <sys/stat.h>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

namespace shmbus {

namespace {

using detail::Clock;

constexpr const char* kSystemSocket = "/run/shmbusd/shmbusd.sock";

Error out_of_memory() {
    return make_error(Errc::no_memory, "out of memory");
}

/// Runs `f` on the connection of a Client: every public call goes through here.
template <typename F>
auto with_connection(const std::shared_ptr<Client::Impl>& impl, F&& f) noexcept
    -> decltype(f(*impl)) {
    try {
        if (!impl) {
            return make_error(Errc::closed, "this Client was moved from");
        }
        if (auto mine = impl->usable(); !mine) {
            return mine.take_error();
        }
        auto result = f(*impl);
        impl->say_queued(); // what a reconnect during the call has to say
        return result;
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

/// The daemon's Ok to a request that yields nothing.
Result<void> as_void(Result<proto::Ok> r) {
    if (!r) {
        return r.take_error();
    }
    return ok();
}

} // namespace

std::string default_socket_path() {
    if (const char* s = std::getenv("SHMBUS_SOCKET"); s != nullptr && *s != '\0') {
        return s;
    }
    if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x == '/') {
        std::string user = std::string{x} + "/shmbus/shmbusd.sock";
        struct stat st {};
        if (::stat(user.c_str(), &st) == 0) {
            return user;
        }
    }
    return kSystemSocket;
}

Client::Client(std::shared_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(const ClientOptions& options) noexcept {
    try {
        if (options.request_timeout <= std::chrono::milliseconds::zero()) {
            return make_error(Errc::invalid_argument, "request_timeout must be positive");
        }
        auto impl = std::make_shared<Impl>();
        impl->socket_path =
            options.socket_path.empty() ? default_socket_path() : options.socket_path;
        impl->client_name =
            options.client_name.empty() ? program_invocation_short_name : options.client_name;
        impl->timeout = options.request_timeout;
        impl->log_sink = options.log;
        impl->owner_pid = ::getpid();
        auto fd = impl->first_connect(options.wait_for_daemon);
        if (!fd) {
            return fd.take_error();
        }
        impl->set_socket(std::move(*fd));
        const auto deadline = Clock::now() + impl->timeout;
        if (auto greeted = impl->handshake(deadline); !greeted) {
            return greeted.take_error();
        }
        if (options.reconnect_in_background) {
            if (auto started = detail::watcher_add(impl); !started) {
                return started.take_error();
            }
        }
        return Client{Impl::make_handle(std::move(impl))};
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    }
}

Result<Publisher> Client::open_publisher(std::string_view channel,
                                         const EndpointOptions& options) noexcept {
    return with_connection(
        impl_, [&](Impl& c) { return c.open<Publisher>(channel, Role::publisher, options); });
}

Result<Subscriber> Client::open_subscriber(std::string_view channel,
                                           const EndpointOptions& options) noexcept {
    return with_connection(
        impl_, [&](Impl& c) { return c.open<Subscriber>(channel, Role::subscriber, options); });
}

Result<Server> Client::open_server(std::string_view channel,
                                   const EndpointOptions& options) noexcept {
    // A server reads requests: it takes an entry of the channel's subscriber table.
    return with_connection(
        impl_, [&](Impl& c) { return c.open<Server>(channel, Role::subscriber, options); });
}

Result<Caller> Client::open_caller(std::string_view channel, const EndpointOptions& options,
                                   bool wait_for_server) noexcept {
    // A caller writes requests: it takes an entry of the channel's publisher table.
    auto caller = with_connection(
        impl_, [&](Impl& c) { return c.open<Caller>(channel, Role::publisher, options); });
    if (caller) {
        caller->set_wait_for_server(wait_for_server);
    }
    return caller;
}

Result<Blackboard> Client::open_blackboard(std::string_view channel, Role role,
                                           const EndpointOptions& options) noexcept {
    return with_connection(impl_,
                           [&](Impl& c) { return c.open<Blackboard>(channel, role, options); });
}

Result<Counters> Client::open_counters(std::string_view channel, Role role,
                                       const EndpointOptions& options) noexcept {
    return with_connection(impl_,
                           [&](Impl& c) { return c.open<Counters>(channel, role, options); });
}

Result<Pool> Client::open_pool(std::string_view channel, Role role,
                               const EndpointOptions& options) noexcept {
    return with_connection(impl_, [&](Impl& c) { return c.open<Pool>(channel, role, options); });
}

Result<void> Client::create_channel(const ChannelSpec& spec) noexcept {
    return with_connection(impl_, [&](Impl& c) {
        return as_void(c.request<proto::Ok>(proto::Create{spec, proto::kAllSpecFields}, "create"));
    });
}

Result<void> Client::create_channel(const ChannelRequest& request) noexcept {
    return with_connection(impl_, [&](Impl& c) {
        proto::Create m;
        m.spec.name = request.name;
        m.given = 0;
        // A field left out travels with its bit clear (a number also as 0, which is how a
        // 1.0 daemon knows it is left out); the daemon fills it in.
        auto take = [&](const auto& field, auto& into, std::uint32_t bit) {
            if (field) {
                into = *field;
                m.given |= bit;
            } else if constexpr (std::is_integral_v<std::remove_reference_t<decltype(into)>>) {
                into = 0;
            }
        };
        take(request.kind, m.spec.kind, proto::kSpecKind);
        take(request.slot_size, m.spec.slot_size, proto::kSpecSlotSize);
        take(request.slot_count, m.spec.slot_count, proto::kSpecSlotCount);
        take(request.overflow, m.spec.overflow, proto::kSpecOverflow);
        take(request.max_publishers, m.spec.max_publishers, proto::kSpecMaxPublishers);
        take(request.max_subscribers, m.spec.max_subscribers, proto::kSpecMaxSubscribers);
        return as_void(c.request<proto::Ok>(m, "create"));
    });
}

Result<std::vector<ChannelSummary>> Client::list_channels() noexcept {
    return with_connection(impl_, [](Impl& c) {
        return c.request<proto::ChannelList>(proto::ListChannels{}, "list_channels",
                                             &proto::ChannelList::channels);
    });
}

Result<ChannelDetail> Client::channel_info(std::string_view channel) noexcept {
    return with_connection(impl_, [&](Impl& c) {
        return c.request<ChannelDetail>(proto::ChannelInfoRequest{std::string{channel}},
                                        "channel_info");
    });
}

Result<std::vector<ClientSummary>> Client::list_clients() noexcept {
    return with_connection(impl_, [](Impl& c) {
        return c.request<proto::ClientList>(proto::ListClients{}, "list_clients",
                                            &proto::ClientList::clients);
    });
}

Result<DaemonStatus> Client::status() noexcept {
    return with_connection(
        impl_, [](Impl& c) { return c.request<proto::StatusReply>(proto::Status{}, "status"); });
}

Result<std::vector<BridgeSummary>> Client::list_bridges() noexcept {
    return with_connection(impl_, [](Impl& c) {
        return c.request<proto::BridgeList>(proto::ListBridges{}, "list_bridges",
                                            &proto::BridgeList::bridges);
    });
}

Result<std::string> Client::reload() noexcept {
    return with_connection(impl_, [](Impl& c) {
        return c.request<proto::Ok>(proto::Reload{}, "reload", &proto::Ok::message);
    });
}

Result<std::chrono::nanoseconds> Client::ping() noexcept {
    return with_connection(impl_, [](Impl& c) -> Result<std::chrono::nanoseconds> {
        static std::atomic<std::uint64_t> tokens{1};
        const std::uint64_t token = tokens.fetch_add(1, std::memory_order_relaxed);
        const auto start = Clock::now();
        auto answered = c.request<proto::Pong>(proto::Ping{token}, "ping", &proto::Pong::token);
        const auto elapsed = Clock::now() - start;
        if (!answered) {
            return answered.take_error();
        }
        if (*answered != token) {
            return make_error(Errc::protocol_error, "shmbusd answered ping " +
                                                        std::to_string(token) + " with pong " +
                                                        std::to_string(*answered));
        }
        return std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed);
    });
}

const std::string& Client::socket_path() const noexcept {
    static const std::string none; // a moved-from Client's
    return impl_ ? impl_->socket_path : none;
}

std::uint64_t Client::client_id() const noexcept {
    return impl_ ? impl_->client_id.load(std::memory_order_relaxed) : 0;
}

} // namespace shmbus
