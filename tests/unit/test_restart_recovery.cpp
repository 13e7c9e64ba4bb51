// Restart recovery without a daemon: a state file in a temporary directory, registries standing
// for successive daemon runs, and descriptors kept the way a client keeps them across a restart.
#include "restart_recovery.hpp"
#include "test_support.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <unistd.h>

using namespace shmbus;
using namespace shmbus::daemon;
using shmbus::test::spec;

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "shmbus-recovery-XXXXXX");
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

ChannelSpec queue(const std::string& stem) {
    return spec(stem, ChannelKind::queue, 64, 8, 1, 2);
}

Config configuring(const ChannelSpec& spec) {
    Config c;
    c.channels.push_back(ChannelConfig{spec, {}, {}, {}});
    return c;
}

StateFile state_file_in(const TempDir& dir) {
    auto f = StateFile::lock(dir.path / "shmbusd.state", dir.path / "shmbusd.sock");
    REQUIRE(f);
    return std::move(*f);
}

/// One daemon run: its registry and its recovery, started as main() starts them.
struct Run {
    ChannelRegistry registry;
    RestartRecovery recovery;
    explicit Run(const TempDir& dir) : recovery{registry, state_file_in(dir)} {}
    /// restore(), then a stand-in for `spec` as DaemonState::create_configured_channels() makes.
    void start(const ChannelSpec& spec) {
        (void)recovery.restore({});
        if (recovery.awaiting(spec.name)) {
            auto made = registry.create(spec, {}, {}, kDefaultMaxChannelBytes);
            REQUIRE(made);
            (*made)->stand_in = true;
        }
    }
    void save() { REQUIRE(recovery.file().write(recovery.running_state())); }
};

/// What a client keeps of a channel across a daemon's death: its descriptors and creation id.
struct Kept {
    ChannelFiles files;
    std::uint64_t creation_id{0};
};

/// A first run that makes `spec`'s channel, writes its state file and dies; what a client of
/// it keeps.
Kept run_and_die(const TempDir& dir, const ChannelSpec& spec) {
    Run first{dir};
    auto made = first.registry.create(spec, {}, {}, kDefaultMaxChannelBytes);
    REQUIRE(made);
    auto dup = (*made)->files.duplicate();
    REQUIRE(dup);
    first.save();
    return Kept{std::move(*dup), (*made)->info.creation_id};
}

Result<RestartRecovery::Offered> offer(Run& run, const ChannelFiles& held,
                                       std::uint64_t creation_id, const ChannelSpec& spec) {
    auto dup = held.duplicate();
    REQUIRE(dup);
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(dup->control));
    fds.push_back(std::move(dup->payload));
    return run.recovery.take_back(proto::ReclaimOffer{spec.name, creation_id, Role::subscriber, 0},
                                  fds, configuring(spec), "client 1", {});
}

} // namespace

TEST_CASE("a channel nobody has offered back stays in the state file over any number of restarts "
          "and is then given back") {
    TempDir dir;
    const ChannelSpec spec = queue("jobs");
    // Killed: only the state file and the descriptors of a stopped consumer remain.
    auto [held, creation_id] = run_and_die(dir, spec);
    const ChannelRecord original = [&] {
        auto saved = read_state_file(dir.path / "shmbusd.state");
        REQUIRE(saved);
        REQUIRE(saved->has_value());
        REQUIRE((*saved)->channels.size() == 1);
        return (*saved)->channels[0];
    }();

    for (int restart = 0; restart < 3; ++restart) {
        Run run{dir};
        run.start(spec);
        CHECK(run.recovery.in_grace());
        REQUIRE(run.recovery.awaiting(spec.name));
        const RegisteredChannel* stand_in = run.registry.find(spec.name);
        REQUIRE(stand_in != nullptr);
        CHECK(stand_in->stand_in);
        // The state file names the segments the consumer holds, never the stand-in's.
        const SavedState state = run.recovery.running_state();
        REQUIRE(state.channels.size() == 1);
        CHECK(state.channels[0].creation_id == creation_id);
        CHECK(state.channels[0].control == original.control);
        run.save();
    }

    Run last{dir};
    last.start(spec);
    auto given = offer(last, held, creation_id, spec);
    INFO((given ? std::string{} : given.error().message()));
    REQUIRE(given);
    CHECK(given->given_back);
    const RegisteredChannel* ch = last.registry.find(spec.name);
    REQUIRE(ch == given->channel);
    CHECK_FALSE(ch->stand_in);
    CHECK(ch->info.creation_id == creation_id);
    CHECK(identity_of(ch->files.payload.get()) == original.payload);
    CHECK_FALSE(last.recovery.awaiting(spec.name));
    // A second endpoint of the same channel is now an offer of a channel the daemon serves.
    auto again = offer(last, held, creation_id, spec);
    REQUIRE(again);
    CHECK_FALSE(again->given_back);
}

TEST_CASE("a stand-in a new client opened is the channel: a late offer is refused saying why") {
    TempDir dir;
    const ChannelSpec spec = queue("late");
    auto [held, creation_id] = run_and_die(dir, spec);
    Run run{dir};
    run.start(spec);
    RegisteredChannel* stand_in = run.registry.find(spec.name);
    REQUIRE(stand_in != nullptr);
    bool told = false;
    run.registry.on_stand_in_opened = [&](const RegisteredChannel&) { told = true; };
    REQUIRE(run.registry.assign_endpoint(
        *stand_in, Role::publisher, EndpointClaim{2, Role::publisher, 0, 200, 1000, "newcomer"}));
    CHECK(told);
    CHECK_FALSE(stand_in->stand_in);

    auto refused = offer(run, held, creation_id, spec);
    REQUIRE_FALSE(refused);
    CHECK(refused.code() == Errc::already_exists);
    CHECK_THAT(refused.error().message(), Catch::Contains("a new client opened it"));
    // The state file now records the channel the new client uses.
    const SavedState state = run.recovery.running_state();
    REQUIRE(state.channels.size() == 1);
    CHECK(state.channels[0].creation_id == stand_in->info.creation_id);

    run.recovery.end_grace();
    CHECK_FALSE(run.recovery.in_grace());
}

TEST_CASE("offers of other files or another creation id are refused") {
    TempDir dir;
    const ChannelSpec spec = queue("impostor");
    auto [held, creation_id] = run_and_die(dir, spec);
    Run run{dir};
    run.start(spec);
    auto other = create_channel(spec, kDefaultMaxChannelBytes);
    REQUIRE(other);
    CHECK(offer(run, *other, creation_id, spec).code() == Errc::permission_denied);
    CHECK(offer(run, held, creation_id + 1, spec).code() == Errc::not_found);
    CHECK(run.recovery.awaiting(spec.name));
}

TEST_CASE("a graceful stop records only the channels a client holds, and nothing removes the "
          "file") {
    TempDir dir;
    const ChannelSpec idle = queue("idle");
    const ChannelSpec busy = queue("busy");
    Run run{dir};
    REQUIRE(run.registry.create(idle, {}, {}, kDefaultMaxChannelBytes));
    auto made = run.registry.create(busy, {}, {}, kDefaultMaxChannelBytes);
    REQUIRE(made);
    run.save();
    CHECK(run.recovery.running_state().channels.size() == 2);

    REQUIRE(run.registry.assign_endpoint(
        **made, Role::subscriber, EndpointClaim{1, Role::subscriber, 0, 100, 1000, "holder"}));
    const SavedState at_stop = run.recovery.state_at_stop();
    REQUIRE(at_stop.channels.size() == 1);
    CHECK(at_stop.channels[0].name == busy.name);

    (void)run.registry.reclaim_client(1);
    REQUIRE(run.recovery.file().write(run.recovery.state_at_stop()));
    CHECK_FALSE(std::filesystem::exists(dir.path / "shmbusd.state"));
    Run next{dir};
    CHECK_FALSE(next.recovery.restore({})); // nothing to wait for
}
