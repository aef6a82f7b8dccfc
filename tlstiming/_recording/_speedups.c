/*
 * tlstiming._recording._speedups: the handshake's hot path in C (optional).
 *
 * Two functions of the pure-Python code in tlstiming/_recording/conn.py, which
 * stays the reference and the fallback: OpenSSL's message callback
 * (on_message), which records into packed events (Events) without a Python
 * object per message, and the do_handshake wrapper (drive), with its ENTER and
 * EXIT marks. The end of every handshake (the verifiers, the span, its
 * delivery, the detach) is tlstiming._recording.finish.finish, in Python,
 * whichever path recorded it: this file knows nothing of spans or sinks.
 *
 * Why C: the message callback runs some twenty times per handshake, right after
 * OpenSSL's work has evicted the interpreter from the CPU caches. Behaviour
 * must match the Python code exactly; the test suite runs both
 * (TLSTIMING_PURE_PYTHON=1 selects the Python path).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Analysis builds: benchmarks/analyze_handshake.py compiles this file again under
 * another module name, with ABLATE_CPU defined for the build that reads no thread
 * CPU clock, to measure what it costs. A real build defines none of them. */
#ifndef SPEEDUPS_MODULE
#define SPEEDUPS_MODULE "tlstiming._recording._speedups"
#define SPEEDUPS_INIT PyInit__speedups
#endif

/* Bumped whenever configure() or the behaviour the Python code expects changes
 * (tlstiming._recording.accelerator.SPEEDUPS_VERSION). */
#define SPEEDUPS_VERSION 5

/* Wire numbers and marker kinds, named as in tlstiming/_wire/names.py, which
 * declares them (tests/test_speedups.py checks every one against it). */
enum {
    ALERT = 21,                /* content types */
    HANDSHAKE = 22,
    CERTIFICATE_REQUEST = 13,  /* HandshakeType */
    ENTER = -1,                /* a do_handshake() call starts */
    EXIT = -2,                 /* it returns */
};

/* -- compatibility: Python 3.10 to 3.13 ------------------------------------ */

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
static PyObject *g_adopt;   /* implicit.adopt(conn) -> events list or None */
static PyObject *g_finish;  /* finish.finish(conn, events, end, exc) -> rejection or None */
static PyObject *g_refuse;  /* decide.refuse(conn) */
static PyObject *g_want;    /* (SSLWantReadError, SSLWantWriteError) */
static PyObject *g_perf;    /* time.perf_counter_ns, where there is no direct clock */
static PyObject *g_cpu;     /* time.thread_time_ns, idem */

/* Interned names (keys.EVENTS, keys.CONTEXT, keys.CERTIFICATE_REQUEST...) and constants. */
static PyObject *s_events, *s_context_key, *s_certreq, *s_ctx_attr, *s_context, *s_sslobj;
static PyObject *s_append, *s_empty_str, *s_empty_bytes;
static PyObject *c_minus_one;

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
#endif

static PyObject *
clock_object(int (*clock)(int64_t *))
{
    int64_t ns;
    return clock(&ns) < 0 ? NULL : PyLong_FromLongLong(ns);
}
static inline PyObject *perf_ns(void) { return clock_object(perf_raw); }
static inline PyObject *cpu_ns(void) { return clock_object(cpu_raw); }


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

/* events.append(item), honouring an overridden append (implicit.py's and finish.py's lists). */
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
    if (g_finish == NULL) {
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
    int handshake_or_alert = content_type == HANDSHAKE || content_type == ALERT;
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
    if (content_type == HANDSHAKE && msg_type == CERTIFICATE_REQUEST) {
        if (PyObject_SetAttr(conn, s_certreq, Py_True) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* detach.rearm: assign the connection (its __dict__ ``d``) its own context again, so
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

/* Mark the EXIT of the call that ended the handshake and hand the end to Python:
 * finish.finish(conn, events, end, exc or None); its result (new ref) or NULL. */
static PyObject *
finish(PyObject *conn, PyObject *events, PyObject *exc)
{
    int64_t t;
    if (mark(events, EXIT, &t) < 0) {
        return NULL;
    }
    PyObject *end = PyLong_FromLongLong(t);
    if (end == NULL) {
        return NULL;
    }
    PyObject *argv[4] = {conn, events, end, exc != NULL ? exc : Py_None};
    PyObject *result = PyObject_Vectorcall(g_finish, argv, 4, NULL);
    Py_DECREF(end);
    return result;
}

/* Raise ``rejected`` (stolen) after refusing the connection, as conn.drive does. */
static PyObject *
raise_rejected(PyObject *conn, PyObject *rejected)
{
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
    if (r != NULL) {
        Py_DECREF(r);
        PyObject *rejected = finish(conn, events, NULL);
        Py_DECREF(events);
        if (rejected == NULL || rejected == Py_None) {
            return rejected;
        }
        return raise_rejected(conn, rejected);
    }
    PyObject *exc = take_exception();
    PyObject *done;
    if (PyErr_GivenExceptionMatches(exc, g_want)) {  /* more data needed: not the end */
        int64_t t;
        done = mark(events, EXIT, &t) < 0 ? NULL : Py_NewRef(Py_None);
    }
    else {
        done = finish(conn, events, exc);
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
    static const int callables[] = {0, 1, 2, 4, 5};  /* adopt, finish, refuse, perf, cpu */
    for (size_t k = 0; k < sizeof(callables) / sizeof(callables[0]); k++) {
        if (!PyCallable_Check(v[callables[k]])) {
            PyErr_Format(PyExc_TypeError, "%s must be callable", names[callables[k]]);
            return -1;
        }
    }
    if (!is_exception_spec(v[3])) {
        PyErr_SetString(PyExc_TypeError, "want must be an exception class or a tuple of them");
        return -1;
    }
    return 0;
}

#define N_CONFIGURED 6

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[N_CONFIGURED + 1] = {
        "adopt", "finish", "refuse", "want", "perf", "cpu", NULL,
    };
    PyObject *v[N_CONFIGURED];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOO", names, &v[0], &v[1], &v[2], &v[3],
                                     &v[4], &v[5])) {
        return NULL;
    }
    if (check_configuration(names, v) < 0) {
        return NULL;
    }
    PyObject **slots[N_CONFIGURED] = {&g_adopt, &g_finish, &g_refuse, &g_want, &g_perf, &g_cpu};
    for (int i = 0; i < N_CONFIGURED; i++) {
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
     "Give the module the Python objects it calls (done by tlstiming._recording.accelerator)."},
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
        intern(&s_certreq, "_tlstiming_certificate_request") < 0 ||
        intern(&s_ctx_attr, "_context") < 0 || intern(&s_context, "context") < 0 ||
        intern(&s_sslobj, "_sslobj") < 0 || intern(&s_append, "append") < 0 ||
        intern(&s_empty_str, "") < 0 || intern(&s_read, "read") < 0 ||
        intern(&s_write, "write") < 0) {
        return NULL;
    }
    if ((s_empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL ||
        (c_minus_one = PyLong_FromLong(-1)) == NULL) {
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
