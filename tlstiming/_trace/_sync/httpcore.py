# Generated from tlstiming/_trace/_async/httpcore.py by scripts/unasync.py: do not edit.
"""The httpcore seam: a timing ``NetworkBackend`` and the streams it returns.

The only module that knows httpcore's network layer. It uses public httpcore
API only (``NetworkBackend``, its backends, ``NetworkStream``,
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

from tlstiming._trace._sync import _compat
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

__all__ = ["TimingBackend"]


class TimingBackend(httpcore.NetworkBackend):
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
        self._native: httpcore.NetworkBackend | None = None
        self._route = Route(proxy, proxy_kind, h2_only)

    @property
    def _backend(self) -> httpcore.NetworkBackend:
        native = self._native
        if native is None:
            native = self._native = _compat.native_backend()
        return native

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        rec = current()
        if rec is None:
            backend = self._backend
            return backend.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            with _compat.deadline(timeout):
                stream = self._connect(
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
        return _Setup(stream, self._route, proxy_tls)

    def _connect(
        self,
        rec: Recording,
        host: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Any,
    ) -> httpcore.NetworkStream:
        rec.mark("dns")
        try:
            addresses = _compat.resolve(host, port, local_address)
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        rec.resolved = tuple(address for address, _ in addresses)
        rec.mark("connect")
        error: Exception = httpcore.ConnectError(OSError(_compat.NO_ADDRESS))
        for address, attempt_port in addresses:
            start = perf()
            try:
                stream = self._backend.connect_tcp(
                    address, attempt_port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                rec.attempt(address, attempt_port, start, exc)
                error = exc
                continue
            rec.attempt(address, attempt_port, start, None)
            return stream
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        rec = current()
        if rec is None:
            return self._backend.connect_unix_socket(path, timeout, socket_options)
        rec.mark("connect")
        stream = self._backend.connect_unix_socket(path, timeout, socket_options)
        if rec.url.scheme in TLS_SCHEMES:
            return _Setup(stream, self._route, False)
        rec.mark("send_request")
        return _final(rec, stream, self._route)

    def sleep(self, seconds: float) -> None:
        rec = current()
        if rec is not None:
            rec.mark("retry")
        self._backend.sleep(seconds)


class _Setup(httpcore.NetworkStream):
    """A stream still being set up (TCP before TLS, a proxy before CONNECT)."""

    def __init__(self, inner: httpcore.NetworkStream, route: Route, proxy_tls: bool) -> None:
        self._inner = inner
        self._route = route
        self._proxy_tls = proxy_tls
        self.read = inner.read  # type: ignore[method-assign]
        self.write = inner.write  # type: ignore[method-assign]
        self.close = inner.close  # type: ignore[method-assign]
        self.get_extra_info = inner.get_extra_info  # type: ignore[method-assign]

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        rec = current()
        if rec is None:
            return self._inner.start_tls(ssl_context, server_hostname, timeout)
        role = self._route.before_tls(rec, self._proxy_tls)
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        finally:
            rec.tls_role = None
        if self._route.after_tls(rec, role, inner):
            return _final(rec, inner, self._route)
        return _Setup(inner, self._route, False)


class _Final(FinalStream, httpcore.NetworkStream):
    """The stream a connection's requests go out on: stamps each request's writes."""

    hook_read = False

    def __init__(
        self, inner: httpcore.NetworkStream, info: ConnectionInfo, opener: Recording
    ) -> None:
        self._inner = inner
        self._write = inner.write
        self.info = info
        self.opener = opener  # identity only: which request opened the connection
        if not self.hook_read:  # plain delegation: no extra frame per read
            self.read = inner.read  # type: ignore[method-assign]
        self.close = inner.close  # type: ignore[method-assign]
        self.get_extra_info = inner.get_extra_info  # type: ignore[method-assign]

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        rec = current()
        if rec is None or not buffer:
            return self._write(buffer, timeout)
        if rec.stream is not self:  # this request's first write here
            self.lend(rec)
        try:
            self._write(buffer, timeout)
        finally:
            if not rec.reading:
                rec.sent_ns = perf()
        return None

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return self._inner.start_tls(ssl_context, server_hostname, timeout)


class _FinalH2(_Final):
    """HTTP/2: writes after this request began reading (SETTINGS ACKs…) are not its sending."""

    hook_read = True

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        rec = current()
        if rec is not None and not rec.reading:
            self.begin_reading(rec)
        return self._inner.read(max_bytes, timeout)


def _final(rec: Recording, inner: httpcore.NetworkStream, route: Route) -> _Final:
    cls = _FinalH2 if route.final_kind(inner) else _Final
    return cls(inner, rec.connection_info(route.proxy is not None), rec)
