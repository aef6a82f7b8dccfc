"""A real TLS server on loopback, in threads, with knobs for testing clients."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Final, Literal, get_args

from typing_extensions import Self

from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming.testing import _answers
from tlstiming.testing._accept import GUARD, Acceptor
from tlstiming.testing._answers import ServerResult, peer_of
from tlstiming.testing._context import ClientCert, Version, server_context
from tlstiming.testing.ca import LeafCert
from tlstiming.testing.pki import SERVER_NAMES, LocalPKI

__all__ = ["LocalTLSServer"]

_GREETING: Final = b"hello from tlstiming's local TLS server\n"

Certificate = Literal["valid", "expired", "not_yet_valid", "wrong_host", "untrusted"]
Respond = Literal["http", "echo", "greet", "silent", "not_tls", "reset"]


class LocalTLSServer:
    """A stdlib TLS server on loopback, one thread per connection. A context manager.

    Each connection is answered as a minimal HTTP/1.1 server (``200 ok`` to
    every request, keep-alive), or as ``respond`` says. The outcome of each
    connection lands in :attr:`results`; nothing is raised from its thread.

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
        certificate: ``"valid"``, ``"expired"``, ``"not_yet_valid"``,
            ``"wrong_host"`` (valid for ``wrong-host.invalid`` only) or
            ``"untrusted"`` (unknown issuer).
        send_intermediate: ``False`` leaves the intermediate CA out of the chain.
        delay: seconds to wait after each ClientHello, before the server's
            flight (in the ``sni_callback``, so the ServerHello is really late).
        group: the only key-exchange group the server accepts (``set_ecdh_curve``).
        hello_retry: shorthand for ``group="secp384r1"``: a client that sends
            only an X25519 key share (OpenSSL's default) gets a HelloRetryRequest.
        respond: after the handshake, ``"http"``, ``"echo"`` (write back what
            arrives) or ``"greet"`` (write ``greeting``, read until EOF); or,
            with no TLS at all, ``"silent"`` (never answer), ``"not_tls"``
            (answer the ClientHello with an HTTP 400) or ``"reset"`` (reset
            the connection once the ClientHello is in).
        context: a server context of your own, instead of the certificate and
            TLS knobs above (``delay`` still applies: it sets ``sni_callback``).
        greeting: what ``respond="greet"`` writes.
        hold: each connection waits for this event before its handshake
            (:meth:`close` sets it).
        on_handshake: called with the server's ``SSLSocket`` after each
            handshake, on the connection's thread (what it raises is recorded).
    """

    def __init__(
        self,
        *,
        pki: LocalPKI | None = None,
        host: str = "127.0.0.1",
        tls_min: Version | None = None,
        tls_max: Version | None = None,
        alpn: Sequence[str] | None = None,
        alpn_strict: bool = False,
        client_cert: ClientCert | None = None,
        certificate: Certificate = "valid",
        send_intermediate: bool = True,
        delay: float = 0.0,
        group: str | None = None,
        hello_retry: bool = False,
        respond: Respond = "http",
        context: ssl.SSLContext | None = None,
        greeting: bytes = _GREETING,
        hold: threading.Event | None = None,
        on_handshake: Callable[[ssl.SSLSocket], None] | None = None,
    ) -> None:
        if alpn_strict and not alpn:
            raise ValueError("alpn_strict needs an alpn list")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if respond not in {*_answers.BEFORE_TLS, *_answers.AFTER_HANDSHAKE}:
            raise ValueError(f"respond must be one of {get_args(Respond)}, not {respond!r}")
        own = (tls_min, tls_max, alpn, client_cert, group)
        if context is not None and (
            any(k is not None for k in own)
            or (certificate, send_intermediate, hello_retry) != ("valid", True, False)
        ):
            raise ValueError("with a context of your own, set TLS and certificates on it")
        self._exit = ExitStack()
        self._pki = pki
        self._alpn = tuple(alpn) if alpn_strict and alpn else None
        self._delay = delay
        self._respond, self._greeting = respond, greeting
        self._hold, self._on_handshake = hold, on_handshake
        if context is None:
            context = server_context(
                self._certificate(certificate),
                tls_min=tls_min,
                tls_max=tls_max,
                alpn=alpn,
                client_ca=self.pki.ca if client_cert is not None else None,
                client_cert=client_cert or "required",
                group=group or ("secp384r1" if hello_retry else None),
                send_intermediate=send_intermediate,
            )
        self.context = context
        """The server's ``ssl.SSLContext``; adjust it before :meth:`start` if a knob is missing."""
        if delay:
            self.context.sni_callback = self._late
        self.results: queue.Queue[ServerResult] = queue.Queue()
        """A :class:`ServerResult` per connection, in the order they ended."""
        self._lock = threading.Lock()
        self._handshakes = 0
        self._errors: list[str] = []
        try:
            self._acceptor = Acceptor(
                host, self._converse, self.results.put, name="tlstiming-server"
            )
        except BaseException:
            self._exit.close()
            raise
        self.address: tuple[str, int] = self._acceptor.address
        """``(host, port)`` the server listens on."""

    @property
    def pki(self) -> LocalPKI:
        """Where the certificates come from (made on first use if not given)."""
        if self._pki is None:
            self._pki = self._exit.enter_context(LocalPKI.temporary())
        return self._pki

    def _late(self, _conn: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        self._acceptor.closing.wait(self._delay)  # close() cuts it short

    def _certificate(self, certificate: Certificate) -> LeafCert:
        names = ("wrong-host.invalid",) if certificate == "wrong_host" else SERVER_NAMES
        return self.pki.issue_cert(
            names,
            expired=certificate == "expired",
            not_yet_valid=certificate == "not_yet_valid",
            untrusted=certificate == "untrusted",
        )

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
        return self._acceptor.accepted

    @property
    def handshakes(self) -> int:
        """TLS handshakes the server completed so far."""
        return self._handshakes

    @property
    def errors(self) -> tuple[str, ...]:
        """``"Type: message"`` of each connection that ended in an error, server side."""
        with self._lock:
            return tuple(self._errors)

    def next_result(self, timeout: float = GUARD) -> ServerResult:
        """The next connection's :class:`ServerResult`, in the order they ended.

        Raises:
            queue.Empty: none within ``timeout`` seconds.
        """
        return self.results.get(timeout=timeout)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Start accepting connections; returns the server."""
        self._acceptor.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, cut every connection, join every thread; idempotent.

        Raises:
            RuntimeError: a connection's thread did not stop within 30 seconds.
        """
        if self._hold is not None:
            self._hold.set()
        try:
            self._acceptor.close()
        finally:
            self._exit.close()

    def __repr__(self) -> str:
        return f"<LocalTLSServer {self.url} accepted={self.accepted}>"

    # -- a connection's thread -------------------------------------------------------

    def _converse(self, raw: socket.socket) -> ServerResult:
        peer = peer_of(raw)
        try:
            return self._answer(raw, peer)
        except Exception as exc:  # recorded for the test, never raised in a thread
            with self._lock:
                self._errors.append(f"{type(exc).__name__}: {exc}")
            if not self._acceptor.closing.is_set():
                _answers.wind_down(self._acceptor.current())
            return ServerResult(peer=peer, error=exc)

    def _answer(self, raw: socket.socket, peer: tuple[str, int]) -> ServerResult:
        before = _answers.BEFORE_TLS.get(self._respond)
        if before is not None:
            before(raw, self._acceptor.closing)
            return ServerResult(peer=peer)
        if self._hold is not None:
            self._hold.wait()  # set by the test, or by close()
        if self._alpn is not None and _answers.alpn_mismatch(raw, self._alpn):
            _answers.refuse(raw)
            return ServerResult(peer=peer)
        tls = self._acceptor.wrap(raw, self.context)
        tls.do_handshake()
        with self._lock:
            self._handshakes += 1
        if self._on_handshake is not None:
            self._on_handshake(tls)
        version, alpn = tls.version(), tls.selected_alpn_protocol()
        client_cert = tls.getpeercert(binary_form=True) is not None
        received = _answers.AFTER_HANDSHAKE[self._respond](tls, self._greeting)
        return ServerResult(
            peer=peer, version=version, alpn=alpn, client_cert=client_cert, received=received
        )
