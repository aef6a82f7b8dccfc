"""urllib3 integration: a request span per request, holding the TLS handshake span.

Swap ``urllib3.PoolManager(...)`` for ``tlstiming.urllib3.PoolManager(...)``
(``ProxyManager`` likewise) and every request yields an immutable
:class:`~tlstiming.RequestSpan`: pool wait, DNS, each connect attempt, the
proxy's TLS and ``CONNECT``, the origin's TLS handshake (the full
:class:`~tlstiming.HandshakeSpan`), sending, waiting for the first byte, the
body. Read it with ``tlstiming.span_of(response)`` or receive every span in a
sink. See docs/requests.md.
"""

from __future__ import annotations

from typing import Any

try:
    import urllib3
except ImportError as exc:  # pragma: no cover
    raise ImportError("tlstiming.urllib3 needs urllib3: pip install 'tlstiming[urllib3]'") from exc

from tlstiming._trace.recording import RequestSink
from tlstiming._trace.urllib3_pool import TimedPoolManager, TimedProxyManager, timed_urllib3_context

__all__ = ["PoolManager", "ProxyManager", "RequestSink", "proxy_from_url", "timed_urllib3_context"]


class PoolManager(TimedPoolManager):
    """``urllib3.PoolManager`` (a subclass) whose requests yield request spans.

    Takes every ``urllib3.PoolManager`` argument with the same meaning, plus
    ``sinks``: callables that receive each request span when its request
    ends. ``ssl_context=`` a :class:`~tlstiming.TimedSSLContext` gives one
    context to every connection (no per-connection context or trust-store
    load); a plain ``ssl.SSLContext`` is used as is, without handshake spans.
    """


class ProxyManager(TimedProxyManager):
    """``urllib3.ProxyManager`` (a subclass) whose requests yield request spans, plus ``sinks``."""


def proxy_from_url(url: str, **kwargs: Any) -> ProxyManager:
    """``urllib3.proxy_from_url``, returning a timed :class:`ProxyManager`."""
    return ProxyManager(proxy_url=url, **kwargs)


timed_urllib3_context.__module__ = __name__
del urllib3
