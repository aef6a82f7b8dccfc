"""The urllib3 seam: timed ``HTTPConnection``/``HTTPSConnection`` and their response class.

The only module that knows urllib3's connection internals. Each hook is a
method urllib3 (or ``http.client`` under it) calls on its own connection
object: ``_new_conn`` (DNS and every connect attempt, timed one by one, with
urllib3's own exceptions), ``_connect_tls_proxy`` (TLS with an HTTPS proxy),
``_tunnel`` (the ``CONNECT``), ``connect`` (the origin's TLS is what follows
them), ``request`` (sending) and ``response_class`` (``http.client``'s
documented response factory: the response head, and the body's end when
``http.client`` closes its file). The request being followed is the current
:class:`~tlstiming._trace.recording.Recording`; without one every hook is
urllib3's own method.
"""

from __future__ import annotations

import http.client
import socket
import sys
import time
from typing import Any

from urllib3 import connection as _u3
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util.connection import _set_socket_options, allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from tlstiming._recording import conn as _conn
from tlstiming._recording import delivery as _delivery
from tlstiming._recording.keys import SPAN
from tlstiming._trace.recording import FinalStream, Recording, current, perf
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.request import RequestSpan

__all__ = [
    "Exchange",
    "TimedHTTPConnection",
    "TimedHTTPSConnection",
    "TimedResponse",
    "handshake_of",
]

_VERSIONS = {9: "0.9", 10: "1.0", 11: "1.1"}


class Exchange(Recording):
    """A request followed through urllib3: who receives its span, how often urlopen ran."""

    owner: Any = None  # the Sinks (pool manager or requests adapter) its span goes to
    calls = 0  # urlopen calls for it: more than one is a retry
    carriers: tuple[Any, ...] = ()  # objects that keep its span (a requests PreparedRequest)

    def follow(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)`` with this request current; a failure ends it (the span
        is kept on the exception too)."""
        token = self.enter()
        try:
            result = call(*args, **kwargs)
        except BaseException as exc:
            self.leave(token)
            self.end(exc, exc)
            raise
        self.leave(token)
        return result

    def end(self, exc: BaseException | None, *carriers: Any) -> RequestSpan | None:
        """Seal (once), keep the span on each carrier, deliver it; ``None`` if already ended."""
        if not self.seal(perf(), time.time_ns(), exc):
            return None
        span = RequestSpan(self)
        for carrier in (*self.carriers, *carriers):
            if carrier is not None:
                carrier.__dict__[SPAN] = span
        owner = self.owner  # None for a timed pool used without a timed pool manager
        self.carriers = ()  # a kept span must not keep the request, the adapter alive
        self.owner = None
        if _delivery.global_sinks or getattr(owner, "_tlstiming_sinks", None):
            _delivery.deliver(owner, span)
        return span


def handshake_of(sock: Any) -> HandshakeSpan | None:
    """The handshake span of an ``SSLSocket`` (or urllib3's TLS-in-TLS ``SSLTransport``)."""
    span = _conn.span_of(getattr(sock, "sslobj", sock))
    return span if isinstance(span, HandshakeSpan) else None


def _connect(rec: Recording, conn: Any) -> socket.socket:
    """urllib3's ``create_connection``, with DNS and each attempt timed."""
    host, port = conn._dns_host, conn.port
    if host.startswith("["):
        host = host.strip("[]")
    try:
        host.encode("idna")
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    rec.mark("dns")
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    rec.resolved = tuple(str(info[4][0]) for info in infos)
    rec.mark("connect")
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        start = perf()
        sock = None
        try:
            sock = socket.socket(family, kind, proto)
            _set_socket_options(sock, conn.socket_options)
            if conn.timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(conn.timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(address)
        except OSError as exc:
            rec.attempt(str(address[0]), int(address[1]), start, exc)
            error = exc
            if sock is not None:
                sock.close()
            continue
        rec.attempt(str(address[0]), int(address[1]), start, None)
        return sock
    raise error if error is not None else OSError("getaddrinfo returns an empty list")


class TimedResponse(http.client.HTTPResponse):
    """``http.client``'s response, stamping the head and the body's end on the request."""

    _tlstiming_rec: Recording | None = None

    def begin(self) -> None:
        super().begin()
        rec = current()
        if rec is not None:  # the head arrived: the request ends when the body closes
            self._tlstiming_rec = rec
            _head(rec, self)

    def _close_conn(self) -> None:  # http.client: the body was read to its end, or closed
        super()._close_conn()  # type: ignore[misc]
        rec = self._tlstiming_rec
        if isinstance(rec, Exchange):
            self._tlstiming_rec = None
            rec.end(None, self)


def _head(rec: Recording, response: http.client.HTTPResponse) -> None:
    rec.head_ns = perf()
    rec.status_code = response.status
    rec.http_version = _VERSIONS.get(response.version)


class _Timed(FinalStream):
    """What both connection classes add: the setup marks, reuse, sending."""

    response_class: type[http.client.HTTPResponse] = TimedResponse
    _tlstiming_traced = False
    _tls_next: str | None = None  # the TLS role that follows the TCP connect or the tunnel

    def _new_conn(self) -> socket.socket:
        rec = current()
        if rec is None:
            return super()._new_conn()  # type: ignore[misc,no-any-return]
        u3: Any = self
        try:
            sock = _connect(rec, u3)
        except socket.gaierror as e:
            raise NameResolutionError(u3.host, u3, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(
                u3,
                f"Connection to {u3.host} timed out. (connect timeout={u3.timeout})",
            ) from e
        except OSError as e:
            raise NewConnectionError(u3, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", u3, u3.host, u3.port)
        self._after_tcp(rec)
        return sock

    def _after_tcp(self, rec: Recording) -> None:
        u3: Any = self
        tls = isinstance(self, _u3.HTTPSConnection)
        if u3._tunnel_host is not None:
            if tls and u3._tunnel_scheme == "https":
                _begin_tls(rec, "proxy_tls")
            else:
                rec.mark("proxy_connect")
        elif tls:
            forwarding = u3.proxy_is_forwarding and u3.proxy_config is not None
            _begin_tls(rec, "proxy_tls" if forwarding else "tls")

    def _tunnel(self) -> None:
        super()._tunnel()  # type: ignore[misc]
        rec = current()
        if rec is not None and isinstance(self, _u3.HTTPSConnection):
            _begin_tls(rec, "tls")

    def connect(self) -> None:
        rec = current()
        if rec is None:
            self._tlstiming_traced = False
            return super().connect()  # type: ignore[misc,no-any-return]
        try:
            super().connect()  # type: ignore[misc]
        finally:
            role, rec.tls_role = rec.tls_role, None
        u3: Any = self
        if role == "tls":
            rec.handshake = rec.handshake or handshake_of(u3.sock)
        self.info = rec.connection_info(u3.proxy is not None)
        self.opener = rec
        self.last_start, self.last_end = 0, -1
        self._tlstiming_traced = True
        rec.mark("send_request")
        return None

    def request(self, *args: Any, **kwargs: Any) -> None:
        rec = current()
        if rec is None:
            return super().request(*args, **kwargs)  # type: ignore[misc,no-any-return]
        u3: Any = self
        if u3.sock is None:  # what http.client's auto_open would do, timed
            self.connect()
        if self._tlstiming_traced and rec.stream is not self:
            self.lend(rec)
            if rec.reused and rec.marks:  # a retry on a pooled connection
                rec.mark("send_request")
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            rec.sent_ns = perf()
        return None


def _begin_tls(rec: Recording, role: str) -> None:
    rec.tls_role = role
    if role == "proxy_tls":
        rec.proxy_handshake = None
    else:
        rec.handshake = None
    rec.mark(role)


class TimedHTTPConnection(_Timed, _u3.HTTPConnection):
    """``urllib3.connection.HTTPConnection``, timed while a request is followed."""


class TimedHTTPSConnection(_Timed, _u3.HTTPSConnection):
    """``urllib3.connection.HTTPSConnection``, timed while a request is followed."""

    def _connect_tls_proxy(self, hostname: str, sock: socket.socket) -> Any:
        rec = current()
        result = super()._connect_tls_proxy(hostname, sock)
        if rec is not None and rec.tls_role == "proxy_tls":
            rec.tls_role = None
            rec.proxy_handshake = rec.proxy_handshake or handshake_of(result)
            if self._tunnel_host is not None:
                rec.mark("proxy_connect")
        return result


# urllib3 names a connection's class in its error messages: keep its names.
for _cls in (TimedHTTPConnection, TimedHTTPSConnection):
    _cls.__name__ = _cls.__qualname__ = _cls.__name__.removeprefix("Timed")
del _cls
