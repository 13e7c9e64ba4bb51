// The --json documents: the client API's structs as JSON objects with stable field names.
//
// The names are an interface (documented in docs/shmbusctl.md): a field may be added, never
// renamed, removed or given another type. Numbers are exact integers (counters, bytes, ms);
// a value that is not known is null, never a made-up 0.
#pragma once

#include <shmbus/client.hpp>

#include <nlohmann/json.hpp>

#include <optional>

namespace shmbusctl {

/// A channel: its geometry (ChannelInfo) and counters (ChannelStats) in one flat object, plus
/// "rate_per_s" (messages published per second, null without a second sample).
[[nodiscard]] nlohmann::json channel_json(const shmbus::ChannelSummary& channel,
                                          std::optional<double> rate_per_s);
/// One endpoint; `published` (the channel's counter) gives a broadcast subscriber's "lag".
[[nodiscard]] nlohmann::json endpoint_json(const shmbus::EndpointDetail& endpoint,
                                           const shmbus::ChannelSummary& channel);
[[nodiscard]] nlohmann::json client_json(const shmbus::ClientSummary& client);
[[nodiscard]] nlohmann::json status_json(const shmbus::DaemonStatus& status);
/// A bridge: its link ("peer", "version", "incarnation" null while it has none), its totals
/// each way ("out": what this daemon exports, "in": what it imports) and its "streams".
[[nodiscard]] nlohmann::json bridge_json(const shmbus::BridgeSummary& bridge);

/// A link bridge's loss by cause, duplicates and loops (docs/gateway.md, "Loss by cause");
/// null for a NATS bridge.
[[nodiscard]] nlohmann::json bridge_loss_json(const shmbus::BridgeSummary& bridge);

/// The name of level `level` of a bridge's writers_waiting (`levels` long): "0".."7", and
/// "control" for the last, the link's own frames.
[[nodiscard]] std::string writers_level_name(std::size_t level, std::size_t levels);

/// One direction of a bridge, summed over its streams.
struct BridgeTotals {
    std::uint64_t channels{0};
    std::uint64_t messages{0};
    std::uint64_t bytes{0};
    std::uint64_t lost{0};
    std::uint64_t credits{0};
};
[[nodiscard]] BridgeTotals bridge_totals(const shmbus::BridgeSummary& bridge, bool exporting);

/// Messages a broadcast subscriber at `cursor` has yet to read; null-free: 0 for other roles.
[[nodiscard]] std::uint64_t subscriber_lag(const shmbus::EndpointDetail& endpoint,
                                           const shmbus::ChannelSummary& channel) noexcept;

/// Writes `document` on stdout as one line. Invalid UTF-8 in names becomes U+FFFD instead
/// of an exception.
void print_json(const nlohmann::json& document);

} // namespace shmbusctl
