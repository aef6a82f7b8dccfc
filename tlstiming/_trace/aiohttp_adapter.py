"""The aiohttp adapter: a trace config and a connector that together record request spans.

The only module that knows aiohttp. Two public aiohttp seams, joined:

- the ``TraceConfig`` signals (sent in the requesting task, or in the
  DNS task aiohttp shares between concurrent lookups, each with the
  request's own ``trace_config_ctx``) carry the marks: request start, DNS
  start/end or cache hit, connection create start/end, headers and body
  chunks sent, response head, exception;
- the connector's ``connect()`` (awaited in the requesting task) hands
  over the connection a request got, fresh or pooled: its transport's
  ``ssl_object`` holds the handshake span (aiohttp has no TLS signal), its
  protocol keys the per-connection bookkeeping (who opened it, when it was
  last used), and the connection's release callback ends the request.

A handshake that fails never reaches the caller: the context's
``route_handshake`` sink gives it to the current :class:`Recording` (set
in the requesting task; asyncio runs the handshake's callbacks in a copy
of that task's context).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import SimpleNamespace
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from tlstiming._recording import delivery as _delivery
from tlstiming._recording import validate as _validate
from tlstiming._recording.keys import SPAN
from tlstiming._trace.recording import (
    TLS_SCHEMES,
    FinalStream,
    Recording,
    RequestSink,
    Sinks,
    current,
    handshake_of,
    perf,
)
from tlstiming.spans import build as _build
from tlstiming.spans.request import ConnectAttempt, RequestSpan

__all__ = ["RequestSink", "TimedConnector", "TimedResolver", "Tracer"]

_unix = time.time_ns
Handler = Callable[[aiohttp.ClientSession, SimpleNamespace, Any], Awaitable[None]]


class _URL:
    """What a request span reads of a ``yarl.URL`` (``tlstiming.typing.URLLike``),
    read when the span is (off the request's path)."""

    __slots__ = ("_url",)

    def __init__(self, url: yarl.URL) -> None:
        self._url = url

    @property
    def scheme(self) -> str:
        return self._url.scheme

    @property
    def host(self) -> str:
        return self._url.raw_host or ""

    @property
    def port(self) -> int | None:
        return self._url.explicit_port

    @property
    def raw_path(self) -> bytes:
        return self._url.raw_path.encode("ascii", "replace")


class _Recording(Recording):
    """A request's record, plus when its connection's creation began."""

    create_ns: int | None = None
    token: Any = None  # the context variable's reset token while the request runs


class _Connection(FinalStream):
    """The bookkeeping of one pooled aiohttp connection (keyed by its protocol)."""

    def __init__(self, rec: Recording) -> None:
        self.info = rec.connection_info(False)
        self.opener = rec


class Tracer(Sinks):
    """The request sinks and the ``aiohttp.TraceConfig`` whose signals feed them."""

    def __init__(self, sinks: Iterable[RequestSink] = ()) -> None:
        self._tlstiming_sinks = _validate.sinks("sinks", sinks)
        config = self.config = aiohttp.TraceConfig()
        signals: tuple[tuple[Any, Handler], ...] = (
            (config.on_request_start, self._start),
            (config.on_connection_create_start, _create_start),
            (config.on_dns_resolvehost_start, _mark("dns")),
            (config.on_dns_resolvehost_end, _mark("connect")),
            (config.on_dns_cache_hit, _mark("connect")),
            (config.on_request_headers_sent, _sent),
            (config.on_request_chunk_sent, _sent),
            (config.on_request_end, self._head),
            (config.on_request_exception, self._failed),
        )
        for signal, handler in signals:
            signal.append(handler)

    async def _start(self, _s: Any, ctx: SimpleNamespace, params: Any) -> None:
        url = _URL(params.url)
        rec = ctx.tlstiming = _Recording(next(_build.ids), perf(), params.method, url)
        rec.token = rec.enter()

    async def _head(self, _s: Any, ctx: SimpleNamespace, params: Any) -> None:
        rec: _Recording | None = getattr(ctx, "tlstiming", None)
        if rec is None:
            return
        rec.head_ns = perf()
        _leave(rec)
        response: aiohttp.ClientResponse = params.response
        rec.status_code = response.status
        version = response.version
        rec.http_version = None if version is None else f"{version.major}.{version.minor}"
        connection = response.connection
        if connection is None:  # the body was read already (or there was none)
            self._end(rec, response)
        else:
            connection.add_callback(lambda: self._end(rec, response))

    def _end(self, rec: Recording, response: aiohttp.ClientResponse) -> None:
        if not rec.seal(perf(), _unix(), None):
            return
        span = RequestSpan(rec)
        response.__dict__[SPAN] = span
        if self._tlstiming_sinks or _delivery.global_sinks:
            _delivery.deliver(self, span)

    async def _failed(self, _s: Any, ctx: SimpleNamespace, params: Any) -> None:
        rec: _Recording | None = getattr(ctx, "tlstiming", None)
        if not isinstance(rec, _Recording):
            return
        _leave(rec)
        exc: BaseException = params.exception
        if rec.seal(perf(), _unix(), exc):
            span = RequestSpan(rec)
            with contextlib.suppress(AttributeError):  # span_of(exc)
                exc.__dict__[SPAN] = span
            _delivery.deliver(self, span)


def _leave(rec: _Recording) -> None:
    token, rec.token = rec.token, None
    if token is not None:
        try:
            Recording.leave(token)
        except ValueError:  # ended in another context than it began (a cancelled task)
            return


def _mark(name: str) -> Handler:
    async def handler(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        rec: Recording | None = getattr(ctx, "tlstiming", None)
        if rec is not None and rec.marks is not None:
            rec.mark(name)

    return handler


async def _create_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    rec: _Recording | None = getattr(ctx, "tlstiming", None)
    if rec is None:
        return
    rec.create_ns = perf()
    # An earlier connection of this request (a redirect, aiohttp's retry after a
    # pooled connection was closed): fold it into one retry phase.
    earlier = rec.marks or ([("retry", rec.write_ns)] if rec.write_ns is not None else [])
    rec.marks = earlier
    if earlier:
        rec.mark("retry")
    if rec.url.scheme in TLS_SCHEMES:
        rec.tls_role = "tls"  # route_handshake: a failed handshake's span comes this way
        rec.handshake = None


async def _sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    rec: Recording | None = getattr(ctx, "tlstiming", None)
    if rec is not None:
        rec.sent_ns = perf()


class TimedConnector(aiohttp.TCPConnector):
    """``aiohttp.TCPConnector`` that tells the current request which connection it got.

    Takes every ``aiohttp.TCPConnector`` argument with the same meaning; the
    resolver (given or aiohttp's default) is wrapped to record the addresses
    it returns.
    """

    def __init__(self, *, resolver: AbstractResolver | None = None, **kwargs: Any) -> None:
        self._tlstiming_own_resolver = resolver is None
        inner = aiohttp.DefaultResolver() if resolver is None else resolver
        self._tlstiming_resolver = TimedResolver(inner)
        super().__init__(resolver=self._tlstiming_resolver, **kwargs)
        self._tlstiming_connections: weakref.WeakKeyDictionary[Any, _Connection] = (
            weakref.WeakKeyDictionary()
        )

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        rec = current()
        if not isinstance(rec, _Recording):
            return await super().connect(req, traces, timeout)
        try:
            conn = await super().connect(req, traces, timeout)
        except BaseException:
            if rec.handshake is not None and rec.marks is not None:  # the handshake failed
                rec.marks.append(("tls", rec.handshake.start_ns))
            raise
        finally:
            rec.tls_role = None
        if conn.protocol is not None:
            self._lend(rec, conn.protocol)
        return conn

    def _lend(self, rec: _Recording, protocol: Any) -> None:
        state = self._tlstiming_connections.get(protocol)
        if state is None:
            _opened(rec, protocol.transport)
            state = self._tlstiming_connections[protocol] = _Connection(rec)
            rec.reused, rec.idle_ns = False, None
        state.lend(rec)
        if state.opener is rec:
            rec.mark("send_request")

    def close(self, *args: Any, **kwargs: Any) -> Any:
        # As the connector's own: async in aiohttp 3.10+, an awaitable before.
        closing = super().close(*args, **kwargs)
        if not self._tlstiming_own_resolver:
            return closing
        return _both(closing, self._tlstiming_resolver)


async def _both(closing: Awaitable[None], resolver: AbstractResolver) -> None:
    await closing
    await resolver.close()


def _opened(rec: _Recording, transport: Any) -> None:
    """A fresh connection: its handshake, its peer, the TCP/TLS boundary."""
    marks = rec.marks if rec.marks is not None else []
    rec.marks = marks
    start = rec.create_ns or rec.start_ns
    last_retry = max((i for i, (name, _) in enumerate(marks) if name == "retry"), default=-1)
    if not any(name == "connect" for name, _ in marks[last_retry + 1 :]):
        marks.append(("connect", start))
    connected = perf()
    if transport is not None and rec.url.scheme in TLS_SCHEMES:
        rec.handshake = rec.handshake or handshake_of(transport)
        if rec.handshake is not None:
            connected = rec.handshake.start_ns
            marks.append(("tls", connected))
    start = max((t for name, t in marks if name == "connect"), default=start)
    peer = None if transport is None else transport.get_extra_info("peername")
    if peer:
        rec.attempts += (
            ConnectAttempt(
                address=str(peer[0]), port=int(peer[1]), start_ns=start, end_ns=connected
            ),
        )


class TimedResolver(AbstractResolver):
    """Wraps a resolver: records what it returns on the request that asked."""

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        result = await self.inner.resolve(host, port, family)
        rec = current()
        if rec is not None:
            rec.resolved = tuple(str(r["host"]) for r in result)
        return result

    async def close(self) -> None:
        await self.inner.close()
