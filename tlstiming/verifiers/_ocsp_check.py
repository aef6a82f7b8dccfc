"""OCSP requests and response checks (RFC 6960), with ``cryptography.x509.ocsp``; no I/O.

A response is accepted when all of these hold:

- its status is ``successful``;
- one of its single responses has the certificate's id (issuer name hash,
  issuer key hash, serial), compared with the hash algorithm the response used;
- it is signed by the issuer, or by a delegated responder: a certificate in
  the response, named by the responder id, issued directly by the issuer,
  with the OCSP-signing extended key usage, valid now;
- ``thisUpdate`` is not in the future and ``nextUpdate`` (if any) not in
  the past, both with ``skew`` of tolerance.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    SignatureAlgorithmOID,
)

from tlstiming.verifiers._revocation import Unavailable
from tlstiming.verifiers._trust import issued_by

__all__ = ["HASHES", "Answer", "CertId", "build_request", "check_response", "responder_url"]

HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
Status = Literal["good", "revoked", "unknown"]
_STATUS: Final[dict[ocsp.OCSPCertStatus, Status]] = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}


@dataclass(frozen=True, slots=True)
class CertId:
    """An OCSP certificate id: the cache key."""

    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int


@dataclass(frozen=True, slots=True)
class Answer:
    """A checked OCSP answer for one certificate."""

    status: Status
    this_update: datetime.datetime
    next_update: datetime.datetime | None
    revoked_at: datetime.datetime | None = None
    revocation_reason: str | None = None


def responder_url(cert: x509.Certificate) -> str | None:
    """The first OCSP responder URL of ``cert``'s AIA extension (``http://`` preferred)."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    urls = [
        str(d.access_location.value)
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]
    http = [url for url in urls if url.lower().startswith("http://")]
    return next(iter(http or urls), None)


def build_request(
    cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[CertId, bytes]:
    """The id of ``cert`` and a DER OCSP request for it (no nonce, so answers are cacheable)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    cert_id = CertId(
        algorithm.name, request.issuer_name_hash, request.issuer_key_hash, request.serial_number
    )
    return cert_id, request.public_bytes(serialization.Encoding.DER)


def check_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime.datetime,
    skew: datetime.timedelta,
) -> Answer:
    """Check a DER OCSP response for ``cert`` (see the module doc).

    Raises:
        Unavailable: the response does not establish the status.
    """
    try:
        return _check(ocsp.load_der_ocsp_response(der), cert, issuer, now, skew)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise Unavailable("malformed", f"malformed OCSP response: {exc}") from None


def _check(
    response: ocsp.OCSPResponse,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime.datetime,
    skew: datetime.timedelta,
) -> Answer:
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        status = response.response_status.name.lower()
        raise Unavailable("unsuccessful", f"the responder answered {status}")
    single = _matching(response, cert, issuer)
    _check_signature(response, _signer(response, issuer, now, skew))
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if this_update > now + skew:
        raise Unavailable("not_yet_valid", f"thisUpdate {this_update.isoformat()} is in the future")
    if next_update is not None and next_update < now - skew:
        raise Unavailable("expired", f"the response expired at {next_update.isoformat()}")
    reason = single.revocation_reason
    return Answer(
        status=_STATUS[single.certificate_status],
        this_update=this_update,
        next_update=next_update,
        revoked_at=single.revocation_time_utc,
        revocation_reason=None if reason is None else reason.value,
    )


def _matching(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    ids: dict[str, CertId] = {}
    for single in response.responses:
        algorithm = single.hash_algorithm
        if algorithm.name not in HASHES:
            continue
        if algorithm.name not in ids:
            ids[algorithm.name] = build_request(cert, issuer, algorithm)[0]
        mine = ids[algorithm.name]
        theirs = (single.issuer_name_hash, single.issuer_key_hash, single.serial_number)
        if theirs == (mine.issuer_name_hash, mine.issuer_key_hash, mine.serial):
            return single
    raise Unavailable("no_match", "the response does not cover this certificate")


def _names(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """The response's responder id designates ``cert``."""
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return response.responder_key_hash == key_id


def _signer(
    response: ocsp.OCSPResponse,
    issuer: x509.Certificate,
    now: datetime.datetime,
    skew: datetime.timedelta,
) -> x509.Certificate:
    if _names(response, issuer):
        return issuer
    for cert in response.certificates:
        if _names(response, cert) and issued_by(cert, issuer) and _may_sign_ocsp(cert, now, skew):
            return cert
    raise Unavailable(
        "bad_signer", "signed neither by the issuer nor by a responder it delegated to"
    )


def _may_sign_ocsp(
    cert: x509.Certificate, now: datetime.datetime, skew: datetime.timedelta
) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    valid = cert.not_valid_before_utc - skew <= now <= cert.not_valid_after_utc + skew
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage and valid


def _check_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    signature, data = response.signature, response.tbs_response_bytes
    try:
        if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
        elif (
            algorithm is None
            or response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
        ):
            raise Unavailable("unsupported", "unsupported OCSP signature algorithm")
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            raise Unavailable("unsupported", f"unsupported responder key {type(key).__name__}")
    except InvalidSignature:
        raise Unavailable("bad_signature", "the OCSP response's signature is invalid") from None
