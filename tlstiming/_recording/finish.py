"""A handshake's end: the decision, then its span built, delivered, and the detach.

:func:`finish` runs after every handshake, with either hot path: the
pure-Python ``conn.drive`` and the C accelerator's both hand it the
handshake's events. It runs right after OpenSSL has evicted the interpreter
from the CPU caches, where every extra function, attribute and object touched
costs microseconds: keep the common case short.
"""

from __future__ import annotations

import logging
import ssl
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from tlstiming._analysis.timeline import RawEvent
from tlstiming._recording.decide import Decision, decide, unguard
from tlstiming._recording.delivery import deliver
from tlstiming._recording.detach import detach
from tlstiming._recording.keys import (
    CERTIFICATE_REQUEST,
    CHECKS,
    CONTEXT,
    EVENTS,
    GUARDS,
    PENDING,
    REJECTED,
    SPAN,
)
from tlstiming._recording.peer import peer_of
from tlstiming._recording.verify import Verification, VerifierRejected
from tlstiming._wire.names import ALERT, HANDSHAKE
from tlstiming.spans.build import build_span
from tlstiming.spans.handshake import HandshakeSpan

if TYPE_CHECKING:
    from tlstiming._analysis.facts import HandshakeFacts

__all__ = ["WANT", "AfterHandshake", "finish", "record", "record_failed", "settle"]

_log = logging.getLogger("tlstiming")
_UNDECIDED: Final[Decision] = (None, (), None)  # no verifier ran

WANT: Final = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
"""What a ``do_handshake`` call raises when it needs more data: not the end yet."""


def finish(
    conn: Any, events: list[RawEvent], end: int, exc: BaseException | None
) -> VerifierRejected | None:
    """Everything after the handshake's EXIT mark; return the rejection to raise, if any.

    Two parts, kept apart on purpose: the decision (the verifiers), which
    never raises and fails closed, and the recording, whose failures are
    reported and never reach the connection. The catch-all wraps the
    recording only.
    """
    d: dict[str, Any] = conn.__dict__
    d[EVENTS] = None
    if GUARDS in d:
        unguard(d)
    context = d[CONTEXT]
    rejected, checks, facts = _UNDECIDED
    if exc is None and getattr(context, "_tlstiming_verifiers", None):  # else nothing to decide
        rejected, checks, facts = decide(conn, events, exc)
        if rejected is not None:
            d[REJECTED] = exc = rejected
        end = events[-1][0]  # the last verifier's end
    try:
        if exc is None and CERTIFICATE_REQUEST in d and _awaits_verdict(conn, events):
            _await_verdict(conn, events, end, checks)
        else:
            record(conn, events, end, exc, checks=checks, facts=facts, detach_after=exc is None)
    except Exception as failure:
        record_failed(failure)
    return rejected


def record_failed(failure: BaseException) -> None:
    """Log that recording a handshake failed (never raised into the connection)."""
    _log.error(
        "tlstiming: failed to record a handshake; the connection is unaffected", exc_info=failure
    )


def record(
    conn: Any,
    events: Sequence[RawEvent],
    end: int,
    exc: BaseException | None = None,
    *,
    after: BaseException | None = None,
    checks: tuple[Verification, ...] = (),
    facts: HandshakeFacts | None = None,
    pending: bool = False,
    detach_after: bool = False,
) -> HandshakeSpan:
    """Build the span of ``conn``'s handshake, keep it on ``conn`` and deliver it.

    Every path that ends a recording comes here. One function on purpose:
    right after a handshake each extra Python frame costs microseconds.

    Args:
        conn: the connection; its side, server name, peer and context go in the span.
        events: the handshake's raw events.
        end: when it completed or failed (``perf_counter_ns``).
        exc: why it failed, or ``None``.
        after: a failure that arrived after it (the TLS 1.3 verdict).
        checks: the verifications that ran.
        facts: the facts, when parsed for the verifiers.
        pending: keep the span on ``conn`` without delivering it (a TLS 1.3
            client waiting for the server's verdict).
        detach_after: detach ``conn`` from the message callback afterwards.

    Returns:
        The span.
    """
    d = conn.__dict__
    context = d.get(CONTEXT)
    account = getattr(context, "_tlstiming_trust", None)
    span = d[SPAN] = build_span(
        events,
        server_side=conn.server_side,
        end_ns=end,
        server_hostname=conn.server_hostname,
        peer=peer_of(conn),
        exc=exc,
        post_handshake_exc=after,
        context=None if account is None else account.on_handshake(),
        verifications=checks,
        facts=facts,
    )
    if not pending:
        deliver(context, span)
    if detach_after:
        detach(conn)
    return span


# -- TLS 1.3 client authentication: the server's verdict comes after ------------


def _awaits_verdict(conn: Any, events: Sequence[RawEvent]) -> bool:
    """A client was asked for a certificate and spoke last: TLS 1.3, verdict pending."""
    if conn.server_side:
        return False
    last = next((e for e in reversed(events) if e[3] == HANDSHAKE), None)
    return last is not None and last[2] == "write"


def _await_verdict(
    conn: Any, events: list[RawEvent], end: int, checks: tuple[Verification, ...]
) -> None:
    """Keep the span until the first read, which brings the server's verdict."""
    d = conn.__dict__
    record(conn, events, end, checks=checks, pending=True)
    d[PENDING] = events  # the handshake's own events, no longer appended to
    d[EVENTS] = AfterHandshake()  # from now on only what the verdict needs
    d[CHECKS] = checks
    conn.read = _settling_read(conn)


def _settling_read(conn: Any) -> Callable[..., Any]:
    ref = weakref.ref(conn)
    plain_read = type(conn).read

    def read(*args: Any, **kwargs: Any) -> Any:
        sock = ref()
        try:
            result = plain_read(sock, *args, **kwargs)
        except (*WANT, TimeoutError):
            raise  # no verdict yet: a non-blocking retry, or the caller's own read timeout
        except Exception as exc:
            settle(sock, exc)
            raise
        settle(sock, None)
        return result

    return read


def settle(conn: Any, exc: BaseException | None) -> None:
    """Deliver a span that waited for the first read after a TLS 1.3 handshake."""
    d = conn.__dict__
    handshake = d.pop(PENDING, None)
    if handshake is None:
        return
    d.pop("read", None)
    after = d[EVENTS]
    d[EVENTS] = None
    try:
        events = [*handshake, *after]
        checks = d.pop(CHECKS, ())
        end = handshake[len(handshake) - 1][0]
        record(conn, events, end, after=exc, checks=checks, detach_after=exc is None)
    except Exception as failure:
        record_failed(failure)


class AfterHandshake(list[RawEvent]):
    """What a connection records between its handshake and the server's TLS 1.3 verdict.

    Only alerts (the verdict, if negative, is one), and only the first few:
    the connection may write any amount before it reads, in constant memory.
    """

    __slots__ = ()
    LIMIT: Final = 4

    def append(self, event: RawEvent) -> None:
        if event[3] == ALERT and len(self) < self.LIMIT:
            super().append(event)
