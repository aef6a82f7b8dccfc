"""Small pieces the sinks share (pure)."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from tlstiming._recording.validate import non_negative, optional, wait_seconds
from tlstiming.sinks._flatten import SpanLike

__all__ = ["Deadline", "Emitter", "pick_level", "threshold_ns"]

L = TypeVar("L")


def pick_level(span: SpanLike, normal: L, error: L, slow_ns: int | None, slow: L) -> L:
    """The level for ``span``: ``error`` if it failed, else ``slow`` if slow, else ``normal``.

    Only cheap attributes are read (``outcome``, ``duration_ns``): nothing is
    materialised to decide.
    """
    if span.outcome == "error":
        return error
    if slow_ns is not None and span.duration_ns >= slow_ns:
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
    """Base of the sinks: ``emit`` runs on a background worker unless told not to.

    Flattening and formatting a span costs hundreds of microseconds, more
    than the handshake itself on a fast network: by default a sink only
    queues the span (a :class:`~tlstiming.sinks.BackgroundSink` worker, one
    per sink, started with it) and the work happens off the handshake.
    ``background=False`` emits on the handshake's thread instead.
    """

    __slots__ = ("_worker",)

    _worker: Any

    def _start_worker(self, background: bool) -> None:
        if not background:
            self._worker = None
            return
        from tlstiming.sinks.background import BackgroundSink  # noqa: PLC0415

        self._worker = BackgroundSink(self.emit, name=f"tlstiming-{type(self).__name__}")

    def emit(self, span: SpanLike) -> None:
        """Emit ``span`` now, on this thread."""
        raise NotImplementedError

    def __call__(self, span: SpanLike) -> None:
        """Emit ``span``: queue it for the worker, or emit it now if there is none."""
        worker = self._worker
        if worker is None:
            self.emit(span)
        else:
            worker(span)

    @property
    def background(self) -> bool:
        """Whether spans are emitted by a background worker."""
        return self._worker is not None

    @property
    def dropped(self) -> int:
        """Spans the worker dropped because its queue was full (0 without a worker)."""
        return 0 if self._worker is None else int(self._worker.dropped)

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
        return True if self._worker is None else bool(self._worker.flush(timeout))

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
        return True if self._worker is None else bool(self._worker.close(timeout))
