// check-config: see check_config.hpp. The steps mirror shmbusd's main() for --check-config.
#include "check_config.hpp"

#include "json_view.hpp"

#include "config.hpp"
#include "daemon_state.hpp"

#include <cstdio>
#include <optional>
#include <unistd.h>

namespace shmbusctl {

int run_check_config(const GlobalOptions& options, const std::string& file) {
    using namespace shmbus::daemon;
    const Instance instance = ::geteuid() == 0 ? Instance::system : Instance::user;
    std::optional<std::filesystem::path> explicit_path;
    if (!file.empty()) {
        explicit_path = file;
    }
    auto path = choose_config_path(instance, explicit_path, process_environment());
    if (!path) {
        if (options.json) {
            print_json({{"file", nullptr},
                        {"valid", false},
                        {"channels", nullptr},
                        {"errors",
                         {{{"file", ""},
                           {"line", 0},
                           {"column", 0},
                           {"message", path.error().message()}}}}});
        } else {
            std::fprintf(stderr, "shmbusctl: %s\n", path.error().message().c_str());
        }
        return kExitConfig;
    }
    const ParseOutcome outcome = load_resolved_config(*path);
    const bool valid = outcome.ok() && outcome.config.has_value();
    if (options.json) {
        nlohmann::json errors = nlohmann::json::array();
        for (const auto& e : outcome.errors) {
            errors.push_back(
                {{"file", e.file}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
        }
        print_json({{"file", path->path.native()},
                    {"valid", valid},
                    {"channels", valid ? nlohmann::json(outcome.config->channels.size())
                                       : nlohmann::json(nullptr)},
                    {"errors", errors}});
        return valid ? kExitOk : kExitConfig;
    }
    if (!valid) {
        for (const auto& e : outcome.errors) {
            std::fprintf(stderr, "%s\n", to_string(e).c_str());
        }
        return kExitConfig;
    }
    std::fprintf(stderr, "%s: configuration is valid (%zu channels)\n", path->path.c_str(),
                 outcome.config->channels.size());
    return kExitOk;
}

} // namespace shmbusctl
