/*
 * tlstiming._recording._speedups: the handshake's hot path in C (optional).
 *
 * The same three steps as the pure-Python code in tlstiming/_recording/conn.py, which
 * stays the reference and the fallback: OpenSSL's message callback
 * (on_message), the do_handshake wrapper (drive) and, for the common case of
 * a handshake that completed with no verifier and no pending TLS 1.3 client
 * certificate verdict, the span's assembly, delivery and the detach from the
 * data path. Every other case calls back into tlstiming._recording.conn.
 *
 * Why C: these run right after OpenSSL's handshake work has evicted the
 * interpreter from the CPU caches, where each Python function touched costs
 * microseconds. Behaviour must match the Python code exactly; the test suite
 * runs both (TLSTIMING_PURE_PYTHON=1 selects the Python path).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Analysis builds: benchmarks/analyze_handshake.py compiles this file again under
 * another module name with one ABLATE_* macro defined, which switches one piece
 * off, to measure what it costs. A real build defines none of them. */
#ifndef SPEEDUPS_MODULE
#define SPEEDUPS_MODULE "tlstiming._recording._speedups"
#define SPEEDUPS_INIT PyInit__speedups
#endif

/* Bumped whenever configure() or the behaviour _conn expects changes. */
#define SPEEDUPS_VERSION 4

/* -- compatibility: Python 3.10 to 3.13 ------------------------------------ */

/* getattr(obj, name, None) without raising: 1 found, 0 missing, -1 error. */
static int
optional_attr(PyObject *obj, PyObject *name, PyObject **result)
{
    *result = PyObject_GetAttr(obj, name);
    if (*result != NULL) {
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* The exception being raised, normalised, as one object; the indicator is cleared. */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise ``exc`` again (steals the reference), its traceback kept. */
static void
restore_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

/* Set by configure(): borrowed from nothing, owned here. */
static PyObject *g_adopt;        /* _conn._adopt(conn) -> events list or None */
static PyObject *g_finish;       /* _conn._finish(conn, events, end, exc) -> rejection or None */
static PyObject *g_refuse;       /* _conn._refuse(conn) */
static PyObject *g_failed;       /* _conn._record_failed(exc) */
static PyObject *g_sink_failed;  /* _delivery.report_exception(sink, span, exc) */
static PyObject *g_span_type;    /* spans.HandshakeSpan */
static PyObject *g_build;        /* the tlstiming.spans.build module (its ids are re-drawn at fork) */
static PyObject *g_delivery;     /* the tlstiming._recording.delivery module (global_sinks is rebound) */
static PyObject *g_want;         /* (SSLWantReadError, SSLWantWriteError) */
static PyObject *g_sslsocket;    /* ssl.SSLSocket */
static PyObject *g_msg_descr;    /* ssl._SSLContext._msg_callback (C getset descriptor) or None */
static PyObject *g_perf;         /* time.perf_counter_ns, where there is no direct clock */
static PyObject *g_cpu;          /* time.thread_time_ns, idem */
static PyObject *g_unix;         /* time.time_ns, idem */
static PyObject *g_slots;        /* HandshakeSpan's slot descriptors, in SLOT_* order */

enum {
    SLOT_ID, SLOT_SIDE, SLOT_HOSTNAME, SLOT_PEER, SLOT_START, SLOT_END, SLOT_UNIX,
    SLOT_ERROR, SLOT_CONTEXT, SLOT_VERIFICATIONS, SLOT_EVENTS, SLOT_TILING, SLOT_PHASES,
    SLOT_RECORDS, SLOT_MESSAGES, SLOT_FACTS, N_SLOTS,
};

/* Interned names and constants. */
static PyObject *s_events, *s_context_key, *s_span, *s_certreq, *s_ctx_attr, *s_context;
static PyObject *s_verifiers, *s_trust, *s_on_handshake, *s_sinks, *s_server_side;
static PyObject *s_server_hostname, *s_getpeername, *s_sslobj, *s_user_cb, *s_ids;
static PyObject *s_client, *s_server, *s_global_sinks, *s_deliver, *s_append, *s_empty_str, *s_empty_bytes;
static PyObject *c_empty_tuple, *c_minus_one, *c_zero;
enum { ENTER = -1, EXIT = -2 };  /* _timeline.ENTER, _timeline.EXIT */

#if defined(__linux__)
/* CPython's perf_counter_ns, thread_time_ns and time_ns are these clocks on Linux. */
#define DIRECT_CLOCKS 1
static int
clock_raw(clockid_t id, int64_t *out)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    *out = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    return 0;
}
static inline int perf_raw(int64_t *out) { return clock_raw(CLOCK_MONOTONIC, out); }
#ifdef ABLATE_CPU
static inline int cpu_raw(int64_t *out) { *out = 0; return 0; }
#else
static inline int cpu_raw(int64_t *out) { return clock_raw(CLOCK_THREAD_CPUTIME_ID, out); }
#endif
static inline int unix_raw(int64_t *out) { return clock_raw(CLOCK_REALTIME, out); }
#else
/* Elsewhere: time's own functions, so the clocks are exactly the Python code's. */
#define DIRECT_CLOCKS 0
static int
call_raw(PyObject *clock, int64_t *out)
{
    PyObject *value = PyObject_CallNoArgs(clock);
    if (value == NULL) {
        return -1;
    }
    long long ns = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (ns == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = ns;
    return 0;
}
static inline int perf_raw(int64_t *out) { return call_raw(g_perf, out); }
static inline int cpu_raw(int64_t *out) { return call_raw(g_cpu, out); }
static inline int unix_raw(int64_t *out) { return call_raw(g_unix, out); }
#endif

static PyObject *
clock_object(int (*clock)(int64_t *))
{
    int64_t ns;
    return clock(&ns) < 0 ? NULL : PyLong_FromLongLong(ns);
}
static inline PyObject *perf_ns(void) { return clock_object(perf_raw); }
static inline PyObject *cpu_ns(void) { return clock_object(cpu_raw); }
static inline PyObject *unix_ns(void) { return clock_object(unix_raw); }


/* -- Events: a handshake's raw events, packed ---------------------------------
 *
 * A sequence of (t_ns, cpu_ns, direction, kind, msg_type, data) tuples, as the
 * pure-Python code keeps in a list, stored as fixed-size C records plus one
 * byte buffer. The message callback appends without allocating a Python
 * object, and the span that keeps it frees three blocks instead of ~100
 * objects. Tuples are built only when read (a span's first view converts it
 * to a tuple once). Python code appends 6-tuples through append().
 */

typedef struct {
    int64_t t, cpu;
    int32_t kind, msg_type;
    uint32_t offset, length;
    uint8_t direction;  /* 0 "", 1 "read", 2 "write" */
} Event;

typedef struct {
    PyObject_HEAD
    Event *items;
    Py_ssize_t size, capacity;
    char *data;
    size_t used, room;
    int frozen;
} Events;

static PyTypeObject EventsType;
static PyObject *s_read, *s_write;

static void
events_dealloc(Events *self)
{
    PyMem_Free(self->items);
    PyMem_Free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
events_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if ((args != NULL && PyTuple_GET_SIZE(args)) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Events() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

/* Reserve one record and ``length`` bytes; NULL (MemoryError set) if impossible. */
static Event *
events_reserve(Events *self, size_t length)
{
    if (self->frozen) {
        PyErr_SetString(PyExc_TypeError, "a finished handshake's events cannot change");
        return NULL;
    }
    if (length > UINT32_MAX || self->used > UINT32_MAX - length) {
        PyErr_SetString(PyExc_OverflowError, "handshake events too large");
        return NULL;
    }
    if (self->size == self->capacity) {
        if (self->capacity > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(Event)) {
            PyErr_NoMemory();
            return NULL;
        }
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 32;
        Event *items = PyMem_Realloc(self->items, (size_t)capacity * sizeof(Event));
        if (items == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->items = items;
        self->capacity = capacity;
    }
    if (self->used + length > self->room) {
        size_t room = self->room ? self->room : 4096;
        while (room < self->used + length) {
            room = room > SIZE_MAX / 2 ? self->used + length : room * 2;  /* no wrap (32-bit) */
        }
        char *data = PyMem_Realloc(self->data, room);
        if (data == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->data = data;
        self->room = room;
    }
    Event *e = &self->items[self->size];
    e->offset = (uint32_t)self->used;
    e->length = (uint32_t)length;
    return e;
}

/* Append one event; ``data``/``length`` are copied. */
static int
events_add(Events *self, int64_t t, int64_t cpu, uint8_t direction, int32_t kind,
           int32_t msg_type, const char *data, size_t length)
{
    Event *e = events_reserve(self, length);
    if (e == NULL) {
        return -1;
    }
    e->t = t;
    e->cpu = cpu;
    e->direction = direction;
    e->kind = kind;
    e->msg_type = msg_type;
    if (length) {
        memcpy(self->data + self->used, data, length);
    }
    self->used += length;
    self->size++;
    return 0;
}

/* "" -> 0, "read" -> 1, "write" -> 2; -1 with ValueError otherwise. */
static int
direction_code(PyObject *direction)
{
    if (!PyUnicode_Check(direction)) {
        PyErr_SetString(PyExc_TypeError, "direction must be a str");
        return -1;
    }
    if (PyUnicode_GET_LENGTH(direction) == 0) {
        return 0;
    }
    if (PyUnicode_CompareWithASCIIString(direction, "read") == 0) {
        return 1;
    }
    if (PyUnicode_CompareWithASCIIString(direction, "write") == 0) {
        return 2;
    }
    PyErr_SetString(PyExc_ValueError, "direction must be '', 'read' or 'write'");
    return -1;
}

static int
int32_of(PyObject *value, int32_t *out)
{
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "event field out of range");
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* Events.append((t_ns, cpu_ns, direction, kind, msg_type, data)) */
static PyObject *
events_append(Events *self, PyObject *item)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 6) {
        PyErr_SetString(PyExc_TypeError, "an event is a tuple of 6 items");
        return NULL;
    }
    long long t = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 0));
    if (t == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long long cpu = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 1));
    if (cpu == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int direction = direction_code(PyTuple_GET_ITEM(item, 2));
    if (direction < 0) {
        return NULL;
    }
    int32_t kind, msg_type;
    if (int32_of(PyTuple_GET_ITEM(item, 3), &kind) < 0
        || int32_of(PyTuple_GET_ITEM(item, 4), &msg_type) < 0) {
        return NULL;
    }
    PyObject *data = PyTuple_GET_ITEM(item, 5);
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "an event's data is bytes");
        return NULL;
    }
    if (events_add(self, t, cpu, (uint8_t)direction, kind, msg_type, PyBytes_AS_STRING(data),
                   (size_t)PyBytes_GET_SIZE(data)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static Py_ssize_t
events_length(Events *self)
{
    return self->size;
}

static PyObject *
events_item(Events *self, Py_ssize_t i)
{
    if (i < 0 || i >= self->size) {
        PyErr_SetString(PyExc_IndexError, "event index out of range");
        return NULL;
    }
    const Event *e = &self->items[i];
    PyObject *direction = e->direction == 1 ? s_read : e->direction == 2 ? s_write : s_empty_str;
    PyObject *data = e->length ? PyBytes_FromStringAndSize(self->data + e->offset, e->length)
                               : Py_NewRef(s_empty_bytes);
    if (data == NULL) {
        return NULL;
    }
    return Py_BuildValue("(LLOiiN)", (long long)e->t, (long long)e->cpu, direction, e->kind,
                         e->msg_type, data);
}

static PyObject *
events_subscript(Events *self, PyObject *key)
{
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
        return events_item(self, i < 0 ? i + self->size : i);
    }
    if (PySlice_Check(key)) {
        Py_ssize_t start, stop, step;
        if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
            return NULL;
        }
        Py_ssize_t n = PySlice_AdjustIndices(self->size, &start, &stop, step);
        PyObject *list = PyList_New(n);
        if (list == NULL) {
            return NULL;
        }
        for (Py_ssize_t k = 0, i = start; k < n; k++, i += step) {
            PyObject *item = events_item(self, i);
            if (item == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, k, item);
        }
        return list;
    }
    PyErr_Format(PyExc_TypeError, "event indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return NULL;
}

static PyObject *
events_freeze(Events *self, PyObject *unused)
{
    self->frozen = 1;
    Py_RETURN_NONE;
}

static PyMethodDef events_methods[] = {
    {"append", (PyCFunction)events_append, METH_O, "Append one (t, cpu, direction, kind, msg_type, data) event."},
    {"freeze", (PyCFunction)events_freeze, METH_NOARGS, "Refuse further appends."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods events_as_sequence = {
    .sq_length = (lenfunc)events_length,
    .sq_item = (ssizeargfunc)events_item,
};

static PyMappingMethods events_as_mapping = {
    .mp_length = (lenfunc)events_length,
    .mp_subscript = (binaryfunc)events_subscript,
};

static PyTypeObject EventsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = SPEEDUPS_MODULE ".Events",
    .tp_basicsize = sizeof(Events),
    .tp_dealloc = (destructor)events_dealloc,
    .tp_as_sequence = &events_as_sequence,
    .tp_as_mapping = &events_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A handshake's raw events, packed: a sequence of 6-tuples.",
    .tp_methods = events_methods,
    .tp_new = events_new,
};

/* Build (perf, cpu-or--1, direction, kind, msg_type, data); steals nothing. */
static PyObject *
event(PyObject *now, int with_cpu, PyObject *direction, PyObject *kind, PyObject *msg_type,
      PyObject *data)
{
    PyObject *cpu;
    if (with_cpu) {
        cpu = cpu_ns();
        if (cpu == NULL) {
            return NULL;
        }
    }
    else {
        cpu = Py_NewRef(c_minus_one);
    }
    PyObject *t = PyTuple_New(6);
    if (t == NULL) {
        Py_DECREF(cpu);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, Py_NewRef(now));
    PyTuple_SET_ITEM(t, 1, cpu);
    PyTuple_SET_ITEM(t, 2, Py_NewRef(direction));
    PyTuple_SET_ITEM(t, 3, Py_NewRef(kind));
    PyTuple_SET_ITEM(t, 4, Py_NewRef(msg_type));
    PyTuple_SET_ITEM(t, 5, Py_NewRef(data));
    return t;
}

/* events.append(item), honouring an overridden append (the _Implicit list). */
static int
append(PyObject *events, PyObject *item)
{
    if (PyList_CheckExact(events)) {
        return PyList_Append(events, item);
    }
    PyObject *r = PyObject_CallMethodOneArg(events, s_append, item);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Append a marker (ENTER, EXIT) stamped now into *now. */
static int
mark(PyObject *events, int kind, int64_t *now)
{
    int64_t cpu;
    if (perf_raw(now) < 0 || cpu_raw(&cpu) < 0) {
        return -1;
    }
    if (Py_IS_TYPE(events, &EventsType)) {
        return events_add((Events *)events, *now, cpu, 0, kind, 0, NULL, 0);
    }
    PyObject *t = Py_BuildValue("(LLOiiO)", (long long)*now, (long long)cpu, s_empty_str, kind, 0,
                                s_empty_bytes);
    if (t == NULL) {
        return -1;
    }
    int rc = append(events, t);
    Py_DECREF(t);
    return rc;
}

static int
configured(void)
{
    if (g_span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tlstiming._recording._speedups is not configured");
        return 0;
    }
    return 1;
}

/* on_message(conn, direction, version, content_type, msg_type, data) */
static PyObject *
on_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "on_message() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!configured()) {
        return NULL;
    }
    PyObject *conn = args[0];
    PyObject *events = PyObject_GetAttr(conn, s_events);
    if (events == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
        events = PyObject_CallOneArg(g_adopt, conn);
        if (events == NULL) {
            return NULL;
        }
    }
    if (events == Py_None) {
        Py_DECREF(events);
        Py_RETURN_NONE;
    }
    /* one at a time: converting the second with the first's exception set would lose it */
    long content_type = PyLong_AsLong(args[3]);
    if (content_type == -1 && PyErr_Occurred()) {
        Py_DECREF(events);
        return NULL;
    }
    long msg_type = PyLong_AsLong(args[4]);
    if (msg_type == -1 && PyErr_Occurred()) {
        Py_DECREF(events);
        return NULL;
    }
    int handshake_or_alert = content_type == 22 || content_type == 21;
    if (Py_IS_TYPE(events, &EventsType) && PyBytes_Check(args[5])) {
        int64_t t, cpu = -1;
        int direction = direction_code(args[1]);
        int rc = direction < 0 || content_type < INT32_MIN || content_type > INT32_MAX
                         || msg_type < INT32_MIN || msg_type > INT32_MAX
                     ? -1
                     : perf_raw(&t);
        if (rc == 0 && handshake_or_alert) {
            rc = cpu_raw(&cpu);
        }
        if (rc == 0) {
            rc = events_add((Events *)events, t, cpu, (uint8_t)direction, (int32_t)content_type,
                            (int32_t)msg_type, PyBytes_AS_STRING(args[5]),
                            (size_t)PyBytes_GET_SIZE(args[5]));
        }
        Py_DECREF(events);
        if (rc < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_OverflowError, "event field out of range");
            }
            return NULL;
        }
        goto recorded;
    }
    PyObject *now = perf_ns();
    if (now == NULL) {
        Py_DECREF(events);
        return NULL;
    }
    PyObject *t = event(now, handshake_or_alert, args[1], args[3], args[4], args[5]);
    Py_DECREF(now);
    if (t == NULL || append(events, t) < 0) {
        Py_XDECREF(t);
        Py_DECREF(events);
        return NULL;
    }
    Py_DECREF(t);
    Py_DECREF(events);
recorded:
    if (content_type == 22 && msg_type == 13) {
        if (PyObject_SetAttr(conn, s_certreq, Py_True) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* conn.getpeername() as (host, port), or None (not a socket, closed, AF_UNIX...). */
static PyObject *
peer_of(PyObject *conn)
{
#ifdef ABLATE_PEER
    Py_RETURN_NONE;
#endif
    int is_socket = PyObject_IsInstance(conn, g_sslsocket);
    if (is_socket < 0) {
        return NULL;
    }
    if (!is_socket) {
        Py_RETURN_NONE;
    }
    PyObject *address = PyObject_CallMethodNoArgs(conn, s_getpeername);
    if (address == NULL) {
        if (PyErr_ExceptionMatches(PyExc_OSError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return NULL;
    }
    PyObject *peer;
    if (PyTuple_Check(address) && PyTuple_GET_SIZE(address) >= 2) {
        peer = PyTuple_Pack(2, PyTuple_GET_ITEM(address, 0), PyTuple_GET_ITEM(address, 1));
    }
    else {
        peer = Py_NewRef(Py_None);
    }
    Py_DECREF(address);
    return peer;
}

/* Call a C getset descriptor's setter: descr.__set__(obj, value). */
static int
descr_set(PyObject *obj, PyObject *value)
{
    descrsetfunc set = Py_TYPE(g_msg_descr)->tp_descr_set;
    if (set == NULL) {
        PyErr_SetString(PyExc_TypeError, "_msg_callback is not a settable descriptor");
        return -1;
    }
    return set(g_msg_descr, obj, value);
}

/* The detach of _detach.detach, with no Python frame anywhere in between. */
static int
detach(PyObject *conn)
{
#ifdef ABLATE_DETACH
    return 0;
#endif
    if (g_msg_descr == Py_None) {
        return 0;
    }
    int rc = -1;
    PyObject *context = NULL, *user = NULL, *callback = NULL;
    PyObject *sslobj = PyObject_GetAttr(conn, s_sslobj);
    if (sslobj == NULL) {
        return -1;
    }
    context = PyObject_GetAttr(sslobj, s_context);
    if (context == NULL) {
        goto done;
    }
    if (optional_attr(context, s_user_cb, &user) < 0) {
        goto done;
    }
    if (user != Py_None) {  /* the caller's own callback wants every record (or not ours) */
        rc = 0;
        goto done;
    }
    descrgetfunc get = Py_TYPE(g_msg_descr)->tp_descr_get;
    if (get == NULL) {
        PyErr_SetString(PyExc_TypeError, "_msg_callback is not a readable descriptor");
        goto done;
    }
    callback = get(g_msg_descr, context, (PyObject *)Py_TYPE(context));
    if (callback == NULL) {
        goto done;
    }
    if (callback == Py_None) {
        rc = 0;
        goto done;
    }
    if (descr_set(context, Py_None) < 0) {
        goto done;
    }
    int assigned = PyObject_SetAttr(sslobj, s_context, context);
    PyObject *exc = assigned < 0 ? take_exception() : NULL;
    int restored = descr_set(context, callback);
    if (exc != NULL) {
        if (restored < 0) {
            PyErr_Clear();
        }
        restore_exception(exc);
        goto done;
    }
    rc = restored;
done:
    Py_XDECREF(callback);
    Py_XDECREF(user);
    Py_XDECREF(context);
    Py_DECREF(sslobj);
    return rc;
}

/* Call every sink that ``sinks`` yields with span (``for sink in sinks``, so a list
 * changed by a sink is walked as Python walks it); a sink's Exception is reported. */
static int
call_sinks(PyObject *sinks, PyObject *span)
{
    PyObject *it = PyObject_GetIter(sinks);
    if (it == NULL) {
        return -1;
    }
    PyObject *sink;
    while ((sink = PyIter_Next(it)) != NULL) {  /* a strong reference: a sink may drop itself */
        PyObject *r = PyObject_CallOneArg(sink, span);
        if (r == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
            PyObject *exc = take_exception();
            PyObject *args[3] = {sink, span, exc};
            r = PyObject_Vectorcall(g_sink_failed, args, 3, NULL);
            Py_DECREF(exc);
        }
        Py_DECREF(sink);
        if (r == NULL) {
            Py_DECREF(it);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* HandshakeSpan(...) as its __init__ would build it, without running Python code. */
static PyObject *
new_span(PyObject *span_id, PyObject *server_side, PyObject *hostname, PyObject *peer,
         PyObject *events, PyObject *end, PyObject *wall, PyObject *snapshot)
{
    int server = PyObject_IsTrue(server_side);
    if (server < 0) {
        return NULL;
    }
    PyObject *start = NULL;
    if (Py_IS_TYPE(events, &EventsType)) {
        Events *packed = (Events *)events;
        start = packed->size ? PyLong_FromLongLong(packed->items[0].t) : NULL;
    }
    else if (PyTuple_GET_SIZE(events) && PyTuple_Check(PyTuple_GET_ITEM(events, 0))
             && PyTuple_GET_SIZE(PyTuple_GET_ITEM(events, 0))) {
        start = Py_NewRef(PyTuple_GET_ITEM(PyTuple_GET_ITEM(events, 0), 0));
    }
    if (start == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a handshake with no events");
        return NULL;
    }
    PyObject *values[N_SLOTS] = {
        [SLOT_ID] = span_id, [SLOT_SIDE] = server ? s_server : s_client,
        [SLOT_HOSTNAME] = hostname, [SLOT_PEER] = peer,
        [SLOT_START] = start, [SLOT_END] = end,
        [SLOT_UNIX] = wall, [SLOT_ERROR] = Py_None, [SLOT_CONTEXT] = snapshot,
        [SLOT_VERIFICATIONS] = c_empty_tuple, [SLOT_EVENTS] = events,
        [SLOT_TILING] = Py_None, [SLOT_PHASES] = Py_None, [SLOT_RECORDS] = Py_None,
        [SLOT_MESSAGES] = Py_None, [SLOT_FACTS] = Py_None,
    };
    /* configure() checked both; held here so that a tp_new running Python code that
     * configures again cannot free them under us */
    PyTypeObject *type = (PyTypeObject *)Py_NewRef(g_span_type);
    PyObject *slots = Py_NewRef(g_slots);
    PyObject *span = NULL;
    if (type->tp_new == NULL) {
        PyErr_Format(PyExc_TypeError, "cannot create '%.200s' instances", type->tp_name);
    }
    else {
        span = type->tp_new(type, c_empty_tuple, NULL);
    }
    for (int i = 0; span != NULL && i < N_SLOTS; i++) {
        PyObject *descr = PyTuple_GET_ITEM(slots, i);  /* a member descriptor: it runs no code */
        if (Py_TYPE(descr)->tp_descr_set(descr, span, values[i]) < 0) {
            Py_CLEAR(span);
        }
    }
    Py_DECREF(slots);
    Py_DECREF(type);
    Py_DECREF(start);
    return span;
}

/* _conn._complete for a handshake with no verifier and no pending verdict. */
static int
complete(PyObject *conn, PyObject *d, PyObject *context, PyObject *events, PyObject *end)
{
    int rc = -1;
    PyObject *server_side = NULL, *hostname = NULL, *peer = NULL, *frozen = NULL;
    PyObject *wall = NULL, *account = NULL, *snapshot = NULL, *ids = NULL, *span_id = NULL;
    PyObject *span = NULL, *sinks = NULL, *global = NULL;

    if ((server_side = PyObject_GetAttr(conn, s_server_side)) == NULL) goto done;
    if (optional_attr(context, s_trust, &account) < 0) goto done;
    if (account != NULL && account != Py_None) {
        if ((snapshot = PyObject_CallMethodNoArgs(account, s_on_handshake)) == NULL) goto done;
    }
    if ((ids = PyObject_GetAttr(g_build, s_ids)) == NULL) goto done;
    if (!PyIter_Check(ids)) {  /* PyIter_Next would call a NULL tp_iternext */
        PyErr_Format(PyExc_TypeError, "'%.200s' object is not an iterator", Py_TYPE(ids)->tp_name);
        goto done;
    }
    if ((span_id = PyIter_Next(ids)) == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "span ids exhausted");
        goto done;
    }
    if ((hostname = PyObject_GetAttr(conn, s_server_hostname)) == NULL) goto done;
    if ((peer = peer_of(conn)) == NULL) goto done;
    /* a tuple of tuples of atoms leaves the garbage collector's watch */
    if (Py_IS_TYPE(events, &EventsType)) {  /* packed: kept as it is, closed to appends */
        ((Events *)events)->frozen = 1;
        frozen = Py_NewRef(events);
    }
    else if ((frozen = PySequence_Tuple(events)) == NULL) {
        goto done;
    }
    if ((wall = unix_ns()) == NULL) goto done;
    span = new_span(span_id, server_side, hostname, peer, frozen, end, wall,
                    snapshot != NULL ? snapshot : Py_None);
    if (span == NULL) goto done;
    if (PyDict_SetItem(d, s_span, span) < 0) goto done;
#ifndef ABLATE_SINKS
    if (optional_attr(context, s_sinks, &sinks) < 0) goto done;
    if (sinks != NULL && call_sinks(sinks, span) < 0) goto done;
#endif
    if ((global = PyObject_GetAttr(g_delivery, s_global_sinks)) == NULL) goto done;
    int any = PyObject_IsTrue(global);
    if (any < 0) goto done;
    if (any) {
        PyObject *r = PyObject_CallMethodObjArgs(g_delivery, s_deliver, Py_None, span, NULL);
        if (r == NULL) goto done;
        Py_DECREF(r);
    }
    rc = detach(conn);
done:
    Py_XDECREF(global);
    Py_XDECREF(sinks);
    Py_XDECREF(span);
    Py_XDECREF(wall);
    Py_XDECREF(frozen);
    Py_XDECREF(peer);
    Py_XDECREF(hostname);
    Py_XDECREF(span_id);
    Py_XDECREF(ids);
    Py_XDECREF(snapshot);
    Py_XDECREF(account);
    Py_XDECREF(server_side);
    return rc;
}

/* Report a failure to record (never raised into the connection), as _leave does. */
static int
recording_failed(void)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;  /* KeyboardInterrupt and friends propagate, as in Python */
    }
    PyObject *exc = take_exception();
    PyObject *r = PyObject_CallOneArg(g_failed, exc);
    Py_DECREF(exc);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* After a completed handshake's EXIT: the common case in C, the rest in _conn._finish. */
static PyObject *
finish_ok(PyObject *conn, PyObject *d, PyObject *events, PyObject *end)
{
    PyObject *context = PyDict_GetItemWithError(d, s_context_key);  /* borrowed */
    if (context == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "_tlstiming_context");
        return NULL;
    }
    Py_INCREF(context);
    PyObject *verifiers = NULL, *result = NULL;
    if (optional_attr(context, s_verifiers, &verifiers) < 0) goto done;
    int has_verifiers = verifiers == NULL ? 0 : PyObject_IsTrue(verifiers);
    if (has_verifiers < 0) goto done;
    int asked = PyDict_Contains(d, s_certreq);
    if (asked < 0) goto done;
    if (has_verifiers || asked) {
        PyObject *argv[4] = {conn, events, end, Py_None};
        result = PyObject_Vectorcall(g_finish, argv, 4, NULL);
        goto done;
    }
#ifdef ABLATE_SPAN
    result = Py_NewRef(Py_None);
    goto done;
#endif
    if (complete(conn, d, context, events, end) == 0) {
        result = Py_NewRef(Py_None);
    }
done:
    Py_XDECREF(verifiers);
    Py_DECREF(context);
    return result;
}

/* The end of a handshake that completed: _conn._leave(conn, events, None). */
static PyObject *
leave_ok(PyObject *conn, PyObject *events)
{
    int64_t t;
    if (mark(events, EXIT, &t) < 0) {
        return NULL;
    }
    PyObject *end = PyLong_FromLongLong(t);
    if (end == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *d = PyObject_GenericGetDict(conn, NULL);
    if (d != NULL && PyDict_SetItem(d, s_events, Py_None) == 0) {
        /* from here on, a failure is reported and never reaches the connection */
        result = finish_ok(conn, d, events, end);
        if (result == NULL && recording_failed() == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    Py_XDECREF(d);
    Py_DECREF(end);
    return result;
}

/* _detach.rearm: assign the connection (its __dict__ ``d``) its own context again, so
 * that OpenSSL calls back for it even if it was born (SSL_new, run without the
 * GIL) in the instant another thread's detach had cleared the context's callback. */
static int
rearm(PyObject *d)
{
    PyObject *sslobj = PyDict_GetItemWithError(d, s_sslobj);  /* borrowed */
    if (sslobj == NULL || sslobj == Py_None) {
        return PyErr_Occurred() ? -1 : 0;  /* not connected yet: born later */
    }
    Py_INCREF(sslobj);
    PyObject *context = PyObject_GetAttr(sslobj, s_context);
    int rc = context == NULL ? -1 : PyObject_SetAttr(sslobj, s_context, context);
    Py_XDECREF(context);
    Py_DECREF(sslobj);
    return rc;
}

/* The events list a handshake records into (new ref), None, or NULL on error. */
static PyObject *
enter(PyObject *conn)
{
    PyObject *d = PyObject_GenericGetDict(conn, NULL);
    if (d == NULL) {
        return NULL;
    }
    PyObject *events = PyDict_GetItemWithError(d, s_events);  /* borrowed */
    if (events == NULL) {
        if (PyErr_Occurred() || rearm(d) < 0) goto fail;
        PyObject *context = PyDict_GetItemWithError(d, s_ctx_attr);  /* SSLSocket's _context */
        if (context == NULL && PyErr_Occurred()) goto fail;
        Py_XINCREF(context);  /* its __bool__ may run code that drops it from the dict */
        int truthy = context == NULL ? 0 : PyObject_IsTrue(context);
        if (truthy <= 0) {
            Py_XDECREF(context);
            if (truthy < 0 || (context = PyObject_GetAttr(conn, s_context)) == NULL) goto fail;
        }
        int rc = PyDict_SetItem(d, s_context_key, context);
        Py_DECREF(context);
        if (rc < 0) goto fail;
        PyObject *fresh = PyObject_CallNoArgs((PyObject *)&EventsType);
        if (fresh == NULL) goto fail;
        rc = PyDict_SetItem(d, s_events, fresh);
        Py_DECREF(fresh);
        if (rc < 0) goto fail;
        events = fresh;
    }
    Py_INCREF(events);
    Py_DECREF(d);
    int64_t now;
    if (events != Py_None && mark(events, ENTER, &now) < 0) {
        Py_DECREF(events);
        return NULL;
    }
    return events;
fail:
    Py_DECREF(d);
    return NULL;
}

/* drive(conn, handshake, *args): run one do_handshake call and record it. */
static PyObject *
drive(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "drive() takes at least 2 arguments");
        return NULL;
    }
    if (!configured()) {
        return NULL;
    }
    PyObject *conn = args[0], *handshake = args[1];
    PyObject *events = enter(conn);
    if (events == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_Vectorcall(handshake, args + 2, nargs - 2, NULL);
    if (events == Py_None) {
        Py_DECREF(events);
        return r;
    }
    if (r == NULL) {
        PyObject *exc = take_exception();
        int want = PyErr_GivenExceptionMatches(exc, g_want);
        PyObject *done = NULL;
        int64_t t;
        if (mark(events, EXIT, &t) == 0) {
            if (want) {
                done = Py_NewRef(Py_None);
            }
            else {
                PyObject *end = PyLong_FromLongLong(t);
                PyObject *argv[4] = {conn, events, end, exc};
                done = end == NULL ? NULL : PyObject_Vectorcall(g_finish, argv, 4, NULL);
                Py_XDECREF(end);
            }
        }
        Py_DECREF(events);
        if (done == NULL) {  /* as in Python: an error while handling replaces it */
            Py_DECREF(exc);
            return NULL;
        }
        Py_DECREF(done);
        restore_exception(exc);
        return NULL;
    }
    Py_DECREF(r);
    PyObject *rejected = leave_ok(conn, events);
    Py_DECREF(events);
    if (rejected == NULL) {
        return NULL;
    }
    if (rejected == Py_None) {
        return rejected;
    }
    PyObject *refused = PyObject_CallOneArg(g_refuse, conn);
    if (refused == NULL) {
        Py_DECREF(rejected);
        return NULL;
    }
    Py_DECREF(refused);
    if (!PyExceptionInstance_Check(rejected)) {  /* as ``raise rejected`` would say */
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        Py_DECREF(rejected);
        return NULL;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(rejected), rejected);
    Py_DECREF(rejected);
    return NULL;
}

/* An exception class, or a tuple of them (what an ``except`` clause accepts, one level). */
static int
is_exception_spec(PyObject *obj)
{
    if (PyTuple_Check(obj)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(obj); i++) {
            if (!PyExceptionClass_Check(PyTuple_GET_ITEM(obj, i))) {
                return 0;
            }
        }
        return 1;
    }
    return PyExceptionClass_Check(obj);
}

/* Refuse, before anything is stored, any value that a handshake would later trip on:
 * a handshake never meets a half-configured module or a value it cannot use safely. */
static int
check_configuration(char **names, PyObject *const *v)
{
    static const int callables[] = {0, 1, 2, 3, 4, 11, 12, 13};  /* adopt .. sink_failed, clocks */
    for (size_t k = 0; k < sizeof(callables) / sizeof(callables[0]); k++) {
        if (!PyCallable_Check(v[callables[k]])) {
            PyErr_Format(PyExc_TypeError, "%s must be callable", names[callables[k]]);
            return -1;
        }
    }
    PyTypeObject *span_type = PyType_Check(v[5]) ? (PyTypeObject *)v[5] : NULL;
    if (span_type == NULL || span_type->tp_new == NULL) {
        PyErr_SetString(PyExc_TypeError, "span_type must be a class that can be instantiated");
        return -1;
    }
    if (!is_exception_spec(v[8])) {
        PyErr_SetString(PyExc_TypeError, "want must be an exception class or a tuple of them");
        return -1;
    }
    if (!PyType_Check(v[9])) {
        PyErr_SetString(PyExc_TypeError, "sslsocket must be a class");
        return -1;
    }
    if (v[10] != Py_None
        && (Py_TYPE(v[10])->tp_descr_get == NULL || Py_TYPE(v[10])->tp_descr_set == NULL)) {
        PyErr_SetString(PyExc_TypeError, "msg_descr must be None or a data descriptor");
        return -1;
    }
    if (PyTuple_GET_SIZE(v[14]) != N_SLOTS) {
        PyErr_Format(PyExc_ValueError, "span_slots must be span_type's %d slots", (int)N_SLOTS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < N_SLOTS; i++) {
        PyObject *descr = PyTuple_GET_ITEM(v[14], i);
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)
            || !PyType_IsSubtype(span_type, PyDescr_TYPE(descr))) {
            PyErr_SetString(PyExc_TypeError, "span_slots must be slot descriptors of span_type");
            return -1;
        }
    }
    return 0;
}

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {
        "adopt", "finish", "refuse", "failed", "sink_failed", "span_type", "build",
        "delivery", "want", "sslsocket", "msg_descr", "perf", "cpu", "unix", "span_slots", NULL,
    };
    PyObject *v[15];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOOOOOOOOOOO!", names, &v[0], &v[1],
                                     &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
                                     &v[10], &v[11], &v[12], &v[13], &PyTuple_Type, &v[14])) {
        return NULL;
    }
    if (check_configuration(names, v) < 0) {
        return NULL;
    }
    PyObject **slots[15] = {
        &g_adopt, &g_finish, &g_refuse, &g_failed, &g_sink_failed, &g_span_type, &g_build,
        &g_delivery, &g_want, &g_sslsocket, &g_msg_descr, &g_perf, &g_cpu, &g_unix, &g_slots,
    };
    for (int i = 0; i < 15; i++) {
        Py_XSETREF(*slots[i], Py_NewRef(v[i]));
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"on_message", (PyCFunction)(void (*)(void))on_message, METH_FASTCALL,
     "OpenSSL's message callback: append one event to the connection's list."},
    {"drive", (PyCFunction)(void (*)(void))drive, METH_FASTCALL,
     "Run one do_handshake call of conn (handshake(*args)) and record it."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Give the module the Python objects it calls (done once by tlstiming._recording.conn)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, SPEEDUPS_MODULE,
    "The handshake's hot path in C; tlstiming._recording.conn is the reference.", -1, methods,
    NULL, NULL, NULL, NULL,
};

static int
intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
SPEEDUPS_INIT(void)
{
    if (intern(&s_events, "_tlstiming_events") < 0 ||
        intern(&s_context_key, "_tlstiming_context") < 0 ||
        intern(&s_span, "_tlstiming_span") < 0 ||
        intern(&s_certreq, "_tlstiming_certificate_request") < 0 ||
        intern(&s_ctx_attr, "_context") < 0 || intern(&s_context, "context") < 0 ||
        intern(&s_verifiers, "_tlstiming_verifiers") < 0 ||
        intern(&s_trust, "_tlstiming_trust") < 0 ||
        intern(&s_on_handshake, "on_handshake") < 0 ||
        intern(&s_sinks, "_tlstiming_sinks") < 0 ||
        intern(&s_server_side, "server_side") < 0 ||
        intern(&s_server_hostname, "server_hostname") < 0 ||
        intern(&s_getpeername, "getpeername") < 0 || intern(&s_sslobj, "_sslobj") < 0 ||
        intern(&s_user_cb, "_tlstiming_user_msg_callback") < 0 || intern(&s_ids, "ids") < 0 ||
        intern(&s_global_sinks, "global_sinks") < 0 || intern(&s_deliver, "deliver") < 0 ||
        intern(&s_append, "append") < 0 || intern(&s_client, "client") < 0 ||
        intern(&s_server, "server") < 0 || intern(&s_empty_str, "") < 0 ||
        intern(&s_read, "read") < 0 || intern(&s_write, "write") < 0) {
        return NULL;
    }
    if ((s_empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL ||
        (c_minus_one = PyLong_FromLong(-1)) == NULL ||
        (c_empty_tuple = PyTuple_New(0)) == NULL || (c_zero = PyLong_FromLong(0)) == NULL) {
        return NULL;
    }
    if (PyType_Ready(&EventsType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "VERSION", SPEEDUPS_VERSION) < 0
        || PyModule_AddObjectRef(module, "Events", (PyObject *)&EventsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
