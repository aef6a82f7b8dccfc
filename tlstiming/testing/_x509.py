"""The certificate builder behind :mod:`tlstiming.testing.ca`: keys, names, extensions."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

Key = CertificateIssuerPrivateKeyTypes
Signer = tuple[x509.Name, Key]
"""The issuer's name and key (``None`` where a certificate signs itself)."""
Validity = tuple[datetime.datetime, datetime.datetime]

DAY = datetime.timedelta(days=1)


def new_key(key_type: str) -> Key:
    """A fresh private key: ``ec`` (P-256), ``rsa`` (2048 bits) or ``ed25519``."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key_type must be 'ec', 'rsa' or 'ed25519', not {key_type!r}")


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def san(identities: Sequence[str]) -> x509.SubjectAlternativeName:
    """DNS names and IP addresses."""
    entries: list[x509.GeneralName] = []
    for identity in identities:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(identity)))
        except ValueError:
            entries.append(x509.DNSName(identity))
    return x509.SubjectAlternativeName(entries)


def locations(
    ocsp_url: str | None, ca_issuers_url: str | None, crl_url: str | None
) -> list[x509.ExtensionType]:
    """The AIA and CRL distribution point extensions for the URLs given."""
    access = [
        x509.AccessDescription(method, x509.UniformResourceIdentifier(url))
        for method, url in (
            (AuthorityInformationAccessOID.OCSP, ocsp_url),
            (AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers_url),
        )
        if url
    ]
    found: list[x509.ExtensionType] = []
    if access:
        found.append(x509.AuthorityInformationAccess(access))
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        found.append(x509.CRLDistributionPoints([point]))
    return found


def validity(not_before: datetime.datetime | None, not_after: datetime.datetime | None) -> Validity:
    """Defaults: from a day ago (or a day before ``not_after``) to a year from now."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    not_after = not_after or now + 365 * DAY
    return not_before or min(now - DAY, not_after - DAY), not_after


def key_usage(*, ca: bool, key: Key) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=not ca and isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def certificate(
    subject: x509.Name,
    key: Key,
    signer: Signer | None,
    *,
    ca: bool,
    extensions: Sequence[x509.ExtensionType],
    validity: Validity,
    serial: int | None = None,
) -> x509.Certificate:
    """A certificate for ``key``, signed by ``signer`` (or by ``key`` itself)."""
    public = key.public_key()
    issuer_name, issuer_key = signer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(key_usage(ca=ca, key=key), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if signer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(aki, critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    edwards = isinstance(issuer_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
    return builder.sign(issuer_key, None if edwards else hashes.SHA256())
