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
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.x509 import Certificate, Name, ObjectIdentifier

__all__ = ["CertificateInfo", "certificate_info"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NO_KEY: Final[tuple[str, int | None, str | None]] = ("unknown", None, None)
_T = TypeVar("_T")

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
    ``key_type="unknown"``, ``signature_algorithm="unknown"``. If it parses the
    DER but not some fields, those hold placeholders and ``parse_error`` lists
    them (``"subject: ValueError: ...; public_key: ..."``). ``sha256`` and
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

    Each field is read on its own: a field ``cryptography`` rejects keeps its
    placeholder and adds ``"<field>: <error>"`` to ``parse_error``, the others
    are still filled in.

    Args:
        der: one DER-encoded X.509 certificate.

    Returns:
        The summary; ``parse_error`` is set when any part could not be parsed.
    """
    from cryptography import x509  # noqa: PLC0415 (lazy: keeps import tlstiming fast)

    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as exc:  # recording only: any DER a peer sends must still export
        return _unparsed(der, fingerprint, _describe(exc))
    errors: list[str] = []
    subject_name = _read(errors, "subject", lambda: cert.subject, None)
    issuer_name = _read(errors, "issuer", lambda: cert.issuer, None)
    oid = _read(errors, "signature_algorithm", lambda: cert.signature_algorithm_oid, None)
    key_type, key_size, curve = _read(errors, "public_key", lambda: _key_facts(cert), _NO_KEY)
    return CertificateInfo(
        subject=_rfc4514(errors, "subject", subject_name),
        issuer=_rfc4514(errors, "issuer", issuer_name),
        not_before=_read(errors, "not_before", lambda: cert.not_valid_before_utc, _EPOCH),
        not_after=_read(errors, "not_after", lambda: cert.not_valid_after_utc, _EPOCH),
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        signature_algorithm=_signature_name(errors, oid),
        sha256=fingerprint,
        size=len(der),
        self_signed=subject_name is not None and subject_name == issuer_name,
        parse_error="; ".join(errors) or None,
    )


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _read(errors: list[str], field: str, read: Callable[[], _T], placeholder: _T) -> _T:
    """Return ``read()``; on any error note it under ``field`` and return ``placeholder``."""
    try:
        return read()
    except Exception as exc:  # recording only: ValueError, InvalidVersion, UnsupportedAlgorithm...
        errors.append(f"{field}: {_describe(exc)}")
        return placeholder


def _rfc4514(errors: list[str], field: str, name: Name | None) -> str:
    return "" if name is None else _read(errors, field, name.rfc4514_string, "")


def _signature_name(errors: list[str], oid: ObjectIdentifier | None) -> str:
    if oid is None:
        return "unknown"
    dotted = _read(errors, "signature_algorithm", lambda: oid.dotted_string, "unknown")
    return _SIGNATURE_OIDS.get(dotted, dotted)


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
    """Return ``(key_type, key_size, curve)``; key types ``cryptography`` lacks -> "unknown".

    A malformed key raises whatever ``cryptography`` raises (the caller records it).
    """
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa  # noqa: PLC0415

    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:  # a key type it does not implement: not a parse error
        return _NO_KEY
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
    return _NO_KEY
