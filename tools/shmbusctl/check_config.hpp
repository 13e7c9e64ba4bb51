// `shmbusctl check-config [FILE]`: validates a configuration with the daemon's own loader,
// the one function shmbusd runs at start, on reload and for `shmbusd --check-config`.
//
// Same file choice (FILE, else the system file for root and the user file otherwise), same
// output (every error GCC-style on stderr, "FILE: configuration is valid (N channels)" on
// stderr otherwise), same exit codes (0, or 78 for any error). With --json, one document on
// stdout instead: {"file", "valid", "channels", "errors": [{"file","line","column","message"}]}.
#pragma once

#include "context.hpp"

#include <string>

namespace shmbusctl {

int run_check_config(const GlobalOptions& options, const std::string& file);

} // namespace shmbusctl
