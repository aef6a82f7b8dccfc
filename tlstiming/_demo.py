"""Embedded loopback TLS servers for ``tlstiming demo``: no internet needed."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["DemoPKI", "LoopbackServer", "demo_pki"]


class DemoPKI:
    """A throwaway CA and a ``localhost`` certificate, as PEM files in ``directory``."""

    def __init__(self, directory: str) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlstiming demo CA")])
        ca = (
            _builder(ca_name, ca_name, ca_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        leaf = (
            _builder(leaf_name, ca_name, key.public_key(), now)
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = os.path.join(directory, "ca.pem")
        self.cert_file = os.path.join(directory, "localhost.pem")
        self.key_file = os.path.join(directory, "localhost.key")
        _write(self.ca_file, ca.public_bytes(serialization.Encoding.PEM))
        _write(self.cert_file, leaf.public_bytes(serialization.Encoding.PEM))
        _write(
            self.key_file,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the ``localhost`` certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


@contextmanager
def demo_pki() -> Iterator[DemoPKI]:
    """Yield a :class:`DemoPKI` whose files are deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="tlstiming-demo-") as directory:
        yield DemoPKI(directory)


class LoopbackServer:
    """A TLS server on 127.0.0.1 in a thread: handshake, send a greeting, wait for EOF, close."""

    def __init__(self, context: ssl.SSLContext, greeting: bytes = b"ok") -> None:
        self._context = context
        self._greeting = greeting
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="tlstiming-demo", daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            with raw:
                _answer(self._context, raw, self._greeting)


def _answer(context: ssl.SSLContext, raw: socket.socket, greeting: bytes) -> None:
    raw.settimeout(5)
    try:
        with context.wrap_socket(raw, server_side=True) as conn:
            conn.sendall(greeting)
            while conn.recv(1024):
                pass
    except (OSError, ssl.SSLError):
        return
