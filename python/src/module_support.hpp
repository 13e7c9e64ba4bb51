// What the source files of the native core shmbus._shmbus share: the error helpers, the
// parsing of common arguments, the Client object, and each file's entry points into the
// module's tables. shmbus_module.cpp owns the module (its init, connect, Client, Publisher,
// Subscriber and their batches); shared_state.cpp owns Blackboard, Counters and Counter;
// rpc.cpp owns Server and Caller; pool.cpp owns Pool and Block.
//
// Every function here is called with the GIL held. A function returning PyObject* or bool
// reports failure as nullptr / false with a Python exception set.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shmbus/shmbus.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace shmbus_py {

/// Longest a blocking call waits with the GIL released before it looks for signals.
inline constexpr std::int64_t kWaitSlice = 50'000'000; // ns
/// Our own code for "a signal handler raised": never a shmbus_errc.
inline constexpr int kInterrupted = -1000;

/// A connection to shmbusd: one C handle (nullptr once closed); `busy` while a call runs with
/// the GIL released.
struct Client {
    PyObject_HEAD shmbus_client* handle;
    bool busy;
};

/// Raises the shmbus exception of `code` with `message`, its Errc name and errno as attributes
/// (code, name, message, sys_errno; LostError also gets `lost`). Returns nullptr.
PyObject* raise_error(int code, const std::string& message, int sys_errno = 0,
                      std::uint64_t lost = 0);
/// Raises the exception of the last failed library call on this thread. Returns nullptr.
PyObject* raise_last(int code);
/// Raises RuntimeError: `what` ("this Client", ...) is in use by another thread.
PyObject* raise_busy(const char* what);
/// Parses a timeout argument: None waits for ever (-1), 0 tries once, a positive number of
/// seconds waits that long. False with ValueError/TypeError set on anything else.
bool parse_timeout(PyObject* obj, std::int64_t& ns);
/// Raises the TimeoutError of a blocking call `what` on `channel` that reached its deadline.
PyObject* raise_timeout(const char* what, const char* channel, std::int64_t timeout_ns);
/// Parses a wait mode name ("adaptive", "blocking", "spin"; nullptr: adaptive).
bool parse_wait(const char* name, std::uint32_t& mode);
/// Parses a role name ("reader": SHMBUS_ROLE_SUBSCRIBER, the default for nullptr; "writer":
/// SHMBUS_ROLE_PUBLISHER) of the channels opened with a role. False with ValueError set.
bool parse_role(const char* name, std::uint32_t& role);
/// Whether `c` is open and not in use by another thread; the exception naming `what` if not.
bool client_usable(Client* c, const char* what);
/// A shmbus.ChannelInfo of `info`.
PyObject* make_channel_info(const shmbus_channel_info& info);
/// Makes the type of `spec` and adds it to `module` as `name`, into *out. False with an
/// exception set.
bool add_type(PyObject* module, PyType_Spec* spec, PyTypeObject** out, const char* name);

/// Runs `call()` with the GIL released and `*busy` set meanwhile; returns what it returns.
template <class Call>
auto without_gil(bool* busy, Call&& call) {
    *busy = true;
    PyThreadState* state = PyEval_SaveThread();
    auto result = call();
    PyEval_RestoreThread(state);
    *busy = false;
    return result;
}

/// Runs `call(slice_ns)` until it succeeds, fails otherwise than by waiting, or `timeout_ns`
/// passes. The first try has timeout 0 and keeps the GIL (the fast path when data is there);
/// the waits release it, `*busy` set meanwhile, and run signal handlers between slices.
/// Returns the last code; kInterrupted if a handler raised; SHMBUS_E_TIMED_OUT at the deadline.
template <class Call>
int call_waiting(bool* busy, std::int64_t timeout_ns, Call&& call) {
    int rc = call(std::int64_t{0});
    if (rc != SHMBUS_E_WOULD_BLOCK || timeout_ns == 0) {
        return rc;
    }
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::nanoseconds(timeout_ns);
    for (;;) {
        std::int64_t slice = kWaitSlice;
        if (timeout_ns > 0) {
            const auto left =
                std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now())
                    .count();
            if (left <= 0) {
                return SHMBUS_E_TIMED_OUT;
            }
            slice = std::min<std::int64_t>(slice, left);
        }
        rc = without_gil(busy, [&] { return call(slice); });
        if (rc != SHMBUS_E_TIMED_OUT) {
            return rc;
        }
        if (PyErr_CheckSignals() < 0) {
            return kInterrupted;
        }
    }
}

// ---- shared_state.cpp ---------------------------------------------------------------------

/// Client.open_blackboard(channel, role="reader", wait="adaptive") -> Blackboard
PyObject* client_open_blackboard(PyObject* self, PyObject* args, PyObject* kwargs);
/// Client.open_counters(channel, role="reader", wait="adaptive") -> Counters
PyObject* client_open_counters(PyObject* self, PyObject* args, PyObject* kwargs);
/// _setup_state(CounterValue): the record class shmbus/__init__.py defines for list().
PyObject* setup_state(PyObject* module, PyObject* args);
/// Adds Blackboard, Counters and Counter to `module`. False with an exception set.
bool add_state_types(PyObject* module);

// ---- rpc.cpp ------------------------------------------------------------------------------

/// Client.open_server(channel, wait="adaptive", spin_iterations=0) -> Server
PyObject* client_open_server(PyObject* self, PyObject* args, PyObject* kwargs);
/// Client.open_caller(channel, wait="adaptive", spin_iterations=0, wait_for_server=False)
/// -> Caller
PyObject* client_open_caller(PyObject* self, PyObject* args, PyObject* kwargs);
/// _setup_rpc(Request): the record class shmbus/__init__.py defines for Server.receive().
PyObject* setup_rpc(PyObject* module, PyObject* args);
/// Adds Server and Caller to `module`. False with an exception set.
bool add_rpc_types(PyObject* module);

// ---- pool.cpp -----------------------------------------------------------------------------

/// Client.open_pool(channel, role="reader", wait="adaptive") -> Pool
PyObject* client_open_pool(PyObject* self, PyObject* args, PyObject* kwargs);
/// Adds Pool and Block to `module`. False with an exception set.
bool add_pool_types(PyObject* module);

} // namespace shmbus_py
