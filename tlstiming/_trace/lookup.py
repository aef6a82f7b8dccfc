"""``tlstiming.span_of``: the span of a connection or of an httpx response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from tlstiming._recording.conn import span_of as _recorded
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.request import EXTENSION_KEY, RequestSpan

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["span_of"]


@overload
def span_of(obj: ssl.SSLSocket | ssl.SSLObject) -> HandshakeSpan | None: ...
@overload
def span_of(obj: httpx.Response | httpx.Request) -> RequestSpan | None: ...
@overload
def span_of(obj: object) -> HandshakeSpan | RequestSpan | None: ...


def span_of(obj: Any) -> HandshakeSpan | RequestSpan | None:
    """Return the span recorded for ``obj``.

    Args:
        obj: an ``ssl.SSLSocket`` or ``ssl.SSLObject`` made by a
            :class:`TimedSSLContext`, or an ``httpx.Response`` (or its
            ``Request``) sent through :mod:`tlstiming.httpx`.

    Returns:
        The connection's :class:`HandshakeSpan` or the response's
        :class:`RequestSpan`; ``None`` before the handshake ended (or the
        response was closed), or for anything tlstiming did not record.
    """
    span = _recorded(obj)
    if isinstance(span, HandshakeSpan):
        return span
    extensions = getattr(obj, "extensions", None)
    if isinstance(extensions, dict):  # httpx.Response / httpx.Request
        request_span = extensions.get(EXTENSION_KEY)
        return request_span if isinstance(request_span, RequestSpan) else None
    return None
