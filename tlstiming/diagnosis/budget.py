"""Handshake budgets: limits on spans, checked without I/O or clocks (pure).

A :class:`Budget` holds per-span limits (total, per phase, round trips,
negotiated facts) and limits on percentiles across spans. :func:`check`
returns every violation; :func:`failure_message` renders them with each
offending span's waterfall.
"""

from __future__ import annotations

import fnmatch
import math
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal

from tlstiming.spans.escape import escape
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.render import waterfall

__all__ = [
    "FACT_CHECKS",
    "OCSP_PHASES",
    "OCSP_STALL_MS",
    "Budget",
    "Violation",
    "check",
    "failure_message",
    "host_of",
    "percentile",
]

OCSP_STALL_MS: Final = 1.0
"""``no_ocsp_stall``: the most time a span may spend in :data:`OCSP_PHASES`."""
OCSP_PHASES: Final = ("ocsp*", "verify:ocsp*")
"""Phase-name patterns that count as OCSP work (verifier phases are ``verify:<name>``)."""

_TLS_VERSIONS: Final = ("1.0", "1.1", "1.2", "1.3")
_SHOWN: Final = 5  # spans whose waterfall a failure message prints


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Limits for handshake spans. ``None`` (or empty) means "not checked".

    Attributes:
        total_ms: each span's total duration.
        phases: phase name (or ``fnmatch`` pattern, summed) to its limit in ms.
        p50_ms: the median duration across the spans checked together.
        p95_ms: the 95th percentile (nearest rank) across them.
        p99_ms: the 99th percentile (nearest rank) across them.
        max_round_trips: each span's :attr:`HandshakeSpan.round_trips`.
        alpn: the protocol ALPN must have selected (``"h2"``).
        resumed: whether each handshake must (not) be resumed.
        min_tls: the lowest acceptable TLS version, ``"1.2"`` or ``"1.3"``.
        no_ocsp_stall: no more than :data:`OCSP_STALL_MS` in OCSP phases
            (:data:`OCSP_PHASES`: ``ocsp*`` and ``verify:ocsp*``).
        outcome: ``"ok"`` or ``"error"``, when the outcome itself is expected.
    """

    total_ms: float | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_round_trips: int | None = None
    alpn: str | None = None
    resumed: bool | None = None
    min_tls: str | None = None
    no_ocsp_stall: bool = False
    outcome: Literal["ok", "error"] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "phases", types.MappingProxyType(dict(self.phases)))
        limits = [self.total_ms, self.p50_ms, self.p95_ms, self.p99_ms, self.max_round_trips]
        if any(v is not None and v < 0 for v in [*limits, *self.phases.values()]):
            raise ValueError(f"budgets must not be negative: {self}")
        if self.min_tls is not None and self.min_tls not in _TLS_VERSIONS:
            raise ValueError(f"min_tls must be one of {_TLS_VERSIONS}, not {self.min_tls!r}")
        if self.outcome not in (None, "ok", "error"):
            raise ValueError(f"outcome must be 'ok' or 'error', not {self.outcome!r}")

    def __str__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in (None, False) and not (f.name == "phases" and not value):
                parts.append(f"{f.name}={dict(value) if f.name == 'phases' else value!r}")
        return "Budget(" + ", ".join(parts) + ")"

    @property
    def needs_handshake(self) -> bool:
        """Whether a limit reads handshake facts (only a HandshakeSpan has them)."""
        return any(getattr(self, name) not in (None, False) for name, _ in FACT_CHECKS)


@dataclass(frozen=True, slots=True)
class Violation:
    """One limit a span (or a percentile, then ``span`` is the one at that rank) broke."""

    span: Any
    index: int
    text: str


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values`` (no interpolation).

    Raises:
        ValueError: if ``values`` is empty or ``q`` is not in ``(0, 100]``.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], not {q!r}")
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


def host_of(span: Any) -> str | None:
    """The host a span talked to (its SNI name, else the peer address), or ``None``."""
    if isinstance(span, HandshakeSpan):
        if span.server_hostname:
            return span.server_hostname
        return span.facts.sni or (span.peer[0] if span.peer else None)
    for name in ("server_hostname", "server_address", "host"):
        value = getattr(span, name, None)
        if isinstance(value, str) and value:
            return value
    to_dict = getattr(span, "to_dict", None)
    address = to_dict().get("server.address") if callable(to_dict) else None
    return address if isinstance(address, str) else None


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


def _phase_ms(span: Any, *patterns: str) -> float:
    phases = getattr(span, "phases", ())
    total: int = sum(
        p.duration_ns for p in phases if any(fnmatch.fnmatchcase(p.name, x) for x in patterns)
    )
    return total / 1e6


def _tls_rank(version: str | None) -> int:
    return _TLS_VERSIONS.index(version) if version in _TLS_VERSIONS else -1


def _round_trips(span: HandshakeSpan, limit: int) -> str | None:
    if span.round_trips > limit:
        return f"round trips: {span.round_trips} > budget {limit}"
    return None


def _alpn(span: HandshakeSpan, expected: str) -> str | None:
    facts = span.facts
    if facts.alpn_selected == expected:
        return None
    offered = ",".join(map(escape, facts.alpn_offered)) or "nothing"
    return f"alpn: {facts.alpn_selected!r} selected (offered {offered}), expected {expected!r}"


def _resumed(span: HandshakeSpan, expected: bool) -> str | None:
    if span.facts.resumed == expected:
        return None
    return f"resumed: {span.facts.resumed}, expected {expected}"


def _min_tls(span: HandshakeSpan, minimum: str) -> str | None:
    version = span.facts.protocol_version
    if _tls_rank(version) >= _tls_rank(minimum):
        return None
    return f"tls: {escape(version or 'unknown')} < minimum {minimum}"


def _ocsp_stall(span: HandshakeSpan, on: bool) -> str | None:
    stall = _phase_ms(span, *OCSP_PHASES)
    if not on or stall <= OCSP_STALL_MS:
        return None
    return f"ocsp stall: {stall:.3f} ms in OCSP phases > budget {OCSP_STALL_MS:.3f} ms"


FACT_CHECKS: Final[tuple[tuple[str, Callable[[HandshakeSpan, Any], str | None]], ...]] = (
    ("max_round_trips", _round_trips),
    ("alpn", _alpn),
    ("resumed", _resumed),
    ("min_tls", _min_tls),
    ("no_ocsp_stall", _ocsp_stall),
)
"""The limits that read handshake facts: a :class:`Budget` field and its check, one row each.

A new fact limit is a field on :class:`Budget` and one row here.
"""


def _fact_problems(span: HandshakeSpan, budget: Budget) -> Iterable[str]:
    for name, check in FACT_CHECKS:
        limit = getattr(budget, name)
        if limit is not None and limit is not False:
            problem = check(span, limit)
            if problem is not None:
                yield problem


def _problems(span: Any, budget: Budget) -> Iterable[str]:
    if budget.outcome is not None and span.outcome != budget.outcome:
        error = getattr(span, "error", None)
        detail = ""
        if error is not None:
            detail = f" ({escape(error.type)} in phase {escape(str(error.phase))})"
        yield f"outcome: {span.outcome}{detail}, expected {budget.outcome}"
    if budget.total_ms is not None and span.duration_ns / 1e6 > budget.total_ms:
        yield f"total: {_ms(span.duration_ns)} > budget {budget.total_ms:.3f} ms"
    for pattern, limit in budget.phases.items():
        if (measured := _phase_ms(span, pattern)) > limit:
            yield f"phase {escape(pattern)}: {measured:.3f} ms > budget {limit:.3f} ms"
    if budget.needs_handshake:
        if not isinstance(span, HandshakeSpan):
            raise TypeError(
                f"{budget} checks handshake facts, but {span!r} is a {span.kind!r} span: "
                "select handshake spans (spans.handshakes) first"
            )
        yield from _fact_problems(span, budget)


def check(spans: Sequence[Any], budget: Budget) -> list[Violation]:
    """Every limit of ``budget`` that ``spans`` break, in span order, then percentiles.

    Raises:
        TypeError: if a fact limit is applied to a span that is not a HandshakeSpan.
    """
    found = [Violation(s, i, text) for i, s in enumerate(spans) for text in _problems(s, budget)]
    durations = [s.duration_ns for s in spans]
    for q, limit in ((50, budget.p50_ms), (95, budget.p95_ms), (99, budget.p99_ms)):
        if limit is None or not durations:
            continue
        value = percentile(durations, q)
        if value / 1e6 > limit:
            index = durations.index(value)
            text = f"p{q} over {len(spans)} spans: {_ms(value)} > budget {limit:.3f} ms"
            found.append(Violation(spans[index], index, text))
    return found


def _render(span: Any) -> str:
    if isinstance(span, HandshakeSpan):
        return waterfall(span)
    phases = ", ".join(
        f"{escape(p.name)} {_ms(p.duration_ns)}" for p in getattr(span, "phases", ())
    )
    return f"{span!r} [{phases}]"


def failure_message(spans: Sequence[Any], budget: Budget, violations: list[Violation]) -> str:
    """A readable report: which span, which limit, budget vs measured, and its waterfall."""
    offenders = sorted({v.index for v in violations})
    head = f"{budget} not met by {len(offenders)} of {len(spans)} span(s)"
    lines = [head]
    for index in offenders[:_SHOWN]:
        span = spans[index]
        lines.append(f"span {index + 1}/{len(spans)} {span!r}:")
        lines += [f"  {v.text}" for v in violations if v.index == index]
        lines += ["    " + line for line in _render(span).splitlines()]
    if len(offenders) > _SHOWN:
        lines.append(f"... and {len(offenders) - _SHOWN} more span(s) over budget")
    lines += findings_lines([spans[i] for i in offenders])
    return "\n".join(lines)


def findings_lines(spans: Sequence[Any]) -> list[str]:
    """What the findings say about ``spans``, worst first: the why behind a broken budget."""
    from tlstiming.diagnosis.engine import diagnose  # noqa: PLC0415 (engine imports budget's neighbours)

    findings = diagnose(spans) if spans else ()
    if not findings:
        return []
    lines = ["findings (docs/diagnosis.md):"]
    for finding in findings:
        lines.append(f"  [{finding.severity}] {finding.id}: {finding.title}")
        lines.append(f"      fix: {finding.hint}")
    return lines
