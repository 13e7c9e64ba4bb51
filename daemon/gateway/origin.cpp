// The origin ledger: dedup marks and runs per local channel; the rules are in origin.hpp.
#include "gateway/origin.hpp"

#include <algorithm>
#include <iterator>

namespace shmbus::gateway {
namespace {

/// At kMaxOrigins origin channels, forgets the one seen least recently: it is met again as a
/// new one.
template <typename ByOrigin>
void make_room(ByOrigin& by_origin) {
    if (by_origin.size() >= ChannelOrigins::kMaxOrigins) {
        by_origin.erase(
            std::min_element(by_origin.begin(), by_origin.end(), [](const auto& a, const auto& b) {
                return a.second.last_use < b.second.last_use;
            }));
    }
}

} // namespace

Admission ChannelOrigins::admit(const MessageOrigin& origin, std::uint64_t count) {
    std::lock_guard lock{mu_};
    const std::uint64_t first = origin.first_sequence;
    const std::uint64_t end = first + count; // the codec refused frames whose sequences wrap
    auto it = marks_.find(origin.channel);
    if (it == marks_.end()) {
        make_room(marks_);
        marks_.emplace(origin.channel, Mark{end, ++clock_});
        return {};
    }
    Mark& m = it->second;
    m.last_use = ++clock_;
    Admission a;
    if (end <= m.next) {
        a.skip = count;
        return a;
    }
    if (first < m.next) {
        a.skip = m.next - first;
    } else {
        a.gap = first - m.next;
    }
    m.next = end;
    return a;
}

void ChannelOrigins::give_back(std::uint64_t channel, std::uint64_t from, std::uint64_t end) {
    std::lock_guard lock{mu_};
    auto it = marks_.find(channel);
    if (it != marks_.end() && it->second.next == end && from < end) {
        it->second.next = from;
    }
}

bool ChannelOrigins::Seen::test(std::uint64_t sequence) const {
    if (sequence > high || high - sequence >= kQueueWindow || bits.empty()) {
        return false; // not seen, or too old to tell
    }
    const std::uint64_t at = sequence % kQueueWindow;
    return (bits[at / 64] >> (at % 64) & 1U) != 0;
}

void ChannelOrigins::Seen::set(std::uint64_t sequence) {
    if (bits.empty()) {
        bits.assign(kQueueWindow / 64, 0);
    }
    if (sequence > high) {
        // The window moves up: the bits it leaves behind are the new sequences' now.
        if (sequence - high >= kQueueWindow) {
            std::fill(bits.begin(), bits.end(), 0);
        } else {
            for (std::uint64_t s = high + 1; s <= sequence; ++s) {
                const std::uint64_t at = s % kQueueWindow;
                bits[at / 64] &= ~(std::uint64_t{1} << (at % 64));
            }
        }
        high = sequence;
    }
    if (high - sequence < kQueueWindow) {
        const std::uint64_t at = sequence % kQueueWindow;
        bits[at / 64] |= std::uint64_t{1} << (at % 64);
    }
}

void ChannelOrigins::Seen::clear(std::uint64_t sequence) {
    if (sequence <= high && high - sequence < kQueueWindow && !bits.empty()) {
        const std::uint64_t at = sequence % kQueueWindow;
        bits[at / 64] &= ~(std::uint64_t{1} << (at % 64));
    }
}

OnceAdmission ChannelOrigins::admit_once(const MessageOrigin& origin, std::uint64_t count) {
    std::lock_guard lock{mu_};
    auto it = seen_.find(origin.channel);
    if (it == seen_.end()) {
        make_room(seen_);
        it = seen_.emplace(origin.channel, Seen{}).first;
    }
    Seen& seen = it->second;
    seen.last_use = ++clock_;
    const std::uint64_t first = origin.first_sequence;
    std::uint64_t i = 0;
    while (i < count && seen.test(first + i)) {
        ++i;
    }
    OnceAdmission a{i, 0};
    while (i < count && !seen.test(first + i)) {
        seen.set(first + i);
        ++i;
    }
    a.take = i - a.skip;
    return a;
}

void ChannelOrigins::give_back_once(std::uint64_t channel, std::uint64_t from, std::uint64_t end) {
    std::lock_guard lock{mu_};
    auto it = seen_.find(channel);
    if (it == seen_.end()) {
        return;
    }
    for (std::uint64_t s = from; s < end; ++s) {
        it->second.clear(s);
    }
}

void ChannelOrigins::note(std::uint64_t local_first, std::uint64_t count,
                          const MessageOrigin& origin) {
    if (count == 0) {
        return;
    }
    std::lock_guard lock{mu_};
    imported_ = true;
    if (!runs_.empty()) {
        // Consecutive messages of one origin extend the last run.
        auto& [last_first, last] = *std::prev(runs_.end());
        if (last_first + last.count == local_first && last.origin.daemon == origin.daemon &&
            last.origin.channel == origin.channel &&
            last.origin.first_sequence + last.count == origin.first_sequence) {
            last.count += count;
            return;
        }
    }
    // Runs are noted in the order their importers commit, nearly always rising; one that
    // lands below others moves their counts of what was imported before them.
    auto [it, inserted] = runs_.insert_or_assign(local_first, Run{count, origin, 0});
    if (it != runs_.begin()) {
        const Run& below = std::prev(it)->second;
        it->second.imported_before = below.imported_before + below.count;
    } else {
        it->second.imported_before = forgotten_imports_;
    }
    for (auto later = std::next(it); later != runs_.end(); ++later) {
        later->second.imported_before += count;
    }
    (void)inserted;
    while (runs_.size() > kMaxRuns) {
        const auto oldest = runs_.begin();
        forgotten_below_ = std::max(forgotten_below_, oldest->first + oldest->second.count);
        forgotten_imports_ = oldest->second.imported_before + oldest->second.count;
        runs_.erase(oldest);
    }
}

LocalOrigin ChannelOrigins::find(std::uint64_t local_sequence) const {
    std::lock_guard lock{mu_};
    auto it = runs_.upper_bound(local_sequence);
    std::uint64_t imported_below = 0;
    if (it != runs_.begin()) {
        const auto& [first, run] = *std::prev(it);
        if (local_sequence - first < run.count) {
            MessageOrigin o = run.origin;
            o.first_sequence += local_sequence - first;
            return {LocalOrigin::Kind::imported, o};
        }
        imported_below = run.imported_before + run.count;
    } else if (local_sequence < forgotten_below_) {
        return {LocalOrigin::Kind::unknown, {}};
    }
    LocalOrigin local;
    local.origin.first_sequence = local_sequence + 1 - imported_below;
    return local;
}

bool ChannelOrigins::has_imports() const {
    std::lock_guard lock{mu_};
    return imported_;
}

std::size_t ChannelOrigins::origins() const {
    std::lock_guard lock{mu_};
    return marks_.size() + seen_.size();
}

std::size_t ChannelOrigins::runs() const {
    std::lock_guard lock{mu_};
    return runs_.size();
}

std::shared_ptr<ChannelOrigins> OriginLedger::channel(std::string_view name,
                                                      std::uint64_t creation_id) {
    std::lock_guard lock{mu_};
    auto it = channels_.find(name);
    if (it == channels_.end()) {
        it = channels_.emplace(std::string{name}, Entry{}).first;
    }
    if (!it->second.origins || it->second.creation_id != creation_id) {
        it->second = Entry{creation_id, std::make_shared<ChannelOrigins>()};
    }
    return it->second.origins;
}

} // namespace shmbus::gateway
