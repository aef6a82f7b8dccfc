"""The verifier tests' certificates, from :mod:`tlstiming.testing`: root -> intermediate -> leaf.

In the words the verifier tests use: an :class:`Authority` is a certificate
and its key; :func:`issue` makes one with :class:`tlstiming.testing.CA`
(AIA OCSP and CRL distribution points included). Also: OCSP responses and
CRLs signed by any authority, for the loopback responders and for staples.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlstiming import PeerInfo
from tlstiming.testing.ca import CA, PrivateKey, Usage

Key = PrivateKey
Status = Literal["good", "revoked", "unknown"]
DAY = datetime.timedelta(days=1)
REVOKED_AT = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
_USAGE: Final[dict[x509.ObjectIdentifier, Usage]] = {
    ExtendedKeyUsageOID.SERVER_AUTH: "server",
    ExtendedKeyUsageOID.CLIENT_AUTH: "client",
    ExtendedKeyUsageOID.OCSP_SIGNING: "ocsp_signing",
}


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class Authority:
    """A certificate and its private key: a CA, a leaf or an OCSP responder.

    ``ca`` is the :class:`tlstiming.testing.CA` behind a CA certificate made
    by :func:`issue` (``None`` for anything else: it cannot issue).
    """

    cert: x509.Certificate
    key: Key
    ca: CA | None = field(default=None, compare=False, repr=False)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_key(kind: str = "ec") -> Key:
    """``ec`` (P-256), or ``rsa-BITS`` (``rsa-1024``: a key too weak to trust)."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=int(kind.split("-")[1]))


def issue(
    subject: str,
    issuer: Authority | None,
    *,
    ca: bool,
    key: Key | None = None,
    hostnames: Sequence[str] = (),
    eku: Sequence[x509.ObjectIdentifier] = (),
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    not_after: datetime.datetime | None = None,
    serial: int | None = None,
) -> Authority:
    """Issue a certificate (self-signed when ``issuer`` is ``None``)."""
    parent = issuer.ca if issuer is not None else None
    if issuer is not None and parent is None:
        raise ValueError(f"{issuer} is not a CA made by issue()")
    if ca:
        made = CA(
            common_name=subject,
            key=key,
            parent=parent,
            ocsp_url=ocsp_url,
            crl_url=crl_url,
            not_after=not_after,
        )
        return Authority(made.cert, made.private_key, made)
    if parent is None:
        raise ValueError("a leaf needs an issuer")
    leaf = parent.issue_cert(
        *hostnames,
        common_name=subject,
        key=key,
        usage=[_USAGE[oid] for oid in eku],
        ocsp_url=ocsp_url,
        crl_url=crl_url,
        not_after=not_after,
        serial=serial,
    )
    return Authority(leaf.cert, leaf.private_key)


@dataclass(frozen=True)
class Chain:
    """root -> intermediate -> leaf (``localhost``, ``127.0.0.1``)."""

    root: Authority
    intermediate: Authority
    leaf: Authority

    @property
    def sent(self) -> tuple[bytes, ...]:
        """What a correctly configured server sends: leaf, intermediate."""
        return (self.leaf.der, self.intermediate.der)


def make_chain(
    *,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    root: Authority | None = None,
    intermediate: Authority | None = None,
    **leaf_options: object,
) -> Chain:
    """A fresh chain (or a new leaf under the given root and intermediate)."""
    root = root or issue("Verifier Test Root", None, ca=True)
    intermediate = intermediate or issue("Verifier Test Intermediate", root, ca=True)
    leaf = issue(
        "localhost",
        intermediate,
        ca=False,
        hostnames=("localhost", "127.0.0.1"),
        eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
        ocsp_url=ocsp_url,
        crl_url=crl_url,
        **leaf_options,  # type: ignore[arg-type]
    )
    return Chain(root, intermediate, leaf)


def delegated_responder(issuer: Authority, *, ocsp_signing: bool = True) -> Authority:
    """A responder certificate issued by ``issuer`` (with the OCSP-signing EKU unless told)."""
    eku = (
        (ExtendedKeyUsageOID.OCSP_SIGNING,) if ocsp_signing else (ExtendedKeyUsageOID.CLIENT_AUTH,)
    )
    return issue("Verifier Test OCSP Responder", issuer, ca=False, eku=eku)


def ocsp_response(
    subject: x509.Certificate | ocsp.OCSPRequest,
    issuer: Authority,
    *,
    status: Status = "good",
    signer: Authority | None = None,
    include_signer: bool = False,
    by_name: bool = False,
    this_update: datetime.datetime | None = None,
    next_update: datetime.datetime | Literal["default"] | None = "default",
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    """A DER OCSP response about ``subject`` (a certificate, or a request's certificate id).

    Signed by ``signer`` (default: the issuer), named by key hash (or by
    name); a request is answered with its own hash algorithm.
    """
    signer = signer or issuer
    this_update = this_update or now() - datetime.timedelta(minutes=1)
    if next_update == "default":
        next_update = this_update + DAY
    revoked = status == "revoked"
    common = {
        "cert_status": _CERT_STATUS[status],
        "this_update": this_update,
        "next_update": next_update,
        "revocation_time": REVOKED_AT if revoked else None,
        "revocation_reason": x509.ReasonFlags.key_compromise if revoked else None,
    }
    builder = ocsp.OCSPResponseBuilder()
    if isinstance(subject, ocsp.OCSPRequest):
        builder = builder.add_response_by_hash(
            issuer_name_hash=subject.issuer_name_hash,
            issuer_key_hash=subject.issuer_key_hash,
            serial_number=subject.serial_number,
            algorithm=subject.hash_algorithm,
            **common,  # type: ignore[arg-type]
        )
    else:
        builder = builder.add_response(
            cert=subject,
            issuer=issuer.cert,
            algorithm=hash_algorithm or hashes.SHA1(),
            **common,  # type: ignore[arg-type]
        )
    encoding = ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH
    builder = builder.responder_id(encoding, signer.cert)
    if include_signer:
        builder = builder.certificates([signer.cert])
    response = builder.sign(signer.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


_CERT_STATUS = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}


def crl(
    issuer: Authority,
    revoked: Sequence[x509.Certificate] = (),
    *,
    signer: Authority | None = None,
    next_update: datetime.datetime | None = None,
) -> bytes:
    """A DER CRL of ``issuer`` listing ``revoked`` (signed by ``signer`` if given)."""
    next_update = next_update or now() + DAY
    last_update = min(now() - datetime.timedelta(minutes=1), next_update - DAY)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update)
        .next_update(next_update)
    )
    for cert in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(REVOKED_AT)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    signed = builder.sign((signer or issuer).key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.DER)


def client_context(*trusted: Authority) -> ssl.SSLContext:
    """A client context trusting ``trusted``."""
    return ssl.create_default_context(
        cadata="".join(a.pem.decode("ascii") for a in trusted) or None
    )


def peer(
    chain_der: Sequence[bytes],
    context: ssl.SSLContext,
    *,
    staple: bytes | None = None,
    may_block: bool = True,
    resumed: bool = False,
    protocol_version: str = "1.3",
    side: Literal["client", "server"] = "client",
) -> PeerInfo:
    """A hand-built :class:`PeerInfo` for calling a verifier directly."""
    return PeerInfo(
        side=side,
        server_hostname="localhost",
        sni="localhost",
        alpn=None,
        protocol_version=protocol_version,
        resumed=resumed,
        chain_der=tuple(chain_der),
        ocsp_staple=staple,
        context=context,
        may_block=may_block,
    )


def server_context(
    chain: Chain, directory: Path, *, send_intermediate: bool = True
) -> ssl.SSLContext:
    """A server context presenting ``chain``'s leaf (and its intermediate unless told)."""
    certs = chain.leaf.pem + (chain.intermediate.pem if send_intermediate else b"")
    (directory / "chain.pem").write_bytes(certs)
    (directory / "key.pem").write_bytes(chain.leaf.key_pem())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    return context
