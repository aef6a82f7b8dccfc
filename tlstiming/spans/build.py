"""The one constructor of HandshakeSpan: every span, completed or failed, is built here."""

from __future__ import annotations

import itertools
import os
import random
import ssl
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tlstiming._analysis.timeline import RawEvent, Side, failure_alert, tile
from tlstiming._wire.names import alert_name
from tlstiming.spans.handshake import HandshakeError, HandshakeSpan
from tlstiming.spans.verification import Verification

if TYPE_CHECKING:
    from tlstiming._analysis.facts import HandshakeFacts

__all__ = ["build_span", "handshake_error"]

_new = object.__new__

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
    exc: BaseException | None = None,
    post_handshake_exc: BaseException | None = None,
    context: tuple[int, int, int, int, int, int] | None = None,
    verifications: tuple[Verification, ...] = (),
    facts: HandshakeFacts | None = None,
) -> HandshakeSpan:
    """Build the span of one handshake from its raw events (the first one marks its start).

    Args:
        events: the handshake's raw events, in the order recorded; a packed
            sequence (the C accelerator's) is kept as it is, closed to appends,
            anything else is frozen into a tuple.
        server_side: which end recorded them.
        end_ns: when the handshake completed or failed (``perf_counter_ns``).
        server_hostname: the name the client asked for.
        peer: the peer's (address, port), or ``None``.
        exc: why the handshake failed, or ``None``.
        post_handshake_exc: a failure that arrived after a completed handshake
            (a TLS 1.3 server's verdict on the client's certificate).
        context: the context's trust-store snapshot at this handshake.
        verifications: the verifiers that ran after it.
        facts: the facts, when already parsed from these events (for verifiers).

    Returns:
        The span. Its end on the wall clock is derived here, from ``end_ns``.
    """
    side: Side = "server" if server_side else "client"
    error, tiling = None, None
    if exc is not None or post_handshake_exc is not None or isinstance(events, list):
        events = tuple(events)  # a tuple of tuples of atoms leaves the collector's watch
    elif not isinstance(events, tuple):  # packed, by the C accelerator: closed to appends
        events.freeze()  # type: ignore[attr-defined]
    if exc is not None:
        tiling = tile(events, side, events[0][0], end_ns)
        error = handshake_error(exc, events, tiling.names[-1])
    elif post_handshake_exc is not None:
        error = handshake_error(post_handshake_exc, events, "post_handshake")
    # HandshakeSpan(...) would pack these keywords into a dict (type.__call__);
    # its __init__ called on a new instance takes them as a plain call: half the cost.
    span: HandshakeSpan = _new(HandshakeSpan)
    HandshakeSpan.__init__(
        span,
        span_id=next(ids),
        side=side,
        server_hostname=server_hostname,
        peer=peer,
        events=events,
        end_ns=end_ns,
        end_unix_ns=time.time_ns() - (time.perf_counter_ns() - end_ns),
        error=error,
        context=context,
        verifications=verifications,
        tiling=tiling,
        facts=facts,
    )
    return span


def handshake_error(exc: BaseException, events: Sequence[RawEvent], phase: str) -> HandshakeError:
    """Describe ``exc``, which ended ``phase``, and the alert (if any) that went with it."""
    alert = failure_alert(events)
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
