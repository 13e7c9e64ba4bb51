// The rules for libuv callbacks (daemon/src/uv_callback.hpp): an exception that escapes a
// handler is caught inside the noexcept trampoline, never unwinds through libuv's C frames,
// and the loop goes on and still closes clean. Pinned with a real libuv loop, counting
// callbacks as libuv's own tests do.
#include "uv_callback.hpp"

#include <catch2/catch.hpp>

#include <new>
#include <stdexcept>
#include <uv.h>

using namespace shmbus::daemon;

namespace {

struct Counts {
    int handled{0};
    int escaped{0};
    int closed{0};
};

/// A trampoline as the daemon writes them: noexcept, its handler run through guarded().
/// The handler throws on its first two calls (a standard exception, then another kind).
void throwing_timer_cb(uv_timer_t* h) noexcept {
    auto* counts = static_cast<Counts*>(h->data);
    const bool ok = guarded("a test timer", [&] {
        ++counts->handled;
        if (counts->handled == 1) {
            throw std::runtime_error("handler failed");
        }
        if (counts->handled == 2) {
            throw 42; // not a std::exception
        }
    });
    if (!ok) {
        ++counts->escaped;
    }
    if (counts->handled == 3) {
        (void)uv_ok(uv_timer_stop(h), "uv_timer_stop");
        uv_close(as_handle(h),
                 [](uv_handle_t* c) noexcept { ++static_cast<Counts*>(c->data)->closed; });
    }
}

} // namespace

TEST_CASE("guarded() returns true when the handler returns, false when anything escapes it") {
    CHECK(guarded("nothing thrown", [] {}));
    CHECK_FALSE(guarded("a standard exception", [] { throw std::runtime_error("x"); }));
    CHECK_FALSE(guarded("out of memory", [] { throw std::bad_alloc(); }));
    CHECK_FALSE(guarded("another type", [] { throw 7; }));
}

TEST_CASE("an exception in a libuv callback's handler stops there, and the loop runs on and "
          "closes clean") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    uv_timer_t timer;
    REQUIRE(uv_timer_init(&loop, &timer) == 0);
    Counts counts;
    timer.data = &counts;
    REQUIRE(uv_timer_start(&timer, throwing_timer_cb, 0, 1) == 0);
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    CHECK(counts.handled == 3);
    CHECK(counts.escaped == 2);
    CHECK(counts.closed == 1);
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("uv_ok() passes success and reports a failure of the named call") {
    CHECK(uv_ok(0, "uv_nothing"));
    CHECK_FALSE(uv_ok(UV_EINVAL, "uv_something"));
    CHECK(uv_message(UV_EINVAL) == uv_strerror(UV_EINVAL));
}
