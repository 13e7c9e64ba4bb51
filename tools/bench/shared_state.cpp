// blackboard-read and local-read: see shared_state.hpp.
#include "shared_state.hpp"

#include "patterns.hpp"

#include <shmbus/shmbus.hpp>

#include <cstring>
#include <vector>

#include <unistd.h>

namespace bench {

namespace {

constexpr std::uint64_t kReadsPerClockCheck = 4096;

/// Reads `read()` in a loop until the run's duration has passed; one Report.
template <typename Read>
Report read_loop(StartGate& gate, const RunSettings& settings, Read&& read) {
    Report r;
    r.role = Report::Role::solo;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + settings.duration.count();
    for (;;) {
        for (std::uint64_t i = 0; i < kReadsPerClockCheck; ++i) {
            if (!read()) {
                r.error = "a read failed";
                return r;
            }
        }
        r.messages += kReadsPerClockCheck;
        if (now_ns() >= deadline) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

Report blackboard_reader(std::uint64_t size, StartGate& gate, const RunSettings& settings) {
    shmbus::ChannelSpec spec;
    spec.name = "bench-board-" + std::to_string(::getpid());
    spec.kind = shmbus::ChannelKind::blackboard;
    spec.slot_size = size;
    spec.slot_count = 1;
    auto files = shmbus::create_channel(spec);
    Report failed;
    failed.role = Report::Role::solo;
    if (!files) {
        failed.error = files.error().message();
        return failed;
    }
    auto writer = shmbus::Blackboard::attach(*files->duplicate_for(shmbus::Role::publisher),
                                             shmbus::Role::publisher);
    auto reader = shmbus::Blackboard::attach(*files->duplicate_for(shmbus::Role::subscriber),
                                             shmbus::Role::subscriber);
    if (!writer || !reader) {
        failed.error = (!writer ? writer.error() : reader.error()).message();
        return failed;
    }
    std::vector<std::byte> data(size, std::byte{0x5a});
    if (auto w = writer->write(0, data); !w) {
        failed.error = w.error().message();
        return failed;
    }
    std::vector<std::byte> out(size);
    return read_loop(gate, settings, [&] {
        const bool good = reader->read(0, out).has_value();
        asm volatile("" : : "r"(out.data()) : "memory"); // the copy is used
        return good;
    });
}

Report local_reader(std::uint64_t size, StartGate& gate, const RunSettings& settings) {
    std::vector<std::byte> src(size, std::byte{0x5a});
    std::vector<std::byte> out(size);
    return read_loop(gate, settings, [&] {
        std::memcpy(out.data(), src.data(), size);
        asm volatile("" : : "r"(out.data()), "r"(src.data()) : "memory"); // copied, each time
        return true;
    });
}

} // namespace

std::string run_shared_state_read(const Scenario& s, const RunSettings& settings,
                                  std::vector<Report>& reports) {
    Team team{settings.pin};
    std::string error = team.spawn([&](StartGate& gate) {
        return s.transport == Transport::blackboard_read
                   ? blackboard_reader(s.msg_size, gate, settings)
                   : local_reader(s.msg_size, gate, settings);
    });
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{20}, reports);
}

} // namespace bench
