"""requests integration: a request span per request, holding the TLS handshake span.

Swap ``requests.Session()`` for ``tlstiming.requests.Session()``, or call
:func:`mount` on a session you already have, and every request yields an
immutable :class:`~tlstiming.RequestSpan` (pool wait, DNS, each connect
attempt, a proxy's TLS and ``CONNECT``, the origin's TLS handshake, sending,
the first byte, the body). Read it with ``tlstiming.span_of(response)`` (or
``span_of(exc)`` after a failure), or receive every span in a sink. See
docs/requests.md.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable
from typing import Any

try:
    import requests
    import requests.adapters
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "tlstiming.requests needs requests: pip install 'tlstiming[requests]'"
    ) from exc

from tlstiming._recording import validate as _validate
from tlstiming._trace.recording import RequestSink, Sinks, adopt
from tlstiming._trace.urllib3_pool import TimedPoolManager, TimedProxyManager, start_url

__all__ = ["RequestSink", "Session", "TimedHTTPAdapter", "mount"]


class TimedHTTPAdapter(Sinks, requests.adapters.HTTPAdapter):
    """``requests.adapters.HTTPAdapter`` (a subclass) whose requests yield request spans.

    Takes every ``HTTPAdapter`` argument, plus ``sinks`` and ``ssl_context``.
    Without ``ssl_context``, ``verify=``/``cert=`` mean what they mean in
    requests, and a CA bundle is still loaded for every new connection as
    requests does (the cost shows on the span); with one (a
    :class:`~tlstiming.TimedSSLContext`), ``verify=True`` trusts what that
    context trusts and nothing is reloaded per connection.
    """

    ssl_context: ssl.SSLContext | None = None  # also after unpickling (contexts are not kept)

    def __init__(
        self,
        *args: Any,
        sinks: Iterable[RequestSink] = (),
        ssl_context: ssl.SSLContext | None = None,
        **kwargs: Any,
    ) -> None:
        self._tlstiming_sinks = _validate.sinks("sinks", sinks)
        self.ssl_context = None if ssl_context is None else adopt(ssl_context)
        super().__init__(*args, **kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        if self.ssl_context is not None:
            pool_kwargs.setdefault("ssl_context", self.ssl_context)
        self.poolmanager = TimedPoolManager(
            num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy in self.proxy_manager or proxy.lower().startswith("socks"):
            return super().proxy_manager_for(proxy, **proxy_kwargs)  # SOCKS: untimed
        if self.ssl_context is not None:
            proxy_kwargs.setdefault("ssl_context", self.ssl_context)
        manager = self.proxy_manager[proxy] = TimedProxyManager(
            proxy,
            proxy_headers=self.proxy_headers(proxy),
            num_pools=self._pool_connections,
            maxsize=self._pool_maxsize,
            block=self._pool_block,
            **proxy_kwargs,
        )
        return manager

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        if self.ssl_context is not None and (verify is True or verify == _env_bundle()):
            conn.ca_certs = conn.ca_cert_dir = None  # the context's own trust, loaded once

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        rec = start_url(self, request.method or "GET", request.url or "")
        rec.carriers = (request,)
        response: requests.Response = rec.follow(super().send, request, *args, **kwargs)
        return response


def _drop_preloaded(
    self: TimedHTTPAdapter, request: Any, verify: Any, cert: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """requests 2.32.0-2.32.3 hand every ``verify=True`` pool one plain shared context:
    drop it, so that the pool gets a timed one (and the same trust: ``cert_verify``)."""
    parent = requests.adapters.HTTPAdapter.build_connection_pool_key_attributes
    host, pool_kwargs = parent(self, request, verify, cert)
    if pool_kwargs.get("ssl_context") is requests.adapters._preloaded_ssl_context:  # type: ignore[attr-defined]
        del pool_kwargs["ssl_context"]
    return host, pool_kwargs


if hasattr(requests.adapters, "_preloaded_ssl_context"):  # only where requests has one
    TimedHTTPAdapter.build_connection_pool_key_attributes = _drop_preloaded  # type: ignore[method-assign,assignment]


def _env_bundle() -> str | None:
    """What a session with ``trust_env`` turns ``verify=True`` into (requests'
    ``Session.merge_environment_settings``)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def mount(
    session: requests.Session,
    *,
    sinks: Iterable[RequestSink] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> requests.Session:
    """Mount timed adapters on ``session`` for ``https://`` and ``http://``.

    Each keeps the pool sizes, blocking and retries of the ``HTTPAdapter``
    it replaces. Returns ``session``.
    """
    sinks = _validate.sinks("sinks", sinks)
    for prefix in ("https://", "http://"):
        old = session.adapters.get(prefix)
        options: dict[str, Any] = {}
        if isinstance(old, requests.adapters.HTTPAdapter):
            options = {
                "pool_connections": old._pool_connections,
                "pool_maxsize": old._pool_maxsize,
                "max_retries": old.max_retries,
                "pool_block": old._pool_block,
            }
            old.close()
        session.mount(prefix, TimedHTTPAdapter(sinks=sinks, ssl_context=ssl_context, **options))
    return session


class Session(requests.Session):
    """``requests.Session`` (a subclass) whose requests yield request spans.

    Args:
        sinks: callables that receive each request span when its request ends.
        ssl_context: one TLS context for every connection (see :class:`TimedHTTPAdapter`).
    """

    def __init__(
        self, *, sinks: Iterable[RequestSink] = (), ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__()
        mount(self, sinks=sinks, ssl_context=ssl_context)


for _public in (Session, TimedHTTPAdapter, mount):
    _public.__module__ = __name__
del _public
