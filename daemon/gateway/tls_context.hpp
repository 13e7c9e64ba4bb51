// A bridge's TLS credentials, the OpenSSL context built from them, and what a tcp bridge
// requires of its peer. docs/gateway.md ("Security model") is the reference.
//
// TlsCredentials is what a bridge's `tls:` says, with the PEM text of its three files: the
// configuration loader reads them (after checking the key file's mode), so that the daemon
// runs what `--check-config` checked and a reload notices a renewed certificate. TlsContext
// builds one SSL_CTX from them:
// - TLS 1.3 only: both ends are shmbus, so nothing older need be spoken;
// - this end's certificate (and any chain certificates after it in the file) and its key,
//   checked to match; an encrypted key is refused (a daemon has no one to ask for a pass
//   phrase);
// - the CA file's certificates as the only trust anchors: the system's store is never used,
//   so a certificate some public CA issued to anyone is worth nothing here;
// - a certificate required from the peer in both directions (mutual TLS);
// - no session tickets and no session cache: a link lasts, and resumption would only add state.
// The verify callback adds `peer_subject` to the CA's rule: the peer's certificate must name
// it (certificate_names()). Every refusal is recorded for the log with the refused
// certificate's subject (the TLS layer, tls_link.cpp, passes a note to fill).
//
// This header shows OpenSSL's types only as forward declarations. A TlsContext is immutable
// once created: any thread may use it.
#pragma once

#include <shmbus/error.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;
struct x509_st;

namespace shmbus::gateway {

/// What a bridge's `tls:` says, with its files' contents.
struct TlsCredentials {
    std::string cert_file; ///< for messages: where cert_pem came from
    std::string key_file;
    std::string ca_file;
    std::string cert_pem; ///< this end's certificate, then any chain certificates
    std::string key_pem;  ///< its private key, unencrypted
    std::string ca_pem;   ///< the certificates a peer's must chain to
    /// A name the peer's certificate must carry; none: any certificate the CA issued.
    std::optional<std::string> peer_subject;

    bool operator==(const TlsCredentials&) const = default;
};

/// What a tcp bridge requires of its peer (`require:`).
enum class PeerAuth : std::uint8_t {
    both,   ///< TLS with a certificate the CA issued, and the shared secret
    tls,    ///< TLS; the secret only if both ends have one
    secret, ///< the shared secret; TLS if this end has `tls:` and the peer speaks it
    either, ///< TLS or the secret, at least one
};

/// "both", "tls", "secret", "either": the configuration's words.
[[nodiscard]] constexpr std::string_view to_string(PeerAuth auth) noexcept {
    switch (auth) {
    case PeerAuth::both:
        return "both";
    case PeerAuth::tls:
        return "tls";
    case PeerAuth::secret:
        return "secret";
    case PeerAuth::either:
        return "either";
    }
    return "unknown";
}

/// What a bridge requires when its configuration does not say: everything it has (both when
/// it has TLS and a secret).
[[nodiscard]] PeerAuth default_peer_auth(bool has_tls, bool has_secret) noexcept;

/// Whether a bridge with or without TLS and a secret can require `auth`: a requirement may
/// name only what is configured (`either` needs both). Errc::invalid_argument saying what is
/// missing ("require: both needs 'tls' and 'secret_file'; this bridge has no 'tls'").
[[nodiscard]] Result<void> check_peer_auth(PeerAuth auth, bool has_tls, bool has_secret);

class TlsContext {
public:
    /// Builds the context (the rules above). Errc::invalid_argument naming the file and what
    /// is wrong with it ("key /etc/shmbusd/tls/robot.key does not match certificate
    /// /etc/shmbusd/tls/robot.crt"); Errc::system_error if OpenSSL cannot allocate.
    static Result<std::shared_ptr<const TlsContext>> create(const TlsCredentials& credentials);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    [[nodiscard]] ssl_ctx_st* native() const noexcept { return ctx_; }
    [[nodiscard]] const std::optional<std::string>& peer_subject() const noexcept {
        return peer_subject_;
    }
    /// This end's certificate's subject, for logs.
    [[nodiscard]] const std::string& own_subject() const noexcept { return own_subject_; }

    /// Makes `ssl`'s verify callback write why it refused the peer's certificate into `note`
    /// (which must outlive the handshake). Without a note, refusals go unexplained.
    static void set_refusal_note(ssl_st* ssl, std::string* note) noexcept;

private:
    TlsContext(ssl_ctx_st* ctx, std::optional<std::string> peer_subject,
               std::string own_subject) noexcept;

    ssl_ctx_st* ctx_;
    std::optional<std::string> peer_subject_;
    std::string own_subject_;
};

/// A certificate's subject as RFC 2253 writes it ("CN=robot1,O=shmbus").
[[nodiscard]] std::string subject_of(x509_st* cert);

/// Whether `cert` carries `name`: with an '=' in it, as its whole subject (RFC 2253, as
/// subject_of() writes it); otherwise as its subject's common name or one of its subject
/// alternative names (DNS, without wildcards; IP address).
[[nodiscard]] bool certificate_names(x509_st* cert, std::string_view name);

} // namespace shmbus::gateway
