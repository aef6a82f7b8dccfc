"""Summaries of X.509 certificates, parsed with ``cryptography`` only when asked.

Importing this module does not import ``cryptography`` (about 50 ms); the first
call to :func:`certificate_info` does. Results are cached by DER, so the same
certificate seen on many connections is parsed once.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = ["CertificateInfo", "certificate_info"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Names as cryptography spells them (its private ``ObjectIdentifier._name``).
_SIGNATURE_OIDS: Final = {
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.3.101.112": "ed25519",
    "1.3.101.113": "ed448",
    "1.2.840.10040.4.3": "dsa-with-sha1",
    "2.16.840.1.101.3.4.3.1": "dsa-with-sha224",
    "2.16.840.1.101.3.4.3.2": "dsa-with-sha256",
    "2.16.840.1.101.3.4.3.17": "ML-DSA-44",
    "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
    "2.16.840.1.101.3.4.3.19": "ML-DSA-87",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateInfo:
    """What a span reports about one certificate.

    If ``cryptography`` cannot parse the DER, ``parse_error`` says why and the
    other fields hold placeholders: empty names, the Unix epoch as validity,
    ``key_type="unknown"``, ``signature_algorithm="unknown"``; ``sha256`` and
    ``size`` are always real. ``key_size`` is the modulus size for RSA/DSA,
    the curve size for EC, and ``None`` for Ed25519/Ed448 (fixed by the type).
    """

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    key_type: str
    key_size: int | None
    curve: str | None
    signature_algorithm: str
    sha256: str
    size: int
    self_signed: bool
    parse_error: str | None

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict; datetimes become ISO 8601 strings."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key_type": self.key_type,
            "key_size": self.key_size,
            "curve": self.curve,
            "signature_algorithm": self.signature_algorithm,
            "sha256": self.sha256,
            "size": self.size,
            "self_signed": self.self_signed,
            "parse_error": self.parse_error,
        }


@functools.lru_cache(maxsize=256)
def certificate_info(der: bytes) -> CertificateInfo:
    """Summarize a DER certificate; never raises.

    Args:
        der: one DER-encoded X.509 certificate.

    Returns:
        The summary; ``parse_error`` is set when the DER could not be parsed.
    """
    from cryptography import x509  # noqa: PLC0415 (lazy: keeps import tlstiming fast)

    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        validity = (cert.not_valid_before_utc, cert.not_valid_after_utc)
        oid = cert.signature_algorithm_oid.dotted_string
    except ValueError as exc:
        return _unparsed(der, fingerprint, f"{type(exc).__name__}: {exc}")
    key_type, key_size, curve = _key_facts(cert)
    return CertificateInfo(
        subject=subject,
        issuer=issuer,
        not_before=validity[0],
        not_after=validity[1],
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        signature_algorithm=_SIGNATURE_OIDS.get(oid, oid),
        sha256=fingerprint,
        size=len(der),
        self_signed=cert.subject == cert.issuer,
        parse_error=None,
    )


def _unparsed(der: bytes, fingerprint: str, error: str) -> CertificateInfo:
    return CertificateInfo(
        subject="",
        issuer="",
        not_before=_EPOCH,
        not_after=_EPOCH,
        key_type="unknown",
        key_size=None,
        curve=None,
        signature_algorithm="unknown",
        sha256=fingerprint,
        size=len(der),
        self_signed=False,
        parse_error=error,
    )


def _key_facts(cert: Certificate) -> tuple[str, int | None, str | None]:
    """Return ``(key_type, key_size, curve)``; unknown or unloadable keys -> "unknown"."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa  # noqa: PLC0415

    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown", None, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", None, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", None, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    return "unknown", None, None
