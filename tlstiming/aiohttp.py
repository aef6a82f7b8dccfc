"""aiohttp integration: a request span per request, holding the TLS handshake span.

Swap ``aiohttp.ClientSession(...)`` for ``tlstiming.aiohttp.ClientSession(...)``
and every request yields an immutable :class:`~tlstiming.RequestSpan`: pool
wait, DNS, TCP connect, the TLS handshake (the full
:class:`~tlstiming.HandshakeSpan`, linked), sending, waiting for the first
byte, the body. Read it with ``tlstiming.span_of(response)`` once the body is
read (or the response released), or receive every span in a sink. Or build
the two halves yourself: :class:`TimedConnector` and :func:`trace_config`.
See docs/aiohttp.md.
"""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Iterable
from typing import Any

try:
    import aiohttp
except ImportError as exc:  # pragma: no cover
    raise ImportError("tlstiming.aiohttp needs aiohttp: pip install tlstiming[aiohttp]") from exc

from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming._trace.aiohttp_adapter import TimedConnector, TimedResolver, Tracer
from tlstiming._trace.recording import RequestSink, adopt, route_handshake

__all__ = [
    "ClientSession",
    "RequestSink",
    "TimedConnector",
    "TimedResolver",
    "timed_ssl_context",
    "trace_config",
]


def timed_ssl_context(ssl: Any = True) -> Any:
    """aiohttp's ``ssl=`` semantics, returning a TimedSSLContext where it can.

    Args:
        ssl: ``True``: the default trust store, as aiohttp's own default
            (``ssl.create_default_context()``, ALPN ``http/1.1``); ``False``:
            no verification; a :class:`~tlstiming.TimedSSLContext`: used as
            is; a plain ``ssl.SSLContext``: used as is, uninstrumented (noted
            once per context on the ``tlstiming`` logger); an
            ``aiohttp.Fingerprint``: used as is, uninstrumented.

    Returns:
        What to pass to the connector's ``ssl=``.
    """
    if ssl is True:
        context = create_default_context()
    elif ssl is False:
        context = TimedSSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = _ssl.CERT_NONE
    elif isinstance(ssl, _ssl.SSLContext):
        return adopt(ssl)
    else:  # an aiohttp.Fingerprint
        return ssl
    context.set_alpn_protocols(("http/1.1",))
    context.add_sink(route_handshake)
    return context


def trace_config(sinks: Iterable[RequestSink] = ()) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` that records request spans; use it with a :class:`TimedConnector`.

    Without a ``TimedConnector`` the spans have their phases but no
    connection (no handshake, peer, reuse or idle time).

    Args:
        sinks: callables that receive each request span when the request ends.
    """
    return Tracer(sinks).config  # its handlers hold the tracer and its sinks


def ClientSession(  # a drop-in for the class; aiohttp forbids subclassing it
    *args: Any,
    ssl: Any = True,
    sinks: Iterable[RequestSink] = (),
    connector_options: dict[str, Any] | None = None,
    trace_configs: list[aiohttp.TraceConfig] | None = None,
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` that records a :class:`~tlstiming.RequestSpan` per request.

    Args:
        *args: passed to ``aiohttp.ClientSession``.
        ssl: the connector's ``ssl=``, as in :func:`timed_ssl_context`.
        sinks: callables that receive each request span when the request ends.
        connector_options: other ``aiohttp.TCPConnector`` arguments (``limit``…).
        trace_configs: your own trace configs; the recording one is added last.
        **kwargs: passed to ``aiohttp.ClientSession``.

    Raises:
        ValueError: ``connector=`` was given (pass ``connector_options``, or
            build the session from :class:`TimedConnector` and :func:`trace_config`).
    """
    if "connector" in kwargs:
        raise ValueError("pass connector_options=, not connector=")
    connector = TimedConnector(ssl=timed_ssl_context(ssl), **(connector_options or {}))
    configs = [*(trace_configs or ()), trace_config(sinks)]
    return aiohttp.ClientSession(*args, connector=connector, trace_configs=configs, **kwargs)


for _public in (TimedConnector, TimedResolver):
    _public.__module__ = __name__
del _public
