"""The demo's loopback servers: a healthy one, and one per real problem.

Each :class:`Scenario` starts a real TLS server on 127.0.0.1 (the
:class:`~tlstiming.testing.LocalTLSServer`, with a context of its own where a
knob is missing) that reproduces one cause, and names the finding id the
probe must report for it.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tlstiming.testing import Blob, LocalPKI, LocalTLSServer

__all__ = ["SCENARIOS", "Scenario", "StallingResponder", "Started", "available"]


@dataclass(frozen=True, slots=True)
class Started:
    """A running scenario: where to probe, and what the probe needs."""

    port: int
    cafile: str
    cert: str | None = None
    ocsp: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """One demo server.

    Attributes:
        name: short key (``--json``).
        title: what is wrong with it, for people.
        expected: the finding id the probe must name (``None``: no finding at
            warning or above).
        start: a context manager factory: ``start(pki, stack)`` starts the server.
        native: it needs native hooks (OCSP stapling), so it is left out where
            they are off.
    """

    name: str
    title: str
    expected: str | None
    start: Callable[[LocalPKI, contextlib.ExitStack], Started] = field(repr=False)
    native: bool = False  # needs native hooks (tlstiming.implementation())


def _serve(stack: contextlib.ExitStack, pki: LocalPKI, **knobs: Any) -> Started:
    server = stack.enter_context(LocalTLSServer(pki=pki, **knobs))
    return Started(server.port, pki.ca_file)


def _context(leaf: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


class StallingResponder:
    """An HTTP "OCSP responder" on loopback that accepts and never answers, until closed."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self._closing = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(
            target=self._accept, name="tlstiming-demo-ocsp", daemon=True
        )
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)  # read nothing, answer nothing: a responder that hangs

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
        for conn in self._held:
            conn.close()


def _slow_ocsp(pki: LocalPKI, stack: contextlib.ExitStack) -> Started:
    responder = StallingResponder()
    stack.callback(responder.close)
    leaf = pki.intermediate.issue_cert("localhost", "127.0.0.1", ocsp_url=responder.url)
    server = stack.enter_context(LocalTLSServer(context=_context(leaf)))
    return Started(server.port, pki.ca_file, ocsp=True)


def _stapled_ocsp(pki: LocalPKI, stack: contextlib.ExitStack) -> Started:
    """The same hanging responder, but the server staples a good response for its leaf."""
    from tlstiming import TimedSSLContext  # noqa: PLC0415

    responder = StallingResponder()
    stack.callback(responder.close)
    leaf = pki.intermediate.issue_cert("localhost", "127.0.0.1", ocsp_url=responder.url)
    context = TimedSSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.set_ocsp_staple(pki.intermediate.ocsp_response(leaf))
    server = stack.enter_context(LocalTLSServer(context=context))
    return Started(server.port, pki.ca_file, ocsp=True)


def _large_flight(pki: LocalPKI, stack: contextlib.ExitStack) -> Started:
    names = ["localhost", *(f"service-{i:04d}.demo.tlstiming.test" for i in range(600))]
    leaf = pki.intermediate.issue_cert(*names)
    server = stack.enter_context(LocalTLSServer(context=_context(leaf)))
    return Started(server.port, pki.ca_file)


def _slow_verification(pki: LocalPKI, stack: contextlib.ExitStack) -> Started:
    """A root with 1,600 name constraints and a leaf with 640 names: OpenSSL checks each pair."""
    root, leaf_pem = _constrained_pki(subtrees=1600, names=640)
    cafile = stack.enter_context(root.tempfile())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with leaf_pem.tempfile() as path:
        context.load_cert_chain(path)
    context.set_alpn_protocols(["h2", "http/1.1"])
    server = stack.enter_context(LocalTLSServer(context=context))
    return Started(server.port, cafile)


def _client_cert(pki: LocalPKI, stack: contextlib.ExitStack) -> Started:
    return _serve(stack, pki, client_cert="required", tls_min="1.3", alpn=["h2", "http/1.1"])


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "healthy",
        "a healthy server: TLS 1.3, h2, a full chain",
        None,
        lambda pki, stack: _serve(stack, pki, alpn=["h2", "http/1.1"]),
    ),
    Scenario(
        "hello_retry",
        "the server only accepts secp384r1: a HelloRetryRequest",
        "tls.hello_retry",
        lambda pki, stack: _serve(stack, pki, hello_retry=True, alpn=["h2", "http/1.1"]),
    ),
    Scenario(
        "tls12",
        "the server speaks TLS 1.2 at most: a second round trip",
        "tls.tls12_round_trip",
        lambda pki, stack: _serve(stack, pki, tls_max="1.2", alpn=["h2", "http/1.1"]),
    ),
    Scenario(
        "alpn_refused",
        "the server speaks only 'imap' over ALPN: a fatal alert 120",
        "tls.alpn_refused",
        lambda pki, stack: _serve(stack, pki, alpn=["imap"], alpn_strict=True),
    ),
    Scenario(
        "alpn_fallback",
        "h2 offered, the server picks http/1.1: the silent fallback",
        "tls.alpn_h2_not_selected",
        lambda pki, stack: _serve(stack, pki, alpn=["http/1.1"]),
    ),
    Scenario(
        "missing_intermediate",
        "the server forgets its intermediate certificate",
        "tls.chain_incomplete",
        lambda pki, stack: _serve(stack, pki, send_intermediate=False, alpn=["h2", "http/1.1"]),
    ),
    Scenario(
        "slow_ocsp",
        "the certificate's OCSP responder hangs (probe with --ocsp)",
        "tls.ocsp_unavailable",
        _slow_ocsp,
    ),
    Scenario(
        "stapled_ocsp",
        "the same hanging responder, but the server staples a good OCSP response",
        None,
        _stapled_ocsp,
        native=True,
    ),
    Scenario(
        "large_flight",
        "a certificate with 600 names: a flight above 14,600 bytes",
        "tls.certificate_flight_large",
        _large_flight,
    ),
    Scenario(
        "slow_verification",
        "1,600 name constraints x 640 names: slow chain verification",
        "tls.chain_verify_slow",
        _slow_verification,
    ),
    Scenario(
        "slow_first_flight",
        "the server thinks 300 ms before its ServerHello",
        "tls.server_slow_first_flight",
        lambda pki, stack: _serve(stack, pki, delay=0.3, alpn=["h2", "http/1.1"]),
    ),
    Scenario(
        "client_certificate",
        "the server requires a client certificate (TLS 1.3)",
        "tls.client_certificate_required",
        _client_cert,
    ),
    Scenario(
        "not_tls",
        "a plain HTTP server on the port",
        "tls.not_tls_peer",
        lambda pki, stack: _serve(stack, pki, respond="not_tls"),
    ),
)
"""Every demo server, the healthy one first."""


# -- a PKI whose verification is slow ------------------------------------------------------


def _constrained_pki(*, subtrees: int, names: int) -> tuple[Blob, Blob]:
    """A root with ``subtrees`` permitted DNS subtrees, and a leaf with ``names`` names in them."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.timezone.utc)
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "tlstiming demo constrained root")]
    )
    permitted: list[x509.GeneralName] = [x509.DNSName(f"z{i}.t") for i in range(subtrees)]
    permitted.append(x509.DNSName("localhost"))
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )
    sans = [
        x509.DNSName("localhost"),
        *(x509.DNSName(f"a{i}.z{i % subtrees}.t") for i in range(names)),
    ]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Blob(root.public_bytes(pem)), Blob(key + leaf.public_bytes(pem))


def available() -> tuple[Scenario, ...]:
    """The scenarios this process can run (stapling needs native hooks)."""
    from tlstiming import implementation  # noqa: PLC0415

    native = implementation().name == "native"
    return tuple(s for s in SCENARIOS if native or not s.native)
