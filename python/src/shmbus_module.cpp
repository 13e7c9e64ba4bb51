// shmbus._shmbus: the Python binding's native core, written on the CPython C API over the C ABI
// of libshmbus (shmbus/shmbus.h). The package shmbus (python/shmbus/__init__.py) re-exports it
// and adds the exception classes and the plain record types; docs/python.md says why the
// binding is written this way rather than with pybind11 or cffi.
//
// What it owns: Client, Publisher and Subscriber objects each own one C handle, closed by
// close() or when the object dies (Server and Caller likewise, in rpc.cpp; Pool and Block in
// pool.cpp). Zero-copy batches (Reservation for a publisher, Batch for a subscriber) hand out
// Message objects, each a buffer exporter over one ring slot; msg.data and reservation[i] are
// memoryviews over them.
//
// The lifetime rule, which keeps Python from ever reading or writing a slot it no longer holds:
// a slot is reachable from Python only through the buffer protocol of its Message, and every
// Message counts its exports. Before a batch is released (or a reservation committed or
// abandoned, or its endpoint closed) every memoryview the binding handed out is released, so
// that using it raises ValueError; if anything else still holds the slot's memory (a slice of
// msg.data, a numpy array over it, a memoryview(msg) of the user's own), the release refuses
// with BufferError, as mmap.close() does, and the batch stays held until those are dropped.
// Nothing is released under a live view.
//
// Threads: every blocking call releases the GIL, in slices of kWaitSlice, checking for signals
// between slices so that Ctrl-C interrupts a blocking receive within about one slice. While the
// GIL is released the endpoint (or client) is marked busy: a second thread that calls into it
// meanwhile gets RuntimeError instead of racing the first inside the library, whose handles are
// one-thread-at-a-time. The library's error message is thread-local and fetched on the thread
// that made the call, after the GIL is taken back (the thread is the same).
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shmbus/shmbus.h>

#include "module_support.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

// The module's code lives in namespace shmbus_py, shared with the other source files through
// module_support.hpp; the library is built with hidden visibility, so only PyInit__shmbus is
// exported.
namespace shmbus_py {

// ---- Module-wide references, set by _setup() from shmbus/__init__.py ---------------------

PyObject* g_error_classes[SHMBUS_E_PROTOCOL_ERROR + 1] = {}; // by code; [0] is shmbus.Error
PyObject* g_channel_info = nullptr;                          // shmbus.ChannelInfo
PyObject* g_channel_stats = nullptr;                         // shmbus.ChannelStats
PyObject* g_channel_summary = nullptr;                       // shmbus.ChannelSummary
PyObject* g_received = nullptr;                              // shmbus.Received

/// Raises the shmbus exception of `code` with `message`, its Errc name and errno as attributes
/// (code, name, message, sys_errno; LostError also gets `lost`). Returns nullptr.
PyObject* raise_error(int code, const std::string& message, int sys_errno, std::uint64_t lost) {
    PyObject* cls =
        (code > 0 && code <= SHMBUS_E_PROTOCOL_ERROR) ? g_error_classes[code] : g_error_classes[0];
    if (cls == nullptr) {
        PyErr_Format(PyExc_RuntimeError, "shmbus: %s (the package was not set up)",
                     message.c_str());
        return nullptr;
    }
    PyObject* text = PyUnicode_FromString(message.c_str());
    if (text == nullptr) {
        return nullptr;
    }
    PyObject* exc = PyObject_CallOneArg(cls, text);
    Py_DECREF(text);
    if (exc == nullptr) {
        return nullptr;
    }
    PyObject* code_obj = PyLong_FromLong(code);
    PyObject* name_obj = PyUnicode_FromString(shmbus_errc_name(code));
    PyObject* msg_obj = PyUnicode_FromString(message.c_str());
    PyObject* errno_obj = PyLong_FromLong(sys_errno);
    PyObject* lost_obj = PyLong_FromUnsignedLongLong(lost);
    if (code_obj && name_obj && msg_obj && errno_obj && lost_obj &&
        PyObject_SetAttrString(exc, "code", code_obj) == 0 &&
        PyObject_SetAttrString(exc, "name", name_obj) == 0 &&
        PyObject_SetAttrString(exc, "message", msg_obj) == 0 &&
        PyObject_SetAttrString(exc, "sys_errno", errno_obj) == 0 &&
        (code != SHMBUS_E_LOST || PyObject_SetAttrString(exc, "lost", lost_obj) == 0)) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
    }
    Py_XDECREF(code_obj);
    Py_XDECREF(name_obj);
    Py_XDECREF(msg_obj);
    Py_XDECREF(errno_obj);
    Py_XDECREF(lost_obj);
    Py_DECREF(exc);
    return nullptr;
}

/// Raises the exception of the last failed library call on this thread. Returns nullptr.
PyObject* raise_last(int code) {
    if (code == kInterrupted) {
        return nullptr; // the signal handler's exception is set already
    }
    return raise_error(code, shmbus_last_error_message(), shmbus_last_error_errno());
}

/// Parses a timeout argument: None waits for ever (-1), 0 tries once, a positive number of
/// seconds waits that long. False with ValueError/TypeError set on anything else.
bool parse_timeout(PyObject* obj, std::int64_t& ns) {
    if (obj == nullptr || obj == Py_None) {
        ns = SHMBUS_WAIT_FOREVER;
        return true;
    }
    const double s = PyFloat_AsDouble(obj);
    if (s == -1.0 && PyErr_Occurred()) {
        return false;
    }
    if (!(s >= 0.0) || std::isinf(s)) {
        PyErr_Format(PyExc_ValueError,
                     "timeout must be None (wait for ever) or a number of seconds >= 0, not %R",
                     obj);
        return false;
    }
    const double n = s * 1e9;
    ns = n >= 9.2e18 ? SHMBUS_WAIT_FOREVER : static_cast<std::int64_t>(n);
    if (s > 0.0 && ns == 0) {
        ns = 1; // a positive timeout below 1 ns still waits, it does not merely try
    }
    return true;
}

/// Parses a wait mode name.
bool parse_wait(const char* name, std::uint32_t& mode) {
    if (name == nullptr || std::strcmp(name, "adaptive") == 0) {
        mode = SHMBUS_WAIT_ADAPTIVE;
    } else if (std::strcmp(name, "blocking") == 0) {
        mode = SHMBUS_WAIT_BLOCKING;
    } else if (std::strcmp(name, "spin") == 0) {
        mode = SHMBUS_WAIT_SPIN;
    } else {
        PyErr_Format(PyExc_ValueError, "wait must be 'adaptive', 'blocking' or 'spin', not '%s'",
                     name);
        return false;
    }
    return true;
}

/// The TimeoutError of a blocking call that reached the caller's deadline.
PyObject* raise_timeout(const char* what, const char* channel, std::int64_t timeout_ns) {
    char text[256];
    std::snprintf(text, sizeof text, "%s on '%s': nothing could proceed within %.3f s", what,
                  channel, static_cast<double>(timeout_ns) / 1e9);
    return raise_error(SHMBUS_E_TIMED_OUT, text);
}

PyObject* raise_busy(const char* what) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s is in use by another thread (a client or endpoint is used by one thread at "
                 "a time)",
                 what);
    return nullptr;
}

// ---- Types --------------------------------------------------------------------------------

struct Message;
struct Batch;

/// A Publisher or a Subscriber: one C handle, and the batch it has outstanding.
struct Endpoint {
    PyObject_HEAD void* handle; // shmbus_publisher* or shmbus_subscriber*; nullptr once closed
    bool publisher;             // which of the two
    bool busy;                  // a call runs with the GIL released
    bool waiting;               // an asyncio task awaits this endpoint's wait handle (_waiting)
    bool outstanding;           // the C library holds a reservation or batch for this endpoint
    char channel[SHMBUS_MAX_NAME_LENGTH + 1];
    std::uint64_t slot_size;
    Batch* batch;       // borrowed: the live Batch/Reservation object of the outstanding batch
    Message** slots;    // borrowed: its live Message objects (entries nulled as they die)
    Py_ssize_t n_slots; // entries of `slots`
};

/// One slot of a batch, exporting its memory through the buffer protocol while `valid`.
struct Message {
    PyObject_HEAD Endpoint* owner; // strong: the mapping stays while a Message exists
    Py_ssize_t index;              // in owner->slots
    void* data;
    Py_ssize_t length;
    unsigned long long sequence;
    bool readonly;
    bool valid; // false once the batch is released: no new export
    Py_ssize_t exports;
    PyObject* view; // the memoryview handed out (msg.data, reservation[i]), or nullptr
};

/// A subscriber's batch (read in place) or a publisher's reservation (written in place).
struct Batch {
    PyObject_HEAD Endpoint* owner; // strong
    PyObject* messages;            // tuple of Message
    Py_ssize_t next;               // iteration position
    unsigned long long lost_before;
    std::uint64_t* lengths; // reservation: per slot, kUnset until set_length()
    bool done;              // released / committed / abandoned
};

constexpr std::uint64_t kUnset = UINT64_MAX;

PyTypeObject* g_message_type = nullptr;
PyTypeObject* g_batch_type = nullptr;
PyTypeObject* g_reservation_type = nullptr;
PyTypeObject* g_publisher_type = nullptr;
PyTypeObject* g_subscriber_type = nullptr;
PyTypeObject* g_client_type = nullptr;

// ---- Message --------------------------------------------------------------------------------

int message_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    auto* m = reinterpret_cast<Message*>(self);
    if (!m->valid) {
        PyErr_Format(PyExc_BufferError,
                     "message #%llu of '%s' was released: its slot may hold another message now",
                     m->sequence, m->owner->channel);
        view->obj = nullptr;
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, m->data, m->length, m->readonly ? 1 : 0, flags) < 0) {
        return -1;
    }
    ++m->exports;
    return 0;
}

void message_releasebuffer(PyObject* self, Py_buffer*) {
    --reinterpret_cast<Message*>(self)->exports;
}

void message_dealloc(PyObject* self) {
    auto* m = reinterpret_cast<Message*>(self);
    Py_CLEAR(m->view);
    if (m->owner != nullptr) {
        Endpoint* ep = m->owner;
        if (m->index >= 0 && m->index < ep->n_slots && ep->slots[m->index] == m) {
            ep->slots[m->index] = nullptr;
        }
        Py_DECREF(ep);
    }
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* message_data(PyObject* self, void*) {
    auto* m = reinterpret_cast<Message*>(self);
    if (m->view == nullptr) {
        m->view = PyMemoryView_FromObject(self); // raises BufferError once released
        if (m->view == nullptr) {
            return nullptr;
        }
    }
    Py_INCREF(m->view);
    return m->view;
}

PyObject* message_sequence(PyObject* self, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<Message*>(self)->sequence);
}

Py_ssize_t message_len(PyObject* self) {
    return reinterpret_cast<Message*>(self)->length;
}

PyObject* message_repr(PyObject* self) {
    auto* m = reinterpret_cast<Message*>(self);
    return PyUnicode_FromFormat("<shmbus.Message #%llu of '%s', %zd bytes%s>", m->sequence,
                                m->owner->channel, m->length, m->valid ? "" : ", released");
}

PyGetSetDef message_getset[] = {
    {"data", message_data, nullptr,
     "A memoryview of the message's bytes in the ring slot (read-only for a subscriber, "
     "writable for a reservation). Released with the batch.",
     nullptr},
    {"sequence", message_sequence, nullptr, "The message's sequence number.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot message_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(message_dealloc)},
    {Py_tp_getset, message_getset},
    {Py_tp_repr, reinterpret_cast<void*>(message_repr)},
    {Py_sq_length, reinterpret_cast<void*>(message_len)},
    {Py_bf_getbuffer, reinterpret_cast<void*>(message_getbuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(message_releasebuffer)},
    {Py_tp_doc, const_cast<char*>("One message of a batch: its sequence and, while the batch "
                                  "is held, its bytes in place (data).")},
    {0, nullptr},
};

PyType_Spec message_spec = {"shmbus.Message", sizeof(Message), 0,
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, message_slots};

/// A new Message over `data`, registered in the endpoint's slot table at `index`.
Message* new_message(Endpoint* ep, Py_ssize_t index, void* data, std::uint64_t length,
                     std::uint64_t sequence, bool readonly) {
    auto* m = PyObject_New(Message, g_message_type);
    if (m == nullptr) {
        return nullptr;
    }
    Py_INCREF(ep);
    m->owner = ep;
    m->index = index;
    m->data = data;
    m->length = static_cast<Py_ssize_t>(length);
    m->sequence = sequence;
    m->readonly = readonly;
    m->valid = true;
    m->exports = 0;
    m->view = nullptr;
    ep->slots[index] = m;
    return m;
}

// ---- Endpoint: the outstanding batch ------------------------------------------------------

/// Takes every view of the outstanding batch away. Fails with BufferError, leaving the batch
/// held, while something other than the binding's own memoryviews still exports a slot.
bool detach_views(Endpoint* ep) {
    // Releasing a view can drop the last reference to its Message (the view's buffer held
    // it): every live Message is held here until the end, so none dies under this loop.
    std::vector<Message*> live;
    live.reserve(static_cast<size_t>(ep->n_slots));
    for (Py_ssize_t i = 0; i < ep->n_slots; ++i) {
        if (Message* m = ep->slots[i]; m != nullptr) {
            Py_INCREF(m);
            live.push_back(m);
        }
    }
    const auto drop_live = [&live] {
        for (Message* m : live) {
            Py_DECREF(m); // may free it: it unlinks itself from ep->slots unless detached
        }
    };
    Py_ssize_t held = 0;
    unsigned long long first = 0;
    for (Message* m : live) {
        if (m->view != nullptr) {
            PyObject* r = PyObject_CallMethod(m->view, "release", nullptr);
            if (r == nullptr) {
                if (!PyErr_ExceptionMatches(PyExc_BufferError)) {
                    drop_live();
                    return false;
                }
                PyErr_Clear(); // a view of the view (numpy array, ...): counted below
            }
            Py_XDECREF(r);
        }
        if (m->exports > 0 && held++ == 0) {
            first = m->sequence;
        }
    }
    if (held > 0) {
        PyErr_Format(PyExc_BufferError,
                     "%zd message(s) of the batch on '%s' (the first #%llu) are still viewed by "
                     "a slice, an array or a memoryview of their data: drop those (del) or copy "
                     "them (bytes(), .copy()) before the batch is %s",
                     held, ep->channel, first, ep->publisher ? "committed" : "released");
        drop_live();
        return false;
    }
    for (Message* m : live) {
        m->valid = false;
        m->index = -1;
    }
    PyMem_Free(ep->slots);
    ep->slots = nullptr;
    ep->n_slots = 0;
    drop_live();
    return true;
}

/// Ends the outstanding batch: views detached first, then the library's release (subscriber;
/// `*lost` gets the loss), commit (publisher with `lengths`) or abandon (publisher without).
/// Returns SHMBUS_OK or a library code; -2 with a Python error set when views still live.
int finish_batch(Endpoint* ep, const std::uint64_t* lengths, Py_ssize_t count,
                 std::uint64_t* lost) {
    if (!ep->outstanding) {
        return SHMBUS_OK;
    }
    if (!detach_views(ep)) {
        return -2;
    }
    int rc = SHMBUS_OK;
    if (ep->publisher) {
        auto* pub = static_cast<shmbus_publisher*>(ep->handle);
        if (lengths != nullptr) {
            rc = shmbus_publisher_commit(pub, lengths, static_cast<size_t>(count));
            if (rc != SHMBUS_OK) {
                shmbus_publisher_abandon(pub); // the views are gone: it cannot be refilled
            }
        } else {
            shmbus_publisher_abandon(pub);
        }
    } else {
        std::uint64_t n = 0;
        rc = shmbus_subscriber_release(static_cast<shmbus_subscriber*>(ep->handle), &n);
        if (lost != nullptr) {
            *lost = n;
        }
    }
    ep->outstanding = false;
    if (ep->batch != nullptr) {
        ep->batch->done = true;
        ep->batch = nullptr;
    }
    return rc;
}

/// Before a new batch: refuses while a live batch object holds the last one; ends one whose
/// object is gone (its views lingered when it died). False with an exception set.
bool ready_for_batch(Endpoint* ep, const char* what) {
    if (ep->handle == nullptr) {
        raise_error(SHMBUS_E_CLOSED,
                    std::string(what) + ": the endpoint on '" + ep->channel + "' is closed");
        return false;
    }
    if (ep->busy) {
        raise_busy(ep->publisher ? "this Publisher" : "this Subscriber");
        return false;
    }
    if (!ep->outstanding) {
        return true;
    }
    if (ep->batch != nullptr) {
        raise_error(SHMBUS_E_INVALID_ARGUMENT,
                    std::string(what) + " on '" + ep->channel + "': the previous " +
                        (ep->publisher ? "reservation is not committed or abandoned"
                                       : "batch is not released (leave its for loop or with "
                                         "block, or call release())"));
        return false;
    }
    std::uint64_t lost = 0;
    const int rc = finish_batch(ep, nullptr, 0, &lost);
    if (rc == -2) {
        return false;
    }
    return true; // a loss here is counted in Subscriber.lost
}

// ---- Batch / Reservation ------------------------------------------------------------------

void batch_dealloc(PyObject* self) {
    auto* b = reinterpret_cast<Batch*>(self);
    if (!b->done && b->owner != nullptr && b->owner->batch == b) {
        // Ended quietly: a subscriber's loss stays counted in Subscriber.lost; if views still
        // live the batch stays held, and the next receive/reserve/close ends it.
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        b->owner->batch = nullptr;
        std::uint64_t lost = 0;
        if (finish_batch(b->owner, nullptr, 0, &lost) == -2) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, tb);
    }
    Py_CLEAR(b->messages);
    Py_CLEAR(b->owner);
    PyMem_Free(b->lengths);
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

Py_ssize_t batch_len(PyObject* self) {
    return PyTuple_GET_SIZE(reinterpret_cast<Batch*>(self)->messages);
}

bool batch_check_index(Batch* b, Py_ssize_t& i) {
    const Py_ssize_t n = PyTuple_GET_SIZE(b->messages);
    if (i < 0) {
        i += n;
    }
    if (i < 0 || i >= n) {
        PyErr_Format(PyExc_IndexError, "index out of range: the batch has %zd message(s)", n);
        return false;
    }
    return true;
}

PyObject* batch_item(PyObject* self, Py_ssize_t i) {
    auto* b = reinterpret_cast<Batch*>(self);
    if (!batch_check_index(b, i)) {
        return nullptr;
    }
    PyObject* m = PyTuple_GET_ITEM(b->messages, i);
    Py_INCREF(m);
    return m;
}

/// Releases a subscriber's batch: LostError (with .lost) if messages were overwritten while
/// held (drop policy), BufferError if views of it still live.
PyObject* batch_release(PyObject* self, PyObject*) {
    auto* b = reinterpret_cast<Batch*>(self);
    if (b->done) {
        Py_RETURN_NONE;
    }
    if (b->owner->busy) {
        return raise_busy("this Subscriber");
    }
    std::uint64_t lost = 0;
    const int rc = finish_batch(b->owner, nullptr, 0, &lost);
    if (rc == -2) {
        return nullptr;
    }
    if (rc == SHMBUS_E_LOST) {
        return raise_error(rc, shmbus_last_error_message(), 0, lost);
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Py_RETURN_NONE;
}

PyObject* batch_iter(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* batch_iternext(PyObject* self) {
    auto* b = reinterpret_cast<Batch*>(self);
    if (b->next < PyTuple_GET_SIZE(b->messages)) {
        PyObject* m = PyTuple_GET_ITEM(b->messages, b->next++);
        Py_INCREF(m);
        return m;
    }
    // The iteration ends: the batch is released, and a loss surfaces as LostError here.
    PyObject* r = batch_release(self, nullptr);
    Py_XDECREF(r);
    return nullptr;
}

PyObject* batch_enter(PyObject* self, PyObject*) {
    Py_INCREF(self);
    return self;
}

PyObject* batch_exit(PyObject* self, PyObject*) {
    PyObject* r = batch_release(self, nullptr);
    if (r == nullptr) {
        return nullptr;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

PyObject* batch_lost_before(PyObject* self, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<Batch*>(self)->lost_before);
}

PyObject* batch_released(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<Batch*>(self)->done);
}

PyMethodDef batch_methods[] = {
    {"release", batch_release, METH_NOARGS,
     "Gives the messages back to the ring; their memoryviews are released. LostError (its "
     "`lost` says how many) if a drop-policy publisher overwrote them meanwhile: discard what "
     "was read. BufferError, the batch still held, while a slice or array of a message's data "
     "lives."},
    {"__enter__", batch_enter, METH_NOARGS, nullptr},
    {"__exit__", batch_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef batch_getset[] = {
    {"lost_before", batch_lost_before, nullptr,
     "Messages this subscriber lost (drop policy) just before this batch.", nullptr},
    {"released", batch_released, nullptr, "True once the batch is released.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot batch_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(batch_dealloc)},
    {Py_tp_iter, reinterpret_cast<void*>(batch_iter)},
    {Py_tp_iternext, reinterpret_cast<void*>(batch_iternext)},
    {Py_tp_methods, batch_methods},
    {Py_tp_getset, batch_getset},
    {Py_sq_length, reinterpret_cast<void*>(batch_len)},
    {Py_sq_item, reinterpret_cast<void*>(batch_item)},
    {Py_tp_doc, const_cast<char*>("Messages received in place. Iterate it once (released at "
                                  "the end), or use it as a context manager.")},
    {0, nullptr},
};

PyType_Spec batch_spec = {"shmbus.Batch", sizeof(Batch), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, batch_slots};

// Reservation: the same object layout, for a publisher.

PyObject* reservation_item(PyObject* self, Py_ssize_t i) {
    auto* b = reinterpret_cast<Batch*>(self);
    if (!batch_check_index(b, i)) {
        return nullptr;
    }
    return message_data(PyTuple_GET_ITEM(b->messages, i), nullptr);
}

PyObject* reservation_set_length(PyObject* self, PyObject* args) {
    auto* b = reinterpret_cast<Batch*>(self);
    Py_ssize_t i = 0;
    unsigned long long n = 0;
    if (!PyArg_ParseTuple(args, "nK:set_length", &i, &n) || !batch_check_index(b, i)) {
        return nullptr;
    }
    if (b->done) {
        return raise_error(SHMBUS_E_INVALID_ARGUMENT,
                           "set_length: the reservation is already committed or abandoned");
    }
    if (n > b->owner->slot_size) {
        char text[200];
        std::snprintf(text, sizeof text,
                      "set_length: %llu bytes for slot %zd, but the slots of '%s' hold %llu", n, i,
                      b->owner->channel, static_cast<unsigned long long>(b->owner->slot_size));
        return raise_error(SHMBUS_E_MESSAGE_TOO_LARGE, text);
    }
    b->lengths[i] = n;
    Py_RETURN_NONE;
}

PyObject* reservation_sequence(PyObject* self, PyObject* arg) {
    auto* b = reinterpret_cast<Batch*>(self);
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || !batch_check_index(b, i)) {
        return nullptr;
    }
    return message_sequence(PyTuple_GET_ITEM(b->messages, i), nullptr);
}

PyObject* reservation_commit(PyObject* self, PyObject*) {
    auto* b = reinterpret_cast<Batch*>(self);
    if (b->done) {
        return raise_error(SHMBUS_E_INVALID_ARGUMENT,
                           "commit: the reservation is already committed or abandoned");
    }
    if (b->owner->busy) {
        return raise_busy("this Publisher");
    }
    const Py_ssize_t n = PyTuple_GET_SIZE(b->messages);
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (b->lengths[i] == kUnset) {
            char text[200];
            std::snprintf(text, sizeof text,
                          "commit on '%s': slot %zd of %zd has no length: call set_length() "
                          "for every slot reserved (or abandon())",
                          b->owner->channel, i, n);
            return raise_error(SHMBUS_E_INVALID_ARGUMENT, text);
        }
    }
    const int rc = finish_batch(b->owner, b->lengths, n, nullptr);
    if (rc == -2) {
        return nullptr;
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Py_RETURN_NONE;
}

PyObject* reservation_abandon(PyObject* self, PyObject*) {
    auto* b = reinterpret_cast<Batch*>(self);
    if (b->done) {
        Py_RETURN_NONE;
    }
    if (b->owner->busy) {
        return raise_busy("this Publisher");
    }
    if (finish_batch(b->owner, nullptr, 0, nullptr) == -2) {
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* reservation_exit(PyObject* self, PyObject* args) {
    PyObject* exc_type = Py_None;
    if (PyTuple_GET_SIZE(args) > 0) {
        exc_type = PyTuple_GET_ITEM(args, 0);
    }
    PyObject* r = exc_type == Py_None ? reservation_commit(self, nullptr)
                                      : reservation_abandon(self, nullptr);
    if (r == nullptr) {
        if (exc_type == Py_None) {
            // A failed commit leaves nothing half-done: the slots are given back unpublished.
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyObject* a = reservation_abandon(self, nullptr);
            Py_XDECREF(a);
            PyErr_Clear();
            PyErr_Restore(t, v, tb);
        }
        return nullptr;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

PyObject* reservation_capacity(PyObject* self, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<Batch*>(self)->owner->slot_size);
}

PyMethodDef reservation_methods[] = {
    {"set_length", reservation_set_length, METH_VARARGS,
     "set_length(i, n): message i will be the first n bytes of slot i."},
    {"sequence", reservation_sequence, METH_O, "sequence(i): the sequence slot i's message gets."},
    {"commit", reservation_commit, METH_NOARGS,
     "Publishes every slot with its length; their memoryviews are released."},
    {"abandon", reservation_abandon, METH_NOARGS,
     "Gives the slots back unpublished (readers skip them)."},
    {"__enter__", batch_enter, METH_NOARGS, nullptr},
    {"__exit__", reservation_exit, METH_VARARGS,
     "Commits on a normal exit, abandons when the block raised."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef reservation_getset[] = {
    {"capacity", reservation_capacity, nullptr, "Bytes each slot holds.", nullptr},
    {"done", batch_released, nullptr, "True once committed or abandoned.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot reservation_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(batch_dealloc)},
    {Py_tp_methods, reservation_methods},
    {Py_tp_getset, reservation_getset},
    {Py_sq_length, reinterpret_cast<void*>(batch_len)},
    {Py_sq_item, reinterpret_cast<void*>(reservation_item)},
    {Py_tp_doc, const_cast<char*>("Slots reserved for writing in place: r[i] is a writable "
                                  "memoryview of slot i; set_length() each, then commit().")},
    {0, nullptr},
};

PyType_Spec reservation_spec = {"shmbus.Reservation", sizeof(Batch), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                                reservation_slots};

/// A new Batch/Reservation object for `n` slots, registered as the endpoint's outstanding one.
Batch* new_batch(Endpoint* ep, PyTypeObject* type, Py_ssize_t n) {
    auto* b = PyObject_New(Batch, type);
    if (b == nullptr) {
        return nullptr;
    }
    Py_INCREF(ep);
    b->owner = ep;
    b->messages = nullptr;
    b->next = 0;
    b->lost_before = 0;
    b->lengths = nullptr;
    b->done = false;
    b->messages = PyTuple_New(n);
    ep->slots = static_cast<Message**>(PyMem_Calloc(static_cast<size_t>(n), sizeof(Message*)));
    if (type == g_reservation_type) {
        b->lengths = static_cast<std::uint64_t*>(
            PyMem_Malloc(static_cast<size_t>(n) * sizeof(std::uint64_t)));
    }
    if (b->messages == nullptr || ep->slots == nullptr ||
        (type == g_reservation_type && b->lengths == nullptr)) {
        PyMem_Free(ep->slots);
        ep->slots = nullptr;
        Py_DECREF(b);
        PyErr_NoMemory();
        return nullptr;
    }
    ep->n_slots = n;
    ep->outstanding = true;
    ep->batch = b;
    return b;
}

// ---- Publisher / Subscriber ---------------------------------------------------------------

void endpoint_close_handle(Endpoint* ep) {
    if (ep->handle == nullptr) {
        return;
    }
    if (ep->publisher) {
        shmbus_publisher_close(static_cast<shmbus_publisher*>(ep->handle));
    } else {
        shmbus_subscriber_close(static_cast<shmbus_subscriber*>(ep->handle));
    }
    ep->handle = nullptr;
    ep->outstanding = false;
}

void endpoint_dealloc(PyObject* self) {
    // No Message or Batch refers to it any more (they hold it), so no slot is viewed: the
    // library gives back whatever batch is still outstanding.
    auto* ep = reinterpret_cast<Endpoint*>(self);
    endpoint_close_handle(ep);
    PyMem_Free(ep->slots);
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* endpoint_close(PyObject* self, PyObject*) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    if (ep->handle == nullptr) {
        Py_RETURN_NONE;
    }
    if (ep->busy) {
        return raise_busy(ep->publisher ? "this Publisher" : "this Subscriber");
    }
    std::uint64_t lost = 0;
    if (finish_batch(ep, nullptr, 0, &lost) == -2) {
        return nullptr;
    }
    endpoint_close_handle(ep);
    Py_RETURN_NONE;
}

PyObject* endpoint_enter(PyObject* self, PyObject*) {
    Py_INCREF(self);
    return self;
}

PyObject* endpoint_exit(PyObject* self, PyObject*) {
    PyObject* r = endpoint_close(self, nullptr);
    if (r == nullptr) {
        return nullptr;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

const char* kind_name(std::uint32_t kind) {
    switch (kind) {
    case SHMBUS_KIND_QUEUE:
        return "queue";
    case SHMBUS_KIND_BROADCAST:
        return "broadcast";
    case SHMBUS_KIND_BLACKBOARD:
        return "blackboard";
    case SHMBUS_KIND_COUNTERS:
        return "counters";
    case SHMBUS_KIND_RPC:
        return "rpc";
    case SHMBUS_KIND_POOL:
        return "pool";
    }
    return "unknown";
}

PyObject* make_channel_info(const shmbus_channel_info& i) {
    return PyObject_CallFunction(g_channel_info, "sssKKIIK", i.name, kind_name(i.kind),
                                 i.overflow == SHMBUS_OVERFLOW_DROP ? "drop" : "block",
                                 static_cast<unsigned long long>(i.slot_size),
                                 static_cast<unsigned long long>(i.slot_count), i.max_publishers,
                                 i.max_subscribers, static_cast<unsigned long long>(i.creation_id));
}

PyObject* endpoint_info(PyObject* self, void*) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    if (ep->handle == nullptr) {
        return raise_error(SHMBUS_E_CLOSED,
                           std::string("info: the endpoint on '") + ep->channel + "' is closed");
    }
    shmbus_channel_info info{};
    if (ep->publisher) {
        shmbus_publisher_info(static_cast<const shmbus_publisher*>(ep->handle), &info);
    } else {
        shmbus_subscriber_info(static_cast<const shmbus_subscriber*>(ep->handle), &info);
    }
    return make_channel_info(info);
}

PyObject* endpoint_channel(PyObject* self, void*) {
    return PyUnicode_FromString(reinterpret_cast<Endpoint*>(self)->channel);
}

PyObject* endpoint_closed(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<Endpoint*>(self)->handle == nullptr);
}

PyObject* endpoint_repr(PyObject* self) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    return PyUnicode_FromFormat("<shmbus.%s on '%s'%s>", ep->publisher ? "Publisher" : "Subscriber",
                                ep->channel, ep->handle == nullptr ? ", closed" : "");
}

/// send(data, timeout=None)
PyObject* publisher_send(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    static const char* kwlist[] = {"data", "timeout", nullptr};
    Py_buffer data;
    PyObject* timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|O:send", const_cast<char**>(kwlist), &data,
                                     &timeout_obj)) {
        return nullptr;
    }
    std::int64_t timeout = 0;
    PyObject* result = nullptr;
    if (parse_timeout(timeout_obj, timeout) && ready_for_batch(ep, "send")) {
        auto* pub = static_cast<shmbus_publisher*>(ep->handle);
        const int rc = call_waiting(&ep->busy, timeout, [&](std::int64_t t) {
            return shmbus_publisher_send(pub, data.buf, static_cast<size_t>(data.len), t);
        });
        if (rc == SHMBUS_OK) {
            Py_INCREF(Py_None);
            result = Py_None;
        } else if (rc == SHMBUS_E_TIMED_OUT) {
            raise_timeout("send", ep->channel, timeout);
        } else {
            raise_last(rc);
        }
    }
    PyBuffer_Release(&data);
    return result;
}

/// Reserves up to `max_count` slots, waiting up to `timeout` ns, as a Reservation; with
/// `none_if_full`, a ring without room (timeout 0) gives None rather than WouldBlockError.
PyObject* reserve_batch(Endpoint* ep, Py_ssize_t max_count, std::int64_t timeout,
                        bool none_if_full) {
    if (!ready_for_batch(ep, "reserve")) {
        return nullptr;
    }
    if (max_count < 1) {
        return raise_error(SHMBUS_E_INVALID_ARGUMENT, "reserve: max_count must be at least 1");
    }
    std::vector<shmbus_slot> slots(static_cast<size_t>(max_count));
    size_t count = 0;
    auto* pub = static_cast<shmbus_publisher*>(ep->handle);
    const int rc = call_waiting(&ep->busy, timeout, [&](std::int64_t t) {
        return shmbus_publisher_reserve(pub, slots.data(), slots.size(), t, &count);
    });
    if (rc == SHMBUS_E_WOULD_BLOCK && none_if_full) {
        Py_RETURN_NONE;
    }
    if (rc == SHMBUS_E_TIMED_OUT) {
        return raise_timeout("reserve", ep->channel, timeout);
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Batch* b = new_batch(ep, g_reservation_type, static_cast<Py_ssize_t>(count));
    if (b == nullptr) {
        shmbus_publisher_abandon(pub);
        return nullptr;
    }
    for (size_t i = 0; i < count; ++i) {
        b->lengths[i] = kUnset;
        Message* m = new_message(ep, static_cast<Py_ssize_t>(i), slots[i].data, slots[i].capacity,
                                 slots[i].sequence, false);
        if (m == nullptr) {
            Py_DECREF(b); // abandons
            return nullptr;
        }
        PyTuple_SET_ITEM(b->messages, static_cast<Py_ssize_t>(i), reinterpret_cast<PyObject*>(m));
    }
    return reinterpret_cast<PyObject*>(b);
}

/// reserve(max_count=1, timeout=None) -> Reservation
PyObject* publisher_reserve(PyObject* self, PyObject* args, PyObject* kwargs) {
    static const char* kwlist[] = {"max_count", "timeout", nullptr};
    Py_ssize_t max_count = 1;
    PyObject* timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nO:reserve", const_cast<char**>(kwlist),
                                     &max_count, &timeout_obj)) {
        return nullptr;
    }
    std::int64_t timeout = 0;
    if (!parse_timeout(timeout_obj, timeout)) {
        return nullptr;
    }
    return reserve_batch(reinterpret_cast<Endpoint*>(self), max_count, timeout, false);
}

/// _poll_reserve(max_count) -> Reservation, or None when the ring is full: reserve_async()'s
/// try (shmbus/_aio.py).
PyObject* publisher_poll_reserve(PyObject* self, PyObject* arg) {
    const Py_ssize_t max_count = PyLong_AsSsize_t(arg);
    if (max_count == -1 && PyErr_Occurred()) {
        return nullptr;
    }
    return reserve_batch(reinterpret_cast<Endpoint*>(self), max_count, 0, true);
}

/// _poll_send(data) -> True when sent, False when the ring is full: send_async()'s try.
PyObject* publisher_poll_send(PyObject* self, PyObject* arg) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) {
        return nullptr;
    }
    PyObject* result = nullptr;
    if (ready_for_batch(ep, "send")) {
        const int rc = shmbus_publisher_send(static_cast<shmbus_publisher*>(ep->handle), data.buf,
                                             static_cast<size_t>(data.len), 0);
        if (rc == SHMBUS_OK || rc == SHMBUS_E_WOULD_BLOCK) {
            result = PyBool_FromLong(rc == SHMBUS_OK);
        } else {
            raise_last(rc);
        }
    }
    PyBuffer_Release(&data);
    return result;
}

/// Takes up to `max_count` messages, waiting up to `timeout` ns, as a Batch; with
/// `none_if_empty`, nothing to read (timeout 0) gives None rather than WouldBlockError.
PyObject* receive_batch(Endpoint* ep, Py_ssize_t max_count, std::int64_t timeout,
                        bool none_if_empty) {
    if (!ready_for_batch(ep, "receive")) {
        return nullptr;
    }
    if (max_count < 1) {
        return raise_error(SHMBUS_E_INVALID_ARGUMENT, "receive: max_count must be at least 1");
    }
    std::vector<shmbus_message> msgs(static_cast<size_t>(max_count));
    size_t count = 0;
    std::uint64_t lost_before = 0;
    auto* sub = static_cast<shmbus_subscriber*>(ep->handle);
    const int rc = call_waiting(&ep->busy, timeout, [&](std::int64_t t) {
        return shmbus_subscriber_receive(sub, msgs.data(), msgs.size(), t, &count, &lost_before);
    });
    if (rc == SHMBUS_E_WOULD_BLOCK && none_if_empty) {
        Py_RETURN_NONE;
    }
    if (rc == SHMBUS_E_TIMED_OUT) {
        return raise_timeout("receive", ep->channel, timeout);
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Batch* b = new_batch(ep, g_batch_type, static_cast<Py_ssize_t>(count));
    if (b == nullptr) {
        shmbus_subscriber_release(sub, nullptr);
        return nullptr;
    }
    b->lost_before = lost_before;
    for (size_t i = 0; i < count; ++i) {
        Message* m = new_message(ep, static_cast<Py_ssize_t>(i), const_cast<void*>(msgs[i].data),
                                 msgs[i].length, msgs[i].sequence, true);
        if (m == nullptr) {
            Py_DECREF(b); // releases
            return nullptr;
        }
        PyTuple_SET_ITEM(b->messages, static_cast<Py_ssize_t>(i), reinterpret_cast<PyObject*>(m));
    }
    return reinterpret_cast<PyObject*>(b);
}

/// receive(max_count=64, timeout=None) -> Batch
PyObject* subscriber_receive(PyObject* self, PyObject* args, PyObject* kwargs) {
    static const char* kwlist[] = {"max_count", "timeout", nullptr};
    Py_ssize_t max_count = 64;
    PyObject* timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nO:receive", const_cast<char**>(kwlist),
                                     &max_count, &timeout_obj)) {
        return nullptr;
    }
    std::int64_t timeout = 0;
    if (!parse_timeout(timeout_obj, timeout)) {
        return nullptr;
    }
    return receive_batch(reinterpret_cast<Endpoint*>(self), max_count, timeout, false);
}

/// _poll_receive(max_count) -> Batch, or None when nothing waits: receive_async()'s try.
PyObject* subscriber_poll_receive(PyObject* self, PyObject* arg) {
    const Py_ssize_t max_count = PyLong_AsSsize_t(arg);
    if (max_count == -1 && PyErr_Occurred()) {
        return nullptr;
    }
    return receive_batch(reinterpret_cast<Endpoint*>(self), max_count, 0, true);
}

/// wait_handle() -> int: the endpoint's descriptor for event loops (shmbus.h's
/// shmbus_*_wait_handle(); owned by the endpoint).
PyObject* endpoint_wait_handle(PyObject* self, PyObject*) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    if (ep->handle == nullptr) {
        return raise_error(SHMBUS_E_CLOSED, std::string("wait_handle: the endpoint on '") +
                                                ep->channel + "' is closed");
    }
    if (ep->busy) {
        return raise_busy(ep->publisher ? "this Publisher" : "this Subscriber");
    }
    int fd = -1;
    const int rc =
        ep->publisher
            ? shmbus_publisher_wait_handle(static_cast<shmbus_publisher*>(ep->handle), &fd)
            : shmbus_subscriber_wait_handle(static_cast<shmbus_subscriber*>(ep->handle), &fd);
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    return PyLong_FromLong(fd);
}

PyObject* endpoint_get_waiting(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<Endpoint*>(self)->waiting);
}

int endpoint_set_waiting(PyObject* self, PyObject* value, void*) {
    const int truth = value == nullptr ? 0 : PyObject_IsTrue(value);
    if (truth < 0) {
        return -1;
    }
    reinterpret_cast<Endpoint*>(self)->waiting = truth != 0;
    return 0;
}

/// receive_copy(timeout=None) -> Received(data, sequence, lost_before)
PyObject* subscriber_receive_copy(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    static const char* kwlist[] = {"timeout", nullptr};
    PyObject* timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:receive_copy", const_cast<char**>(kwlist),
                                     &timeout_obj)) {
        return nullptr;
    }
    std::int64_t timeout = 0;
    if (!parse_timeout(timeout_obj, timeout) || !ready_for_batch(ep, "receive_copy")) {
        return nullptr;
    }
    PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(ep->slot_size));
    if (bytes == nullptr) {
        return nullptr;
    }
    char* buffer = PyBytes_AS_STRING(bytes);
    shmbus_received received{};
    auto* sub = static_cast<shmbus_subscriber*>(ep->handle);
    const int rc = call_waiting(&ep->busy, timeout, [&](std::int64_t t) {
        return shmbus_subscriber_receive_copy(sub, buffer, static_cast<size_t>(ep->slot_size), t,
                                              &received);
    });
    if (rc != SHMBUS_OK) {
        Py_DECREF(bytes);
        return rc == SHMBUS_E_TIMED_OUT ? raise_timeout("receive_copy", ep->channel, timeout)
                                        : raise_last(rc);
    }
    if (_PyBytes_Resize(&bytes, static_cast<Py_ssize_t>(received.size)) < 0) {
        return nullptr;
    }
    PyObject* r = PyObject_CallFunction(g_received, "NKK", bytes,
                                        static_cast<unsigned long long>(received.sequence),
                                        static_cast<unsigned long long>(received.lost_before));
    return r;
}

PyObject* subscriber_lost(PyObject* self, void*) {
    auto* ep = reinterpret_cast<Endpoint*>(self);
    if (ep->handle == nullptr) {
        return raise_error(SHMBUS_E_CLOSED,
                           std::string("lost: the endpoint on '") + ep->channel + "' is closed");
    }
    return PyLong_FromUnsignedLongLong(
        shmbus_subscriber_lost(static_cast<const shmbus_subscriber*>(ep->handle)));
}

PyMethodDef publisher_methods[] = {
    {"send", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(publisher_send)),
     METH_VARARGS | METH_KEYWORDS,
     "send(data, timeout=None): copies a bytes-like object into a slot and publishes it."},
    {"reserve", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(publisher_reserve)),
     METH_VARARGS | METH_KEYWORDS,
     "reserve(max_count=1, timeout=None) -> Reservation of 1 to max_count slots."},
    {"wait_handle", endpoint_wait_handle, METH_NOARGS,
     "wait_handle() -> a descriptor that becomes readable when there is room after a full ring "
     "(for event loops; owned by the publisher)."},
    {"_poll_reserve", publisher_poll_reserve, METH_O, nullptr},
    {"_poll_send", publisher_poll_send, METH_O, nullptr},
    {"close", endpoint_close, METH_NOARGS, "Leaves the channel."},
    {"__enter__", endpoint_enter, METH_NOARGS, nullptr},
    {"__exit__", endpoint_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyMethodDef subscriber_methods[] = {
    {"receive", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(subscriber_receive)),
     METH_VARARGS | METH_KEYWORDS,
     "receive(max_count=64, timeout=None) -> Batch of 1 to max_count messages, in place."},
    {"receive_copy",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(subscriber_receive_copy)),
     METH_VARARGS | METH_KEYWORDS, "receive_copy(timeout=None) -> Received (bytes, copied)."},
    {"wait_handle", endpoint_wait_handle, METH_NOARGS,
     "wait_handle() -> a descriptor that becomes readable when a message waits (for event "
     "loops; owned by the subscriber)."},
    {"_poll_receive", subscriber_poll_receive, METH_O, nullptr},
    {"close", endpoint_close, METH_NOARGS, "Leaves the channel."},
    {"__enter__", endpoint_enter, METH_NOARGS, nullptr},
    {"__exit__", endpoint_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef publisher_getset[] = {
    {"info", endpoint_info, nullptr, "The channel's ChannelInfo.", nullptr},
    {"channel", endpoint_channel, nullptr, "The channel's name.", nullptr},
    {"closed", endpoint_closed, nullptr, "True once closed.", nullptr},
    {"_waiting", endpoint_get_waiting, endpoint_set_waiting, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyGetSetDef subscriber_getset[] = {
    {"info", endpoint_info, nullptr, "The channel's ChannelInfo.", nullptr},
    {"channel", endpoint_channel, nullptr, "The channel's name.", nullptr},
    {"closed", endpoint_closed, nullptr, "True once closed.", nullptr},
    {"lost", subscriber_lost, nullptr, "Messages this subscriber lost in all (drop policy).",
     nullptr},
    {"_waiting", endpoint_get_waiting, endpoint_set_waiting, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot publisher_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(endpoint_dealloc)},
    {Py_tp_methods, publisher_methods},
    {Py_tp_getset, publisher_getset},
    {Py_tp_repr, reinterpret_cast<void*>(endpoint_repr)},
    {Py_tp_doc, const_cast<char*>("Writes to a channel: Client.open_publisher().")},
    {0, nullptr},
};

PyType_Slot subscriber_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(endpoint_dealloc)},
    {Py_tp_methods, subscriber_methods},
    {Py_tp_getset, subscriber_getset},
    {Py_tp_repr, reinterpret_cast<void*>(endpoint_repr)},
    {Py_tp_doc, const_cast<char*>("Reads from a channel: Client.open_subscriber().")},
    {0, nullptr},
};

PyType_Spec publisher_spec = {"shmbus.Publisher", sizeof(Endpoint), 0,
                              Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                              publisher_slots};
PyType_Spec subscriber_spec = {"shmbus.Subscriber", sizeof(Endpoint), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                               subscriber_slots};

// ---- Client -------------------------------------------------------------------------------

void client_dealloc(PyObject* self) {
    auto* c = reinterpret_cast<Client*>(self);
    shmbus_client_close(c->handle);
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

bool client_usable(Client* c, const char* what) {
    if (c->handle == nullptr) {
        raise_error(SHMBUS_E_CLOSED, std::string(what) + ": the client is closed");
        return false;
    }
    if (c->busy) {
        raise_busy("this Client");
        return false;
    }
    return true;
}

PyObject* client_open(Client* c, PyObject* args, PyObject* kwargs, bool publisher) {
    static const char* kwlist[] = {"channel", "wait", "spin_iterations", nullptr};
    const char* channel = nullptr;
    const char* wait = nullptr;
    unsigned int spins = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     publisher ? "s|sI:open_publisher" : "s|sI:open_subscriber",
                                     const_cast<char**>(kwlist), &channel, &wait, &spins)) {
        return nullptr;
    }
    shmbus_endpoint_options options;
    shmbus_endpoint_options_init(&options);
    if (!parse_wait(wait, options.wait) ||
        !client_usable(c, publisher ? "open_publisher" : "open_subscriber")) {
        return nullptr;
    }
    options.spin_iterations = spins;
    void* handle = nullptr;
    const int rc = without_gil(&c->busy, [&] {
        if (publisher) {
            shmbus_publisher* p = nullptr;
            const int r = shmbus_open_publisher(c->handle, channel, &options, &p);
            handle = p;
            return r;
        }
        shmbus_subscriber* s = nullptr;
        const int r = shmbus_open_subscriber(c->handle, channel, &options, &s);
        handle = s;
        return r;
    });
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    auto* ep = PyObject_New(Endpoint, publisher ? g_publisher_type : g_subscriber_type);
    if (ep == nullptr) {
        if (publisher) {
            shmbus_publisher_close(static_cast<shmbus_publisher*>(handle));
        } else {
            shmbus_subscriber_close(static_cast<shmbus_subscriber*>(handle));
        }
        return nullptr;
    }
    ep->handle = handle;
    ep->publisher = publisher;
    ep->busy = false;
    ep->waiting = false;
    ep->outstanding = false;
    ep->batch = nullptr;
    ep->slots = nullptr;
    ep->n_slots = 0;
    shmbus_channel_info info{};
    if (publisher) {
        shmbus_publisher_info(static_cast<const shmbus_publisher*>(handle), &info);
    } else {
        shmbus_subscriber_info(static_cast<const shmbus_subscriber*>(handle), &info);
    }
    std::memcpy(ep->channel, info.name, sizeof ep->channel);
    ep->channel[sizeof ep->channel - 1] = '\0';
    ep->slot_size = info.slot_size;
    return reinterpret_cast<PyObject*>(ep);
}

PyObject* client_open_publisher(PyObject* self, PyObject* args, PyObject* kwargs) {
    return client_open(reinterpret_cast<Client*>(self), args, kwargs, true);
}

PyObject* client_open_subscriber(PyObject* self, PyObject* args, PyObject* kwargs) {
    return client_open(reinterpret_cast<Client*>(self), args, kwargs, false);
}

PyObject* make_summary(const shmbus_channel_summary& s) {
    PyObject* info = make_channel_info(s.info);
    if (info == nullptr) {
        return nullptr;
    }
    const shmbus_channel_stats& t = s.stats;
    PyObject* stats = PyObject_CallFunction(
        g_channel_stats, "KKKKKKKKKKKKII", static_cast<unsigned long long>(t.published),
        static_cast<unsigned long long>(t.consumed), static_cast<unsigned long long>(t.dropped),
        static_cast<unsigned long long>(t.abandoned),
        static_cast<unsigned long long>(t.redelivered),
        static_cast<unsigned long long>(t.corrupted), static_cast<unsigned long long>(t.data_waits),
        static_cast<unsigned long long>(t.data_wakes),
        static_cast<unsigned long long>(t.space_waits),
        static_cast<unsigned long long>(t.space_wakes), static_cast<unsigned long long>(t.depth),
        static_cast<unsigned long long>(t.high_water), t.publishers, t.subscribers);
    if (stats == nullptr) {
        Py_DECREF(info);
        return nullptr;
    }
    return PyObject_CallFunction(g_channel_summary, "NNO", info, stats,
                                 s.dynamic ? Py_True : Py_False);
}

PyObject* client_list_channels(PyObject* self, PyObject*) {
    auto* c = reinterpret_cast<Client*>(self);
    if (!client_usable(c, "list_channels")) {
        return nullptr;
    }
    std::vector<shmbus_channel_summary> summaries;
    size_t count = 0;
    int rc = SHMBUS_OK;
    // The number can grow between the two calls: ask again until everything fitted.
    for (;;) {
        rc = without_gil(&c->busy, [&] {
            return shmbus_client_list_channels(c->handle, summaries.data(), summaries.size(),
                                               &count);
        });
        if (rc != SHMBUS_OK || count <= summaries.size()) {
            break;
        }
        summaries.resize(count);
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(count));
    if (list == nullptr) {
        return nullptr;
    }
    for (size_t i = 0; i < count; ++i) {
        PyObject* s = make_summary(summaries[i]);
        if (s == nullptr) {
            Py_DECREF(list);
            return nullptr;
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), s);
    }
    return list;
}

PyObject* client_channel_info(PyObject* self, PyObject* arg) {
    auto* c = reinterpret_cast<Client*>(self);
    const char* name = PyUnicode_AsUTF8(arg);
    if (name == nullptr || !client_usable(c, "channel_info")) {
        return nullptr;
    }
    shmbus_channel_summary s{};
    const int rc =
        without_gil(&c->busy, [&] { return shmbus_client_channel_info(c->handle, name, &s); });
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    return make_summary(s);
}

PyObject* client_close(PyObject* self, PyObject*) {
    auto* c = reinterpret_cast<Client*>(self);
    if (c->busy) {
        return raise_busy("this Client");
    }
    shmbus_client_close(c->handle);
    c->handle = nullptr;
    Py_RETURN_NONE;
}

PyObject* client_exit(PyObject* self, PyObject*) {
    PyObject* r = client_close(self, nullptr);
    if (r == nullptr) {
        return nullptr;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

PyObject* client_socket_path(PyObject* self, void*) {
    auto* c = reinterpret_cast<Client*>(self);
    if (c->handle == nullptr) {
        return raise_error(SHMBUS_E_CLOSED, "socket_path: the client is closed");
    }
    return PyUnicode_DecodeFSDefault(shmbus_client_socket_path(c->handle));
}

PyObject* client_closed(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<Client*>(self)->handle == nullptr);
}

PyMethodDef client_methods[] = {
    {"open_publisher",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_publisher)),
     METH_VARARGS | METH_KEYWORDS,
     "open_publisher(channel, wait='adaptive', spin_iterations=0) -> Publisher"},
    {"open_subscriber",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_subscriber)),
     METH_VARARGS | METH_KEYWORDS,
     "open_subscriber(channel, wait='adaptive', spin_iterations=0) -> Subscriber"},
    {"list_channels", client_list_channels, METH_NOARGS,
     "The daemon's channels, as a list of ChannelSummary."},
    {"channel_info", client_channel_info, METH_O, "channel_info(name) -> ChannelSummary"},
    {"open_server", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_server)),
     METH_VARARGS | METH_KEYWORDS,
     "open_server(channel, wait='adaptive', spin_iterations=0) -> Server (rpc channels)"},
    {"open_caller", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_caller)),
     METH_VARARGS | METH_KEYWORDS,
     "open_caller(channel, wait='adaptive', spin_iterations=0, wait_for_server=False) -> "
     "Caller (rpc channels)"},
    {"open_blackboard",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_blackboard)),
     METH_VARARGS | METH_KEYWORDS,
     "open_blackboard(channel, role='reader', wait='adaptive') -> Blackboard"},
    {"open_counters",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_counters)),
     METH_VARARGS | METH_KEYWORDS,
     "open_counters(channel, role='reader', wait='adaptive') -> Counters"},
    {"open_pool", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_pool)),
     METH_VARARGS | METH_KEYWORDS,
     "open_pool(channel, role='reader', wait='adaptive') -> Pool (pool channels)"},
    {"close", client_close, METH_NOARGS,
     "Closes the connection; endpoints opened through it stay usable."},
    {"__enter__", endpoint_enter, METH_NOARGS, nullptr},
    {"__exit__", client_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef client_getset[] = {
    {"socket_path", client_socket_path, nullptr, "The socket the client is connected to.", nullptr},
    {"closed", client_closed, nullptr, "True once closed.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot client_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(client_dealloc)},
    {Py_tp_methods, client_methods},
    {Py_tp_getset, client_getset},
    {Py_tp_doc, const_cast<char*>("A connection to shmbusd: shmbus.connect().")},
    {0, nullptr},
};

PyType_Spec client_spec = {"shmbus.Client", sizeof(Client), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, client_slots};

/// connect(socket=None, name=None, request_timeout=5.0, wait_for_daemon=0.0, reconnect=True)
PyObject* module_connect(PyObject*, PyObject* args, PyObject* kwargs) {
    static const char* kwlist[] = {"socket",          "name",      "request_timeout",
                                   "wait_for_daemon", "reconnect", nullptr};
    PyObject* socket_obj = Py_None;
    const char* name = nullptr;
    double request_timeout = 5.0;
    PyObject* wait_obj = nullptr;
    int reconnect = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OzdOp:connect", const_cast<char**>(kwlist),
                                     &socket_obj, &name, &request_timeout, &wait_obj, &reconnect)) {
        return nullptr;
    }
    PyObject* socket_bytes = nullptr;
    if (socket_obj != Py_None && !PyUnicode_FSConverter(socket_obj, &socket_bytes)) {
        return nullptr;
    }
    shmbus_client_options options;
    shmbus_client_options_init(&options);
    options.socket_path = socket_bytes != nullptr ? PyBytes_AS_STRING(socket_bytes) : nullptr;
    options.client_name = name;
    options.request_timeout_ms =
        request_timeout > 0 && request_timeout < 9e15
            ? std::max<std::int64_t>(1, static_cast<std::int64_t>(request_timeout * 1000.0))
            : 0; // refused by the library, with its message
    std::int64_t wait_ns = 0;
    if (wait_obj != nullptr && !parse_timeout(wait_obj, wait_ns)) {
        Py_XDECREF(socket_bytes);
        return nullptr;
    }
    options.reconnect_in_background = reconnect;
    // Waiting for a daemon is this loop's, not the library's, so that signal handlers run
    // between tries as in every blocking call: each try fails at once when nobody listens.
    options.wait_for_daemon_ms = 0;
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::nanoseconds(wait_ns > 0 ? wait_ns : 0);
    shmbus_client* handle = nullptr;
    bool unused_busy = false; // no object to mark yet
    int rc = SHMBUS_OK;
    for (bool told = false;; told = true) {
        rc = without_gil(&unused_busy, [&] { return shmbus_connect(&options, &handle); });
        if (rc != SHMBUS_E_NOT_FOUND || wait_ns == 0 || (wait_ns > 0 && Clock::now() >= deadline)) {
            break;
        }
        if (!told) { // one line, as the library's own wait says
            PySys_WriteStderr("shmbus: waiting for shmbusd (%.900s)\n",
                              shmbus_last_error_message());
        }
        without_gil(&unused_busy, [] {
            std::this_thread::sleep_for(std::chrono::nanoseconds(kWaitSlice));
            return 0;
        });
        if (PyErr_CheckSignals() < 0) {
            Py_XDECREF(socket_bytes);
            return nullptr;
        }
    }
    Py_XDECREF(socket_bytes);
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    auto* c = PyObject_New(Client, g_client_type);
    if (c == nullptr) {
        shmbus_client_close(handle);
        return nullptr;
    }
    c->handle = handle;
    c->busy = false;
    return reinterpret_cast<PyObject*>(c);
}

/// _setup(errors, ChannelInfo, ChannelStats, ChannelSummary, Received): the Python classes
/// the core creates, given by shmbus/__init__.py. `errors` maps each code to its class (0: the
/// base class).
PyObject* module_setup(PyObject*, PyObject* args) {
    PyObject* errors = nullptr;
    PyObject *info, *stats, *summary, *received;
    if (!PyArg_ParseTuple(args, "O!OOOO:_setup", &PyDict_Type, &errors, &info, &stats, &summary,
                          &received)) {
        return nullptr;
    }
    for (int code = 0; code <= SHMBUS_E_PROTOCOL_ERROR; ++code) {
        PyObject* key = PyLong_FromLong(code);
        PyObject* cls = key != nullptr ? PyDict_GetItemWithError(errors, key) : nullptr;
        Py_XDECREF(key);
        if (cls == nullptr) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_KeyError, "_setup: no exception class for code %d", code);
            }
            return nullptr;
        }
        Py_INCREF(cls);
        Py_XSETREF(g_error_classes[code], cls);
    }
    Py_INCREF(info);
    Py_XSETREF(g_channel_info, info);
    Py_INCREF(stats);
    Py_XSETREF(g_channel_stats, stats);
    Py_INCREF(summary);
    Py_XSETREF(g_channel_summary, summary);
    Py_INCREF(received);
    Py_XSETREF(g_received, received);
    Py_RETURN_NONE;
}

PyObject* module_errc_name(PyObject*, PyObject* arg) {
    const long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred()) {
        return nullptr;
    }
    return PyUnicode_FromString(shmbus_errc_name(static_cast<int>(code)));
}

PyMethodDef module_methods[] = {
    {"connect", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(module_connect)),
     METH_VARARGS | METH_KEYWORDS,
     "connect(socket=None, name=None, request_timeout=5.0, wait_for_daemon=0.0, "
     "reconnect=True) -> Client"},
    {"_setup", module_setup, METH_VARARGS, nullptr},
    {"_setup_state", setup_state, METH_VARARGS, nullptr},
    {"_setup_rpc", setup_rpc, METH_VARARGS, nullptr},
    {"errc_name", module_errc_name, METH_O, "errc_name(code) -> the Errc name of a code."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_shmbus",
    "The native core of the shmbus package.",
    -1,
    module_methods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

bool add_type(PyObject* module, PyType_Spec* spec, PyTypeObject** out, const char* name) {
    *out = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(spec));
    return *out != nullptr &&
           PyModule_AddObjectRef(module, name, reinterpret_cast<PyObject*>(*out)) == 0;
}

} // namespace shmbus_py

using namespace shmbus_py;

PyMODINIT_FUNC PyInit__shmbus(void) {
    PyObject* m = PyModule_Create(&module_def);
    if (m == nullptr) {
        return nullptr;
    }
    if (!add_type(m, &message_spec, &g_message_type, "Message") ||
        !add_type(m, &batch_spec, &g_batch_type, "Batch") ||
        !add_type(m, &reservation_spec, &g_reservation_type, "Reservation") ||
        !add_type(m, &publisher_spec, &g_publisher_type, "Publisher") ||
        !add_type(m, &subscriber_spec, &g_subscriber_type, "Subscriber") ||
        !add_type(m, &client_spec, &g_client_type, "Client") || !add_state_types(m) ||
        !add_rpc_types(m) || !add_pool_types(m) ||
        PyModule_AddStringConstant(m, "library_version", shmbus_version()) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
