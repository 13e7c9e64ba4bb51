// Per-uid quotas: who may have one more connection, endpoint or dynamic channel, and the
// error that names the key an operator raises. Pure decisions, pinned without a daemon.
#include "uid_quota.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace shmbus;
using namespace shmbus::daemon;

namespace {

Limits small_limits() {
    Limits l;
    l.max_clients = 10;
    l.admin_reserve = 3;
    l.per_uid.max_connections = 4;
    l.per_uid.max_open_channels = 5;
    l.per_uid.max_dynamic_channels = 2;
    l.per_uid.max_segment_bytes = 1000;
    return l;
}

void check_refused(const Result<void>& r, const std::string& detail) {
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::limit_reached);
    CHECK(r.error().detail == detail);
}

} // namespace

TEST_CASE("a uid may hold limits.per_uid.max_connections connections, and no more") {
    const Limits l = small_limits();
    CHECK(admit_connection(l, 1000, false, 3, 3));
    check_refused(admit_connection(l, 1000, false, 4, 4),
                  "uid 1000 has 4 connections open; limits.per_uid.max_connections is 4");
    // Another uid is not held back by the first one's connections.
    CHECK(admit_connection(l, 1001, false, 4, 0));
}

TEST_CASE("the admin reserve of limits.max_clients is open to root and the admins only") {
    const Limits l = small_limits();
    CHECK(admit_connection(l, 1000, false, 6, 0));
    check_refused(admit_connection(l, 1000, false, 7, 0),
                  "the daemon serves 7 clients; limits.max_clients is 10, of which "
                  "limits.admin_reserve (3) are kept for root and the admins");
    CHECK(admit_connection(l, 0, true, 7, 0));
    CHECK(admit_connection(l, 0, true, 9, 9)); // and no per-uid count for them
    check_refused(admit_connection(l, 0, true, 10, 10),
                  "the daemon serves 10 clients, limits.max_clients is 10");
}

TEST_CASE("a reserve as large as limits.max_clients leaves nothing to others, and never "
          "wraps around") {
    Limits l = small_limits();
    l.admin_reserve = 12;
    REQUIRE_FALSE(admit_connection(l, 1000, false, 0, 0));
    CHECK(admit_connection(l, 0, true, 0, 0));
}

TEST_CASE("a uid's endpoints over all its clients are limited by "
          "limits.per_uid.max_open_channels") {
    const Limits l = small_limits();
    CHECK(admit_endpoint(l.per_uid, 1000, 4));
    check_refused(admit_endpoint(l.per_uid, 1000, 5),
                  "uid 1000 has 5 endpoints open; limits.per_uid.max_open_channels is 5");
}

TEST_CASE("a uid's dynamic channels are limited in number and in segment bytes") {
    const Limits l = small_limits();
    CHECK(admit_dynamic_channel(l.per_uid, 1000, 1, 400, "c", 600));
    check_refused(admit_dynamic_channel(l.per_uid, 1000, 2, 400, "c", 10),
                  "cannot create channel 'c': uid 1000 has created 2 channels; "
                  "limits.per_uid.max_dynamic_channels is 2");
    check_refused(admit_dynamic_channel(l.per_uid, 1000, 1, 400, "c", 601),
                  "cannot create channel 'c': it needs 601 bytes, the channels uid 1000 "
                  "created hold 400 and limits.per_uid.max_segment_bytes is 1000");
    // One channel larger than the whole quota, with nothing held: no wrap-around either.
    REQUIRE_FALSE(admit_dynamic_channel(l.per_uid, 1000, 0, 0, "c", 1001));
}
