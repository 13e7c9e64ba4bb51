// TLS under a tcp link's frames: the TLS handshake on a connected socket, and a LinkStream
// that encrypts what the handshake and the session write and decrypts what they read.
// docs/gateway.md ("Security model").
//
// start_tls() runs on the bridge's own thread after the TCP connection and before the
// bridge's hellos, with the link's deadline; the connecting end is the TLS client. Its errors
// say which end refused what, so that both logs explain a refusal: this end's verify callback
// names the peer's certificate and why it was refused (tls_context.hpp); an alert from the
// peer is named ("the peer refused this end's certificate: TLS alert 'unknown CA'"); a peer
// that answers in something else than TLS is told apart. In TLS 1.3 the client's handshake
// ends before the server has checked the client's certificate, so a server's refusal of it
// reaches the client on its first read: TlsStream reports it in the same words.
//
// A listening end that has `tls:` may also admit plaintext peers (`require: secret` or
// `either`); peek_opening() tells the two apart by the first byte the peer sends (both a TLS
// client and a plaintext bridge speak first), without consuming it.
//
// TlsStream: the socket is non-blocking; every SSL call is made under one mutex and never
// waits inside it (waits are poll()s outside), so the session's reading thread and its
// writers share the SSL object safely. read_into() decrypts everything that has arrived whole,
// so that nothing decrypted is ever left inside OpenSSL while the session polls the socket
// (LinkStream::readable_fd()). write_gather() copies small pieces into records of up to 16 KiB
// (TLS encrypts one record at a time; a record per small message would multiply the
// overhead), and writes large ones as they are. The stream does not own the socket: the
// link does, and must outlive it. The stream's end sends TLS close_notify, best effort.
#pragma once

#include "gateway/link_io.hpp"
#include "gateway/tls_context.hpp"

#include <shmbus/error.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace shmbus::gateway {

class TlsStream final : public LinkStream {
public:
    /// Takes `ssl`, whose handshake on `fd` is complete; `binding` is the keying material
    /// start_tls() exported from it.
    TlsStream(std::shared_ptr<const TlsContext> context, ssl_st* ssl, int fd, std::string binding);
    ~TlsStream() override;

    [[nodiscard]] Result<void> write_all(std::span<const std::byte> bytes,
                                         Deadline deadline) override;
    [[nodiscard]] Result<void> write_gather(std::span<iovec> iov, Deadline deadline) override;
    [[nodiscard]] Result<std::size_t> read_into(FrameReader& reader, Deadline deadline) override;
    [[nodiscard]] int readable_fd() const noexcept override { return fd_; }
    [[nodiscard]] std::string channel_binding() const override { return binding_; }
    [[nodiscard]] std::string describe() const override { return description_; }

private:
    /// Encrypts and writes `bytes` whole; the caller holds write_mu_.
    Result<void> write_raw(std::span<const std::byte> bytes, Deadline deadline);

    std::shared_ptr<const TlsContext> context_; ///< outlives ssl_, whose callbacks read it
    ssl_st* ssl_;
    int fd_;
    std::string binding_;     ///< exported keying material, 32 bytes
    std::string description_; ///< "TLS 1.3, TLS_AES_256_GCM_SHA384, peer CN=..."
    std::mutex ssl_mu_;       ///< every call on ssl_; never held while waiting
    std::mutex write_mu_;     ///< one writer at a time, for staging_
    std::vector<std::byte> staging_;
};

/// Runs the TLS handshake over the connected socket `fd` (made non-blocking) as the client
/// (`initiator`, the connecting end) or the server, until `deadline`. Errc::permission_denied
/// when a certificate is refused, by this end ("the peer's certificate (CN=robot2) was
/// refused: ...") or by the peer ("the peer refused this end's certificate: TLS alert ...");
/// Errc::protocol_error when the peer does not speak TLS or TLS fails otherwise, with
/// OpenSSL's reason; Errc::timed_out; Errc::closed when the peer hangs up.
[[nodiscard]] Result<std::unique_ptr<TlsStream>>
start_tls(std::shared_ptr<const TlsContext> context, int fd, bool initiator, Deadline deadline);

/// How a peer opens a link: a TLS ClientHello, or a plaintext bridge hello (or anything else,
/// which the frame layer will refuse).
enum class LinkOpening { tls, plain };

/// Waits until `deadline` for the peer's first byte on socket `fd` and says which opening it
/// starts, consuming nothing. Errc::timed_out, Errc::closed (the peer left first).
[[nodiscard]] Result<LinkOpening> peek_opening(int fd, Deadline deadline);

} // namespace shmbus::gateway
