// Calibrations: see calibration.hpp.
//
// The futex word protocol: 0 = the ponger's turn to wait, 1 = a ping is pending,
// 2 = stop. The pinger stores 1 and wakes; the ponger, woken, stores 0 and wakes; each
// re-checks the word before sleeping, so a wake that comes first is never missed. The word
// is shared between processes, so the futex calls are not FUTEX_PRIVATE.

#include "calibration.hpp"

#include "patterns.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace bench {
namespace {

constexpr std::size_t kWarmup = 200;

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
        // Warm-up: the first ping-pongs, or the first quarter of a run of slow ones (as in
        // the transports' pinger), so that a loaded machine still yields samples.
        const bool warm = i >= kWarmup || t1 - r.t_start_ns >= settings.duration.count() / 4;
        if (warm && r.samples.size() < settings.max_samples) {
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

// --- line round trip ------------------------------------------------------------------------

constexpr std::uint64_t kLineStop = ~std::uint64_t{0};
constexpr std::uint64_t kLineBatch = 2000; // round trips per batch: 0.1-1 ms
constexpr std::size_t kLineBatches = 5;    // after one warm-up batch
// The probe's whole budget. On cores shared with other work a round trip can take a
// scheduler slice; the probe then gives up (fewer samples, or none) instead of holding
// the run up.
constexpr std::int64_t kLineBudgetNs = 50'000'000;

/// Stores the odd counts and waits for the even ones; a sample is one batch's mean trip.
Report line_pinger(std::atomic<std::uint64_t>& line, StartGate& gate) {
    Report r;
    r.role = Report::Role::pinger;
    gate.wait();
    const std::int64_t deadline = now_ns() + kLineBudgetNs;
    std::uint64_t count = 0;
    bool in_time = true;
    for (std::size_t b = 0; b <= kLineBatches && in_time; ++b) {
        const std::int64_t t0 = now_ns();
        for (std::uint64_t i = 0; i < kLineBatch && in_time; ++i) {
            line.store(++count, std::memory_order_release); // pairs with the ponger's load
            const std::uint64_t want = ++count;
            while (line.load(std::memory_order_acquire) != want) { // the ponger's store
            }
            in_time = i % 64 != 63 || now_ns() < deadline;
        }
        const std::int64_t t1 = now_ns();
        if (b > 0 && in_time) {
            r.samples.push_back(static_cast<std::uint32_t>(std::clamp<std::int64_t>(
                (t1 - t0) / static_cast<std::int64_t>(kLineBatch), 0, std::int64_t{UINT32_MAX})));
        }
    }
    line.store(kLineStop, std::memory_order_release);
    return r;
}

Report line_ponger(std::atomic<std::uint64_t>& line, StartGate& gate) {
    Report r;
    r.role = Report::Role::ponger;
    gate.wait();
    for (std::uint64_t seen = 0;;) {
        std::uint64_t v = 0;
        while ((v = line.load(std::memory_order_acquire)) == seen) { // the pinger's store
        }
        if (v == kLineStop) {
            break;
        }
        seen = v + 1;
        line.store(seen, std::memory_order_release); // pairs with the pinger's load
    }
    return r;
}

// --- raw ring ------------------------------------------------------------------------------

constexpr std::size_t kLine = 64;

/// The ring's indices, each on its own cache line so that the two sides never share one.
struct RawRingIndices {
    alignas(kLine) std::atomic<std::uint64_t> head{0}; // next slot to publish; writer only
    alignas(kLine) std::atomic<std::uint64_t> tail{0}; // next slot to free; reader only
};

/// A MAP_SHARED anonymous mapping holding one ring; inherited by forked children.
class RawRing {
public:
    RawRing(std::uint64_t slot_size, std::uint64_t slots)
        : stride_{(slot_size + sizeof(std::uint64_t) + kLine - 1) / kLine * kLine}, slots_{slots},
          bytes_{sizeof(RawRingIndices) + stride_ * slots} {
        void* p =
            ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            base_ = static_cast<std::byte*>(p);
            new (base_) RawRingIndices{};
        }
    }
    RawRing(const RawRing&) = delete;
    RawRing& operator=(const RawRing&) = delete;
    ~RawRing() {
        if (base_ != nullptr) {
            ::munmap(base_, bytes_);
        }
    }
    [[nodiscard]] bool valid() const { return base_ != nullptr; }
    [[nodiscard]] RawRingIndices& indices() const {
        return *reinterpret_cast<RawRingIndices*>(base_);
    }
    /// Slot of sequence `seq`: an 8-byte length, then the message.
    [[nodiscard]] std::byte* slot(std::uint64_t seq) const {
        return base_ + sizeof(RawRingIndices) + (seq % slots_) * stride_;
    }
    [[nodiscard]] std::uint64_t slots() const { return slots_; }

private:
    std::uint64_t stride_;
    std::uint64_t slots_;
    std::size_t bytes_;
    std::byte* base_{nullptr};
};

class RawWriter {
public:
    RawWriter(const RawRing& ring, std::uint64_t size) : ring_{ring}, size_{size} {}
    std::size_t acquire(std::size_t n) {
        RawRingIndices& ix = ring_.indices();
        while (head_ - cached_tail_ >= ring_.slots()) {
            cached_tail_ = ix.tail.load(std::memory_order_acquire); // pairs with release()
        }
        count_ = std::min<std::uint64_t>(n, ring_.slots() - (head_ - cached_tail_));
        return count_;
    }
    std::span<std::byte> slot(std::size_t i) {
        return {ring_.slot(head_ + i) + sizeof(std::uint64_t), size_};
    }
    void set_length(std::size_t i, std::uint64_t len) {
        std::memcpy(ring_.slot(head_ + i), &len, sizeof len);
    }
    bool publish() {
        head_ += count_;
        ring_.indices().head.store(head_, std::memory_order_release); // pairs with take()
        return true;
    }
    const std::string& error() const { return error_; }

private:
    const RawRing& ring_;
    std::uint64_t size_;
    std::uint64_t head_{0};
    std::uint64_t cached_tail_{0};
    std::size_t count_{0};
    std::string error_;
};

class RawReader {
public:
    explicit RawReader(const RawRing& ring) : ring_{ring} {}
    std::size_t take(std::size_t n) {
        if (cached_head_ == tail_) {
            // pairs with publish()'s release store
            cached_head_ = ring_.indices().head.load(std::memory_order_acquire);
        }
        count_ = std::min<std::uint64_t>(n, cached_head_ - tail_);
        return count_;
    }
    bool failed() const { return false; }
    std::span<const std::byte> message(std::size_t i) const {
        const std::byte* s = ring_.slot(tail_ + i);
        std::uint64_t len = 0;
        std::memcpy(&len, s, sizeof len);
        return {s + sizeof len, static_cast<std::size_t>(len)};
    }
    Released release() {
        tail_ += count_;
        ring_.indices().tail.store(tail_, std::memory_order_release); // pairs with acquire()
        return Released::ok;
    }
    const std::string& error() const { return error_; }

private:
    const RawRing& ring_;
    std::uint64_t tail_{0};
    std::uint64_t cached_head_{0};
    std::size_t count_{0};
    std::string error_;
};

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

std::optional<double> measure_line_rtt(const RunSettings& settings) {
    if (!settings.pin || usable_cpus().size() < 2) {
        return std::nullopt;
    }
    SharedBoard board;
    if (!board.valid()) {
        return std::nullopt;
    }
    std::atomic<std::uint64_t>& line = board.get().line;
    Team team{true};
    std::vector<Report> reports;
    if (!team.spawn([&](StartGate& gate) { return line_pinger(line, gate); }).empty() ||
        !team.spawn([&](StartGate& gate) { return line_ponger(line, gate); }).empty() ||
        !team.run(std::chrono::seconds{5}, reports).empty() || reports.empty() ||
        reports[0].samples.empty()) {
        return std::nullopt;
    }
    std::vector<std::uint32_t>& v = reports[0].samples;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return static_cast<double>(v[v.size() / 2]);
}

std::string run_raw_ring(const Scenario& s, const RunSettings& settings,
                         std::vector<Report>& reports) {
    SharedBoard board;
    // The same geometry as the shmbus SPSC queue in each test (see shmbus_transport.cpp).
    const auto slots_for = [&](std::uint64_t ring_bytes, std::uint64_t lo, std::uint64_t hi) {
        return std::bit_floor(std::clamp<std::uint64_t>(ring_bytes / s.msg_size, lo, hi));
    };
    std::uint64_t slots = std::max<std::uint64_t>(1024, 16ULL * s.batch);
    if (s.test == Test::latency) {
        slots = slots_for(4ULL << 20, 4, 64);
    } else if (s.test == Test::bandwidth) {
        slots = slots_for(2ULL << 20, 4, 1024);
    }
    const RawRing forward{s.msg_size, slots};
    const RawRing backward{s.msg_size, s.test == Test::latency ? slots : 1};
    if (!board.valid() || !forward.valid() || !backward.valid()) {
        return std::string{"mmap: "} + std::strerror(errno);
    }
    const PatternParams p = make_params(s, settings, board.get());
    const auto ring = [&](Direction d) -> const RawRing& {
        return d == Direction::forward ? forward : backward;
    };
    return run_one_to_one(
        s, settings, p,
        [&](Direction d) {
            return RawWriter{ring(d), s.msg_size};
        },
        [&](Direction d) { return RawReader{ring(d)}; }, reports);
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
