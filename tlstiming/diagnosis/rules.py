"""Rules as data: each finding is one row (id, severity, title, hint, side, check).

A check reads a span (or a group of spans) and returns the evidence it found,
as a :class:`Hit`, or ``None``. Checks are pure: no I/O, no clock (the span's
own start time is "now" for certificate dates), no ``ssl`` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from tlstiming.diagnosis.finding import Severity

__all__ = ["THRESHOLDS", "Context", "Hit", "Rule", "Scope", "endpoint", "handshake_rule", "ms"]

Scope = Literal["handshake", "request", "collection"]

THRESHOLDS: Final[Mapping[str, float]] = {
    "initial_window_bytes": 14_600,  # RFC 6928: 10 segments of 1,460 bytes
    "chain_verify_cpu_ms": 5.0,
    "expiring_warning_days": 14,
    "expiring_info_days": 30,
    "first_flight_excess_ms": 50.0,
    "first_flight_rtt_factor": 3.0,
    "client_cpu_share": 0.5,
    "client_cpu_ms": 20.0,
    "ocsp_slow_ms": 100.0,
    "verifier_slow_ms": 50.0,
    "dns_slow_ms": 100.0,
    "connect_rtt_factor": 3.0,
    "connect_slow_ms": 200.0,
    "pool_wait_ms": 10.0,
    "first_byte_slow_ms": 500.0,
}
"""Every threshold a rule uses, by name; docs/diagnosis.md gives each one's reason."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule may know beside the span itself.

    Attributes:
        rtt_ns: the network round trip, estimated from the TCP connect of the
            same connection (request spans, ``tlstiming probe``), if known.
    """

    rtt_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """What a check found: its evidence, and optionally a severity or text for this case."""

    evidence: Mapping[str, Any]
    severity: Severity | None = None
    title: str | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One finding's rule.

    Attributes:
        id: the finding's stable id.
        severity: its severity (a hit may raise or lower it).
        scope: ``handshake`` (one HandshakeSpan), ``request`` (one request
            span) or ``collection`` (spans to one endpoint, together).
        title: one line; ``{name}`` fields are filled from the evidence.
        hint: what to change; ``{name}`` fields are filled from the evidence.
        side: ``client``, ``server``, ``network``, ``ca``, or two of them.
        check: the predicate, returning a :class:`Hit` or ``None``.
    """

    id: str
    severity: Severity
    scope: Scope
    title: str
    hint: str
    side: str
    check: Callable[..., Hit | None] = field(repr=False)


def ms(ns: float | None) -> float | None:
    """Nanoseconds to milliseconds, rounded for people (``None`` stays ``None``)."""
    return None if ns is None else round(ns / 1e6, 3)


def handshake_rule(
    id: str, severity: Severity, title: str, hint: str, side: str, check: Callable[..., Hit | None]
) -> Rule:
    """A row of a handshake rule table (the tables stay readable, one call per rule)."""
    return Rule(
        id=id, severity=severity, scope="handshake", title=title, hint=hint, side=side, check=check
    )


def endpoint(address: str, port: int | None) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:443``)."""
    host = f"[{address}]" if ":" in address else address
    return host if port is None else f"{host}:{port}"
