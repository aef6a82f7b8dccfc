"""What a context trusts, as ``cryptography`` certificates, and issuer lookup.

``SSLContext.get_ca_certs()`` lists the CA certificates loaded into the
context's store. A context that trusts a ``capath`` directory or the system
default paths (``load_default_certs()``, ``set_default_verify_paths()``) may
list nothing: OpenSSL loads those lazily. The heuristic: a context that lists
no CA certificate is taken to use the default paths, and certifi's bundle
stands in for them. Pass ``trust=`` to a verifier to decide yourself.

Parsing a bundle costs milliseconds, so results are cached per context and
refreshed when the context's ``cert_store_stats()`` change (stores only grow).
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification

__all__ = ["Trust", "find_issuer", "issued_by", "trust_for", "trust_from"]


@dataclass(frozen=True, slots=True)
class Trust:
    """A set of trusted certificates.

    Attributes:
        certs: every trusted certificate.
        source: ``"explicit"``, ``"context"`` or ``"certifi"``.
    """

    certs: tuple[x509.Certificate, ...]
    source: str
    _by_subject: dict[bytes, tuple[x509.Certificate, ...]] = field(repr=False, compare=False)
    _stores: dict[bool, verification.Store | None] = field(repr=False, compare=False)

    def issuers_named(self, name: x509.Name) -> tuple[x509.Certificate, ...]:
        """Trusted certificates whose subject is ``name``."""
        return self._by_subject.get(name.public_bytes(), ())

    def store(self, *, roots_only: bool = False) -> verification.Store | None:
        """A path-building store: every certificate, or only the self-issued ones."""
        if roots_only not in self._stores:
            certs = [c for c in self.certs if not roots_only or c.subject == c.issuer]
            self._stores[roots_only] = verification.Store(certs) if certs else None
        return self._stores[roots_only]


def trust_from(certs: Iterable[x509.Certificate | bytes], source: str) -> Trust:
    """Build a :class:`Trust` from certificates or DER bytes."""
    parsed = tuple(c if isinstance(c, x509.Certificate) else _load(c) for c in certs)
    by_subject: dict[bytes, list[x509.Certificate]] = {}
    for cert in parsed:
        by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
    index = {key: tuple(value) for key, value in by_subject.items()}
    return Trust(parsed, source, index, {})


def _load(data: bytes) -> x509.Certificate:
    with _lenient():
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)


@contextlib.contextmanager
def _lenient() -> Iterator[None]:
    """Load CA bundles as OpenSSL does: old roots (e.g. a zero serial) warn in cryptography.

    ``catch_warnings`` is process-wide; bundles are parsed once per context
    and cached, so this runs rarely.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


_lock = threading.Lock()
_by_context: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[tuple[int, ...], Trust]] = (
    weakref.WeakKeyDictionary()
)


def trust_for(context: ssl.SSLContext) -> Trust:
    """The certificates ``context`` trusts (certifi's if it lists none; see the module doc)."""
    stats = tuple(sorted(context.cert_store_stats().items()))
    key = tuple(count for _, count in stats)
    with _lock:
        cached = _by_context.get(context)
    if cached is not None and cached[0] == key:
        return cached[1]
    ders = context.get_ca_certs(binary_form=True)
    trust = trust_from(ders, "context") if ders else _certifi()
    with _lock:
        _by_context[context] = (key, trust)
    return trust


@functools.lru_cache(maxsize=1)
def _certifi() -> Trust:
    import certifi  # noqa: PLC0415

    with open(certifi.where(), "rb") as bundle, _lenient():
        return trust_from(x509.load_pem_x509_certificates(bundle.read()), "certifi")


@functools.lru_cache(maxsize=4096)
def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer``'s name and key signed ``cert`` (memoised: a signature check costs ~100 µs)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def find_issuer(
    cert: x509.Certificate, sent: Iterable[x509.Certificate], trust: Trust
) -> x509.Certificate | None:
    """The issuer of ``cert`` among the certificates ``sent``, else among the trusted ones."""
    for candidate in (*sent, *trust.issuers_named(cert.issuer)):
        if issued_by(cert, candidate):
            return candidate
    return None
