// Which channels a bridge moves, in which direction and under which names.
//
// A bridge's configuration has two lists. `export` names local channels whose messages go to
// the peer; `import` names channels that come from the peer and become local channels. Each
// entry is a channel name or a glob (`*` for any run of characters, `?` for one) with an
// optional `as` that renames: every stream has a *wire name*, the name both ends use on the
// link. An export maps a local name to its wire name (`camera/*` as `robot1/camera/*`: local
// `camera/front` travels as `robot1/camera/front`); an import maps a wire name to a local one
// (`jobs` as `ground/jobs`). The wildcards of `as` take, in order, what the wildcards of
// `channel` matched, so `as` must have the same wildcards in the same order (checked by
// validate_rule()).
//
// The same two lists are the listening end's allow lists: a peer may import only what this
// end exports and export only into what this end imports. Every decision here is a pure
// function of the lists and the names; a refusal names the channel and the list it is not in.
#pragma once

#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::gateway {

/// Longest channel type name (a channel's `type:`, which offers carry in protocol 2).
inline constexpr std::size_t kMaxTypeBytes = 255;

/// Whether `type` may name a channel's type (`sensor_msgs/Imu@v2`): 1 to kMaxTypeBytes
/// visible ASCII characters (no space, no control character). Two ends that both name a
/// channel's type must name the same one, byte for byte, for the channel to cross a link.
[[nodiscard]] bool type_name_ok(std::string_view type) noexcept;

/// What an export does while the link is down: `drop` (the default: local publishers are
/// never held up) or `block` (keep the cursor, up to the channel's depth, for a loss-free
/// resume; after block_timeout the link is dropped and counted).
enum class LinkDownPolicy {
    drop,
    block,
};

/// What an export does while the link is up but the peer grants no credits (its far side
/// cannot keep up). docs/gateway.md, "Congestion".
/// - drop_oldest (the default): local publishers are never held; the export lets go of the
///   oldest messages it cannot send, counts them as congestion loss, and sends the newest, in
///   order, when credits come.
/// - keep_latest: the same, keeping only the newest message (conflation).
/// - block: nothing is lost; the export holds its local channel (a block channel's publishers
///   wait for its cursor) up to block_timeout, then the link is dropped and counted.
/// On a queue the export simply takes no work while it has no credits, whatever the policy.
enum class CongestionPolicy {
    drop_oldest,
    keep_latest,
    block,
};

/// "drop_oldest", "keep_latest" or "block": the policy's name in the configuration.
[[nodiscard]] std::string_view to_string(CongestionPolicy policy) noexcept;

/// An export's priority on the link: frames of higher ones are written first when several
/// streams wait to write. docs/gateway.md, "Priorities".
inline constexpr std::uint8_t kMaxPriority = 7;
inline constexpr std::uint8_t kDefaultPriority = 3;

/// How long a `block` export holds its cursor while the link is down, unless it says.
inline constexpr std::chrono::milliseconds kDefaultBlockTimeout{10000};

/// Credits an importing stream grants: how many messages of each stream may be on their
/// way at once (a bridge's `credit_window`). The default keeps a TCP loopback link full at
/// 128 B messages; an importer holds at most a window of a stream's messages in memory.
inline constexpr std::uint32_t kDefaultCreditWindow = 1024;
inline constexpr std::uint32_t kMaxCreditWindow = 65536;

/// How many nice levels below the daemon's own priority a bridge's threads run (a bridge's
/// `nice`): a link's streams are bulk work, and a host's local clients and the daemon's
/// control loop go first when they want the same core (docs/gateway.md, "Threads and
/// priority").
inline constexpr int kDefaultBridgeNice = 10;
inline constexpr int kMaxBridgeNice = 19; ///< Linux's lowest priority is nice 19

struct ChannelRule {
    std::string channel; ///< a channel name or glob
    std::string as;      ///< the name on the other side of the rule; empty = the same
    LinkDownPolicy on_link_down{LinkDownPolicy::drop}; ///< exports only
    /// Exports with LinkDownPolicy::block or CongestionPolicy::block: after this long without
    /// the link, or without credits, the cursor is released and the link counted as dropped.
    std::chrono::milliseconds block_timeout{kDefaultBlockTimeout};
    /// Exports: what congestion does (on_link_down: block implies block).
    CongestionPolicy on_congestion{CongestionPolicy::drop_oldest};
    std::uint8_t priority{kDefaultPriority}; ///< exports: 0..kMaxPriority, higher first

    friend bool operator==(const ChannelRule&, const ChannelRule&) = default;
};

/// Whether `pattern` (`*` any run, `?` one character) matches all of `name`. Fills
/// `captures` (if given) with what each wildcard matched, in order.
[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view name,
                              std::vector<std::string>* captures = nullptr);

/// Whether `text` contains a wildcard.
[[nodiscard]] bool is_glob(std::string_view text) noexcept;

/// The wildcards of `text`, in order ("*?*"): two patterns whose captures map one onto the
/// other must have the same.
[[nodiscard]] std::string glob_wildcards(std::string_view text);

/// Checks that a rule can be applied: `channel` a channel name or glob, `as` (if set) one with
/// the same wildcards in the same order. Errc::invalid_argument naming the problem.
[[nodiscard]] Result<void> validate_rule(const ChannelRule& rule);

/// The name `name` takes through `rule`, or nothing if the rule does not match it. The result
/// is a channel name: a wildcard that matched characters a name may not hold cannot occur,
/// because `name` is one.
[[nodiscard]] std::optional<std::string> apply_rule(const ChannelRule& rule, std::string_view name);

/// The first rule of `rules` that matches `name`, and the name it maps to.
struct RuleMatch {
    const ChannelRule* rule{nullptr};
    std::string mapped;
};
[[nodiscard]] std::optional<RuleMatch> first_match(const std::vector<ChannelRule>& rules,
                                                   std::string_view name);

} // namespace shmbus::gateway
