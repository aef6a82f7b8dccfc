"""The hot path: OpenSSL's message callback and the ``do_handshake`` wrapper.

Each has two implementations: the pure-Python reference here and the
optional C accelerator (``_speedups.c``, see ``accelerator``), which records
exactly the same events. Both hand the end of every handshake to
:func:`tlstiming._recording.finish.finish`. What a connection records lives in
its own ``__dict__`` (``keys``).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any, Final

from tlstiming._analysis.timeline import RawEvent
from tlstiming._recording import accelerator as _accelerator
from tlstiming._recording import native as _native
from tlstiming._recording.decide import refuse
from tlstiming._recording.detach import rearm
from tlstiming._recording.finish import WANT, finish, settle
from tlstiming._recording.implicit import abandon, adopt
from tlstiming._recording.keys import CERTIFICATE_REQUEST, CONTEXT, EVENTS, PENDING, SPAN
from tlstiming._recording.verify import VerifierRejected
from tlstiming._wire.names import ALERT, ENTER, EXIT, HANDSHAKE, SNI_END, SNI_START, HandshakeType

__all__ = [
    "ACCELERATED",
    "chained_on_message",
    "close_pending",
    "drive",
    "on_message",
    "settle_pending",
    "span_of",
    "timed_sni_callback",
]

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns


def on_message(
    conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
) -> None:
    """OpenSSL's message callback: append one event to the connection's list. Hot path."""
    try:
        events = conn._tlstiming_events  # keys.EVENTS, read as an attribute: fastest
    except AttributeError:
        events = adopt(conn)
    if events is None:
        return
    if content_type == HANDSHAKE or content_type == ALERT:  # noqa: PLR1714, SIM109 (fastest)
        events.append((_perf(), _cpu(), direction, content_type, msg_type, data))
        if content_type == HANDSHAKE and msg_type == HandshakeType.CERTIFICATE_REQUEST:
            conn.__dict__[CERTIFICATE_REQUEST] = True
    else:  # record headers, inner content types, change_cipher_spec
        events.append((_perf(), -1, direction, content_type, msg_type, data))


def chained_on_message(inner: Callable[..., Any]) -> Callable[..., Any]:
    """Record, then call a user's own ``_msg_callback`` exactly as ssl would."""

    def on_message_and_user(
        conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
    ) -> Any:
        on_message(conn, direction, version, content_type, msg_type, data)
        return inner(conn, direction, version, content_type, msg_type, data)

    return on_message_and_user


def timed_sni_callback(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a server's ``sni_callback`` so its run time becomes the ``sni_callback`` phase."""

    def sni_callback(conn: Any, server_name: str | None, context: ssl.SSLContext) -> Any:
        events = getattr(conn, EVENTS, None)
        if events is not None:
            events.append((_perf(), _cpu(), "", SNI_START, 0, b""))
        try:
            return callback(conn, server_name, context)
        finally:
            _native.rearm(conn)  # a context switch resets the connection's callback
            if events is not None:
                events.append((_perf(), _cpu(), "", SNI_END, 0, b""))

    sni_callback.__wrapped__ = callback  # type: ignore[attr-defined]
    return sni_callback


def span_of(conn: Any) -> Any:
    """Return the span recorded on ``conn``, or ``None`` if it has none (yet)."""
    try:
        return conn.__dict__.get(SPAN)
    except AttributeError:
        return None


# -- the handshake's life on one connection ------------------------------------


def _enter(conn: Any) -> list[RawEvent] | None:
    d: dict[str, Any] = conn.__dict__
    if EVENTS not in d:
        rearm(conn)
        d[EVENTS] = []
        d[CONTEXT] = d.get("_context") or conn.context  # SSLSocket keeps it in _context
    events: list[RawEvent] | None = d[EVENTS]
    if events is None:
        return None
    events.append((_perf(), _cpu(), "", ENTER, 0, b""))
    return events


def _leave(conn: Any, events: list[RawEvent], exc: BaseException | None) -> VerifierRejected | None:
    """End the recording; return the exception to raise if a verifier rejected."""
    end = _perf()
    events.append((end, _cpu(), "", EXIT, 0, b""))
    return finish(conn, events, end, exc)


def drive(conn: Any, handshake: Callable[..., None], *args: Any) -> None:
    """Run one ``do_handshake`` call of ``conn`` (``handshake(*args)``) and record it.

    A call that needs more data (``SSLWantReadError``/``SSLWantWriteError``,
    the non-blocking and BIO paths) only marks its end; the call that
    completes or fails the handshake ends the recording. The caller's
    exception passes through unchanged; a verifier's rejection is raised here.
    """
    events = _enter(conn)
    if events is None:
        handshake(*args)
        return
    try:
        handshake(*args)
    except WANT:
        events.append((_perf(), _cpu(), "", EXIT, 0, b""))
        raise
    except BaseException as exc:
        _leave(conn, events, exc)
        raise
    rejected = _leave(conn, events, None)
    if rejected is not None:
        refuse(conn)
        raise rejected


def close_pending(conn: Any) -> None:
    """The connection is closing: deliver a span still waiting or abandoned."""
    d = conn.__dict__
    if d.get(EVENTS) or PENDING in d:
        abandon(conn)


def settle_pending(conn: Any) -> None:
    """Deliver a TLS 1.3 client-auth span still waiting for its first read."""
    if PENDING in conn.__dict__:
        settle(conn, None)


# -- the C accelerator ---------------------------------------------------------

_py_on_message: Final = on_message
_py_drive: Final = drive


def _accelerate() -> bool:
    """Record through ``_speedups`` when it is built, current and allowed."""
    global on_message, drive
    speedups = _accelerator.load()
    _native.select(speedups, python_reason=_accelerator.WHY_NOT)
    if speedups is None:
        return False
    on_message, drive = speedups.on_message, speedups.drive
    return True


ACCELERATED: Final = _accelerate()
"""Whether the C accelerator records this process's handshakes."""
