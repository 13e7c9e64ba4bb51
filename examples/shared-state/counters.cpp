// shmbus-counters-example: statistics, a high-water mark and sequence allocation shared by
// every process of a counters channel.
//
// Opens the channel as a writer; counts `count` requests in the cell 'requests', keeps the
// largest request size in 'largest' (fetch_max), hands out ids from 'next_id' (fetch_add:
// unique across processes), and sets the flag 'ready' with a compare-exchange so that only
// the first process to get there does. Then lists every cell as a reader would see it.
//
// usage: shmbus-counters-example [--socket PATH] [--channel NAME] [--count N]
#include <shmbus/shmbus.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int fail(const char* what, const shmbus::Error& error) {
    std::fprintf(stderr, "shmbus-counters-example: %s: %s\n", what, error.message().c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    shmbus::ClientOptions options;
    options.client_name = "counters-example";
    std::string channel = "stats";
    long count = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string opt = argv[i];
        if (opt == "--socket") {
            options.socket_path = argv[i + 1];
        } else if (opt == "--channel") {
            channel = argv[i + 1];
        } else if (opt == "--count") {
            count = std::strtol(argv[i + 1], nullptr, 10);
        }
    }
    auto client = shmbus::Client::connect(options);
    if (!client) {
        return fail("connect", client.error());
    }
    auto counters = client->open_counters(channel, shmbus::Role::publisher);
    if (!counters) {
        return fail("open", counters.error());
    }
    auto requests = counters->cell("requests");
    auto largest = counters->cell("largest");
    auto next_id = counters->cell("next_id");
    auto ready = counters->cell("ready");
    for (auto* c : {&requests, &largest, &next_id, &ready}) {
        if (!*c) {
            return fail("cell", c->error());
        }
    }
    for (long i = 0; i < count; ++i) {
        const std::uint64_t size = static_cast<std::uint64_t>((i * 7919) % 4096);
        if (auto r = requests->fetch_add(1); !r) {
            return fail("fetch_add", r.error());
        }
        if (auto r = largest->fetch_max(size); !r) {
            return fail("fetch_max", r.error());
        }
    }
    auto id = next_id->fetch_add(1);
    if (!id) {
        return fail("fetch_add", id.error());
    }
    std::uint64_t expected = 0;
    auto first = ready->compare_exchange(expected, 1);
    if (!first) {
        return fail("compare_exchange", first.error());
    }
    std::printf("this process got id %llu%s\n", static_cast<unsigned long long>(*id),
                *first ? " and set 'ready'" : "; 'ready' was set already");
    auto cells = counters->list();
    if (!cells) {
        return fail("list", cells.error());
    }
    for (const auto& c : *cells) {
        std::printf("%-10s %llu\n", c.name.c_str(), static_cast<unsigned long long>(c.value));
    }
    return 0;
}
