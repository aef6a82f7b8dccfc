"""OCSP revocation checking: stapled response, cache, then the responder, within a hard deadline."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, MutableMapping
from typing import ClassVar, Literal

from cryptography import x509

from tlstiming._recording.validate import count
from tlstiming._recording.verify import PeerInfo, Verdict
from tlstiming.spans.verification import Detail
from tlstiming.verifiers._fetch import Fetcher, redact_url
from tlstiming.verifiers._ocsp_check import (
    HASHES,
    Answer,
    CertId,
    build_request,
    check_response,
    responder_url,
)
from tlstiming.verifiers._revocation import Clock, Failure, RevocationChecker, Unavailable

__all__ = ["OCSPVerifier"]


class OCSPVerifier(RevocationChecker[Answer]):
    """Check the leaf certificate's revocation status with OCSP.

    In order: the stapled response (if valid), the cache, the responder named
    in the leaf's AIA extension (one POST, ``timeout`` seconds in total, the
    issuer taken from the presented chain or the trust store). ``revoked``
    always rejects. Anything that leaves the status unknown (no responder,
    timeout, garbage, bad signature, expired, status ``unknown``) soft-fails
    (accepted, recorded with its reason), or rejects with ``hard_fail=True``.

    On the event loop (``peer.may_block`` false) a cache miss never blocks:
    the fetch starts in the background and the check soft-fails as
    ``pending``; the next handshake finds the answer cached. With
    ``hard_fail=True`` it blocks instead, for at most ``timeout``.

    Resumed sessions are not checked again (their chain was checked on the
    full handshake that made the session).

    Details recorded: ``source`` (staple, cache, network, background,
    resumed), ``status`` (good, revoked, unknown, pending), ``cache_hit``,
    ``responder`` (URL without query), ``latency_ms``, ``next_update``,
    ``revocation_time``, ``revocation_reason``, ``error`` and ``failure``
    (why the status is unavailable), ``staple_error``.

    Args:
        timeout: hard limit in seconds for one responder query, all included.
        hard_fail: reject when the status cannot be established.
        hash_algorithm: hash of the certificate id in requests (``sha1`` is
            what responders expect; ``sha256``, ``sha384``, ``sha512``).
        use_staple: use the response the server stapled.
        cache_size: most certificate ids cached.
        refresh_ahead: refresh a cached answer in the background when it
            expires within this many seconds (``None``: never).
        failure_ttl: seconds to remember a failed query (no retry storm
            against a dead responder; 0 disables).
        ttl_without_next_update: seconds to cache an answer without nextUpdate.
        clock_skew: seconds of tolerance on thisUpdate/nextUpdate.
        max_response_bytes: largest response read.
        background_workers: threads for background fetches.
        trust: the trust anchors to find the issuer in (default: the context's).
        fetcher: share one fetcher (and its threads) between verifiers.
        clock: returns aware UTC now (tests).

    Raises:
        TypeError: an option of the wrong type (a count that is not an int,
            a ``clock`` that is not callable, a ``fetcher`` that is not a
            :class:`~tlstiming.verifiers.Fetcher`).
        ValueError: a ``timeout`` that is not a finite number > 0; a
            duration that is negative, NaN or infinite; a count below 1; an
            unknown ``hash_algorithm``.
    """

    name: ClassVar[str] = "ocsp"
    """The suggested name to register it under (phase ``verify:ocsp``)."""

    __slots__ = ("_algorithm", "_max_bytes", "_use_staple")

    def __init__(
        self,
        *,
        timeout: float = 0.5,
        hard_fail: bool = False,
        hash_algorithm: Literal["sha1", "sha256", "sha384", "sha512"] = "sha1",
        use_staple: bool = True,
        cache_size: int = 4096,
        refresh_ahead: float | None = None,
        failure_ttl: float = 10.0,
        ttl_without_next_update: float = 60.0,
        clock_skew: float = 300.0,
        max_response_bytes: int = 64 * 1024,
        background_workers: int = 2,
        trust: Iterable[x509.Certificate | bytes] | None = None,
        fetcher: Fetcher | None = None,
        clock: Clock | None = None,
    ) -> None:
        if hash_algorithm not in HASHES:
            raise ValueError(f"unsupported hash_algorithm {hash_algorithm!r}")
        self._max_bytes = count("max_response_bytes", max_response_bytes, minimum=1)
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
        self._algorithm = HASHES[hash_algorithm]()
        self._use_staple = use_staple

    def _check(
        self,
        peer: PeerInfo,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        details: dict[str, Detail],
    ) -> Verdict:
        cert_id, request = build_request(leaf, issuer, self._algorithm)
        if peer.ocsp_staple is not None and self._use_staple:
            try:
                staple = check_response(peer.ocsp_staple, leaf, issuer, self._clock(), self._skew)
            except Unavailable as bad:
                details["staple_error"] = bad.reason
            else:
                self._remember(cert_id, staple, staple.next_update)
                details["source"] = "staple"
                return _decide(staple, details)
        url = responder_url(leaf)
        query = None
        if url is not None:
            details["responder"] = redact_url(url)
            query = functools.partial(self._query, url, request, leaf, issuer, cert_id)
        missing = Unavailable("no_responder", "the certificate names no OCSP responder")
        answer = self._lookup(cert_id, query, peer, details, missing)
        return self._pending(details) if answer is None else _decide(answer, details)

    def _query(
        self,
        url: str,
        request: bytes,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        cert_id: CertId,
        details: MutableMapping[str, Detail] | None,
    ) -> Answer | Failure:
        """Ask the responder; cache and return the answer, or the failure."""
        fetch = functools.partial(
            self._fetcher.post,
            url,
            request,
            content_type="application/ocsp-request",
            timeout=self._timeout,
            max_bytes=self._max_bytes,
        )
        entry: Answer | Failure
        try:
            content = self._timed_fetch(lambda: fetch().content, details)
            entry = check_response(content, leaf, issuer, self._clock(), self._skew)
        except Unavailable as exc:
            entry = Failure.of(exc)
        self._remember(cert_id, entry, None if isinstance(entry, Failure) else entry.next_update)
        return entry


def _decide(answer: Answer, details: MutableMapping[str, Detail]) -> Verdict:
    details["status"] = answer.status
    details["next_update"] = _iso(answer.next_update)
    if answer.status == "unknown":
        raise Unavailable("unknown", "the responder does not know the certificate")
    if answer.status == "good":
        return Verdict(details=details)
    revoked_at = _iso(answer.revoked_at)
    details.update(revocation_time=revoked_at, revocation_reason=answer.revocation_reason)
    why = f" ({answer.revocation_reason})" if answer.revocation_reason else ""
    return Verdict(ok=False, reason=f"certificate revoked at {revoked_at}{why}", details=details)


def _iso(when: datetime.datetime | None) -> str | None:
    return None if when is None else when.isoformat()
