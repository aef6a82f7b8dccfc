"""A throwaway PKI for local test servers, built with ``cryptography`` (no trustme needed)."""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "LocalPKI"]

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class _Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class Issued:
    """PEM files of one issued certificate.

    Attributes:
        cert_file: the certificate, followed by the intermediate when ``chain``.
        key_file: its private key (PKCS#8, unencrypted).
    """

    cert_file: str
    key_file: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hostnames: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: _Authority | None,
    *,
    ca: bool,
    not_after: datetime.datetime,
    extra: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name if issuer else subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now - datetime.timedelta(hours=1), not_after - _DAY))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def _authority(common_name: str, issuer: _Authority | None = None) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    not_after = datetime.datetime.now(datetime.timezone.utc) + 30 * _DAY
    return _Authority(name, key, _sign(name, key, issuer, ca=True, not_after=not_after))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class LocalPKI:
    """A root CA, an intermediate CA under it, an untrusted root, and a client certificate.

    Server certificates come from the intermediate; the client certificate
    from the root. Everything is written as PEM files into ``directory``.

    Args:
        directory: an existing directory for the PEM files.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self._serial = itertools.count(1)
        self._root = _authority("tlstiming test root CA")
        self._intermediate = _authority("tlstiming test intermediate CA", self._root)
        self._stranger = _authority("tlstiming untrusted CA")
        self.ca_pem: str = _pem(self._root.cert).decode("ascii")
        """The root CA certificate clients should trust, as PEM text."""
        self.ca_file: str = self._write("ca.pem", self.ca_pem.encode("ascii"))
        """The path of :attr:`ca_pem` (for ``cafile=``, ``SSL_CERT_FILE``, ``verify=``)."""
        client = self._issue(
            ("client.tlstiming.test",), self._root, ExtendedKeyUsageOID.CLIENT_AUTH
        )
        self.client_cert: Issued = client
        """A client certificate issued by the root CA (and its key)."""

    @classmethod
    @contextmanager
    def temporary(cls) -> Iterator[LocalPKI]:
        """Yield a :class:`LocalPKI` in a temporary directory, deleted afterwards."""
        with tempfile.TemporaryDirectory(prefix="tlstiming-pki-") as directory:
            yield cls(directory)

    def issue(
        self,
        hostnames: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
        *,
        expired: bool = False,
        untrusted: bool = False,
        chain: bool = True,
    ) -> Issued:
        """Issue a server certificate.

        Args:
            hostnames: DNS names and IP addresses it is valid for.
            expired: make it expire yesterday.
            untrusted: issue it from a CA that :attr:`ca_file` does not contain.
            chain: put the intermediate CA after it in ``cert_file``; ``False``
                gives a server that forgets its intermediate.
        """
        issuer = self._stranger if untrusted else self._intermediate
        now = datetime.datetime.now(datetime.timezone.utc)
        not_after = now - _DAY if expired else now + 30 * _DAY
        issued = self._issue(hostnames, issuer, ExtendedKeyUsageOID.SERVER_AUTH, not_after)
        if chain and not untrusted:
            with open(issued.cert_file, "ab") as f:
                f.write(_pem(self._intermediate.cert))
        return issued

    def _issue(
        self,
        hostnames: Sequence[str],
        issuer: _Authority,
        usage: x509.ObjectIdentifier,
        not_after: datetime.datetime | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        if not_after is None:
            not_after = datetime.datetime.now(datetime.timezone.utc) + 30 * _DAY
        extensions = [x509.ExtendedKeyUsage([usage]), _san(hostnames)]
        leaf = _sign(
            _name(hostnames[0]), key, issuer, ca=False, not_after=not_after, extra=extensions
        )
        n = next(self._serial)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Issued(
            cert_file=self._write(f"cert{n}.pem", _pem(leaf)),
            key_file=self._write(f"key{n}.pem", key_pem),
        )

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def __repr__(self) -> str:
        return f"<LocalPKI {self.directory}>"
