"""Sampling and rate control: keep a fraction of spans, always the slow and failed ones."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from tlstiming._recording import validate as check
from tlstiming.sinks._common import threshold_ns
from tlstiming.sinks._flatten import SpanLike

__all__ = ["Sampled"]

S = TypeVar("S", bound=SpanLike)


class Sampled(Generic[S]):
    """Pass a sample of the spans on to ``sink``; a sink itself.

    Each span is kept if it failed (``keep_errors``), else if it took at
    least ``keep_slow_ms``, else with probability ``rate``. Kept spans then
    pass a token bucket when ``max_per_second`` is set, failed and slow ones
    included (so an outage that fails every handshake cannot flood the log
    pipeline). The decision reads only ``outcome`` and ``duration_ns``: a
    span that is dropped costs a random number and a lock, nothing else.

    Sampled-out spans are gone: counts of what was seen are in
    :attr:`kept`, :attr:`sampled_out` and :attr:`rate_limited`; multiply
    kept counts by ``1 / rate`` when estimating totals.

    Args:
        sink: where kept spans go.
        rate: fraction of ordinary spans to keep, 0.0 to 1.0.
        keep_slow_ms: always keep spans at least this long (milliseconds).
        keep_errors: always keep failed spans.
        max_per_second: at most this many spans per second reach ``sink``
            (a token bucket), ``None`` for no limit.
        burst: the bucket's size (default: ``max_per_second``, at least 1).
        rng: the random source (pass ``random.Random(seed)`` for tests).
        clock: seconds, monotonic (injectable for tests).

    Raises:
        TypeError: ``sink`` or ``clock`` is not callable, a number is not one.
        ValueError: for a rate outside [0, 1], a negative ``keep_slow_ms``,
            a ``max_per_second`` that is not > 0, a ``burst`` below 1, or
            NaN or infinity for any of them.
    """

    __slots__ = (
        "_burst",
        "_clock",
        "_counts",
        "_keep_errors",
        "_last",
        "_lock",
        "_per_second",
        "_rate",
        "_rng",
        "_sink",
        "_slow_ns",
        "_tokens",
    )

    def __init__(
        self,
        sink: Callable[[S], None],
        rate: float = 1.0,
        *,
        keep_slow_ms: float | None = None,
        keep_errors: bool = True,
        max_per_second: float | None = None,
        burst: float | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= check.non_negative("rate", rate) <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        max_per_second = check.optional(check.positive, "max_per_second", max_per_second)
        burst = check.optional(check.non_negative, "burst", burst)
        if burst is not None and burst < 1:
            raise ValueError("burst must be >= 1")
        self._sink = check.callable_arg("sink", sink)
        self._rate = rate
        self._slow_ns = threshold_ns("keep_slow_ms", keep_slow_ms)
        self._keep_errors = keep_errors
        self._per_second = max_per_second
        self._burst = burst if burst is not None else max(1.0, max_per_second or 1.0)
        self._tokens = self._burst
        self._clock = check.callable_arg("clock", clock)
        self._last = clock()
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._counts = [0, 0, 0]  # kept, sampled out, rate limited

    def __call__(self, span: S) -> None:
        """Pass ``span`` on to the wrapped sink, or count it as dropped."""
        if not self._wanted(span):
            with self._lock:
                self._counts[1] += 1
            return
        with self._lock:
            if self._per_second is not None and not self._take():
                self._counts[2] += 1
                return
            self._counts[0] += 1
        self._sink(span)

    def _wanted(self, span: S) -> bool:
        if self._keep_errors and span.outcome == "error":
            return True
        if self._slow_ns is not None and span.duration_ns >= self._slow_ns:
            return True
        return self._rate >= 1.0 or self._rng.random() < self._rate

    def _take(self) -> bool:
        assert self._per_second is not None
        now = self._clock()
        elapsed, self._last = max(now - self._last, 0.0), now
        self._tokens = min(self._burst, self._tokens + elapsed * self._per_second)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    @property
    def kept(self) -> int:
        """Spans passed on to the wrapped sink."""
        return self._counts[0]

    @property
    def sampled_out(self) -> int:
        """Spans dropped by the sample rate."""
        return self._counts[1]

    @property
    def rate_limited(self) -> int:
        """Spans dropped by ``max_per_second``."""
        return self._counts[2]

    def __repr__(self) -> str:
        return f"<Sampled rate={self._rate} kept={self.kept} of {sum(self._counts)} {self._sink!r}>"
