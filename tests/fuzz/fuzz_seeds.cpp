// Writes the binary seed corpora of fuzz_wire and fuzz_segment: `fuzz_seeds DIR` writes
// DIR/fuzz_wire/<message>.bin (one encoded message of each type) and
// DIR/fuzz_segment/<channel>.bin (the control region of a fresh channel of each shape).
// Run it after a change of the protocol or of the layout, and commit what it wrote.
// The seeds of fuzz_config are YAML files written by hand.
#include "protocol/wire.hpp"

#include <shmbus/channel.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace shmbus;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", what.c_str());
    std::exit(1);
}

void write_file(const fs::path& path, std::span<const std::byte> bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) {
        fail("cannot write " + path.string());
    }
}

ChannelInfo sample_info() {
    ChannelInfo info;
    info.name = "sensors/imu";
    info.kind = ChannelKind::broadcast;
    info.overflow = Overflow::drop;
    info.slot_size = 256;
    info.slot_count = 64;
    info.max_publishers = 1;
    info.max_subscribers = 16;
    info.creation_id = 0x1234567890abcdefULL;
    info.control_bytes = 8192;
    info.payload_bytes = 24576;
    return info;
}

void write_wire_seeds(const fs::path& dir) {
    using namespace shmbus::proto;
    ChannelSpec spec;
    spec.name = "jobs";
    ChannelSummary summary{sample_info(), ChannelStats{}, true};
    summary.stats.published = 1000;
    EndpointDetail endpoint{Role::subscriber, 2, 7, 1234, 1000, "reader", 990, 3, 1};
    ClientSummary client{7, 1234, 1000, 1000, "reader", 2, 1764979200000};
    DaemonStatus status{"0.1.0",
                        42,
                        5000,
                        {"/etc/shmbusd/shmbusd.yaml"},
                        "/run/shmbusd/shmbusd.sock",
                        "/run/shmbusd",
                        3,
                        2,
                        65536,
                        1,
                        1};
    const std::vector<std::pair<std::string, Body>> messages = {
        {"hello", Hello{kProtocolMajor, kProtocolMinor, 1, "fuzz-seed"}},
        {"open", Open{"jobs", Role::publisher, 1}},
        {"close", Close{"jobs", Role::subscriber, 3}},
        {"create", Create{spec, kSpecKind | kSpecSlotSize}},
        {"list_channels", ListChannels{}},
        {"channel_info", ChannelInfoRequest{"jobs"}},
        {"list_clients", ListClients{}},
        {"reload", Reload{}},
        {"ping", Ping{99}},
        {"status", Status{}},
        {"reclaim_offer", ReclaimOffer{"jobs", 0x1234, Role::publisher, 0}},
        {"hello_reply", HelloReply{kProtocolMajor, kProtocolMinor, 1, 42, 7, "0.1.0"}},
        {"open_reply", OpenReply{sample_info(), 2}},
        {"channel_list", ChannelList{{summary, summary}}},
        {"channel_detail", ChannelDetail{summary, {endpoint, endpoint}}},
        {"client_list", ClientList{{client}}},
        {"pong", Pong{99}},
        {"status_reply", StatusReply{status}},
        {"ok", Ok{"reloaded: 1 channel added"}},
        {"error", ErrorReply{Errc::not_found, "no channel 'jobs'"}},
    };
    for (const auto& [name, body] : messages) {
        auto bytes = encode(proto::Message{17, body});
        if (!bytes) {
            fail("cannot encode " + name + ": " + bytes.error().message());
        }
        write_file(dir / (name + ".bin"), *bytes);
    }
}

void write_segment_seeds(const fs::path& dir) {
    struct Shape {
        const char* name;
        ChannelKind kind;
        Overflow overflow;
        std::uint32_t publishers;
        std::uint32_t subscribers;
    };
    const Shape shapes[] = {
        {"spsc-queue", ChannelKind::queue, Overflow::block, 1, 1},
        {"mpmc-queue", ChannelKind::queue, Overflow::block, 4, 4},
        {"broadcast-block", ChannelKind::broadcast, Overflow::block, 1, 8},
        {"broadcast-drop", ChannelKind::broadcast, Overflow::drop, 2, 8},
        {"pool", ChannelKind::pool, Overflow::block, 2, 8},
    };
    for (const Shape& shape : shapes) {
        ChannelSpec spec;
        spec.name = shape.name;
        spec.kind = shape.kind;
        spec.overflow = shape.overflow;
        spec.slot_size = 64;
        spec.slot_count = 16;
        spec.max_publishers = shape.publishers;
        spec.max_subscribers = shape.subscribers;
        auto files = create_channel(spec);
        if (!files) {
            fail("cannot create " + spec.name + ": " + files.error().message());
        }
        struct stat st {};
        if (fstat(files->control.get(), &st) != 0) {
            fail("cannot stat the control region of " + spec.name);
        }
        std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
        if (pread(files->control.get(), bytes.data(), bytes.size(), 0) != st.st_size) {
            fail("cannot read the control region of " + spec.name);
        }
        write_file(dir / (spec.name + ".bin"), bytes);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR (tests/fuzz/corpus)\n");
        return 2;
    }
    const fs::path root = argv[1];
    fs::create_directories(root / "fuzz_wire");
    fs::create_directories(root / "fuzz_segment");
    write_wire_seeds(root / "fuzz_wire");
    write_segment_seeds(root / "fuzz_segment");
    return 0;
}
