"""Spans with made-up, exact timings, for deterministic budget tests.

Also copied into pytester sessions (``pytester.makepyfile``), so it imports
nothing from the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tlstiming import HandshakeSpan
from tlstiming._analysis.timeline import RawEvent
from tlstiming._recording import delivery as _delivery
from tlstiming._wire.names import ENTER, EXIT, HELLO_RETRY_RANDOM
from tlstiming.spans.build import build_span

MS = 1_000_000
_SH13 = b"\x02\x00\x00\x30\x03\x03" + bytes(32) + b"\x00\x2b\x00\x02\x03\x04"
_HRR = b"\x02\x00\x00\x30\x03\x03" + HELLO_RETRY_RANDOM + b"\x00\x2b\x00\x02\x03\x04"


def _hs(t: int, direction: str, msg_type: int, data: bytes = b"") -> RawEvent:
    return (t, t, direction, 22, msg_type, data or bytes([msg_type, 0, 0, 0]))


def handshake(
    *,
    server_hello_ms: float = 1,
    certificate_ms: float = 1,
    hello_retry: bool = False,
    host: str = "api.test",
    port: int = 443,
    error: BaseException | None = None,
) -> HandshakeSpan:
    """A TLS 1.3 client span whose every phase lasts 1 ms, except those given.

    Phases: client_hello, server_hello, [hello_retry], server_flight,
    certificate, certificate_verify, finished.
    """
    t = 0
    events: list[RawEvent] = [(0, 0, "", ENTER, 0, b"")]
    t += MS
    events.append(_hs(t, "write", 1))
    t += int(server_hello_ms * MS)
    if hello_retry:
        events.append(_hs(t, "read", 2, _HRR))
        events.append(_hs(t, "write", 1))
        t += MS
    events.append(_hs(t, "read", 2, _SH13))
    events.append(_hs(t, "read", 8))
    t += MS
    events.append(_hs(t, "read", 11))
    t += int(certificate_ms * MS)
    events.append(_hs(t, "read", 15))
    t += MS
    events.append(_hs(t, "read", 20))
    t += MS
    events.append(_hs(t, "write", 20))
    events.append((t, t, "", EXIT, 0, b""))
    return build_span(
        events,
        server_side=False,
        end_ns=t,
        server_hostname=host,
        peer=("192.0.2.1", port),
        exc=error,
    )


@dataclass(frozen=True)
class FakeRequestSpan:
    """Stands in for issue 3's request span: only what the collection reads."""

    duration_ns: int
    server_address: str = "api.test"
    outcome: str = "ok"
    span_id: str = "00000000000000ff"
    kind: str = "http.request"
    phases: tuple[Any, ...] = field(default=())


def deliver(span: Any) -> None:
    """Hand ``span`` to every global sink, as a TimedSSLContext does."""
    _delivery.deliver(None, span)
