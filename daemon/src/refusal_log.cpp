// Rate-limited refusal warnings. See refusal_log.hpp.
#include "refusal_log.hpp"

namespace shmbus::daemon {

namespace {

std::string seconds(std::chrono::milliseconds ms) {
    const auto s = ms.count() / 1000;
    const auto tenths = (ms.count() % 1000) / 100;
    return std::to_string(s) + (tenths != 0 ? "." + std::to_string(tenths) : "") + " s";
}

std::string more_refusals(std::uint64_t n) {
    return std::to_string(n) + " more refusal" + (n == 1 ? "" : "s");
}

} // namespace

std::optional<std::string> RefusalLog::note(std::uint32_t uid, const std::string& what,
                                            Clock::time_point now) {
    auto it = uids_.find(uid);
    if (it != uids_.end() && now - it->second.since < interval_) {
        ++it->second.counted;
        it->second.last = what;
        if (on_counted) {
            on_counted();
        }
        return std::nullopt;
    }
    // A new interval. One that ended with refusals counted was summarised by due(), unless
    // the owner has not called it yet: then that summary rides on this line.
    std::string line = what;
    if (it != uids_.end() && it->second.counted > 0) {
        line += " (and " + more_refusals(it->second.counted) + " of uid " + std::to_string(uid) +
                " before this one, the last: " + it->second.last + ")";
    }
    line += "; further refusals of uid " + std::to_string(uid) + " in the next " +
            seconds(interval_) + " are counted in one line";
    uids_[uid] = PerUid{now, 0, {}};
    return line;
}

std::vector<RefusalLog::Line> RefusalLog::due(Clock::time_point now, bool all) {
    std::vector<Line> lines;
    for (auto it = uids_.begin(); it != uids_.end();) {
        PerUid& u = it->second;
        if (now - u.since < interval_ && !(all && u.counted > 0)) {
            ++it;
            continue;
        }
        if (u.counted == 0) {
            it = uids_.erase(it); // a quiet interval: forget the uid
            continue;
        }
        lines.push_back(Line{
            it->first,
            "uid " + std::to_string(it->first) + ": " + more_refusals(u.counted) + " in the last " +
                seconds(std::chrono::duration_cast<std::chrono::milliseconds>(now - u.since)) +
                ", the last: " + u.last});
        u = PerUid{now, 0, {}};
        ++it;
    }
    return lines;
}

std::optional<RefusalLog::Clock::time_point> RefusalLog::next_due() const {
    std::optional<Clock::time_point> next;
    for (const auto& [uid, u] : uids_) {
        if (u.counted > 0 && (!next || u.since + interval_ < *next)) {
            next = u.since + interval_;
        }
    }
    return next;
}

void RefusalLog::warn(std::uint32_t uid, const std::string& what, const LogFields& fields) {
    if (auto line = note(uid, what, Clock::now())) {
        log_warning(*line, fields);
    }
}

void RefusalLog::flush_due(bool all) {
    for (const auto& line : due(Clock::now(), all)) {
        LogFields f;
        f.client_uid = line.uid;
        log_warning(line.text, f);
    }
}

} // namespace shmbus::daemon
