"""A real TLS server on loopback, in threads, with knobs for testing clients."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Final, Literal

from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming._wire import messages as _wire
from tlstiming.errors import ParseError
from tlstiming.testing.pki import LocalPKI

__all__ = ["LocalTLSServer"]

GUARD: Final = 30.0
"""Seconds a connection may sit idle before the server gives up on it."""

_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_ALERT_NO_APPLICATION_PROTOCOL: Final = bytes([21, 3, 3, 0, 2, 2, 120])
_OK: Final = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"

Certificate = Literal["valid", "expired", "wrong_host", "untrusted"]
ClientCert = Literal["required", "optional"]
Respond = Literal["http", "echo"]


def _version(value: str | ssl.TLSVersion) -> ssl.TLSVersion:
    if isinstance(value, ssl.TLSVersion):
        return value
    if value not in _VERSIONS:
        raise ValueError(f"TLS version must be one of {sorted(_VERSIONS)}, not {value!r}")
    return _VERSIONS[value]


class LocalTLSServer:
    """A stdlib TLS server on loopback, one thread per connection. A context manager.

    Each connection is answered as a minimal HTTP/1.1 server (``200 ok`` to
    every request, keep-alive) or, with ``respond="echo"``, by echoing bytes.

    Args:
        pki: where certificates come from (default: a temporary one of its own).
        host: ``127.0.0.1`` or ``::1``.
        tls_min: lowest TLS version accepted (``"1.2"``, ``"1.3"``).
        tls_max: highest TLS version accepted.
        alpn: the protocols the server supports, in preference order.
        alpn_strict: answer a ClientHello that offers ALPN but none of ``alpn``
            with a fatal ``no_application_protocol`` alert (RFC 7301); the
            stdlib server would silently select nothing.
        client_cert: ``"required"`` or ``"optional"``: ask for a client
            certificate issued by the PKI's root CA.
        certificate: ``"valid"``, ``"expired"``, ``"wrong_host"`` (valid for
            ``wrong-host.invalid`` only) or ``"untrusted"`` (unknown issuer).
        send_intermediate: ``False`` leaves the intermediate CA out of the chain.
        delay: seconds to wait after each ClientHello, before the server's
            flight (in the ``sni_callback``, so the ServerHello is really late).
        group: the only key-exchange group the server accepts (``set_ecdh_curve``).
        hello_retry: shorthand for ``group="secp384r1"``: a client that sends
            only an X25519 key share (OpenSSL's default) gets a HelloRetryRequest.
        respond: ``"http"`` or ``"echo"``.
    """

    def __init__(
        self,
        *,
        pki: LocalPKI | None = None,
        host: str = "127.0.0.1",
        tls_min: str | ssl.TLSVersion | None = None,
        tls_max: str | ssl.TLSVersion | None = None,
        alpn: Sequence[str] | None = None,
        alpn_strict: bool = False,
        client_cert: ClientCert | None = None,
        certificate: Certificate = "valid",
        send_intermediate: bool = True,
        delay: float = 0.0,
        group: str | None = None,
        hello_retry: bool = False,
        respond: Respond = "http",
    ) -> None:
        if alpn_strict and not alpn:
            raise ValueError("alpn_strict needs an alpn list")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if respond not in ("http", "echo"):
            raise ValueError(f"respond must be 'http' or 'echo', not {respond!r}")
        self._exit = ExitStack()
        self.pki = pki if pki is not None else self._exit.enter_context(LocalPKI.temporary())
        self._alpn = tuple(alpn) if alpn_strict and alpn else None
        self._delay = delay
        self._respond = respond
        self.context = self._server_context(
            tls_min, tls_max, alpn, client_cert, certificate, send_intermediate, group, hello_retry
        )
        """The server's ``ssl.SSLContext``; adjust it before :meth:`start` if a knob is missing."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        """``(host, port)`` the server listens on."""
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._acceptor = threading.Thread(target=self._accept_loop, name="tlstiming-server")
        self._accepted = 0
        self._handshakes = 0
        self._errors: list[str] = []

    def _server_context(
        self,
        tls_min: str | ssl.TLSVersion | None,
        tls_max: str | ssl.TLSVersion | None,
        alpn: Sequence[str] | None,
        client_cert: ClientCert | None,
        certificate: Certificate,
        send_intermediate: bool,
        group: str | None,
        hello_retry: bool,
    ) -> ssl.SSLContext:
        names = ["localhost", "127.0.0.1", "::1"]
        if certificate == "wrong_host":
            names = ["wrong-host.invalid"]
        issued = self.pki.issue(
            names,
            expired=certificate == "expired",
            untrusted=certificate == "untrusted",
            chain=send_intermediate,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(issued.cert_file, issued.key_file)
        if tls_min is not None:
            context.minimum_version = _version(tls_min)
        if tls_max is not None:
            context.maximum_version = _version(tls_max)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        if client_cert is not None:
            if client_cert not in ("required", "optional"):
                raise ValueError(f"client_cert must be 'required' or 'optional': {client_cert!r}")
            context.verify_mode = (
                ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
            )
            context.load_verify_locations(cafile=self.pki.ca_file)
        if group is not None or hello_retry:
            context.set_ecdh_curve(group or "secp384r1")
        if self._delay:
            context.sni_callback = self._late
        return context

    def _late(self, _conn: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        self._stop.wait(self._delay)  # close() cuts it short

    # -- what clients need ---------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self.address[0]

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.address[1]

    @property
    def hostname(self) -> str:
        """The name to connect to and verify: ``localhost`` (its certificate says so)."""
        return "localhost"

    @property
    def url(self) -> str:
        """``https://localhost:PORT/``."""
        return f"https://{self.hostname}:{self.port}/"

    @property
    def ca_file(self) -> str:
        """PEM file of the CA that issued the server's certificate (unless ``untrusted``)."""
        return self.pki.ca_file

    @property
    def ca_pem(self) -> str:
        """The same CA as PEM text."""
        return self.pki.ca_pem

    def configure_trust(self, context: ssl.SSLContext) -> None:
        """Make ``context`` trust :attr:`ca_file`."""
        context.load_verify_locations(cafile=self.ca_file)

    def configure_client_cert(self, context: ssl.SSLContext) -> None:
        """Make ``context`` present the PKI's client certificate."""
        issued = self.pki.client_cert
        context.load_cert_chain(issued.cert_file, issued.key_file)

    def client_context(
        self, *, alpn: Sequence[str] | None = None, client_cert: bool = False
    ) -> TimedSSLContext:
        """A :func:`tlstiming.create_default_context` that trusts :attr:`ca_file`.

        Args:
            alpn: protocols to offer.
            client_cert: present the PKI's client certificate.
        """
        context = create_default_context(cafile=self.ca_file)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        if client_cert:
            self.configure_client_cert(context)
        return context

    @property
    def accepted(self) -> int:
        """TCP connections accepted so far."""
        return self._accepted

    @property
    def handshakes(self) -> int:
        """TLS handshakes the server completed so far."""
        return self._handshakes

    @property
    def errors(self) -> tuple[str, ...]:
        """``"Type: message"`` of each connection that ended in an error, server side."""
        with self._lock:
            return tuple(self._errors)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> LocalTLSServer:
        """Start accepting connections; returns the server."""
        self._acceptor.start()
        return self

    def __enter__(self) -> LocalTLSServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, cut every connection, join every thread; idempotent."""
        self._stop.set()
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
        self._exit.close()

    def __repr__(self) -> str:
        return f"<LocalTLSServer {self.url} accepted={self.accepted}>"

    # -- threads -------------------------------------------------------------------

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
        except OSError:  # e.g. the client gave up already
            return
        raw.setblocking(True)
        raw.settimeout(GUARD)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(target=self._serve, args=(raw,), name="tlstiming-server-conn")
        with self._lock:
            self._accepted += 1
            self._live.add(raw)
            self._workers.add(thread)
        thread.start()

    def _serve(self, raw: socket.socket) -> None:
        sock = raw
        try:
            if self._alpn is not None and _alpn_mismatch(raw, self._alpn):
                _refuse(raw)
                return
            sock = self._wrap(raw)
            sock.do_handshake()
            with self._lock:
                self._handshakes += 1
            (_echo if self._respond == "echo" else _http)(sock)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            with self._lock:
                self._errors.append(f"{type(exc).__name__}: {exc}")
            if not self._stop.is_set():
                _wind_down(sock)
        finally:
            with self._lock:
                self._live.discard(sock)
                self._workers.discard(threading.current_thread())
            sock.close()

    def _wrap(self, raw: socket.socket) -> ssl.SSLSocket:
        # Under the lock: close() must never see the moment the SSLSocket has taken
        # the descriptor from ``raw`` but is not in ``_live`` yet (it could not cut it).
        with self._lock:
            if self._stop.is_set():
                raise ConnectionAbortedError("the server is closing")
            tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            self._live.discard(raw)
            self._live.add(tls)
        return tls


def _wind_down(sock: socket.socket) -> None:
    """Close gracefully after a failure: unread input would turn close() into a reset,
    and a reset can destroy the alert the client has not read yet."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        while socket.socket.recv(sock, 65536):
            pass


def _peek(sock: socket.socket, size: int) -> bytes:
    """Up to ``size`` waiting bytes, left in the socket (fewer: the caller gives up)."""
    return sock.recv(size, socket.MSG_PEEK | getattr(socket, "MSG_WAITALL", 0))


def _alpn_mismatch(sock: socket.socket, supported: Sequence[str]) -> bool:
    """Whether the waiting ClientHello offers ALPN, but none of ``supported``."""
    header = _peek(sock, 5)
    if len(header) < 5 or header[0] != 22:
        return False
    record = _peek(sock, 5 + int.from_bytes(header[3:5], "big"))
    try:
        msg_type, body = _wire.split_handshake(record[5:])
        offered = _wire.parse_client_hello(body).alpn if msg_type == 1 else ()
    except ParseError:  # split over records, or not a ClientHello: let OpenSSL decide
        return False
    return bool(offered) and not set(offered) & set(supported)


def _refuse(sock: socket.socket) -> None:
    """Read the ClientHello, answer a fatal no_application_protocol alert, close."""
    header = sock.recv(5, socket.MSG_PEEK)
    _read(sock, 5 + int.from_bytes(header[3:5], "big"))
    sock.sendall(_ALERT_NO_APPLICATION_PROTOCOL)
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass


def _read(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return bytes(data)


def _echo(sock: socket.socket) -> None:
    while chunk := sock.recv(65536):
        sock.sendall(chunk)


def _http(sock: socket.socket) -> None:
    """Answer ``200 ok`` to each HTTP/1.1 request until EOF or ``Connection: close``."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = next((int(h[15:]) for h in lines if h.startswith(b"content-length:")), 0)
        if len(buffer) < length:
            buffer += _read(sock, length - len(buffer))
        buffer = buffer[length:]
        close = b"connection: close" in lines
        sock.sendall(_OK + (b"Connection: close\r\n" if close else b"") + b"\r\nok\n")
        if close:
            return
