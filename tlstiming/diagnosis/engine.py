"""diagnose(): run the rule tables over a span or spans, and name what they find."""

from __future__ import annotations

import logging
import string
from collections.abc import Iterable, Mapping
from typing import Any

from tlstiming.diagnosis import certificate_rules, check_rules, tls_rules
from tlstiming.diagnosis.finding import Finding, evidence_of, severity_rank
from tlstiming.diagnosis.http_rules import COLLECTION_RULES, REQUEST_RULES, rtt_of
from tlstiming.diagnosis.rules import Context, Hit, Rule
from tlstiming.spans.escape import escape
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["RULES", "diagnose", "worst"]

HANDSHAKE_RULES: tuple[Rule, ...] = (*tls_rules.RULES, *certificate_rules.RULES, *check_rules.RULES)
"""The rules over one handshake span."""

RULES: tuple[Rule, ...] = (*HANDSHAKE_RULES, *REQUEST_RULES, *COLLECTION_RULES)
"""Every rule, one row per finding id and scope (docs/diagnosis.md has one section each)."""

_log = logging.getLogger("tlstiming")


def diagnose(target: Any, *, rtt_ns: int | None = None) -> tuple[Finding, ...]:
    """Name the causes of a slow or failing handshake or request.

    Args:
        target: a :class:`~tlstiming.HandshakeSpan`, a request span, or an
            iterable of them (then the collection rules run too: no
            resumption, a context per connection).
        rtt_ns: the network round trip, if known, for handshake spans that
            carry no connect time of their own.

    Returns:
        The findings, worst first (rule order within a severity).

    Raises:
        TypeError: ``target`` is neither a span nor an iterable of spans.
    """
    spans = _spans(target)
    found: list[Finding] = []
    handshakes: list[HandshakeSpan] = []
    for span in spans:
        if isinstance(span, HandshakeSpan):
            handshakes.append(span)
            found += _run(HANDSHAKE_RULES, span, Context(rtt_ns=rtt_ns))
        else:
            found += _run(REQUEST_RULES, span, Context())
            handshake = span.handshake
            if handshake is not None:
                handshakes.append(handshake)
                found += _run(HANDSHAKE_RULES, handshake, Context(rtt_ns=rtt_of(span)))
    if len(handshakes) > 1:
        for rule in COLLECTION_RULES:
            for hit in _safely(rule, handshakes, Context()) or ():
                found.append(_finding(rule, hit, tuple(s.span_id for s in handshakes)))
    return tuple(sorted(_unique(found), key=lambda f: -severity_rank(f.severity)))


def worst(findings: Iterable[Finding]) -> str | None:
    """The highest severity among ``findings``, or ``None`` if there are none."""
    ranks = [severity_rank(f.severity) for f in findings]
    return ("info", "warning", "error")[max(ranks)] if ranks else None


def _spans(target: Any) -> list[Any]:
    if isinstance(target, HandshakeSpan) or getattr(target, "kind", None) == "http.request":
        return [target]
    if isinstance(target, (str, bytes, Mapping)) or not isinstance(target, Iterable):
        raise TypeError(f"diagnose() takes a span or spans, not {type(target).__name__}")
    spans = list(target)
    for span in spans:
        if not isinstance(span, HandshakeSpan) and getattr(span, "kind", None) != "http.request":
            raise TypeError(f"diagnose() takes spans, not {type(span).__name__}")
    return spans


def _run(rules: tuple[Rule, ...], span: Any, ctx: Context) -> list[Finding]:
    out = []
    for rule in rules:
        hit = _safely(rule, span, ctx)
        if isinstance(hit, Hit):
            out.append(_finding(rule, hit, (span.span_id,)))
    return out


def _safely(rule: Rule, subject: Any, ctx: Context) -> Any:
    try:
        return rule.check(subject, ctx)
    except Exception:  # a rule's bug costs its finding, never the caller's report
        _log.exception("tlstiming: diagnosis rule %s failed", rule.id)
        return None


def _finding(rule: Rule, hit: Hit, span_ids: tuple[str, ...]) -> Finding:
    evidence = evidence_of(hit.evidence)
    return Finding(
        id=rule.id,
        severity=hit.severity or rule.severity,
        title=_fill(hit.title or rule.title, evidence),
        evidence=evidence,
        hint=_fill(hit.hint or rule.hint, evidence),
        side=rule.side,
        span_ids=span_ids,
    )


class _Shown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def _fill(template: str, evidence: tuple[tuple[str, Any], ...]) -> str:
    """Fill ``{name}`` fields for people: peer text escaped, tuples joined, None as none."""
    shown = _Shown()
    for key, value in evidence:
        if isinstance(value, tuple):
            text = ", ".join(value) or "nothing"
        else:
            text = "none" if value is None else str(value)
        shown[key] = escape(text)
    return string.Formatter().vformat(template, (), shown)


def _unique(found: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out = []
    for finding in found:
        key = (finding.id, finding.span_ids)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out
