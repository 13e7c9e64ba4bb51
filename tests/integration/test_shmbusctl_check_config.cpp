// Which shmbusd `shmbusctl check-config` runs, and what it says when it has none to run
// (tools/shmbusctl/check_config.hpp): the one beside shmbusctl when SHMBUSD is unset,
// $SHMBUSD when set, exit code 1 naming where it looked otherwise. The answer itself (the
// same words as shmbusd's, JSON) is tested in test_shmbusctl.cpp.
//
// shmbusctl runs here as a staged copy in a directory of its own (shmbusctl_process.hpp),
// with PATH set to an empty directory and SHMBUSD unset or set by the test, so that no
// shmbusd installed on the machine can answer in its place.
#include "daemon_process.hpp"
#include "other_user.hpp"
#include "shmbusctl_process.hpp"
#include "test_channels.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <sys/stat.h>

using namespace shmbus::test;
namespace fs = std::filesystem;

namespace {

/// A staged shmbusctl copy and a directory with nothing in it, for PATH.
struct Isolated {
    StagedProgram ctl{SHMBUSCTL_PATH};
    TempDir empty;
    TempDir files;

    [[nodiscard]] fs::path beside() const { return ctl.program().parent_path(); }
    [[nodiscard]] std::string path_env() const { return "PATH=" + empty.path().native(); }

    Outcome run(std::vector<std::string> args, std::vector<std::string> environment) const {
        environment.push_back(path_env());
        return Ctl(std::move(args), {}, std::nullopt, {}, Staged{ctl, std::move(environment)})
            .finish();
    }
};

} // namespace

TEST_CASE("check-config runs the shmbusd beside shmbusctl when SHMBUSD is unset") {
    Isolated at;
    fs::create_symlink(SHMBUSD_PATH, at.beside() / "shmbusd");
    const fs::path good = at.files.path() / "good.yaml";
    const fs::path bad = at.files.path() / "bad.yaml";
    write_file(good, channels_yaml({telemetry_channel()}));
    write_file(bad, "channels:\n  - name: x\n    kind: queue\n    slot_sise: 3\n");

    const Outcome ok = at.run({"check-config", good.native()}, {"SHMBUSD"});
    CHECK(ok.code == 0);
    CHECK(ok.err == good.native() + ": configuration is valid (1 channels)\n");

    const Outcome no = at.run({"check-config", bad.native()}, {"SHMBUSD"});
    CHECK(no.code == 78);
    CHECK(no.err.find(bad.native() + ":4:5: error: unknown key 'slot_sise'") != std::string::npos);
}

TEST_CASE("check-config without a shmbusd to run exits 1 and says where it looked") {
    Isolated at;
    const fs::path file = at.files.path() / "good.yaml";
    write_file(file, channels_yaml({telemetry_channel()}));

    const Outcome none = at.run({"check-config", file.native()}, {"SHMBUSD"});
    CHECK(none.code == 1);
    CHECK(none.out.empty());
    INFO(none.err);
    CHECK(none.err.find("shmbusctl: check-config: shmbusd") == 0);
    CHECK(none.err.find(at.beside().native()) != std::string::npos);
    CHECK(none.err.find(at.empty.path().native()) != std::string::npos);
    CHECK(none.err.find("set SHMBUSD") != std::string::npos);

    const fs::path missing = at.files.path() / "no-such-shmbusd";
    const Outcome wrong = at.run({"check-config", file.native()}, {"SHMBUSD=" + missing.native()});
    CHECK(wrong.code == 1);
    CHECK(wrong.err.find("SHMBUSD is '" + missing.native() + "', which is not an executable") !=
          std::string::npos);
}

TEST_CASE("check-config hands shmbusd its arguments and reports a shmbusd that fails oddly") {
    Isolated at;
    // A stand-in that prints its arguments and ends as no shmbusd --check-config does.
    const fs::path stand_in = at.files.path() / "shmbusd";
    write_file(stand_in, "#!/bin/sh\necho \"args: $*\" >&2\nexit 3\n");
    fs::permissions(stand_in, fs::perms(0755));
    const fs::path file = at.files.path() / "my config.yaml";

    const Outcome r =
        at.run({"check-config", file.native(), "--json"}, {"SHMBUSD=" + stand_in.native()});
    CHECK(r.code == 1);
    INFO(r.err);
    CHECK(r.err.find("args: --check-config --config=" + file.native() + " --json\n") == 0);
    CHECK(r.err.find("shmbusctl: check-config: " + stand_in.native() +
                     " --check-config exited with 3") != std::string::npos);
}

TEST_CASE("shmbusd --json without --check-config is a usage error") {
    std::string err;
    const Exit e = run_shmbusd({"--json"}, &err);
    CHECK(e.code == 64);
    CHECK(err.find("--check-config") != std::string::npos);
}
