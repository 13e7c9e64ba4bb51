// rpc channels in the native core: Server and Caller, over the C ABI's shmbus_server and
// shmbus_caller (shmbus.h, "rpc channels").
//
// What it owns: a Server or Caller object owns one C handle, closed by close() or when the
// object dies (a server's calls taken and not answered then fail at their callers).
//
// Copies: requests are copied out of the channel into bytes (a Request record: data, id,
// caller, slot), so that no Python object ever points into a call slot, and a reply is
// copied in by respond(); a caller's reply is copied into a bytes object of the channel's
// reply size, then shrunk to the reply.
//
// Threads: Server.receive() waits as every blocking call of the module, in slices without
// the GIL (call_waiting). A call sends its request with the GIL held, then waits for the
// outcome on the caller's wait handle (made by the first call that has to wait: one sleeping
// thread of the library per caller) in slices without the GIL, running signal handlers
// between them; at its deadline, or when a handler raised, it gives the call up (a reply that
// came meanwhile is still returned), so that a TimeoutError or a KeyboardInterrupt never
// leaves a call in flight. While the GIL is released the object is marked busy: another
// thread calling into it gets RuntimeError.
#include "module_support.hpp"

#include <poll.h>

#include <cstring>
#include <string>
#include <vector>

namespace shmbus_py {
namespace {

PyObject* g_request = nullptr; // shmbus.Request
PyTypeObject* g_server_type = nullptr;
PyTypeObject* g_caller_type = nullptr;

/// A Server or a Caller: one C handle (nullptr once closed).
struct RpcEndpoint {
    PyObject_HEAD void* handle; // shmbus_server* or shmbus_caller*
    bool server;                // which of the two
    bool busy;                  // a call runs with the GIL released
    int wait_fd;                // caller: its wait handle, -1 until a call first waits
    std::uint64_t reply_size;   // caller: the largest reply
    char channel[SHMBUS_MAX_NAME_LENGTH + 1];
};

const char* busy_name(const RpcEndpoint* ep) {
    return ep->server ? "this Server" : "this Caller";
}

/// Whether `ep` is open and not in use by another thread; the exception naming `what` if not.
bool rpc_usable(RpcEndpoint* ep, const char* what) {
    if (ep->handle == nullptr) {
        raise_error(SHMBUS_E_CLOSED,
                    std::string(what) + ": the endpoint on '" + ep->channel + "' is closed");
        return false;
    }
    if (ep->busy) {
        raise_busy(busy_name(ep));
        return false;
    }
    return true;
}

void close_handle(RpcEndpoint* ep) {
    if (ep->server) {
        shmbus_server_close(static_cast<shmbus_server*>(ep->handle));
    } else {
        shmbus_caller_close(static_cast<shmbus_caller*>(ep->handle)); // its wait handle too
    }
    ep->handle = nullptr;
    ep->wait_fd = -1;
}

shmbus_channel_info info_of(const RpcEndpoint* ep) {
    shmbus_channel_info info{};
    if (ep->server) {
        shmbus_server_info(static_cast<const shmbus_server*>(ep->handle), &info);
    } else {
        shmbus_caller_info(static_cast<const shmbus_caller*>(ep->handle), &info);
    }
    return info;
}

void rpc_dealloc(PyObject* self) {
    close_handle(reinterpret_cast<RpcEndpoint*>(self));
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* rpc_close(PyObject* self, PyObject*) {
    auto* ep = reinterpret_cast<RpcEndpoint*>(self);
    if (ep->busy) {
        return raise_busy(busy_name(ep));
    }
    close_handle(ep);
    Py_RETURN_NONE;
}

PyObject* rpc_enter(PyObject* self, PyObject*) {
    Py_INCREF(self);
    return self;
}

PyObject* rpc_exit(PyObject* self, PyObject*) {
    PyObject* r = rpc_close(self, nullptr);
    if (r == nullptr) {
        return nullptr;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

PyObject* rpc_info(PyObject* self, void*) {
    auto* ep = reinterpret_cast<RpcEndpoint*>(self);
    if (ep->handle == nullptr) {
        return raise_error(SHMBUS_E_CLOSED,
                           std::string("info: the endpoint on '") + ep->channel + "' is closed");
    }
    return make_channel_info(info_of(ep));
}

PyObject* rpc_channel(PyObject* self, void*) {
    return PyUnicode_FromString(reinterpret_cast<RpcEndpoint*>(self)->channel);
}

PyObject* rpc_closed(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<RpcEndpoint*>(self)->handle == nullptr);
}

PyObject* rpc_repr(PyObject* self) {
    auto* ep = reinterpret_cast<RpcEndpoint*>(self);
    return PyUnicode_FromFormat("<shmbus.%s on '%s'%s>", ep->server ? "Server" : "Caller",
                                ep->channel, ep->handle == nullptr ? ", closed" : "");
}

/// receive(max_count=16, timeout=None) -> list[Request]
PyObject* server_receive(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* ep = reinterpret_cast<RpcEndpoint*>(self);
    static const char* kwlist[] = {"max_count", "timeout", nullptr};
    Py_ssize_t max_count = 16;
    PyObject* timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nO:receive", const_cast<char**>(kwlist),
                                     &max_count, &timeout_obj)) {
        return nullptr;
    }
    std::int64_t timeout = 0;
    if (!parse_timeout(timeout_obj, timeout) || !rpc_usable(ep, "receive")) {
        return nullptr;
    }
    if (max_count < 1) {
        return raise_error(SHMBUS_E_INVALID_ARGUMENT, "receive: max_count must be at least 1");
    }
    std::vector<shmbus_request> requests(static_cast<size_t>(max_count));
    size_t count = 0;
    auto* server = static_cast<shmbus_server*>(ep->handle);
    // A receive that times out takes nothing: waiting in slices changes nothing.
    const int rc = call_waiting(&ep->busy, timeout, [&](std::int64_t t) {
        return shmbus_server_receive(server, requests.data(), requests.size(), t, &count);
    });
    if (rc == SHMBUS_E_TIMED_OUT) {
        return raise_timeout("receive", ep->channel, timeout);
    }
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(count));
    if (list == nullptr) {
        return nullptr;
    }
    for (size_t i = 0; i < count; ++i) {
        const shmbus_request& r = requests[i];
        PyObject* item = PyObject_CallFunction(
            g_request, "y#KII", static_cast<const char*>(r.data), static_cast<Py_ssize_t>(r.size),
            static_cast<unsigned long long>(r.id), r.caller, r.slot);
        if (item == nullptr) {
            Py_DECREF(list);
            return nullptr; // the requests stay taken: they fail when the server closes
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), item);
    }
    return list;
}

/// Reads the handle of a Request record (id, caller, slot). False with TypeError set.
bool request_handle(PyObject* obj, shmbus_request& out) {
    PyObject* id = PyObject_GetAttrString(obj, "id");
    PyObject* caller = id != nullptr ? PyObject_GetAttrString(obj, "caller") : nullptr;
    PyObject* slot = caller != nullptr ? PyObject_GetAttrString(obj, "slot") : nullptr;
    bool ok = slot != nullptr;
    if (ok) {
        out = shmbus_request{nullptr, 0, PyLong_AsUnsignedLongLong(id),
                             static_cast<std::uint32_t>(PyLong_AsUnsignedLong(caller)),
                             static_cast<std::uint32_t>(PyLong_AsUnsignedLong(slot))};
        ok = PyErr_Occurred() == nullptr;
    }
    Py_XDECREF(id);
    Py_XDECREF(caller);
    Py_XDECREF(slot);
    if (!ok) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError,
                        "respond: request must be a shmbus.Request that Server.receive() returned");
    }
    return ok;
}

/// respond(request, data)
PyObject* server_respond(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* ep = reinterpret_cast<RpcEndpoint*>(self);
    static const char* kwlist[] = {"request", "data", nullptr};
    PyObject* request_obj = nullptr;
    Py_buffer data;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oy*:respond", const_cast<char**>(kwlist),
                                     &request_obj, &data)) {
        return nullptr;
    }
    shmbus_request request{};
    PyObject* result = nullptr;
    if (request_handle(request_obj, request) && rpc_usable(ep, "respond")) {
        const int rc = shmbus_server_respond(static_cast<shmbus_server*>(ep->handle), &request,
                                             data.buf, static_cast<size_t>(data.len));
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

/// Waits for the outcome of `ticket` on the caller's wait handle until `timeout_ns`, then
/// gives the call up: the code of the poll that ended it, kInterrupted if a signal handler
/// raised (the call given up), SHMBUS_E_TIMED_OUT at the deadline.
int await_outcome(RpcEndpoint* ep, const shmbus_ticket& ticket, std::int64_t timeout_ns,
                  char* reply, size_t* size) {
    auto* caller = static_cast<shmbus_caller*>(ep->handle);
    const auto cap = static_cast<size_t>(ep->reply_size);
    int made = SHMBUS_OK; // making the wait handle
    // A slice (without the GIL) waits on the handle, then polls; an outcome still missing is
    // "timed out" to call_waiting(), which then tries another slice. The first try (0) only
    // polls, with the GIL, and makes the handle if it will be needed.
    int rc = call_waiting(&ep->busy, timeout_ns, [&](std::int64_t slice) {
        if (slice > 0) {
            pollfd p{ep->wait_fd, POLLIN, 0};
            (void)::poll(&p, 1, static_cast<int>((slice + 999'999) / 1'000'000));
        }
        const int r = shmbus_caller_poll(caller, &ticket, reply, cap, size);
        if (slice == 0 && r == SHMBUS_E_WOULD_BLOCK && timeout_ns != 0 && ep->wait_fd < 0 &&
            (made = shmbus_caller_wait_handle(caller, &ep->wait_fd)) != SHMBUS_OK) {
            return made; // ends the wait: no handle to wait on
        }
        return r == SHMBUS_E_WOULD_BLOCK && slice > 0 ? SHMBUS_E_TIMED_OUT : r;
    });
    if (made != SHMBUS_OK) {
        (void)shmbus_caller_cancel(caller, &ticket);
        return made;
    }
    if (rc == SHMBUS_E_WOULD_BLOCK || rc == SHMBUS_E_TIMED_OUT || rc == kInterrupted) {
        // Give the call up; a receive with timeout 0 collects the outcome if it came.
        const int last = shmbus_caller_receive_reply(caller, &ticket, reply, cap, 0, size);
        rc = rc == kInterrupted ? kInterrupted : last;
    }
    return rc;
}

/// call(data, timeout=None) -> bytes
PyObject* caller_call(PyObject* self, PyObject* args, PyObject* kwargs) {
    auto* ep = reinterpret_cast<RpcEndpoint*>(self);
    static const char* kwlist[] = {"data", "timeout", nullptr};
    Py_buffer data;
    PyObject* timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|O:call", const_cast<char**>(kwlist), &data,
                                     &timeout_obj)) {
        return nullptr;
    }
    std::int64_t timeout = 0;
    const bool ready = parse_timeout(timeout_obj, timeout) && rpc_usable(ep, "call");
    shmbus_ticket ticket{};
    const int sent = ready ? shmbus_caller_send(static_cast<shmbus_caller*>(ep->handle), data.buf,
                                                static_cast<size_t>(data.len), &ticket)
                           : SHMBUS_OK;
    PyBuffer_Release(&data);
    if (!ready) {
        return nullptr;
    }
    if (sent != SHMBUS_OK) {
        return raise_last(sent);
    }
    PyObject* reply = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(ep->reply_size));
    if (reply == nullptr) {
        (void)shmbus_caller_cancel(static_cast<shmbus_caller*>(ep->handle), &ticket);
        return nullptr;
    }
    size_t size = 0;
    const int rc = await_outcome(ep, ticket, timeout, PyBytes_AS_STRING(reply), &size);
    if (rc != SHMBUS_OK) {
        Py_DECREF(reply);
        return rc == SHMBUS_E_TIMED_OUT ? raise_timeout("call", ep->channel, timeout)
                                        : raise_last(rc);
    }
    if (_PyBytes_Resize(&reply, static_cast<Py_ssize_t>(size)) < 0) {
        return nullptr;
    }
    return reply;
}

PyObject* caller_in_flight(PyObject* self, void*) {
    auto* ep = reinterpret_cast<RpcEndpoint*>(self);
    return PyLong_FromSize_t(
        ep->handle == nullptr ? 0
                              : shmbus_caller_in_flight(static_cast<shmbus_caller*>(ep->handle)));
}

/// Opens a Server (`server`) or a Caller for Client.open_server() / open_caller().
PyObject* open_rpc(PyObject* self, PyObject* args, PyObject* kwargs, bool server) {
    auto* c = reinterpret_cast<Client*>(self);
    static const char* kwlist[] = {"channel", "wait", "spin_iterations", "wait_for_server",
                                   nullptr};
    const char* channel = nullptr;
    const char* wait = nullptr;
    unsigned int spins = 0;
    int wait_for_server = 0;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, server ? "s|sI:open_server" : "s|sIp:open_caller",
            const_cast<char**>(kwlist), &channel, &wait, &spins, &wait_for_server)) {
        return nullptr;
    }
    shmbus_endpoint_options options;
    shmbus_endpoint_options_init(&options);
    if (!parse_wait(wait, options.wait) ||
        !client_usable(c, server ? "open_server" : "open_caller")) {
        return nullptr;
    }
    options.spin_iterations = spins;
    void* handle = nullptr;
    const int rc = without_gil(&c->busy, [&] {
        return server ? shmbus_open_server(c->handle, channel, &options,
                                           reinterpret_cast<shmbus_server**>(&handle))
                      : shmbus_open_caller(c->handle, channel, &options, wait_for_server,
                                           reinterpret_cast<shmbus_caller**>(&handle));
    });
    if (rc != SHMBUS_OK) {
        return raise_last(rc);
    }
    auto* ep = PyObject_New(RpcEndpoint, server ? g_server_type : g_caller_type);
    if (ep == nullptr) {
        RpcEndpoint gone{};
        gone.handle = handle;
        gone.server = server;
        close_handle(&gone);
        return nullptr;
    }
    ep->handle = handle;
    ep->server = server;
    ep->busy = false;
    ep->wait_fd = -1;
    ep->reply_size = server ? 0 : shmbus_caller_reply_size(static_cast<shmbus_caller*>(handle));
    const shmbus_channel_info info = info_of(ep);
    std::memcpy(ep->channel, info.name, sizeof ep->channel);
    ep->channel[sizeof ep->channel - 1] = '\0';
    return reinterpret_cast<PyObject*>(ep);
}

PyMethodDef server_methods[] = {
    {"receive", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(server_receive)),
     METH_VARARGS | METH_KEYWORDS,
     "receive(max_count=16, timeout=None) -> list of 1 to max_count Request (data copied)."},
    {"respond", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(server_respond)),
     METH_VARARGS | METH_KEYWORDS,
     "respond(request, data): answers a request that receive() returned."},
    {"close", rpc_close, METH_NOARGS,
     "Leaves the channel; the calls taken and not answered fail at their callers."},
    {"__enter__", rpc_enter, METH_NOARGS, nullptr},
    {"__exit__", rpc_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyMethodDef caller_methods[] = {
    {"call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(caller_call)),
     METH_VARARGS | METH_KEYWORDS,
     "call(data, timeout=None) -> bytes: sends a request and returns its reply."},
    {"close", rpc_close, METH_NOARGS, "Leaves the channel; calls in flight are given up."},
    {"__enter__", rpc_enter, METH_NOARGS, nullptr},
    {"__exit__", rpc_exit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef server_getset[] = {
    {"info", rpc_info, nullptr, "The channel's ChannelInfo.", nullptr},
    {"channel", rpc_channel, nullptr, "The channel's name.", nullptr},
    {"closed", rpc_closed, nullptr, "True once closed.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyGetSetDef caller_getset[] = {
    {"info", rpc_info, nullptr, "The channel's ChannelInfo.", nullptr},
    {"channel", rpc_channel, nullptr, "The channel's name.", nullptr},
    {"closed", rpc_closed, nullptr, "True once closed.", nullptr},
    {"in_flight", caller_in_flight, nullptr, "Calls sent and not yet collected or given up.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot server_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(rpc_dealloc)},
    {Py_tp_methods, server_methods},
    {Py_tp_getset, server_getset},
    {Py_tp_repr, reinterpret_cast<void*>(rpc_repr)},
    {Py_tp_doc, const_cast<char*>("Serves the calls of an rpc channel: Client.open_server().")},
    {0, nullptr},
};

PyType_Slot caller_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(rpc_dealloc)},
    {Py_tp_methods, caller_methods},
    {Py_tp_getset, caller_getset},
    {Py_tp_repr, reinterpret_cast<void*>(rpc_repr)},
    {Py_tp_doc, const_cast<char*>("Calls the servers of an rpc channel: Client.open_caller().")},
    {0, nullptr},
};

PyType_Spec server_spec = {"shmbus.Server", sizeof(RpcEndpoint), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, server_slots};
PyType_Spec caller_spec = {"shmbus.Caller", sizeof(RpcEndpoint), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, caller_slots};

} // namespace

PyObject* client_open_server(PyObject* self, PyObject* args, PyObject* kwargs) {
    return open_rpc(self, args, kwargs, true);
}

PyObject* client_open_caller(PyObject* self, PyObject* args, PyObject* kwargs) {
    return open_rpc(self, args, kwargs, false);
}

PyObject* setup_rpc(PyObject*, PyObject* args) {
    PyObject* request = nullptr;
    if (!PyArg_ParseTuple(args, "O:_setup_rpc", &request)) {
        return nullptr;
    }
    Py_INCREF(request);
    Py_XSETREF(g_request, request);
    Py_RETURN_NONE;
}

bool add_rpc_types(PyObject* module) {
    return add_type(module, &server_spec, &g_server_type, "Server") &&
           add_type(module, &caller_spec, &g_caller_type, "Caller");
}

} // namespace shmbus_py
