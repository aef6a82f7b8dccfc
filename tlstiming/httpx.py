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

import logging
import os
import ssl
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

try:
    import httpcore
    import httpx
except ImportError as exc:  # pragma: no cover
    raise ImportError("tlstiming.httpx needs httpx and httpcore: pip install httpx") from exc

from tlstiming._recording import delivery as _delivery
from tlstiming._recording import validate as _validate
from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming._trace.httpcore import (
    AsyncTimingBackend,
    Recording,
    TimingBackend,
    acquire,
    route_handshake,
)
from tlstiming._trace.httpcore import _current as _request_var
from tlstiming.spans import build as _build
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

RequestSink = Callable[[RequestSpan], None]
"""A sink for request spans: called once per request, when it ends."""

_perf = time.perf_counter_ns
_unix = time.time_ns
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's
_warned: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
_log = logging.getLogger("tlstiming")


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


# -- TLS contexts ----------------------------------------------------------------


def timed_ssl_context(
    verify: ssl.SSLContext | str | bool | None = True,
    cert: Any = None,
    trust_env: bool = True,
) -> ssl.SSLContext:
    """``httpx.create_ssl_context`` semantics, returning a TimedSSLContext where it can.

    Args:
        verify: ``True``: certifi's CA bundle, or ``SSL_CERT_FILE`` /
            ``SSL_CERT_DIR`` when ``trust_env``; ``False``: no verification;
            ``None`` (which httpx hands on to httpcore): httpcore's default,
            the system's trust store plus certifi's bundle;
            a path (deprecated, as in httpx): that CA file or directory; a
            :class:`~tlstiming.TimedSSLContext`: used as is; a plain
            ``ssl.SSLContext``: used as is, **uninstrumented** (its settings
            cannot be copied faithfully: loaded client certificates, keys and
            some options are not readable back), noted once per context on
            the ``tlstiming`` logger (a warning would break callers that run
            with warnings as errors, which plain httpx does not).
        cert: a client certificate (deprecated in httpx), loaded into the context.
        trust_env: honour ``SSL_CERT_FILE``/``SSL_CERT_DIR``.

    Returns:
        The context the transport will use.
    """
    if verify is True:
        if trust_env and os.environ.get("SSL_CERT_FILE"):
            context: ssl.SSLContext = create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif trust_env and os.environ.get("SSL_CERT_DIR"):
            context = create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            import certifi  # noqa: PLC0415

            context = create_default_context(cafile=certifi.where())
    elif verify is False:
        context = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is None:
        context = _httpcore_default_context()
    elif isinstance(verify, str):
        warnings.warn(
            "`verify=<str>` is deprecated. Use `verify=ssl.create_default_context(cafile=...)` "
            "or `verify=ssl.create_default_context(capath=...)` instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        # As httpx 0.28 does: a path returns at once, so ``cert`` is not loaded.
        if os.path.isdir(verify):
            return _adopt(create_default_context(capath=verify))
        return _adopt(create_default_context(cafile=verify))
    else:
        context = _adopt(verify)
    if cert:
        warnings.warn(
            "`cert=...` is deprecated. Use `verify=<ssl_context>` instead,"
            "with `.load_cert_chain()` to configure the certificate chain.",
            DeprecationWarning,
            stacklevel=3,
        )
        context.load_cert_chain(*((cert,) if isinstance(cert, str) else cert))
    return _adopt(context)


def _adopt(context: ssl.SSLContext) -> ssl.SSLContext:
    """Use a caller's context as is; route its handshake spans to requests if it is timed."""
    if isinstance(context, TimedSSLContext):
        if route_handshake not in context.sinks:
            context.add_sink(route_handshake)
    elif context not in _warned:
        # Logged, not warned: a caller running with warnings as errors must see
        # exactly what plain httpx does with this context.
        _warned.add(context)
        _log.warning(
            "tlstiming: a plain ssl.SSLContext was given; requests are timed but its TLS "
            "handshakes are not opened up. Build it with tlstiming.create_default_context() "
            "or tlstiming.TimedSSLContext(...) to get handshake spans."
        )
    return context


def _httpcore_default_context() -> TimedSSLContext:
    """A timed twin of httpcore's ``default_ssl_context()``: system trust plus certifi."""
    import certifi  # noqa: PLC0415

    context = create_default_context()
    context.load_verify_locations(certifi.where())
    return context


def _proxy_context(proxy: httpx.Proxy | None) -> httpx.Proxy | None:
    """Give an HTTPS proxy a timed context with httpcore's default trust (system + certifi)."""
    if proxy is None or proxy.url.scheme != "https":
        return proxy
    if proxy.ssl_context is not None:
        _adopt(proxy.ssl_context)
        return proxy
    context = _adopt(_httpcore_default_context())
    return httpx.Proxy(url=proxy.url, ssl_context=context, auth=proxy.auth, headers=proxy.headers)


def _pool(
    sync: bool,
    ssl_context: ssl.SSLContext,
    proxy: httpx.Proxy | None,
    limits: httpx.Limits,
    http1: bool,
    http2: bool,
    options: dict[str, Any],
) -> Any:
    """The pool ``httpx.HTTPTransport`` would build, with a timing network backend."""
    h2_only = http2 and not http1
    backend: Any
    common: dict[str, Any] = {
        "ssl_context": ssl_context,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": http1,
        "http2": http2,
    }
    if proxy is None:
        backend = TimingBackend(h2_only=h2_only) if sync else AsyncTimingBackend(h2_only=h2_only)
        cls = httpcore.ConnectionPool if sync else httpcore.AsyncConnectionPool
        return cls(**common, **options, network_backend=backend)
    url = httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )
    origin = (url.origin.host.decode("ascii"), url.origin.port)
    kind = proxy.url.scheme
    timing = TimingBackend if sync else AsyncTimingBackend
    backend = timing(proxy=origin, proxy_kind=kind, h2_only=h2_only)
    if kind in ("http", "https"):
        http_proxy = httpcore.HTTPProxy if sync else httpcore.AsyncHTTPProxy
        return http_proxy(
            proxy_url=url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            proxy_ssl_context=proxy.ssl_context,
            socket_options=options["socket_options"],
            network_backend=backend,
            **common,
        )
    socks_proxy = httpcore.SOCKSProxy if sync else httpcore.AsyncSOCKSProxy
    return socks_proxy(proxy_url=url, proxy_auth=proxy.raw_auth, network_backend=backend, **common)


# -- transports ------------------------------------------------------------------


class _Sinks:
    """Request sinks of a transport (read by ``tlstiming._recording.delivery.deliver``)."""

    _tlstiming_sinks: tuple[RequestSink, ...] = ()

    @property
    def sinks(self) -> tuple[RequestSink, ...]:
        """The sinks that receive this transport's request spans, in call order."""
        return self._tlstiming_sinks

    def add_sink(self, sink: RequestSink) -> None:
        """Deliver every request span of this transport to ``sink``.

        Raises:
            TypeError: ``sink`` is not callable.
        """
        self._tlstiming_sinks = (*self._tlstiming_sinks, _validate.callable_arg("sink", sink))

    def remove_sink(self, sink: RequestSink) -> None:
        """Stop delivering to ``sink``. Raises ``ValueError`` if it was not added."""
        sinks = list(self._tlstiming_sinks)
        sinks.remove(sink)
        self._tlstiming_sinks = tuple(sinks)


def _finish(
    transport: _Sinks,
    rec: Recording,
    request: httpx.Request,
    response: httpx.Response | None,
    exc: BaseException | None,
) -> None:
    if not rec.seal(_perf(), _unix(), exc):
        return
    span = RequestSpan(rec)
    request.extensions[EXTENSION_KEY] = span
    if response is not None:
        response.extensions[EXTENSION_KEY] = span
    _delivery.deliver(transport, span)


def _close(transport: _Sinks, rec: Recording, response: httpx.Response) -> None:
    """The common end: the response was closed. One function, few steps (hot path)."""
    if rec.end_ns is not None:
        return
    end = rec.end_ns = _perf()
    rec.end_unix_ns = _unix()
    stream = rec.stream
    if stream is not None:
        stream.last_end = end
        rec.stream = None
    span = response.extensions[EXTENSION_KEY] = RequestSpan(rec)
    if transport._tlstiming_sinks or _delivery.global_sinks:
        _delivery.deliver(transport, span)


class TimedTransport(_Sinks, httpx.HTTPTransport):
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
        limits: httpx.Limits = _DEFAULT_LIMITS,
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
        proxy = _proxy_context(
            httpx.Proxy(url=proxy) if isinstance(proxy, (str, httpx.URL)) else proxy
        )
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
        self._pool = _pool(True, self.ssl_context, proxy, limits, http1, http2, options)
        self._tlstiming_sinks = sinks

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        rec = Recording(next(_build.ids), _perf(), request.method, request.url)
        token = _request_var.set(rec)
        try:
            response = super().handle_request(request)
        except BaseException as exc:
            _request_var.reset(token)
            _finish(self, rec, request, None, exc)
            raise
        rec.head_ns = _perf()
        _request_var.reset(token)
        if rec.connection is None:  # HTTP/2: another request's task sent and read for it
            acquire(rec, response.extensions.get("network_stream"))
        rec.status_code = response.status_code
        rec.http_version = response.extensions.get("http_version")
        response.stream = _Body(response.stream, self, rec, request, response)
        return response


class _Body(httpx.SyncByteStream):
    def __init__(
        self,
        inner: Any,
        transport: _Sinks,
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
            yield from self._inner
        except GeneratorExit:
            raise
        except BaseException as exc:
            _finish(self._transport, self._rec, self._request, self._response, exc)
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            _close(self._transport, self._rec, self._response)


class TimedAsyncTransport(_Sinks, httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` that records a :class:`~tlstiming.RequestSpan` per request.

    Same arguments as :class:`TimedTransport`.
    """

    def __init__(
        self,
        verify: ssl.SSLContext | str | bool | None = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = _DEFAULT_LIMITS,
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
        proxy = _proxy_context(
            httpx.Proxy(url=proxy) if isinstance(proxy, (str, httpx.URL)) else proxy
        )
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
        self._pool = _pool(False, self.ssl_context, proxy, limits, http1, http2, options)
        self._tlstiming_sinks = sinks

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rec = Recording(next(_build.ids), _perf(), request.method, request.url)
        token = _request_var.set(rec)
        try:
            response = await super().handle_async_request(request)
        except BaseException as exc:
            _request_var.reset(token)
            _finish(self, rec, request, None, exc)
            raise
        rec.head_ns = _perf()
        _request_var.reset(token)
        if rec.connection is None:  # HTTP/2: another request's task sent and read for it
            acquire(rec, response.extensions.get("network_stream"))
        rec.status_code = response.status_code
        rec.http_version = response.extensions.get("http_version")
        response.stream = _AsyncBody(response.stream, self, rec, request, response)
        return response


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(
        self,
        inner: Any,
        transport: _Sinks,
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
            _finish(self._transport, self._rec, self._request, self._response, exc)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            _close(self._transport, self._rec, self._response)


# -- clients ---------------------------------------------------------------------


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
        limits: httpx.Limits = _DEFAULT_LIMITS,
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
        limits: httpx.Limits = _DEFAULT_LIMITS,
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


class AsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose transports are timed; see :class:`Client`."""

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
        limits: httpx.Limits = _DEFAULT_LIMITS,
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
        limits: httpx.Limits = _DEFAULT_LIMITS,
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
