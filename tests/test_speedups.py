"""The optional C accelerator (``tlstiming._recording._speedups``) against the pure-Python hot path.

The core test modules run every case with both (the ``implementation``
fixture); this module checks what only the accelerator has: that it is built
where it can be, compiles cleanly, records the very same events as the
Python code, never leaks references, and handles misuse with exceptions.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
import sysconfig
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import ServeFactory, use_implementation
from hypothesis import given
from hypothesis import strategies as st
from servers import GREETING, PKI, connect, read_exactly, server_context

import tlstiming
from tlstiming import SpanRecorder, TimedSSLContext
from tlstiming._recording import accelerator as _accelerator
from tlstiming._recording import conn as _conn
from tlstiming._recording import native as _native
from tlstiming._wire import names as _names
from tlstiming.spans import build as _build

SOURCE = Path(_conn.__file__).with_name("_speedups.c")
TLS12 = ssl.TLSVersion.TLSv1_2


def _compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def _headers() -> bool:
    return (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()


needs_accelerator = pytest.mark.skipif(
    not _conn.ACCELERATED, reason="tlstiming._recording._speedups is not built here"
)


@pytest.mark.skipif(bool(os.environ.get("TLSTIMING_PURE_PYTHON")), reason="pure Python asked for")
def test_built_wherever_it_can_be() -> None:
    """In a checkout with a C compiler and Python's headers, installing builds it."""
    if not (SOURCE.exists() and _compiler() and _headers()):
        pytest.skip("no C source, compiler or Python headers here")
    assert _conn.ACCELERATED
    assert _conn.drive is not _conn._py_drive
    assert _conn.on_message is not _conn._py_on_message


@pytest.mark.skipif(not SOURCE.exists(), reason="installed without the C source")
def test_compiles_without_warnings(tmp_path: Path) -> None:
    cc = _compiler()
    if cc is None or not _headers():
        pytest.skip("no C compiler or Python headers")
    command = [
        cc,
        "-std=c99",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wno-unused-parameter",
        "-Wno-cast-function-type",  # METH_FASTCALL functions cast to PyCFunction
        "-fPIC",
        "-shared",
        f"-I{sysconfig.get_paths()['include']}",
        str(SOURCE),
        "-o",
        str(tmp_path / "speedups.so"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def _c_constants() -> dict[str, int]:
    """The named integer constants of ``_speedups.c``: its enum members and ``#define`` s."""
    text = re.sub(r"/\*.*?\*/", "", SOURCE.read_text(encoding="utf-8"), flags=re.DOTALL)
    found: dict[str, int] = {}
    for body in re.findall(r"\benum\s*\{(.*?)\}", text, re.DOTALL):
        for name, value in re.findall(r"\b([A-Z][A-Z0-9_]*)\s*=\s*(-?\d+)", body):
            found[name] = int(value)
    for name, value in re.findall(r"^#define\s+([A-Z][A-Z0-9_]*)\s+(-?\d+)\s*$", text, re.M):
        found[name] = int(value)
    return found


_NOT_WIRE = {
    "SPEEDUPS_VERSION",
    "DIRECT_CLOCKS",
    "N_CONFIGURED",
    "NATIVE_POSSIBLE",
    "CRYPTO_EX_INDEX_SSL",  # openssl/crypto.h
    "CPYTHON_CCS_MSG_TYPE",  # what CPython's callback passes where the wire has no type
    "CPYTHON_NO_MSG_TYPE",
    "SYMBOL_VERSION_NUM",  # an index into the accelerator's own symbol table
    "MAX_STAPLE_BYTES",  # the bound on a staple (tlstiming._recording.staple has it too)
    # openssl/ssl.h and tls1.h: the controls behind OpenSSL's status macros
    "CTRL_SET_STATUS_CB",
    "CTRL_SET_STATUS_CB_ARG",
    "CTRL_SET_STATUS_TYPE",
    "CTRL_SET_STATUS_OCSP_RESP",
    "CTRL_GET_STATUS_TYPE",
    "STATUSTYPE_OCSP",
    "STATUSTYPE_NOTHING",
    "TLSEXT_ERR_OK",
    "TLSEXT_ERR_NOACK",
    "NAMETYPE_HOST_NAME",
}


@pytest.mark.skipif(not SOURCE.exists(), reason="installed without the C source")
def test_wire_numbers_in_c_are_the_ones_python_declares() -> None:
    """Every number C compares against is named as in ``_wire.names``, with its value."""
    declared = {n: v for n, v in vars(_names).items() if n.isupper() and type(v) is int}
    members = {m.name: int(m) for m in _names.HandshakeType}
    assert not declared.keys() & members.keys()  # one name, one number
    declared.update(members)
    constants = _c_constants()
    wire = {name: value for name, value in constants.items() if name not in _NOT_WIRE}
    assert {"ALERT", "HANDSHAKE", "CERTIFICATE_REQUEST", "ENTER", "EXIT"} <= wire.keys()
    assert {n: v for n, v in wire.items() if declared.get(n) != v} == {}
    assert constants["SPEEDUPS_VERSION"] == _accelerator.SPEEDUPS_VERSION
    # ...and no bare number stands in for one (``x == -1 && PyErr_Occurred()`` is C's idiom)
    code = re.sub(r"/\*.*?\*/", "", SOURCE.read_text(encoding="utf-8"), flags=re.DOTALL)
    bare = r"\b(?:content_type|msg_type|kind)\s*[=!<>]=?\s*-?\d+(?!\s*&&\s*PyErr_Occurred)"
    assert re.findall(bare, code) == []


def test_pure_python_switch() -> None:
    code = "import tlstiming._recording.conn as c; print(c.ACCELERATED, c.drive is c._py_drive)"
    env = {**os.environ, "TLSTIMING_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]


def _record(ctx: TimedSSLContext, address: tuple[str, int], *, reuse: Any = None) -> Any:
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    with connect(ctx, address, session=reuse) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING
        session = tls.session
    ctx.remove_sink(recorder)
    (span,) = recorder.spans
    return span, session


def _shape(span: Any) -> dict[str, Any]:
    """Everything about a span that depends neither on time nor on signature lengths.

    The ``chain_verification`` phase is left out: only native hooks can see it.
    """
    phases = [p for p in span.phases if p.name != "chain_verification"]
    return {
        "messages": [(m.direction, m.type, m.cpu_ns is None) for m in span.messages],
        "records": [(r.direction, r.content_type) for r in span.records],
        "phases": [p.name for p in phases],
        "phase_cpu_known": [p.cpu_ns is not None for p in phases],
        "keys": sorted(span.to_dict()),
        "outcome": span.outcome,
        "side": span.side,
        "peer": span.peer,
        "resumed": span.facts.resumed,
        "context": (span.context_stats.handshake_index, span.context_stats.trust_loads),
    }


@needs_accelerator
@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_same_spans_as_python(
    version: str, serve: ServeFactory, pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=TLS12 if version == "1.2" else None))
    shapes = {}
    for implementation in ("c", "python"):
        with monkeypatch.context() as m:
            use_implementation(implementation, m)
            ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
            first, session = _record(ctx, server.address)
            resumed, _ = _record(ctx, server.address, reuse=session)
        shapes[implementation] = (_shape(first), _shape(resumed))
        assert first.facts.protocol_version == version
    for c, python in zip(shapes["c"], shapes["python"], strict=True):
        assert {k: v for k, v in c.items() if v != python[k]} == {}, python
    assert shapes["c"][1]["resumed"] is True


@needs_accelerator
def test_no_reference_or_memory_leaks(serve: ServeFactory, pki: PKI) -> None:
    """What the accelerator touches keeps its reference count; spans and buffers are freed."""
    server = serve(server_context(pki.leaf))
    recorder = SpanRecorder(maxlen=1)
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    ctx.add_sink(recorder)
    watched = (ctx, recorder, _build, ctx._tlstiming_trust, ctx._tlstiming_sinks)

    def run(n: int) -> int:
        for _ in range(n):
            with connect(ctx, server.address) as tls:
                read_exactly(tls, len(GREETING))
            server.next_result()  # the server is done with it (nothing of it in flight)
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    run(5)
    before = [sys.getrefcount(o) for o in watched]
    tracemalloc.start()
    try:
        early = run(20)
        late = run(60)
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(o) for o in watched] == before
    # A kept span's packed events alone are ~5 KB: 60 leaked would be ~300 KB.
    assert late - early < 60 * 1000
    alive = [o for o in gc.get_objects() if type(o) is tlstiming.HandshakeSpan]
    assert len(recorder) == 1
    assert len(alive) <= 3, alive


@pytest.mark.usefixtures("implementation")
def test_recording_failure_never_reaches_the_connection(
    serve: ServeFactory, pki: PKI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    def broken() -> Any:
        raise RuntimeError("no more ids")
        yield  # pragma: no cover

    server = serve(server_context(pki.leaf))
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    monkeypatch.setattr(_build, "ids", broken())
    with caplog.at_level(logging.ERROR, "tlstiming"), connect(ctx, server.address) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING
        assert tlstiming.span_of(tls) is None
    (record,) = [r for r in caplog.records if "failed to record" in r.getMessage()]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


class _Stop(BaseException):
    pass


# ssl closes the socket only for OSError/ValueError from the handshake: this one is leaked
# by ssl itself, as without tlstiming.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.usefixtures("implementation")
def test_base_exception_in_a_sink_propagates(serve: ServeFactory, pki: PKI) -> None:
    """Like ``KeyboardInterrupt`` anywhere else: not swallowed, in either implementation."""

    def sink(span: Any) -> None:
        raise _Stop

    server = serve(server_context(pki.leaf))
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    ctx.add_sink(sink)
    with pytest.raises(_Stop):
        connect(ctx, server.address)


@needs_accelerator
def test_misuse_raises() -> None:
    from tlstiming._recording import _speedups

    with pytest.raises(TypeError, match="6 arguments"):
        _speedups.on_message(object())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="at least 2"):
        _speedups.drive(object())  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _speedups.configure()  # type: ignore[call-arg]
    good: dict[str, Any] = {
        "adopt": print,
        "finish": print,
        "refuse": print,
        "want": (ssl.SSLWantReadError,),
        "perf": print,
        "cpu": print,
    }
    with pytest.raises(TypeError):
        _speedups.configure(**good, span_type=tlstiming.HandshakeSpan)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="finish must be callable"):
        _speedups.configure(**{**good, "finish": None})
    # configure() checks before it stores anything: recording still works.
    assert _conn.ACCELERATED


@needs_accelerator
def test_stale_build_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from tlstiming._recording import _speedups

    monkeypatch.setattr(_speedups, "VERSION", _accelerator.SPEEDUPS_VERSION + 1)
    monkeypatch.setattr(_conn, "on_message", _conn.on_message)
    monkeypatch.setattr(_conn, "drive", _conn.drive)
    monkeypatch.setattr(_native, "_current", _native._current)  # _accelerate() selects again
    monkeypatch.setattr(_native.SWITCH, "on", _native.SWITCH.on)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _conn._accelerate() is False
    assert any("stale" in str(w.message) for w in caught)


@needs_accelerator
def test_user_callback_chained_through_the_accelerator(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    seen: list[tuple[str, int]] = []
    server = serve(server_context(pki.leaf))
    ctx: TimedSSLContext = tlstiming.create_default_context(cadata=pki.ca_pem)
    ctx.add_sink(recorder)
    ctx._msg_callback = lambda conn, direction, v, ct, mt, data: seen.append((direction, ct))
    with connect(ctx, server.address) as tls:
        read_exactly(tls, len(GREETING))
    (span,) = recorder.spans
    recorded = [m.direction for m in span.messages if m.content_type == "handshake"]
    given = [{"write": "sent", "read": "received"}[d] for d, ct in seen if ct == 22]
    assert recorded == given[: len(recorded)]  # the user's callback also gets later messages
    assert len(given) >= len(recorded) > 4


# -- the packed event list ---------------------------------------------------------

_INT64 = st.integers(-(2**63), 2**63 - 1)
_INT32 = st.integers(-(2**31), 2**31 - 1)
_EVENT = st.tuples(
    _INT64, _INT64, st.sampled_from(["", "read", "write"]), _INT32, _INT32, st.binary(max_size=300)
)


def _events() -> Any:
    from tlstiming._recording import _speedups

    return _speedups.Events()


@needs_accelerator
@given(items=st.lists(_EVENT, max_size=80), index=st.integers(-100, 100), cut=st.slices(100))
def test_packed_events_behave_like_a_list_of_tuples(
    items: list[tuple[int, int, str, int, int, bytes]], index: int, cut: slice
) -> None:
    events = _events()
    for item in items:
        events.append(item)
    assert len(events) == len(items)
    assert bool(events) == bool(items)
    assert list(events) == items
    assert list(reversed(events)) == items[::-1]
    assert events[cut] == items[cut]
    if -len(items) <= index < len(items):
        assert events[index] == items[index]
    else:
        with pytest.raises(IndexError):
            events[index]
    assert tuple(events) == tuple(items)


@needs_accelerator
def test_packed_events_refuse_bad_input_and_change_once_frozen() -> None:
    events = _events()
    good = (1, 2, "read", 22, 1, b"\x01\x00")
    bad: list[tuple[Any, type[Exception]]] = [
        ((1, 2, "read", 22, 1), TypeError),
        ([1, 2, "read", 22, 1, b""], TypeError),
        ((1, 2, "sideways", 22, 1, b""), ValueError),
        ((1, 2, b"read", 22, 1, b""), TypeError),
        ((1, 2, "read", 22, 1, "text"), TypeError),
        ((1, 2, "read", 2**31, 1, b""), OverflowError),
        ((2**63, 2, "read", 22, 1, b""), OverflowError),
        (("1", 2, "read", 22, 1, b""), TypeError),
    ]
    for item, error in bad:
        with pytest.raises(error):
            events.append(item)
    assert len(events) == 0
    events.append(good)
    with pytest.raises(TypeError):
        events["0"]
    with pytest.raises(TypeError):
        type(events)(1)
    events.freeze()
    with pytest.raises(TypeError, match="cannot change"):
        events.append(good)
    assert list(events) == [good]


@needs_accelerator
def test_packed_events_grow_past_their_first_blocks() -> None:
    events = _events()
    items = [(i, -1, "write", 23, 0, bytes([i % 256]) * 5000) for i in range(200)]
    for item in items:
        events.append(item)
    assert list(events) == items


@needs_accelerator
def test_spans_of_accelerated_handshakes_pack_their_events(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    """Packed while nobody reads the span; a tuple of the same events once a view exists."""
    from tlstiming._recording import _speedups

    server = serve(server_context(pki.leaf))
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    ctx.add_sink(recorder)
    with connect(ctx, server.address) as tls:
        read_exactly(tls, len(GREETING))
    (span,) = recorder.spans
    packed = span._events
    assert isinstance(packed, _speedups.Events)
    raw = list(packed)
    with pytest.raises(TypeError, match="cannot change"):
        packed.append(raw[0])
    assert span.messages  # the first view turns them into a tuple
    assert span._events == tuple(raw)
