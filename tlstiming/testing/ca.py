"""A small test PKI in the manner of trustme: ``CA()``, ``issue_cert``, ``configure_trust``.

Built with ``cryptography`` (trustme is not needed). Every certificate carries
what strict X.509 path building (Python 3.13's ``VERIFY_X509_STRICT``)
demands: subject and authority key identifiers, critical basic constraints
and key usage, the names in a SAN. The knobs go beyond trustme's where the
verifiers need them: AIA (OCSP, CA issuers), CRL distribution points,
OCSP-signing responder certificates, RSA, EC and Ed25519 keys.
"""

from __future__ import annotations

import datetime
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlstiming.testing import _x509

__all__ = ["CA", "Blob", "KeyType", "LeafCert", "PrivateKey", "Usage"]

KeyType = Literal["ec", "rsa", "ed25519"]
"""``ec`` (P-256), ``rsa`` (2048 bits) or ``ed25519``."""
Usage = Literal["server", "client", "ocsp_signing"]
"""An extended key usage: ``serverAuth``, ``clientAuth`` or ``OCSPSigning``."""
PrivateKey = CertificateIssuerPrivateKeyTypes

_USAGES: Final = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}


class Blob:
    """PEM bytes in memory (trustme's ``Blob``).

    Args:
        data: the bytes.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def bytes(self) -> bytes:
        """The bytes."""
        return self._data

    def write_to_path(self, path: str | os.PathLike[str], append: bool = False) -> None:
        """Write the bytes to ``path`` (after what is there with ``append``)."""
        with open(path, "ab" if append else "wb") as f:
            f.write(self._data)

    @contextmanager
    def tempfile(self, dir: str | None = None) -> Iterator[str]:
        """Yield the path of a temporary file holding the bytes; deleted afterwards."""
        fd, path = tempfile.mkstemp(suffix=".pem", dir=dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._data)
            yield path
        finally:
            os.unlink(path)

    def __repr__(self) -> str:
        return f"<Blob {len(self._data)} bytes>"


def _pem(cert: x509.Certificate) -> Blob:
    return Blob(cert.public_bytes(serialization.Encoding.PEM))


class _Credential:
    """A certificate and its private key, as ``cryptography`` objects and as PEM."""

    cert: x509.Certificate
    private_key: PrivateKey

    @property
    def cert_pem(self) -> Blob:
        """The certificate alone, PEM."""
        return _pem(self.cert)

    @property
    def private_key_pem(self) -> Blob:
        """The private key, PEM (PKCS#8, unencrypted)."""
        return Blob(
            self.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


class CA(_Credential):
    """A certificate authority: a root, or an intermediate (with ``parent``).

    Args:
        common_name: the subject's CN (default: ``tlstiming test CA`` and a
            random suffix, so that no two CAs share a name).
        key_type: the kind of key to generate.
        key: a key of your own instead (a weak RSA key, say).
        parent: the CA that signs this one (default: self-signed).
        ocsp_url: an AIA OCSP responder URL.
        ca_issuers_url: an AIA CA-issuers URL (where the parent's certificate is).
        crl_url: a CRL distribution point URL.
        not_before: start of validity (default: a day ago).
        not_after: end of validity (default: a year from now).

    Attributes:
        cert: the ``cryptography`` certificate.
        private_key: its private key.
        parent: the CA that signed it, or ``None`` for a root.
    """

    def __init__(
        self,
        *,
        common_name: str | None = None,
        key_type: KeyType = "ec",
        key: PrivateKey | None = None,
        parent: CA | None = None,
        ocsp_url: str | None = None,
        ca_issuers_url: str | None = None,
        crl_url: str | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> None:
        self.private_key = key or _x509.new_key(key_type)
        self.parent = parent
        name = common_name or f"tlstiming test CA {secrets.token_hex(4)}"
        signer = (parent.cert.subject, parent.private_key) if parent else None
        self.cert = _x509.certificate(
            _x509.name(name),
            self.private_key,
            signer,
            ca=True,
            extensions=_x509.locations(ocsp_url, ca_issuers_url, crl_url),
            validity=_x509.validity(not_before, not_after),
        )

    def create_child_ca(self, *, common_name: str | None = None, key_type: KeyType = "ec") -> CA:
        """An intermediate CA signed by this one; ``CA(parent=ca, ...)`` takes every knob."""
        return CA(common_name=common_name, key_type=key_type, parent=self)

    def issue_cert(
        self,
        *identities: str,
        common_name: str | None = None,
        key_type: KeyType = "ec",
        key: PrivateKey | None = None,
        usage: Sequence[Usage] = ("server", "client"),
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        ocsp_url: str | None = None,
        ca_issuers_url: str | None = None,
        crl_url: str | None = None,
        serial: int | None = None,
        must_staple: bool = False,
    ) -> LeafCert:
        """Issue an end-entity certificate.

        Args:
            identities: DNS names (``*.example.test`` too) and IP addresses,
                for the SAN.
            common_name: the subject's CN (default: the first identity).
            key_type: the kind of key to generate.
            key: a key of your own instead.
            usage: its extended key usages (none: no such extension).
            not_before: start of validity (default: a day ago).
            not_after: end of validity (default: a year from now); in the past
                for an expired certificate.
            ocsp_url: an AIA OCSP responder URL.
            ca_issuers_url: an AIA CA-issuers URL.
            crl_url: a CRL distribution point URL.
            serial: the serial number (default: random).
            must_staple: add the TLS Feature extension asking for a stapled
                OCSP response (RFC 7633, "OCSP must-staple").

        Raises:
            ValueError: with neither identities nor a common name, or an
                unknown usage.
        """
        if not identities and common_name is None:
            raise ValueError("issue_cert needs an identity or a common_name")
        unknown = set(usage) - set(_USAGES)
        if unknown:
            raise ValueError(f"usage must be among {sorted(_USAGES)}, not {sorted(unknown)}")
        private_key = key or _x509.new_key(key_type)
        extensions = _x509.locations(ocsp_url, ca_issuers_url, crl_url)
        if usage:
            extensions.append(x509.ExtendedKeyUsage([_USAGES[u] for u in usage]))
        if identities:
            extensions.append(_x509.san(identities))
        if must_staple:
            extensions.append(x509.TLSFeature([x509.TLSFeatureType.status_request]))
        cert = _x509.certificate(
            _x509.name(common_name or identities[0]),
            private_key,
            (self.cert.subject, self.private_key),
            ca=False,
            extensions=extensions,
            validity=_x509.validity(not_before, not_after),
            serial=serial,
        )
        return LeafCert(cert, private_key, self._chain())

    def ocsp_response(
        self,
        cert: x509.Certificate | LeafCert,
        *,
        status: Literal["good", "revoked", "unknown"] = "good",
        revoked_at: datetime.datetime | None = None,
        this_update: datetime.datetime | None = None,
        next_update: datetime.datetime | None = None,
    ) -> bytes:
        """A DER OCSP response for ``cert`` (one this CA issued), signed by this CA.

        What a server staples, or a responder answers (RFC 6960).

        Args:
            cert: the certificate the response is about.
            status: its revocation status.
            revoked_at: when it was revoked (default: an hour ago; ``"revoked"`` only).
            this_update: when the status was known (default: a minute ago).
            next_update: when newer information will be there (default: a
                day after ``this_update``; in the past for a stale response).
        """
        if status not in ("good", "revoked", "unknown"):
            raise ValueError(f"status must be 'good', 'revoked' or 'unknown', not {status!r}")
        leaf = cert.cert if isinstance(cert, LeafCert) else cert
        now = datetime.datetime.now(datetime.timezone.utc)
        produced = this_update or now - datetime.timedelta(minutes=1)
        states = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }
        revoked = status == "revoked"
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf,
                issuer=self.cert,
                algorithm=hashes.SHA1(),
                cert_status=states[status],
                this_update=produced,
                next_update=next_update or produced + datetime.timedelta(days=1),
                revocation_time=(revoked_at or now - datetime.timedelta(hours=1))
                if revoked
                else None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert)
        )
        ed = isinstance(self.private_key, ed25519.Ed25519PrivateKey)
        response = builder.sign(self.private_key, None if ed else hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    def _chain(self) -> tuple[x509.Certificate, ...]:
        """This CA and its parents, below the root: what a server sends after its leaf."""
        if self.parent is None:
            return ()
        return (self.cert, *self.parent._chain())

    def configure_trust(self, context: ssl.SSLContext) -> None:
        """Make ``context`` trust this CA."""
        context.load_verify_locations(cadata=self.cert_pem.bytes().decode("ascii"))

    def __repr__(self) -> str:
        subject = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return f"<CA {subject!s}>"


class LeafCert(_Credential):
    """An end-entity certificate, its private key and the intermediates above it.

    Made by :meth:`CA.issue_cert`.

    Attributes:
        cert: the ``cryptography`` certificate.
        private_key: its private key.
        chain: the intermediates a server sends after it, nearest first
            (not the root).
    """

    def __init__(
        self,
        cert: x509.Certificate,
        private_key: PrivateKey,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        self.cert = cert
        self.private_key = private_key
        self.chain = tuple(chain)

    @property
    def cert_chain_pems(self) -> tuple[Blob, ...]:
        """The certificate, then each intermediate, PEM."""
        return tuple(_pem(cert) for cert in (self.cert, *self.chain))

    @property
    def private_key_and_cert_chain_pem(self) -> Blob:
        """The key and the chain in one PEM blob."""
        blobs = (self.private_key_pem, *self.cert_chain_pems)
        return Blob(b"".join(blob.bytes() for blob in blobs))

    def configure_cert(self, context: ssl.SSLContext, *, send_chain: bool = True) -> None:
        """Make ``context`` present this certificate (and its intermediates, unless told).

        Args:
            context: a server context, or a client context for a client certificate.
            send_chain: ``False`` presents the certificate alone (a broken chain).
        """
        blob = self.private_key_and_cert_chain_pem if send_chain else self._alone()
        with blob.tempfile() as path:
            context.load_cert_chain(path)

    def _alone(self) -> Blob:
        return Blob(self.private_key_pem.bytes() + self.cert_pem.bytes())

    def __repr__(self) -> str:
        return f"<LeafCert {self.cert.subject.rfc4514_string()}>"
