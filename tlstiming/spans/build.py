"""Freeze one connection's recorded events into a HandshakeSpan."""

from __future__ import annotations

import itertools
import os
import random
import ssl
import time
from collections.abc import Sequence

from tlstiming._analysis.timeline import RawEvent, Side, tile
from tlstiming._wire.names import alert_name
from tlstiming.spans.handshake import HandshakeError, HandshakeSpan
from tlstiming.spans.verification import Verification

__all__ = ["build_span", "handshake_error"]

_ALERT = 21

# Span ids: a counter from a random 64-bit start, drawn again in a forked child.
ids = itertools.count(random.getrandbits(63))


def _new_prefix() -> None:
    global ids
    ids = itertools.count(random.getrandbits(63))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


def build_span(
    events: Sequence[RawEvent],
    *,
    server_side: bool,
    end_ns: int,
    server_hostname: str | None,
    peer: tuple[str, int] | None,
    exc: BaseException | None,
    post_handshake_exc: BaseException | None = None,
    context: tuple[int, int, int, int, int, int] | None = None,
    verifications: tuple[Verification, ...] = (),
) -> HandshakeSpan:
    """Build the span of one handshake from its raw events (the first one marks its start)."""
    side: Side = "server" if server_side else "client"
    error = None
    if exc is not None:
        error = handshake_error(exc, events, side, events[0][0], end_ns, phase=None)
    elif post_handshake_exc is not None:
        error = handshake_error(
            post_handshake_exc, events, side, events[0][0], end_ns, "post_handshake"
        )
    unix_end = time.time_ns() - (time.perf_counter_ns() - end_ns)
    return HandshakeSpan(
        next(ids),
        server_side,
        server_hostname,
        peer,
        events,
        end_ns,
        unix_end,
        error,
        context,
        verifications,
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
