// The README's "Using the library" example is what a first-time user copies. The build
// compiles it as written (tests/unit/CMakeLists.txt, target readme_example); this checks that
// it shows what such a user must not miss.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

namespace {

/// The first ```cpp block after the "## Using the library" heading of README.md.
std::string readme_example() {
    std::ifstream in(std::string(SHMBUS_SOURCE_DIR) + "/README.md");
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    const std::string readme = text.str();
    const auto section = readme.find("## Using the library");
    REQUIRE(section != std::string::npos);
    const auto open = readme.find("```cpp\n", section);
    REQUIRE(open != std::string::npos);
    const auto close = readme.find("```", open + 7);
    REQUIRE(close != std::string::npos);
    return readme.substr(open + 7, close - open - 7);
}

} // namespace

TEST_CASE("the README's zero-copy read checks release() for data overwritten while read") {
    const std::string code = readme_example();
    const auto release = code.find("->release(");
    REQUIRE(release != std::string::npos);
    // release() is the only place a drop-policy reader learns that what it read was
    // overwritten: its result is examined, for Errc::lost, not thrown away.
    CHECK(code.find("(void)", release > 12 ? release - 12 : 0) > release);
    CHECK(code.find("Errc::lost", release) != std::string::npos);
}
