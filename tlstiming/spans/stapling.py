"""What an OCSP stapler records: one value per fetch, and its state (pure).

Their public home is :mod:`tlstiming.stapling`; the stapler there fills
them in. Strings that came from the responder (a failure's ``reason``) and
the responder's URL are kept raw and escaped in ``repr()``, as every other
span value here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Literal

from tlstiming.spans.escape import escape

__all__ = ["CertStatus", "FetchOutcome", "StapleFetch", "StaplerStatus"]

CertStatus = Literal["good", "revoked", "unknown"]
"""The certificate's status in an OCSP response."""
FetchOutcome = Literal["ok", "failed"]
"""``ok``: a checked response is being stapled; ``failed``: nothing new is stapled."""


def _iso(when: datetime.datetime | None) -> str | None:
    return None if when is None else when.isoformat()


@dataclass(frozen=True, slots=True, kw_only=True)
class StapleFetch:
    """One fetch of the stapled OCSP response from the responder.

    Attributes:
        responder: the responder's URL without credentials, query or fragment.
        at: when the fetch started, by the stapler's clock (aware UTC).
        start_ns: start, ``perf_counter_ns`` clock.
        end_ns: end, same clock.
        outcome: ``ok`` (the response checked out and is stapled now) or
            ``failed`` (the stapler keeps what it had, if still valid).
        failure: why it failed, one word: ``timeout``, ``network``,
            ``http_status``, ``too_large``, ``closed`` (the fetch);
            ``malformed``, ``unsuccessful``, ``no_match``, ``bad_signer``,
            ``bad_signature``, ``unsupported``, ``not_yet_valid``,
            ``expired`` (the response's check); ``unknown_status`` (the
            responder does not know the certificate), ``stale`` (older than
            the response already stapled), ``error`` (a bug, logged).
        reason: a sentence for people (may quote the responder: escape it
            before showing it, as ``repr()`` does).
        response_bytes: size of the HTTP response body (0 when none came).
        cert_status: the certificate's status in the response, if it parsed
            and checked out.
        this_update: the response's thisUpdate, when known.
        next_update: its nextUpdate, when known and present.
    """

    responder: str
    at: datetime.datetime
    start_ns: int
    end_ns: int
    outcome: FetchOutcome
    failure: str | None = None
    reason: str | None = None
    response_bytes: int = 0
    cert_status: CertStatus | None = None
    this_update: datetime.datetime | None = None
    next_update: datetime.datetime | None = None

    @property
    def duration_ns(self) -> int:
        """Wall time of the fetch and the check."""
        return self.end_ns - self.start_ns

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the attributes, times as ISO 8601, ``duration_ns`` added."""
        return {
            "responder": self.responder,
            "at": self.at.isoformat(),
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ns": self.duration_ns,
            "outcome": self.outcome,
            "failure": self.failure,
            "reason": self.reason,
            "response_bytes": self.response_bytes,
            "cert_status": self.cert_status,
            "this_update": _iso(self.this_update),
            "next_update": _iso(self.next_update),
        }

    def __repr__(self) -> str:
        parts = [
            f"responder={escape(self.responder)}",
            f"at={_iso(self.at)}",
            f"outcome={self.outcome}",
            f"duration_ms={self.duration_ns / 1e6:.1f}",
        ]
        if self.failure is not None:
            parts.append(f"failure={escape(self.failure)}")
        if self.reason is not None:
            parts.append(f"reason='{escape(self.reason)}'")
        if self.cert_status is not None:
            parts.append(f"cert_status={self.cert_status}")
        if self.next_update is not None:
            parts.append(f"next_update={_iso(self.next_update)}")
        return f"StapleFetch({', '.join(parts)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class StaplerStatus:
    """A stapler's state at one moment.

    Attributes:
        running: its background thread is running.
        stapling: a handshake now would get a staple.
        cert_status: the status in the response being stapled (``None``: none).
        this_update: that response's thisUpdate.
        next_update: when it stops being stapled: its nextUpdate (or the
            stapler's limit for a response without one).
        next_refresh: when the thread fetches next (``None``: not planned).
        failures: failed fetches since the last good one.
        last_fetch: the latest fetch, if any.
    """

    running: bool
    stapling: bool
    cert_status: CertStatus | None
    this_update: datetime.datetime | None
    next_update: datetime.datetime | None
    next_refresh: datetime.datetime | None
    failures: int
    last_fetch: StapleFetch | None
