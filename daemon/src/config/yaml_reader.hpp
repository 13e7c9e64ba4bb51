// The YAML reader: one configuration text onto a Config being built from several sources.
//
// Internal to the configuration loader. No yaml-cpp type appears here: the yaml_* files are the
// only ones that include yaml-cpp, and every YAML::Exception ends there as a ConfigError.
// load.cpp calls read_source() once per source (main file, then drop-ins) on one MergeState
// and then runs the checks that need the merged result. Pure: no I/O, reentrant.
#pragma once

#include "config.hpp"

#include <vector>

namespace shmbus::daemon {

/// State shared by the readers of all sources of one parse.
struct MergeState {
    Config config;
    std::vector<ConfigError> errors;
    /// Settings whose value the merged checks need to know were written, not defaulted.
    bool dynamic_subscribers_set{false};
};

/// Reads one source onto `state`: every setting it writes replaces the earlier value, its
/// channels are appended, and every problem is appended to state.errors. A YAML syntax error
/// ends the reading of this source only.
void read_source(const ConfigSource& source, MergeState& state);

} // namespace shmbus::daemon
