// RefusalLog: the warnings about refused connections and requests, at most one line per uid
// per interval, so that a user who keeps knocking on a full daemon cannot flood the journal
// and nothing refused goes unreported.
//
// The first refusal of a uid is logged at once, saying that more within the interval will be
// counted. Further refusals of that uid within the interval are counted, not logged; once the
// interval has passed with some counted, one line says how many and what the last one was
// (due()), and a new interval begins. A uid whose interval ended with nothing counted is
// forgotten by the next due(), so the table holds little more than the uids refused lately.
//
// The owner (the event loop) calls flush_due() when next_due() says, from a timer it starts
// when on_counted fires: an idle daemon runs no timer for this.
//
// note() and due() are pure (the time is passed in) and unit-tested; warn() and flush_due()
// write what they return with log_warning(). Thread: the event loop's.
#pragma once

#include "logging.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace shmbus::daemon {

class RefusalLog {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kDefaultInterval{10'000};

    explicit RefusalLog(std::chrono::milliseconds interval = kDefaultInterval) noexcept
        : interval_{interval} {}
    RefusalLog(const RefusalLog&) = delete;
    RefusalLog& operator=(const RefusalLog&) = delete;

    /// One summary line, for `uid`.
    struct Line {
        std::uint32_t uid{0};
        std::string text;
    };

    /// A refusal of `uid` at `now`, described by `what`: the line to log now, or nothing when
    /// it was counted for a later summary.
    [[nodiscard]] std::optional<std::string> note(std::uint32_t uid, const std::string& what,
                                                  Clock::time_point now);
    /// The summaries of the uids whose interval has ended by `now` with refusals counted
    /// (with `all`, of every uid with refusals counted: the daemon stops); each of those uids
    /// begins a new interval.
    [[nodiscard]] std::vector<Line> due(Clock::time_point now, bool all = false);
    /// When due() next has something to say; nothing when no refusal is counted.
    [[nodiscard]] std::optional<Clock::time_point> next_due() const;

    /// note() now, and log_warning() the line if there is one.
    void warn(std::uint32_t uid, const std::string& what, const LogFields& fields);
    /// due(now, all), each line logged with log_warning().
    void flush_due(bool all = false);

    /// Called when note() counted a refusal (the owner makes sure flush_due() will run).
    std::function<void()> on_counted;

private:
    struct PerUid {
        Clock::time_point since; ///< start of the current interval (its first line)
        std::uint64_t counted{0};
        std::string last;
    };
    std::chrono::milliseconds interval_;
    std::map<std::uint32_t, PerUid> uids_;
};

} // namespace shmbus::daemon
