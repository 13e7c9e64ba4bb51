// `shmbusctl bridge-stdio`: the far end of a bridge's exec: link (docs/gateway.md, "Links").
//
// A daemon's bridge runs `ssh host shmbusctl bridge-stdio ...` (or any command that ends in
// it) and speaks the bridge protocol on the command's stdin/stdout. This end connects to its
// own local daemon as an ordinary client, so the ACLs of the user it runs as decide what it
// may read and write, and answers: it grants what its --import rules allow and offers what
// its --export rules allow, and refuses anything else by name. One link per process: when the
// link ends, so does the command (exit 0 after the peer's goodbye, 1 otherwise). Its log lines
// go to stderr, which the daemon logs with the bridge named.
//
// The rule syntax of --export and --import is CHANNEL[=AS], CHANNEL a name or a glob and AS
// its rename (the same wildcards in the same order), as `channel:` and `as:` in a bridge's
// configuration. Without either option it allows everything its user's ACLs allow.
#pragma once

#include "context.hpp"

#include <string>
#include <vector>

namespace shmbusctl {

struct BridgeStdioOptions {
    std::string name{"stdio"};        ///< the bridge's name in logs, on both ends
    std::vector<std::string> exports; ///< CHANNEL[=AS]
    std::vector<std::string> imports; ///< CHANNEL[=AS]
    std::string secret_file;          ///< a shared secret (mode 0600), if the peer has one
    double handshake_timeout_s{10.0};
};

/// Runs one bridge link on stdin/stdout until it ends; the exit code.
int run_bridge_stdio(const GlobalOptions& options, const BridgeStdioOptions& bridge);

} // namespace shmbusctl
