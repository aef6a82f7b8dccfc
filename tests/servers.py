"""Real TLS servers on loopback for the adapter tests.

Two kinds:

- :class:`LoopbackServer`: a stdlib ``ssl`` server in a thread on
  ``127.0.0.1:0`` (or ``::1``). Each accepted connection gets its own thread
  that handshakes, writes :data:`GREETING`, reads until EOF and closes (or
  misbehaves on purpose, see :data:`Mode`). Every outcome is put on
  :attr:`LoopbackServer.results`; nothing is ever raised from a server thread.
  :meth:`LoopbackServer.close` unblocks and joins every thread.
- :class:`OpenSSLServer`: ``openssl s_server -rev`` as a subprocess, a foreign
  TLS implementation. ``-rev`` answers each line the client sends with the
  line reversed.

Nothing here sleeps: waits are on events, queues and sockets, each with a
generous guard timeout that only matters if a test hangs.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import itertools
import json
import os
import queue
import re
import selectors
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

import trustme

from tlstiming import HandshakeSpan
from tlstiming.testing import LocalTLSServer

GREETING: Final = b"hello from the loopback server\n"
HTTP_400: Final = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
GUARD: Final = 60.0
"""Seconds any blocking wait may take before a test is considered hung."""

Mode = Literal["tls", "echo", "silent", "not_tls", "reset"]
"""What a :class:`LoopbackServer` does with each accepted connection.

- ``tls``: handshake, write :data:`GREETING`, read until EOF, close.
- ``echo``: handshake, then write back everything it reads until EOF.
- ``silent``: accept and never answer (until the server is closed).
- ``not_tls``: read the ClientHello, answer an HTTP 400, read until EOF.
- ``reset``: read the ClientHello, then reset the connection (SO_LINGER 0).
"""

OPENSSL: Final = shutil.which("openssl")


# -- contexts ------------------------------------------------------------------


def server_context(
    cert: trustme.LeafCert,
    *,
    factory: Callable[[int], ssl.SSLContext] = ssl.SSLContext,
    minimum_version: ssl.TLSVersion | None = None,
    maximum_version: ssl.TLSVersion | None = None,
    alpn: Sequence[str] | None = None,
    client_ca: trustme.CA | None = None,
    ecdh_curve: str | None = None,
    send_intermediates: bool = True,
) -> ssl.SSLContext:
    """Build a server context for ``cert``.

    Args:
        cert: the server certificate (its chain is sent unless told otherwise).
        factory: the context class, e.g. ``TimedSSLContext`` for server spans.
        minimum_version: lowest TLS version accepted.
        maximum_version: highest TLS version accepted.
        alpn: the server's ALPN protocols.
        client_ca: require a client certificate issued by this CA.
        ecdh_curve: the only key exchange group (``secp384r1`` forces a
            HelloRetryRequest from a client that offers an x25519 key share).
        send_intermediates: ``False`` sends the leaf alone (a broken chain).
    """
    context = factory(ssl.PROTOCOL_TLS_SERVER)
    if send_intermediates:
        cert.configure_cert(context)
    else:
        with cert.private_key_pem.tempfile() as key, cert.cert_chain_pems[0].tempfile() as leaf:
            context.load_cert_chain(leaf, key)
    if minimum_version is not None:
        context.minimum_version = minimum_version
    if maximum_version is not None:
        context.maximum_version = maximum_version
    if alpn is not None:
        context.set_alpn_protocols(list(alpn))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    if ecdh_curve is not None:
        context.set_ecdh_curve(ecdh_curve)
    return context


# -- the stdlib server -----------------------------------------------------------


@dataclass(frozen=True)
class ServerResult:
    """What happened to one accepted connection on the server."""

    peer: tuple[str, int]
    error: BaseException | None
    version: str | None = None
    alpn: str | None = None
    client_cert: bool = False
    received: bytes = b""


class LoopbackServer:
    """A threaded stdlib TLS server on loopback; use as a context manager.

    Args:
        context: the server context (unused by ``silent``/``not_tls``/``reset``).
        mode: what to do with each connection (see :data:`Mode`).
        host: ``127.0.0.1`` or ``::1``.
        hold: if given, each connection waits for this event before its handshake
            (:meth:`close` sets it).
        on_handshake: called with the server's ``SSLSocket`` after each
            successful handshake (on the connection's thread; errors recorded).
        keep_results: how many :class:`ServerResult` to keep (``None``: all).
    """

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        *,
        mode: Mode = "tls",
        host: str = "127.0.0.1",
        hold: threading.Event | None = None,
        on_handshake: Callable[[ssl.SSLSocket], None] | None = None,
        keep_results: int | None = None,
    ) -> None:
        if context is None and mode in ("tls", "echo"):
            raise ValueError(f"mode {mode!r} needs a server context")
        self.context = context
        self.mode: Mode = mode
        self.hold = hold
        self.on_handshake = on_handshake
        self.results: queue.Queue[ServerResult] = queue.Queue()
        self._keep = keep_results
        self._kept: collections.deque[ServerResult] = collections.deque(maxlen=keep_results)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(1024)
        self._listener.setblocking(False)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._acceptor = threading.Thread(target=self._accept_loop, name="loopback-accept")

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    def __enter__(self) -> LoopbackServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def next_result(self) -> ServerResult:
        """The next connection's outcome, in completion order."""
        return self.results.get(timeout=GUARD)

    def close(self) -> None:
        """Stop accepting, unblock every connection, join every thread."""
        self._stop.set()
        if self.hold is not None:
            self.hold.set()
        if self._acceptor.is_alive():
            self._wake_w.send(b"x")
            self._acceptor.join(GUARD)
        with self._lock:
            for sock in self._live:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            workers = list(self._workers)
        for worker in workers:
            worker.join(GUARD)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._acceptor.is_alive() or any(w.is_alive() for w in workers):
            raise RuntimeError("loopback server threads did not stop")

    # -- threads ---------------------------------------------------------------

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._listener:
                        self._accept()

    def _accept(self) -> None:
        try:
            raw, _ = self._listener.accept()
        except BlockingIOError:
            return
        raw.setblocking(True)
        raw.settimeout(GUARD)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stalls
        thread = threading.Thread(target=self._serve, args=(raw,), name="loopback-conn")
        with self._lock:
            if self._stop.is_set():
                raw.close()
                return
            self._live.add(raw)
            self._workers.add(thread)
        thread.start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            peer = raw.getpeername()[:2]
        except OSError:  # the client already left
            peer = ("", 0)
        result = ServerResult(peer=peer, error=None)
        try:
            result = self._handle(raw, peer)
        except BaseException as exc:  # recorded for the test, never raised in a thread
            result = ServerResult(peer=peer, error=exc)
        finally:
            with self._lock:
                self._live.discard(raw)
                self._workers.discard(threading.current_thread())
            raw.close()
        self._record(result)

    def _record(self, result: ServerResult) -> None:
        if self._keep is None:
            self.results.put(result)
        else:
            self._kept.append(result)

    def _handle(self, raw: socket.socket, peer: tuple[str, int]) -> ServerResult:
        if self.mode == "silent":
            self._stop.wait()
            return ServerResult(peer=peer, error=None)
        if self.mode == "not_tls":
            raw.recv(65536)
            raw.sendall(HTTP_400)
            _drain(raw)
            return ServerResult(peer=peer, error=None)
        if self.mode == "reset":
            raw.recv(65536)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return ServerResult(peer=peer, error=None)
        if self.hold is not None:
            self.hold.wait()  # set by the test, or by close()
        assert self.context is not None
        return self._handshake(raw, peer, self.context)

    def _handshake(
        self, raw: socket.socket, peer: tuple[str, int], context: ssl.SSLContext
    ) -> ServerResult:
        tls = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        with self._lock:  # the SSLSocket owns the descriptor now
            self._live.discard(raw)
            self._live.add(tls)
        try:
            tls.do_handshake()
            if self.on_handshake is not None:
                self.on_handshake(tls)
            result = ServerResult(
                peer=peer,
                error=None,
                version=tls.version(),
                alpn=tls.selected_alpn_protocol(),
                client_cert=tls.getpeercert(binary_form=True) is not None,
            )
            if self.mode == "echo":
                _echo(tls)
                return result
            tls.sendall(GREETING)
            received = _drain(tls)
            return dataclasses.replace(result, received=received)
        finally:
            with self._lock:
                self._live.discard(tls)
            tls.close()


def _drain(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def _echo(sock: socket.socket) -> None:
    while chunk := sock.recv(65536):
        sock.sendall(chunk)


# -- tlstiming.testing.LocalTLSServer -------------------------------------------------


def delays_entered(server: LocalTLSServer) -> threading.Semaphore:
    """Released once for each connection that reaches ``server``'s ``delay``.

    Such a connection's ClientHello has arrived, so its client is inside
    ``do_handshake``: however the connection ends, ``ssl`` closes the client's
    socket. Before that (a connection still in the listener's queue), closing
    the server resets it, and a reset that beats ``wrap_socket``'s connected
    check leaves the new SSLSocket unclosed (CPython gh-113280). Call before
    the server starts.
    """
    entered = threading.Semaphore(0)
    late = server.context.sni_callback
    if late is None:
        raise ValueError("the server has no delay")

    def signal(*args: Any) -> int | None:  # (connection, server name or None, context)
        entered.release()
        return late(*args)

    server.context.sni_callback = signal
    return entered


# -- openssl s_server ---------------------------------------------------------------


class OpenSSLServer:
    """``openssl s_server -rev`` on ``127.0.0.1``; use as a context manager.

    Args:
        directory: where to write the PEM files.
        cert: the server certificate.
        args: extra ``s_server`` flags (``-tls1_2``, ``-alpn h2``, ...).
        send_intermediates: pass the intermediates with ``-cert_chain``.
        client_ca: written to ``client-ca.pem`` and passed as ``-CAfile``.
    """

    def __init__(
        self,
        directory: Path,
        cert: trustme.LeafCert,
        args: Sequence[str] = (),
        *,
        send_intermediates: bool = True,
        client_ca: trustme.CA | None = None,
    ) -> None:
        if OPENSSL is None:
            raise RuntimeError("the openssl command-line tool is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        leaf, key = directory / "cert.pem", directory / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(leaf))
        cert.private_key_pem.write_to_path(str(key))
        command = [OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-cert", str(leaf)]
        command += ["-key", str(key), "-rev", "-no_dhe"]
        intermediates = cert.cert_chain_pems[1:]
        if send_intermediates and intermediates:
            chain = directory / "chain.pem"
            chain.write_bytes(b"".join(blob.bytes() for blob in intermediates))
            command += ["-cert_chain", str(chain)]
        if client_ca is not None:
            ca_file = directory / "client-ca.pem"
            client_ca.cert_pem.write_to_path(str(ca_file))
            command += ["-CAfile", str(ca_file)]
        self.command = [*command, *args]
        self.output: list[str] = []
        self._ports: queue.Queue[int | None] = queue.Queue()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    @property
    def port(self) -> int:
        return self.address[1]

    def __enter__(self) -> OpenSSLServer:
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
        )
        self._reader = threading.Thread(
            target=self._read_output, args=(self._process.stdout,), name="s_server-output"
        )
        self._reader.start()
        port = self._ports.get(timeout=GUARD)
        if port is None:
            self.close()
            raise RuntimeError("openssl s_server did not start:\n" + "".join(self.output))
        self.address = ("127.0.0.1", port)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the server and reap it; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(GUARD)
        if self._reader is not None:
            self._reader.join(GUARD)
        assert process.stdout is not None
        process.stdout.close()

    def _read_output(self, stdout: IO[str]) -> None:
        announced = False
        for line in stdout:
            self.output.append(line)
            match = re.match(r"ACCEPT .*:(\d+)\s*$", line)
            if match and not announced:
                announced = True
                self._ports.put(int(match.group(1)))
        if not announced:
            self._ports.put(None)


# -- clients --------------------------------------------------------------------


def connect(
    context: ssl.SSLContext,
    address: tuple[str, int],
    server_hostname: str | None = "localhost",
    *,
    timeout: float | None = GUARD,
    session: ssl.SSLSession | None = None,
) -> ssl.SSLSocket:
    """Open a TCP connection to ``address`` and handshake; closes the socket on failure."""
    raw = socket.create_connection(address, timeout=timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return context.wrap_socket(raw, server_hostname=server_hostname, session=session)
    except BaseException:
        raw.close()
        raise


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """Read ``size`` bytes (fewer only at EOF)."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


@contextlib.contextmanager
def closing_all(*socks: socket.socket) -> Iterator[None]:
    """Close every socket on exit."""
    try:
        yield
    finally:
        for sock in socks:
            sock.close()


def qualified_name(exc: BaseException) -> str:
    """``module.QualName`` of an exception's class, without ``builtins.``."""
    cls = type(exc)
    module = "" if cls.__module__ == "builtins" else cls.__module__ + "."
    return module + cls.__qualname__


def error_signature(exc: BaseException) -> tuple[Any, ...]:
    """Everything a caller can see of an exception, for drop-in comparisons."""
    return (
        type(exc),
        str(exc),
        exc.args,
        getattr(exc, "reason", None),
        getattr(exc, "library", None),
        getattr(exc, "verify_code", None),
        getattr(exc, "verify_message", None),
    )


# -- certificates ------------------------------------------------------------------


@dataclass(frozen=True)
class PKI:
    """Every certificate the adapter tests use, from one trustme CA.

    Attributes:
        ca: the CA clients trust.
        other_ca: a CA nobody trusts.
        leaf: ``localhost``, ``127.0.0.1`` and ``::1``, issued by ``ca``.
        chained: ``localhost`` issued by an intermediate of ``ca``.
        expired: ``localhost``, expired yesterday.
        wildcard: ``*.example.test`` (any SNI name under it verifies).
        wildcard_chained: ``*.example.test`` issued by an intermediate of ``ca``.
        untrusted: ``localhost`` issued by ``other_ca``.
        client: a client certificate issued by ``ca``.
    """

    ca: trustme.CA
    other_ca: trustme.CA
    leaf: trustme.LeafCert
    chained: trustme.LeafCert
    expired: trustme.LeafCert
    wildcard: trustme.LeafCert
    wildcard_chained: trustme.LeafCert
    untrusted: trustme.LeafCert
    client: trustme.LeafCert

    @property
    def ca_pem(self) -> str:
        return str(self.ca.cert_pem.bytes().decode("ascii"))


def make_pki() -> PKI:
    """Issue every certificate of :class:`PKI`."""
    ca, other = trustme.CA(), trustme.CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    return PKI(
        ca=ca,
        other_ca=other,
        leaf=ca.issue_cert("localhost", "127.0.0.1", "::1"),
        chained=ca.create_child_ca().issue_cert("localhost"),
        expired=ca.issue_cert(
            "localhost",
            not_before=now - datetime.timedelta(days=10),
            not_after=now - datetime.timedelta(days=1),
        ),
        wildcard=ca.issue_cert("*.example.test"),
        wildcard_chained=ca.create_child_ca().issue_cert("*.example.test"),
        untrusted=other.issue_cert("localhost"),
        client=ca.issue_cert("client.example.test"),
    )


# -- checks every span must pass ------------------------------------------------------


def assert_tiles(span: HandshakeSpan) -> None:
    """The phases are contiguous, start and end with the span, and sum to its duration."""
    phases = span.phases
    assert phases, span
    assert phases[0].start_ns == span.start_ns
    assert phases[-1].end_ns == span.end_ns
    for before, after in itertools.pairwise(phases):
        assert before.end_ns == after.start_ns, (before, after)
    assert all(p.duration_ns >= 0 for p in phases), phases
    assert sum(p.duration_ns for p in phases) == span.duration_ns
    names = [p.name for p in phases]
    assert len(set(names)) == len(names), names
    assert names[0] == "client_hello", names
    times = [m.t_ns for m in span.messages]
    assert times == sorted(times)


def assert_order(span: HandshakeSpan, *names: str) -> None:
    """Each named phase exists and they appear in this order."""
    present = [p.name for p in span.phases]
    assert all(n in present for n in names), (names, present)
    positions = [present.index(n) for n in names]
    assert positions == sorted(positions), (names, present)


def assert_error_matches(span: HandshakeSpan, exc: BaseException) -> None:
    """The span's error is exactly what the caller got."""
    assert span.outcome == "error"
    assert span.error is not None
    assert span.error.type == qualified_name(exc)
    assert span.error.message == str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        assert span.error.verify_code == exc.verify_code


def assert_exportable(span: HandshakeSpan) -> dict[str, Any]:
    """``to_dict()`` is JSON-ready and agrees with the span; returns it."""
    exported = span.to_dict()
    decoded = json.loads(json.dumps(exported))
    assert decoded == exported
    assert exported["span.id"] == span.span_id
    assert exported["outcome"] == span.outcome
    assert exported["duration_ns"] == span.duration_ns
    assert [p["name"] for p in exported["tlstiming.phases"]] == [p.name for p in span.phases]
    assert exported["error.type"] == (span.error.type if span.error else None)
    return exported
