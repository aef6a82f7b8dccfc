"""Rules over spans: findings that name the cause of a slow or failing handshake, and budgets.

:func:`diagnose` runs the rule tables (:data:`RULES`) over a span or spans and
returns :class:`Finding` values; ``docs/diagnosis.md`` documents every rule.
"""

from __future__ import annotations

from tlstiming.diagnosis.engine import RULES, diagnose, worst
from tlstiming.diagnosis.finding import SEVERITIES, Finding, Severity, severity_rank
from tlstiming.diagnosis.rules import THRESHOLDS, Rule

__all__ = [
    "RULES",
    "SEVERITIES",
    "THRESHOLDS",
    "Finding",
    "Rule",
    "Severity",
    "diagnose",
    "severity_rank",
    "worst",
]
