// shmbus-blackboard-example: a table of sensor readings that one process keeps current and
// any process reads, through a blackboard channel.
//
// Opens the blackboard as a writer and as a reader, then for `rounds` rounds writes one
// reading into every element (a struct: sensor id, round, value) and reads every element
// back. A reading read back is always one whole write, never half of one. Prints the table
// at the end. Exit 0 when every element holds the last round, 1 otherwise, with the
// library's error message on stderr.
//
// usage: shmbus-blackboard-example [--socket PATH] [--channel NAME] [--rounds N]
#include <shmbus/shmbus.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace {

/// One element of the table. Its size must not exceed the channel's element size.
struct Reading {
    std::uint64_t sensor;
    std::uint64_t round;
    double value;
};

int fail(const char* what, const shmbus::Error& error) {
    std::fprintf(stderr, "shmbus-blackboard-example: %s: %s\n", what, error.message().c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    shmbus::ClientOptions options;
    options.client_name = "blackboard-example";
    std::string channel = "board";
    long rounds = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string opt = argv[i];
        if (opt == "--socket") {
            options.socket_path = argv[i + 1];
        } else if (opt == "--channel") {
            channel = argv[i + 1];
        } else if (opt == "--rounds") {
            rounds = std::strtol(argv[i + 1], nullptr, 10);
        }
    }
    auto client = shmbus::Client::connect(options);
    if (!client) {
        return fail("connect", client.error());
    }
    auto writer = client->open_blackboard(channel, shmbus::Role::publisher);
    if (!writer) {
        return fail("open for writing", writer.error());
    }
    auto reader = client->open_blackboard(channel, shmbus::Role::subscriber);
    if (!reader) {
        return fail("open for reading", reader.error());
    }
    if (reader->element_size() < sizeof(Reading)) {
        std::fprintf(stderr,
                     "shmbus-blackboard-example: '%s' has %llu-byte elements; a "
                     "reading needs %zu\n",
                     channel.c_str(), static_cast<unsigned long long>(reader->element_size()),
                     sizeof(Reading));
        return 1;
    }
    std::vector<std::byte> element(reader->element_size());
    for (long round = 1; round <= rounds; ++round) {
        for (std::uint64_t sensor = 0; sensor < writer->size(); ++sensor) {
            const Reading r{sensor, static_cast<std::uint64_t>(round),
                            static_cast<double>(sensor) * 0.5 + static_cast<double>(round)};
            if (auto wrote = writer->write(sensor, std::as_bytes(std::span{&r, 1})); !wrote) {
                return fail("write", wrote.error());
            }
        }
    }
    std::printf("sensor  round      value  version\n");
    for (std::uint64_t sensor = 0; sensor < reader->size(); ++sensor) {
        auto version = reader->read(sensor, element);
        if (!version) {
            return fail("read", version.error());
        }
        Reading r;
        std::memcpy(&r, element.data(), sizeof r);
        std::printf("%6llu %6llu %10.1f %8llu\n", static_cast<unsigned long long>(r.sensor),
                    static_cast<unsigned long long>(r.round), r.value,
                    static_cast<unsigned long long>(*version));
        if (r.sensor != sensor || r.round != static_cast<std::uint64_t>(rounds)) {
            std::fprintf(stderr,
                         "shmbus-blackboard-example: element %llu holds sensor %llu "
                         "round %llu\n",
                         static_cast<unsigned long long>(sensor),
                         static_cast<unsigned long long>(r.sensor),
                         static_cast<unsigned long long>(r.round));
            return 1;
        }
    }
    return 0;
}
