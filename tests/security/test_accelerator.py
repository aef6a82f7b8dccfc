"""The C accelerator never crashes and never drops an exception, whatever it is given.

``tlstiming._recording._speedups`` is private, but it is C: a bad value must raise, not
crash the interpreter. The cases that used to crash run in a subprocess, so
that a segfault fails the test instead of ending the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import tlstiming
from tlstiming import HandshakeSpan
from tlstiming._recording import accelerator as _accelerator
from tlstiming._recording import conn as _conn

pytestmark = pytest.mark.skipif(
    not _conn.ACCELERATED, reason="tlstiming._recording._speedups is not built here"
)

# A connection and a context with only what a handshake's recording reads: drive()
# runs a whole (empty) handshake through them, span and detach included.
_FAKES = """
from tlstiming._recording import accelerator as _accelerator
from tlstiming._recording import conn as _conn  # configures the accelerator
from tlstiming._recording import _speedups

class Context:
    pass

class SSLObject:
    def __init__(self, context):
        self.context = context

class Conn:
    server_side = False
    server_hostname = "example.test"

    def __init__(self, context):
        self._context = context
        self._sslobj = SSLObject(context)

def handshake(context=None):
    conn = Conn(context if context is not None else Context())
    result = _speedups.drive(conn, lambda: None)
    return result, conn.__dict__.get("_tlstiming_span")

class Capture:
    def configure(self, **kwargs):
        self.kwargs = kwargs

def configuration():
    capture = Capture()
    _accelerator.configure(capture)
    return capture.kwargs
"""


class _Fakes:
    """The objects of ``_FAKES``, for the tests that run in this process."""

    def __init__(self) -> None:
        namespace: dict[str, Any] = {}
        exec(_FAKES, namespace)
        self.context: Any = namespace["Context"]
        self.conn: Any = namespace["Conn"]
        self.handshake: Any = namespace["handshake"]
        self.configuration: Any = namespace["configuration"]


FAKES = _Fakes()


def _run(script: str) -> subprocess.CompletedProcess[str]:
    code = _FAKES + textwrap.dedent(script)
    env = {**os.environ, "PYTHONMALLOC": "debug"}  # poisons freed memory: a use after free shows
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.fixture
def restore() -> Iterator[None]:
    """Whatever a test does to the module's configuration, put the real one back."""
    from tlstiming._recording import _speedups

    yield
    _accelerator.configure(_speedups)


def test_the_fakes_record_a_span() -> None:
    result, span = FAKES.handshake()
    assert result is None
    assert type(span) is HandshakeSpan
    assert span.server_hostname == "example.test"


def test_span_ids_that_are_not_an_iterator_fail_the_recording_not_the_process() -> None:
    """``PyIter_Next`` on a list used to call a NULL ``tp_iternext``."""
    done = _run(
        """
        import logging, sys
        from tlstiming.spans import build as _build
        logging.basicConfig(stream=sys.stdout, format="%(message)s %(exc_info)s")
        _build.ids = [1, 2, 3]
        print("handshake:", handshake())
        """
    )
    assert done.returncode == 0, done.stderr
    assert "handshake: (None, None)" in done.stdout
    assert "failed to record a handshake" in done.stdout
    assert "is not an iterator" in done.stdout


def test_a_sink_that_empties_the_sink_list_ends_the_walk() -> None:
    """A list of sinks is walked as ``for sink in`` walks it (it used to read past its end)."""
    done = _run(
        """
        context = Context()
        seen = []

        def first(span):
            seen.append("first")
            context._tlstiming_sinks.clear()

        def second(span):
            seen.append("second")

        context._tlstiming_sinks = [first, second]
        result, span = handshake(context)
        print("seen:", seen, type(span).__name__)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "seen: ['first'] HandshakeSpan" in done.stdout


def test_a_sink_that_drops_itself_is_still_reported_safely() -> None:
    """The sink is held while it runs and while its exception is reported (it was borrowed)."""
    done = _run(
        """
        import functools, logging, sys
        logging.basicConfig(stream=sys.stdout, format="%(message)s")
        context = Context()

        def raising(span):
            context._tlstiming_sinks.clear()  # drops the partial's last reference
            raise ValueError("bad sink")

        context._tlstiming_sinks = [functools.partial(raising)]
        print("handshake:", handshake(context)[0])
        """
    )
    assert done.returncode == 0, done.stderr
    assert "sink functools.partial(<function raising" in done.stdout
    assert "handshake: None" in done.stdout


class _RaisingIndex:
    def __index__(self) -> int:
        raise ZeroDivisionError("from __index__")


class _Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


# Each value configure() must refuse, with what its message names.
_REFUSED: list[tuple[str, Any, str]] = [
    ("adopt", 1, "adopt must be callable"),
    ("finish", None, "finish must be callable"),
    ("refuse", "x", "refuse must be callable"),
    ("perf", 1, "perf must be callable"),
    ("cpu", 1, "cpu must be callable"),
    ("want", (1,), "want must be an exception class"),
    ("want", "SSLWantReadError", "want must be an exception class"),
]


@pytest.mark.usefixtures("restore")
@pytest.mark.parametrize(("name", "value", "message"), _REFUSED)
def test_configure_refuses_what_a_handshake_would_trip_on(
    name: str, value: Any, message: str
) -> None:
    from tlstiming._recording import _speedups

    kwargs = FAKES.configuration()
    kwargs[name] = value
    with pytest.raises(TypeError, match=message):
        _speedups.configure(**kwargs)
    # nothing was stored: handshakes still record
    assert type(FAKES.handshake()[1]) is HandshakeSpan


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "list"])
@pytest.mark.parametrize(
    ("content_type", "msg_type"),
    [
        (_RaisingIndex(), 1),
        (_RaisingIndex(), _Index(1)),
        (_Index(22), _RaisingIndex()),
        (_RaisingIndex(), _RaisingIndex()),
    ],
    ids=["content-type", "content-type-then-index", "msg-type", "both"],
)
def test_on_message_keeps_the_exception_of_a_failing_index(
    content_type: Any, msg_type: Any, packed: bool
) -> None:
    """The first failing ``__index__`` is raised; nothing is recorded (it was lost)."""
    from tlstiming._recording import _speedups

    conn = FAKES.conn(FAKES.context())
    events: Any = _speedups.Events() if packed else []
    conn._tlstiming_events = events
    with pytest.raises(ZeroDivisionError, match="from __index__"):
        _speedups.on_message(conn, "read", 771, content_type, msg_type, b"\x01")
    assert len(events) == 0


def test_a_rejection_that_is_not_an_exception_raises_type_error(
    monkeypatch: pytest.MonkeyPatch, restore: None
) -> None:
    """As ``raise rejected`` would: a clear TypeError, not a SystemError."""
    from tlstiming._recording import _speedups

    kwargs = FAKES.configuration()
    kwargs["finish"] = lambda *args: "not an exception"
    kwargs["refuse"] = lambda conn: None
    _speedups.configure(**kwargs)
    conn = FAKES.conn(FAKES.context())
    with pytest.raises(TypeError, match="must derive from BaseException"):
        _speedups.drive(conn, lambda: None)


def test_tlstiming_still_records_after_the_module_tests() -> None:
    assert tlstiming.HandshakeSpan is HandshakeSpan
    assert type(FAKES.handshake()[1]) is HandshakeSpan
