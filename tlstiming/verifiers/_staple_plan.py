"""When an OCSP stapler fetches next: ahead of nextUpdate, or backing off (pure).

Times are arguments and the random draw too, so every plan is exactly
testable with made-up numbers. Each wait is shortened by up to ``jitter`` of
itself: servers sharing one response (the CA's, or a CDN's copy) then do not
all ask at the same instant.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from tlstiming._recording import validate as check

__all__ = ["RefreshPlan"]


@dataclass(frozen=True, slots=True)
class RefreshPlan:
    """The stapler's schedule options, checked once.

    Attributes:
        lead: how long before nextUpdate to refresh: a fraction of the
            response's validity, or a fixed time.
        first_retry: the first wait after a fetch that brought nothing
            fresh; also the least time between two fetches.
        longest_retry: the longest such wait (they double in between).
        jitter: the largest fraction by which a wait is shortened.
    """

    lead: float | datetime.timedelta
    first_retry: datetime.timedelta
    longest_retry: datetime.timedelta
    jitter: float

    @classmethod
    def of(
        cls, refresh_ahead: float | datetime.timedelta, retry: tuple[float, float], jitter: float
    ) -> RefreshPlan:
        """Check the stapler's options.

        Raises:
            TypeError, ValueError: an option of the wrong kind or out of
                range, naming it.
        """
        if not isinstance(retry, tuple) or len(retry) != 2:
            raise TypeError(f"retry must be a (first, longest) tuple of seconds, not {retry!r}")
        first = check.positive("retry[0]", retry[0])
        longest = check.positive("retry[1]", retry[1])
        if first > longest:
            raise ValueError(f"retry's first wait {first:g} exceeds its longest {longest:g}")
        if check.non_negative("jitter", jitter) >= 1:
            raise ValueError(f"jitter must be below 1, not {jitter!r}")
        seconds = datetime.timedelta(seconds=1)
        return cls(_lead(refresh_ahead), first * seconds, longest * seconds, float(jitter))

    def after_response(
        self,
        now: datetime.datetime,
        this_update: datetime.datetime,
        expires: datetime.datetime,
        stalled: int,
        draw: float,
    ) -> tuple[datetime.datetime, int]:
        """When to fetch after a response was stapled, and the new ``stalled`` count.

        Args:
            now: the time now.
            this_update: the response's thisUpdate.
            expires: when it stops being stapled (its nextUpdate).
            stalled: fetches in a row whose refresh time had already come.
            draw: a random number in [0, 1).
        """
        lead = (
            self.lead
            if isinstance(self.lead, datetime.timedelta)
            else self.lead * (expires - this_update)
        )
        wait = expires - lead - now
        if wait <= self.first_retry:  # already due: the responder has nothing newer yet
            return self.after_failure(now, stalled, draw)
        return now + self._spread(wait, draw), 0

    def after_failure(
        self, now: datetime.datetime, stalled: int, draw: float
    ) -> tuple[datetime.datetime, int]:
        """When to fetch again after a fetch that brought nothing fresh, and the new count."""
        stalled += 1
        wait = min(self.longest_retry, self.first_retry * 2 ** min(stalled - 1, 32))
        return now + self._spread(wait, draw), stalled

    def _spread(self, wait: datetime.timedelta, draw: float) -> datetime.timedelta:
        return wait * (1.0 - self.jitter * draw)


def _lead(value: float | datetime.timedelta) -> float | datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        if value <= datetime.timedelta(0):
            raise ValueError(f"refresh_ahead must be a positive timedelta, not {value!r}")
        return value
    fraction = check.positive("refresh_ahead", value)
    if fraction >= 1:
        raise ValueError(
            "refresh_ahead must be a fraction below 1 of the response's validity, "
            f"or a datetime.timedelta before nextUpdate; not {value!r} "
            f"(for seconds: datetime.timedelta(seconds={value!r}))"
        )
    return fraction
