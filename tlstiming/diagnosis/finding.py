"""A finding: one named cause, with the numbers it rests on and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["SEVERITIES", "Evidence", "Finding", "Severity", "severity_rank"]

Severity = Literal["info", "warning", "error"]
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "error")

EvidenceValue = str | int | float | bool | None | tuple[str, ...]
Evidence = tuple[tuple[str, EvidenceValue], ...]

DOCS: Final = "docs/diagnosis.md"


def severity_rank(severity: str) -> int:
    """``info`` 0, ``warning`` 1, ``error`` 2.

    Raises:
        ValueError: for any other name.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    return SEVERITIES.index(severity)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One cause found in a span (or in several), in words and numbers.

    Attributes:
        id: stable dotted name (``tls.hello_retry``); one section of
            ``docs/diagnosis.md`` each.
        severity: ``info``, ``warning`` or ``error``.
        title: what was found, in one line.
        evidence: the numbers and names it rests on, each read from the
            span(s): ``(name, value)`` pairs, milliseconds as ``*_ms``.
        hint: what to change.
        side: where to change it: ``client``, ``server``, ``network``, ``ca``
            (or two of them, comma-separated).
        span_ids: the span(s) it is about.
    """

    id: str
    severity: Severity
    title: str
    evidence: Evidence
    hint: str
    side: str
    span_ids: tuple[str, ...] = ()

    @property
    def docs(self) -> str:
        """Where the rule, its threshold and its reason are written down."""
        return f"{DOCS}#{self.id.replace('.', '')}"

    def get(self, name: str, default: Any = None) -> Any:
        """The value of one piece of evidence."""
        return dict(self.evidence).get(name, default)

    def evidence_text(self) -> str:
        """``name=value, ...`` for people: lists joined with commas, peer text escaped."""
        from tlstiming.spans.escape import escape  # noqa: PLC0415

        def shown(value: EvidenceValue) -> str:
            if isinstance(value, tuple):
                return ",".join(value) or "-"
            return "-" if value is None else str(value)

        return ", ".join(f"{key}={escape(shown(value))}" for key, value in self.evidence)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, evidence as an object, and the docs anchor."""
        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "evidence": {k: list(v) if isinstance(v, tuple) else v for k, v in self.evidence},
            "hint": self.hint,
            "side": self.side,
            "docs": self.docs,
            "span_ids": list(self.span_ids),
        }


def evidence_of(values: Mapping[str, Any]) -> Evidence:
    """Evidence from a mapping: floats rounded for people, sequences as tuples of str."""
    return tuple((key, _value(value)) for key, value in values.items())


def _value(value: Any) -> EvidenceValue:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, (list, tuple, frozenset, set)):
        return tuple(str(v) for v in value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
