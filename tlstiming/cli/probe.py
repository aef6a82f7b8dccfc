"""One probe: DNS (every address), TCP connect (each attempt), TLS handshake, first byte.

The result is a real request span (the same value ``tlstiming.httpx`` makes),
holding the handshake span, so the same rules, renderings and exports apply.
Every step has the probe's deadline: DNS runs on a worker thread the probe
stops waiting for, and a watchdog shuts the socket down at the deadline (a
server that trickles its handshake cannot stretch it).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from tlstiming._recording import native
from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming.cli import http2
from tlstiming.cli.options import Target, UsageError
from tlstiming.diagnosis.rules import endpoint
from tlstiming.recorder import SpanRecorder
from tlstiming.spans import build
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.request import ConnectAttempt, ConnectionInfo, RequestRecord, RequestSpan

__all__ = ["ProbeOptions", "ProbeRun", "build_context", "probe_once"]

_VERSIONS: Final = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_VERDICT_WAIT_S: Final = 0.25  # a bare TLS port: how long to wait for a post-handshake alert


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeOptions:
    """A probe's settings, already checked (see :mod:`tlstiming.cli.options`)."""

    target: Target
    servername: str | None = None
    alpn: tuple[str, ...] = ("h2", "http/1.1")
    cafile: str | None = None
    cert: str | None = None
    key: str | None = None
    tls_min: str | None = None
    tls_max: str | None = None
    resolve: dict[tuple[str, int], str] = field(default_factory=dict)
    ocsp: bool = False
    timeout: float = 10.0

    @property
    def sni(self) -> str | None:
        """The name sent in SNI and verified (none for an IP literal without --servername)."""
        if self.servername:
            return self.servername
        return None if self.target.is_ip else self.target.host


@dataclass(frozen=True, slots=True)
class _URL:
    scheme: str
    host: str
    port: int | None
    raw_path: bytes


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """One probe: its request span (holding the handshake span), and how it failed, if it did.

    Attributes:
        request: the request span: DNS, connect, TLS, send, first byte.
        failure: ``None``, or ``dns``, ``connect``, ``tls``, ``timeout``.
        message: one line saying what failed, for people (escaped by the renderer).
        session: the TLS session, to resume on the next probe.
    """

    request: RequestSpan
    failure: str | None = None
    message: str | None = None
    session: ssl.SSLSession | None = None

    @property
    def handshake(self) -> HandshakeSpan | None:
        return self.request.handshake


def build_context(options: ProbeOptions, recorder: SpanRecorder) -> TimedSSLContext:
    """The client context the probes share (so that later probes can resume).

    Raises:
        UsageError: a CA file, certificate or key that cannot be loaded.
    """
    try:
        context = create_default_context(cafile=options.cafile)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(
            f"--cafile {options.cafile!r} holds no usable certificate ({exc})"
        ) from None
    if options.cert is not None:
        try:
            context.load_cert_chain(options.cert, options.key)
        except (ssl.SSLError, OSError) as exc:
            raise UsageError(f"--cert/--key cannot be loaded ({exc})") from None
    if options.tls_min is not None:
        context.minimum_version = _VERSIONS[options.tls_min]
    if options.tls_max is not None:
        context.maximum_version = _VERSIONS[options.tls_max]
    if options.tls_min and options.tls_max and options.tls_min > options.tls_max:
        raise UsageError(f"--tls-min {options.tls_min} is above --tls-max {options.tls_max}")
    if options.alpn:
        context.set_alpn_protocols(list(options.alpn))
    if options.sni is None:
        context.check_hostname = False  # an IP literal without --servername: chain only
    if options.ocsp:
        from tlstiming.verifiers import OCSPVerifier  # noqa: PLC0415

        if native.implementation().name == "native":  # ask for a staple (status_request)
            context.ocsp_stapling = True

        # Half the probe's deadline at most: the check runs inside the handshake it bounds.
        context.add_verifier(OCSPVerifier(timeout=min(options.timeout / 2, 5.0)))
    context.add_sink(recorder)
    return context


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {self.seconds:g} s")
        return left


@contextlib.contextmanager
def _watchdog(sock: socket.socket, deadline: _Deadline) -> Iterator[None]:
    """Shut ``sock`` down at the deadline, whatever call is blocked on it."""
    timer = threading.Timer(deadline.left(), _cut, args=(sock,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="tlstiming-dns")


def _resolve(options: ProbeOptions, deadline: _Deadline) -> list[tuple[int, str]]:
    target = options.target
    fixed = options.resolve.get((target.host, target.port))
    if fixed is not None or target.is_ip:
        address = fixed or target.host
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, address)]
    future = _resolver.submit(socket.getaddrinfo, target.host, target.port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=deadline.left())
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"DNS lookup timed out after {options.timeout:g} s") from None
    seen: dict[str, int] = {}
    for family, _, _, _, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), family)
    return [(family, address) for address, family in seen.items()]


def probe_once(
    options: ProbeOptions,
    context: TimedSSLContext,
    recorder: SpanRecorder,
    session: ssl.SSLSession | None = None,
) -> ProbeRun:
    """Probe once; never raises for what the network or the peer does."""
    target = options.target
    record = RequestRecord(
        next(build.ids),
        time.perf_counter_ns(),
        "GET" if target.scheme == "https" else "TLS",
        _URL(target.scheme, target.host, target.port, target.path.split("?", 1)[0].encode()),
    )
    marks: list[tuple[str, int]] = [("dns", record.start_ns)]
    record.marks = marks
    deadline = _Deadline(options.timeout)
    attempts: list[ConnectAttempt] = []
    resolved: list[str] = []
    handshake: HandshakeSpan | None = None
    failure = message = None
    new_session = None
    seen = len(recorder.spans)
    sock: socket.socket | None = None
    try:
        step = "dns"
        try:
            addresses = _resolve(options, deadline)
        except socket.gaierror as exc:
            raise _Failed("dns", f"cannot resolve {target.host}: {exc.strerror or exc}") from None
        resolved = [a for _, a in addresses]
        marks.append(("connect", time.perf_counter_ns()))
        step = "connect"
        sock = _connect(addresses, target.port, deadline, attempts)
        marks.append(("tls", time.perf_counter_ns()))
        step = "tls"
        with _watchdog(sock, deadline):
            tls = context.wrap_socket(sock, server_hostname=options.sni, session=session)
            sock = tls
            step = "http"
            marks.append(("send_request", time.perf_counter_ns()))
            rtt_s = attempts[-1].duration_ns / 1e9
            record.status_code, record.http_version = _first_byte(
                tls, options, record, deadline, rtt_s
            )
            new_session = tls.session
    except _Failed as exc:
        failure, message = exc.kind, exc.message
    except TimeoutError as exc:
        failure, message = (
            "timeout",
            f"{exc} (during {step})" if "DNS" not in str(exc) else str(exc),
        )
    except (ssl.SSLError, OSError) as exc:
        failure = "tls"
        if step == "http":
            message = f"the server ended the connection after the handshake: {_describe(exc)}"
        else:
            message = f"handshake failed: {_describe(exc)}"
    finally:
        if sock is not None:
            sock.close()
    spans = recorder.spans[seen:]
    handshake = spans[-1] if spans else None
    record.end_ns = time.perf_counter_ns()
    record.end_unix_ns = time.time_ns()
    record.connection = ConnectionInfo(
        opened_by=f"{record.id:016x}",
        handshake=handshake,
        resolved=tuple(resolved),
        attempts=tuple(attempts),
    )
    if failure is not None:
        record.error_type, record.error_message = failure, message
    return ProbeRun(RequestSpan(record), failure, message, new_session)


class _Failed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _connect(
    addresses: list[tuple[int, str]], port: int, deadline: _Deadline, attempts: list[ConnectAttempt]
) -> socket.socket:
    last: OSError | None = None
    for family, address in addresses:
        start = time.perf_counter_ns()
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.left())
            sock.connect((address, port))
        except OSError as exc:
            sock.close()
            attempts.append(
                ConnectAttempt(
                    address=address,
                    port=port,
                    start_ns=start,
                    end_ns=time.perf_counter_ns(),
                    error_type=type(exc).__name__,
                    error_message=str(exc),
                )
            )
            last = exc
            if isinstance(exc, TimeoutError) or deadline.at <= time.monotonic():
                break
            continue
        attempts.append(
            ConnectAttempt(
                address=address, port=port, start_ns=start, end_ns=time.perf_counter_ns()
            )
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    where = ", ".join(endpoint(a.address, a.port) for a in attempts) or "no address"
    if isinstance(last, TimeoutError):
        raise _Failed("timeout", f"TCP connect to {where} timed out")
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise _Failed("connect", f"cannot connect to {where}: {reason}")


def _first_byte(
    tls: ssl.SSLSocket,
    options: ProbeOptions,
    record: RequestRecord,
    deadline: _Deadline,
    rtt_s: float,
) -> tuple[int | None, str | None]:
    """Send the request (https) and wait for the first byte; a bare port waits for a verdict."""
    target = options.target
    if target.scheme != "https":
        record.sent_ns = time.perf_counter_ns()
        tls.settimeout(min(max(_VERDICT_WAIT_S, 3 * rtt_s), deadline.left()))
        try:
            data = tls.recv(1)
        except TimeoutError:
            return None, None  # quiet: the server waits for the client, as most do
        if data:
            record.head_ns = time.perf_counter_ns()
        return None, None
    host = options.sni or target.host
    if tls.selected_alpn_protocol() == "h2":
        record.sent_ns = time.perf_counter_ns()
        tls.settimeout(deadline.left())

        def first_byte() -> None:
            record.head_ns = time.perf_counter_ns()

        try:
            return http2.get(tls, host, target.path, first_byte), "2"
        except ConnectionError as exc:
            raise _Failed("tls", str(exc)) from None
    else:
        request = (
            f"GET {target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tlstiming-probe\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        )
        tls.sendall(request.encode("ascii", "replace"))
        version = "HTTP/1.1"
    record.sent_ns = time.perf_counter_ns()
    tls.settimeout(deadline.left())
    head = tls.recv(64)
    record.head_ns = time.perf_counter_ns()
    if not head:
        raise _Failed("tls", "the server closed the connection without answering the request")
    status = None
    if version == "HTTP/1.1" and head.startswith(b"HTTP/1.") and head[9:12].isdigit():
        status = int(head[9:12])
    return status, version
