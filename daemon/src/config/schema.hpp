// What shmbusd.yaml may say: the keys of each mapping, the words of each choice, and the range
// of each number. One table per fact, read by the YAML reader, yaml_*.cpp (which key holds
// what), and by load.cpp (names of log levels); docs/configuration.md lists the same and must
// follow it.
#pragma once

#include "config.hpp"
#include "values.hpp"

#include <shmbus/channel.hpp>

#include <array>
#include <string_view>

namespace shmbus::daemon {

// ---- Ranges of numbers and durations
// ----------------------------------------------------------------------

inline constexpr Range kSlotSizeRange{1, kMaxSlotSize, true};
inline constexpr Range kSlotCountRange{2, kMaxSlotCount, false};
// Blackboard elements, counter cells and pool blocks: any count from 1 (a ring needs
// kSlotCountRange).
inline constexpr Range kElementCountRange{1, kMaxSlotCount, false};
inline constexpr Range kEndpointRange{1, kMaxEndpoints, false};
inline constexpr Range kClientCountRange{1, 65536, false};
inline constexpr Range kChannelCountRange{1, 65536, false};
inline constexpr Range kTotalBytesRange{64 * kKiB, kTiB, true};
inline constexpr Range kOpenChannelsRange{1, 65536, false};
inline constexpr Range kInflightRange{1, 4096, false};
inline constexpr Range kDynamicPerClientRange{0, 65536, false};
inline constexpr Range kUidConnectionsRange{1, 65536, false};
inline constexpr Range kUidOpenChannelsRange{1, 1048576, false};
inline constexpr Range kUidDynamicChannelsRange{0, 65536, false};
inline constexpr Range kUidSegmentBytesRange{0, kTiB, true};
inline constexpr Range kAdminReserveRange{0, 65535, false};
inline constexpr DurationRange kHelloTimeoutRange{std::chrono::milliseconds{100},
                                                  std::chrono::minutes{5}};
inline constexpr Range kCreditWindowRange{1, gateway::kMaxCreditWindow, false};
/// A tcp bridge's `receive_buffer` (SO_RCVBUF), unless `auto`.
inline constexpr Range kReceiveBufferRange{16 * kKiB, 256 * kMiB, true};
inline constexpr Range kBridgeNiceRange{0, gateway::kMaxBridgeNice, false};
inline constexpr Range kPriorityRange{0, gateway::kMaxPriority, false};
inline constexpr DurationRange kBlockTimeoutRange{std::chrono::milliseconds{100},
                                                  std::chrono::hours{1}};
/// A durable NATS import's `ack_wait`: how soon JetStream delivers a message again that a
/// crashed bridge never acknowledged.
inline constexpr DurationRange kAckWaitRange{std::chrono::seconds{1}, std::chrono::hours{1}};
/// A NATS bridge's `max_payload`: what NATS servers accept (their own limit is 64 MiB).
inline constexpr Range kNatsMaxPayloadRange{4 * kKiB, 64 * kMiB, true};
/// A bridge's secret_file: enough bytes not to be guessed, few enough to be a key.
inline constexpr std::size_t kMinSecretBytes = 16;
inline constexpr std::size_t kMaxSecretBytes = 4096;

// ---- The keys each mapping accepts ---------------------------------------------------------

inline constexpr std::array<std::string_view, 5> kTopKeys{"daemon", "limits", "dynamic_channels",
                                                          "channels", "bridges"};
inline constexpr std::array<std::string_view, 4> kDaemonKeys{"socket", "state_directory",
                                                             "log_level", "admin"};
inline constexpr std::array<std::string_view, 2> kAccessKeys{"users", "groups"};
inline constexpr std::array<std::string_view, 7> kLimitKeys{
    "max_clients",   "max_channels", "max_total_segment_bytes", "per_client", "per_uid",
    "admin_reserve", "hello_timeout"};
inline constexpr std::array<std::string_view, 3> kClientLimitKeys{
    "max_open_channels", "max_inflight_requests", "max_dynamic_channels"};
inline constexpr std::array<std::string_view, 4> kUidLimitKeys{
    "max_connections", "max_open_channels", "max_dynamic_channels", "max_segment_bytes"};
inline constexpr std::array<std::string_view, 6> kDynamicKeys{
    "allowed", "users", "groups", "defaults", "max_slot_size", "max_slot_count"};
inline constexpr std::array<std::string_view, 6> kSpecKeys{
    "kind", "slot_size", "slot_count", "overflow", "max_publishers", "max_subscribers"};
inline constexpr std::array<std::string_view, 14> kChannelKeys{"name",
                                                               "kind",
                                                               "slot_size",
                                                               "slot_count",
                                                               "overflow",
                                                               "max_publishers",
                                                               "max_subscribers",
                                                               "acl",
                                                               "request_size",
                                                               "reply_size",
                                                               "depth",
                                                               "max_servers",
                                                               "max_callers",
                                                               "type"};
/// The keys only an rpc channel takes, and the keys of the other kinds it does not.
inline constexpr std::array<std::string_view, 5> kRpcKeys{"request_size", "reply_size", "depth",
                                                          "max_servers", "max_callers"};
inline constexpr std::array<std::string_view, 5> kRingKeys{"slot_size", "slot_count", "overflow",
                                                           "max_publishers", "max_subscribers"};
inline constexpr std::array<std::string_view, 4> kAclKeys{"publish", "subscribe", "serve", "call"};
inline constexpr std::array<std::string_view, 12> kBridgeKeys{
    "name",          "connect", "listen",         "secret_file", "tls",    "require",
    "credit_window", "nice",    "receive_buffer", "nats",        "export", "import"};
inline constexpr std::array<std::string_view, 4> kBridgeTlsKeys{"cert", "key", "ca",
                                                                "peer_subject"};
inline constexpr std::array<std::string_view, 6> kBridgeRuleKeys{
    "channel", "as", "on_link_down", "on_congestion", "block_timeout", "priority"};
/// A NATS bridge (docs/nats.md): its `nats:` block, and its export and import entries.
inline constexpr std::array<std::string_view, 5> kNatsKeys{"credentials", "tls", "jetstream",
                                                           "ack_wait", "max_payload"};
inline constexpr std::array<std::string_view, 3> kNatsTlsKeys{"cert", "key", "ca"};
inline constexpr std::array<std::string_view, 2> kNatsExportKeys{"channel", "subject"};
inline constexpr std::array<std::string_view, 3> kNatsImportKeys{"subject", "channel", "durable"};

inline constexpr std::array<std::string_view, 6> kKindNames{"queue",    "broadcast", "blackboard",
                                                            "counters", "rpc",       "pool"};
inline constexpr std::array<ChannelKind, 6> kKinds{ChannelKind::queue,      ChannelKind::broadcast,
                                                   ChannelKind::blackboard, ChannelKind::counters,
                                                   ChannelKind::rpc,        ChannelKind::pool};
/// The configuration's word for `kind` (this library links no to_string() of libshmbus).
inline constexpr std::string_view kind_name(ChannelKind kind) noexcept {
    for (std::size_t i = 0; i < kKinds.size(); ++i) {
        if (kKinds[i] == kind) {
            return kKindNames[i];
        }
    }
    return "unknown kind";
}
inline constexpr std::array<std::string_view, 2> kOverflowNames{"block", "drop"};
inline constexpr std::array<Overflow, 2> kOverflows{Overflow::block, Overflow::drop};
inline constexpr std::array<std::string_view, 2> kLinkDownNames{"drop", "block"};
inline constexpr std::array<std::string_view, 3> kCongestionNames{"drop_oldest", "keep_latest",
                                                                  "block"};
inline constexpr std::array<gateway::CongestionPolicy, 3> kCongestionPolicies{
    gateway::CongestionPolicy::drop_oldest, gateway::CongestionPolicy::keep_latest,
    gateway::CongestionPolicy::block};
inline constexpr std::array<gateway::LinkDownPolicy, 2> kLinkDownPolicies{
    gateway::LinkDownPolicy::drop, gateway::LinkDownPolicy::block};
inline constexpr std::array<gateway::PeerAuth, 4> kPeerAuths{
    gateway::PeerAuth::both, gateway::PeerAuth::tls, gateway::PeerAuth::secret,
    gateway::PeerAuth::either};
inline constexpr std::array<std::string_view, 4> kPeerAuthNames{
    gateway::to_string(kPeerAuths[0]), gateway::to_string(kPeerAuths[1]),
    gateway::to_string(kPeerAuths[2]), gateway::to_string(kPeerAuths[3])};
inline constexpr std::array<std::string_view, 5> kLogLevelNames{"trace", "debug", "info", "warning",
                                                                "error"};
inline constexpr std::array<LogLevel, 5> kLogLevels{
    LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warning, LogLevel::error};

} // namespace shmbus::daemon
