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

/// One local channel published to one subject.
struct NatsExport {
    std::string channel; ///< a local channel name (no glob)
    std::string subject; ///< a NATS subject without wildcards

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

/// An export: `channel` one channel's name (no glob), `subject` a NATS subject without
/// wildcards (tokens separated by '.', none empty, no spaces).
[[nodiscard]] Result<void> validate_export(const NatsExport& rule);
/// An import: `subject` a NATS subject whose wildcards are whole tokens (`*` anywhere, `>`
/// last), `channel` one channel's name, `durable` empty or a name without '.', '*', '>' or
/// spaces.
[[nodiscard]] Result<void> validate_import(const NatsImport& rule);

/// Checks what can be checked without connecting: a name, at least one server
/// (parse_nats_servers() on each), every export and import. Errc::invalid_argument naming the
/// bridge and the entry.
[[nodiscard]] Result<void> validate(const NatsBridgeConfig& config);

} // namespace shmbus::gateway
