"""Request spans as JSON-ready dicts (keys documented in docs/schema.md, "Request span keys").

OpenTelemetry HTTP semantic-convention names where one exists
(``http.request.method``, ``url.full``, ``server.*``, ``network.*``,
``http.response.status_code``, ``error.type``); the rest under
``tlstiming.*``. The handshake that opened the connection is nested whole
under ``tlstiming.handshake`` (its own ``to_dict()``), and named by id under
``tlstiming.connection.handshake_id`` even when the connection was reused.
"""

from __future__ import annotations

from typing import Any

from tlstiming.spans.handshake import SCHEMA_VERSION
from tlstiming.spans.request import ConnectionInfo, RequestSpan

__all__ = ["request_to_dict"]


def request_to_dict(span: RequestSpan) -> dict[str, Any]:
    """Flatten a request span; see ``docs/schema.md`` for every key."""
    connection = span.connection
    error = span.error
    handshake = span.handshake
    proxy_handshake = span.proxy_handshake
    return {
        "tlstiming.schema": SCHEMA_VERSION,
        "tlstiming.kind": span.kind,
        "span.id": span.span_id,
        "http.request.method": span.method,
        "url.full": span.url,
        "server.address": span.server_address,
        "server.port": span.server_port,
        "network.protocol.name": "http",
        "network.protocol.version": span.http_version,
        "http.response.status_code": span.status_code,
        "start_time_unix_nano": span.start_unix_ns,
        "duration_ns": span.duration_ns,
        "outcome": span.outcome,
        "error.type": error.type if error else None,
        "error.message": error.message if error else None,
        "tlstiming.failed_phase": error.phase if error else None,
        "tls.next_protocol": span.alpn,
        "network.peer.address": _peer(connection, 0),
        "network.peer.port": _peer(connection, 1),
        "tlstiming.connection.reused": span.reused,
        "tlstiming.connection.idle_ns": span.idle_ns,
        "tlstiming.connection.opened_by": connection.opened_by if connection else None,
        "tlstiming.connection.handshake_id": connection.handshake_id if connection else None,
        "tlstiming.connection.proxied": connection.proxied if connection else False,
        "tlstiming.connection.resolved": _resolved(span, connection),
        "tlstiming.connection.attempts": _attempts(span, connection),
        "tlstiming.phases": [
            {
                "name": p.name,
                "start_ns": p.start_ns - span.start_ns,
                "duration_ns": p.duration_ns,
                "cpu_ns": p.cpu_ns,
            }
            for p in span.phases
        ],
        "tlstiming.handshake": handshake.to_dict() if handshake else None,
        "tlstiming.proxy_handshake": proxy_handshake.to_dict() if proxy_handshake else None,
    }


def _peer(connection: ConnectionInfo | None, i: int) -> Any:
    peer = connection.peer if connection else None
    return None if peer is None else peer[i]


def _resolved(span: RequestSpan, connection: ConnectionInfo | None) -> list[str]:
    return [] if connection is None or span.reused else list(connection.resolved)


def _attempts(span: RequestSpan, connection: ConnectionInfo | None) -> list[dict[str, Any]]:
    if connection is None or span.reused:
        return []
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
