/*
 * tlstiming._speedups: the handshake's hot path in C (optional).
 *
 * The same three steps as the pure-Python code in tlstiming/_conn.py, which
 * stays the reference and the fallback: OpenSSL's message callback
 * (on_message), the do_handshake wrapper (drive) and, for the common case of
 * a handshake that completed with no verifier and no pending TLS 1.3 client
 * certificate verdict, the span's assembly, delivery and the detach from the
 * data path. Every other case calls back into tlstiming._conn.
 *
 * Why C: these run right after OpenSSL's handshake work has evicted the
 * interpreter from the CPU caches, where each Python function touched costs
 * microseconds. Behaviour must match the Python code exactly; the test suite
 * runs both (TLSTIMING_PURE_PYTHON=1 selects the Python path).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <time.h>

/* Bumped whenever configure() or the behaviour _conn expects changes. */
#define SPEEDUPS_VERSION 1

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
static PyObject *g_build;        /* the tlstiming._build module (its ids are re-drawn at fork) */
static PyObject *g_delivery;     /* the tlstiming._delivery module (global_sinks is rebound) */
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
static PyObject *c_empty_tuple, *c_minus_one, *c_zero, *c_enter, *c_exit;

#if defined(__linux__)
/* CPython's perf_counter_ns and thread_time_ns are these clocks on Linux. */
#define DIRECT_CLOCKS 1
static PyObject *
clock_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}
static inline PyObject *perf_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static inline PyObject *cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
static inline PyObject *unix_ns(void) { return clock_ns(CLOCK_REALTIME); }
#else
#define DIRECT_CLOCKS 0
static inline PyObject *perf_ns(void) { return PyObject_CallNoArgs(g_perf); }
static inline PyObject *cpu_ns(void) { return PyObject_CallNoArgs(g_cpu); }
static inline PyObject *unix_ns(void) { return PyObject_CallNoArgs(g_unix); }
#endif

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

/* Append a marker (ENTER, EXIT) stamped now; return the timestamp (new ref). */
static PyObject *
mark(PyObject *events, PyObject *kind)
{
    PyObject *now = perf_ns();
    if (now == NULL) {
        return NULL;
    }
    PyObject *t = event(now, 1, s_empty_str, kind, c_zero, s_empty_bytes);
    if (t == NULL || append(events, t) < 0) {
        Py_XDECREF(t);
        Py_DECREF(now);
        return NULL;
    }
    Py_DECREF(t);
    return now;
}

static int
configured(void)
{
    if (g_span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tlstiming._speedups is not configured");
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
    long content_type = PyLong_AsLong(args[3]);
    long msg_type = PyLong_AsLong(args[4]);
    if ((content_type == -1 || msg_type == -1) && PyErr_Occurred()) {
        Py_DECREF(events);
        return NULL;
    }
    int handshake_or_alert = content_type == 22 || content_type == 21;
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

/* The detach of _conn._detach, with no Python frame anywhere in between. */
static int
detach(PyObject *conn)
{
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

/* Call every sink in the sequence ``sinks`` with span; a sink's Exception is reported. */
static int
call_sinks(PyObject *sinks, PyObject *span)
{
    PyObject *seq = PySequence_Fast(sinks, "sinks must be a sequence");
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *sink = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *r = PyObject_CallOneArg(sink, span);
        if (r != NULL) {
            Py_DECREF(r);
            continue;
        }
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_DECREF(seq);
            return -1;
        }
        PyObject *exc = take_exception();
        PyObject *args[3] = {sink, span, exc};
        r = PyObject_Vectorcall(g_sink_failed, args, 3, NULL);
        Py_DECREF(exc);
        if (r == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(seq);
    return 0;
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
    if (PyTuple_GET_SIZE(events) == 0 || !PyTuple_Check(PyTuple_GET_ITEM(events, 0))
        || PyTuple_GET_SIZE(PyTuple_GET_ITEM(events, 0)) == 0) {
        PyErr_SetString(PyExc_ValueError, "a handshake with no events");
        return NULL;
    }
    PyObject *values[N_SLOTS] = {
        [SLOT_ID] = span_id, [SLOT_SIDE] = server ? s_server : s_client,
        [SLOT_HOSTNAME] = hostname, [SLOT_PEER] = peer,
        [SLOT_START] = PyTuple_GET_ITEM(PyTuple_GET_ITEM(events, 0), 0), [SLOT_END] = end,
        [SLOT_UNIX] = wall, [SLOT_ERROR] = Py_None, [SLOT_CONTEXT] = snapshot,
        [SLOT_VERIFICATIONS] = c_empty_tuple, [SLOT_EVENTS] = events,
        [SLOT_TILING] = Py_None, [SLOT_PHASES] = Py_None, [SLOT_RECORDS] = Py_None,
        [SLOT_MESSAGES] = Py_None, [SLOT_FACTS] = Py_None,
    };
    PyTypeObject *type = (PyTypeObject *)g_span_type;
    PyObject *span = type->tp_new(type, c_empty_tuple, NULL);
    if (span == NULL) {
        return NULL;
    }
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *descr = PyTuple_GET_ITEM(g_slots, i);
        if (Py_TYPE(descr)->tp_descr_set(descr, span, values[i]) < 0) {
            Py_DECREF(span);
            return NULL;
        }
    }
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
    if ((span_id = PyIter_Next(ids)) == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "span ids exhausted");
        goto done;
    }
    if ((hostname = PyObject_GetAttr(conn, s_server_hostname)) == NULL) goto done;
    if ((peer = peer_of(conn)) == NULL) goto done;
    /* a tuple of tuples of atoms leaves the garbage collector's watch */
    if ((frozen = PySequence_Tuple(events)) == NULL) goto done;
    if ((wall = unix_ns()) == NULL) goto done;
    span = new_span(span_id, server_side, hostname, peer, frozen, end, wall,
                    snapshot != NULL ? snapshot : Py_None);
    if (span == NULL) goto done;
    if (PyDict_SetItem(d, s_span, span) < 0) goto done;
    if (optional_attr(context, s_sinks, &sinks) < 0) goto done;
    if (sinks != NULL && call_sinks(sinks, span) < 0) goto done;
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
    PyObject *end = mark(events, c_exit);
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
        if (PyErr_Occurred()) goto fail;
        PyObject *context = PyDict_GetItemWithError(d, s_ctx_attr);  /* SSLSocket's _context */
        if (context == NULL && PyErr_Occurred()) goto fail;
        int truthy = context == NULL ? 0 : PyObject_IsTrue(context);
        if (truthy < 0) goto fail;
        if (truthy) {
            Py_INCREF(context);
        }
        else if ((context = PyObject_GetAttr(conn, s_context)) == NULL) {
            goto fail;
        }
        int rc = PyDict_SetItem(d, s_context_key, context);
        Py_DECREF(context);
        if (rc < 0) goto fail;
        PyObject *fresh = PyList_New(0);
        if (fresh == NULL) goto fail;
        rc = PyDict_SetItem(d, s_events, fresh);
        Py_DECREF(fresh);
        if (rc < 0) goto fail;
        events = fresh;
    }
    Py_INCREF(events);
    Py_DECREF(d);
    if (events != Py_None) {
        PyObject *now = mark(events, c_enter);
        if (now == NULL) {
            Py_DECREF(events);
            return NULL;
        }
        Py_DECREF(now);
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
        PyObject *done;
        if (want) {
            done = mark(events, c_exit);
        }
        else {
            PyObject *end = mark(events, c_exit);
            PyObject *argv[4] = {conn, events, end, exc};
            done = end == NULL ? NULL : PyObject_Vectorcall(g_finish, argv, 4, NULL);
            Py_XDECREF(end);
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
    PyErr_SetObject((PyObject *)Py_TYPE(rejected), rejected);
    Py_DECREF(rejected);
    return NULL;
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
    if (!PyType_Check(v[5]) || PyTuple_GET_SIZE(v[14]) != N_SLOTS) {
        PyErr_SetString(PyExc_ValueError, "span_type must be a class with its slots given");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < N_SLOTS; i++) {
        if (Py_TYPE(PyTuple_GET_ITEM(v[14], i))->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "span_slots must be slot descriptors");
            return NULL;
        }
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
     "Give the module the Python objects it calls (done once by tlstiming._conn)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "tlstiming._speedups",
    "The handshake's hot path in C; tlstiming._conn is the reference.", -1, methods,
    NULL, NULL, NULL, NULL,
};

static int
intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
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
        intern(&s_server, "server") < 0 || intern(&s_empty_str, "") < 0) {
        return NULL;
    }
    if ((s_empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL ||
        (c_minus_one = PyLong_FromLong(-1)) == NULL ||
        (c_empty_tuple = PyTuple_New(0)) == NULL || (c_zero = PyLong_FromLong(0)) == NULL ||
        (c_enter = PyLong_FromLong(-1)) == NULL || (c_exit = PyLong_FromLong(-2)) == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && PyModule_AddIntConstant(module, "VERSION", SPEEDUPS_VERSION) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
