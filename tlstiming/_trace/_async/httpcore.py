# Source of tlstiming/_trace/_sync/httpcore.py: edit here, then run scripts/unasync.py.
"""The httpcore seam: a timing ``AsyncNetworkBackend`` and the streams it returns.

The only module that knows httpcore's network layer. It uses public httpcore
API only (``AsyncNetworkBackend``, its backends, ``AsyncNetworkStream``,
``ConnectError``/``ConnectTimeout``) and none of httpcore's ``trace`` event
names: a trace callback costs httpcore string formatting on ~10 events per
request (measured: +2.3 % on a keep-alive request), and its names are
documented as unstable. The request being followed is the current
:class:`~tlstiming._trace.recording.Recording`; how addresses are resolved
and ordered, how ``timeout`` applies and which httpcore backend connects are
this side's own (``_compat``).
"""

from __future__ import annotations

from typing import Any

import httpcore

from tlstiming._trace._async import _compat
from tlstiming._trace.recording import (
    TLS_SCHEMES,
    FinalStream,
    ProxyKind,
    Recording,
    Route,
    current,
    perf,
)
from tlstiming.spans.request import ConnectionInfo

__all__ = ["AsyncTimingBackend"]


class AsyncTimingBackend(httpcore.AsyncNetworkBackend):
    """Resolve (timed), then connect to each address in turn (each timed).

    Each attempt is httpcore's own backend's ``connect_tcp`` on one
    address, so ``local_address``, ``socket_options`` and ``TCP_NODELAY``
    are applied exactly as without tlstiming; the last error is raised if
    all fail. The order of the addresses and what ``timeout`` bounds follow
    httpcore's backend on this side (see ``_compat``).
    """

    def __init__(
        self,
        proxy: tuple[str, int] | None = None,
        proxy_kind: ProxyKind | None = None,
        h2_only: bool = False,
    ) -> None:
        self._native: httpcore.AsyncNetworkBackend | None = None
        self._route = Route(proxy, proxy_kind, h2_only)

    @property
    def _backend(self) -> httpcore.AsyncNetworkBackend:
        native = self._native
        if native is None:
            native = self._native = _compat.native_backend()
        return native

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        rec = current()
        if rec is None:
            backend = self._backend
            return await backend.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            with _compat.deadline(timeout):
                stream = await self._connect(
                    rec,
                    host,
                    port,
                    _compat.attempt_timeout(timeout),
                    local_address,
                    socket_options,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(exc) from exc
        final, proxy_tls = self._route.after_tcp(rec, host, port)
        if final:
            return _final(rec, stream, self._route)
        return _AsyncSetup(stream, self._route, proxy_tls)

    async def _connect(
        self,
        rec: Recording,
        host: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Any,
    ) -> httpcore.AsyncNetworkStream:
        rec.mark("dns")
        try:
            addresses = await _compat.resolve(host, port, local_address)
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        rec.resolved = tuple(address for address, _ in addresses)
        rec.mark("connect")
        error: Exception = httpcore.ConnectError(OSError(_compat.NO_ADDRESS))
        for address, attempt_port in addresses:
            start = perf()
            try:
                stream = await self._backend.connect_tcp(
                    address, attempt_port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                rec.attempt(address, attempt_port, start, exc)
                error = exc
                continue
            rec.attempt(address, attempt_port, start, None)
            return stream
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        rec = current()
        if rec is None:
            return await self._backend.connect_unix_socket(path, timeout, socket_options)
        rec.mark("connect")
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        if rec.url.scheme in TLS_SCHEMES:
            return _AsyncSetup(stream, self._route, False)
        rec.mark("send_request")
        return _final(rec, stream, self._route)

    async def sleep(self, seconds: float) -> None:
        rec = current()
        if rec is not None:
            rec.mark("retry")
        await self._backend.sleep(seconds)


class _AsyncSetup(httpcore.AsyncNetworkStream):
    """A stream still being set up (TCP before TLS, a proxy before CONNECT)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, route: Route, proxy_tls: bool) -> None:
        self._inner = inner
        self._route = route
        self._proxy_tls = proxy_tls
        self.read = inner.read  # type: ignore[method-assign]
        self.write = inner.write  # type: ignore[method-assign]
        self.aclose = inner.aclose  # type: ignore[method-assign]
        self.get_extra_info = inner.get_extra_info  # type: ignore[method-assign]

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        rec = current()
        if rec is None:
            return await self._inner.start_tls(ssl_context, server_hostname, timeout)
        role = self._route.before_tls(rec, self._proxy_tls)
        try:
            inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        finally:
            rec.tls_role = None
        if self._route.after_tls(rec, role, inner):
            return _final(rec, inner, self._route)
        return _AsyncSetup(inner, self._route, False)


class _AsyncFinal(FinalStream, httpcore.AsyncNetworkStream):
    """The stream a connection's requests go out on: stamps each request's writes."""

    hook_read = False

    def __init__(
        self, inner: httpcore.AsyncNetworkStream, info: ConnectionInfo, opener: Recording
    ) -> None:
        self._inner = inner
        self._write = inner.write
        self.info = info
        self.opener = opener  # identity only: which request opened the connection
        if not self.hook_read:  # plain delegation: no extra frame per read
            self.read = inner.read  # type: ignore[method-assign]
        self.aclose = inner.aclose  # type: ignore[method-assign]
        self.get_extra_info = inner.get_extra_info  # type: ignore[method-assign]

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        rec = current()
        if rec is None or not buffer:
            return await self._write(buffer, timeout)
        if rec.stream is not self:  # this request's first write here
            self.lend(rec)
        try:
            await self._write(buffer, timeout)
        finally:
            if not rec.reading:
                rec.sent_ns = perf()
        return None

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)


class _AsyncFinalH2(_AsyncFinal):
    """HTTP/2: writes after this request began reading (SETTINGS ACKs…) are not its sending."""

    hook_read = True

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        rec = current()
        if rec is not None and not rec.reading:
            self.begin_reading(rec)
        return await self._inner.read(max_bytes, timeout)


def _final(rec: Recording, inner: httpcore.AsyncNetworkStream, route: Route) -> _AsyncFinal:
    cls = _AsyncFinalH2 if route.final_kind(inner) else _AsyncFinal
    return cls(inner, rec.connection_info(route.proxy is not None), rec)
