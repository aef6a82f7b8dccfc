"""The OCSP stapler: a thread that fetches, checks and refreshes; a callable that staples.

Public as :class:`tlstiming.stapling.OCSPStapler` (see there and
``docs/stapling.md``). OpenSSL calls the stapler on the handshake's thread
holding the GIL: that path reads one attribute and the clock, nothing else.
Everything slow (the POST, the check, the plan, the sink) happens on the
stapler's thread, or on the caller's in :meth:`OCSPStapler.refresh_now`.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from typing_extensions import Self

from tlstiming._recording import validate as check
from tlstiming._recording.staple import MAX_STAPLE_BYTES
from tlstiming.spans.escape import escape
from tlstiming.spans.stapling import CertStatus, FetchOutcome, StapleFetch, StaplerStatus
from tlstiming.verifiers._fetch import Fetcher, FetchError, redact_url
from tlstiming.verifiers._ocsp_check import Answer, build_request, check_response, responder_url
from tlstiming.verifiers._revocation import Clock, Unavailable, utc_now
from tlstiming.verifiers._staple_plan import RefreshPlan
from tlstiming.verifiers._trust import issued_by

__all__ = ["OCSPStapler"]

_log = logging.getLogger("tlstiming")
_MAX_NAP: Final = 60.0  # re-read the clock at least this often (a wall clock can jump)
_JOIN_SLACK: Final = 5.0
_MAX_REASON: Final = 500


@dataclass(frozen=True, slots=True)
class _Staple:
    """A checked response and until when it may be stapled."""

    der: bytes
    cert_status: CertStatus
    this_update: datetime.datetime
    expires: datetime.datetime


class OCSPStapler:
    """Keep a fresh OCSP response for one certificate; staple it when OpenSSL asks.

    ``stapler(server_name)`` returns the response being stapled (DER), or
    ``None``: before the first good fetch, once it has expired, after
    :meth:`close`. It never blocks and never raises.

    A fetched response is stapled only if it checks out (signed by the
    issuer or a responder it delegated to, about this certificate,
    thisUpdate not in the future, nextUpdate not past) and is not older than
    the one it replaces. ``good`` and ``revoked`` answers are stapled: a
    revoked response is the CA's signed, truthful statement, and withholding
    it would only let clients that soft-fail connect (a warning is logged
    when the certificate becomes revoked). ``unknown`` is not stapled (the
    last good response stays while valid). A response without nextUpdate is
    stapled for ``ttl_without_next_update`` after its fetch.

    Args:
        leaf: the server's certificate.
        issuer: the certificate that issued it.
        refresh_ahead: when to refresh: a fraction in (0, 1) of the
            response's validity (thisUpdate to nextUpdate) left, or a
            ``datetime.timedelta`` before nextUpdate.
        retry: the first and the longest wait in seconds after a failed
            fetch (doubling in between); the first is also the least time
            between two fetches.
        timeout: hard limit in seconds for one fetch, all included.
        max_response_bytes: largest response read (at most 1 MiB).
        clock_skew: seconds of tolerance on thisUpdate/nextUpdate when checking.
        ttl_without_next_update: seconds to staple a response without nextUpdate.
        jitter: fraction in [0, 1) by which waits are shortened at random, so
            that servers sharing a response do not all ask at once.
        sink: called with every :class:`StapleFetch`, on the fetching
            thread; what it raises is logged on the ``tlstiming`` logger.
        fetcher: a shared :class:`~tlstiming.verifiers.Fetcher` (a proxy,
            fewer threads); by default the stapler has its own.
        clock: returns aware UTC now (tests).

    Raises:
        TypeError: a certificate that is not a ``cryptography`` certificate,
            an option of the wrong type.
        ValueError: ``issuer`` did not issue ``leaf``; the leaf names no OCSP
            responder, or one that is not ``http://``; a timeout or duration
            that is not finite and > 0 (>= 0 for ``clock_skew``); ``retry``
            not ``(first, longest)`` with first <= longest; a
            ``refresh_ahead``, ``jitter`` or ``max_response_bytes`` out of range.
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_closed",
        "_cond",
        "_current",
        "_failures",
        "_fetch_lock",
        "_fetcher",
        "_issuer",
        "_last",
        "_leaf",
        "_max_bytes",
        "_next_refresh",
        "_no_next_ttl",
        "_owns_fetcher",
        "_plan",
        "_random",
        "_request",
        "_sink",
        "_skew",
        "_stalled",
        "_thread",
        "_timeout",
        "_url",
    )

    def __init__(
        self,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        *,
        refresh_ahead: float | datetime.timedelta = 0.5,
        retry: tuple[float, float] = (2.0, 600.0),
        timeout: float = 10.0,
        max_response_bytes: int = 64 * 1024,
        clock_skew: float = 300.0,
        ttl_without_next_update: float = 3600.0,
        jitter: float = 0.1,
        sink: Callable[[StapleFetch], object] | None = None,
        fetcher: Fetcher | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._leaf, self._issuer = _pair(leaf, issuer)
        self._url = _responder(self._leaf)
        self._plan = RefreshPlan.of(refresh_ahead, retry, jitter)
        self._timeout = check.positive("timeout", timeout)
        self._max_bytes = check.count("max_response_bytes", max_response_bytes, minimum=1)
        if self._max_bytes > MAX_STAPLE_BYTES:
            raise ValueError(f"max_response_bytes must be at most {MAX_STAPLE_BYTES}")
        self._skew = datetime.timedelta(seconds=check.non_negative("clock_skew", clock_skew))
        ttl = check.positive("ttl_without_next_update", ttl_without_next_update)
        self._no_next_ttl = datetime.timedelta(seconds=ttl)
        self._sink = check.optional(check.callable_arg, "sink", sink)
        if fetcher is not None and not isinstance(fetcher, Fetcher):
            raise TypeError(f"fetcher must be a Fetcher, not {type(fetcher).__name__}")
        self._clock: Clock = check.optional(check.callable_arg, "clock", clock) or utc_now
        self._owns_fetcher = fetcher is None
        self._fetcher = Fetcher(max_workers=1) if fetcher is None else fetcher
        self._request = build_request(self._leaf, self._issuer, hashes.SHA1())[1]
        self._random = random.Random()
        self._cond = threading.Condition()  # guards the state below
        self._fetch_lock = threading.Lock()  # one fetch at a time
        self._current: _Staple | None = None
        self._last: StapleFetch | None = None
        self._next_refresh: datetime.datetime | None = None
        self._failures = 0  # failed fetches in a row
        self._stalled = 0  # fetches in a row that brought nothing fresh
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def from_certfile(
        cls,
        certfile: str | os.PathLike[str],
        *,
        issuer: x509.Certificate | None = None,
        **options: Any,
    ) -> OCSPStapler:
        """A stapler for the chain file a server loads: PEM, the leaf first, then its issuer.

        Args:
            certfile: the PEM file (a private key in it is skipped).
            issuer: the issuer, when the file holds the leaf alone.
            **options: as the constructor.

        Raises:
            OSError: the file cannot be read.
            ValueError: no certificate in it, or no issuer in it or given.
        """
        with open(certfile, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
        if issuer is None and len(certs) < 2:
            where = os.fspath(certfile)
            raise ValueError(f"{where!r} holds no issuer after the leaf: pass issuer=")
        return cls(certs[0], issuer or certs[1], **options)

    def __call__(self, server_name: str | None = None) -> bytes | None:
        """The response to staple now (DER), or ``None``; ``server_name`` is not used."""
        staple = self._current
        if staple is None:
            return None
        try:
            return staple.der if self._clock() < staple.expires else None
        except Exception:  # a broken clock: no staple, never an exception into OpenSSL
            return None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start the background thread (it fetches at once); idempotent.

        Raises:
            ValueError: the stapler is closed.
        """
        with self._cond:
            self._refuse_closed()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tlstiming-ocsp-stapler", daemon=True
                )
                self._thread.start()
        return self

    def close(self) -> None:
        """Stop stapling and stop the thread; idempotent.

        A fetch in flight is aborted (with a shared ``fetcher``, it ends
        within ``timeout``). Waits at most ``timeout`` + 5 s for the thread;
        a sink still blocking it then is logged, not waited for.
        """
        with self._cond:
            self._closed = True
            self._current = None
            self._cond.notify_all()
            thread = self._thread
        if self._owns_fetcher:
            self._fetcher.close()
        if thread is None or thread is threading.current_thread():
            return
        thread.join(self._timeout + _JOIN_SLACK)
        if thread.is_alive():
            _log.warning("tlstiming: the OCSP stapler's thread did not stop (a blocking sink?)")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def refresh_now(self) -> StapleFetch:
        """Fetch and check a response now, on this thread; return its record when done.

        Takes at most twice ``timeout`` (a fetch already in flight, then this
        one). The thread plans its next refresh from the outcome.

        Raises:
            ValueError: the stapler is closed.
        """
        with self._cond:
            self._refuse_closed()
        record = self._refresh(only_if_due=False)
        assert record is not None
        return record

    @property
    def status(self) -> StaplerStatus:
        """What the stapler holds and plans, now."""
        with self._cond:
            staple, thread = self._current, self._thread
            return StaplerStatus(
                running=thread is not None and thread.is_alive(),
                stapling=self(None) is not None,
                cert_status=None if staple is None else staple.cert_status,
                this_update=None if staple is None else staple.this_update,
                next_update=None if staple is None else staple.expires,
                next_refresh=self._next_refresh,
                failures=self._failures,
                last_fetch=self._last,
            )

    def __repr__(self) -> str:
        return f"<OCSPStapler responder={escape(redact_url(self._url))}>"

    def _refuse_closed(self) -> None:
        if self._closed:
            raise ValueError("the OCSPStapler is closed")

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                with self._cond:
                    while not self._closed and not self._due():
                        self._cond.wait(self._nap())
                    if self._closed:
                        return
                self._refresh(only_if_due=True)
            except Exception:  # a bug or a broken clock: log, wait, go on
                _log.exception("tlstiming: the OCSP stapler's thread failed; retrying")
                with self._cond:
                    if not self._closed:
                        self._cond.wait(self._plan.longest_retry.total_seconds())

    def _due(self) -> bool:
        """Whether to fetch now (an expired response is dropped first)."""
        now = self._clock()
        self._drop_expired(now)
        return self._next_refresh is None or now >= self._next_refresh

    def _drop_expired(self, now: datetime.datetime) -> None:
        staple = self._current
        if staple is not None and now >= staple.expires:
            self._current = None
            _log.warning(
                "tlstiming: stopped stapling: the OCSP response from %s expired at %s",
                escape(redact_url(self._url)),
                staple.expires.isoformat(),
            )

    def _nap(self) -> float:
        """Seconds until the next refresh or expiry, at most a minute."""
        wake = [] if self._next_refresh is None else [self._next_refresh]
        if self._current is not None:
            wake.append(self._current.expires)
        if not wake:
            return _MAX_NAP
        return min(max((min(wake) - self._clock()).total_seconds(), 0.0), _MAX_NAP)

    # -- one fetch ---------------------------------------------------------------------

    def _refresh(self, *, only_if_due: bool) -> StapleFetch | None:
        with self._fetch_lock:
            with self._cond:
                if only_if_due and (self._closed or not self._due()):
                    return None  # a refresh_now() got there first
            record, staple = self._fetch()
            with self._cond:
                self._apply(record, staple)
        self._deliver(record)
        return record

    def _fetch(self) -> tuple[StapleFetch, _Staple | None]:
        at, start = self._clock(), time.perf_counter_ns()
        found: dict[str, Any] = {}
        try:
            der = self._fetcher.post(
                self._url,
                self._request,
                content_type="application/ocsp-request",
                timeout=self._timeout,
                max_bytes=self._max_bytes,
            ).content
            found["response_bytes"] = len(der)
            answer = check_response(der, self._leaf, self._issuer, self._clock(), self._skew)
            found.update(
                cert_status=answer.status,
                this_update=answer.this_update,
                next_update=answer.next_update,
            )
            staple = self._stapleable(der, answer, at)
        except (FetchError, Unavailable) as exc:
            return self._record(at, start, "failed", exc.kind, str(exc), found), None
        except Exception as exc:  # a bug: never staple what was not checked
            _log.exception("tlstiming: the OCSP stapler's fetch failed unexpectedly")
            return self._record(at, start, "failed", "error", type(exc).__name__, found), None
        return self._record(at, start, "ok", None, None, found), staple

    def _stapleable(self, der: bytes, answer: Answer, at: datetime.datetime) -> _Staple:
        """The checked response as a staple, or Unavailable saying why it is not one."""
        if answer.status == "unknown":
            raise Unavailable("unknown_status", "the responder does not know the certificate")
        expires = answer.next_update or at + self._no_next_ttl
        if self._clock() >= expires:
            raise Unavailable("expired", f"the response expired at {expires.isoformat()}")
        current = self._current
        if current is not None and answer.this_update < current.this_update:
            raise Unavailable("stale", "older than the response being stapled")
        return _Staple(der, answer.status, answer.this_update, expires)

    def _record(
        self,
        at: datetime.datetime,
        start: int,
        outcome: FetchOutcome,
        failure: str | None,
        reason: str | None,
        found: dict[str, Any],
    ) -> StapleFetch:
        return StapleFetch(
            responder=redact_url(self._url),
            at=at,
            start_ns=start,
            end_ns=time.perf_counter_ns(),
            outcome=outcome,
            failure=failure,
            reason=None if reason is None else reason[:_MAX_REASON],
            **found,
        )

    def _apply(self, record: StapleFetch, staple: _Staple | None) -> None:
        """Staple what the fetch brought (unless closed) and plan the next fetch."""
        now, draw = self._clock(), self._random.random()
        self._last = record
        self._drop_expired(now)
        self._cond.notify_all()  # the thread plans its wait again
        if staple is None:
            self._failures += 1
            if self._failures == 1:
                _log.warning("tlstiming: OCSP staple fetch failed: %r", record)
            self._next_refresh, self._stalled = self._plan.after_failure(now, self._stalled, draw)
            return
        if self._closed:
            return
        was, failed = self._current, self._failures
        self._current, self._failures = staple, 0
        if failed:
            _log.info("tlstiming: OCSP staple fetched again after %d failures", failed)
        if staple.cert_status == "revoked" and (was is None or was.cert_status != "revoked"):
            _log.warning("tlstiming: the stapled OCSP response says revoked: %r", record)
        self._next_refresh, self._stalled = self._plan.after_response(
            now, staple.this_update, staple.expires, self._stalled, draw
        )

    def _deliver(self, record: StapleFetch) -> None:
        if self._sink is None:
            return
        try:
            self._sink(record)
        except Exception:
            _log.exception("tlstiming: the OCSP stapler's sink %r failed on %r", self._sink, record)


def _certificate(name: str, value: object) -> x509.Certificate:
    if not isinstance(value, x509.Certificate):
        kind = type(value).__name__
        raise TypeError(f"{name} must be a cryptography x509.Certificate, not {kind}")
    return value


def _pair(leaf: object, issuer: object) -> tuple[x509.Certificate, x509.Certificate]:
    leaf, issuer = _certificate("leaf", leaf), _certificate("issuer", issuer)
    if not issued_by(leaf, issuer):
        raise ValueError(
            f"the issuer {escape(issuer.subject.rfc4514_string())} did not issue "
            f"the leaf {escape(leaf.subject.rfc4514_string())}"
        )
    return leaf, issuer


def _responder(leaf: x509.Certificate) -> str:
    url = responder_url(leaf)
    subject = escape(leaf.subject.rfc4514_string())
    if url is None:
        raise ValueError(f"the certificate {subject} names no OCSP responder (AIA)")
    if not url.lower().startswith("http://"):
        shown = escape(redact_url(url))
        raise ValueError(f"the OCSP responder of {subject} is not an http:// URL: {shown}")
    return url
