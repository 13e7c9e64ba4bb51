// The rpc commands: `call` sends one request to an rpc channel and prints the reply with
// the round trip; `serve --echo` answers every request with the request itself, for tests
// and demos. Both are ordinary endpoints of the public API (Client::open_caller /
// open_server), exactly as an application's.
#pragma once

#include "context.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace shmbusctl {

struct CallOptions {
    std::string channel;
    std::vector<std::string> data; ///< the request: the words joined by spaces (or hex)
    bool hex{false};               ///< the words are hex digits
    bool wait_for_server{false};   ///< wait (up to the timeout) for a server to attach
    double timeout_s{5};           ///< longest wait for the reply
};

int run_call(const GlobalOptions& options, const CallOptions& call);

struct ServeOptions {
    std::string channel;
    bool echo{false};       ///< answer each request with itself (the only behaviour so far)
    std::uint64_t count{0}; ///< stop after this many requests; 0: until interrupted
    bool quiet{false};      ///< do not print each request served
};

int run_serve(const GlobalOptions& options, const ServeOptions& serve);

} // namespace shmbusctl
