# Generated from tlstiming/_trace/_async/httpx_client.py by scripts/unasync.py: do not edit.
"""The timed httpx transport and client: :class:`TimedTransport`, :class:`Client`.

Public through :mod:`tlstiming.httpx`. The transport follows each request
with a :class:`~tlstiming._trace.recording.Recording` (current while httpx
and httpcore handle it), builds httpcore's pool on a timing network backend,
and ends the request when its response is closed.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from tlstiming._recording import validate as _validate
from tlstiming._trace._sync.httpcore import TimingBackend
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

__all__ = ["Client", "TimedTransport"]


class TimedTransport(Sinks, httpx.HTTPTransport):
    """``httpx.HTTPTransport`` that records a :class:`~tlstiming.RequestSpan` per request.

    Takes every ``httpx.HTTPTransport`` argument with the same meaning
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

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        rec = Recording(next(_build.ids), perf(), request.method, request.url)
        token = rec.enter()
        try:
            response = super().handle_request(request)
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
        response.stream = _Body(response.stream, self, rec, request, response)
        return response


def _pool(
    ssl_context: ssl.SSLContext,
    proxy: httpx.Proxy | None,
    limits: httpx.Limits,
    http1: bool,
    http2: bool,
    options: dict[str, Any],
) -> Any:
    """The pool ``httpx.HTTPTransport`` would build, with a timing network backend."""
    common = pool_options(ssl_context, limits, http1, http2)
    h2_only = http2 and not http1
    if proxy is None:
        backend = TimingBackend(h2_only=h2_only)
        return httpcore.ConnectionPool(**common, **options, network_backend=backend)
    url, origin = proxy_origin(proxy)
    kind = proxy.url.scheme
    backend = TimingBackend(proxy=origin, proxy_kind=kind, h2_only=h2_only)
    if kind in ("http", "https"):
        return httpcore.HTTPProxy(
            proxy_url=url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            proxy_ssl_context=proxy.ssl_context,
            socket_options=options["socket_options"],
            network_backend=backend,
            **common,
        )
    return httpcore.SOCKSProxy(
        proxy_url=url, proxy_auth=proxy.raw_auth, network_backend=backend, **common
    )


class _Body(httpx.SyncByteStream):
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

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            finish(self._transport, self._rec, self._request, self._response, exc)
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            on_close(self._transport, self._rec, self._response)


class Client(httpx.Client):
    """``httpx.Client`` whose transports (proxies from the environment included) are timed.

    Takes every ``httpx.Client`` argument, plus ``sinks``. An explicit
    ``transport=``/``mounts=`` is used as given: pass :class:`TimedTransport` s.
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
        transport: httpx.BaseTransport | None = None,
    ) -> httpx.BaseTransport:
        if transport is not None:
            return transport
        return TimedTransport(
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
    ) -> httpx.BaseTransport:
        return TimedTransport(
            verify,
            cert,
            trust_env,
            http1,
            http2,
            limits,
            proxy=proxy,
            sinks=self._tlstiming_request_sinks,
        )
