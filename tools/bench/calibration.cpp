// Calibrations: see calibration.hpp.
//
// The futex word protocol: 0 = the ponger's turn to wait, 1 = a ping is pending,
// 2 = stop. The pinger stores 1 and wakes; the ponger, woken, stores 0 and wakes; each
// re-checks the word before sleeping, so a wake that comes first is never missed. The word
// is shared between processes, so the futex calls are not FUTEX_PRIVATE.

#include "calibration.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bench {
namespace {

constexpr std::size_t kWarmup = 200;

std::uint32_t* word_of(std::atomic<std::uint32_t>& a) {
    // std::atomic<uint32_t> is lock-free and laid out as the integer (asserted in team.hpp).
    return reinterpret_cast<std::uint32_t*>(&a);
}

void futex_wait(std::atomic<std::uint32_t>& a, std::uint32_t expected) {
    ::syscall(SYS_futex, word_of(a), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>& a) {
    ::syscall(SYS_futex, word_of(a), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

Report futex_pinger(std::atomic<std::uint32_t>& word, StartGate& gate,
                    const RunSettings& settings) {
    Report r;
    r.role = Report::Role::pinger;
    r.samples.reserve(std::min<std::size_t>(settings.max_samples, 1U << 20));
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + settings.duration.count();
    for (std::size_t i = 0;; ++i) {
        const std::int64_t t0 = now_ns();
        word.store(1, std::memory_order_release); // pairs with the ponger's acquire load
        futex_wake(word);
        while (word.load(std::memory_order_acquire) == 1) { // pairs with the ponger's store
            futex_wait(word, 1);
        }
        const std::int64_t t1 = now_ns();
        ++r.messages;
        if (i >= kWarmup && r.samples.size() < settings.max_samples) {
            r.samples.push_back(static_cast<std::uint32_t>(
                std::clamp<std::int64_t>((t1 - t0) / 2, 0, std::int64_t{UINT32_MAX})));
        }
        if (t1 >= deadline || r.samples.size() >= settings.max_samples) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    word.store(2, std::memory_order_release); // stop; pairs with the ponger's acquire load
    futex_wake(word);
    return r;
}

Report futex_ponger(std::atomic<std::uint32_t>& word, StartGate& gate) {
    Report r;
    r.role = Report::Role::ponger;
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    for (;;) {
        std::uint32_t v = 0;
        while ((v = word.load(std::memory_order_acquire)) == 0) { // pairs with the pinger
            futex_wait(word, 0);
        }
        if (v == 2) {
            break;
        }
        word.store(0, std::memory_order_release); // the pong; pairs with the pinger's load
        futex_wake(word);
        ++r.messages;
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

Report memcpy_loop(std::uint64_t size, StartGate& gate, const RunSettings& settings) {
    Report r;
    r.role = Report::Role::solo;
    std::vector<std::byte> src(size, std::byte{0x5a});
    std::vector<std::byte> dst(size, std::byte{0});
    gate.wait();
    const std::int64_t cpu0 = cpu_time_ns();
    r.t_start_ns = now_ns();
    const std::int64_t deadline = r.t_start_ns + settings.duration.count();
    for (;;) {
        std::memcpy(dst.data(), src.data(), size);
        // The copy must happen although nothing reads dst: tell the compiler memory is used.
        asm volatile("" : : "r"(dst.data()) : "memory");
        ++r.messages;
        if (now_ns() >= deadline) {
            break;
        }
    }
    r.t_end_ns = now_ns();
    r.cpu_ns = cpu_time_ns() - cpu0;
    return r;
}

} // namespace

std::string run_futex_raw(const Scenario&, const RunSettings& settings,
                          std::vector<Report>& reports) {
    SharedBoard board;
    if (!board.valid()) {
        return std::string{"mmap: "} + std::strerror(errno);
    }
    std::atomic<std::uint32_t>& word = board.get().futex_word;
    Team team{settings.pin};
    std::string error =
        team.spawn([&](StartGate& gate) { return futex_pinger(word, gate, settings); });
    if (error.empty()) {
        error = team.spawn([&](StartGate& gate) { return futex_ponger(word, gate); });
    }
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{20}, reports);
}

std::string run_memcpy(const Scenario& s, const RunSettings& settings,
                       std::vector<Report>& reports) {
    Team team{settings.pin};
    std::string error =
        team.spawn([&](StartGate& gate) { return memcpy_loop(s.msg_size, gate, settings); });
    if (!error.empty()) {
        return error;
    }
    return team.run(settings.duration + std::chrono::seconds{20}, reports);
}

} // namespace bench
