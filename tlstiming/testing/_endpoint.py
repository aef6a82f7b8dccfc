"""The endpoint a span talked to: host and port, and the URL of a request span."""

from __future__ import annotations

from typing import Any, NamedTuple

from tlstiming.diagnosis.budget import host_of
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["Endpoint", "endpoint_of", "port_of", "url_of"]


class Endpoint(NamedTuple):
    """A host and port (either ``None`` when the span does not say)."""

    host: str | None
    port: int | None

    def __str__(self) -> str:
        host = self.host or "?"
        host = f"[{host}]" if ":" in host else host
        return host if self.port is None else f"{host}:{self.port}"


def port_of(span: Any) -> int | None:
    """The server's port: a client handshake's peer port, a request's port, else ``None``.

    A server-side handshake has none: its peer port is the client's, which
    the client picks (and a group per client port would be one per connection).
    """
    if isinstance(span, HandshakeSpan):
        return span.peer[1] if span.side == "client" and span.peer else None
    value = getattr(span, "server_port", None)
    if isinstance(value, int):
        return value
    to_dict = getattr(span, "to_dict", None)
    port = to_dict().get("server.port") if callable(to_dict) else None
    return port if isinstance(port, int) else None


def endpoint_of(span: Any) -> Endpoint:
    """The (host, port) a span talked to (see :func:`host_of` and :func:`port_of`)."""
    return Endpoint(host_of(span), port_of(span))


def url_of(span: Any) -> str | None:
    """A request span's URL (``scheme://host[:port]/path``, no query), else ``None``."""
    url = getattr(span, "url", None)
    return url if isinstance(url, str) else None
