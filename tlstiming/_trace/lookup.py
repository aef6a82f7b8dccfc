"""``tlstiming.span_of``: the span of a connection or of an httpx response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from tlstiming._recording.conn import span_of as _recorded
from tlstiming._trace.streams import ssl_object_of
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.request import EXTENSION_KEY, RequestSpan

if TYPE_CHECKING:
    import ssl

    import httpx
    import requests
    import urllib3

__all__ = ["span_of"]


@overload
def span_of(obj: ssl.SSLSocket | ssl.SSLObject) -> HandshakeSpan | None: ...
@overload
def span_of(obj: httpx.Response | httpx.Request) -> RequestSpan | None: ...
@overload
def span_of(
    obj: requests.Response | requests.PreparedRequest | urllib3.BaseHTTPResponse,
) -> RequestSpan | None: ...
@overload
def span_of(obj: object) -> HandshakeSpan | RequestSpan | None: ...


def span_of(obj: Any) -> HandshakeSpan | RequestSpan | None:
    """Return the span recorded for ``obj``.

    Args:
        obj: an ``ssl.SSLSocket`` or ``ssl.SSLObject`` made by a
            :class:`TimedSSLContext` (or an asyncio ``StreamWriter`` or
            anyio TLS stream over one), an ``httpx.Response`` (or its
            ``Request``) sent through :mod:`tlstiming.httpx`, or an
            ``aiohttp.ClientResponse`` from :mod:`tlstiming.aiohttp`, a
            ``requests.Response`` (its ``PreparedRequest``, or the exception a
            failed request raised) from :mod:`tlstiming.requests`, or a
            ``urllib3.HTTPResponse`` from :mod:`tlstiming.urllib3`.

    Returns:
        The connection's :class:`HandshakeSpan` or the response's
        :class:`RequestSpan`; ``None`` before the handshake ended (or the
        response was closed), or for anything tlstiming did not record.
    """
    span = _recorded(obj)
    if isinstance(span, (HandshakeSpan, RequestSpan)):  # RequestSpan: aiohttp.ClientResponse
        return span
    ssl_object = ssl_object_of(obj)  # an asyncio StreamWriter, an anyio stream
    if ssl_object is not None:
        return _recorded(ssl_object)  # type: ignore[no-any-return]
    carried = _carried(obj)  # requests / urllib3 responses and requests, errors
    if carried is not None:
        return carried
    extensions = getattr(obj, "extensions", None)
    if isinstance(extensions, dict):  # httpx.Response / httpx.Request
        request_span = extensions.get(EXTENSION_KEY)
        return request_span if isinstance(request_span, RequestSpan) else None
    return None


def _carried(obj: Any) -> RequestSpan | None:
    """A request span kept on a requests ``Response`` (its ``raw``), a urllib3
    ``HTTPResponse`` (its ``http.client`` response), a requests
    ``PreparedRequest`` or the exception a failed request raised."""
    for candidate in (obj, getattr(obj, "raw", None)):
        original = getattr(candidate, "_original_response", None)
        for holder in (candidate, original):
            span = _recorded(holder) if holder is not None else None
            if isinstance(span, RequestSpan):
                return span
    return None
