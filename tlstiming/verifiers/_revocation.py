"""What the OCSP and CRL verifiers share: failure policy, clock, background fetches."""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from cryptography import x509
from typing_extensions import Self

from tlstiming._recording import validate as check
from tlstiming._recording.verify import PeerInfo, Verdict
from tlstiming.spans.verification import Detail
from tlstiming.verifiers._cache import ExpiringCache
from tlstiming.verifiers._fetch import Fetcher, FetchError
from tlstiming.verifiers._trust import Trust, find_issuer, trust_for, trust_from

__all__ = ["Clock", "Failure", "RevocationChecker", "Unavailable", "utc_now"]

Clock = Callable[[], datetime.datetime]
E = TypeVar("E")
_MAX_PENDING: Final = 64


def utc_now() -> datetime.datetime:
    """The default clock: aware UTC now."""
    return datetime.datetime.now(datetime.timezone.utc)


class Unavailable(Exception):
    """The status could not be established.

    Attributes:
        kind: a short machine-readable cause (``timeout``, ``bad_signature``...).
        reason: a sentence for people (never a secret or a URL query).
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Failure:
    """An :class:`Unavailable` as a value, for the cache (no traceback kept alive)."""

    kind: str
    reason: str

    @classmethod
    def of(cls, exc: Unavailable) -> Failure:
        return cls(exc.kind, exc.reason)

    def error(self) -> Unavailable:
        return Unavailable(self.kind, self.reason)


class RevocationChecker(Generic[E]):
    """Base of :class:`OCSPVerifier` and :class:`CRLVerifier`: policy, cache and threads.

    Subclasses look an entry (``E``, or a :class:`Failure`) up with
    :meth:`_lookup`, giving it a ``query`` that fetches and checks a fresh
    one; the base decides between the cache, a blocking fetch and a
    background one.

    Background work (fetches started on the event loop, refreshes ahead of
    expiry) runs on at most ``background_workers`` threads, deduplicated per
    cache key, with at most 64 keys waiting; beyond that it is skipped.
    """

    __slots__ = (
        "_bg_executor",
        "_bg_idle",
        "_bg_keys",
        "_bg_workers",
        "_cache",
        "_clock",
        "_closed",
        "_failure_ttl",
        "_fetcher",
        "_hard_fail",
        "_no_next_ttl",
        "_owns_fetcher",
        "_refresh_ahead",
        "_skew",
        "_timeout",
        "_trust",
    )

    def __init__(
        self,
        *,
        timeout: float,
        hard_fail: bool,
        cache_size: int,
        refresh_ahead: float | None,
        failure_ttl: float,
        ttl_without_next_update: float,
        clock_skew: float,
        background_workers: int,
        trust: Iterable[x509.Certificate | bytes] | None,
        fetcher: Fetcher | None,
        clock: Clock | None,
    ) -> None:
        if fetcher is not None and not isinstance(fetcher, Fetcher):
            raise TypeError(f"fetcher must be a Fetcher, not {type(fetcher).__name__}")
        self._timeout = check.positive("timeout", timeout)
        self._hard_fail = hard_fail
        self._cache: ExpiringCache[Hashable, E | Failure] = ExpiringCache(
            check.count("cache_size", cache_size, minimum=1)
        )
        self._refresh_ahead = check.optional(_seconds, "refresh_ahead", refresh_ahead)
        self._failure_ttl = _seconds("failure_ttl", failure_ttl)
        self._no_next_ttl = _seconds("ttl_without_next_update", ttl_without_next_update)
        self._skew = _seconds("clock_skew", clock_skew)
        self._trust = None if trust is None else trust_from(trust, "explicit")
        self._owns_fetcher = fetcher is None
        self._fetcher = Fetcher() if fetcher is None else fetcher
        self._clock = check.optional(check.callable_arg, "clock", clock) or utc_now
        self._bg_workers = check.count("background_workers", background_workers, minimum=1)
        self._bg_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._bg_keys: set[Hashable] = set()
        self._bg_idle = threading.Condition()
        self._closed = False

    # -- the check -------------------------------------------------------------

    def __call__(self, peer: PeerInfo) -> Verdict | None:
        """Check ``peer``'s leaf certificate."""
        details: dict[str, Detail] = {"source": None, "status": None, "cache_hit": False}
        try:
            if peer.resumed:
                details["source"] = "resumed"
                reason = "resumed session: checked on its full handshake"
                return Verdict(reason=reason, details=details)
            chain = peer.chain
            if not chain:
                raise Unavailable("no_certificate", "no certificate presented")
            leaf = chain[0]
            issuer = find_issuer(leaf, chain[1:], self._trust_of(peer.context))
            if issuer is None:
                raise Unavailable("no_issuer", "the leaf's issuer is not in the chain or the trust")
            return self._check(peer, leaf, issuer, details)
        except Unavailable as failure:
            return self._unavailable(failure, details)

    def _check(
        self,
        peer: PeerInfo,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        details: dict[str, Detail],
    ) -> Verdict:
        """The revocation check proper, for a leaf whose issuer is known."""
        raise NotImplementedError

    # -- policy ------------------------------------------------------------------

    def _unavailable(self, failure: Unavailable, details: MutableMapping[str, Detail]) -> Verdict:
        """Soft-fail (accept, recorded) or, with ``hard_fail``, reject."""
        details["error"] = failure.kind
        details["failure"] = failure.reason
        reason = f"revocation status unavailable: {failure.reason}"
        if self._hard_fail:
            return Verdict(ok=False, reason=reason, details=details)
        return Verdict(ok=True, soft_failed=True, reason=reason, details=details)

    @staticmethod
    def _pending(details: MutableMapping[str, Detail]) -> Verdict:
        details.update(source="background", status="pending")
        reason = "pending: status not cached, fetching it in the background"
        return Verdict(ok=True, soft_failed=True, reason=reason, details=details)

    def _trust_of(self, context: ssl.SSLContext) -> Trust:
        return self._trust if self._trust is not None else trust_for(context)

    # -- cache -------------------------------------------------------------------

    def _lookup(
        self,
        key: Hashable,
        query: Callable[[MutableMapping[str, Detail] | None], E | Failure] | None,
        peer: PeerInfo,
        details: MutableMapping[str, Detail],
        missing: Unavailable,
    ) -> E | None:
        """A fresh entry for ``key``: cached, fetched now, or ``None`` (fetching in the background).

        Raises:
            Unavailable: the entry is a failure, or ``missing`` when there is
                nothing cached and no ``query``.
        """
        now = self._clock()
        cached = self._cache.get(key, now)
        if cached is not None:
            entry, expires = cached
            details.update(source="cache", cache_hit=True)
            refresh_due = self._refresh_ahead is not None and expires - now <= self._refresh_ahead
            if query is not None and refresh_due:
                self._in_background(key, functools.partial(query, None))
            return _unwrap(entry)
        if query is None:
            raise missing
        if not peer.may_block and not self._hard_fail:
            self._in_background(key, functools.partial(query, None))
            return None
        details["source"] = "network"
        return _unwrap(query(details))

    def _remember(
        self, key: Hashable, entry: E | Failure, expires: datetime.datetime | None
    ) -> None:
        """Cache ``entry`` until ``expires``; a failure briefly, and never over a good entry."""
        now = self._clock()
        if isinstance(entry, Failure):
            if self._failure_ttl and self._cache.get(key, now) is None:
                self._cache.put(key, entry, now + self._failure_ttl)
            return
        until = expires or now + self._no_next_ttl
        if until > now:
            self._cache.put(key, entry, until)

    def _timed_fetch(
        self, fetch: Callable[[], bytes], details: MutableMapping[str, Detail] | None
    ) -> bytes:
        """Run ``fetch``, recording its latency; a :class:`FetchError` becomes Unavailable."""
        start = time.perf_counter_ns()
        try:
            return fetch()
        except FetchError as exc:
            raise Unavailable(exc.kind, str(exc)) from None
        finally:
            if details is not None:
                details["latency_ms"] = round((time.perf_counter_ns() - start) / 1e6, 3)

    # -- background ------------------------------------------------------------------

    def _in_background(self, key: Hashable, work: Callable[[], object]) -> bool:
        """Run ``work`` on a background thread unless ``key`` is already pending.

        Returns:
            Whether it was scheduled.
        """
        with self._bg_idle:
            if self._closed or key in self._bg_keys or len(self._bg_keys) >= _MAX_PENDING:
                return False
            if self._bg_executor is None:
                self._bg_executor = concurrent.futures.ThreadPoolExecutor(
                    self._bg_workers, thread_name_prefix="tlstiming-revocation"
                )
            self._bg_keys.add(key)
            self._bg_executor.submit(self._run_background, key, work)
        return True

    def _run_background(self, key: Hashable, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # the failure is cached or retried by the next call
            pass
        finally:
            with self._bg_idle:
                self._bg_keys.discard(key)
                self._bg_idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no background fetch is pending or running.

        Args:
            timeout: most seconds to wait (``None``: no limit).

        Returns:
            ``True`` if idle, ``False`` on timeout.

        Raises:
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        timeout = check.wait_seconds("timeout", timeout)
        with self._bg_idle:
            return self._bg_idle.wait_for(lambda: not self._bg_keys, timeout)

    def close(self) -> None:
        """Stop background work (in-flight fetches are aborted) and release threads."""
        with self._bg_idle:
            self._closed = True
            executor, self._bg_executor = self._bg_executor, None
        if self._owns_fetcher:
            self._fetcher.close()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        with self._bg_idle:
            self._bg_keys.clear()
            self._bg_idle.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _unwrap(entry: E | Failure) -> E:
    if isinstance(entry, Failure):
        raise entry.error()
    return entry


def _seconds(name: str, value: float) -> datetime.timedelta:
    """A duration option (finite, >= 0) as a timedelta; ``ValueError``/``TypeError`` naming it."""
    return datetime.timedelta(seconds=check.non_negative(name, value))
