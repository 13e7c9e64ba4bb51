// The shared-state commands: `get` and `set` read and write one element of a blackboard,
// `counters` lists the cells of a counters channel. Each is an ordinary endpoint of the
// public API (Client::open_blackboard / open_counters), so the channel's ACL applies:
// `get` and `counters` need the subscribe right and map the state read-only, `set` needs
// the publish right.
#pragma once

#include "context.hpp"

#include <cstdint>
#include <string>

namespace shmbusctl {

struct GetOptions {
    std::string channel;
    std::uint64_t index{0};
    bool hex{false}; ///< print the element as hex digits instead of escaped text
};
int run_get(const GlobalOptions& options, const GetOptions& get);

struct SetOptions {
    std::string channel;
    std::uint64_t index{0};
    std::string data;
    bool hex{false}; ///< `data` is hex digits
};
int run_set(const GlobalOptions& options, const SetOptions& set);

int run_counters(const GlobalOptions& options, const std::string& channel);

} // namespace shmbusctl
