// What the source files of the native core shmbus._shmbus share: the error helpers, the
// parsing of common arguments, the Client object, and each file's entry points into the
// module's tables. shmbus_module.cpp owns the module (its init, connect, Client, Publisher,
// Subscriber and their batches); shared_state.cpp owns Blackboard, Counters and Counter.
//
// Every function here is called with the GIL held. A function returning PyObject* or bool
// reports failure as nullptr / false with a Python exception set.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shmbus/shmbus.h>

#include <cstdint>
#include <string>

namespace shmbus_py {

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
/// Parses a wait mode name ("adaptive", "blocking", "spin"; nullptr: adaptive).
bool parse_wait(const char* name, std::uint32_t& mode);
/// Whether `c` is open and not in use by another thread; the exception naming `what` if not.
bool client_usable(Client* c, const char* what);
/// A shmbus.ChannelInfo of `info`.
PyObject* make_channel_info(const shmbus_channel_info& info);

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

// ---- shared_state.cpp ---------------------------------------------------------------------

/// Client.open_blackboard(channel, role="reader", wait="adaptive") -> Blackboard
PyObject* client_open_blackboard(PyObject* self, PyObject* args, PyObject* kwargs);
/// Client.open_counters(channel, role="reader", wait="adaptive") -> Counters
PyObject* client_open_counters(PyObject* self, PyObject* args, PyObject* kwargs);
/// _setup_state(CounterValue): the record class shmbus/__init__.py defines for list().
PyObject* setup_state(PyObject* module, PyObject* args);
/// Adds Blackboard, Counters and Counter to `module`. False with an exception set.
bool add_state_types(PyObject* module);

} // namespace shmbus_py
