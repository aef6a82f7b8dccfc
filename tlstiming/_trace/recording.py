"""The client-neutral request-tracing seam: what a request records while it runs.

How a request is followed: the transport puts a :class:`Recording` in a
context variable for the duration of its request handling; httpcore then
runs the whole connection setup and the request's writes in that same
thread or task, so the network backend and the streams find it there
(``_async/httpcore.py`` and its generated twin ``_sync/httpcore.py``). They
append marks (``dns``, ``connect``, ``proxy_tls``, ``proxy_connect``,
``tls``, ``send_request``) and stamp the request's writes. Per-connection
state (who opened it, its handshake, when it was last used) lives on the
stream object that httpcore keeps for the connection's life
(:class:`FinalStream`): nothing global, nothing to clean up.
"""

from __future__ import annotations

import logging
import ssl
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from tlstiming._recording import conn as _conn
from tlstiming._recording import validate as _validate
from tlstiming._recording.context import TimedSSLContext
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.request import ConnectAttempt, ConnectionInfo, RequestRecord, RequestSpan

__all__ = [
    "TLS_SCHEMES",
    "FinalStream",
    "ProxyKind",
    "Recording",
    "RequestSink",
    "Route",
    "Sinks",
    "acquire",
    "adopt",
    "current",
    "perf",
    "route_handshake",
]

perf = time.perf_counter_ns
TLS_SCHEMES: Final = frozenset({"https", "wss"})
_current: ContextVar[Recording | None] = ContextVar("tlstiming_request", default=None)
current = _current.get
ProxyKind = str  # "http", "https", "socks5", "socks5h"
RequestSink = Callable[[RequestSpan], None]
"""A sink for request spans: called once per request, when it ends."""
_warned: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
_log = logging.getLogger("tlstiming")


class Recording(RequestRecord):
    """A :class:`RequestRecord` plus what the adapter needs while the request runs."""

    stream: FinalStream | None = None
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
        self.marks.append((name, perf()))

    def attempt(self, address: str, port: int, start: int, exc: BaseException | None) -> None:
        cause = None if exc is None else (exc.__cause__ or exc)
        self.attempts += (
            ConnectAttempt(
                address=address,
                port=port,
                start_ns=start,
                end_ns=perf(),
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


class Route:
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
        if rec.url.scheme not in TLS_SCHEMES:
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
            if rec.url.scheme in TLS_SCHEMES:
                rec.mark("proxy_connect")
                return False
        else:
            rec.handshake = rec.handshake or handshake_of(inner)
        rec.mark("send_request")
        return True

    def final_kind(self, inner: Any) -> bool:
        """Whether the request's stream needs the HTTP/2 read hook."""
        return self.h2_only or _alpn(inner) == "h2"


class FinalStream:
    """The bookkeeping of a connection's final stream, sync or async (a mixin).

    ``info`` describes the connection, ``opener`` is the request that opened
    it (identity only), ``last_start``/``last_end`` bound the last request
    that used it (its idle time is the gap).
    """

    info: ConnectionInfo
    opener: Recording
    last_start = 0
    last_end = -1

    def lend(self, rec: Recording) -> None:
        """``rec`` starts using this stream: note reuse and idle time."""
        t = perf()
        rec.stream = self
        rec.connection = self.info
        if self.opener is not rec:
            rec.reused = True
            rec.idle_ns = t - self.last_end if self.last_end >= self.last_start else 0
        rec.write_ns = t
        self.last_start = t

    def begin_reading(self, rec: Recording) -> None:
        """HTTP/2: ``rec`` reads for the first time. If another request's task
        flushed its frames (no write of its own was seen), it was sent by now."""
        if rec.stream is None:
            self.lend(rec)
            rec.sent_ns = rec.write_ns
        if rec.stream is self:
            rec.reading = True


def acquire(rec: Recording, stream: Any) -> None:
    """This request uses ``stream`` (if it is a final stream): note reuse and idle time."""
    if isinstance(stream, FinalStream):
        stream.lend(rec)


def adopt(context: ssl.SSLContext) -> ssl.SSLContext:
    """Use a caller's context as is; route its handshake spans to requests if it is timed."""
    if isinstance(context, TimedSSLContext):
        if route_handshake not in context.sinks:
            context.add_sink(route_handshake)
    elif context not in _warned:
        # Logged, not warned: a caller running with warnings as errors must see
        # exactly what the plain client does with this context.
        _warned.add(context)
        _log.warning(
            "tlstiming: a plain ssl.SSLContext was given; requests are timed but its TLS "
            "handshakes are not opened up. Build it with tlstiming.create_default_context() "
            "or tlstiming.TimedSSLContext(...) to get handshake spans."
        )
    return context


class Sinks:
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
