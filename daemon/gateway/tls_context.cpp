// A bridge's TLS context and peer checks; the rules are in tls_context.hpp.
//
// OpenSSL's error queue is per thread: every failing call's reason is taken from it on the
// same thread, and the queue is cleared before each step so that a stale entry never names the
// wrong problem. Every OpenSSL object is held by a unique_ptr with its free function, so that
// no error path leaks one.
#include "gateway/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <array>
#include <string>

namespace shmbus::gateway {

namespace {

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct CtxFree {
    void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct KeyFree {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct NamesFree {
    void operator()(GENERAL_NAMES* n) const noexcept { GENERAL_NAMES_free(n); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

/// A read-only BIO over `text` (which must outlive it).
BioPtr memory_bio(const std::string& text) {
    return BioPtr{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
}

/// A daemon has no one to ask for a pass phrase: an encrypted key fails to load.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
    return 0;
}

/// The reason of the latest error in this thread's OpenSSL queue, which it then clears.
std::string openssl_reason() {
    const unsigned long e = ERR_peek_last_error();
    const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
    ERR_clear_error();
    return reason != nullptr ? reason : "no reason given by OpenSSL";
}

Error invalid(std::string message) {
    return Error{Errc::invalid_argument, 0, std::move(message)};
}

/// The ex_data slot of an SSL that holds its refusal note (a std::string*).
int note_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

std::string text_of(const ASN1_STRING* s) {
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) {
        return {};
    }
    std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
    return out;
}

std::string time_of(const ASN1_TIME* t) {
    BioPtr bio{BIO_new(BIO_s_mem())};
    if (!bio || ASN1_TIME_print_ex(bio.get(), t, ASN1_DTFLGS_ISO8601) != 1) {
        return "?";
    }
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

/// The subject alternative names of `cert` that certificate_names() looks at, as
/// "DNS:a, IP:192.0.2.7".
std::string alternative_names(X509* cert) {
    std::unique_ptr<GENERAL_NAMES, NamesFree> names{static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))};
    std::string out;
    if (!names) {
        return out;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
        std::string item;
        if (n->type == GEN_DNS) {
            item = "DNS:" + text_of(n->d.dNSName);
        } else if (n->type == GEN_IPADD) {
            const ASN1_OCTET_STRING* ip = n->d.iPAddress;
            std::array<char, INET6_ADDRSTRLEN> buf{};
            const int family = ip->length == 4 ? AF_INET : AF_INET6;
            if ((ip->length == 4 || ip->length == 16) &&
                ::inet_ntop(family, ip->data, buf.data(), buf.size()) != nullptr) {
                item = std::string{"IP:"} + buf.data();
            }
        }
        if (!item.empty()) {
            out += (out.empty() ? "" : ", ") + item;
        }
    }
    return out;
}

/// Why X509 verification error `err` happened, in this bridge's terms.
std::string explain(int err, X509* cert) {
    switch (err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return " (it was not issued by the CA of this bridge's tls.ca)";
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return cert != nullptr ? " (on " + time_of(X509_get0_notAfter(cert)) + ")" : "";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return cert != nullptr ? " (it is valid from " + time_of(X509_get0_notBefore(cert)) + ")"
                               : "";
    default:
        return "";
    }
}

/// Chain verification as OpenSSL does it, then `peer_subject` on the peer's own certificate.
/// Returning 0 ends the handshake with an alert to the peer.
int verify_peer(int preverify_ok, X509_STORE_CTX* store) {
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* note =
        ssl != nullptr ? static_cast<std::string*>(SSL_get_ex_data(ssl, note_index())) : nullptr;
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    const std::string which =
        cert != nullptr ? "the peer's certificate (" + subject_of(cert) + ")" : "a certificate";
    if (preverify_ok != 1) {
        const int err = X509_STORE_CTX_get_error(store);
        if (note != nullptr && note->empty()) {
            *note =
                which + " was refused: " + X509_verify_cert_error_string(err) + explain(err, cert);
        }
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(store) != 0 || ssl == nullptr || cert == nullptr) {
        return 1;
    }
    const auto* context =
        static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (context == nullptr || !context->peer_subject() ||
        certificate_names(cert, *context->peer_subject())) {
        return 1;
    }
    // Sent to the peer as a "bad certificate" alert, as a name mismatch is.
    X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
    if (note != nullptr && note->empty()) {
        const std::string alt = alternative_names(cert);
        *note = which + " was refused: it does not name '" + *context->peer_subject() +
                "', this bridge's tls.peer_subject" +
                (alt.empty() ? std::string{} : " (its other names: " + alt + ")");
    }
    return 0;
}

} // namespace

PeerAuth default_peer_auth(bool has_tls, bool has_secret) noexcept {
    if (has_tls && has_secret) {
        return PeerAuth::both;
    }
    return has_tls ? PeerAuth::tls : PeerAuth::secret;
}

Result<void> check_peer_auth(PeerAuth auth, bool has_tls, bool has_secret) {
    const bool needs_tls = auth != PeerAuth::secret;
    const bool needs_secret = auth != PeerAuth::tls;
    std::string missing;
    if (needs_tls && !has_tls) {
        missing = "'tls'";
    }
    if (needs_secret && !has_secret) {
        missing += (missing.empty() ? "" : " and ") + std::string{"'secret_file'"};
    }
    if (missing.empty()) {
        return ok();
    }
    const std::string what = auth == PeerAuth::both     ? "'tls' and 'secret_file'"
                             : auth == PeerAuth::either ? "'tls' and 'secret_file' (a peer may "
                                                          "pass either)"
                             : auth == PeerAuth::tls    ? "'tls'"
                                                        : "'secret_file'";
    return make_error(Errc::invalid_argument, "require: " + std::string{to_string(auth)} +
                                                  " needs " + what + "; this bridge has no " +
                                                  missing);
}

std::string subject_of(X509* cert) {
    BioPtr bio{BIO_new(BIO_s_mem())};
    if (!bio ||
        X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
        return "?";
    }
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

bool certificate_names(X509* cert, std::string_view name) {
    if (name.find('=') != std::string_view::npos) {
        return subject_of(cert) == name;
    }
    X509_NAME* subject = X509_get_subject_name(cert);
    for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
        if (text_of(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i))) == name) {
            return true;
        }
    }
    const std::string text{name};
    if (X509_check_host(cert, text.data(), text.size(),
                        X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS,
                        nullptr) == 1) {
        return true;
    }
    return X509_check_ip_asc(cert, text.c_str(), 0) == 1;
}

TlsContext::TlsContext(SSL_CTX* ctx, std::optional<std::string> peer_subject,
                       std::string own_subject) noexcept
    : ctx_{ctx}, peer_subject_{std::move(peer_subject)}, own_subject_{std::move(own_subject)} {}

TlsContext::~TlsContext() {
    SSL_CTX_free(ctx_);
}

void TlsContext::set_refusal_note(SSL* ssl, std::string* note) noexcept {
    SSL_set_ex_data(ssl, note_index(), note);
}

Result<std::shared_ptr<const TlsContext>> TlsContext::create(const TlsCredentials& c) {
    ERR_clear_error();
    std::unique_ptr<SSL_CTX, CtxFree> ctx{SSL_CTX_new(TLS_method())};
    if (!ctx) {
        return make_error(Errc::system_error,
                          "OpenSSL could not make a TLS context: " + openssl_reason());
    }
    SSL_CTX* raw = ctx.get();
    if (SSL_CTX_set_min_proto_version(raw, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(raw, TLS1_3_VERSION) != 1) {
        return make_error(Errc::system_error, "OpenSSL has no TLS 1.3: " + openssl_reason());
    }
    SSL_CTX_set_num_tickets(raw, 0);
    SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE);

    const std::string cert_named = "certificate " + c.cert_file;
    BioPtr cert_bio = memory_bio(c.cert_pem);
    X509Ptr leaf{cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr)
                          : nullptr};
    if (!leaf) {
        return invalid(cert_named + ": no PEM certificate in it (" + openssl_reason() + ")");
    }
    if (SSL_CTX_use_certificate(raw, leaf.get()) != 1) {
        return invalid(cert_named + ": cannot be used: " + openssl_reason());
    }
    while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr)) {
        if (SSL_CTX_add0_chain_cert(raw, extra) != 1) { // takes `extra` only on success
            X509_free(extra);
            return invalid(cert_named + ": a chain certificate after the first cannot be used: " +
                           openssl_reason());
        }
    }
    ERR_clear_error(); // the end of the file reads as "no start line"

    const std::string key_named = "key " + c.key_file;
    BioPtr key_bio = memory_bio(c.key_pem);
    std::unique_ptr<EVP_PKEY, KeyFree> key{
        key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr)
                : nullptr};
    if (!key) {
        const bool encrypted = c.key_pem.find("ENCRYPTED") != std::string::npos;
        return invalid(key_named + ": no usable PEM private key in it (" + openssl_reason() +
                       (encrypted ? "; it is encrypted, and the daemon has no one to ask for "
                                    "its pass phrase: store it unencrypted, mode 0600"
                                  : "") +
                       ")");
    }
    if (SSL_CTX_use_PrivateKey(raw, key.get()) != 1 || SSL_CTX_check_private_key(raw) != 1) {
        ERR_clear_error();
        return invalid(key_named + " does not match " + cert_named);
    }

    const std::string ca_named = "ca " + c.ca_file;
    BioPtr ca_bio = memory_bio(c.ca_pem);
    X509_STORE* store = SSL_CTX_get_cert_store(raw);
    int anchors = 0;
    while (ca_bio) {
        X509Ptr ca{PEM_read_bio_X509(ca_bio.get(), nullptr, no_passphrase, nullptr)};
        if (!ca) {
            break;
        }
        if (X509_STORE_add_cert(store, ca.get()) != 1) {
            return invalid(ca_named + ": certificate " + std::to_string(anchors + 1) +
                           " cannot be trusted: " + openssl_reason());
        }
        ++anchors;
    }
    ERR_clear_error();
    if (anchors == 0) {
        return invalid(ca_named + ": no PEM certificate in it");
    }
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_peer);

    std::shared_ptr<TlsContext> context{
        new TlsContext{ctx.release(), c.peer_subject, subject_of(leaf.get())}};
    SSL_CTX_set_app_data(context->ctx_, context.get()); // read by verify_peer
    return std::shared_ptr<const TlsContext>{std::move(context)};
}

} // namespace shmbus::gateway
