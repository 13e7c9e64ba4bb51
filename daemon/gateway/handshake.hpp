// The opening of a bridge link: hellos, the mutual HMAC-SHA256 challenge, and what the two
// ends agree on. docs/gateway.md ("Handshake") is the reference.
//
// Both ends send a hello at once (no round trip is spent waiting), each carrying its version
// range, host byte order and alignment, limits, daemon incarnation and, with a shared secret,
// a fresh 32-byte random nonce. When an end has the peer's hello it checks that the two can
// talk (a common version, the same byte order and alignment, authentication both can do, not
// itself) and, when both have a secret, answers with
//
//   HMAC-SHA256(secret, "shmbus-bridge 1 " + label + '\0' + hello(initiator) + hello(responder)
//                       [+ binding])
//
// where label is "initiator" for the connecting end and "responder" for the listening one,
// hello(x) is that end's hello as this version encodes it, and binding, on a TLS link only,
// is 32 bytes of keying material exported from the TLS session (LinkStream::channel_binding()).
// Both nonces are in the transcript, so an answer is good for one connection only; the labels
// differ, so an end's own answer reflected back is wrong; the whole hellos are in it, so a man
// in the middle cannot alter a limit or a version without failing the check; and the binding
// ties the answer to this TLS channel, so that it cannot be relayed into another. The secret
// never travels. Answers are compared in constant time. Without a secret on either end
// (exec: and fifo: links, where the transport authenticates; tcp links authenticated by TLS
// alone) there are no auth frames and the hellos end the handshake.
//
// When only one end has a secret, that end decides: if its bridge requires the secret
// (`secret_required`, the default) it refuses the link, naming both methods; if not (a TLS
// link whose bridge accepts TLS alone), it sends an auth frame with an empty answer, which
// waives the challenge, and the end without a secret waits for that frame (or the refusal)
// before it calls the handshake done. So both ends agree whether the link is up.
//
// Handshake is the state machine, pure but for the random nonce: frames in, bytes to send or
// an Error out. run_handshake() drives it over a link's stream with a deadline, for the
// bridge's own thread. Any failure is an Error whose message says which item differs, naming
// both sides' values; the driver sends it to the peer as a goodbye (best effort) so that both
// ends log the same reason.
#pragma once

#include "gateway/frame.hpp"
#include "gateway/link_io.hpp"

#include <shmbus/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shmbus::gateway {

struct HandshakeSettings {
    bool initiator{true};         ///< the connecting end (tcp connect, exec:, fifo: connect)
    std::string bridge;           ///< this end's name for the bridge, for logs on both ends
    std::string node;             ///< this host or instance, for the peer's logs
    std::uint64_t incarnation{0}; ///< random per daemon start, never 0
    std::uint64_t max_message_bytes{kMaxSlotSize};
    std::uint32_t max_data_body{static_cast<std::uint32_t>(kDefaultDataBody)};
    std::optional<std::string> secret; ///< the shared secret; none = AuthMethod::none
    /// With a secret: whether a peer without one is refused (else the challenge is waived).
    bool secret_required{true};
    /// Mixed into the answers: the link's LinkStream::channel_binding() (empty if plain).
    std::string channel_binding;
};

/// What the handshake agreed.
struct LinkParams {
    std::uint16_t version{0};
    std::uint64_t max_message_bytes{0}; ///< the smaller of both ends' limits
    std::uint32_t send_data_body{0};    ///< largest data body the peer accepts
    std::uint32_t receive_data_body{0}; ///< largest data body this end accepts
    std::uint64_t peer_incarnation{0};
    std::string peer_node;
    std::string peer_bridge;
    AuthMethod auth{AuthMethod::none}; ///< hmac_sha256 when both ends answered the challenge
};

class Handshake {
public:
    /// Draws the nonce (Errc::system_error if the system's random source fails).
    static Result<Handshake> start(HandshakeSettings settings);

    /// This end's hello, to send first.
    [[nodiscard]] const std::vector<std::byte>& hello_bytes() const noexcept { return hello_; }

    /// Takes a frame from the peer; returns the bytes to send in answer (possibly none).
    /// Errc::version_mismatch, Errc::permission_denied (authentication) or
    /// Errc::protocol_error (an unexpected frame, values that cannot work together), each
    /// naming the item and both values; after an error the link must be closed.
    [[nodiscard]] Result<std::vector<std::byte>> on_frame(const Frame& frame);

    /// Whether both ends are satisfied: params() is then valid.
    [[nodiscard]] bool done() const noexcept { return state_ == State::done; }
    [[nodiscard]] const LinkParams& params() const noexcept { return params_; }

private:
    /// want_waiver: this end has no secret, the peer has one and decides.
    enum class State { want_hello, want_auth, want_waiver, done };

    explicit Handshake(HandshakeSettings settings) : settings_{std::move(settings)} {}
    Result<std::vector<std::byte>> on_hello(const Hello& peer);
    Result<std::vector<std::byte>> on_auth(const Auth& auth);
    /// The answer an end gives (HMAC over the transcript); nothing if OpenSSL fails.
    [[nodiscard]] std::optional<std::string> answer(bool as_initiator) const;

    HandshakeSettings settings_;
    Hello own_;
    std::optional<Hello> peer_;
    std::vector<std::byte> hello_;
    State state_{State::want_hello};
    LinkParams params_;
};

/// Runs `handshake` over `link`. Frames that follow the handshake stay in `reader` for the
/// session. On failure, sends the peer a goodbye with the reason (best effort) and returns
/// it; Errc::timed_out at `deadline`, Errc::closed if the peer hung up (with its goodbye's
/// reason if it sent one). Blocks: run it on the bridge's own thread, never on the control
/// loop. Does not close the link.
[[nodiscard]] Result<LinkParams> run_handshake(LinkStream& link, Handshake& handshake,
                                               FrameReader& reader,
                                               std::chrono::steady_clock::time_point deadline);

/// The same over a plain link whose incoming bytes arrive on `in_fd` and outgoing ones leave
/// on `out_fd` (the same descriptor for a socket).
[[nodiscard]] Result<LinkParams> run_handshake(int in_fd, int out_fd, Handshake& handshake,
                                               FrameReader& reader,
                                               std::chrono::steady_clock::time_point deadline);

} // namespace shmbus::gateway
