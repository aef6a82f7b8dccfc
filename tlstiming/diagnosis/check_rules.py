"""Handshake rules: revocation checks, verifiers and the trust store's cost."""

from __future__ import annotations

from typing import Any, Final

from tlstiming.diagnosis.rules import THRESHOLDS, Context, Hit, Rule, handshake_rule, ms
from tlstiming.diagnosis.x509 import cert_facts
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["RULES"]


# -- revocation and verifiers -------------------------------------------------------------


def _ocsp_not_stapled(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    if (
        span.side != "client"
        or not facts.ocsp_requested
        or facts.ocsp_stapled
        or not facts.certificates_der
    ):
        return None
    leaf = cert_facts(facts.certificates_der[0])
    if not leaf.ocsp_urls or leaf.must_staple:
        return None
    return Hit({"responder": leaf.ocsp_urls[0]})


def _must_staple(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    if (
        span.side != "client"
        or not facts.ocsp_requested
        or facts.ocsp_stapled
        or not facts.certificates_der
    ):
        return None
    if not cert_facts(facts.certificates_der[0]).must_staple:
        return None
    return Hit({"must_staple": True, "stapled": False})


def _revocation_checks(span: HandshakeSpan) -> list[Any]:
    return [v for v in span.verifications if v.name.startswith(("ocsp", "crl"))]


def _ocsp_slow(span: HandshakeSpan, ctx: Context) -> Hit | None:
    slow = [v for v in _revocation_checks(span) if v.duration_ns > THRESHOLDS["ocsp_slow_ms"] * 1e6]
    if not slow:
        return None
    worst = max(slow, key=lambda v: v.duration_ns)
    details = dict(worst.details)
    return Hit(
        {
            "verifier": worst.name,
            "duration_ms": ms(worst.duration_ns),
            "source": details.get("source"),
            "responder": details.get("responder") or details.get("url"),
        }
    )


def _ocsp_unavailable(span: HandshakeSpan, ctx: Context) -> Hit | None:
    failed = [
        v for v in _revocation_checks(span) if v.outcome in ("soft_failed", "timeout", "error")
    ]
    if not failed:
        return None
    first = failed[0]
    details = dict(first.details)
    return Hit(
        {
            "verifier": first.name,
            "outcome": first.outcome,
            "reason": first.reason,
            "duration_ms": ms(first.duration_ns),
            "responder": details.get("responder") or details.get("url"),
        },
        severity="error" if first.outcome != "soft_failed" and span.outcome == "error" else None,
    )


def _verifier_slow(span: HandshakeSpan, ctx: Context) -> Hit | None:
    slow = [v for v in span.verifications if v.duration_ns > THRESHOLDS["verifier_slow_ms"] * 1e6]
    if not slow:
        return None
    worst = max(slow, key=lambda v: v.duration_ns)
    return Hit(
        {
            "verifier": worst.name,
            "duration_ms": ms(worst.duration_ns),
            "share_of_handshake": round(worst.duration_ns / max(span.duration_ns, 1), 3),
            "outcome": worst.outcome,
        }
    )


def _trust_per_connection(span: HandshakeSpan, ctx: Context) -> Hit | None:
    stats = span.context_stats
    if stats is None or stats.handshake_index < 2 or stats.trust_loads_since_previous < 1:
        return None
    per_load = stats.trust_load_ns / max(stats.trust_loads, 1)
    return Hit(
        {
            "loads_for_this_connection": stats.trust_loads_since_previous,
            "load_ms": ms(per_load * stats.trust_loads_since_previous),
            "handshake_ms": ms(span.duration_ns),
            "context_id": stats.context_id,
        }
    )


RULES: Final[tuple[Rule, ...]] = (
    handshake_rule(
        "tls.ocsp_not_stapled",
        "info",
        "a staple was requested but none came, although the certificate names an OCSP "
        "responder ({responder})",
        "server: enable OCSP stapling, so clients need not ask the responder themselves",
        "server",
        _ocsp_not_stapled,
    ),
    handshake_rule(
        "tls.ocsp_must_staple_missing",
        "error",
        "the certificate is marked must-staple but the server sent no staple",
        "server: enable OCSP stapling (and keep a fresh response cached)",
        "server",
        _must_staple,
    ),
    handshake_rule(
        "tls.ocsp_slow",
        "warning",
        "checking revocation took {duration_ms} ms ({verifier}, source {source})",
        "client: cache answers (refresh_ahead), use a short timeout; server: staple",
        "client, ca",
        _ocsp_slow,
    ),
    handshake_rule(
        "tls.ocsp_unavailable",
        "warning",
        "the revocation status could not be established ({verifier}: {outcome}, {reason})",
        "CA: the responder was slow or down; client: keep the hard timeout, decide "
        "soft- or hard-fail deliberately; server: staple",
        "ca, client",
        _ocsp_unavailable,
    ),
    handshake_rule(
        "tls.trust_store_per_connection",
        "warning",
        "a CA bundle was loaded for this connection ({load_ms} ms, against a {handshake_ms} ms "
        "handshake)",
        "client: load the trust store once and reuse the context (requests/urllib3 reload "
        "verify= paths per connection: pass an ssl_context instead)",
        "client",
        _trust_per_connection,
    ),
    handshake_rule(
        "tls.verifier_slow",
        "warning",
        "verifier {verifier} took {duration_ms} ms ({share_of_handshake} of the handshake)",
        "client: make the verifier cheaper or cache its answers; it runs before the caller "
        "gets the connection",
        "client",
        _verifier_slow,
    ),
)
"""Rules over checks run around the handshake, in the order findings are reported."""
