// Pool channels in the native core: Pool and Block, over the C ABI's shmbus_pool and
// shmbus_block (shmbus.h, "Pool channels").
//
// What it owns: a Pool object owns one C pool handle, closed by close() or when the object
// dies; a Block owns one C block (one reference to a block of the pool), given back by
// release(), by hand_on(), or when the object dies, and holds its Pool object (strong). As in
// C, a block keeps its endpoint attached: closing the Pool leaves its blocks usable.
//
// Zero copy and lifetime: a Block is a buffer exporter over the block's bytes (read-only for a
// reader), counting its exports like a Message does (shmbus_module.cpp): block.data is a
// memoryview over it, released by the binding before the block is given back, so that using
// it afterwards raises ValueError; while anything else still views the bytes (a slice, a
// numpy array), release() and hand_on() refuse with BufferError and the block stays held.
// Every export holds the Block, which keeps only a weak reference to block.data: a Block
// that dies has no view left, and gives its reference back at once.
//
// Handles travel as bytes: hand_on() and share() return the 16 bytes of a
// shmbus_block_handle, which C, C++ and Python programs exchange unchanged, and adopt() and
// drop() take any bytes-like object of 16 bytes (msg.data of the message that carried it).
//
// Threads: acquire() waits as every blocking call of the module, in slices without the GIL
// (call_waiting), the Pool marked busy meanwhile; the other calls do not wait and keep the
// GIL.
#include "module_support.hpp"

#include <cstring>
#include <string>

namespace shmbus_py {
namespace {

PyTypeObject* g_pool_type = nullptr;
PyTypeObject* g_block_type = nullptr;

struct Pool {
    PyObject_HEAD shmbus_pool* handle; // nullptr once closed
    bool writer;
    bool busy; // acquire() waits with the GIL released
    char channel[SHMBUS_MAX_NAME_LENGTH + 1];
};

struct Block {
    PyObject_HEAD Pool* owner; // strong
    shmbus_block* block;       // nullptr once released or handed on
    void* data;
    Py_ssize_t size;
    bool readonly;
    Py_ssize_t exports;
    // A weak reference to block.data, or nullptr: the view holds the Block (its buffer's
    // owner), so a strong reference back would be a cycle that keeps the block out of the pool
    // until a garbage collection.
    PyObject* view_ref;
};

/// Whether `p` is open and not in use by another thread; the exception naming `what` if not.
bool pool_usable(Pool* p, const char* what) {
    if (p->handle == nullptr) {
        raise_error(SHMBUS_E_CLOSED,
                    std::string(what) + ": the pool '" + p->channel + "' is closed");
        return false;
    }
    if (p->busy) {
        raise_busy("this Pool");
        return false;
    }
    return true;
}

/// The Block argument of hand_on() and share(), held: false with an exception if it is none.
bool held_block(PyObject* obj, Block*& out, const char* what) {
    if (!PyObject_TypeCheck(obj, g_block_type)) {
        PyErr_Format(PyExc_TypeError, "%s: block must be a shmbus.Block, not %s", what,
                     Py_TYPE(obj)->tp_name);
        return false;
    }
    out = reinterpret_cast<Block*>(obj);
    if (out->block == nullptr) {
        raise_error(SHMBUS_E_INVALID_ARGUMENT,
                    std::string(what) + ": the block was released or handed on already");
        return false;
    }
    return true;
}

/// A handle argument: a bytes-like object of exactly 16 bytes. False with an exception set.
bool parse_handle(PyObject* obj, shmbus_block_handle& out, const char* what) {
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_SIMPLE) < 0) {
        return false;
    }
    const bool fits = b.len == static_cast<Py_ssize_t>(sizeof out);
    if (fits) {
        std::memcpy(&out, b.buf, sizeof out);
    } else {
        PyErr_Format(PyExc_ValueError, "%s: a block handle is %zu bytes, not %zd", what, sizeof out,
                     b.len);
    }
    PyBuffer_Release(&b);
    return fits;
}

PyObject* handle_bytes(const shmbus_block_handle& h) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(&h), sizeof h);
}

/// Takes block.data away before the block is given back. False with BufferError set while
/// something else still views the bytes; the block stays held then.
bool detach_view(Block* b, const char* what) {
    if (b->view_ref != nullptr) {
        PyObject* view = PyWeakref_GetObject(b->view_ref); // borrowed; None once it died
        if (view != Py_None) {
            Py_INCREF(view);
            PyObject* r = PyObject_CallMethod(view, "release", nullptr);
            Py_DECREF(view);
            if (r == nullptr) {
                if (!PyErr_ExceptionMatches(PyExc_BufferError)) {
                    return false;
                }
                PyErr_Clear(); // a view of the view: counted below
            }
            Py_XDECREF(r);
        }
        Py_CLEAR(b->view_ref);
    }
    if (b->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "%s: block of '%s' is still viewed by a slice, an array or a memoryview of "
                     "its data: drop those (del) or copy them (bytes(), .copy()) first",
                     what, b->owner->channel);
        return false;
    }
    return true;
}

// ---- Block ----------------------------------------------------------------------------------

int block_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    auto* b = reinterpret_cast<Block*>(self);
    if (b->block == nullptr) {
        PyErr_Format(PyExc_BufferError,
                     "the block of '%s' was released or handed on: it may hold other data now",
                     b->owner->channel);
        view->obj = nullptr;
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, b->data, b->size, b->readonly ? 1 : 0, flags) < 0) {
        return -1;
    }
    ++b->exports;
    return 0;
}

void block_releasebuffer(PyObject* self, Py_buffer*) {
    --reinterpret_cast<Block*>(self)->exports;
}

void block_dealloc(PyObject* self) {
    auto* b = reinterpret_cast<Block*>(self);
    Py_CLEAR(b->view_ref); // every export holds the Block: none is left when it dies
    if (b->block != nullptr) {
        (void)shmbus_block_release(b->block);
        b->block = nullptr;
    }
    Py_CLEAR(b->owner);
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* block_data(PyObject* self, void*) {
    auto* b = reinterpret_cast<Block*>(self);
    if (b->view_ref != nullptr) {
        PyObject* view = PyWeakref_GetObject(b->view_ref); // borrowed
        if (view != Py_None) {
            Py_INCREF(view);
            return view;
        }
        Py_CLEAR(b->view_ref);
    }
    PyObject* view = PyMemoryView_FromObject(self); // BufferError once released
    if (view == nullptr) {
        return nullptr;
    }
    b->view_ref = PyWeakref_NewRef(view, nullptr);
    if (b->view_ref == nullptr) {
        Py_DECREF(view);
        return nullptr;
    }
    return view;
}

PyObject* block_handle(PyObject* self, void*) {
    auto* b = reinterpret_cast<Block*>(self);
    if (b->block == nullptr) {
        return raise_error(SHMBUS_E_INVALID_ARGUMENT,
                           "handle: the block was released or handed on already");
    }
    shmbus_block_handle h{};
    shmbus_block_handle_of(b->block, &h);
    return handle_bytes(h);
}

PyObject* block_released(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<Block*>(self)->block == nullptr);
}

PyObject* block_writable(PyObject* self, void*) {
    return PyBool_FromLong(!reinterpret_cast<Block*>(self)->readonly);
}

Py_ssize_t block_len(PyObject* self) {
    return reinterpret_cast<Block*>(self)->size;
}

/// release(): gives the reference back.
PyObject* block_release(PyObject* self, PyObject*) {
    auto* b = reinterpret_cast<Block*>(self);
    if (b->block == nullptr) {
        return raise_error(SHMBUS_E_INVALID_ARGUMENT,
                           "release: the block was released or handed on already");
    }
    if (!detach_view(b, "release")) {
        return nullptr;
    }
    const int rc = shmbus_block_release(b->block); // frees the C block whatever it says
    b->block = nullptr;
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Py_RETURN_NONE;
}

PyObject* block_enter(PyObject* self, PyObject*) {
    Py_INCREF(self);
    return self;
}

PyObject* block_exit(PyObject* self, PyObject*) {
    if (reinterpret_cast<Block*>(self)->block == nullptr) {
        Py_RETURN_FALSE; // handed on in the block, or released already
    }
    PyObject* r = block_release(self, nullptr);
    if (r == nullptr) {
        return nullptr;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

PyObject* block_repr(PyObject* self) {
    auto* b = reinterpret_cast<Block*>(self);
    return PyUnicode_FromFormat("<shmbus.Block of '%s', %zd bytes%s%s>", b->owner->channel, b->size,
                                b->readonly ? ", read-only" : "",
                                b->block == nullptr ? ", released" : "");
}

PyMethodDef block_methods[] = {
    {"release", block_release, METH_NOARGS,
     "Gives the reference back (the last one returns the block to the pool)."},
    {"__enter__", block_enter, METH_NOARGS, nullptr},
    {"__exit__", block_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef block_getset[] = {
    {"data", block_data, nullptr,
     "A memoryview of the block's bytes (writable for a writer's block). Released with the "
     "block.",
     nullptr},
    {"handle", block_handle, nullptr,
     "The block's 16-byte handle, carrying no reference of its own (see Pool.hand_on()).", nullptr},
    {"writable", block_writable, nullptr, "True when the pool was opened as a writer.", nullptr},
    {"released", block_released, nullptr, "True once released or handed on.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot block_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(block_dealloc)},
    {Py_tp_methods, block_methods},
    {Py_tp_getset, block_getset},
    {Py_tp_repr, reinterpret_cast<void*>(block_repr)},
    {Py_sq_length, reinterpret_cast<void*>(block_len)},
    {Py_bf_getbuffer, reinterpret_cast<void*>(block_getbuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(block_releasebuffer)},
    {Py_tp_doc, const_cast<char*>("One reference to a block of a pool, held by this process: "
                                  "its bytes in place (data) until released or handed on.")},
    {0, nullptr},
};

PyType_Spec block_spec = {"shmbus.Block", sizeof(Block), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, block_slots};

/// A new Block of `p` over the C block `cb` (owned from now on, released on failure).
PyObject* new_block(Pool* p, shmbus_block* cb) {
    auto* b = PyObject_New(Block, g_block_type);
    if (b == nullptr) {
        (void)shmbus_block_release(cb);
        return nullptr;
    }
    Py_INCREF(p);
    b->owner = p;
    b->block = cb;
    b->readonly = shmbus_block_mutable_data(cb) == nullptr;
    b->data = const_cast<void*>(shmbus_block_data(cb));
    b->size = static_cast<Py_ssize_t>(shmbus_block_size(cb));
    b->exports = 0;
    b->view_ref = nullptr;
    return reinterpret_cast<PyObject*>(b);
}

// ---- Pool -----------------------------------------------------------------------------------

void pool_dealloc(PyObject* self) {
    auto* p = reinterpret_cast<Pool*>(self);
    shmbus_pool_close(p->handle);
    p->handle = nullptr;
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* pool_close(PyObject* self, PyObject*) {
    auto* p = reinterpret_cast<Pool*>(self);
    if (p->busy) {
        return raise_busy("this Pool");
    }
    shmbus_pool_close(p->handle); // its blocks stay usable
    p->handle = nullptr;
    Py_RETURN_NONE;
}

PyObject* pool_enter(PyObject* self, PyObject*) {
    Py_INCREF(self);
    return self;
}

PyObject* pool_exit(PyObject* self, PyObject*) {
    PyObject* r = pool_close(self, nullptr);
    if (r == nullptr) {
        return nullptr;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

/// acquire(timeout=None) -> Block
PyObject* pool_acquire(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* p = reinterpret_cast<Pool*>(self);
    static const char* kwlist[] = {"timeout", nullptr};
    PyObject* timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:acquire", const_cast<char**>(kwlist),
                                     &timeout_obj)) {
        return nullptr;
    }
    std::int64_t timeout = 0;
    if (!parse_timeout(timeout_obj, timeout) || !pool_usable(p, "acquire")) {
        return nullptr;
    }
    shmbus_block* cb = nullptr;
    shmbus_pool* pool = p->handle;
    const int rc = call_waiting(&p->busy, timeout,
                                [&](std::int64_t t) { return shmbus_pool_acquire(pool, t, &cb); });
    if (rc == SHMBUS_E_TIMED_OUT) {
        return raise_timeout("acquire", p->channel, timeout);
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    return new_block(p, cb);
}

/// hand_on(block, copies=1) -> bytes; share(block, copies=1) -> bytes
PyObject* pool_pass(PyObject* self, PyObject* args, PyObject* kwargs, bool keep) {
    auto* p = reinterpret_cast<Pool*>(self);
    static const char* kwlist[] = {"block", "copies", nullptr};
    PyObject* block_obj = nullptr;
    unsigned int copies = 1;
    const char* what = keep ? "share" : "hand_on";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, keep ? "O|I:share" : "O|I:hand_on",
                                     const_cast<char**>(kwlist), &block_obj, &copies)) {
        return nullptr;
    }
    Block* b = nullptr;
    if (!pool_usable(p, what) || !held_block(block_obj, b, what)) {
        return nullptr;
    }
    shmbus_block_handle h{};
    if (keep) {
        const int rc = shmbus_pool_share(p->handle, b->block, copies, &h);
        return rc == SHMBUS_OK ? handle_bytes(h) : raise_last(rc);
    }
    // The block's memory is no longer this process's once handed on: no view may outlive it.
    if (!detach_view(b, what)) {
        return nullptr;
    }
    const int rc = shmbus_pool_hand_on(p->handle, b->block, copies, &h);
    if (rc != SHMBUS_OK) {
        return raise_last(rc); // the block is still held (its view is gone: fetch data again)
    }
    b->block = nullptr; // freed by the library: its reference travels in the handle
    return handle_bytes(h);
}

PyObject* pool_hand_on(PyObject* self, PyObject* args, PyObject* kwargs) {
    return pool_pass(self, args, kwargs, false);
}

PyObject* pool_share(PyObject* self, PyObject* args, PyObject* kwargs) {
    return pool_pass(self, args, kwargs, true);
}

/// adopt(handle) -> Block
PyObject* pool_adopt(PyObject* self, PyObject* arg) {
    auto* p = reinterpret_cast<Pool*>(self);
    shmbus_block_handle h{};
    if (!parse_handle(arg, h, "adopt") || !pool_usable(p, "adopt")) {
        return nullptr;
    }
    shmbus_block* cb = nullptr;
    const int rc = shmbus_pool_adopt(p->handle, &h, &cb);
    return rc == SHMBUS_OK ? new_block(p, cb) : raise_last(rc);
}

/// drop(handle)
PyObject* pool_drop(PyObject* self, PyObject* arg) {
    auto* p = reinterpret_cast<Pool*>(self);
    shmbus_block_handle h{};
    if (!parse_handle(arg, h, "drop") || !pool_usable(p, "drop")) {
        return nullptr;
    }
    const int rc = shmbus_pool_drop(p->handle, &h);
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    Py_RETURN_NONE;
}

Py_ssize_t pool_len(PyObject* self) {
    auto* p = reinterpret_cast<Pool*>(self);
    if (p->handle == nullptr) {
        raise_error(SHMBUS_E_CLOSED, std::string("len: the pool '") + p->channel + "' is closed");
        return -1;
    }
    return static_cast<Py_ssize_t>(shmbus_pool_size(p->handle));
}

PyObject* pool_block_size(PyObject* self, void*) {
    auto* p = reinterpret_cast<Pool*>(self);
    if (p->handle == nullptr) {
        return raise_error(SHMBUS_E_CLOSED,
                           std::string("block_size: the pool '") + p->channel + "' is closed");
    }
    return PyLong_FromUnsignedLongLong(shmbus_pool_block_size(p->handle));
}

PyObject* pool_info(PyObject* self, void*) {
    auto* p = reinterpret_cast<Pool*>(self);
    if (p->handle == nullptr) {
        return raise_error(SHMBUS_E_CLOSED,
                           std::string("info: the pool '") + p->channel + "' is closed");
    }
    shmbus_channel_info info{};
    shmbus_pool_info(p->handle, &info);
    return make_channel_info(info);
}

PyObject* pool_channel(PyObject* self, void*) {
    return PyUnicode_FromString(reinterpret_cast<Pool*>(self)->channel);
}

PyObject* pool_role(PyObject* self, void*) {
    return PyUnicode_FromString(reinterpret_cast<Pool*>(self)->writer ? "writer" : "reader");
}

PyObject* pool_closed(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<Pool*>(self)->handle == nullptr);
}

PyObject* pool_repr(PyObject* self) {
    auto* p = reinterpret_cast<Pool*>(self);
    return PyUnicode_FromFormat("<shmbus.Pool %s on '%s'%s>", p->writer ? "writer" : "reader",
                                p->channel, p->handle == nullptr ? ", closed" : "");
}

PyMethodDef pool_methods[] = {
    {"acquire", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(pool_acquire)),
     METH_VARARGS | METH_KEYWORDS,
     "acquire(timeout=None) -> Block: a free block, to fill in place (writers only)."},
    {"hand_on", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(pool_hand_on)),
     METH_VARARGS | METH_KEYWORDS,
     "hand_on(block, copies=1) -> bytes: the block's 16-byte handle carrying `copies` "
     "references, for receivers to adopt(); the Block is released."},
    {"share", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(pool_share)),
     METH_VARARGS | METH_KEYWORDS,
     "share(block, copies=1) -> bytes: as hand_on(), keeping the block."},
    {"adopt", pool_adopt, METH_O,
     "adopt(handle) -> Block: takes one of the references a 16-byte handle carries."},
    {"drop", pool_drop, METH_O,
     "drop(handle): gives back one of the references a handle carries, unread."},
    {"close", pool_close, METH_NOARGS,
     "Closes the pool; its blocks stay usable, and the endpoint leaves with the last."},
    {"__enter__", pool_enter, METH_NOARGS, nullptr},
    {"__exit__", pool_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef pool_getset[] = {
    {"block_size", pool_block_size, nullptr, "Bytes per block.", nullptr},
    {"info", pool_info, nullptr, "The channel's ChannelInfo.", nullptr},
    {"channel", pool_channel, nullptr, "The channel's name.", nullptr},
    {"role", pool_role, nullptr, "'writer' or 'reader'.", nullptr},
    {"closed", pool_closed, nullptr, "True once closed.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot pool_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(pool_dealloc)},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_repr, reinterpret_cast<void*>(pool_repr)},
    {Py_sq_length, reinterpret_cast<void*>(pool_len)},
    {Py_tp_doc, const_cast<char*>("Blocks of a pool channel, passed on by handle: "
                                  "Client.open_pool().")},
    {0, nullptr},
};

PyType_Spec pool_spec = {"shmbus.Pool", sizeof(Pool), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, pool_slots};

} // namespace

PyObject* client_open_pool(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* c = reinterpret_cast<Client*>(self);
    static const char* kwlist[] = {"channel", "role", "wait", nullptr};
    const char* channel = nullptr;
    const char* role_name = nullptr;
    const char* wait = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|ss:open_pool", const_cast<char**>(kwlist),
                                     &channel, &role_name, &wait)) {
        return nullptr;
    }
    std::uint32_t role = 0;
    shmbus_endpoint_options options;
    shmbus_endpoint_options_init(&options);
    if (!parse_role(role_name, role) || !parse_wait(wait, options.wait) ||
        !client_usable(c, "open_pool")) {
        return nullptr;
    }
    shmbus_pool* handle = nullptr;
    const int rc = without_gil(
        &c->busy, [&] { return shmbus_open_pool(c->handle, channel, role, &options, &handle); });
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    auto* p = PyObject_New(Pool, g_pool_type);
    if (p == nullptr) {
        shmbus_pool_close(handle);
        return nullptr;
    }
    p->handle = handle;
    p->writer = role == SHMBUS_ROLE_PUBLISHER;
    p->busy = false;
    shmbus_channel_info info{};
    shmbus_pool_info(handle, &info);
    std::memcpy(p->channel, info.name, sizeof p->channel);
    p->channel[sizeof p->channel - 1] = '\0';
    return reinterpret_cast<PyObject*>(p);
}

bool add_pool_types(PyObject* module) {
    return add_type(module, &pool_spec, &g_pool_type, "Pool") &&
           add_type(module, &block_spec, &g_block_type, "Block");
}

} // namespace shmbus_py
