"""Real TLS servers on loopback for the adapter tests.

Two kinds:

- :class:`LoopbackServer`: :class:`tlstiming.testing.LocalTLSServer` serving
  a context of the test's own, named as the tests use it. Each accepted
  connection gets its own thread that handshakes, writes :data:`GREETING`,
  reads until EOF and closes (or misbehaves on purpose, see :data:`Mode`).
  Every outcome is put on ``results``; nothing is ever raised from a server
  thread. ``close()`` unblocks and joins every thread.
- :class:`OpenSSLServer`: ``openssl s_server -rev`` as a subprocess, a foreign
  TLS implementation. ``-rev`` answers each line the client sends with the
  line reversed.

Nothing here sleeps: waits are on events, queues and sockets, each with a
generous guard timeout that only matters if a test hangs.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import queue
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

from tlstiming import HandshakeSpan
from tlstiming.testing import CA, LeafCert, LocalTLSServer
from tlstiming.testing import server_context as _server_context

GREETING: Final = b"hello from the loopback server\n"
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


def server_context(
    cert: LeafCert,
    *,
    factory: type[ssl.SSLContext] = ssl.SSLContext,
    minimum_version: ssl.TLSVersion | None = None,
    maximum_version: ssl.TLSVersion | None = None,
    alpn: Sequence[str] | None = None,
    client_ca: CA | None = None,
    ecdh_curve: str | None = None,
    send_intermediates: bool = True,
) -> ssl.SSLContext:
    """:func:`tlstiming.testing.server_context`, in the tests' words.

    ``factory`` is the context class (``TimedSSLContext`` for server spans);
    ``client_ca`` requires a client certificate it issued; ``ecdh_curve``
    is the only key exchange group (``secp384r1`` forces a HelloRetryRequest
    from a client that offers an x25519 key share).
    """
    return _server_context(
        cert,
        context_class=factory,
        tls_min=minimum_version,
        tls_max=maximum_version,
        alpn=alpn,
        client_ca=client_ca,
        group=ecdh_curve,
        send_intermediate=send_intermediates,
    )


class LoopbackServer(LocalTLSServer):
    """A :class:`~tlstiming.testing.LocalTLSServer` serving ``context``; a context manager.

    Args:
        context: the server context (unused by ``silent``/``not_tls``/``reset``).
        mode: what to do with each connection (see :data:`Mode`).
        host: ``127.0.0.1`` or ``::1``.
        hold: if given, each connection waits for this event before its handshake
            (``close()`` sets it).
        on_handshake: called with the server's ``SSLSocket`` after each
            successful handshake (on the connection's thread; errors recorded).
    """

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        *,
        mode: Mode = "tls",
        host: str = "127.0.0.1",
        hold: threading.Event | None = None,
        on_handshake: Callable[[ssl.SSLSocket], None] | None = None,
    ) -> None:
        if context is None and mode in ("tls", "echo"):
            raise ValueError(f"mode {mode!r} needs a server context")
        super().__init__(
            context=context,
            respond="greet" if mode == "tls" else mode,
            greeting=GREETING,
            host=host,
            hold=hold,
            on_handshake=on_handshake,
        )


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
        cert: LeafCert,
        args: Sequence[str] = (),
        *,
        send_intermediates: bool = True,
        client_ca: CA | None = None,
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
    """Every certificate the adapter tests use, from one :class:`tlstiming.testing.CA`.

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

    ca: CA
    other_ca: CA
    leaf: LeafCert
    chained: LeafCert
    expired: LeafCert
    wildcard: LeafCert
    wildcard_chained: LeafCert
    untrusted: LeafCert
    client: LeafCert

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode("ascii")


def make_pki() -> PKI:
    """Issue every certificate of :class:`PKI`."""
    ca, other = CA(), CA()
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
        client=ca.issue_cert("client.example.test", usage=("client",)),
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
