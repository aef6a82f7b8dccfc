"""CRL revocation checking: the leaf's distribution point, cached, bounded in time and size."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from tlstiming._recording.validate import count
from tlstiming._recording.verify import PeerInfo, Verdict
from tlstiming.spans.verification import Detail
from tlstiming.verifiers._fetch import Fetcher, redact_url
from tlstiming.verifiers._revocation import Clock, Failure, RevocationChecker, Unavailable

__all__ = ["CRLVerifier", "check_crl", "distribution_points"]

_SIGNING_KEYS = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    dsa.DSAPublicKey,
)


def distribution_points(cert: x509.Certificate) -> tuple[str, ...]:
    """The ``http://`` URLs of ``cert``'s CRL distribution points.

    Points naming a separate CRL issuer (indirect CRLs) or covering only some
    revocation reasons are skipped: such a CRL cannot tell "not revoked".
    """
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        str(name.value)
        for point in points
        if point.full_name and point.crl_issuer is None and point.reasons is None
        for name in point.full_name
        if isinstance(name, x509.UniformResourceIdentifier)
        and str(name.value).lower().startswith("http://")
    )


@dataclass(frozen=True, slots=True)
class RevocationList:
    """A checked CRL, indexed: serial number -> (revocation time, reason)."""

    next_update: datetime.datetime | None
    revoked: Mapping[int, tuple[datetime.datetime, str | None]]

    @classmethod
    def of(cls, crl: x509.CertificateRevocationList) -> RevocationList:
        revoked = {
            entry.serial_number: (entry.revocation_date_utc, _reason(entry)) for entry in crl
        }
        return cls(crl.next_update_utc, revoked)


def _reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except x509.ExtensionNotFound:
        return None


class CRLVerifier(RevocationChecker[RevocationList]):
    """Check the leaf certificate against its issuer's CRL.

    The CRL comes from the first ``http://`` distribution point in the leaf
    (one GET, ``timeout`` seconds in total, at most ``max_bytes``), must be
    signed by the leaf's issuer (found in the presented chain or the trust
    store) and current (lastUpdate not in the future, nextUpdate not past,
    with ``clock_skew``), and is cached per (URL, issuer) until its
    nextUpdate. Delta CRLs are not fetched. A revoked leaf is always
    rejected; anything that leaves the status unknown soft-fails, or
    rejects with ``hard_fail=True``. Event-loop behaviour, resumed sessions,
    ``refresh_ahead`` and ``failure_ttl`` are as for :class:`OCSPVerifier`.

    Details recorded: ``source``, ``status``, ``cache_hit``,
    ``distribution_point`` (URL without query), ``latency_ms``, ``crl_bytes``,
    ``next_update``, ``revocation_time``, ``revocation_reason``, ``error``,
    ``failure``.

    Args:
        timeout: hard limit in seconds for one download, all included.
        hard_fail: reject when the status cannot be established.
        max_bytes: largest CRL downloaded (bigger ones fail as ``too_large``).
        cache_size: most CRLs kept in memory.
        refresh_ahead: refresh a cached CRL in the background when it
            expires within this many seconds (``None``: never).
        failure_ttl: seconds to remember a failed download (0 disables).
        ttl_without_next_update: seconds to cache a CRL without nextUpdate.
        clock_skew: seconds of tolerance on lastUpdate/nextUpdate.
        background_workers: threads for background downloads.
        trust: the trust anchors to find the issuer in (default: the context's).
        fetcher: share one fetcher (and its threads) between verifiers.
        clock: returns aware UTC now (tests).

    Raises:
        TypeError, ValueError: as for :class:`OCSPVerifier`.
    """

    name: ClassVar[str] = "crl"
    """The suggested name to register it under (phase ``verify:crl``)."""

    __slots__ = ("_max_bytes",)

    def __init__(
        self,
        *,
        timeout: float = 0.5,
        hard_fail: bool = False,
        max_bytes: int = 4 * 1024 * 1024,
        cache_size: int = 64,
        refresh_ahead: float | None = None,
        failure_ttl: float = 10.0,
        ttl_without_next_update: float = 60.0,
        clock_skew: float = 300.0,
        background_workers: int = 2,
        trust: Iterable[x509.Certificate | bytes] | None = None,
        fetcher: Fetcher | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._max_bytes = count("max_bytes", max_bytes, minimum=1)
        super().__init__(
            timeout=timeout,
            hard_fail=hard_fail,
            cache_size=cache_size,
            refresh_ahead=refresh_ahead,
            failure_ttl=failure_ttl,
            ttl_without_next_update=ttl_without_next_update,
            clock_skew=clock_skew,
            background_workers=background_workers,
            trust=trust,
            fetcher=fetcher,
            clock=clock,
        )

    def _check(
        self,
        peer: PeerInfo,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        details: dict[str, Detail],
    ) -> Verdict:
        urls = distribution_points(leaf)
        query = None
        key = (urls[0] if urls else "", issuer.fingerprint(hashes.SHA256()))
        if urls:
            details["distribution_point"] = redact_url(urls[0])
            query = functools.partial(self._query, urls[0], issuer, key)
        missing = Unavailable("no_distribution_point", "no http:// CRL distribution point")
        crl = self._lookup(key, query, peer, details, missing)
        return self._pending(details) if crl is None else _decide(crl, leaf, details)

    def _query(
        self,
        url: str,
        issuer: x509.Certificate,
        key: tuple[str, bytes],
        details: MutableMapping[str, Detail] | None,
    ) -> RevocationList | Failure:
        """Download and check the CRL; cache and return it, or the failure."""
        fetch = functools.partial(
            self._fetcher.get, url, timeout=self._timeout, max_bytes=self._max_bytes
        )
        entry: RevocationList | Failure
        try:
            content = self._timed_fetch(lambda: fetch().content, details)
            if details is not None:
                details["crl_bytes"] = len(content)
            entry = RevocationList.of(check_crl(content, issuer, self._clock(), self._skew))
        except Unavailable as exc:
            entry = Failure.of(exc)
        expires = None if isinstance(entry, Failure) else entry.next_update
        self._remember(key, entry, expires)
        return entry


def check_crl(
    data: bytes,
    issuer: x509.Certificate,
    now: datetime.datetime,
    skew: datetime.timedelta,
) -> x509.CertificateRevocationList:
    """Parse a DER (or PEM) CRL and check it is ``issuer``'s, signed and current.

    Raises:
        Unavailable: it is not.
    """
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError:
        raise Unavailable("malformed", "the CRL does not parse") from None
    if crl.issuer != issuer.subject:
        raise Unavailable("wrong_issuer", "the CRL was not issued by the certificate's issuer")
    key = issuer.public_key()
    if not isinstance(key, _SIGNING_KEYS):
        raise Unavailable("unsupported", f"unsupported issuer key {type(key).__name__}")
    if not crl.is_signature_valid(key):
        raise Unavailable("bad_signature", "the CRL's signature is invalid")
    if crl.last_update_utc > now + skew:
        raise Unavailable("not_yet_valid", f"lastUpdate {crl.last_update_utc} is in the future")
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now - skew:
        raise Unavailable("expired", f"the CRL expired at {next_update.isoformat()}")
    return crl


def _decide(crl: RevocationList, leaf: x509.Certificate, details: dict[str, Detail]) -> Verdict:
    details["next_update"] = None if crl.next_update is None else crl.next_update.isoformat()
    entry = crl.revoked.get(leaf.serial_number)
    if entry is None:
        details["status"] = "good"
        return Verdict(details=details)
    revoked_at, reason = entry[0].isoformat(), entry[1]
    details.update(status="revoked", revocation_time=revoked_at, revocation_reason=reason)
    why = f" ({reason})" if reason else ""
    return Verdict(ok=False, reason=f"certificate revoked at {revoked_at}{why}", details=details)
