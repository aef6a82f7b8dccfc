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
#include <structmember.h>
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
#define SPEEDUPS_VERSION 7

/* Wire numbers and marker kinds, named as in tlstiming/_wire/names.py, which
 * declares them (tests/test_speedups.py checks every one against it). */
enum {
    ALERT = 21,                /* content types */
    HANDSHAKE = 22,
    CERTIFICATE_REQUEST = 13,  /* HandshakeType */
    ENTER = -1,                /* a do_handshake() call starts */
    EXIT = -2,                 /* it returns */
    SNI_START = -3,            /* the server's sni_callback starts */
    CHAIN_START = -7,          /* OpenSSL starts building and verifying the peer's chain */
    CHAIN_END = -8,            /* it is done; data: ok, error, depth, chain length, message */
    CHANGE_CIPHER_SPEC = 20,   /* content types the native callback derives a type for */
    RECORD_HEADER = 256,
    INNER_CONTENT_TYPE = 257,
};

/* What CPython's own message callback passes as msg_type where the wire has none
 * (Modules/_ssl/debughelpers.c): not wire numbers. */
enum {
    CPYTHON_CCS_MSG_TYPE = 0x0101,
    CPYTHON_NO_MSG_TYPE = -1,
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
    Py_ssize_t truncated;  /* events or bytes the native arena could not keep (its cap) */
} Events;

static PyTypeObject EventsType;
static PyObject *s_read, *s_write;

static void
events_dealloc(Events *self)
{
    PyMem_RawFree(self->items);
    PyMem_RawFree(self->data);
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
        Event *items = PyMem_RawRealloc(self->items, (size_t)capacity * sizeof(Event));
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
        char *data = PyMem_RawRealloc(self->data, room);
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

static PyMemberDef events_members[] = {
    {"truncated", T_PYSSIZET, offsetof(Events, truncated), READONLY,
     "How many events or message bytes the native arena dropped at its cap (0: none)."},
    {NULL, 0, 0, 0, NULL},
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
    .tp_members = events_members,
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

/* -- native hooks: OpenSSL's message callback in C, without the GIL -----------
 *
 * When enabled (tlstiming._recording.native), a connection's handshake is
 * recorded by a C message callback set on its own SSL (SSL_set_msg_callback)
 * when its first do_handshake() call starts. The callback runs inside OpenSSL,
 * without the GIL: it touches no Python object and appends fixed-size events
 * and the message bytes to an arena kept in the SSL's ex_data (freed with the
 * SSL). When the handshake ends, harvest() merges the arena with the
 * do_handshake marks into one Events object, exactly what the callback path
 * would have recorded, and hands the connection back to CPython's own
 * per-connection callback (by re-assigning its context), so that everything
 * after the handshake (the detach, a TLS 1.3 verdict, a user's _msg_callback)
 * works as on the callback path.
 *
 * OpenSSL is reached through the very libssl that _ssl is linked against
 * (dlopen of _ssl's own file with RTLD_NOLOAD, then dlsym): no OpenSSL header
 * or link flag at build time. CPython's objects are read through their
 * stable heads (PyObject_HEAD then SSL_CTX *ctx; PyObject_HEAD, PyObject
 * *Socket, SSL *ssl), validated on a live pair at init and again on every
 * connection: any doubt leaves the connection on the callback path. */

#if defined(__linux__)
#define NATIVE_POSSIBLE 1
#include <dlfcn.h>

typedef void (*native_msg_cb)(int, int, int, const void *, size_t, void *, void *);
typedef void (*native_free_cb)(void *, void *, void *, int, long, void *);

typedef int (*native_verify_cb)(void *store_ctx, void *arg);

/* Every OpenSSL function used, in the order of native_symbols (all pointers). */
static struct {
    void (*set_msg_callback)(void *ssl, native_msg_cb cb);
    void *(*get_ssl_ctx)(const void *ssl);
    uint64_t (*ctx_get_options)(const void *ctx);
    void *(*get_ex_data)(const void *ssl, int idx);
    int (*set_ex_data)(void *ssl, int idx, void *data);
    int (*get_ex_new_index)(int class_index, long argl, void *argp, void *new_func,
                            void *dup_func, native_free_cb free_func);
    unsigned long (*version_num)(void);
    long (*ctx_ctrl)(void *ctx, int cmd, long larg, void *parg);
    long (*ctx_callback_ctrl)(void *ctx, int cmd, void (*fp)(void));
    long (*ssl_ctrl)(void *ssl, int cmd, long larg, void *parg);
    const char *(*get_servername)(const void *ssl, int type);
    int (*is_server)(const void *ssl);
    void *(*crypto_malloc)(size_t num, const char *file, int line);
    void (*crypto_free)(void *ptr, const char *file, int line);
    void (*ctx_set_cert_verify_cb)(void *ctx, native_verify_cb cb, void *arg);
    int (*verify_cert)(void *store_ctx);
    void *(*store_get_ex_data)(const void *store_ctx, int idx);
    int (*ssl_store_idx)(void);
    int (*store_get_error)(const void *store_ctx);
    int (*store_get_error_depth)(const void *store_ctx);
    void *(*store_get0_chain)(const void *store_ctx);
    int (*sk_num)(const void *stack);
    const char *(*verify_error_string)(long error);
} ossl;

static const char *const native_symbols[] = {
    "SSL_set_msg_callback", "SSL_get_SSL_CTX", "SSL_CTX_get_options", "SSL_get_ex_data",
    "SSL_set_ex_data", "CRYPTO_get_ex_new_index", "OpenSSL_version_num", "SSL_CTX_ctrl",
    "SSL_CTX_callback_ctrl", "SSL_ctrl", "SSL_get_servername", "SSL_is_server", "CRYPTO_malloc",
    "CRYPTO_free", "SSL_CTX_set_cert_verify_callback", "X509_verify_cert",
    "X509_STORE_CTX_get_ex_data", "SSL_get_ex_data_X509_STORE_CTX_idx",
    "X509_STORE_CTX_get_error", "X509_STORE_CTX_get_error_depth", "X509_STORE_CTX_get0_chain",
    "OPENSSL_sk_num", "X509_verify_cert_error_string",
};
#define N_NATIVE_SYMBOLS (sizeof(native_symbols) / sizeof(native_symbols[0]))
#define SYMBOL_VERSION_NUM 6  /* its index: called before anything else is trusted */
_Static_assert(sizeof(ossl) == N_NATIVE_SYMBOLS * sizeof(void *), "one pointer per symbol");
#define CRYPTO_EX_INDEX_SSL 0  /* openssl/crypto.h */
/* openssl/ssl.h and tls1.h: the control codes behind OpenSSL's status macros */
#define CTRL_SET_STATUS_CB 63
#define CTRL_SET_STATUS_CB_ARG 64
#define CTRL_SET_STATUS_TYPE 65
#define CTRL_SET_STATUS_OCSP_RESP 71
#define CTRL_GET_STATUS_TYPE 127
#define STATUSTYPE_OCSP 1
#define STATUSTYPE_NOTHING (-1)
#define TLSEXT_ERR_OK 0
#define TLSEXT_ERR_NOACK 3
#define NAMETYPE_HOST_NAME 0
#define MAX_STAPLE_BYTES (1 << 20)

typedef struct { PyObject_HEAD void *ctx; } ContextHead;              /* _ssl._SSLContext */
typedef struct { PyObject_HEAD PyObject *Socket; void *ssl; } SocketHead;  /* _ssl._SSLSocket */

static int g_native;                 /* connections are armed */
static int g_ex_index = -1;
static PyTypeObject *g_sock_type;    /* _ssl._SSLSocket, checked at init */
static PyTypeObject *g_ctx_type;     /* _ssl._SSLContext */
static int g_store_ssl_index = -1;  /* SSL_get_ex_data_X509_STORE_CTX_idx() */
static size_t g_max_events = 256, g_max_bytes = 65536;  /* per handshake */
static Py_ssize_t g_conn_fallbacks;  /* connections left on the callback path */
static PyObject *s_user_cb, *s_options, *s_msg_callback, *s_staple_for;

typedef struct {
    Event *items;
    size_t size, capacity, max_events, max_bytes;
    char *data;
    size_t used, room;
    size_t truncated;
    int certificate_request;  /* one was seen: conn.py's CERTIFICATE_REQUEST key */
} Arena;

static void
arena_free(Arena *a)
{
    if (a != NULL) {
        PyMem_RawFree(a->items);
        PyMem_RawFree(a->data);
        PyMem_RawFree(a);
    }
}

/* ex_data free callback: the SSL is being freed. */
static void
arena_free_cb(void *parent, void *ptr, void *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    arena_free((Arena *)ptr);
}

/* Append one event; at the cap, count it as truncated instead. No GIL, no Python. */
static void
arena_add(Arena *a, int64_t t, int64_t cpu, uint8_t direction, int32_t kind, int32_t msg_type,
          const char *buf, size_t len)
{
    if (a->size == a->capacity) {
        size_t capacity = a->capacity ? a->capacity * 2 : 32;
        if (capacity > a->max_events) {
            capacity = a->max_events;
        }
        Event *items = capacity > a->capacity
                           ? PyMem_RawRealloc(a->items, capacity * sizeof(Event)) : NULL;
        if (items == NULL) {
            a->truncated++;
            return;
        }
        a->items = items;
        a->capacity = capacity;
    }
    if (len > a->max_bytes - a->used) {  /* the event is kept, its bytes are not */
        a->truncated++;
        len = 0;
    }
    else if (a->used + len > a->room) {
        size_t room = a->room ? a->room : 4096;
        while (room < a->used + len) {
            room *= 2;
        }
        char *data = PyMem_RawRealloc(a->data, room);
        if (data == NULL) {
            a->truncated++;
            len = 0;
        }
        else {
            a->data = data;
            a->room = room;
        }
    }
    Event *e = &a->items[a->size++];
    e->t = t;
    e->cpu = cpu;
    e->direction = direction;
    e->kind = kind;
    e->msg_type = msg_type;
    e->offset = (uint32_t)a->used;
    e->length = (uint32_t)len;
    if (len) {
        memcpy(a->data + a->used, buf, len);
        a->used += len;
    }
}

static int64_t
clock_now(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        return -1;
    }
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* OpenSSL's message callback: runs inside OpenSSL, without the GIL. The message
 * type is derived exactly as CPython's own callback does (Modules/_ssl/debughelpers.c). */
static void
native_on_message(int write_p, int version, int content_type, const void *buf, size_t len,
                  void *ssl, void *arg)
{
    (void)version; (void)arg;
    Arena *a = ossl.get_ex_data(ssl, g_ex_index);
    if (a == NULL) {
        return;
    }
    const signed char *c = (const signed char *)buf;
    int type;
    switch (content_type) {
    case CHANGE_CIPHER_SPEC: type = CPYTHON_CCS_MSG_TYPE; break;
    case ALERT: type = len > 1 ? c[1] : CPYTHON_NO_MSG_TYPE; break;  /* level, description */
    case HANDSHAKE:                                                  /* fall through */
    case RECORD_HEADER:                                              /* fall through */
    case INNER_CONTENT_TYPE: type = len > 0 ? c[0] : CPYTHON_NO_MSG_TYPE; break;
    default: type = CPYTHON_NO_MSG_TYPE; break;
    }
    int64_t t = clock_now(CLOCK_MONOTONIC);
    int64_t cpu = content_type == HANDSHAKE || content_type == ALERT
                      ? clock_now(CLOCK_THREAD_CPUTIME_ID) : -1;
    arena_add(a, t, cpu, write_p ? 2 : 1, content_type, type, buf, len);
    if (content_type == HANDSHAKE && type == CERTIFICATE_REQUEST) {
        a->certificate_request = 1;
    }
}

/* Store one little-endian int32 at ``out``. */
static void
put_i32(unsigned char *out, int32_t v)
{
    uint32_t u = (uint32_t)v;
    for (int k = 0; k < 4; k++) {
        out[k] = (unsigned char)(u >> (8 * k));
    }
}

/* OpenSSL's chain verification (SSL_CTX_set_cert_verify_callback), wrapped: the very
 * X509_verify_cert OpenSSL would call, its answer returned unchanged, timed into the
 * connection's arena when it has one. Runs inside OpenSSL, without the GIL. */
static int
native_verify_chain(void *store_ctx, void *arg)
{
    (void)arg;
    void *ssl = ossl.store_get_ex_data(store_ctx, g_store_ssl_index);
    Arena *a = ssl == NULL ? NULL : ossl.get_ex_data(ssl, g_ex_index);
    if (a != NULL) {
        arena_add(a, clock_now(CLOCK_MONOTONIC), clock_now(CLOCK_THREAD_CPUTIME_ID), 0,
                  CHAIN_START, CPYTHON_NO_MSG_TYPE, NULL, 0);
    }
    int ok = ossl.verify_cert(store_ctx);
    if (a != NULL) {
        int64_t t = clock_now(CLOCK_MONOTONIC), cpu = clock_now(CLOCK_THREAD_CPUTIME_ID);
        int error = ossl.store_get_error(store_ctx);
        void *chain = ossl.store_get0_chain(store_ctx);
        unsigned char out[16 + 120];
        put_i32(out, ok);
        put_i32(out + 4, error);
        put_i32(out + 8, ossl.store_get_error_depth(store_ctx));
        put_i32(out + 12, chain == NULL ? 0 : ossl.sk_num(chain));
        size_t len = 16;
        const char *message = error ? ossl.verify_error_string(error) : NULL;
        if (message != NULL) {
            size_t n = strlen(message);
            n = n > sizeof(out) - 16 ? sizeof(out) - 16 : n;
            memcpy(out + 16, message, n);
            len += n;
        }
        arena_add(a, t, cpu, 0, CHAIN_END, CPYTHON_NO_MSG_TYPE, (const char *)out, len);
    }
    return ok;
}

/* OpenSSL's status callback. A server: staple what the context's _tlstiming_staple_for
 * (server_name) returns (bytes, or None for no staple); ``arg`` is that context, which
 * outlives every connection whose current SSL_CTX is its own (each holds a reference).
 * A client: accept (a staple is checked by the verifiers, as without this callback).
 * Nothing here can reject a handshake: at worst there is no staple. */
static int
native_on_status(void *ssl, void *arg)
{
    if (arg == NULL || !ossl.is_server(ssl)) {
        return 1;
    }
    int rc = TLSEXT_ERR_NOACK;
    PyGILState_STATE gil = PyGILState_Ensure();
    const char *name = ossl.get_servername(ssl, NAMETYPE_HOST_NAME);
    PyObject *py_name = name == NULL ? Py_NewRef(Py_None)
                                     : PyUnicode_DecodeASCII(name, (Py_ssize_t)strlen(name),
                                                             "surrogateescape");
    PyObject *staple = py_name == NULL ? NULL
                                       : PyObject_CallMethodOneArg((PyObject *)arg, s_staple_for,
                                                                   py_name);
    Py_XDECREF(py_name);
    if (staple == NULL) {
        PyErr_WriteUnraisable((PyObject *)arg);
    }
    else if (PyBytes_Check(staple) && PyBytes_GET_SIZE(staple) > 0
             && PyBytes_GET_SIZE(staple) <= MAX_STAPLE_BYTES) {
        size_t n = (size_t)PyBytes_GET_SIZE(staple);
        unsigned char *copy = ossl.crypto_malloc(n, __FILE__, __LINE__);  /* OpenSSL frees it */
        if (copy != NULL) {
            memcpy(copy, PyBytes_AS_STRING(staple), n);
            if (ossl.ssl_ctrl(ssl, CTRL_SET_STATUS_OCSP_RESP, (long)n, copy) > 0) {
                rc = TLSEXT_ERR_OK;
            }
            else {
                ossl.crypto_free(copy, __FILE__, __LINE__);
            }
        }
    }
    Py_XDECREF(staple);
    PyGILState_Release(gil);
    return rc;
}

/* The SSL_CTX of a context object, once native_init passed; NULL with TypeError/RuntimeError. */
static void *
native_ctx(PyObject *context)
{
    if (g_ex_index < 0 || g_ctx_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "native hooks are not initialised (native_init)");
        return NULL;
    }
    if (!PyObject_TypeCheck(context, g_ctx_type) || ((ContextHead *)context)->ctx == NULL) {
        PyErr_SetString(PyExc_TypeError, "expected an ssl.SSLContext");
        return NULL;
    }
    return ((ContextHead *)context)->ctx;
}

/* native_prepare(context): time this context's chain verification (connections with
 * an arena; a pass-through for the others). */
static PyObject *
native_prepare(PyObject *module, PyObject *context)
{
    (void)module;
    void *ctx = native_ctx(context);
    if (ctx == NULL) {
        return NULL;
    }
    ossl.ctx_set_cert_verify_cb(ctx, native_verify_chain, NULL);
    Py_RETURN_NONE;
}

/* native_status_request(context, on=None) -> bool: whether a client asks for a staple
 * (status_request); sets it first unless ``on`` is None. */
static PyObject *
native_status_request(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *context, *on = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &context, &on)) {
        return NULL;
    }
    void *ctx = native_ctx(context);
    if (ctx == NULL) {
        return NULL;
    }
    if (on != Py_None) {
        int truthy = PyObject_IsTrue(on);
        if (truthy < 0) {
            return NULL;
        }
        ossl.ctx_ctrl(ctx, CTRL_SET_STATUS_TYPE, truthy ? STATUSTYPE_OCSP : STATUSTYPE_NOTHING,
                      NULL);
    }
    return PyBool_FromLong(ossl.ctx_ctrl(ctx, CTRL_GET_STATUS_TYPE, 0, NULL) == STATUSTYPE_OCSP);
}

/* native_staple(context, on): a server context staples through its _tlstiming_staple_for. */
static PyObject *
native_staple(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *context;
    int on;
    if (!PyArg_ParseTuple(args, "Op", &context, &on)) {
        return NULL;
    }
    void *ctx = native_ctx(context);
    if (ctx == NULL) {
        return NULL;
    }
    if (on) {
        ossl.ctx_ctrl(ctx, CTRL_SET_STATUS_CB_ARG, 0, context);  /* the context itself: see above */
        ossl.ctx_callback_ctrl(ctx, CTRL_SET_STATUS_CB, (void (*)(void))native_on_status);
    }
    else {
        ossl.ctx_callback_ctrl(ctx, CTRL_SET_STATUS_CB, NULL);
        ossl.ctx_ctrl(ctx, CTRL_SET_STATUS_CB_ARG, 0, NULL);
    }
    Py_RETURN_NONE;
}

/* The SSL* of a connection's _sslobj (borrowed ``d``: the connection's __dict__) and its
 * context object (new ref in *context), validated; NULL (no exception) when in doubt. */
static void *
native_ssl(PyObject *d, PyObject **context)
{
    *context = NULL;
    PyObject *sslobj = PyDict_GetItemWithError(d, s_sslobj);
    if (sslobj == NULL || !Py_IS_TYPE(sslobj, g_sock_type)) {
        PyErr_Clear();
        return NULL;
    }
    void *ssl = ((SocketHead *)sslobj)->ssl;
    PyObject *ctx = PyObject_GetAttr(sslobj, s_context);
    if (ctx == NULL || !PyObject_TypeCheck(ctx, g_ctx_type) || ssl == NULL
        || ((ContextHead *)ctx)->ctx == NULL || ossl.get_ssl_ctx(ssl) != ((ContextHead *)ctx)->ctx) {
        PyErr_Clear();
        Py_XDECREF(ctx);
        return NULL;
    }
    *context = ctx;
    return ssl;
}

/* First ENTER of a handshake: record it natively, if this connection allows it. */
static void
native_arm(PyObject *d, PyObject *context)
{
    PyObject *user = PyObject_GetAttr(context, s_user_cb);  /* a user's _msg_callback */
    if (user == NULL || user != Py_None) {  /* theirs wants the trampoline; or not ours */
        PyErr_Clear();
        Py_XDECREF(user);
        return;
    }
    Py_DECREF(user);
    PyObject *ctx;
    void *ssl = native_ssl(d, &ctx);
    if (ssl == NULL) {
        g_conn_fallbacks++;
        return;
    }
    PyObject *options = PyObject_GetAttr(ctx, s_options);
    unsigned long long expected = options == NULL ? 0 : PyLong_AsUnsignedLongLong(options);
    Py_XDECREF(options);
    int ok = !PyErr_Occurred()
             && ossl.ctx_get_options(((ContextHead *)ctx)->ctx) == (uint64_t)expected;
    PyErr_Clear();
    Py_DECREF(ctx);
    Arena *a = ok && ossl.get_ex_data(ssl, g_ex_index) == NULL ? PyMem_RawCalloc(1, sizeof(Arena))
                                                                 : NULL;
    if (a == NULL) {
        g_conn_fallbacks++;
        return;
    }
    a->max_events = g_max_events;
    a->max_bytes = g_max_bytes;
    if (!ossl.set_ex_data(ssl, g_ex_index, a)) {
        arena_free(a);
        g_conn_fallbacks++;
        return;
    }
    ossl.set_msg_callback(ssl, native_on_message);
}

/* Interleave the do_handshake marks (``m``) and the arena by time into a new Events. */
static PyObject *
native_merge(Events *m, Arena *a)
{
    Events *out = (Events *)PyObject_CallNoArgs((PyObject *)&EventsType);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t i = 0;
    size_t j = 0;
    while (i < m->size || j < a->size) {
        int take_mark;
        if (j == a->size) {
            take_mark = 1;
        }
        else if (i == m->size) {
            take_mark = 0;
        }
        else {
            const Event *x = &m->items[i], *y = &a->items[j];
            take_mark = x->t < y->t || (x->t == y->t && (x->kind == ENTER || x->kind == SNI_START));
        }
        const Event *e = take_mark ? &m->items[i++] : &a->items[j++];
        const char *base = take_mark ? m->data : a->data;
        if (events_add(out, e->t, e->cpu, e->direction, e->kind, e->msg_type,
                       e->length ? base + e->offset : NULL, e->length) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    out->truncated = m->truncated + (Py_ssize_t)a->truncated;
    return (PyObject *)out;
}

/* The handshake's events with the arena merged in (new ref), or NULL on error. The
 * arena is released and the connection handed back to CPython's own callback. */
static PyObject *
native_harvest(PyObject *conn, PyObject *events)
{
    if (!g_native || !Py_IS_TYPE(events, &EventsType)) {
        return Py_NewRef(events);
    }
    PyObject *d = PyObject_GenericGetDict(conn, NULL);
    if (d == NULL) {
        PyErr_Clear();
        return Py_NewRef(events);
    }
    PyObject *ctx;
    void *ssl = native_ssl(d, &ctx);
    Arena *a = ssl == NULL ? NULL : ossl.get_ex_data(ssl, g_ex_index);
    if (a == NULL) {
        Py_XDECREF(ctx);
        Py_DECREF(d);
        return Py_NewRef(events);
    }
    ossl.set_msg_callback(ssl, NULL);
    ossl.set_ex_data(ssl, g_ex_index, NULL);
    PyObject *merged = native_merge((Events *)events, a);
    if (merged != NULL && a->certificate_request
        && PyObject_SetAttr(conn, s_certreq, Py_True) < 0) {
        Py_CLEAR(merged);
    }
    arena_free(a);
    /* CPython's per-connection callback again, as on the callback path (detach.rearm) */
    PyObject *sslobj = PyDict_GetItemWithError(d, s_sslobj);
    if (sslobj == NULL || PyObject_SetAttr(sslobj, s_context, ctx) < 0) {
        PyErr_Clear();
    }
    Py_DECREF(ctx);
    Py_DECREF(d);
    return merged;
}

/* After a server's sni_callback: a context switch resets the connection's callback. */
static PyObject *
py_native_rearm(PyObject *module, PyObject *conn)
{
    (void)module;
    if (!g_native) {
        Py_RETURN_NONE;
    }
    PyObject *d = PyObject_GenericGetDict(conn, NULL);
    if (d == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *ctx;
    void *ssl = native_ssl(d, &ctx);
    if (ssl != NULL && ossl.get_ex_data(ssl, g_ex_index) != NULL) {
        /* a context with a user's _msg_callback keeps CPython's trampoline: theirs sees it all */
        PyObject *user = PyObject_GetAttr(ctx, s_msg_callback);
        if (user == Py_None) {
            ossl.set_msg_callback(ssl, native_on_message);
        }
        PyErr_Clear();
        Py_XDECREF(user);
    }
    Py_XDECREF(ctx);
    Py_DECREF(d);
    Py_RETURN_NONE;
}

/* native_init(ssl_path, version, context, options, sslobj, extra_symbol=None):
 * resolve and validate; None when native hooks can be used, else the reason (str).
 * Nothing is changed unless every check passes. */
static PyObject *
native_init(PyObject *module, PyObject *args)
{
    (void)module;
    const char *path, *extra = NULL;
    unsigned long long version, options;
    PyObject *context, *sslobj;
    if (!PyArg_ParseTuple(args, "sKOKO|z", &path, &version, &context, &options, &sslobj, &extra)) {
        return NULL;
    }
    void *handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) {
        return PyUnicode_FromFormat("_ssl is not a loaded shared object (%s)", path);
    }
    void *found[N_NATIVE_SYMBOLS];
    for (size_t k = 0; k < N_NATIVE_SYMBOLS; k++) {
        if ((found[k] = dlsym(handle, native_symbols[k])) == NULL) {
            dlclose(handle);
            return PyUnicode_FromFormat("OpenSSL symbol %s not found", native_symbols[k]);
        }
    }
    if (extra != NULL && dlsym(handle, extra) == NULL) {
        dlclose(handle);
        return PyUnicode_FromFormat("OpenSSL symbol %s not found", extra);
    }
    dlclose(handle);  /* RTLD_NOLOAD took a reference; _ssl keeps the library loaded */
    unsigned long running = ((unsigned long (*)(void))found[SYMBOL_VERSION_NUM])();
    if (running >> 28 != 3 || version >> 28 != 3) {
        return PyUnicode_FromFormat("OpenSSL %lx is not 3.x (built against %llx)", running, version);
    }
    PyTypeObject *ctx_type = Py_TYPE(context);
    while (ctx_type != NULL && strcmp(ctx_type->tp_name, "_ssl._SSLContext") != 0) {
        ctx_type = ctx_type->tp_base;
    }
    if (ctx_type == NULL || strcmp(Py_TYPE(sslobj)->tp_name, "_ssl._SSLSocket") != 0) {
        return PyUnicode_FromString("unexpected _ssl object types");
    }
    void *ctx = ((ContextHead *)context)->ctx, *ssl = ((SocketHead *)sslobj)->ssl;
    if (ctx == NULL || ((uint64_t (*)(const void *))found[2])(ctx) != (uint64_t)options) {
        return PyUnicode_FromString("layout check failed: SSL_CTX_get_options differs");
    }
    if (ssl == NULL || ((void *(*)(const void *))found[1])(ssl) != ctx) {
        return PyUnicode_FromString("layout check failed: SSL_get_SSL_CTX differs");
    }
    memcpy(&ossl, found, sizeof(ossl));  /* one pointer per symbol, in order */
    if (g_store_ssl_index < 0 && (g_store_ssl_index = ossl.ssl_store_idx()) < 0) {
        return PyUnicode_FromString("X509_STORE_CTX index of the SSL unavailable");
    }
    if (g_ex_index < 0) {
        g_ex_index = ossl.get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, NULL, NULL, NULL, arena_free_cb);
        if (g_ex_index < 0) {
            return PyUnicode_FromString("SSL ex_data index unavailable");
        }
    }
    Py_XSETREF(g_sock_type, (PyTypeObject *)Py_NewRef(Py_TYPE(sslobj)));
    Py_XSETREF(g_ctx_type, (PyTypeObject *)Py_NewRef(ctx_type));
    Py_RETURN_NONE;
}

/* native_enable(on): arm new handshakes (only after a successful native_init). */
static PyObject *
native_enable(PyObject *module, PyObject *on)
{
    (void)module;
    int truthy = PyObject_IsTrue(on);
    if (truthy < 0) {
        return NULL;
    }
    if (truthy && g_ex_index < 0) {
        PyErr_SetString(PyExc_RuntimeError, "native hooks are not initialised (native_init)");
        return NULL;
    }
    g_native = truthy;
    Py_RETURN_NONE;
}

/* native_limits(max_events, max_bytes) -> the previous pair: the arena's cap (tests). */
static PyObject *
native_limits(PyObject *module, PyObject *args)
{
    (void)module;
    Py_ssize_t events, bytes;
    if (!PyArg_ParseTuple(args, "nn", &events, &bytes)) {
        return NULL;
    }
    if (events < 1 || bytes < 0 || bytes > (Py_ssize_t)UINT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "max_events must be >= 1, max_bytes in [0, 2**31)");
        return NULL;
    }
    PyObject *previous = Py_BuildValue("(nn)", (Py_ssize_t)g_max_events, (Py_ssize_t)g_max_bytes);
    g_max_events = (size_t)events;
    g_max_bytes = (size_t)bytes;
    return previous;
}

static PyObject *
native_fallbacks(PyObject *module, PyObject *unused)
{
    (void)module; (void)unused;
    return PyLong_FromSsize_t(g_conn_fallbacks);
}

#else  /* not Linux: the callback path only */
#define NATIVE_POSSIBLE 0
static int g_native;
static void native_arm(PyObject *d, PyObject *context) { (void)d; (void)context; }
static PyObject *native_harvest(PyObject *conn, PyObject *events) { (void)conn; return Py_NewRef(events); }
static PyObject *py_native_rearm(PyObject *m, PyObject *c) { (void)m; (void)c; Py_RETURN_NONE; }
static PyObject *
native_init(PyObject *module, PyObject *args)
{
    (void)module; (void)args;
    return PyUnicode_FromString("native hooks are implemented for Linux only");
}
static PyObject *
native_enable(PyObject *module, PyObject *on)
{
    (void)module; (void)on;
    PyErr_SetString(PyExc_RuntimeError, "native hooks are implemented for Linux only");
    return NULL;
}
static PyObject *native_limits(PyObject *m, PyObject *a) { (void)m; (void)a; return Py_BuildValue("(nn)", (Py_ssize_t)0, (Py_ssize_t)0); }
static PyObject *native_fallbacks(PyObject *m, PyObject *u) { (void)m; (void)u; return PyLong_FromLong(0); }
static PyObject *
native_unavailable(void)
{
    PyErr_SetString(PyExc_RuntimeError, "native hooks are implemented for Linux only");
    return NULL;
}
static PyObject *native_prepare(PyObject *m, PyObject *c) { (void)m; (void)c; return native_unavailable(); }
static PyObject *native_status_request(PyObject *m, PyObject *a) { (void)m; (void)a; return native_unavailable(); }
static PyObject *native_staple(PyObject *m, PyObject *a) { (void)m; (void)a; return native_unavailable(); }
#endif

/* harvest(conn, events): the events with the native arena merged in. */
static PyObject *
py_native_harvest(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "native_harvest() takes 2 arguments");
        return NULL;
    }
    return native_harvest(args[0], args[1]);
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
        if (g_native) {
            PyObject *owner = PyDict_GetItemWithError(d, s_context_key);  /* borrowed */
            if (owner != NULL) {
                Py_INCREF(owner);
                native_arm(d, owner);
                Py_DECREF(owner);
            }
            PyErr_Clear();
        }
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
    PyObject *all = native_harvest(conn, events);
    if (all == NULL) {
        Py_DECREF(end);
        return NULL;
    }
    PyObject *argv[4] = {conn, all, end, exc != NULL ? exc : Py_None};
    PyObject *result = PyObject_Vectorcall(g_finish, argv, 4, NULL);
    Py_DECREF(all);
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
    {"native_init", (PyCFunction)native_init, METH_VARARGS,
     "Resolve OpenSSL from _ssl's own library and validate the layout; None or the reason not."},
    {"native_enable", (PyCFunction)native_enable, METH_O, "Record new handshakes natively (or not)."},
    {"native_harvest", (PyCFunction)(void (*)(void))py_native_harvest, METH_FASTCALL,
     "A handshake's events with its native arena merged in."},
    {"native_rearm", (PyCFunction)py_native_rearm, METH_O,
     "Put a natively recorded connection back on the C callback (after an sni_callback)."},
    {"native_limits", (PyCFunction)native_limits, METH_VARARGS,
     "Set the arena's cap (max_events, max_bytes); return the previous one."},
    {"native_prepare", (PyCFunction)native_prepare, METH_O,
     "Time a context's chain verification (OpenSSL's cert verify callback, wrapped)."},
    {"native_status_request", (PyCFunction)native_status_request, METH_VARARGS,
     "Whether a context's clients ask for an OCSP staple; set it first unless on is None."},
    {"native_staple", (PyCFunction)native_staple, METH_VARARGS,
     "Staple OCSP responses from a server context's _tlstiming_staple_for (or stop)."},
    {"native_fallbacks", (PyCFunction)native_fallbacks, METH_NOARGS,
     "How many connections a per-connection check left on the callback path."},
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
        intern(&s_write, "write") < 0
#if NATIVE_POSSIBLE
        || intern(&s_user_cb, "_tlstiming_user_msg_callback") < 0
        || intern(&s_options, "options") < 0
        || intern(&s_msg_callback, "_msg_callback") < 0
        || intern(&s_staple_for, "_tlstiming_staple_for") < 0
#endif
        ) {
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
        || PyModule_AddIntConstant(module, "NATIVE_POSSIBLE", NATIVE_POSSIBLE) < 0
        || PyModule_AddObjectRef(module, "Events", (PyObject *)&EventsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
