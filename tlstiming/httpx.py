"""httpx integration: a request span per request, holding the TLS handshake span.

Swap ``httpx.Client(...)`` for ``tlstiming.httpx.Client(...)`` (or pass
``transport=tlstiming.httpx.TimedTransport(...)``) and every request yields
an immutable :class:`~tlstiming.RequestSpan`: pool wait, DNS, TCP connect,
the proxy's TLS and CONNECT, the origin's TLS handshake (the full
:class:`~tlstiming.HandshakeSpan`, linked), sending, waiting for the first
byte, the body. Read it with ``tlstiming.span_of(response)`` or
:func:`request_span_of`, or receive every span in a sink. See docs/httpx.md.
"""

from __future__ import annotations

try:  # both, to name them in the error; the adapter modules use both
    import httpcore  # noqa: F401
    import httpx
except ImportError as exc:  # pragma: no cover
    raise ImportError("tlstiming.httpx needs httpx and httpcore: pip install httpx") from exc

from tlstiming._trace._async.httpx_client import AsyncClient, TimedAsyncTransport
from tlstiming._trace._sync.httpx_client import Client, TimedTransport
from tlstiming._trace.httpx_common import RequestSink, timed_ssl_context
from tlstiming.spans.request import EXTENSION_KEY, RequestSpan

__all__ = [
    "AsyncClient",
    "Client",
    "RequestSink",
    "TimedAsyncTransport",
    "TimedTransport",
    "request_span_of",
    "timed_ssl_context",
]


def request_span_of(obj: httpx.Response | httpx.Request) -> RequestSpan | None:
    """Return the request span of a response (or of the request, also after a failure).

    Args:
        obj: an ``httpx.Response`` from an instrumented client, or the
            ``httpx.Request`` of one (``exc.request`` after an error).

    Returns:
        The span once the request has ended (the response was closed, which
        httpx does after reading the body), else ``None``.
    """
    span = obj.extensions.get(EXTENSION_KEY)
    return span if isinstance(span, RequestSpan) else None


# Defined in private modules (the clients' sync half is generated from the
# async half); public here, and named so.
for _public in (AsyncClient, Client, TimedAsyncTransport, TimedTransport, timed_ssl_context):
    _public.__module__ = __name__
del _public
