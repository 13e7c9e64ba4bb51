// The bridge handshake; the protocol is in handshake.hpp and docs/gateway.md.
//
// OpenSSL is used for three things only: RAND_bytes for the nonce, HMAC(EVP_sha256) for the
// answers and CRYPTO_memcmp to compare them in constant time. None of it throws; a failure
// of the random source is an Error, never a predictable nonce.
#include "gateway/handshake.hpp"

#include "gateway/link_io.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace shmbus::gateway {

namespace {

std::string_view byte_order_name(ByteOrder order) noexcept {
    return order == ByteOrder::big ? "big-endian" : "little-endian";
}

std::string_view auth_name(AuthMethod method) noexcept {
    return method == AuthMethod::hmac_sha256 ? "hmac_sha256 (a shared secret)"
                                             : "none (no shared secret)";
}

std::string peer_label(const Hello& peer) {
    std::string s = "the peer";
    if (!peer.node.empty() || !peer.bridge.empty()) {
        s += " (" + (peer.node.empty() ? std::string{"?"} : peer.node) + ", bridge '" +
             peer.bridge + "')";
    }
    return s;
}

/// Every frame built here is in range, so failing to encode one is a bug: value() aborts.
std::vector<std::byte> encoded(const Frame& frame) {
    return encode(frame).value();
}

} // namespace

Result<Handshake> Handshake::start(HandshakeSettings settings) {
    Handshake h{std::move(settings)};
    Hello& own = h.own_;
    own.byte_order = host_byte_order();
    own.max_alignment = alignof(std::max_align_t);
    own.max_message_bytes = h.settings_.max_message_bytes;
    own.max_data_body = h.settings_.max_data_body;
    own.incarnation = h.settings_.incarnation;
    own.node = h.settings_.node;
    own.bridge = h.settings_.bridge;
    if (h.settings_.secret) {
        own.auth = AuthMethod::hmac_sha256;
        own.nonce.resize(kNonceBytes);
        if (RAND_bytes(reinterpret_cast<unsigned char*>(own.nonce.data()),
                       static_cast<int>(kNonceBytes)) != 1) {
            return make_error(Errc::system_error,
                              "bridge '" + h.settings_.bridge +
                                  "': the system's random source gave no nonce");
        }
    }
    auto bytes = encode(own);
    if (!bytes) {
        return make_error(bytes.error().code,
                          "bridge '" + h.settings_.bridge + "': " + bytes.error().detail);
    }
    h.hello_ = std::move(bytes.value());
    return h;
}

std::optional<std::string> Handshake::answer(bool as_initiator) const {
    const Hello& initiator = settings_.initiator ? own_ : *peer_;
    const Hello& responder = settings_.initiator ? *peer_ : own_;
    std::string message = "shmbus-bridge 1 ";
    message += as_initiator ? "initiator" : "responder";
    message += '\0';
    for (const Hello* h : {&initiator, &responder}) {
        const auto bytes = encoded(*h);
        message.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    message += settings_.channel_binding;
    std::string mac(kMacBytes, '\0');
    unsigned int length = 0;
    const std::string& key = *settings_.secret;
    const unsigned char* out =
        HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(),
             reinterpret_cast<unsigned char*>(mac.data()), &length);
    if (out == nullptr || length != kMacBytes) {
        return std::nullopt; // OpenSSL out of memory
    }
    return mac;
}

Result<std::vector<std::byte>> Handshake::on_hello(const Hello& peer) {
    // The decoder has refused a peer without a common version already.
    const std::uint16_t version = std::min(kVersionMax, peer.version_max);
    const std::string who = peer_label(peer);
    if (peer.byte_order != own_.byte_order) {
        return make_error(Errc::protocol_error,
                          "byte order differs: this side is " +
                              std::string{byte_order_name(own_.byte_order)} + ", " + who + " " +
                              std::string{byte_order_name(peer.byte_order)} +
                              "; messages are raw bytes in their host's layout");
    }
    if (peer.max_alignment != own_.max_alignment) {
        return make_error(Errc::protocol_error, "alignment differs: this side aligns to " +
                                                    std::to_string(own_.max_alignment) +
                                                    " bytes, " + who + " to " +
                                                    std::to_string(peer.max_alignment));
    }
    if (peer.auth != own_.auth && own_.auth != AuthMethod::none && settings_.secret_required) {
        return make_error(Errc::permission_denied, "authentication differs: this side uses " +
                                                       std::string{auth_name(own_.auth)} + ", " +
                                                       who + " " +
                                                       std::string{auth_name(peer.auth)});
    }
    if (peer.incarnation == own_.incarnation) {
        return make_error(Errc::protocol_error, "the peer has this daemon's own incarnation " +
                                                    std::to_string(own_.incarnation) +
                                                    ": the link loops back to itself");
    }
    peer_ = peer;
    params_.version = version;
    params_.max_message_bytes = std::min(own_.max_message_bytes, peer.max_message_bytes);
    params_.send_data_body = peer.max_data_body;
    params_.receive_data_body = own_.max_data_body;
    params_.peer_incarnation = peer.incarnation;
    params_.peer_node = peer.node;
    params_.peer_bridge = peer.bridge;
    params_.auth = peer.auth == own_.auth ? own_.auth : AuthMethod::none;
    if (own_.auth == AuthMethod::none && peer.auth == AuthMethod::none) {
        state_ = State::done;
        return std::vector<std::byte>{};
    }
    if (own_.auth == AuthMethod::none) {
        state_ = State::want_waiver; // the peer has the secret: its call
        return std::vector<std::byte>{};
    }
    if (peer.auth == AuthMethod::none) {
        state_ = State::done; // a secret not required: the challenge is waived
        return encoded(Auth{});
    }
    auto mac = answer(settings_.initiator);
    if (!mac) {
        return make_error(Errc::system_error, "HMAC-SHA256 failed in OpenSSL");
    }
    state_ = State::want_auth;
    return encoded(Auth{std::move(*mac)});
}

Result<std::vector<std::byte>> Handshake::on_auth(const Auth& auth) {
    const auto expected_mac = answer(!settings_.initiator);
    if (!expected_mac) {
        return make_error(Errc::system_error, "HMAC-SHA256 failed in OpenSSL");
    }
    const std::string& expected = *expected_mac;
    if (auth.mac.size() != expected.size() ||
        CRYPTO_memcmp(auth.mac.data(), expected.data(), expected.size()) != 0) {
        return make_error(Errc::permission_denied,
                          "authentication failed: " + peer_label(*peer_) +
                              " does not know this bridge's shared secret");
    }
    state_ = State::done;
    return std::vector<std::byte>{};
}

Result<std::vector<std::byte>> Handshake::on_frame(const Frame& frame) {
    if (const auto* goodbye = std::get_if<Goodbye>(&frame)) {
        return make_error(goodbye->code, "the peer refused the link: " + goodbye->reason);
    }
    switch (state_) {
    case State::want_hello:
        if (const auto* hello = std::get_if<Hello>(&frame)) {
            return on_hello(*hello);
        }
        break;
    case State::want_auth:
        if (const auto* auth = std::get_if<Auth>(&frame)) {
            return on_auth(*auth);
        }
        break;
    case State::want_waiver:
        if (const auto* auth = std::get_if<Auth>(&frame)) {
            if (!auth->mac.empty()) {
                return make_error(Errc::protocol_error,
                                  "the peer answered a challenge this side never sent (this "
                                  "side has no shared secret)");
            }
            state_ = State::done;
            return std::vector<std::byte>{};
        }
        break;
    case State::done:
        break;
    }
    const char* expected = state_ == State::want_hello    ? "hello"
                           : state_ == State::want_auth   ? "auth"
                           : state_ == State::want_waiver ? "auth (a waiver)"
                                                          : "nothing";
    return make_error(Errc::protocol_error,
                      "unexpected '" + std::string{frame_type_name(type_of(frame))} +
                          "' frame during the handshake (expected " + expected + ")");
}

Result<LinkParams> run_handshake(int in_fd, int out_fd, Handshake& handshake, FrameReader& reader,
                                 Deadline deadline) {
    FdStream link{in_fd, out_fd};
    return run_handshake(link, handshake, reader, deadline);
}

Result<LinkParams> run_handshake(LinkStream& link, Handshake& handshake, FrameReader& reader,
                                 Deadline deadline) {
    auto fail = [&](Error e) -> Result<LinkParams> {
        // Tell the peer why, unless it is the one who left or said so already.
        if (e.code != Errc::closed && e.detail.rfind("the peer refused", 0) != 0) {
            if (auto bye = encode(Goodbye{e.code, e.detail})) {
                (void)link.write_all(
                    bye.value(),
                    std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds{1}));
            }
        }
        return e;
    };
    if (auto w = link.write_all(handshake.hello_bytes(), deadline); !w) {
        return fail(w.error());
    }
    while (!handshake.done()) {
        auto frame = reader.next();
        if (!frame) {
            return fail(frame.error());
        }
        if (!frame.value()) {
            if (auto r = link.read_into(reader, deadline); !r) {
                Error e = r.take_error();
                if (e.code == Errc::timed_out) {
                    e.detail = "the handshake did not complete in time";
                }
                return fail(std::move(e));
            }
            continue;
        }
        auto reply = handshake.on_frame(*frame.value());
        if (!reply) {
            return fail(reply.error());
        }
        if (!reply.value().empty()) {
            if (auto w = link.write_all(reply.value(), deadline); !w) {
                return fail(w.error());
            }
        }
    }
    reader.set_max_data_body(handshake.params().receive_data_body);
    reader.set_version(handshake.params().version);
    return handshake.params();
}

} // namespace shmbus::gateway
