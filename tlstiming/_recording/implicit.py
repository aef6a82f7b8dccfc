"""Handshakes no ``do_handshake()`` call announced: driven by read/write, or abandoned.

A connection the message callback meets without a recording is adopted
(:func:`adopt`): its handshake runs inside the first read or write, and the
callback itself ends it when both Finished messages or a fatal alert have
passed. A handshake its owner gave up on mid-way is delivered when the
connection closes or is collected (:func:`abandon`).
"""

from __future__ import annotations

import ssl
import time
import weakref
from typing import Any

from tlstiming._analysis.timeline import RawEvent, fatal_alert, is_fatal_alert
from tlstiming._recording.decide import decide, refuse
from tlstiming._recording.finish import record, record_failed, settle
from tlstiming._recording.keys import CONTEXT, EVENTS, PENDING, REJECTED
from tlstiming._recording.native import harvest
from tlstiming._wire.names import HANDSHAKE, HandshakeType, alert_name
from tlstiming.errors import HandshakeAbandoned

__all__ = ["abandon", "adopt"]

_perf = time.perf_counter_ns
_READ, _WRITTEN, _BOTH, _FAILED = 1, 2, 3, -1  # which Finished messages passed, or a fatal alert


class _Implicit(list[RawEvent]):
    """Events of a handshake driven by the first read/write instead of ``do_handshake``."""

    __slots__ = ("_conn", "_finished")

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._conn = weakref.ref(conn)
        self._finished = 0

    def append(self, event: RawEvent) -> None:
        super().append(event)
        if event[3] == HANDSHAKE and event[4] == HandshakeType.FINISHED:
            self._finished |= _READ if event[2] == "read" else _WRITTEN
        elif is_fatal_alert(event):
            self._finished = _FAILED
        else:
            return
        conn = self._conn()
        if conn is not None and self._finished in {_BOTH, _FAILED}:
            _leave_implicit(conn, self)


def adopt(conn: Any) -> list[RawEvent] | None:
    """Start recording a connection the message callback met first; ``None``: not ours."""
    try:
        d = conn.__dict__
    except AttributeError:
        return None
    if not isinstance(conn, (ssl.SSLSocket, ssl.SSLObject)):
        d[EVENTS] = None
        return None
    events = d[EVENTS] = _Implicit(conn)
    d[CONTEXT] = conn.context
    return events


def _leave_implicit(conn: Any, events: list[RawEvent]) -> None:
    """End a handshake that a read or write drove: its exception is never seen here.

    Contexts with verifiers guard their connections (``decide.guard``) so
    this does not happen to them; should it anyway (a verifier added after
    the connection was made), the verifiers run here, inside OpenSSL's read
    or write, and a rejection shuts the socket and raises out of that call.
    """
    d = conn.__dict__
    d[EVENTS] = None
    alert = fatal_alert(events)
    exc: BaseException | None = None
    if alert is not None:
        name = alert_name(alert[5][1]) if len(alert[5]) > 1 else "unknown"
        source = "sent" if alert[2] == "write" else "received"
        exc = ssl.SSLError(
            f"fatal alert {name} {source} during a handshake driven by read/write; "
            "the exception raised to the caller is not observable there"
        )
    rejected, checks, facts = decide(conn, events, exc)
    try:
        record(conn, events, events[-1][0], rejected or exc, checks=checks, facts=facts)
    except Exception as failure:
        record_failed(failure)
    if rejected is not None:
        d[REJECTED] = rejected
        refuse(conn)
        raise rejected


def abandon(conn: Any) -> None:
    """Deliver the span of a handshake its owner gave up on mid-way (or one still pending)."""
    d = conn.__dict__
    if PENDING in d:
        settle(conn, None)
        return
    events = d.get(EVENTS)
    if not events:
        return
    d[EVENTS] = None
    events = harvest(conn, events)  # what the native callback recorded, if it did
    try:
        exc = HandshakeAbandoned(
            "the handshake was abandoned before it completed: the connection was closed or "
            "discarded outside do_handshake() (connection lost, or a timeout enforced by "
            "its owner)"
        )
        record(conn, events, _perf(), exc)
    except Exception as failure:
        record_failed(failure)
