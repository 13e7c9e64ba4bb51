// get, set and counters: see shared_state.hpp.
#include "shared_state.hpp"

#include "format.hpp"
#include "json_view.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace shmbusctl {

int run_get(const GlobalOptions& options, const GetOptions& get) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto board = client->open_blackboard(get.channel, shmbus::Role::subscriber);
    if (!board) {
        return fail("get " + get.channel, board.error(), ErrorSite::channel);
    }
    std::vector<std::byte> element(static_cast<std::size_t>(board->element_size()));
    auto version = board->read(get.index, element);
    if (!version) {
        return fail("get " + get.channel + " " + std::to_string(get.index), version.error(),
                    ErrorSite::other);
    }
    if (options.json) {
        print_json({{"channel", get.channel},
                    {"index", get.index},
                    {"version", *version},
                    {"size", element.size()},
                    {"hex", to_hex(element, false)},
                    {"text", escaped_text(element)}});
    } else {
        std::printf("#%llu v%llu (%zu B) %s\n", static_cast<unsigned long long>(get.index),
                    static_cast<unsigned long long>(*version), element.size(),
                    get.hex ? to_hex(element, true).c_str() : escaped_text(element).c_str());
    }
    return kExitOk;
}

int run_set(const GlobalOptions& options, const SetOptions& set) {
    auto data = bytes_given(set.data, set.hex);
    if (!data) {
        return fail("set: '" + set.data + "' is not hex (pairs of 0-9a-f)", kExitUsage);
    }
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto board = client->open_blackboard(set.channel, shmbus::Role::publisher);
    if (!board) {
        return fail("set " + set.channel, board.error(), ErrorSite::channel);
    }
    if (auto wrote = board->write(set.index, *data); !wrote) {
        return fail("set " + set.channel + " " + std::to_string(set.index), wrote.error(),
                    ErrorSite::other);
    }
    return kExitOk;
}

int run_counters(const GlobalOptions& options, const std::string& channel) {
    int rc = kExitOk;
    auto client = connect(options, rc);
    if (!client) {
        return rc;
    }
    auto counters = client->open_counters(channel, shmbus::Role::subscriber);
    if (!counters) {
        return fail("counters " + channel, counters.error(), ErrorSite::channel);
    }
    auto cells = counters->list();
    if (!cells) {
        return fail("counters " + channel, cells.error(), ErrorSite::other);
    }
    if (options.json) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& c : *cells) {
            list.push_back({{"name", c.name}, {"value", c.value}, {"index", c.index}});
        }
        print_json({{"channel", channel},
                    {"capacity", counters->capacity()},
                    {"counters", std::move(list)}});
        return kExitOk;
    }
    std::size_t width = 4;
    for (const auto& c : *cells) {
        width = std::max(width, c.name.size());
    }
    if (!options.no_legend) {
        std::printf("%-*s %20s\n", static_cast<int>(width), "NAME", "VALUE");
    }
    for (const auto& c : *cells) {
        std::printf("%-*s %20llu\n", static_cast<int>(width), c.name.c_str(),
                    static_cast<unsigned long long>(c.value));
    }
    if (!options.no_legend) {
        std::printf("\n%zu of %llu cells in use\n", cells->size(),
                    static_cast<unsigned long long>(counters->capacity()));
    }
    return kExitOk;
}

} // namespace shmbusctl
