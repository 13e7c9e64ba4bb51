// check-config: see check_config.hpp. shmbusd's own check_config_file() gives the answer;
// this file only prints it, as text (describe(), shmbusd's words) or as one JSON document.
#include "check_config.hpp"

#include "json_view.hpp"

#include <config.hpp>

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
    const auto checked = check_config_file(instance, explicit_path, process_environment());
    if (!checked) {
        if (options.json) {
            print_json({{"file", nullptr},
                        {"valid", false},
                        {"channels", nullptr},
                        {"errors",
                         {{{"file", ""},
                           {"line", 0},
                           {"column", 0},
                           {"message", checked.error().message()}}}}});
        } else {
            std::fprintf(stderr, "shmbusctl: %s\n", checked.error().message().c_str());
        }
        return kExitConfig;
    }
    const ParseOutcome& outcome = checked->outcome;
    const bool valid = outcome.ok() && outcome.config.has_value();
    if (options.json) {
        nlohmann::json errors = nlohmann::json::array();
        for (const auto& e : outcome.errors) {
            errors.push_back(
                {{"file", e.file}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
        }
        print_json({{"file", checked->path.path.native()},
                    {"valid", valid},
                    {"channels", valid ? nlohmann::json(outcome.config->channels.size())
                                       : nlohmann::json(nullptr)},
                    {"errors", errors}});
    } else {
        std::fprintf(stderr, "%s\n", describe(*checked).c_str());
    }
    return valid ? kExitOk : kExitConfig;
}

} // namespace shmbusctl
