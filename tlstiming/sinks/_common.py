"""What the sinks share: level choice, thresholds, deadlines, and their base, Emitter."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tlstiming._recording.validate import non_negative, optional, wait_seconds
from tlstiming.sinks._flatten import SpanLike
from tlstiming.sinks.background import BackgroundSink

__all__ = ["Deadline", "Emitter", "pick_level", "threshold_ns"]

L = TypeVar("L")


def pick_level(
    span: SpanLike,
    normal: L,
    error: L,
    slow_ns: int | None,
    slow: L,
    worst: str | None = None,
) -> L:
    """The level for ``span``: ``error`` if it failed or has a finding of severity error,
    else ``slow`` if slow or it has a warning finding, else ``normal``.

    ``worst`` is the worst severity among the span's findings
    (:func:`tlstiming.diagnosis.worst`), if they were computed.
    """
    if span.outcome == "error" or worst == "error":
        return error
    if (slow_ns is not None and span.duration_ns >= slow_ns) or worst == "warning":
        return slow
    return normal


def threshold_ns(name: str, ms: float | None) -> int | None:
    """A ``slow_ms``-style option (milliseconds, finite, >= 0) in nanoseconds; ``None`` stays.

    Raises:
        TypeError, ValueError: naming ``name`` (see ``_recording.validate.non_negative``).
    """
    checked = optional(non_negative, name, ms)
    return None if checked is None else int(checked * 1e6)


class Deadline:
    """A ``timeout=`` (``None``: no limit) turned into what is left of it at each step.

    One deadline is shared by the steps of a ``flush``/``close``, so that
    the whole call, not each step, stays within its timeout.

    Raises:
        TypeError, ValueError: ``timeout`` is not ``None`` or a finite number >= 0.
    """

    __slots__ = ("_end",)

    def __init__(self, timeout: float | None) -> None:
        timeout = wait_seconds("timeout", timeout)
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a limit."""
        return None if self._end is None else max(self._end - time.monotonic(), 0.0)

    def lock_timeout(self) -> float:
        """The ``timeout`` for ``Lock.acquire``: seconds left, or ``-1`` (no limit)."""
        left = self.remaining()
        return -1 if left is None else left


class Emitter:
    """Base of the log sinks: a plain callable, wrapped in one BackgroundSink by default.

    A sink's own work is :meth:`emit`, done at once on the calling thread.
    ``background=True`` (the default of every log sink) makes the sink that
    ``emit`` wrapped in one :class:`~tlstiming.sinks.BackgroundSink`:
    calling it queues the span, and the BackgroundSink's worker (started with
    the first span) emits it; flattening and formatting cost hundreds of
    microseconds, more than the handshake itself on a fast network. That
    BackgroundSink is the only queue and thread: called on a sink worker
    (wrapped in another BackgroundSink, behind :class:`~tlstiming.sinks.Sampled`
    in one...), the sink emits inline. ``background=False``: ``self(span)`` is
    ``self.emit(span)``.
    """

    __slots__ = ("_call",)

    _call: Callable[[SpanLike], None]

    def _wrap(self, background: bool) -> None:
        """Call ``emit`` directly, or through one BackgroundSink named after the class."""
        if background:
            self._call = BackgroundSink(self.emit, name=f"tlstiming-{type(self).__name__}")
        else:
            self._call = self.emit

    def emit(self, span: SpanLike) -> None:
        """Emit ``span`` now, on this thread."""
        raise NotImplementedError

    def __call__(self, span: SpanLike) -> None:
        """Emit ``span``: queued for the worker with ``background=True``, else at once."""
        self._call(span)

    @property
    def _worker(self) -> BackgroundSink[SpanLike] | None:
        call = self._call
        return call if isinstance(call, BackgroundSink) else None

    @property
    def background(self) -> bool:
        """Whether spans are emitted by a background worker."""
        return self._worker is not None

    @property
    def dropped(self) -> int:
        """Spans the worker dropped because its queue was full (0 without a worker)."""
        worker = self._worker
        return 0 if worker is None else worker.dropped

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every span queued so far has been emitted.

        Args:
            timeout: seconds to wait at most (``None``: no limit).

        Returns:
            ``True`` if everything was emitted within ``timeout`` seconds.

        Raises:
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        timeout = wait_seconds("timeout", timeout)
        worker = self._worker
        return True if worker is None else worker.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Emit what is queued and stop the worker (also done at exit); idempotent.

        Args:
            timeout: seconds to wait at most (``None``: no limit).

        Returns:
            ``True`` if the worker has stopped.

        Raises:
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        timeout = wait_seconds("timeout", timeout)
        worker = self._worker
        return True if worker is None else worker.close(timeout)
