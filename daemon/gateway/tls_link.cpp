// TLS under a tcp link's frames; the rules are in tls_link.hpp.
#include "gateway/tls_link.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/socket.h>

namespace shmbus::gateway {

namespace {

using Clock = std::chrono::steady_clock;

/// The largest TLS record's plaintext: what one SSL_write encrypts at a time.
constexpr std::size_t kRecord = 16 * 1024;
/// How much read_into() decrypts before it lets the session parse frames.
constexpr std::size_t kReadChunk = 64 * 1024;
/// RFC 5705 / RFC 8446 7.5: the label of the keying material bound into the bridge handshake.
constexpr std::string_view kExporterLabel = "EXPORTER-shmbus-bridge-handshake";
constexpr std::size_t kBindingBytes = 32;

/// Alerts that say the peer refused this end's certificate.
bool certificate_alert(int alert) noexcept {
    switch (alert) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED:
        return true;
    default:
        return false;
    }
}

/// Reasons OpenSSL gives when what arrived is not a TLS record at all.
bool not_tls(int reason) noexcept {
    return reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
           reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_HTTP_REQUEST ||
           reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_UNEXPECTED_RECORD ||
           reason == SSL_R_WRONG_SSL_VERSION;
}

/// What an SSL call that returned `ret` (errno `saved_errno`) means; `note` is what this end's
/// verify callback said, if it refused the peer's certificate. Call on the thread that made
/// the call, before any other OpenSSL call: it reads and clears this thread's error queue.
Error failure(SSL* ssl, int ret, int saved_errno, const std::string& note) {
    const int kind = SSL_get_error(ssl, ret);
    const unsigned long first = ERR_peek_error(); // the root cause comes first
    ERR_clear_error();
    if (!note.empty()) {
        return Error{Errc::permission_denied, 0, note};
    }
    if (kind == SSL_ERROR_ZERO_RETURN) {
        return Error{Errc::closed, 0, "the peer closed the TLS link"};
    }
    if (kind == SSL_ERROR_SYSCALL || (kind == SSL_ERROR_SSL && first == 0)) {
        if (saved_errno == 0 || saved_errno == EPIPE || saved_errno == ECONNRESET) {
            return Error{Errc::closed, saved_errno, "the peer closed the link"};
        }
        return Error{Errc::system_error, saved_errno, "the TLS link failed"};
    }
    if (kind != SSL_ERROR_SSL) {
        return Error{Errc::protocol_error, 0,
                     "TLS failed (OpenSSL error " + std::to_string(kind) + ")"};
    }
    if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
        return Error{Errc::permission_denied, 0,
                     std::string{"the peer's certificate was refused: "} +
                         X509_verify_cert_error_string(verify)};
    }
    const int reason = ERR_GET_REASON(first);
    const char* text = ERR_reason_error_string(first);
    const std::string openssl = text != nullptr ? text : "no reason given by OpenSSL";
    if (ERR_GET_LIB(first) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET) {
        const int alert = reason - SSL_AD_REASON_OFFSET;
        const std::string name = SSL_alert_desc_string_long(alert);
        if (certificate_alert(alert)) {
            return Error{Errc::permission_denied, 0,
                         "the peer refused this end's certificate: TLS alert '" + name + "'"};
        }
        return Error{Errc::protocol_error, 0,
                     "the peer ended the TLS link: TLS alert '" + name + "'"};
    }
    if (ERR_GET_LIB(first) == ERR_LIB_SSL && not_tls(reason)) {
        return Error{Errc::protocol_error, 0,
                     "the peer does not speak TLS (" + openssl +
                         "): has its bridge no 'tls' section, or is it not a shmbus bridge?"};
    }
    return Error{Errc::protocol_error, 0, "TLS failed: " + openssl};
}

/// What to wait for after an SSL call wants more: POLLIN, POLLOUT, or 0 if it failed.
short wanted(SSL* ssl, int ret) noexcept {
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return POLLIN;
    case SSL_ERROR_WANT_WRITE:
        return POLLOUT;
    default:
        return 0;
    }
}

struct SslFree {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
};

} // namespace

TlsStream::TlsStream(std::shared_ptr<const TlsContext> context, SSL* ssl, int fd,
                     std::string binding)
    : context_{std::move(context)}, ssl_{ssl}, fd_{fd}, binding_{std::move(binding)} {
    description_ = std::string{SSL_get_version(ssl_)} + ", " + SSL_get_cipher_name(ssl_);
    if (X509* peer = SSL_get0_peer_certificate(ssl_)) {
        description_ += ", peer " + subject_of(peer);
    }
}

TlsStream::~TlsStream() {
    std::lock_guard lock{ssl_mu_};
    ERR_clear_error();
    (void)SSL_shutdown(ssl_); // close_notify, once, without waiting for the peer's
    ERR_clear_error();
    SSL_free(ssl_);
}

Result<void> TlsStream::write_raw(std::span<const std::byte> bytes, Deadline deadline) {
    const ProgressDeadline progress{deadline};
    while (!bytes.empty()) {
        short want = 0;
        {
            std::lock_guard lock{ssl_mu_};
            ERR_clear_error();
            errno = 0;
            std::size_t n = 0;
            // A record at a time, so that each one written counts as progress (the deadline
            // bounds a stall, not a large frame); a retry after a want passes the same bytes.
            const int r = SSL_write_ex(ssl_, bytes.data(), std::min(bytes.size(), kRecord), &n);
            if (r == 1) {
                bytes = bytes.subspan(n);
                deadline = progress.moved();
                continue;
            }
            const int saved = errno;
            want = wanted(ssl_, r);
            if (want == 0) {
                return failure(ssl_, r, saved, {});
            }
        }
        // Retried with the same bytes, as OpenSSL requires. A write that needs to read (TLS
        // 1.3 has no renegotiation, so this should not happen) lets the reading thread take
        // what arrived, and looks again soon.
        const Deadline until =
            want == POLLIN ? std::min(deadline, Clock::now() + std::chrono::milliseconds{10})
                           : deadline;
        if (auto w = wait_ready(fd_, want, until); !w && Clock::now() >= deadline) {
            return w;
        }
    }
    return ok();
}

Result<void> TlsStream::write_all(std::span<const std::byte> bytes, Deadline deadline) {
    std::lock_guard lock{write_mu_};
    return write_raw(bytes, deadline);
}

Result<void> TlsStream::write_gather(std::span<iovec> iov, Deadline deadline) {
    std::lock_guard lock{write_mu_};
    staging_.clear();
    const auto flush = [&]() -> Result<void> {
        auto w = write_raw(staging_, deadline);
        staging_.clear();
        return w;
    };
    for (iovec& piece : iov) {
        const std::span<const std::byte> bytes{static_cast<const std::byte*>(piece.iov_base),
                                               piece.iov_len};
        piece.iov_len = 0;
        if (staging_.size() + bytes.size() <= kRecord) {
            staging_.insert(staging_.end(), bytes.begin(), bytes.end());
            continue;
        }
        if (auto w = flush(); !w) {
            return w;
        }
        if (bytes.size() >= kRecord) {
            if (auto w = write_raw(bytes, deadline); !w) {
                return w;
            }
        } else {
            staging_.insert(staging_.end(), bytes.begin(), bytes.end());
        }
    }
    return flush();
}

Result<std::size_t> TlsStream::read_into(FrameReader& reader, Deadline deadline) {
    for (;;) {
        std::size_t got = 0;
        short want = 0;
        std::optional<Error> failed;
        {
            std::lock_guard lock{ssl_mu_};
            for (;;) {
                auto room = reader.writable(kRecord);
                std::size_t n = 0;
                ERR_clear_error();
                errno = 0;
                const int r = SSL_read_ex(ssl_, room.data(), room.size(), &n);
                if (r == 1) {
                    reader.commit(n);
                    got += n;
                    // Nothing decrypted may stay inside OpenSSL once this returns: the
                    // session polls the socket next, which would not wake for it.
                    if (got >= kReadChunk && SSL_has_pending(ssl_) == 0) {
                        break;
                    }
                    continue;
                }
                const int saved = errno;
                want = wanted(ssl_, r);
                if (want == 0) {
                    failed = failure(ssl_, r, saved, {});
                }
                break;
            }
        }
        if (got > 0) {
            return got; // a failure after these bytes is met again by the next call
        }
        if (failed) {
            return *failed;
        }
        if (auto w = wait_ready(fd_, want, deadline); !w) {
            return w.error();
        }
    }
}

Result<std::unique_ptr<TlsStream>> start_tls(std::shared_ptr<const TlsContext> context, int fd,
                                             bool initiator, Deadline deadline) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        return make_error(Errc::system_error, "cannot make the link's socket non-blocking", errno);
    }
    ERR_clear_error();
    std::unique_ptr<SSL, SslFree> ssl{SSL_new(context->native())};
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
        ERR_clear_error();
        return make_error(Errc::system_error, "OpenSSL could not start a TLS session");
    }
    std::string note; // why this end refused the peer's certificate, if it does
    TlsContext::set_refusal_note(ssl.get(), &note);
    if (initiator) {
        SSL_set_connect_state(ssl.get());
    } else {
        SSL_set_accept_state(ssl.get());
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        const int r = SSL_do_handshake(ssl.get());
        if (r == 1) {
            break;
        }
        const int saved = errno;
        const short want = wanted(ssl.get(), r);
        if (want == 0) {
            Error e = failure(ssl.get(), r, saved, note);
            TlsContext::set_refusal_note(ssl.get(), nullptr);
            return e;
        }
        if (auto w = wait_ready(fd, want, deadline); !w) {
            TlsContext::set_refusal_note(ssl.get(), nullptr);
            return make_error(Errc::timed_out, "the TLS handshake did not complete in time");
        }
    }
    TlsContext::set_refusal_note(ssl.get(), nullptr);
    std::string binding(kBindingBytes, '\0');
    if (SSL_export_keying_material(ssl.get(), reinterpret_cast<unsigned char*>(binding.data()),
                                   binding.size(), kExporterLabel.data(), kExporterLabel.size(),
                                   nullptr, 0, 0) != 1) {
        ERR_clear_error();
        return make_error(Errc::system_error,
                          "OpenSSL could not export keying material from the TLS session");
    }
    return std::make_unique<TlsStream>(std::move(context), ssl.release(), fd, std::move(binding));
}

Result<LinkOpening> peek_opening(int fd, Deadline deadline) {
    // A TLS connection opens with a handshake record (content type 22); a bridge hello with
    // the frame magic "SBGW".
    constexpr unsigned char kTlsHandshakeRecord = 0x16;
    for (;;) {
        if (auto w = wait_ready(fd, POLLIN, deadline); !w) {
            return make_error(Errc::timed_out, "the peer sent nothing in time");
        }
        unsigned char first = 0;
        const ssize_t n = ::recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 1) {
            return first == kTlsHandshakeRecord ? LinkOpening::tls : LinkOpening::plain;
        }
        if (n == 0) {
            return make_error(Errc::closed, "the peer closed the link before it said anything");
        }
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
            continue;
        }
        if (errno == ECONNRESET) {
            return make_error(Errc::closed, "the peer reset the link", errno);
        }
        return make_error(Errc::system_error, "reading from the link failed", errno);
    }
}

} // namespace shmbus::gateway
