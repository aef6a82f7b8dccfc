"""Request spans' export: the table both forms are built from (docs/schema.md, "Request span keys").

OpenTelemetry HTTP semantic-convention names where one exists
(``http.request.method``, ``url.full``, ``server.*``, ``network.*``,
``http.response.status_code``, ``error.type``); the rest under
``tlstiming.*``. The handshake that opened the connection is nested whole
under ``tlstiming.handshake`` (its own ``to_dict()``; in the flat form its
fields join the request's), and named by id under
``tlstiming.connection.handshake_id`` even when the connection was reused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from tlstiming.spans.export import HANDSHAKE
from tlstiming.spans.fields import Field, Table, of
from tlstiming.spans.handshake import SCHEMA_VERSION
from tlstiming.spans.request import ConnectionInfo, RequestSpan

__all__ = ["REQUEST", "Parts", "request_to_dict"]


def request_to_dict(span: RequestSpan) -> dict[str, Any]:
    """Export a request span; see ``docs/schema.md`` for every key."""
    return REQUEST.nested(span)


class Parts:
    """What the rows read: the span, its connection and its error, each looked up once."""

    __slots__ = ("connection", "error", "span")

    def __init__(self, span: RequestSpan) -> None:
        self.span = span
        self.connection = span.connection
        self.error = span.error


def _peer(i: int) -> Callable[[Parts], Any]:
    def get(p: Parts) -> Any:
        peer = None if p.connection is None else p.connection.peer
        return None if peer is None else peer[i]

    return get


def _proxied(p: Parts) -> bool:
    return p.connection is not None and p.connection.proxied


def _opened(read: Callable[[RequestSpan, ConnectionInfo], Any]) -> Callable[[Parts], Any]:
    """What only the request that opened its connection reports (else empty)."""

    def get(p: Parts) -> Any:
        return [] if p.connection is None or p.span.reused else read(p.span, p.connection)

    return get


def _attempts(span: RequestSpan, connection: ConnectionInfo) -> list[dict[str, Any]]:
    return [
        {
            "address": a.address,
            "port": a.port,
            "start_ns": a.start_ns - span.start_ns,
            "duration_ns": a.duration_ns,
            "error.type": a.error_type,
            "error.message": a.error_message,
        }
        for a in connection.attempts
    ]


REQUEST: Final[Table[RequestSpan, Parts]] = Table(
    "http.request",
    Parts,
    [
        Field("tlstiming.schema", "nested", lambda _span: SCHEMA_VERSION),
        Field("tlstiming.kind", "value", of("span.kind")),
        Field("span.id", "value", of("span.span_id")),
        Field("http.request.method", "value", of("span.method")),
        Field("url.full", "url", of("span.url")),
        Field("server.address", "value", of("span.server_address")),
        Field("server.port", "value", of("span.server_port")),
        Field("network.protocol.name", "value", lambda _span: "http"),
        Field("network.protocol.version", "value", of("span.http_version")),
        Field("http.response.status_code", "value", of("span.status_code")),
        Field("start_time_unix_nano", "value", of("span.start_unix_ns")),
        Field("duration_ns", "ns", of("span.duration_ns")),
        Field("outcome", "value", of("span.outcome")),
        Field("error.type", "value", of("error", "type")),
        Field("error.message", "value", of("error", "message")),
        Field("tlstiming.failed_phase", "value", of("error", "phase")),
        Field("tls.next_protocol", "value", of("span.alpn")),
        Field("network.peer.address", "value", _peer(0)),
        Field("network.peer.port", "value", _peer(1)),
        Field("tlstiming.connection.reused", "value", of("span.reused")),
        Field("tlstiming.connection.idle_ns", "ns", of("span.idle_ns")),
        Field("tlstiming.connection.opened_by", "value", of("connection", "opened_by")),
        Field("tlstiming.connection.handshake_id", "value", of("connection", "handshake_id")),
        Field("tlstiming.connection.proxied", "value", _proxied),
        Field("tlstiming.connection.resolved", "strings", _opened(lambda _s, c: c.resolved)),
        Field("tlstiming.connection.attempts", "objects", _opened(_attempts)),
        Field("tlstiming.phases", "phases", of("span.phases")),
        Field("tlstiming.handshake", "span", of("span.handshake"), HANDSHAKE),
        Field("tlstiming.proxy_handshake", "span_ref", of("span.proxy_handshake")),
    ],
)
"""Every key of a request span, in ``to_dict()`` order (docs/schema.md)."""
