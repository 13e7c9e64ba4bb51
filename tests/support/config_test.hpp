// What the configuration tests share: a text's errors as the daemon prints them, the Config of
// a text that must be valid, and a scratch directory for the files load_config() reads.
#pragma once

#include "config.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <stdlib.h>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace shmbus::test {

/// Every error of `text`, formatted as the daemon prints them.
inline std::vector<std::string> config_errors(std::string_view text) {
    std::vector<std::string> out;
    for (const daemon::ConfigError& e : daemon::parse_config(text, "shmbusd.yaml").errors) {
        out.push_back(daemon::to_string(e));
    }
    return out;
}

/// The Config `text` gives; fails the test (showing every error) when it has errors.
inline daemon::Config config_of(std::string_view text) {
    const daemon::ParseOutcome outcome = daemon::parse_config(text, "shmbusd.yaml");
    INFO(text);
    for (const daemon::ConfigError& e : outcome.errors) {
        UNSCOPED_INFO(daemon::to_string(e));
    }
    REQUIRE(outcome.config);
    return *outcome.config;
}

/// A directory of its own, removed at the end.
struct ScratchDir {
    ScratchDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "shmbus-cfg-XXXXXX").native();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    std::filesystem::path path;
};

} // namespace shmbus::test
