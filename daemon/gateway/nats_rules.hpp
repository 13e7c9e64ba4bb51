// What a NATS bridge is configured with, and the checks that need no connection: the server
// URLs of `connect:`, subjects, durable names, channel names. docs/nats.md.
//
// Pure and free of libnats, like bridge_rules.hpp: the configuration loader (which accepts
// exactly what the bridge runs) and the bridge itself (nats_bridge.hpp, built only where
// libnats is found) share these types and checks. Every refusal is Errc::invalid_argument
// with a message naming the entry; validate() adds the bridge's name.
#pragma once

#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::gateway {

/// One local channel published to one subject; or, with a glob, each local channel it
/// matches, to the subject its wildcards make.
struct NatsExport {
    /// A local channel name, or a glob (`*` any run of characters, `?` one) matched against
    /// the daemon's channels as the bridge starts.
    std::string channel;
    /// A NATS subject without NATS wildcards. For a glob `channel`, it has the glob's
    /// wildcards in the same order, each replaced by what its counterpart matched
    /// (`camera/*` to `shmbus.robot1.camera.*`: `camera/front` to `shmbus.robot1.camera.front`).
    std::string subject;

    friend bool operator==(const NatsExport&, const NatsExport&) = default;
};

/// One subject (NATS wildcards `*` and `>` allowed) published into one local channel.
struct NatsImport {
    std::string subject;
    std::string channel; ///< a local channel name (no glob)
    /// Non-empty: a durable JetStream consumer of this name. Each message is acknowledged
    /// after it was published into the local channel, so what arrives while the bridge (or
    /// its daemon) is down is delivered when it returns. Needs a stream holding the subject.
    std::string durable;

    friend bool operator==(const NatsImport&, const NatsImport&) = default;
};

/// NATS's default max_payload: the largest message (payload and headers) a server accepts
/// unless its configuration raises it (to at most 64 MiB).
inline constexpr std::uint64_t kNatsDefaultMaxPayload = std::uint64_t{1} << 20;
/// Room kept in every NATS message for the bridge's headers: Shmbus-Origin and Nats-Msg-Id,
/// each with a host name of up to 255 bytes, a channel name of up to 63 and two 20-digit
/// numbers, and the header block's framing (under 900 bytes in all).
inline constexpr std::uint64_t kNatsHeaderRoom = 1024;

struct NatsTls {
    std::string ca_file;   ///< trusted CAs (PEM); empty: the system's
    std::string cert_file; ///< client certificate chain (PEM), with key_file
    std::string key_file;
    bool skip_verify{false}; ///< accept any server certificate (tests only)

    friend bool operator==(const NatsTls&, const NatsTls&) = default;
};

/// A NATS bridge as the daemon's configuration describes it (the `bridges:` entry whose
/// `connect:` holds nats:// URLs, and its `nats:` block).
struct NatsBridgeConfig {
    std::string name;
    std::vector<std::string> servers; ///< seed URLs, nats:// or tls://
    std::string credentials_file;     ///< a .creds file (JWT and NKey seed); empty: none
    std::optional<NatsTls> tls;
    /// Exports publish through JetStream and wait for the stream's acknowledgements (at most
    /// `max_pending_acks` in flight, each for up to `ack_timeout`); a message the stream
    /// refused or never acknowledged is counted as lost.
    bool jetstream{false};
    std::uint32_t max_pending_acks{4096};
    std::chrono::milliseconds ack_timeout{10000};
    /// The servers' max_payload as the operator configured them: an export whose channel's
    /// slots could hold a message larger than fits (less kNatsHeaderRoom) is refused, at
    /// configuration time for channels of `channels:`, at start for others (and against the
    /// max_payload the connected server announces). Messages are never cut into pieces.
    std::uint64_t max_payload{kNatsDefaultMaxPayload};
    std::vector<NatsExport> exports;
    std::vector<NatsImport> imports;
    std::chrono::milliseconds reconnect_wait{500};
    std::chrono::milliseconds connect_timeout{2000};
    /// Bytes libnats keeps for publishes while disconnected; past that a publish fails and
    /// counts as lost.
    std::uint32_t reconnect_buffer{8 * 1024 * 1024};
    /// Durable imports: how long JetStream waits for an acknowledgement before it delivers a
    /// message again (the consumer's AckWait). An import waiting for room in a full local
    /// channel tells JetStream it is still working on the message, so this bounds only how
    /// soon a message is delivered again after a crash.
    std::chrono::milliseconds ack_wait{30000};

    friend bool operator==(const NatsBridgeConfig&, const NatsBridgeConfig&) = default;
};

/// Whether `connect:` text names NATS servers (starts with nats:// or tls://), so that the
/// rest of it is read by parse_nats_servers() rather than as a link address.
[[nodiscard]] bool is_nats_address(std::string_view text) noexcept;

/// Splits `connect:` text at commas into server URLs and checks each: nats:// or tls://,
/// then [USER[:PASSWORD]@]HOST[:PORT] with a port of 1..65535 (4222 when left out), nothing
/// after it. Errc::invalid_argument naming the URL and what is wrong.
[[nodiscard]] Result<std::vector<std::string>> parse_nats_servers(std::string_view text);

/// `url` as it may be shown (logs, `shmbusctl bridges`): a password (USER:PASSWORD@) or a
/// token (TOKEN@) in it replaced by "***".
[[nodiscard]] std::string redact_nats_url(std::string_view url);

/// An export: `channel` one channel's name, `subject` a NATS subject without wildcards
/// (tokens separated by '.', none empty, no spaces); or `channel` a glob and `subject` with
/// its wildcards in the same order, a subject once they are filled in.
[[nodiscard]] Result<void> validate_export(const NatsExport& rule);
/// The subject that local channel `name` is published to under `rule` (validated):
/// Errc::not_found if the rule's channel does not match `name`, Errc::invalid_argument naming
/// both if what a wildcard matched makes no subject (a dot at an end of the match gives an
/// empty token).
[[nodiscard]] Result<std::string> export_subject(const NatsExport& rule, std::string_view name);
/// An import: `subject` a NATS subject whose wildcards are whole tokens (`*` anywhere, `>`
/// last), `channel` one channel's name, `durable` empty or a name without '.', '*', '>' or
/// spaces.
[[nodiscard]] Result<void> validate_import(const NatsImport& rule);

/// Whether every message of `channel`, whose slots hold `slot_size` bytes, fits in one NATS
/// message of `max_payload` bytes with the bridge's headers (kNatsHeaderRoom).
/// Errc::invalid_argument naming the channel and both sizes, and what to change; `whose`
/// says whose max_payload it is ("the servers'", "server nats://...'s").
[[nodiscard]] Result<void> check_export_payload(std::string_view channel, std::uint64_t slot_size,
                                                std::uint64_t max_payload, std::string_view whose);

/// Checks what can be checked without connecting: a name, at least one server
/// (parse_nats_servers() on each), every export and import. Errc::invalid_argument naming the
/// bridge and the entry.
[[nodiscard]] Result<void> validate(const NatsBridgeConfig& config);

} // namespace shmbus::gateway
