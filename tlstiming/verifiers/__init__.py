"""Built-in verifiers: key pinning, OCSP and CRL revocation checks, chain analysis.

Each verifier is a callable taking a :class:`~tlstiming._recording.verify.PeerInfo`
and returning a verdict; register it on a context with
``TimedSSLContext.add_verifier()`` and it runs after every handshake, timed
as a ``verify:<name>`` phase. The revocation checkers fetch over HTTP with a
hard total deadline and own threads: call ``close()`` (or use them as
context managers) when done. See ``docs/verification.md``.
"""

from __future__ import annotations

from tlstiming.verifiers._fetch import Fetcher
from tlstiming.verifiers.chain import FINDINGS, ChainAnalysis, Finding
from tlstiming.verifiers.crl import CRLVerifier
from tlstiming.verifiers.ocsp import OCSPVerifier
from tlstiming.verifiers.pinning import SPKIPins, spki_pin

__all__ = [
    "FINDINGS",
    "CRLVerifier",
    "ChainAnalysis",
    "Fetcher",
    "Finding",
    "OCSPVerifier",
    "SPKIPins",
    "spki_pin",
]
