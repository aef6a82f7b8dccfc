"""urllib3's pools and pool managers, timed: where a request starts and ends, and TLS contexts.

Public through :mod:`tlstiming.urllib3` (and used by :mod:`tlstiming.requests`).
A pool's ``urlopen`` starts following a request unless a caller (the
requests adapter) already does; urllib3's own retries re-enter it, which the
request's span shows as a ``retry`` phase. A pool with no ``ssl_context``
gets a timed twin of the context urllib3 would build for each connection,
built once per pool and TLS settings: urllib3 still loads ``ca_certs`` /
``ca_cert_dir`` / ``ca_cert_data`` and the client certificate into it for
every new connection, as it does into its own, so that cost stays where it
was and shows (``span.handshake.context_stats``, the
``tls.trust_store_per_connection`` finding).
"""

from __future__ import annotations

import ssl
from typing import Any

import urllib3
from urllib3.util.ssl_ import create_urllib3_context, resolve_cert_reqs, resolve_ssl_version

from tlstiming._recording.context import TimedSSLContext
from tlstiming._trace.recording import Sinks, adopt, current, perf
from tlstiming._trace.urllib3_conn import Exchange, TimedHTTPConnection, TimedHTTPSConnection
from tlstiming.spans import build as _build

__all__ = [
    "URL",
    "TimedHTTPConnectionPool",
    "TimedHTTPSConnectionPool",
    "TimedPoolManager",
    "TimedProxyManager",
    "start",
    "start_url",
    "timed_urllib3_context",
]

_COPIED = (
    "minimum_version",
    "maximum_version",
    "options",
    "verify_flags",
    "post_handshake_auth",
    "hostname_checks_common_name",
    "keylog_filename",
)


def timed_urllib3_context(**kwargs: Any) -> TimedSSLContext:
    """``urllib3.util.create_urllib3_context(**kwargs)``, as a :class:`TimedSSLContext`.

    urllib3 builds the context (a fresh one holds no certificate or key, so
    every setting it made can be read back) and a timed context takes each
    setting over.
    """
    plain = create_urllib3_context(**kwargs)
    timed = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for name in _COPIED:
        value = getattr(plain, name, None)
        if value is not None and getattr(timed, name, None) != value:
            setattr(timed, name, value)
    if plain.verify_mode == ssl.CERT_REQUIRED:
        timed.verify_mode, timed.check_hostname = plain.verify_mode, plain.check_hostname
    else:
        timed.check_hostname, timed.verify_mode = plain.check_hostname, plain.verify_mode
    return timed


class URL:
    """What a request span reads of a URL (``tlstiming.typing.URLLike``)."""

    __slots__ = ("host", "port", "raw_path", "scheme")

    def __init__(self, scheme: str, host: str, port: int | None, target: str) -> None:
        self.scheme = scheme
        self.host = host.strip("[]")
        self.port = port
        self.raw_path = target.encode("ascii", "replace") if target.startswith("/") else b"/"


def _target(url: str) -> str:
    """The path of a URL urllib3 got (absolute through a forwarding proxy)."""
    if url.startswith("/"):
        return url
    return urllib3.util.parse_url(url).request_uri


def start(owner: Any, method: str, scheme: str, host: str, port: int | None, url: str) -> Exchange:
    """A new request to follow; make it current with ``enter()``."""
    rec = Exchange(next(_build.ids), perf(), method, URL(scheme, host, port, _target(url)))
    rec.owner = owner
    return rec


class _LazyURL:
    """An absolute URL, parsed (by urllib3) only when a span reads it: off the hot path."""

    __slots__ = ("_parsed", "_url")

    def __init__(self, url: str) -> None:
        self._url = url
        self._parsed: URL | None = None

    def _get(self) -> URL:
        parsed = self._parsed
        if parsed is None:
            u = urllib3.util.parse_url(self._url)
            parsed = self._parsed = URL(u.scheme or "http", u.host or "", u.port, u.request_uri)
        return parsed

    scheme = property(lambda self: self._get().scheme)
    host = property(lambda self: self._get().host)
    port = property(lambda self: self._get().port)
    raw_path = property(lambda self: self._get().raw_path)


def start_url(owner: Any, method: str, url: str) -> Exchange:
    """A new request to an absolute URL (what requests sends)."""
    rec = Exchange(next(_build.ids), perf(), method, _LazyURL(url))
    rec.owner = owner
    return rec


class _TimedPool:
    """``urlopen`` for both pool classes: the request's start, its retries, its failure."""

    _tlstiming_owner: Any = None

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        rec = current()
        if rec is not None:  # the requests adapter follows it, or urllib3 retries
            if isinstance(rec, Exchange):
                if rec.calls:
                    rec.mark("retry")
                rec.calls += 1
            return super().urlopen(method, url, *args, **kwargs)  # type: ignore[misc]
        pool: Any = self
        rec = start(self._tlstiming_owner, method, pool.scheme, pool.host, pool.port, url)
        rec.calls = 1
        return rec.follow(super().urlopen, method, url, *args, **kwargs)  # type: ignore[misc]


class TimedHTTPConnectionPool(_TimedPool, urllib3.HTTPConnectionPool):
    """``urllib3.HTTPConnectionPool`` whose connections are timed."""

    ConnectionCls = TimedHTTPConnection


class TimedHTTPSConnectionPool(_TimedPool, urllib3.HTTPSConnectionPool):
    """``urllib3.HTTPSConnectionPool`` whose connections are timed, on a timed context."""

    ConnectionCls = TimedHTTPSConnection
    _tlstiming_context: tuple[tuple[Any, ...], TimedSSLContext] | None = None

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        if conn.ssl_context is None:
            conn.ssl_context = self._timed_context(conn)
        else:
            adopt(conn.ssl_context)
        return conn

    def _timed_context(self, conn: Any) -> TimedSSLContext:
        """One context per pool and TLS settings: what urllib3 builds per connection."""
        key = (
            conn.cert_reqs,
            conn.ssl_version,
            conn.ssl_minimum_version,
            conn.ssl_maximum_version,
            conn.ca_certs,
            conn.ca_cert_dir,
            conn.ca_cert_data,
        )
        cached = self._tlstiming_context
        if cached is not None and cached[0] == key:
            return cached[1]
        context = timed_urllib3_context(
            ssl_version=resolve_ssl_version(conn.ssl_version),
            ssl_minimum_version=conn.ssl_minimum_version,
            ssl_maximum_version=conn.ssl_maximum_version,
            cert_reqs=resolve_cert_reqs(conn.cert_reqs),
        )
        if not (conn.ca_certs or conn.ca_cert_dir or conn.ca_cert_data):
            context.load_default_certs()  # urllib3 does it for each context it builds
        adopt(context)
        self._tlstiming_context = (key, context)
        return context


# urllib3 names a pool's class in its error messages: keep its names.
for _cls in (TimedHTTPConnectionPool, TimedHTTPSConnectionPool):
    _cls.__name__ = _cls.__qualname__ = _cls.__name__.removeprefix("Timed")
del _cls

_POOLS = {"http": TimedHTTPConnectionPool, "https": TimedHTTPSConnectionPool}


class _TimedManager(Sinks):
    """Timed pools for a pool manager; its sinks receive their request spans."""

    def _timed(self, sinks: tuple[Any, ...]) -> None:
        manager: Any = self
        manager.pool_classes_by_scheme = _POOLS
        self._tlstiming_sinks = sinks
        context = manager.connection_pool_kw.get("ssl_context")
        if context is not None:
            adopt(context)

    def _new_pool(self, scheme: str, host: str, port: int, request_context: Any = None) -> Any:
        pool = super()._new_pool(scheme, host, port, request_context)  # type: ignore[misc]
        if isinstance(pool, _TimedPool):
            pool._tlstiming_owner = self
        return pool


class TimedPoolManager(_TimedManager, urllib3.PoolManager):
    """``urllib3.PoolManager`` whose requests yield request spans."""

    def __init__(self, *args: Any, sinks: tuple[Any, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timed(sinks)


class TimedProxyManager(_TimedManager, urllib3.ProxyManager):
    """``urllib3.ProxyManager`` whose requests yield request spans."""

    def __init__(self, *args: Any, sinks: tuple[Any, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timed(sinks)
        proxy_context = self.proxy_ssl_context
        if proxy_context is not None:
            adopt(proxy_context)
