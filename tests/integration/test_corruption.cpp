// Damaged segments. Every process that maps a channel may write its control region, and a
// publisher its payload: a buggy or hostile one can damage a channel, but must never make
// another process crash, hang, or read outside the mapping (DESIGN.md, "Never trust shared
// memory").
//
//  1. Each field of both regions' headers is scribbled over, one at a time, with garbage
//     and with plausible values; inspect_channel() and every attach must refuse the channel
//     with Errc::corrupted (Errc::version_mismatch for the layout version) naming the field.
//  2. A live channel of each shape gets random values written over its cursors, futex
//     words, counters, endpoint tables, claim states, publish index and slot headers
//     (lengths, states), between rounds of traffic; after each scribble every reader call,
//     and the writer and supervisor calls too, must return a value or a clear error. Each
//     shape runs in a forked child, so a crash is reported (with the seed and the call that
//     crashed) instead of taking the test runner down, and a hang is caught by the parent's
//     deadline. Every message span a reader is handed is checked against the mapping.
//
// "Never reads outside the mapping" has teeth here: this test binary interposes mmap() and
// munmap() (see below) so that every shared file mapping — the library's as much as the
// test's — sits between two PROT_NONE guard pages, and a read one byte past either end
// faults. Under ASan (the CI sanitizer run) the rest of memory is checked as well.
//
// The PRNG is seeded from SHMBUS_TEST_SEED if set, else at random; the seed is printed.
#include "process.hpp"
#include "test_support.hpp"
#include "traffic.hpp"

#include "shm/atomics.hpp"
#include "shm/layout.hpp"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <new>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
namespace sd = shmbus::detail;

// ---- Guard pages around every shared file mapping of this process ----
//
// The executable's definitions of mmap and munmap take precedence over libc's for every
// library loaded with it, libshmbus included. A MAP_SHARED mapping of a file at an address
// of the kernel's choosing is placed inside a PROT_NONE reservation one page larger on each
// side; munmap() of such a mapping releases the guards too. Everything else goes straight
// to the system calls. The tests here are single-threaded, so the table needs no lock.
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kMaxGuarded = 1024;

struct GuardedMapping {
    std::uintptr_t start;
    std::size_t length; // rounded up to whole pages, guards excluded
};
GuardedMapping g_guarded[kMaxGuarded];
std::size_t g_guarded_count = 0;

void* raw_mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
    return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}

} // namespace

extern "C" void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
    if (addr != nullptr || fd < 0 || (flags & MAP_SHARED) == 0 || len == 0 ||
        g_guarded_count == kMaxGuarded) {
        return raw_mmap(addr, len, prot, flags, fd, off);
    }
    const std::size_t rounded = (len + kPage - 1) / kPage * kPage;
    void* base = raw_mmap(nullptr, rounded + 2 * kPage, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        return base;
    }
    void* p =
        raw_mmap(static_cast<std::byte*>(base) + kPage, len, prot, flags | MAP_FIXED, fd, off);
    if (p == MAP_FAILED) {
        const int err = errno;
        syscall(SYS_munmap, base, rounded + 2 * kPage);
        errno = err;
        return p;
    }
    g_guarded[g_guarded_count++] = {reinterpret_cast<std::uintptr_t>(p), rounded};
    return p;
}

extern "C" int munmap(void* addr, std::size_t len) {
    const auto a = reinterpret_cast<std::uintptr_t>(addr);
    for (std::size_t i = 0; i < g_guarded_count; ++i) {
        if (g_guarded[i].start == a) {
            const std::size_t whole = g_guarded[i].length + 2 * kPage;
            g_guarded[i] = g_guarded[--g_guarded_count];
            return static_cast<int>(syscall(SYS_munmap, a - kPage, whole));
        }
    }
    return static_cast<int>(syscall(SYS_munmap, addr, len));
}

namespace {

constexpr std::uint64_t kSlotSize = 48;
constexpr std::uint64_t kSlotCount = 16;

/// The shapes every test here runs on: each algorithm of the data path.
struct Shape {
    const char* what;
    ChannelKind kind;
    Overflow overflow;
    std::uint32_t publishers;
    std::uint32_t subscribers;
};
constexpr Shape kShapes[] = {
    {"SPSC queue", ChannelKind::queue, Overflow::block, 1, 1},
    {"MPMC queue", ChannelKind::queue, Overflow::block, 2, 2},
    {"block broadcast", ChannelKind::broadcast, Overflow::block, 2, 2},
    {"drop broadcast", ChannelKind::broadcast, Overflow::drop, 1, 2},
};
/// The shared-state kinds: their headers are checked as strictly (their state words are
/// scribbled in test_blackboard, test_counters and test_pool).
constexpr Shape kStateShapes[] = {
    {"blackboard", ChannelKind::blackboard, Overflow::block, 2, 2},
    {"counters", ChannelKind::counters, Overflow::block, 2, 2},
    {"pool", ChannelKind::pool, Overflow::block, 2, 2},
};

ChannelSpec spec_of(const Shape& shape, const std::string& stem) {
    return spec(stem, shape.kind, kSlotSize, kSlotCount, shape.publishers, shape.subscribers,
                shape.overflow);
}

sd::Geometry geometry_of(const Shape& shape) {
    sd::Geometry g{kSlotSize,
                   kSlotCount,
                   sd::Geometry::stride_for(kSlotSize),
                   shape.publishers,
                   shape.subscribers,
                   shape.kind == ChannelKind::queue &&
                       !sd::is_spsc(shape.kind, shape.publishers, shape.subscribers)};
    if (shape.kind == ChannelKind::pool) {
        g.pool = true;
        g.stride = sd::Geometry::pool_stride_for(kSlotSize);
    }
    return g;
}

/// A writable mapping of one region, as a scribbling process would make it.
class Scribbler {
public:
    Scribbler(int fd, std::size_t size) : size_{size} {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        REQUIRE(p != MAP_FAILED);
        base_ = static_cast<std::byte*>(p);
    }
    Scribbler(const Scribbler&) = delete;
    Scribbler& operator=(const Scribbler&) = delete;
    ~Scribbler() { ::munmap(base_, size_); }

    template <typename T>
    T read(std::size_t offset) const {
        T v;
        std::memcpy(&v, base_ + offset, sizeof v);
        return v;
    }
    template <typename T>
    void write(std::size_t offset, T v) {
        std::memcpy(base_ + offset, &v, sizeof v);
    }
    [[nodiscard]] std::byte* at(std::size_t offset) const { return base_ + offset; }

private:
    std::byte* base_{nullptr};
    std::size_t size_{0};
};

// ---- 1. Header fields ----

struct HeaderField {
    const char* name;   ///< as the error names it
    std::size_t offset; ///< in RegionHeader
    std::size_t size;   ///< 4 or 8
    const char* needle; ///< what the error detail must contain
};

#define SHMBUS_FIELD(f, needle)                                                                    \
    HeaderField {                                                                                  \
#f, offsetof(sd::RegionHeader, f), sizeof(sd::RegionHeader::f), needle                     \
    }

const std::vector<HeaderField>& header_fields() {
    static const std::vector<HeaderField> fields{
        SHMBUS_FIELD(magic, "magic"),
        SHMBUS_FIELD(layout_version, "layout version"),
        SHMBUS_FIELD(region_type, "region_type"),
        SHMBUS_FIELD(kind, "kind"),
        SHMBUS_FIELD(overflow, "overflow"),
        SHMBUS_FIELD(max_publishers, "max_publishers"),
        SHMBUS_FIELD(max_subscribers, "max_subscribers"),
        SHMBUS_FIELD(slot_size, "slot_size"),
        SHMBUS_FIELD(slot_count, "slot_count"),
        SHMBUS_FIELD(slot_stride, "slot_stride"),
        SHMBUS_FIELD(control_bytes, "control_bytes"),
        SHMBUS_FIELD(payload_bytes, "payload_bytes"),
        SHMBUS_FIELD(creation_id, "creation_id"),
    };
    return fields;
}

#undef SHMBUS_FIELD

/// Values to scribble over a field that holds `original`: garbage, and plausible values
/// (neighbours, the other region's or the other kind's value) that only cross-checks catch.
std::vector<std::uint64_t> scribbles_for(const HeaderField& f, std::uint64_t original,
                                         std::mt19937_64& rng) {
    const std::string n = f.name;
    std::vector<std::uint64_t> v{0, original + 1, original ^ 0xFFFFFFFFu, rng()};
    if (n == "magic") {
        v.push_back(original == sd::kControlMagic ? sd::kPayloadMagic : sd::kControlMagic);
    } else if (n == "region_type") {
        v.push_back(original == 1 ? 2 : 1);
    } else if (n == "kind") {
        v.push_back(original == 1 ? 2 : 1);
    } else if (n == "overflow") {
        v.push_back(original == 0 ? 1 : 0);
    } else if (n == "slot_size") {
        v.push_back(original * 2);
        v.push_back(kMaxSlotSize + 1);
    } else if (n == "slot_count") {
        v.push_back(original * 2);
        v.push_back(original - 1);
        v.push_back(kMaxSlotCount * 2);
    } else if (n == "slot_stride" || n == "control_bytes" || n == "payload_bytes") {
        v.push_back(original + 4096);
        v.push_back(original - 16);
    } else if (n == "max_publishers" || n == "max_subscribers") {
        v.push_back(original + 100);
        v.push_back(kMaxEndpoints + 1);
    }
    if (f.size == 4) {
        for (auto& x : v) {
            x &= 0xFFFFFFFFu;
        }
    }
    std::vector<std::uint64_t> out;
    for (auto x : v) {
        if (x != original) {
            out.push_back(x);
        }
    }
    return out;
}

/// Every way of opening the channel must refuse it; returns the errors, labelled.
std::vector<std::pair<std::string, Result<void>>> open_every_way(const ChannelFiles& files) {
    std::vector<std::pair<std::string, Result<void>>> out;
    auto as_void = [](auto&& r) -> Result<void> {
        if (r) {
            return ok();
        }
        return r.take_error();
    };
    out.emplace_back("inspect_channel", as_void(inspect_channel(files)));
    out.emplace_back("read_stats", as_void(read_stats(files)));
    out.emplace_back("Subscriber::attach",
                     as_void(Subscriber::attach(*files.duplicate_for(Role::subscriber))));
    out.emplace_back("Publisher::attach",
                     as_void(Publisher::attach(*files.duplicate_for(Role::publisher))));
    out.emplace_back("ChannelSupervisor::attach",
                     as_void(ChannelSupervisor::attach(*files.duplicate_for(Role::publisher))));
    out.emplace_back(
        "Blackboard::attach",
        as_void(Blackboard::attach(*files.duplicate_for(Role::subscriber), Role::subscriber)));
    out.emplace_back(
        "Counters::attach",
        as_void(Counters::attach(*files.duplicate_for(Role::subscriber), Role::subscriber)));
    out.emplace_back("Pool::attach", as_void(Pool::attach(*files.duplicate_for(Role::subscriber),
                                                          Role::subscriber)));
    return out;
}

void check_refused(const ChannelFiles& files, Errc code, const std::string& needle) {
    for (auto& [how, r] : open_every_way(files)) {
        INFO(how);
        REQUIRE_FALSE(r);
        INFO(r.error().message());
        CHECK(r.error().code == code);
        CHECK(r.error().detail.find(needle) != std::string::npos);
    }
}

// ---- 2. Live scribbles ----

/// Shared with the parent, so that it can say what a child was doing when it died or hung.
struct Progress {
    std::atomic<std::uint64_t> calls; // calls started: the parent's sign of life
    std::uint64_t iteration;
    char call[64];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free); // shared between processes

/// No single call may take this long (it would have to be stuck).
constexpr std::chrono::seconds kCallLimit{60};

/// Address ranges of this process's mappings of the payload region of `channel`.
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> payload_ranges(const std::string& channel) {
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> out;
    std::ifstream maps("/proc/self/maps");
    const std::string needle = "shmbus:" + channel + ":payload";
    std::string line;
    while (std::getline(maps, line)) {
        if (line.find(needle) == std::string::npos) {
            continue;
        }
        std::uintptr_t lo = 0;
        std::uintptr_t hi = 0;
        if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2) {
            out.emplace_back(lo, hi);
        }
    }
    return out;
}

/// The body of one scribbling child: epochs of kEpoch iterations, each on a fresh channel
/// (damage accumulates within an epoch, and a fresh start keeps every code path in reach).
/// Returns 0 if every call behaved.
class LiveScribble {
public:
    LiveScribble(const Shape& shape, std::uint64_t seed, std::uint64_t iterations,
                 Progress* progress)
        : shape_{shape}, geo_{geometry_of(shape)}, rng_{seed},
          iterations_{iterations}, progress_{progress} {}

    int run() {
        for (std::uint64_t it = 0; it < iterations_;) {
            if (const int rc = epoch(it); rc != 0) {
                return rc;
            }
        }
        if (failures_ != 0) {
            return child_failure(std::to_string(failures_) + " calls misbehaved");
        }
        std::printf("%s: %" PRIu64 " scribbles, %" PRIu64 " calls, %" PRIu64
                    " of them reported corruption, %" PRIu64 " messages handed out\n",
                    shape_.what, scribbles_, calls_, corrupted_, messages_);
        return 0;
    }

private:
    static constexpr std::uint64_t kEpoch = 64;

    int epoch(std::uint64_t& it) {
        const ChannelSpec spec = spec_of(shape_, "live");
        auto files = create_channel(spec);
        if (!files) {
            return child_failure("create_channel: " + files.error().message());
        }
        files_ = &*files;
        Scribbler control(files->control.get(), geo_.control_bytes());
        Scribbler payload(files->payload.get(), geo_.payload_bytes());
        control_ = &control;
        payload_ = &payload;
        for (std::uint32_t i = 0; i < shape_.publishers; ++i) {
            auto p = Publisher::attach(*files->duplicate_for(Role::publisher));
            if (!p) {
                return child_failure("Publisher::attach before scribbling: " + p.error().message());
            }
            pubs_.push_back(std::move(*p));
        }
        for (std::uint32_t i = 0; i < shape_.subscribers; ++i) {
            auto s = Subscriber::attach(*files->duplicate_for(Role::subscriber));
            if (!s) {
                return child_failure("Subscriber::attach before scribbling: " +
                                     s.error().message());
            }
            subs_.push_back(std::move(*s));
        }
        auto sup = ChannelSupervisor::attach(*files->duplicate_for(Role::publisher));
        if (!sup) {
            return child_failure("ChannelSupervisor::attach: " + sup.error().message());
        }
        name_ = spec.name;
        ranges_ = payload_ranges(name_);
        if (ranges_.empty()) {
            return child_failure("cannot find the payload mappings in /proc/self/maps");
        }
        for (const std::uint64_t end = std::min(it + kEpoch, iterations_); it < end; ++it) {
            progress_->iteration = it;
            traffic();
            const int scribbles = 1 + static_cast<int>(rng_() % 3);
            for (int k = 0; k < scribbles; ++k) {
                scribble();
            }
            for (auto& s : subs_) {
                read_every_way(s, it);
            }
            supervise(*sup);
            if (it % 16 == 15) {
                reattach();
            }
        }
        subs_.clear();
        pubs_.clear();
        control_ = nullptr;
        payload_ = nullptr;
        files_ = nullptr;
        return 0;
    }

    /// The supervisor reads the damaged channel, and now and then reclaims an entry (maybe
    /// one of ours, maybe one past the table).
    void supervise(ChannelSupervisor& sup) {
        doing("ChannelSupervisor::stats/endpoints");
        (void)sup.stats();
        (void)sup.endpoints();
        if (rng_() % 8 != 0) {
            return;
        }
        const bool publisher = rng_() % 2 == 0;
        const auto count = publisher ? shape_.publishers : shape_.subscribers;
        const auto index = static_cast<std::uint32_t>(rng_() % (count + 1));
        doing(publisher ? "ChannelSupervisor::reclaim_publisher"
                        : "ChannelSupervisor::reclaim_subscriber");
        auto r = publisher ? sup.reclaim_publisher(index) : sup.reclaim_subscriber(index);
        if (!r) {
            expect_clear("reclaim", r.error(), {Errc::not_found, Errc::invalid_argument});
        }
    }

private:
    void doing(const char* call) {
        std::snprintf(progress_->call, sizeof progress_->call, "%s", call);
        progress_->calls.fetch_add(1, std::memory_order_release); // pairs with the parent's load
        ++calls_;
    }

    void misbehaved(const std::string& what) {
        if (++failures_ <= 10) {
            std::fprintf(stderr, "%s, iteration %" PRIu64 ": %s\n", shape_.what,
                         progress_->iteration, what.c_str());
        }
    }

    /// An error result must carry a code the call documents, and a detail when it is about
    /// damage.
    void expect_clear(const char* call, const Error& e, std::initializer_list<Errc> allowed) {
        bool fine = false;
        for (Errc a : allowed) {
            fine |= e.code == a;
        }
        if (!fine) {
            misbehaved(std::string(call) + " returned " + e.message());
        }
        if (e.code == Errc::corrupted) {
            ++corrupted_;
            if (e.detail.empty()) {
                misbehaved(std::string(call) + " reported corruption without saying what");
            }
        }
    }

    void check_span(const char* call, std::span<const std::byte> data) {
        ++messages_;
        if (data.size() > kSlotSize) {
            misbehaved(std::string(call) + " handed out " + std::to_string(data.size()) +
                       " bytes, more than the slot size");
        }
        const auto lo = reinterpret_cast<std::uintptr_t>(data.data());
        const auto hi = lo + data.size();
        for (const auto& [a, b] : ranges_) {
            if (lo >= a && hi <= b) {
                // Touch every byte: a span that lied about its mapping would fault here.
                volatile std::uint8_t sink = 0;
                for (std::byte x : data) {
                    sink = sink ^ static_cast<std::uint8_t>(x);
                }
                (void)sink;
                return;
            }
        }
        misbehaved(std::string(call) + " handed out a span outside the payload mapping");
    }

    void traffic() {
        std::vector<std::byte> buf(kSlotSize);
        for (auto& p : pubs_) {
            const std::size_t len = rng_() % (kSlotSize + 1);
            doing("Publisher::try_send");
            if (auto r = p.try_send({buf.data(), len}); !r) {
                expect_clear("try_send", r.error(),
                             {Errc::would_block, Errc::corrupted, Errc::closed});
            }
            doing("Publisher::try_reserve");
            auto b = p.try_reserve(1 + rng_() % 4);
            if (!b) {
                expect_clear("try_reserve", b.error(),
                             {Errc::would_block, Errc::corrupted, Errc::closed});
                continue;
            }
            for (std::size_t i = 0; i < b->size(); ++i) {
                write_message(b->data(i), 0, i, kSlotSize);
                b->set_length(i, kWireHeaderSize + rng_() % (kSlotSize - kWireHeaderSize + 1));
            }
            if (rng_() % 4 == 0) {
                doing("Publisher::abandon");
                p.abandon(*b);
            } else {
                doing("Publisher::commit");
                if (auto r = p.commit(*b); !r) {
                    expect_clear("commit", r.error(), {Errc::corrupted, Errc::closed});
                }
            }
            if (rng_() % 16 == 0) {
                doing("Publisher::send (100 us)");
                if (auto r = p.send({buf.data(), len}, std::chrono::microseconds(100)); !r) {
                    expect_clear("send", r.error(),
                                 {Errc::timed_out, Errc::corrupted, Errc::closed});
                }
            }
        }
    }

    void read_every_way(Subscriber& s, std::uint64_t it) {
        std::vector<std::byte> buf(kSlotSize);
        const std::size_t want = 1 + rng_() % 8;
        doing("Subscriber::try_receive");
        if (auto b = s.try_receive(want); b) {
            if (b->size() == 0 || b->size() > want) {
                misbehaved("try_receive returned a batch of " + std::to_string(b->size()) +
                           " for at most " + std::to_string(want));
            }
            for (std::size_t i = 0; i < b->size(); ++i) {
                check_span("try_receive", b->message(i).data);
            }
            doing("Subscriber::release");
            if (auto r = s.release(*b); !r) {
                expect_clear("release", r.error(), {Errc::lost, Errc::corrupted});
            }
        } else {
            expect_clear("try_receive", b.error(), {Errc::would_block, Errc::corrupted});
        }
        doing("Subscriber::try_receive_copy");
        if (auto r = s.try_receive_copy(buf); r) {
            if (r->size > buf.size()) {
                misbehaved("try_receive_copy reported more bytes than its buffer holds");
            }
        } else {
            expect_clear("try_receive_copy", r.error(), {Errc::would_block, Errc::corrupted});
        }
        if (it % 8 == 0) {
            doing("Subscriber::receive (100 us)");
            if (auto b = s.receive(want, std::chrono::microseconds(100)); b) {
                for (std::size_t i = 0; i < b->size(); ++i) {
                    check_span("receive", b->message(i).data);
                }
                doing("Subscriber::release");
                if (auto r = s.release(*b); !r) {
                    expect_clear("release", r.error(), {Errc::lost, Errc::corrupted});
                }
            } else {
                expect_clear("receive", b.error(), {Errc::timed_out, Errc::corrupted});
            }
            doing("Subscriber::receive_copy (100 us)");
            if (auto r = s.receive_copy(buf, std::chrono::microseconds(100)); !r) {
                expect_clear("receive_copy", r.error(), {Errc::timed_out, Errc::corrupted});
            }
        }
        doing("Subscriber::lost");
        (void)s.lost();
    }

    /// Detaches and attaches the endpoints again: attach must cope with damaged tables.
    void reattach() {
        doing("reattach");
        subs_.clear();
        pubs_.clear();
        for (std::uint32_t i = 0; i < shape_.subscribers; ++i) {
            doing("Subscriber::attach");
            if (auto s = Subscriber::attach(*files_->duplicate_for(Role::subscriber)); s) {
                subs_.push_back(std::move(*s));
            } else {
                expect_clear("Subscriber::attach", s.error(),
                             {Errc::corrupted, Errc::limit_reached});
            }
        }
        for (std::uint32_t i = 0; i < shape_.publishers; ++i) {
            doing("Publisher::attach");
            if (auto p = Publisher::attach(*files_->duplicate_for(Role::publisher)); p) {
                pubs_.push_back(std::move(*p));
            } else {
                expect_clear("Publisher::attach", p.error(),
                             {Errc::corrupted, Errc::limit_reached});
            }
        }
        ranges_ = payload_ranges(name_); // the new endpoints have mappings of their own
    }

    /// A value that is likely to matter: near the current positions, a plausible claim
    /// state, a slot length just too long, or plain garbage.
    std::uint64_t nasty(std::uint64_t original) {
        const std::uint64_t head = payload_->read<std::uint64_t>(geo_.payload_block_offset());
        const std::uint64_t cap = kSlotCount;
        switch (rng_() % 8) {
        case 0:
            return rng_();
        case 1:
            return original + 1 + rng_() % 3;
        case 2:
            return original - 1 - rng_() % 3;
        case 3:
            return head + cap * (rng_() % 3) - cap + rng_() % 5;
        case 4: {
            static constexpr std::uint32_t kOwners[] = {
                0, 1, 2, 3, sd::kOwnerAbandoned, sd::kOwnerRedeliver, 0x1234};
            return sd::make_state(head + (rng_() % (2 * cap)) - cap,
                                  static_cast<sd::SlotPhase>(rng_() % 4),
                                  kOwners[rng_() % std::size(kOwners)]);
        }
        case 5:
            return kSlotSize + 1 + rng_() % 3;
        case 6:
            return ~std::uint64_t{0} - rng_() % 3;
        default:
            return rng_() % 4; // small: endpoint states, waiter counts
        }
    }

    template <typename T>
    void scribble_at(Scribbler& region, std::size_t offset) {
        const auto original = static_cast<std::uint64_t>(region.read<T>(offset));
        region.write<T>(offset, static_cast<T>(nasty(original)));
        ++scribbles_;
    }

    void scribble() {
        const std::uint64_t cb = geo_.control_block_offset();
        const std::uint64_t slot = geo_.slots_offset() + (rng_() % kSlotCount) * geo_.stride;
        const auto record = [&](std::uint64_t table, std::uint32_t count) {
            return table + (rng_() % count) * sizeof(sd::EndpointRecord);
        };
        switch (rng_() % 12) {
        case 0:
            return scribble_at<std::uint64_t>(*control_,
                                              cb + offsetof(sd::ControlBlock, consumer_pos));
        case 1:
            return scribble_at<std::uint32_t>(*control_, cb + offsetof(sd::ControlBlock, data_seq));
        case 2:
            return scribble_at<std::uint32_t>(*control_,
                                              cb + offsetof(sd::ControlBlock, data_waiters));
        case 3:
            return scribble_at<std::uint32_t>(*control_,
                                              cb + offsetof(sd::ControlBlock, space_waiters));
        case 4:
            return scribble_at<std::uint64_t>(*control_,
                                              cb + offsetof(sd::ControlBlock, redeliver_pending));
        case 5:
            return scribble_at<std::uint64_t>(
                *control_, record(geo_.subscribers_offset(), shape_.subscribers) +
                               offsetof(sd::EndpointRecord, cursor));
        case 6: {
            const std::uint64_t entry = rng_() % 2 == 0
                                            ? record(geo_.publishers_offset(), shape_.publishers)
                                            : record(geo_.subscribers_offset(), shape_.subscribers);
            return scribble_at<std::uint32_t>(*control_,
                                              entry + offsetof(sd::EndpointRecord, state));
        }
        case 7:
            if (geo_.has_cells) {
                return scribble_at<std::uint64_t>(*control_,
                                                  geo_.cells_offset() + (rng_() % kSlotCount) * 8);
            }
            [[fallthrough]];
        case 8:
            return scribble_at<std::uint64_t>(*payload_, geo_.payload_block_offset());
        case 9:
        case 10:
            return scribble_at<std::uint64_t>(*payload_, slot + offsetof(sd::SlotHeader, length));
        default:
            return scribble_at<std::uint64_t>(*payload_, slot + offsetof(sd::SlotHeader, state));
        }
    }

    const Shape& shape_;
    sd::Geometry geo_;
    std::mt19937_64 rng_;
    std::uint64_t iterations_;
    Progress* progress_;
    // This epoch's channel:
    const ChannelFiles* files_{nullptr};
    std::string name_;
    Scribbler* control_{nullptr};
    Scribbler* payload_{nullptr};
    std::vector<Publisher> pubs_;
    std::vector<Subscriber> subs_;
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges_;
    std::uint64_t failures_{0};
    std::uint64_t scribbles_{0};
    std::uint64_t calls_{0};
    std::uint64_t corrupted_{0};
    std::uint64_t messages_{0};
};

} // namespace

TEST_CASE("the guard pages of this test make a read one byte past a channel mapping fault") {
    auto files = create_channel(spec("guard", ChannelKind::queue, kSlotSize, kSlotCount));
    REQUIRE(files);
    const std::size_t size = (*inspect_channel(*files)).payload_bytes;
    Child reader = Child::spawn([&files, size] {
        std::signal(SIGSEGV, SIG_DFL); // die of it, without Catch2's report from the child
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, files->payload.get(), 0);
        if (p == MAP_FAILED) {
            return child_failure("mmap");
        }
        volatile const std::byte* past = static_cast<const std::byte*>(p) + size;
        volatile std::byte b = *past; // must fault
        (void)b;
        return 0;
    });
    auto st = reader.wait();
    REQUIRE(st);
    INFO(st->describe());
    CHECK(st->killed_by(SIGSEGV));
}

TEST_CASE("a scribbled header field makes inspect and every attach fail naming that field") {
    const std::uint64_t seed = test_seed();
    std::printf("test_corruption header seed: %" PRIu64 " (rerun with SHMBUS_TEST_SEED=%" PRIu64
                ")\n",
                seed, seed);
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    std::vector<Shape> shapes(std::begin(kShapes), std::end(kShapes));
    shapes.insert(shapes.end(), std::begin(kStateShapes), std::end(kStateShapes));
    for (const Shape& shape : shapes) {
        INFO("channel: " << shape.what);
        auto files = create_channel(spec_of(shape, "hdr"));
        REQUIRE(files);
        REQUIRE(inspect_channel(*files));
        const sd::Geometry geo = geometry_of(shape);
        for (const bool control : {true, false}) {
            INFO((control ? "control" : "payload") << " region");
            Scribbler region(control ? files->control.get() : files->payload.get(),
                             control ? geo.control_bytes() : geo.payload_bytes());
            for (const HeaderField& f : header_fields()) {
                const std::uint64_t original = f.size == 4 ? region.read<std::uint32_t>(f.offset)
                                                           : region.read<std::uint64_t>(f.offset);
                for (std::uint64_t value : scribbles_for(f, original, rng)) {
                    INFO("field " << f.name << ": " << original << " -> " << value);
                    if (f.size == 4) {
                        region.write<std::uint32_t>(f.offset, static_cast<std::uint32_t>(value));
                    } else {
                        region.write<std::uint64_t>(f.offset, value);
                    }
                    check_refused(*files,
                                  std::string(f.name) == "layout_version" ? Errc::version_mismatch
                                                                          : Errc::corrupted,
                                  f.needle);
                    if (f.size == 4) {
                        region.write<std::uint32_t>(f.offset, static_cast<std::uint32_t>(original));
                    } else {
                        region.write<std::uint64_t>(f.offset, original);
                    }
                }
            }
            // The name: its terminator gone (the name runs to the end of the field), its
            // terminator replaced by a letter (another, longer name), or a bad character.
            const std::size_t name = offsetof(sd::RegionHeader, name);
            constexpr std::size_t kNameField = sizeof(sd::RegionHeader::name);
            std::vector<std::byte> saved(region.at(name), region.at(name) + kNameField);
            const std::size_t len = std::strlen(reinterpret_cast<const char*>(region.at(name)));
            {
                INFO("name without a terminator");
                std::memset(region.at(name), 'x', kNameField);
                check_refused(*files, Errc::corrupted, "name");
                std::memcpy(region.at(name), saved.data(), kNameField);
            }
            {
                INFO("name terminator replaced by a letter");
                *region.at(name + len) = std::byte{'x'};
                check_refused(*files, Errc::corrupted, "name");
                std::memcpy(region.at(name), saved.data(), kNameField);
            }
            {
                INFO("name with a character names may not contain");
                *region.at(name) = std::byte{'\n'};
                check_refused(*files, Errc::corrupted, "name");
                std::memcpy(region.at(name), saved.data(), kNameField);
            }
        }
        // Everything restored: the channel opens again.
        auto info = inspect_channel(*files);
        INFO((info ? std::string("ok") : info.error().message()));
        CHECK(info);
    }
}

TEST_CASE("random scribbles over a live channel never crash, hang or overrun its readers") {
    const std::uint64_t seed = test_seed();
    std::printf("test_corruption live seed: %" PRIu64 " (rerun with SHMBUS_TEST_SEED=%" PRIu64
                ")\n",
                seed, seed);
    CAPTURE(seed);
    const std::uint64_t iterations = scaled(5000, 500);
    void* shared = ::mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED);
    std::uint64_t shape_seed = seed;
    for (const Shape& shape : kShapes) {
        INFO("channel: " << shape.what << ", child seed " << shape_seed);
        auto* progress = new (shared) Progress{};
        Child child = Child::spawn([&shape, shape_seed, iterations, progress] {
            return LiveScribble(shape, shape_seed, iterations, progress).run();
        });
        // Watch the child: it must end, and while it runs, its calls must keep returning.
        std::optional<ExitStatus> st;
        std::uint64_t seen = 0;
        Deadline call_limit{kCallLimit};
        while (!(st = child.wait(Deadline{std::chrono::milliseconds(200)}))) {
            const std::uint64_t calls = progress->calls.load(std::memory_order_acquire);
            if (calls != seen) {
                seen = calls;
                call_limit = Deadline{kCallLimit};
            } else if (call_limit.passed()) {
                break;
            }
        }
        INFO("last call: " << progress->call << " in iteration " << progress->iteration << " of "
                           << iterations);
        REQUIRE(st); // else that call did not return within kCallLimit
        INFO(st->describe());
        CHECK(st->exited_ok());
        shape_seed = mix64(shape_seed);
    }
    ::munmap(shared, sizeof(Progress));
}

// The reduced cases of a hang the live test above found: a blocking call whose wake-up
// hint says "ready" while the attempt itself says "would block" looped at once, never
// looking at its deadline. Each runs in a child: before the fix it never returned.

TEST_CASE("receive returns by its deadline when every slot claims a later lap than the cursor") {
    auto files = create_channel(spec("stuck-receive", ChannelKind::broadcast, kSlotSize, 4, 1, 1));
    REQUIRE(files);
    Child child = Child::spawn([&files] {
        auto sub = Subscriber::attach(*files->duplicate_for(Role::subscriber));
        if (!sub) {
            return child_failure(sub.error().message());
        }
        const Shape shape{"broadcast", ChannelKind::broadcast, Overflow::block, 1, 1};
        sd::Geometry geo = geometry_of(shape);
        geo.slot_count = 4;
        Scribbler payload(files->payload.get(), geo.payload_bytes());
        for (std::uint64_t i = 0; i < 4; ++i) {
            // Committed, far ahead of the cursor: every read looks like an overrun.
            payload.write<std::uint64_t>(
                geo.slots_offset() + i * geo.stride + offsetof(sd::SlotHeader, state),
                sd::make_state(std::uint64_t{1} << 40, sd::SlotPhase::committed));
        }
        auto r = sub->receive(1, std::chrono::milliseconds(10));
        std::printf("receive on a damaged ring: %s\n",
                    r ? "a message" : r.error().message().c_str());
        return 0;
    });
    auto st = child.wait();
    REQUIRE(st); // else receive() never returned
    INFO(st->describe());
    CHECK(st->exited_ok());
}

TEST_CASE("a drop-policy send returns by its deadline while another publisher holds the slot it "
          "needs") {
    // No damage at all: publisher A holds a reservation (a dead publisher not yet reclaimed
    // looks the same), so B cannot lap it; a drop channel always says it has room.
    auto files = create_channel(
        spec("held-slot", ChannelKind::broadcast, kSlotSize, 4, 2, 1, Overflow::drop));
    REQUIRE(files);
    Child child = Child::spawn([&files] {
        auto a = Publisher::attach(*files->duplicate_for(Role::publisher));
        auto b = Publisher::attach(*files->duplicate_for(Role::publisher));
        if (!a || !b) {
            return child_failure("attach");
        }
        auto held = a->try_reserve(1);
        if (!held) {
            return child_failure(held.error().message());
        }
        std::vector<std::byte> msg(kWireHeaderSize);
        for (int i = 0; i < 3; ++i) {
            if (auto r = b->try_send(msg); !r) {
                return child_failure(r.error().message());
            }
        }
        auto r = b->send(msg, std::chrono::milliseconds(10)); // needs A's slot
        if (r || r.code() != Errc::timed_out) {
            return child_failure("send: " + (r ? std::string("sent") : r.error().message()));
        }
        a->abandon(*held);
        return 0;
    });
    auto st = child.wait();
    REQUIRE(st); // else send() never returned
    INFO(st->describe());
    CHECK(st->exited_ok());
}
