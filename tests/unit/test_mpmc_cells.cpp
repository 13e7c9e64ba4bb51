// Where an MPMC queue keeps the claim state of each position (layout.hpp, cell_index()):
// every slot has its own cell, and positions a few apart, where producers and consumers work
// at the same time, never share a cache line.
#include "shm/layout.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace shmbus::detail;

TEST_CASE("every slot of an MPMC ring has a cell of its own, whatever the ring's size") {
    for (std::uint64_t count = 2; count <= 4096; count *= 2) {
        CAPTURE(count);
        std::set<std::uint64_t> taken;
        for (std::uint64_t pos = 0; pos < count; ++pos) {
            const std::uint64_t i = cell_index(pos, count);
            CHECK(i < count);
            taken.insert(i);
            // A later lap of the same slot uses the same cell.
            CHECK(cell_index(pos + 3 * count, count) == i);
        }
        CHECK(taken.size() == count);
    }
}

TEST_CASE("consecutive positions of an MPMC ring of 16 slots or more sit on different lines") {
    for (std::uint64_t count = 16; count <= 4096; count *= 2) {
        CAPTURE(count);
        const std::uint64_t lines = count / kCellsPerLine;
        for (std::uint64_t pos = 0; pos < 2 * count; ++pos) {
            // Any positions closer than the number of lines are on different lines.
            for (std::uint64_t d = 1; d < lines && d < 8; ++d) {
                CHECK(cell_index(pos, count) / kCellsPerLine !=
                      cell_index(pos + d, count) / kCellsPerLine);
            }
        }
    }
}
