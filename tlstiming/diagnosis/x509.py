"""What the rules need from certificates beyond CertificateInfo: CA flag, OCSP, names.

Parsed with ``cryptography`` on first use and cached by DER; a certificate
that does not parse gives the defaults (the rules then say less, never raise).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["CertFacts", "cert_facts"]


@dataclass(frozen=True, slots=True)
class CertFacts:
    """Extensions the rules read.

    Attributes:
        is_ca: basicConstraints CA is true.
        ocsp_urls: the AIA OCSP responders.
        ca_issuers: the AIA caIssuers URLs (where the issuer can be fetched).
        must_staple: the TLS Feature extension asks for status_request.
        dns_names: the subjectAltName DNS names.
        ip_addresses: the subjectAltName IP addresses.
    """

    is_ca: bool = False
    ocsp_urls: tuple[str, ...] = ()
    ca_issuers: tuple[str, ...] = ()
    must_staple: bool = False
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


@functools.lru_cache(maxsize=256)
def cert_facts(der: bytes) -> CertFacts:
    """The :class:`CertFacts` of one DER certificate (defaults if it does not parse)."""
    from cryptography import x509  # noqa: PLC0415 (50 ms: only when a rule asks)
    from cryptography.x509.oid import AuthorityInformationAccessOID as AIA  # noqa: PLC0415

    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
    except Exception:  # a malformed certificate: nothing more to say about it
        return CertFacts()
    facts: dict[str, object] = {}
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints):
            facts["is_ca"] = value.ca
        elif isinstance(value, x509.AuthorityInformationAccess):
            facts["ocsp_urls"] = _urls(value, AIA.OCSP)
            facts["ca_issuers"] = _urls(value, AIA.CA_ISSUERS)
        elif isinstance(value, x509.TLSFeature):
            facts["must_staple"] = x509.TLSFeatureType.status_request in value
        elif isinstance(value, x509.SubjectAlternativeName):
            facts["dns_names"] = tuple(value.get_values_for_type(x509.DNSName))
            facts["ip_addresses"] = tuple(str(a) for a in value.get_values_for_type(x509.IPAddress))
    return CertFacts(**facts)  # type: ignore[arg-type]


def _urls(value: object, method: object) -> tuple[str, ...]:
    from cryptography import x509  # noqa: PLC0415

    return tuple(
        str(d.access_location.value)
        for d in value  # type: ignore[attr-defined]
        if d.access_method == method
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    )
