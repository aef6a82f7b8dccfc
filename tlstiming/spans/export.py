"""Spans as JSON-ready dicts with stable keys (documented in docs/schema.md).

Keys follow the OpenTelemetry semantic conventions where one exists
(``tls.*``, ``server.*``, ``network.peer.*``, ``error.type``); the rest live
under ``tls.*``/``tlstiming.*``. Times are integer nanoseconds; phase and
message times are offsets from the span's start.
"""

from __future__ import annotations

from typing import Any

from tlstiming.spans.handshake import SCHEMA_VERSION, HandshakeSpan, Phase

__all__ = ["handshake_to_dict"]


def handshake_to_dict(span: HandshakeSpan, *, timeline: bool = True) -> dict[str, Any]:
    """Flatten a handshake span; see ``docs/schema.md`` for every key.

    With ``timeline=False`` the per-certificate, per-message and per-record
    lists are ``None`` (log events do without them; they cost most of the time).
    """
    facts = span.facts
    out: dict[str, Any] = {
        "tlstiming.schema": SCHEMA_VERSION,
        "tlstiming.kind": span.kind,
        "span.id": span.span_id,
        "tls.side": span.side,
        "server.address": span.server_hostname or facts.sni,
        "network.peer.address": span.peer[0] if span.peer else None,
        "network.peer.port": span.peer[1] if span.peer else None,
        "start_time_unix_nano": span.start_unix_ns,
        "duration_ns": span.duration_ns,
        "cpu_ns": span.cpu_ns,
        "outcome": span.outcome,
        "tls.established": span.outcome == "ok",
        "tls.protocol.name": "tls" if facts.protocol_version else None,
        "tls.protocol.version": facts.protocol_version,
        "tls.cipher": facts.cipher,
        "tls.curve": facts.group,
        "tls.next_protocol": facts.alpn_selected,
        "tls.alpn.offered": list(facts.alpn_offered),
        "tls.resumed": facts.resumed,
        "tls.resumption_offered": facts.resumption_offered,
        "tls.hello_retry": facts.hello_retry,
        "tls.hello_retry.group": facts.hello_retry_group,
        "tls.round_trips": span.round_trips,
        "tls.sni": facts.sni,
        "tls.client.certificate_requested": facts.client_certificate_requested,
        "tls.client.certificate_sent": facts.client_certificate_sent,
        "tls.ocsp.requested": facts.ocsp_requested,
        "tls.ocsp.stapled": facts.ocsp_stapled,
        "tls.server.certificate_count": facts.certificate_count,
        "tls.server.certificate_bytes": facts.certificate_bytes,
        "tls.server.signature_scheme": facts.signature_scheme,
    }
    out.update(_leaf(span))
    out["tls.server.chain"] = [c.to_dict() for c in facts.certificates] if timeline else None
    out.update(_error(span))
    out["tlstiming.phases"] = [_phase(p, span.start_ns) for p in span.phases]
    if not timeline:
        out["tlstiming.messages"] = out["tlstiming.records"] = None
        return _tail(span, out)
    out["tlstiming.messages"] = [
        {
            "t_ns": m.t_ns - span.start_ns,
            "direction": m.direction,
            "content_type": m.content_type,
            "type": m.type,
            "size": m.size,
            "cpu_ns": m.cpu_ns,
        }
        for m in span.messages
    ]
    out["tlstiming.records"] = [
        {
            "t_ns": r.t_ns - span.start_ns,
            "direction": r.direction,
            "content_type": r.content_type,
            "encrypted": r.encrypted,
            "length": r.length,
        }
        for r in span.records
    ]
    return _tail(span, out)


def _tail(span: HandshakeSpan, out: dict[str, Any]) -> dict[str, Any]:
    out["tlstiming.parse_errors"] = list(span.facts.parse_errors)
    out["tlstiming.verifications"] = [
        {
            "name": v.name,
            "start_ns": v.start_ns - span.start_ns,
            "duration_ns": v.duration_ns,
            "outcome": v.outcome,
            "reason": v.reason,
            "details": dict(v.details),
        }
        for v in span.verifications
    ]
    out.update(_context(span))
    return out


def _context(span: HandshakeSpan) -> dict[str, Any]:
    stats = span.context_stats
    return {
        "tlstiming.context.id": stats.context_id if stats else None,
        "tlstiming.context.build_ns": stats.build_ns if stats else None,
        "tlstiming.context.trust_loads": stats.trust_loads if stats else None,
        "tlstiming.context.trust_load_ns": stats.trust_load_ns if stats else None,
        "tlstiming.context.handshake_index": stats.handshake_index if stats else None,
        "tlstiming.context.trust_loads_since_previous": (
            stats.trust_loads_since_previous if stats else None
        ),
    }


def _leaf(span: HandshakeSpan) -> dict[str, Any]:
    certificates = span.facts.certificates
    if not certificates:
        return {
            "tls.server.subject": None,
            "tls.server.issuer": None,
            "tls.server.not_before": None,
            "tls.server.not_after": None,
            "tls.server.hash.sha256": None,
        }
    leaf = certificates[0]
    return {
        "tls.server.subject": leaf.subject,
        "tls.server.issuer": leaf.issuer,
        "tls.server.not_before": leaf.not_before.isoformat(),
        "tls.server.not_after": leaf.not_after.isoformat(),
        "tls.server.hash.sha256": leaf.sha256.upper(),
    }


def _error(span: HandshakeSpan) -> dict[str, Any]:
    error = span.error
    return {
        "error.type": error.type if error else None,
        "error.message": error.message if error else None,
        "tls.failed_phase": error.phase if error else None,
        "tls.alert": error.alert if error else None,
        "tls.alert.source": error.alert_source if error else None,
        "tls.error.reason": error.reason if error else None,
        "tls.error.verify_code": error.verify_code if error else None,
    }


def _phase(phase: Phase, origin: int) -> dict[str, Any]:
    return {
        "name": phase.name,
        "start_ns": phase.start_ns - origin,
        "duration_ns": phase.duration_ns,
        "cpu_ns": phase.cpu_ns,
    }
