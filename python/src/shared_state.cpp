// The shared-state channels in the native core: Blackboard, Counters and Counter, over the
// C ABI's shmbus_blackboard, shmbus_counters and shmbus_counter (shmbus.h, "Shared state").
//
// What it owns: a Blackboard or Counters object owns one C handle, closed by close() or when
// the object dies. A Counter holds its Counters object (strong), so the mapping its cell lives
// in stays while the Counter does; once the Counters is closed, the Counter raises ClosedError
// instead of touching the unmapped cell.
//
// Copies: a blackboard element is read consistently by copying it (the seqlock's rule), so
// read() returns bytes; read_into() copies straight into any writable buffer the caller
// owns (a bytearray, a numpy array) and write() takes any bytes-like object without an
// intermediate copy. A counter operation is one atomic instruction on the cell in shared
// memory, no copy at all.
//
// Threads: none of these calls waits for long (a blackboard write spins a bounded number of
// times for another writer), so they keep the GIL, except open_*, which asks the daemon.
#include "module_support.hpp"

#include <cstring>
#include <string>

namespace shmbus_py {
namespace {

PyObject* g_counter_value = nullptr; // shmbus.CounterValue
PyTypeObject* g_blackboard_type = nullptr;
PyTypeObject* g_counters_type = nullptr;
PyTypeObject* g_counter_type = nullptr;

/// A Blackboard or a Counters: one C handle (nullptr once closed).
struct StateEndpoint {
    PyObject_HEAD void* handle; // shmbus_blackboard* or shmbus_counters*
    bool writer;
    char channel[SHMBUS_MAX_NAME_LENGTH + 1];
};

/// One cell of a Counters.
struct Counter {
    PyObject_HEAD StateEndpoint* owner; // strong
    shmbus_counter cell;
    char name[SHMBUS_MAX_COUNTER_NAME_LENGTH + 1];
};

shmbus_blackboard* board_of(PyObject* self) {
    return static_cast<shmbus_blackboard*>(reinterpret_cast<StateEndpoint*>(self)->handle);
}

shmbus_counters* counters_of(PyObject* self) {
    return static_cast<shmbus_counters*>(reinterpret_cast<StateEndpoint*>(self)->handle);
}

/// False with ClosedError when the endpoint is closed.
bool state_open(StateEndpoint* ep, const char* what) {
    if (ep->handle == nullptr) {
        raise_error(SHMBUS_E_CLOSED,
                    std::string(what) + ": the endpoint on '" + ep->channel + "' is closed");
        return false;
    }
    return true;
}

void close_handle(StateEndpoint* ep) {
    if (ep->handle == nullptr) {
        return;
    }
    if (Py_TYPE(ep) == g_blackboard_type) {
        shmbus_blackboard_close(static_cast<shmbus_blackboard*>(ep->handle));
    } else {
        shmbus_counters_close(static_cast<shmbus_counters*>(ep->handle));
    }
    ep->handle = nullptr;
}

/// Opens a blackboard (`blackboard`) or counters channel for Client.open_*.
PyObject* open_state(PyObject* self, PyObject* args, PyObject* kwargs, bool blackboard) {
    auto* c = reinterpret_cast<Client*>(self);
    static const char* kwlist[] = {"channel", "role", "wait", nullptr};
    const char* channel = nullptr;
    const char* role_name = nullptr;
    const char* wait = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     blackboard ? "s|ss:open_blackboard" : "s|ss:open_counters",
                                     const_cast<char**>(kwlist), &channel, &role_name, &wait)) {
        return nullptr;
    }
    std::uint32_t role = 0;
    shmbus_endpoint_options options;
    shmbus_endpoint_options_init(&options);
    if (!parse_role(role_name, role) || !parse_wait(wait, options.wait) ||
        !client_usable(c, blackboard ? "open_blackboard" : "open_counters")) {
        return nullptr;
    }
    void* handle = nullptr;
    const int rc = without_gil(&c->busy, [&] {
        if (blackboard) {
            shmbus_blackboard* b = nullptr;
            const int r = shmbus_open_blackboard(c->handle, channel, role, &options, &b);
            handle = b;
            return r;
        }
        shmbus_counters* k = nullptr;
        const int r = shmbus_open_counters(c->handle, channel, role, &options, &k);
        handle = k;
        return r;
    });
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    auto* ep = PyObject_New(StateEndpoint, blackboard ? g_blackboard_type : g_counters_type);
    if (ep == nullptr) {
        if (blackboard) {
            shmbus_blackboard_close(static_cast<shmbus_blackboard*>(handle));
        } else {
            shmbus_counters_close(static_cast<shmbus_counters*>(handle));
        }
        return nullptr;
    }
    ep->handle = handle;
    ep->writer = role == SHMBUS_ROLE_PUBLISHER;
    shmbus_channel_info info{};
    if (blackboard) {
        shmbus_blackboard_info(static_cast<shmbus_blackboard*>(handle), &info);
    } else {
        shmbus_counters_info(static_cast<shmbus_counters*>(handle), &info);
    }
    std::memcpy(ep->channel, info.name, sizeof ep->channel);
    ep->channel[sizeof ep->channel - 1] = '\0';
    return reinterpret_cast<PyObject*>(ep);
}

// ---- What Blackboard and Counters share -------------------------------------------------

void state_dealloc(PyObject* self) {
    close_handle(reinterpret_cast<StateEndpoint*>(self));
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* state_close(PyObject* self, PyObject*) {
    close_handle(reinterpret_cast<StateEndpoint*>(self));
    Py_RETURN_NONE;
}

PyObject* state_enter(PyObject* self, PyObject*) {
    Py_INCREF(self);
    return self;
}

PyObject* state_exit(PyObject* self, PyObject*) {
    close_handle(reinterpret_cast<StateEndpoint*>(self));
    Py_RETURN_FALSE;
}

PyObject* state_info(PyObject* self, void*) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    if (!state_open(ep, "info")) {
        return nullptr;
    }
    shmbus_channel_info info{};
    if (Py_TYPE(self) == g_blackboard_type) {
        shmbus_blackboard_info(board_of(self), &info);
    } else {
        shmbus_counters_info(counters_of(self), &info);
    }
    return make_channel_info(info);
}

PyObject* state_channel(PyObject* self, void*) {
    return PyUnicode_FromString(reinterpret_cast<StateEndpoint*>(self)->channel);
}

PyObject* state_role(PyObject* self, void*) {
    return PyUnicode_FromString(reinterpret_cast<StateEndpoint*>(self)->writer ? "writer"
                                                                               : "reader");
}

PyObject* state_closed(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<StateEndpoint*>(self)->handle == nullptr);
}

PyObject* state_repr(PyObject* self) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    return PyUnicode_FromFormat(
        "<shmbus.%s %s on '%s'%s>", Py_TYPE(self) == g_blackboard_type ? "Blackboard" : "Counters",
        ep->writer ? "writer" : "reader", ep->channel, ep->handle == nullptr ? ", closed" : "");
}

// ---- Blackboard -----------------------------------------------------------------------------

/// An element index argument, as the C calls take it.
bool parse_index(PyObject* obj, std::uint64_t& index) {
    index = PyLong_AsUnsignedLongLong(obj);
    if (index == static_cast<std::uint64_t>(-1) && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_IndexError, "element index %R is not a valid index", obj);
        }
        return false;
    }
    return true;
}

Py_ssize_t blackboard_len(PyObject* self) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    if (!state_open(ep, "len")) {
        return -1;
    }
    return static_cast<Py_ssize_t>(shmbus_blackboard_size(board_of(self)));
}

PyObject* blackboard_element_size(PyObject* self, void*) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    if (!state_open(ep, "element_size")) {
        return nullptr;
    }
    return PyLong_FromUnsignedLongLong(shmbus_blackboard_element_size(board_of(self)));
}

/// read(index) -> bytes: element `index`, consistent.
PyObject* blackboard_read(PyObject* self, PyObject* arg) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    std::uint64_t index = 0;
    if (!parse_index(arg, index) || !state_open(ep, "read")) {
        return nullptr;
    }
    const std::uint64_t size = shmbus_blackboard_element_size(board_of(self));
    PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
    if (bytes == nullptr) {
        return nullptr;
    }
    const int rc = shmbus_blackboard_read(board_of(self), index, PyBytes_AS_STRING(bytes),
                                          static_cast<size_t>(size), nullptr);
    if (rc != SHMBUS_OK) {
        Py_DECREF(bytes);
        return raise_last(rc);
    }
    return bytes;
}

/// read_into(index, buffer) -> version: element `index` copied into a writable buffer.
PyObject* blackboard_read_into(PyObject* self, PyObject* args) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    PyObject* index_obj = nullptr;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "Ow*:read_into", &index_obj, &out)) {
        return nullptr;
    }
    std::uint64_t index = 0;
    std::uint64_t version = 0;
    PyObject* result = nullptr;
    if (parse_index(index_obj, index) && state_open(ep, "read_into")) {
        const int rc = shmbus_blackboard_read(board_of(self), index, out.buf,
                                              static_cast<size_t>(out.len), &version);
        result = rc == SHMBUS_OK ? PyLong_FromUnsignedLongLong(version) : raise_last(rc);
    }
    PyBuffer_Release(&out);
    return result;
}

/// read_range(first, count) -> bytes: `count` consecutive elements, each consistent.
PyObject* blackboard_read_range(PyObject* self, PyObject* args) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    unsigned long long first = 0;
    Py_ssize_t count = 0;
    if (!PyArg_ParseTuple(args, "Kn:read_range", &first, &count) || !state_open(ep, "read_range")) {
        return nullptr;
    }
    const std::uint64_t size = shmbus_blackboard_element_size(board_of(self));
    if (count < 0 || (count > 0 && size > static_cast<std::uint64_t>(PY_SSIZE_T_MAX) /
                                              static_cast<std::uint64_t>(count))) {
        PyErr_Format(PyExc_ValueError, "read_range: count %zd is not a number of elements", count);
        return nullptr;
    }
    const auto total = static_cast<Py_ssize_t>(size * static_cast<std::uint64_t>(count));
    PyObject* bytes = PyBytes_FromStringAndSize(nullptr, total);
    if (bytes == nullptr) {
        return nullptr;
    }
    const int rc = shmbus_blackboard_read_range(board_of(self), first, PyBytes_AS_STRING(bytes),
                                                static_cast<size_t>(total));
    if (rc != SHMBUS_OK) {
        Py_DECREF(bytes);
        return raise_last(rc);
    }
    return bytes;
}

/// write(index, data) / write_range(first, data).
PyObject* blackboard_write_common(PyObject* self, PyObject* args, bool range) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    PyObject* index_obj = nullptr;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, range ? "Oy*:write_range" : "Oy*:write", &index_obj, &data)) {
        return nullptr;
    }
    std::uint64_t index = 0;
    PyObject* result = nullptr;
    if (parse_index(index_obj, index) && state_open(ep, range ? "write_range" : "write")) {
        const int rc = range ? shmbus_blackboard_write_range(board_of(self), index, data.buf,
                                                             static_cast<size_t>(data.len))
                             : shmbus_blackboard_write(board_of(self), index, data.buf,
                                                       static_cast<size_t>(data.len));
        if (rc == SHMBUS_OK) {
            Py_INCREF(Py_None);
            result = Py_None;
        } else {
            raise_last(rc);
        }
    }
    PyBuffer_Release(&data);
    return result;
}

PyObject* blackboard_write(PyObject* self, PyObject* args) {
    return blackboard_write_common(self, args, false);
}

PyObject* blackboard_write_range(PyObject* self, PyObject* args) {
    return blackboard_write_common(self, args, true);
}

/// What update()'s C callback needs: the Python function, and whether it failed.
struct Edit {
    PyObject* fn;
    bool failed;
};

/// The edit callback of shmbus_blackboard_update(): calls fn(bytearray of the element's
/// bytes) and, if it returns normally with the size unchanged, copies the bytearray back. A
/// bytearray rather than a view of the library's buffer, so that nothing fn keeps can point
/// into memory that is gone after the call. If fn raises, the element's bytes stay as they
/// were (the write publishes them unchanged) and the exception stays set for update().
void run_edit(void* user, void* element, size_t size) {
    auto* edit = static_cast<Edit*>(user);
    PyObject* bytes = PyByteArray_FromStringAndSize(static_cast<const char*>(element),
                                                    static_cast<Py_ssize_t>(size));
    PyObject* r = bytes != nullptr ? PyObject_CallOneArg(edit->fn, bytes) : nullptr;
    if (r != nullptr && PyByteArray_GET_SIZE(bytes) != static_cast<Py_ssize_t>(size)) {
        PyErr_Format(PyExc_ValueError,
                     "update: fn changed the element's size from %zu to %zd bytes (change the "
                     "bytes in place)",
                     size, PyByteArray_GET_SIZE(bytes));
        Py_CLEAR(r);
    }
    if (r != nullptr) {
        std::memcpy(element, PyByteArray_AS_STRING(bytes), size);
    } else {
        edit->failed = true;
    }
    Py_XDECREF(r);
    Py_XDECREF(bytes);
}

/// update(index, fn): fn(bytearray) changes element `index` under its writer lock.
PyObject* blackboard_update(PyObject* self, PyObject* args) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    PyObject* index_obj = nullptr;
    PyObject* fn = nullptr;
    if (!PyArg_ParseTuple(args, "OO:update", &index_obj, &fn)) {
        return nullptr;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "update: fn must be callable, not %R", fn);
        return nullptr;
    }
    std::uint64_t index = 0;
    if (!parse_index(index_obj, index) || !state_open(ep, "update")) {
        return nullptr;
    }
    Edit edit{fn, false};
    const int rc = shmbus_blackboard_update(board_of(self), index, run_edit, &edit);
    if (edit.failed) {
        return nullptr; // fn's exception; the element was written back unchanged
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Py_RETURN_NONE;
}

PyMethodDef blackboard_methods[] = {
    {"read", blackboard_read, METH_O,
     "read(index) -> bytes: element `index`, consistent (never a mix of two writes)."},
    {"read_into", blackboard_read_into, METH_VARARGS,
     "read_into(index, buffer) -> version: copies element `index` into a writable buffer of at "
     "least element_size bytes (a bytearray, a numpy array) and returns how many writes it has "
     "had (mod 2**32)."},
    {"read_range", blackboard_read_range, METH_VARARGS,
     "read_range(first, count) -> bytes: `count` elements from `first`, each consistent."},
    {"write", blackboard_write, METH_VARARGS,
     "write(index, data): replaces element `index` with a bytes-like object of at most "
     "element_size bytes (the rest becomes zeros)."},
    {"write_range", blackboard_write_range, METH_VARARGS,
     "write_range(first, data): writes consecutive elements from `first`; len(data) must be a "
     "multiple of element_size."},
    {"update", blackboard_update, METH_VARARGS,
     "update(index, fn): read-modify-write under the element's writer lock; fn gets a "
     "bytearray of the element's bytes and changes them in place; they are then published as "
     "one write. Keep fn short: other writers of the element wait meanwhile. If fn raises, "
     "the element stays as it was."},
    {"close", state_close, METH_NOARGS, "Leaves the channel."},
    {"__enter__", state_enter, METH_NOARGS, nullptr},
    {"__exit__", state_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef blackboard_getset[] = {
    {"element_size", blackboard_element_size, nullptr, "Bytes per element.", nullptr},
    {"info", state_info, nullptr, "The channel's ChannelInfo.", nullptr},
    {"channel", state_channel, nullptr, "The channel's name.", nullptr},
    {"role", state_role, nullptr, "'writer' or 'reader'.", nullptr},
    {"closed", state_closed, nullptr, "True once closed.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot blackboard_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(state_dealloc)},
    {Py_tp_methods, blackboard_methods},
    {Py_tp_getset, blackboard_getset},
    {Py_tp_repr, reinterpret_cast<void*>(state_repr)},
    {Py_sq_length, reinterpret_cast<void*>(blackboard_len)},
    {Py_tp_doc, const_cast<char*>("Shared state: an array of fixed-size elements read and "
                                  "written whole. Client.open_blackboard().")},
    {0, nullptr},
};

PyType_Spec blackboard_spec = {"shmbus.Blackboard", sizeof(StateEndpoint), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                               blackboard_slots};

// ---- Counters ---------------------------------------------------------------------------

PyObject* counters_capacity(PyObject* self, void*) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    if (!state_open(ep, "capacity")) {
        return nullptr;
    }
    return PyLong_FromUnsignedLongLong(shmbus_counters_capacity(counters_of(self)));
}

/// cell(name) -> Counter
PyObject* counters_cell(PyObject* self, PyObject* arg) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    const char* name = PyUnicode_AsUTF8(arg);
    if (name == nullptr || !state_open(ep, "cell")) {
        return nullptr;
    }
    shmbus_counter cell{};
    const int rc = shmbus_counters_cell(counters_of(self), name, &cell);
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    auto* c = PyObject_New(Counter, g_counter_type);
    if (c == nullptr) {
        return nullptr;
    }
    Py_INCREF(ep);
    c->owner = ep;
    c->cell = cell;
    std::strncpy(c->name, name, sizeof c->name - 1);
    c->name[sizeof c->name - 1] = '\0';
    return reinterpret_cast<PyObject*>(c);
}

/// list() -> [CounterValue(name, value, index)]
PyObject* counters_list(PyObject* self, PyObject*) {
    auto* ep = reinterpret_cast<StateEndpoint*>(self);
    if (!state_open(ep, "list")) {
        return nullptr;
    }
    const std::uint64_t capacity = shmbus_counters_capacity(counters_of(self));
    auto* values = static_cast<shmbus_counter_value*>(
        PyMem_Calloc(static_cast<size_t>(capacity) + 1, sizeof(shmbus_counter_value)));
    if (values == nullptr) {
        return PyErr_NoMemory();
    }
    size_t count = 0;
    const int rc =
        shmbus_counters_list(counters_of(self), values, static_cast<size_t>(capacity), &count);
    PyObject* list = rc == SHMBUS_OK ? PyList_New(0) : raise_last(rc);
    for (size_t i = 0; list != nullptr && i < count && i < capacity; ++i) {
        PyObject* item = PyObject_CallFunction(g_counter_value, "sKK", values[i].name,
                                               static_cast<unsigned long long>(values[i].value),
                                               static_cast<unsigned long long>(values[i].index));
        if (item == nullptr || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(item);
    }
    PyMem_Free(values);
    return list;
}

PyMethodDef counters_methods[] = {
    {"cell", counters_cell, METH_O,
     "cell(name) -> Counter: the cell called `name`; a writer creates it (value 0) if it does "
     "not exist yet."},
    {"list", counters_list, METH_NOARGS,
     "list() -> [CounterValue]: every cell that exists, in creation order."},
    {"close", state_close, METH_NOARGS, "Leaves the channel; its Counter objects stop working."},
    {"__enter__", state_enter, METH_NOARGS, nullptr},
    {"__exit__", state_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef counters_getset[] = {
    {"capacity", counters_capacity, nullptr, "How many cells the channel can hold.", nullptr},
    {"info", state_info, nullptr, "The channel's ChannelInfo.", nullptr},
    {"channel", state_channel, nullptr, "The channel's name.", nullptr},
    {"role", state_role, nullptr, "'writer' or 'reader'.", nullptr},
    {"closed", state_closed, nullptr, "True once closed.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot counters_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(state_dealloc)},
    {Py_tp_methods, counters_methods},
    {Py_tp_getset, counters_getset},
    {Py_tp_repr, reinterpret_cast<void*>(state_repr)},
    {Py_tp_doc, const_cast<char*>("Named 64-bit atomic cells shared by every process of the "
                                  "channel. Client.open_counters().")},
    {0, nullptr},
};

PyType_Spec counters_spec = {"shmbus.Counters", sizeof(StateEndpoint), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                             counters_slots};

// ---- Counter ------------------------------------------------------------------------------

void counter_dealloc(PyObject* self) {
    auto* c = reinterpret_cast<Counter*>(self);
    Py_CLEAR(c->owner);
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

/// The cell of `c`, or nullptr with ClosedError once its Counters is closed.
const shmbus_counter* cell_of(Counter* c) {
    if (c->owner->handle == nullptr) {
        raise_error(SHMBUS_E_CLOSED, std::string("counter '") + c->name + "': its Counters on '" +
                                         c->owner->channel + "' is closed");
        return nullptr;
    }
    return &c->cell;
}

/// A counter value argument: an int from 0 to 2**64 - 1 (ValueError otherwise).
bool parse_value(PyObject* obj, std::uint64_t& value) {
    value = PyLong_AsUnsignedLongLong(obj);
    if (value == static_cast<std::uint64_t>(-1) && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "%R is not a counter value (an integer from 0 to 2**64 - 1)", obj);
        }
        return false;
    }
    return true;
}

PyObject* counter_load(PyObject* self, PyObject*) {
    const shmbus_counter* cell = cell_of(reinterpret_cast<Counter*>(self));
    return cell == nullptr ? nullptr : PyLong_FromUnsignedLongLong(shmbus_counter_load(cell));
}

PyObject* counter_store(PyObject* self, PyObject* arg) {
    const shmbus_counter* cell = cell_of(reinterpret_cast<Counter*>(self));
    std::uint64_t v = 0;
    if (cell == nullptr || !parse_value(arg, v)) {
        return nullptr;
    }
    const int rc = shmbus_counter_store(cell, v);
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Py_RETURN_NONE;
}

/// fetch_add / fetch_sub / fetch_max: `op` is the C call.
template <int (*Op)(const shmbus_counter*, std::uint64_t, std::uint64_t*) noexcept>
PyObject* counter_rmw(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                      std::uint64_t default_value) {
    const shmbus_counter* cell = cell_of(reinterpret_cast<Counter*>(self));
    if (cell == nullptr) {
        return nullptr;
    }
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "expected at most one argument, got %zd", nargs);
        return nullptr;
    }
    std::uint64_t v = default_value;
    if (nargs == 1 && !parse_value(args[0], v)) {
        return nullptr;
    }
    std::uint64_t before = 0;
    const int rc = Op(cell, v, &before);
    return rc == SHMBUS_OK ? PyLong_FromUnsignedLongLong(before) : raise_last(rc);
}

PyObject* counter_fetch_add(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    return counter_rmw<shmbus_counter_fetch_add>(self, args, nargs, 1);
}

PyObject* counter_fetch_sub(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    return counter_rmw<shmbus_counter_fetch_sub>(self, args, nargs, 1);
}

PyObject* counter_fetch_max(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "fetch_max(value) takes one argument, got %zd", nargs);
        return nullptr;
    }
    return counter_rmw<shmbus_counter_fetch_max>(self, args, nargs, 0);
}

/// compare_exchange(expected, desired) -> (swapped, found)
PyObject* counter_compare_exchange(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    const shmbus_counter* cell = cell_of(reinterpret_cast<Counter*>(self));
    if (cell == nullptr) {
        return nullptr;
    }
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "compare_exchange(expected, desired) takes two arguments, got %zd", nargs);
        return nullptr;
    }
    std::uint64_t expected = 0;
    std::uint64_t desired = 0;
    if (!parse_value(args[0], expected) || !parse_value(args[1], desired)) {
        return nullptr;
    }
    int swapped = 0;
    const int rc = shmbus_counter_compare_exchange(cell, &expected, desired, &swapped);
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    return Py_BuildValue("(NK)", PyBool_FromLong(swapped),
                         static_cast<unsigned long long>(expected));
}

PyObject* counter_value(PyObject* self, void*) {
    return counter_load(self, nullptr);
}

PyObject* counter_index(PyObject* self, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<Counter*>(self)->cell.index);
}

PyObject* counter_name(PyObject* self, void*) {
    return PyUnicode_FromString(reinterpret_cast<Counter*>(self)->name);
}

PyObject* counter_repr(PyObject* self) {
    auto* c = reinterpret_cast<Counter*>(self);
    return PyUnicode_FromFormat("<shmbus.Counter '%s' #%llu of '%s'>", c->name,
                                static_cast<unsigned long long>(c->cell.index), c->owner->channel);
}

PyMethodDef counter_methods[] = {
    {"load", counter_load, METH_NOARGS, "load() -> int: the value (an acquire load)."},
    {"store", counter_store, METH_O, "store(value): sets the value (a release store)."},
    {"fetch_add", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(counter_fetch_add)),
     METH_FASTCALL, "fetch_add(delta=1) -> the value before; wraps mod 2**64."},
    {"fetch_sub", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(counter_fetch_sub)),
     METH_FASTCALL, "fetch_sub(delta=1) -> the value before; wraps mod 2**64."},
    {"fetch_max", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(counter_fetch_max)),
     METH_FASTCALL, "fetch_max(value) -> the value before; raises the value to `value` if below."},
    {"compare_exchange",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(counter_compare_exchange)),
     METH_FASTCALL,
     "compare_exchange(expected, desired) -> (swapped, found): replaces the value with "
     "`desired` if it is `expected`; `found` is the value seen."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef counter_getset[] = {
    {"value", counter_value, nullptr, "The value (as load()).", nullptr},
    {"index", counter_index, nullptr, "The cell's position in the channel.", nullptr},
    {"name", counter_name, nullptr, "The cell's name.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot counter_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(counter_dealloc)},
    {Py_tp_methods, counter_methods},
    {Py_tp_getset, counter_getset},
    {Py_tp_repr, reinterpret_cast<void*>(counter_repr)},
    {Py_tp_doc, const_cast<char*>("One cell of a counters channel: Counters.cell(). Each "
                                  "operation is one atomic instruction on shared memory.")},
    {0, nullptr},
};

PyType_Spec counter_spec = {"shmbus.Counter", sizeof(Counter), 0,
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, counter_slots};

bool add(PyObject* module, PyType_Spec* spec, PyTypeObject** out, const char* name) {
    *out = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(spec));
    return *out != nullptr &&
           PyModule_AddObjectRef(module, name, reinterpret_cast<PyObject*>(*out)) == 0;
}

} // namespace

bool parse_role(const char* name, std::uint32_t& role) {
    if (name == nullptr || std::strcmp(name, "reader") == 0) {
        role = SHMBUS_ROLE_SUBSCRIBER;
    } else if (std::strcmp(name, "writer") == 0) {
        role = SHMBUS_ROLE_PUBLISHER;
    } else {
        PyErr_Format(PyExc_ValueError, "role must be 'reader' or 'writer', not '%s'", name);
        return false;
    }
    return true;
}

PyObject* client_open_blackboard(PyObject* self, PyObject* args, PyObject* kwargs) {
    return open_state(self, args, kwargs, true);
}

PyObject* client_open_counters(PyObject* self, PyObject* args, PyObject* kwargs) {
    return open_state(self, args, kwargs, false);
}

PyObject* setup_state(PyObject*, PyObject* args) {
    PyObject* counter_value = nullptr;
    if (!PyArg_ParseTuple(args, "O:_setup_state", &counter_value)) {
        return nullptr;
    }
    Py_INCREF(counter_value);
    Py_XSETREF(g_counter_value, counter_value);
    Py_RETURN_NONE;
}

bool add_state_types(PyObject* module) {
    return add(module, &blackboard_spec, &g_blackboard_type, "Blackboard") &&
           add(module, &counters_spec, &g_counters_type, "Counters") &&
           add(module, &counter_spec, &g_counter_type, "Counter");
}

} // namespace shmbus_py
