// The data commands: `tail` subscribes to a channel and prints what arrives; `pub` publishes.
// Both are ordinary endpoints of the public API (Client::open_subscriber / open_publisher),
// exactly as an application's: shmbusctl writes to a segment only as `pub`'s publisher.
//
// `tail` on a queue is a consumer: it takes its share of the messages from the others.
// Both stop cleanly on SIGINT / SIGTERM (the endpoint detaches; nothing is left behind).
#pragma once

#include "context.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace shmbusctl {

enum class TailFormat { text, hex, json };

struct TailOptions {
    std::string channel;
    std::uint64_t count{0}; ///< stop after this many messages; 0: until interrupted
    TailFormat format{TailFormat::text};
    double timeout_s{0}; ///< give up (exit 1) after this long without a message; 0: never
    bool summary{false}; ///< print "N received, M lost" at the end even when nothing was lost
    bool events{false};  ///< print peer events (attached, detached, died, lapped) as well
};

int run_tail(const GlobalOptions& options, const TailOptions& tail);

struct PubOptions {
    std::string channel;
    std::vector<std::string> messages; ///< given on the command line; empty: stdin or generated
    std::uint64_t count{0};            ///< messages to send: the given ones in turn, or generated
    double rate{0};                    ///< messages per second; 0: as fast as the ring allows
    std::uint64_t size{0};             ///< size of generated messages; 0: min(64, slot size)
    bool hex{false};                   ///< messages (arguments or lines) are hex digits
    bool verbose{false};               ///< print each message sent
    double timeout_s{10};              ///< longest wait for room in a full ring
};

int run_pub(const GlobalOptions& options, const PubOptions& pub);

} // namespace shmbusctl
