# Source of tlstiming/_trace/_sync/httpx_client.py: edit here, then run scripts/unasync.py.
"""The timed httpx transport and client: :class:`TimedAsyncTransport`, :class:`AsyncClient`.

Public through :mod:`tlstiming.httpx`. The transport follows each request
with a :class:`~tlstiming._trace.recording.Recording` (current while httpx
and httpcore handle it), builds httpcore's pool on a timing network backend,
and ends the request when its response is closed.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore
import httpx

from tlstiming._recording import validate as _validate
from tlstiming._trace._async.httpcore import AsyncTimingBackend
from tlstiming._trace.httpx_common import (
    DEFAULT_LIMITS,
    RequestSink,
    Sinks,
    finish,
    on_close,
    pool_options,
    proxy_context,
    proxy_origin,
    timed_ssl_context,
)
from tlstiming._trace.recording import Recording, acquire, perf
from tlstiming.spans import build as _build

__all__ = ["AsyncClient", "TimedAsyncTransport"]


class TimedAsyncTransport(Sinks, httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` that records a :class:`~tlstiming.RequestSpan` per request.

    Takes every ``httpx.AsyncHTTPTransport`` argument with the same meaning
    (``verify`` as in :func:`timed_ssl_context`), plus ``sinks``: callables
    that receive each request span when the request ends.
    """

    def __init__(
        self,
        verify: ssl.SSLContext | str | bool | None = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[Any] | None = None,
        *,
        sinks: Iterable[RequestSink] = (),
    ) -> None:
        sinks = _validate.sinks("sinks", sinks)
        self.ssl_context = timed_ssl_context(verify, cert, trust_env)
        proxy = proxy_context(proxy)
        options: dict[str, Any] = {
            "uds": uds,
            "local_address": local_address,
            "retries": retries,
            "socket_options": socket_options,
        }
        super().__init__(
            verify=self.ssl_context,
            trust_env=trust_env,
            http1=http1,
            http2=http2,
            limits=limits,
            proxy=proxy,
            **options,
        )
        self._pool = _pool(self.ssl_context, proxy, limits, http1, http2, options)
        self._tlstiming_sinks = sinks

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rec = Recording(next(_build.ids), perf(), request.method, request.url)
        token = rec.enter()
        try:
            response = await super().handle_async_request(request)
        except BaseException as exc:
            rec.leave(token)
            finish(self, rec, request, None, exc)
            raise
        rec.head_ns = perf()
        rec.leave(token)
        if rec.connection is None:  # HTTP/2: another request's task sent and read for it
            acquire(rec, response.extensions.get("network_stream"))
        rec.status_code = response.status_code
        rec.http_version = response.extensions.get("http_version")
        response.stream = _AsyncBody(response.stream, self, rec, request, response)
        return response


def _pool(
    ssl_context: ssl.SSLContext,
    proxy: httpx.Proxy | None,
    limits: httpx.Limits,
    http1: bool,
    http2: bool,
    options: dict[str, Any],
) -> Any:
    """The pool ``httpx.AsyncHTTPTransport`` would build, with a timing network backend."""
    common = pool_options(ssl_context, limits, http1, http2)
    h2_only = http2 and not http1
    if proxy is None:
        backend = AsyncTimingBackend(h2_only=h2_only)
        return httpcore.AsyncConnectionPool(**common, **options, network_backend=backend)
    url, origin = proxy_origin(proxy)
    kind = proxy.url.scheme
    backend = AsyncTimingBackend(proxy=origin, proxy_kind=kind, h2_only=h2_only)
    if kind in ("http", "https"):
        return httpcore.AsyncHTTPProxy(
            proxy_url=url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            proxy_ssl_context=proxy.ssl_context,
            socket_options=options["socket_options"],
            network_backend=backend,
            **common,
        )
    return httpcore.AsyncSOCKSProxy(
        proxy_url=url, proxy_auth=proxy.raw_auth, network_backend=backend, **common
    )


class _AsyncBody(httpx.AsyncByteStream):
    """A response body: its close ends the request (an error while reading it, too)."""

    def __init__(
        self,
        inner: Any,
        transport: Sinks,
        rec: Recording,
        request: httpx.Request,
        response: httpx.Response,
    ) -> None:
        self._inner = inner
        self._transport = transport
        self._rec = rec
        self._request = request
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            finish(self._transport, self._rec, self._request, self._response, exc)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            on_close(self._transport, self._rec, self._response)


class AsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose transports (proxies from the environment included) are timed.

    Takes every ``httpx.AsyncClient`` argument, plus ``sinks``. An explicit
    ``transport=``/``mounts=`` is used as given: pass :class:`TimedAsyncTransport` s.
    """

    def __init__(self, *, sinks: Iterable[RequestSink] = (), **kwargs: Any) -> None:
        self._tlstiming_request_sinks = _validate.sinks("sinks", sinks)
        super().__init__(**kwargs)

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool | None = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport
        return TimedAsyncTransport(
            verify, cert, trust_env, http1, http2, limits, sinks=self._tlstiming_request_sinks
        )

    def _init_proxy_transport(
        self,
        proxy: httpx.Proxy,
        verify: ssl.SSLContext | str | bool | None = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> httpx.AsyncBaseTransport:
        return TimedAsyncTransport(
            verify,
            cert,
            trust_env,
            http1,
            http2,
            limits,
            proxy=proxy,
            sinks=self._tlstiming_request_sinks,
        )
