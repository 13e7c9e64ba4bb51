// `shmbusctl check-config [FILE]`: validates a configuration with the daemon's own loader, by
// running `shmbusd --check-config` (with `--config FILE` when given, `--json` with --json).
// shmbusd's check is the one function it runs at start and on reload, so the answer is the
// daemon's by construction; running the program rather than linking its loader keeps
// shmbusctl free of yaml-cpp and of every other library of the daemon.
//
// Same file choice (FILE, else the system file for root and the user file otherwise), same
// output (every error GCC-style on stderr, "FILE: configuration is valid (N channels)" on
// stderr otherwise), same exit codes (0, or 78 for any error): shmbusd prints them itself, on
// the standard streams it inherits. With --json, one document on stdout instead:
// {"file", "valid", "channels", "errors": [{"file","line","column","message"}]}.
//
// Which shmbusd: $SHMBUSD when set (and nothing else then); else the one beside shmbusctl;
// else where the install puts it, relative to shmbusctl (bin/shmbusctl, sbin/shmbusd); else
// the first on PATH. None found, or a shmbusd that ends otherwise than with 0 or 78: an error
// naming what was tried, exit code 1.
#pragma once

#include "context.hpp"

#include <string>

namespace shmbusctl {

int run_check_config(const GlobalOptions& options, const std::string& file);

} // namespace shmbusctl
