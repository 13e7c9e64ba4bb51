// libFuzzer target for the configuration loader's pure parse (daemon/src/config.cpp).
//
// YAML text in, a Config or a list of errors out: parse_config() must never crash, hang,
// leak or let a yaml-cpp exception escape on any text (ASan and UBSan are on). Beyond that,
// the outcome keeps its own contract, and a violation aborts, which libFuzzer reports with
// the input that caused it:
//  - a Config if and only if there are no errors;
//  - every error names the file it was given and says something, and its line is within
//    the text (line 0 only for errors about a whole file, with column 0);
//  - the same text gives the same answer again (the parse is pure).
// A form feed splits the input into a main file and a drop-in, so that the merge of
// several sources (load_config()'s conf.d/) is fuzzed too.
#include "config.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using shmbus::daemon::ConfigError;
using shmbus::daemon::ConfigSource;
using shmbus::daemon::ParseOutcome;

void check(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

void check_outcome(const ParseOutcome& outcome, const std::vector<ConfigSource>& sources) {
    check(outcome.ok() == outcome.config.has_value());
    for (const ConfigError& error : outcome.errors) {
        check(!error.message.empty());
        const auto source = std::find_if(sources.begin(), sources.end(),
                                         [&](const auto& s) { return s.origin == error.file; });
        check(source != sources.end());
        const auto lines =
            static_cast<std::uint32_t>(std::count(source->text.begin(), source->text.end(), '\n'));
        check(error.line <= lines + 1);
        check(error.line != 0 || error.column == 0);
        check(!to_string(error).empty());
    }
}

bool same_errors(const ParseOutcome& a, const ParseOutcome& b) {
    return std::equal(a.errors.begin(), a.errors.end(), b.errors.begin(), b.errors.end(),
                      [](const ConfigError& x, const ConfigError& y) {
                          return x.file == y.file && x.line == y.line && x.column == y.column &&
                                 x.message == y.message;
                      });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<ConfigSource> sources;
    const std::size_t split = input.find('\f');
    sources.push_back({"shmbusd.yaml", std::string(input.substr(0, split))});
    if (split != std::string_view::npos) {
        sources.push_back({"conf.d/10-fuzz.yaml", std::string(input.substr(split + 1))});
    }

    const ParseOutcome outcome = shmbus::daemon::parse_config(sources);
    check_outcome(outcome, sources);
    const ParseOutcome again = shmbus::daemon::parse_config(sources);
    check(again.ok() == outcome.ok() && same_errors(again, outcome));
    if (outcome.config) {
        check(outcome.config->channels.size() == again.config->channels.size());
    }
    return 0;
}
