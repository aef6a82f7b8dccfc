"""The httpcore seam: a timing ``NetworkBackend`` and the streams it returns.

The only module that knows httpcore's network layer. It uses public httpcore
API only (``NetworkBackend``/``AsyncNetworkBackend``, ``SyncBackend``,
``AnyIOBackend``, ``NetworkStream``, ``ConnectError``/``ConnectTimeout``) and
none of httpcore's ``trace`` event names: a trace callback costs httpcore
string formatting on ~10 events per request (measured: +2.3 % on a
keep-alive request), and its names are documented as unstable.

How a request is followed: the transport puts a :class:`Recording` in a
context variable for the duration of ``handle_request``; httpcore then runs
the whole connection setup and the request's writes in that same thread or
task, so the backend and the streams find it there. They append marks
(``dns``, ``connect``, ``proxy_tls``, ``proxy_connect``, ``tls``,
``send_request``) and stamp the request's writes. Per-connection state
(who opened it, its handshake, when it was last used) lives on the stream
object that httpcore keeps for the connection's life: nothing global, nothing
to clean up.
"""

from __future__ import annotations

import socket
import time
from contextvars import ContextVar
from typing import Any, Final

import httpcore

from tlstiming._recording import conn as _conn
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.request import ConnectAttempt, ConnectionInfo, RequestRecord

__all__ = [
    "AsyncTimingBackend",
    "ProxyKind",
    "Recording",
    "TimingBackend",
    "acquire",
    "current",
    "route_handshake",
]

_perf = time.perf_counter_ns
_TLS_SCHEMES: Final = frozenset({"https", "wss"})
_current: ContextVar[Recording | None] = ContextVar("tlstiming_request", default=None)
current = _current.get
ProxyKind = str  # "http", "https", "socks5", "socks5h"


class Recording(RequestRecord):
    """A :class:`RequestRecord` plus what the adapter needs while the request runs."""

    stream: _Final | _AsyncFinal | None = None
    reading = False
    tls_role: str | None = None
    handshake: HandshakeSpan | None = None
    proxy_handshake: HandshakeSpan | None = None
    resolved: tuple[str, ...] = ()
    attempts: tuple[ConnectAttempt, ...] = ()

    def enter(self) -> Any:
        """Make this the current request of this thread or task; returns the reset token."""
        return _current.set(self)

    @staticmethod
    def leave(token: Any) -> None:
        _current.reset(token)

    def mark(self, name: str) -> None:
        if self.marks is None:
            self.marks = []
        self.marks.append((name, _perf()))

    def attempt(self, address: str, port: int, start: int, exc: BaseException | None) -> None:
        cause = None if exc is None else (exc.__cause__ or exc)
        self.attempts += (
            ConnectAttempt(
                address=address,
                port=port,
                start_ns=start,
                end_ns=_perf(),
                error_type=None if cause is None else _qualified(cause),
                error_message=None if cause is None else str(cause),
            ),
        )

    def connection_info(self, proxied: bool) -> ConnectionInfo:
        return ConnectionInfo(
            opened_by=f"{self.id:016x}",
            handshake=self.handshake,
            proxy_handshake=self.proxy_handshake,
            resolved=self.resolved,
            attempts=self.attempts,
            proxied=proxied,
        )

    def seal(self, end: int, unix: int, exc: BaseException | None) -> bool:
        """Record the end (once); returns False if the request had already ended."""
        if self.end_ns is not None:
            return False
        self.end_ns = end
        self.end_unix_ns = unix
        if exc is not None:
            self.error_type = _qualified(exc)
            self.error_message = str(exc)
        stream = self.stream
        if stream is not None:
            stream.last_end = end
            self.stream = None
        elif self.connection is None and self.marks is not None:
            self.connection = self.connection_info(False)
        return True


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    module = "" if cls.__module__ == "builtins" else cls.__module__ + "."
    return module + cls.__qualname__


def route_handshake(span: HandshakeSpan) -> None:
    """A context sink: hand a handshake span to the request whose TLS setup made it.

    The only way to get the span of a handshake that *failed* (the
    connection object never reaches the caller). Runs on the thread that
    made the handshake; outside a request it does nothing.
    """
    rec = _current.get()
    if rec is None or rec.tls_role is None:
        return
    if rec.tls_role == "proxy_tls":
        rec.proxy_handshake = span
    else:
        rec.handshake = span


def handshake_of(stream: Any) -> HandshakeSpan | None:
    """The handshake span of a TLS stream httpcore returned, if a TimedSSLContext made it."""
    for key in ("ssl_object", "socket"):
        span = _conn.span_of(stream.get_extra_info(key))
        if isinstance(span, HandshakeSpan):
            return span
    return None


def _alpn(stream: Any) -> str | None:
    ssl_object = stream.get_extra_info("ssl_object")
    return None if ssl_object is None else str(ssl_object.selected_alpn_protocol() or "") or None


class _Route:
    """What a backend knows about the transport it serves."""

    __slots__ = ("h2_only", "proxy", "proxy_kind")

    def __init__(
        self, proxy: tuple[str, int] | None, proxy_kind: ProxyKind | None, h2_only: bool
    ) -> None:
        self.proxy = proxy
        self.proxy_kind = proxy_kind
        self.h2_only = h2_only

    def after_tcp(self, rec: Recording, host: str, port: int) -> tuple[bool, bool]:
        """Mark what follows the TCP connect; returns (final stream?, proxy TLS next?)."""
        to_proxy = self.proxy is not None and (host, port) == self.proxy
        proxy_tls = to_proxy and self.proxy_kind == "https"
        if rec.url.scheme not in _TLS_SCHEMES:
            if proxy_tls:
                return False, True
            rec.mark("send_request")
            return True, False
        if to_proxy and self.proxy_kind == "http":
            rec.mark("proxy_connect")
        return False, proxy_tls

    def before_tls(self, rec: Recording, proxy_tls: bool) -> str:
        role = "proxy_tls" if proxy_tls else "tls"
        rec.tls_role = role
        if proxy_tls:
            rec.proxy_handshake = None
        else:
            rec.handshake = None
        rec.mark(role)
        return role

    def after_tls(self, rec: Recording, role: str, inner: Any) -> bool:
        """Record the handshake and mark what follows; returns whether the stream is final."""
        rec.tls_role = None
        if role == "proxy_tls":
            rec.proxy_handshake = rec.proxy_handshake or handshake_of(inner)
            if rec.url.scheme in _TLS_SCHEMES:
                rec.mark("proxy_connect")
                return False
        else:
            rec.handshake = rec.handshake or handshake_of(inner)
        rec.mark("send_request")
        return True

    def final_kind(self, inner: Any) -> bool:
        """Whether the request's stream needs the HTTP/2 read hook."""
        return self.h2_only or _alpn(inner) == "h2"


# -- sync ----------------------------------------------------------------------


class TimingBackend(httpcore.NetworkBackend):
    """Resolve (timed), then connect to each address in turn (each timed).

    Mirrors ``socket.create_connection`` as httpcore's ``SyncBackend`` uses
    it: ``getaddrinfo(host, port, 0, SOCK_STREAM)``, every address in order
    with the connect ``timeout`` per attempt, the last error raised if all
    fail. Each attempt is ``SyncBackend.connect_tcp`` on the address, so
    ``local_address``, ``socket_options`` and ``TCP_NODELAY`` are applied
    exactly as without tlstiming.
    """

    def __init__(
        self,
        proxy: tuple[str, int] | None = None,
        proxy_kind: ProxyKind | None = None,
        h2_only: bool = False,
    ) -> None:
        self._backend = httpcore.SyncBackend()
        self._route = _Route(proxy, proxy_kind, h2_only)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        rec = _current.get()
        if rec is None:
            return self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        rec.mark("dns")
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        rec.resolved = tuple(str(info[4][0]) for info in infos)
        rec.mark("connect")
        error: Exception = httpcore.ConnectError(OSError("getaddrinfo returns an empty list"))
        for info in infos:
            address, attempt_port = str(info[4][0]), int(info[4][1])
            start = _perf()
            try:
                stream = self._backend.connect_tcp(
                    address, attempt_port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                rec.attempt(address, attempt_port, start, exc)
                error = exc
                continue
            rec.attempt(address, attempt_port, start, None)
            final, proxy_tls = self._route.after_tcp(rec, host, port)
            if final:
                return _final(rec, stream, self._route)
            return _Setup(stream, self._route, proxy_tls)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        rec = _current.get()
        if rec is None:
            return self._backend.connect_unix_socket(path, timeout, socket_options)
        rec.mark("connect")
        stream = self._backend.connect_unix_socket(path, timeout, socket_options)
        if rec.url.scheme in _TLS_SCHEMES:
            return _Setup(stream, self._route, False)
        rec.mark("send_request")
        return _final(rec, stream, self._route)

    def sleep(self, seconds: float) -> None:
        rec = _current.get()
        if rec is not None:
            rec.mark("retry")
        self._backend.sleep(seconds)


class _Setup(httpcore.NetworkStream):
    """A stream still being set up (TCP before TLS, a proxy before CONNECT)."""

    def __init__(self, inner: httpcore.NetworkStream, route: _Route, proxy_tls: bool) -> None:
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
        rec = _current.get()
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


class _Final(httpcore.NetworkStream):
    """The stream a connection's requests go out on: stamps each request's writes."""

    hook_read = False

    def __init__(
        self, inner: httpcore.NetworkStream, info: ConnectionInfo, opener: Recording
    ) -> None:
        self._inner = inner
        self._write = inner.write
        self.info = info
        self.opener = opener  # identity only: which request opened the connection
        self.last_start = 0
        self.last_end = -1
        if not self.hook_read:  # plain delegation: no extra frame per read
            self.read = inner.read  # type: ignore[method-assign]
        self.close = inner.close  # type: ignore[method-assign]
        self.get_extra_info = inner.get_extra_info  # type: ignore[method-assign]

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        rec = _current.get()
        if rec is None or not buffer:
            return self._write(buffer, timeout)
        if rec.stream is not self:  # this request's first write here (inlined: hot path)
            t = _perf()
            rec.stream = self
            rec.connection = self.info
            if self.opener is not rec:
                rec.reused = True
                rec.write_ns = t
                rec.idle_ns = t - self.last_end if self.last_end >= self.last_start else 0
            self.last_start = t
        try:
            self._write(buffer, timeout)
        finally:
            if not rec.reading:
                rec.sent_ns = _perf()
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
        rec = _current.get()
        if rec is not None and not rec.reading:
            _begin_reading(rec, self)
        return self._inner.read(max_bytes, timeout)


def _final(rec: Recording, inner: httpcore.NetworkStream, route: _Route) -> _Final:
    cls = _FinalH2 if route.final_kind(inner) else _Final
    return cls(inner, rec.connection_info(route.proxy is not None), rec)


def _async_final(rec: Recording, inner: httpcore.AsyncNetworkStream, route: _Route) -> _AsyncFinal:
    cls = _AsyncFinalH2 if route.final_kind(inner) else _AsyncFinal
    return cls(inner, rec.connection_info(route.proxy is not None), rec)


def _begin_reading(rec: Recording, stream: _Final | _AsyncFinal) -> None:
    """HTTP/2: this request reads for the first time. If another request's task
    flushed its frames (no write of its own was seen), it was sent by now."""
    if rec.stream is None:
        acquire(rec, stream)
        rec.sent_ns = rec.write_ns
    if rec.stream is stream:
        rec.reading = True


def acquire(rec: Recording, stream: Any) -> None:
    """This request uses ``stream`` (a final stream): note reuse and idle time."""
    if not isinstance(stream, (_Final, _AsyncFinal)):
        return
    t = _perf()
    rec.stream = stream
    rec.connection = stream.info
    if stream.opener is not rec:
        rec.reused = True
        rec.idle_ns = t - stream.last_end if stream.last_end >= stream.last_start else 0
    rec.write_ns = t
    stream.last_start = t


# -- async ---------------------------------------------------------------------


class AsyncTimingBackend(httpcore.AsyncNetworkBackend):
    """The async twin of :class:`TimingBackend`, on anyio (asyncio or trio).

    Resolves with ``anyio.getaddrinfo`` in anyio's order (first IPv6, first
    IPv4, then the rest), then connects to each address in turn with
    ``AnyIOBackend.connect_tcp``; ``timeout`` bounds the whole connect, DNS
    included, as in anyio. Unlike anyio's own ``connect_tcp`` the attempts
    are sequential (no Happy Eyeballs race): every attempt has a time of its own.
    """

    def __init__(
        self,
        proxy: tuple[str, int] | None = None,
        proxy_kind: ProxyKind | None = None,
        h2_only: bool = False,
    ) -> None:
        self._native: httpcore.AsyncNetworkBackend | None = None
        self._route = _Route(proxy, proxy_kind, h2_only)

    @property
    def _backend(self) -> httpcore.AsyncNetworkBackend:
        # httpcore's own choice (its AutoBackend): trio's backend under trio,
        # anyio's otherwise, so connections and their errors are the same.
        native = self._native
        if native is None:
            native = self._native = (
                httpcore.TrioBackend() if _library() == "trio" else httpcore.AnyIOBackend()
            )
        return native

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:

        rec = _current.get()
        if rec is None:
            return await self._backend.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        try:
            with _fail_after(timeout):
                stream = await self._connect(rec, host, port, local_address, socket_options)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(exc) from exc
        final, proxy_tls = self._route.after_tcp(rec, host, port)
        if final:
            return _async_final(rec, stream, self._route)
        return _AsyncSetup(stream, self._route, proxy_tls)

    async def _connect(
        self,
        rec: Recording,
        host: str,
        port: int,
        local_address: str | None,
        socket_options: Any,
    ) -> httpcore.AsyncNetworkStream:

        rec.mark("dns")
        family = socket.AF_UNSPEC
        try:
            if local_address:
                family = (await _getaddrinfo(local_address, None))[0][0]
            infos = await _getaddrinfo(host, port, family)
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        addresses = _anyio_order([(info[0], str(info[4][0]), int(info[4][1])) for info in infos])
        rec.resolved = tuple(address for address, _ in addresses)
        rec.mark("connect")
        error: Exception = httpcore.ConnectError(OSError("All connection attempts failed"))
        for address, attempt_port in addresses:
            start = _perf()
            try:
                stream = await self._backend.connect_tcp(
                    address, attempt_port, None, local_address, socket_options
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
        rec = _current.get()
        if rec is None:
            return await self._backend.connect_unix_socket(path, timeout, socket_options)
        rec.mark("connect")
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        if rec.url.scheme in _TLS_SCHEMES:
            return _AsyncSetup(stream, self._route, False)
        rec.mark("send_request")
        return _async_final(rec, stream, self._route)

    async def sleep(self, seconds: float) -> None:
        rec = _current.get()
        if rec is not None:
            rec.mark("retry")
        await self._backend.sleep(seconds)


def _anyio_order(infos: list[tuple[int, str, int]]) -> list[tuple[str, int]]:
    """First IPv6 address, then first IPv4 address, then the rest: anyio's order."""
    out: list[tuple[str, int]] = []
    v6 = v4 = False
    for family, address, port in infos:
        if family == socket.AF_INET6 and not v6:
            v6 = True
            out.insert(0, (address, port))
        elif family == socket.AF_INET and not v4 and v6:
            v4 = True
            out.insert(1, (address, port))
        else:
            out.append((address, port))
    return out


class _AsyncSetup(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, route: _Route, proxy_tls: bool) -> None:
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
        rec = _current.get()
        if rec is None:
            return await self._inner.start_tls(ssl_context, server_hostname, timeout)
        role = self._route.before_tls(rec, self._proxy_tls)
        try:
            inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        finally:
            rec.tls_role = None
        if self._route.after_tls(rec, role, inner):
            return _async_final(rec, inner, self._route)
        return _AsyncSetup(inner, self._route, False)


class _AsyncFinal(httpcore.AsyncNetworkStream):
    hook_read = False

    def __init__(
        self, inner: httpcore.AsyncNetworkStream, info: ConnectionInfo, opener: Recording
    ) -> None:
        self._inner = inner
        self._write = inner.write
        self.info = info
        self.opener = opener  # identity only: which request opened the connection
        self.last_start = 0
        self.last_end = -1
        if not self.hook_read:  # plain delegation: no extra frame per read
            self.read = inner.read  # type: ignore[method-assign]
        self.aclose = inner.aclose  # type: ignore[method-assign]
        self.get_extra_info = inner.get_extra_info  # type: ignore[method-assign]

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        rec = _current.get()
        if rec is None or not buffer:
            return await self._write(buffer, timeout)
        if rec.stream is not self:
            acquire(rec, self)
        try:
            await self._write(buffer, timeout)
        finally:
            if not rec.reading:
                rec.sent_ns = _perf()
        return None

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)


class _AsyncFinalH2(_AsyncFinal):
    hook_read = True

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        rec = _current.get()
        if rec is not None and not rec.reading:
            _begin_reading(rec, self)
        return await self._inner.read(max_bytes, timeout)


def _library() -> str:
    """The running async library, as httpcore tells them apart."""
    try:
        import sniffio  # noqa: PLC0415

        return str(sniffio.current_async_library())
    except Exception:  # sniffio missing or undecided: anyio handles it
        return "asyncio"


async def _getaddrinfo(host: str, port: int | None, family: int = 0) -> list[Any]:
    """Resolve with the running library's resolver (trio's under trio)."""
    if _library() == "trio":
        import trio  # noqa: PLC0415

        return list(
            await trio.socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        )
    import anyio  # noqa: PLC0415

    return list(await anyio.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM))


class _TrioTimeout:
    """``trio.fail_after`` that raises ``TimeoutError``, as ``anyio.fail_after`` does."""

    def __init__(self, timeout: float | None) -> None:
        import trio  # noqa: PLC0415

        self._trio = trio
        self._scope: Any = trio.fail_after(timeout) if timeout is not None else None

    def __enter__(self) -> None:
        if self._scope is not None:
            self._scope.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        if self._scope is None:
            return False
        try:
            return bool(self._scope.__exit__(*exc))
        except self._trio.TooSlowError as timeout:
            raise TimeoutError from timeout


def _fail_after(timeout: float | None) -> Any:
    """A deadline for the whole connect, in the running library's terms."""
    if _library() == "trio":
        return _TrioTimeout(timeout)
    import anyio  # noqa: PLC0415

    return anyio.fail_after(timeout)
