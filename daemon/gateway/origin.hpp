// Where each bridged message comes from, across hops: the daemon that first published it (its
// incarnation), the channel there (its creation id) and the sequence it had in that channel's
// stream. docs/gateway.md ("Multi-hop: origins, loops and duplicates") is the reference.
//
// One OriginLedger serves every bridge of a daemon (bridge-stdio has one of its own), with one
// ChannelOrigins per local channel that a bridge imports into or exports from. It keeps two
// things per channel:
// - the dedup marks, for importers: per origin channel, the next origin sequence not yet
//   delivered here. A message at or below it came already (by another path, or it is older
//   than one that did): it is dropped and counted as a duplicate. A message above it after a
//   jump means the messages between were lost upstream: a gap, counted once whichever path
//   shows it. So each message is delivered into the channel at most once, in origin order,
//   and every message is either delivered or counted lost exactly once. Bounded: at most
//   kMaxOrigins origin channels per local channel; the least recently seen is forgotten
//   first, and a forgotten origin is met again as a new one (its first message is taken, no
//   gap is counted before it).
// - the runs, for exporters: which local sequences an importer published and whose messages
//   they were (local sequence L of a run carries origin sequence origin_first + (L -
//   local_first)), so that a re-exported channel keeps the origin's numbers and loss upstream
//   stays visible downstream. A local sequence no run covers was published locally; its
//   number as an origin leaves out the imported ones before it (local sequence + 1 - the
//   imported messages below it), so that a channel written both by local publishers and by
//   imports numbers its own messages without holes. Bounded:
//   at most kMaxRuns runs per channel (consecutive messages of one origin make one run); the
//   oldest is forgotten first, and a message below what was forgotten has an unknown origin,
//   which an exporter never sends (it counts it lost).
// - for queue channels, instead of the marks, the set of origin sequences seen (admit_once()):
//   a queue's message goes to one consumer at each daemon, so it travels one path and the
//   origin's numbers reach a daemon with holes (the messages other consumers took) and, by
//   different paths, out of order. Neither is loss. A message that comes again came around a
//   cycle: it is dropped. Bounded: per origin channel, the kQueueWindow sequences below the
//   highest seen; an older one cannot be checked and is taken (work is never dropped
//   unchecked).
//
// Thread-safety: every call is safe from any thread (one mutex per channel, one for the
// table). An importer notes a run before it commits the messages, so an exporter that reads
// them finds their origin.
#pragma once

#include "gateway/frame.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::gateway {

/// What an importer may deliver of `count` messages of one origin: skip the first `skip`
/// (duplicates), and `gap` messages of that origin were lost just before the first kept one.
struct Admission {
    std::uint64_t skip{0};
    std::uint64_t gap{0};
};

/// The origin of one local message, as an exporter finds it.
struct LocalOrigin {
    enum class Kind {
        local,    ///< published here: origin.first_sequence is its number as an origin
        imported, ///< published by an import: `origin` (first_sequence is this message's)
        unknown,  ///< older than what the ledger still holds
    };
    Kind kind{Kind::local};
    MessageOrigin origin;
};

/// What a queue importer may deliver of `count` messages of one origin, from the first: the
/// first `skip` came here already; the `take` after them are new (marked seen now). Messages
/// after skip + take are for the next call.
struct OnceAdmission {
    std::uint64_t skip{0};
    std::uint64_t take{0};
};

class ChannelOrigins {
public:
    /// Most origin channels remembered for dedup per local channel.
    static constexpr std::size_t kMaxOrigins = 256;
    /// Most runs remembered per local channel.
    static constexpr std::size_t kMaxRuns = 4096;
    /// Origin sequences remembered per origin channel of a queue, below the highest seen.
    static constexpr std::uint64_t kQueueWindow = 65536;

    /// Decides which of `count` messages of `origin` (from origin.first_sequence on) are new
    /// here, and marks them delivered.
    [[nodiscard]] Admission admit(const MessageOrigin& origin, std::uint64_t count);

    /// An importer that admitted origin sequences from..end - 1 of origin channel `channel`
    /// and could not publish them (its link ended) gives them back: if nothing was admitted
    /// after them meanwhile, they count as not yet delivered again.
    void give_back(std::uint64_t channel, std::uint64_t from, std::uint64_t end);

    /// For a queue channel: which of `count` messages of `origin` (from origin.first_sequence
    /// on) came here before, by sequence rather than by order (see the top of this file).
    [[nodiscard]] OnceAdmission admit_once(const MessageOrigin& origin, std::uint64_t count);

    /// A queue importer that admitted origin sequences from..end - 1 of origin channel
    /// `channel` with admit_once() and could not publish them gives them back: they count as
    /// not seen again.
    void give_back_once(std::uint64_t channel, std::uint64_t from, std::uint64_t end);

    /// Local sequences local_first .. local_first + count - 1 carry the messages of `origin`
    /// from origin.first_sequence on. Call before committing them.
    void note(std::uint64_t local_first, std::uint64_t count, const MessageOrigin& origin);

    /// The origin of the local message of sequence `local_sequence`.
    [[nodiscard]] LocalOrigin find(std::uint64_t local_sequence) const;

    /// Whether any import ever published here (if not, every message is local).
    [[nodiscard]] bool has_imports() const;

    /// Origin channels currently remembered for dedup, and runs held (for tests and stats).
    [[nodiscard]] std::size_t origins() const;
    [[nodiscard]] std::size_t runs() const;

private:
    struct Mark {
        std::uint64_t next{0};     ///< the next origin sequence not yet delivered
        std::uint64_t last_use{0}; ///< `clock_` when last seen
    };
    /// A queue's origin channel: the sequences seen, kQueueWindow of them up to `high`, one
    /// bit each at sequence % kQueueWindow.
    struct Seen {
        std::uint64_t high{0};
        std::vector<std::uint64_t> bits;
        std::uint64_t last_use{0};

        [[nodiscard]] bool test(std::uint64_t sequence) const;
        void set(std::uint64_t sequence);
        void clear(std::uint64_t sequence);
    };
    struct Run {
        std::uint64_t count{0};
        MessageOrigin origin;             ///< of the run's first message
        std::uint64_t imported_before{0}; ///< local sequences imported below the run's first
    };

    mutable std::mutex mu_;
    std::map<std::uint64_t, Mark> marks_; ///< by origin channel
    std::map<std::uint64_t, Seen> seen_;  ///< by origin channel, for queue channels
    std::uint64_t clock_{0};
    std::map<std::uint64_t, Run> runs_;  ///< by first local sequence
    std::uint64_t forgotten_below_{0};   ///< local sequences below this may have been imported
    std::uint64_t forgotten_imports_{0}; ///< imported local sequences below forgotten_below_
    bool imported_{false};
};

/// The daemon's ChannelOrigins, by local channel.
class OriginLedger {
public:
    /// The record of local channel `name`, created on first use. `creation_id` is the local
    /// channel's: a channel created anew under the same name starts a new record.
    [[nodiscard]] std::shared_ptr<ChannelOrigins> channel(std::string_view name,
                                                          std::uint64_t creation_id);

private:
    struct Entry {
        std::uint64_t creation_id{0};
        std::shared_ptr<ChannelOrigins> origins;
    };
    std::mutex mu_;
    std::map<std::string, Entry, std::less<>> channels_;
};

} // namespace shmbus::gateway
