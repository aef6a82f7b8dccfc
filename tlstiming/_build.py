"""Freeze one connection's recorded events into a HandshakeSpan."""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Sequence

from tlstiming._names import alert_name
from tlstiming._timeline import RawEvent, Side, tile
from tlstiming.spans import HandshakeError, HandshakeSpan

__all__ = ["build_span", "handshake_error"]

_ALERT = 21
_bits = random.getrandbits


def build_span(
    events: Sequence[RawEvent],
    *,
    side: Side,
    end_ns: int,
    server_hostname: str | None,
    peer: tuple[str, int] | None,
    exc: BaseException | None,
    post_handshake_exc: BaseException | None = None,
) -> HandshakeSpan:
    """Build the span of one handshake from its raw events (the first one marks its start)."""
    start = events[0][0]
    start_unix = time.time_ns() - (time.perf_counter_ns() - start)
    error = None
    if exc is not None:
        error = handshake_error(exc, events, side, start, end_ns, phase=None)
    elif post_handshake_exc is not None:
        error = handshake_error(post_handshake_exc, events, side, start, end_ns, "post_handshake")
    return HandshakeSpan(
        span_id=f"{_bits(64):016x}",
        side=side,
        server_hostname=server_hostname,
        peer=peer,
        start_ns=start,
        end_ns=end_ns,
        start_unix_ns=start_unix,
        error=error,
        events=events,
    )


def handshake_error(
    exc: BaseException,
    events: Sequence[RawEvent],
    side: Side,
    start: int,
    end: int,
    phase: str | None,
) -> HandshakeError:
    """Describe ``exc`` and the alert (if any) that went with it."""
    if phase is None:
        phase = tile(events, side, start, end).names[-1]
    alert = next((e for e in events if e[3] == _ALERT and e[5][:1] == b"\x02"), None)
    alert = alert or next((e for e in events if e[3] == _ALERT and e[5][1:2] != b"\x00"), None)
    cls = type(exc)
    module = "" if cls.__module__ == "builtins" else cls.__module__ + "."
    return HandshakeError(
        type=module + cls.__qualname__,
        message=str(exc),
        phase=phase,
        alert=alert_name(alert[5][1]) if alert and len(alert[5]) > 1 else None,
        alert_source=(None if alert is None else "local" if alert[2] == "write" else "peer"),
        reason=getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None,
        verify_code=getattr(exc, "verify_code", None),
    )
