"""Bounded HTTP fetches for revocation checks: a hard total deadline and a size cap.

httpx's timeouts bound each operation (connect, each read), not the whole
request: a responder that trickles one byte per second never trips a read
timeout. Here the request runs on a worker thread while the caller waits on a
future for at most the deadline. At the deadline the caller gives up and
shuts the request's socket down (captured through httpcore's ``trace``
extension when the TCP connection opens), which ends the worker's blocked
read at once: neither the caller nor the worker outlives the deadline by
more than a wake-up. Connections are never kept alive, so every request has
a socket of its own to shut down.

Only ``http://`` URLs are fetched: OCSP and CRL distribution is plain HTTP
(RFC 6960, RFC 5280), and an HTTPS fetch would need a revocation check of its
own. Redirects are not followed, proxies from the environment are not used.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from tlstiming._recording.validate import count, positive
from tlstiming.errors import TLSTimingError

__all__ = ["FetchError", "Fetched", "Fetcher", "redact_url"]

FetchFailure = Literal[
    "timeout", "unsupported_url", "network", "http_status", "too_large", "closed"
]


class FetchError(TLSTimingError):
    """A fetch failed; ``kind`` says how, the message says why."""

    def __init__(self, kind: FetchFailure, message: str) -> None:
        super().__init__(message)
        self.kind: FetchFailure = kind


@dataclass(frozen=True, slots=True)
class Fetched:
    """A successful (2xx) response, read in full."""

    status: int
    content: bytes
    content_type: str | None


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: no credentials, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Job:
    """One request's deadline and socket, shared by the caller and the worker."""

    __slots__ = ("aborted", "deadline", "lock", "sock", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.aborted: FetchError | None = None

    def overrun(self) -> FetchError:
        """The one error a deadline gives, whichever side (caller or worker) meets it first."""
        return FetchError("timeout", f"no complete answer within {self.timeout:g} s")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: keep the socket as soon as it is connected."""
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        with self.lock:
            self.sock = sock
            if self.aborted is not None:
                _shutdown(sock)

    def abort(self, why: FetchError) -> None:
        """Stop the request: its blocked read or write returns at once, failing with ``why``."""
        with self.lock:
            self.aborted = why
            if self.sock is not None:
                _shutdown(self.sock)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Fetcher:
    """Runs bounded HTTP requests on a small thread pool; thread-safe.

    Args:
        max_workers: requests in flight at once (more wait their turn, still
            within their own deadline).
        proxy: an HTTP proxy URL to send requests through.

    Raises:
        TypeError, ValueError: ``max_workers`` is not an int >= 1.
    """

    __slots__ = ("_closed", "_executor", "_jobs", "_lock", "_max_workers", "_proxy")

    def __init__(self, *, max_workers: int = 4, proxy: str | None = None) -> None:
        self._max_workers = count("max_workers", max_workers, minimum=1)
        self._proxy = proxy
        self._lock = threading.Lock()
        self._jobs: set[_Job] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    def get(self, url: str, *, timeout: float, max_bytes: int) -> Fetched:
        """GET ``url``; see :meth:`request`."""
        return self.request("GET", url, timeout=timeout, max_bytes=max_bytes)

    def post(
        self, url: str, body: bytes, *, content_type: str, timeout: float, max_bytes: int
    ) -> Fetched:
        """POST ``body`` to ``url``; see :meth:`request`."""
        headers = {"Content-Type": content_type}
        return self.request(
            "POST", url, body=body, headers=headers, timeout=timeout, max_bytes=max_bytes
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float,
        max_bytes: int,
    ) -> Fetched:
        """Make one request and read its whole body, within ``timeout`` seconds in total.

        Raises:
            FetchError: on a timeout, a network or HTTP error, a body over
                ``max_bytes``, a URL that is not ``http://``, or after :meth:`close`.
            TypeError, ValueError: ``timeout`` is not a finite number > 0,
                or ``max_bytes`` not an int >= 1.
        """
        positive("timeout", timeout)
        count("max_bytes", max_bytes, minimum=1)
        if urllib.parse.urlsplit(url).scheme != "http":
            raise FetchError("unsupported_url", f"only http:// URLs are fetched: {redact_url(url)}")
        job = _Job(timeout)
        with self._lock:
            if self._closed:
                raise FetchError("closed", "the fetcher is closed")
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self._max_workers, thread_name_prefix="tlstiming-fetch"
                )
            self._jobs.add(job)
            future = self._executor.submit(
                _run, job, method, url, body, headers, max_bytes, self._proxy
            )
        try:
            return future.result(timeout=max(job.remaining(), 0.0))
        except concurrent.futures.TimeoutError:
            future.cancel()
            error = job.overrun()
            job.abort(error)
            raise error from None
        finally:
            with self._lock:
                self._jobs.discard(job)

    def close(self) -> None:
        """Abort every request in flight and stop the threads; idempotent."""
        with self._lock:
            self._closed = True
            jobs, executor, self._executor = list(self._jobs), self._executor, None
        for job in jobs:
            job.abort(FetchError("closed", "the fetcher was closed"))
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _run(
    job: _Job,
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str] | None,
    max_bytes: int,
    proxy: str | None,
) -> Fetched:
    """The worker's side: one request with httpx, per-operation limits set to what is left."""
    remaining = job.remaining()
    if job.aborted is not None:
        raise job.aborted
    if remaining <= 0:
        raise FetchError("timeout", "the deadline passed before the request started")
    with httpx.Client(
        timeout=httpx.Timeout(remaining),
        limits=httpx.Limits(max_keepalive_connections=0),
        verify=False,  # plain http only: https URLs were refused above
        trust_env=False,
        follow_redirects=False,
        proxy=proxy,
    ) as client:
        request = client.build_request(
            method,
            url,
            content=body,
            headers={**(headers or {}), "Accept-Encoding": "identity"},
            extensions={"trace": job.trace},
        )
        try:
            return _read(client.send(request, stream=True), job, max_bytes)
        except httpx.TimeoutException:
            raise job.overrun() from None
        except httpx.HTTPError as exc:
            if job.aborted is not None:
                raise FetchError(job.aborted.kind, str(job.aborted)) from None
            raise FetchError("network", f"{type(exc).__name__}: {exc}") from None


def _read(response: httpx.Response, job: _Job, max_bytes: int) -> Fetched:
    with contextlib.closing(response):
        if not 200 <= response.status_code < 300:
            raise FetchError("http_status", f"HTTP {response.status_code}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError("too_large", f"body of {declared} bytes, limit {max_bytes}")
        content = bytearray()
        for chunk in response.iter_raw():
            content += chunk
            if len(content) > max_bytes:
                raise FetchError("too_large", f"body over the {max_bytes}-byte limit")
            if job.remaining() <= 0:
                raise FetchError("timeout", "the body was still arriving at the deadline")
        return Fetched(response.status_code, bytes(content), response.headers.get("Content-Type"))
