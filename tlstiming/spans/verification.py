"""One verifier's run, as a span records it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Detail", "Outcome", "Verification"]

Detail = str | int | float | bool | None
Outcome = Literal["accepted", "soft_failed", "rejected", "error", "timeout"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """One verifier's run, as recorded on the span.

    Attributes:
        name: the verifier's name (its phase is ``verify:<name>``).
        start_ns: start, ``perf_counter_ns`` clock.
        end_ns: end.
        outcome: ``accepted``, ``soft_failed``, ``rejected``, ``error`` (it
            raised: see ``reason``) or ``timeout`` (it overran its timeout).
        reason: why, for anything but ``accepted``.
        details: the verifier's own facts, as ``(key, value)`` pairs.
    """

    name: str
    start_ns: int
    end_ns: int
    outcome: Outcome
    reason: str | None
    details: tuple[tuple[str, Detail], ...] = ()

    @property
    def duration_ns(self) -> int:
        """Wall time of the verifier."""
        return self.end_ns - self.start_ns
