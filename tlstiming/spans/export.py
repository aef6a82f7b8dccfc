"""Handshake spans' export: the table both forms are built from (keys in docs/schema.md).

Keys follow the OpenTelemetry semantic conventions where one exists
(``tls.*``, ``server.*``, ``network.peer.*``, ``error.type``); the rest live
under ``tls.*``/``tlstiming.*``. Times are integer nanoseconds; phase and
message times are offsets from the span's start. :data:`HANDSHAKE` gives
``to_dict()`` (:func:`handshake_to_dict`) and the flat log fields
(``HANDSHAKE.flat(span)``) alike; see :mod:`tlstiming.spans.fields`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from tlstiming.spans.fields import Field, Table, of
from tlstiming.spans.handshake import SCHEMA_VERSION, HandshakeSpan

if TYPE_CHECKING:
    from tlstiming._analysis.certs import CertificateInfo

__all__ = ["HANDSHAKE", "Parts", "handshake_to_dict"]


def handshake_to_dict(span: HandshakeSpan, *, timeline: bool = True) -> dict[str, Any]:
    """Export a handshake span; see ``docs/schema.md`` for every key.

    With ``timeline=False`` the per-certificate, per-message and per-record
    lists are ``None`` (log events do without them; they cost most of the time).
    """
    return HANDSHAKE.nested(span, timeline=timeline)


class Parts:
    """What the rows read: the span, and its computed parts looked up once per export."""

    __slots__ = ("error", "facts", "leaf", "span", "stats")

    def __init__(self, span: HandshakeSpan) -> None:
        self.span = span
        self.facts = facts = span.facts
        self.leaf = facts.certificates[0] if facts.certificates else None
        self.error = span.error
        self.stats = span.context_stats


def _peer(i: int) -> Any:
    return lambda p: None if p.span.peer is None else p.span.peer[i]


def _server_port(p: Parts) -> int | None:
    """The flat ``server.port``: the peer's port, on the client side."""
    peer = p.span.peer
    return peer[1] if peer is not None and p.span.side == "client" else None


def _leaf(read: Callable[[CertificateInfo], Any]) -> Callable[[Parts], Any]:
    return lambda p: None if p.leaf is None else read(p.leaf)


def _chain(p: Parts) -> list[dict[str, object]]:
    return [c.to_dict() for c in p.facts.certificates]


def _messages(p: Parts) -> list[dict[str, Any]]:
    origin = p.span.start_ns
    return [
        {
            "t_ns": m.t_ns - origin,
            "direction": m.direction,
            "content_type": m.content_type,
            "type": m.type,
            "size": m.size,
            "cpu_ns": m.cpu_ns,
        }
        for m in p.span.messages
    ]


def _records(p: Parts) -> list[dict[str, Any]]:
    origin = p.span.start_ns
    return [
        {
            "t_ns": r.t_ns - origin,
            "direction": r.direction,
            "content_type": r.content_type,
            "encrypted": r.encrypted,
            "length": r.length,
        }
        for r in p.span.records
    ]


HANDSHAKE: Final[Table[HandshakeSpan, Parts]] = Table(
    "tls.handshake",
    Parts,
    [
        Field("tlstiming.schema", "nested", lambda _span: SCHEMA_VERSION),
        Field("tlstiming.kind", "value", of("span.kind")),
        Field("span.id", "value", of("span.span_id")),
        Field("tls.side", "value", of("span.side")),
        Field("server.address", "value", lambda p: p.span.server_hostname or p.facts.sni),
        Field("server.port", "flat", _server_port),
        Field("network.peer.address", "value", _peer(0)),
        Field("network.peer.port", "value", _peer(1)),
        Field("start_time_unix_nano", "value", of("span.start_unix_ns")),
        Field("duration_ns", "ns", of("span.duration_ns")),
        Field("cpu_ns", "ns", of("span.cpu_ns")),
        Field("outcome", "value", of("span.outcome")),
        Field("tls.established", "value", lambda p: p.span.outcome == "ok"),
        Field("tls.protocol.name", "value", lambda p: "tls" if p.facts.protocol_version else None),
        Field("tls.protocol.version", "value", of("facts.protocol_version")),
        Field("tls.cipher", "value", of("facts.cipher")),
        Field("tls.curve", "value", of("facts.group")),
        Field("tls.next_protocol", "value", of("facts.alpn_selected")),
        Field("tls.alpn.offered", "strings", of("facts.alpn_offered")),
        Field("tls.resumed", "value", of("facts.resumed")),
        Field("tls.resumption_offered", "value", of("facts.resumption_offered")),
        Field("tls.hello_retry", "value", of("facts.hello_retry")),
        Field("tls.hello_retry.group", "value", of("facts.hello_retry_group")),
        Field("tls.round_trips", "value", of("span.round_trips")),
        Field("tls.sni", "value", of("facts.sni")),
        Field(
            "tls.client.certificate_requested", "value", of("facts.client_certificate_requested")
        ),
        Field("tls.client.certificate_sent", "value", of("facts.client_certificate_sent")),
        Field("tls.ocsp.requested", "value", of("facts.ocsp_requested")),
        Field("tls.ocsp.stapled", "value", of("facts.ocsp_stapled")),
        Field("tls.chain.verify_ns", "ns", of("facts.chain_verification", "duration_ns")),
        Field("tls.chain.verify_cpu_ns", "ns", of("facts.chain_verification", "cpu_ns")),
        Field("tls.chain.verified", "value", of("facts.chain_verification", "ok")),
        Field("tls.chain.length", "value", of("facts.chain_verification", "chain_length")),
        Field("tls.server.certificate_count", "value", of("facts.certificate_count")),
        Field("tls.server.certificate_bytes", "value", of("facts.certificate_bytes")),
        Field("tls.server.signature_scheme", "value", of("facts.signature_scheme")),
        Field("tls.server.subject", "value", of("leaf", "subject")),
        Field("tls.server.issuer", "value", of("leaf", "issuer")),
        Field("tls.server.not_before", "value", _leaf(lambda c: c.not_before.isoformat())),
        Field("tls.server.not_after", "value", _leaf(lambda c: c.not_after.isoformat())),
        Field("tls.server.hash.sha256", "value", _leaf(lambda c: c.sha256.upper())),
        Field("tls.server.chain", "objects", _chain),
        Field("error.type", "value", of("error", "type")),
        Field("error.message", "value", of("error", "message")),
        Field("tls.failed_phase", "value", of("error", "phase")),
        Field("tls.alert", "value", of("error", "alert")),
        Field("tls.alert.source", "value", of("error", "alert_source")),
        Field("tls.error.reason", "value", of("error", "reason")),
        Field("tls.error.verify_code", "value", of("error", "verify_code")),
        Field("tlstiming.phases", "phases", of("span.phases")),
        Field("tlstiming.messages", "objects", _messages),
        Field("tlstiming.records", "objects", _records),
        Field("tlstiming.parse_errors", "strings", of("facts.parse_errors")),
        Field("tlstiming.verifications", "verifications", of("span.verifications")),
        Field("tlstiming.context.id", "value", of("stats", "context_id")),
        Field("tlstiming.context.build_ns", "ns", of("stats", "build_ns")),
        Field("tlstiming.context.trust_loads", "value", of("stats", "trust_loads")),
        Field("tlstiming.context.trust_load_ns", "ns", of("stats", "trust_load_ns")),
        Field("tlstiming.context.handshake_index", "value", of("stats", "handshake_index")),
        Field(
            "tlstiming.context.trust_loads_since_previous",
            "value",
            of("stats", "trust_loads_since_previous"),
        ),
    ],
)
"""Every key of a handshake span, in ``to_dict()`` order (docs/schema.md)."""
