"""Move a sink's work off the handshake: a bounded queue and one worker thread."""

from __future__ import annotations

import atexit
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from tlstiming._recording.validate import callable_arg, count, wait_seconds
from tlstiming.sinks._flatten import SpanLike

__all__ = ["BackgroundSink"]

S = TypeVar("S", bound=SpanLike)

_log = logging.getLogger("tlstiming")
_STOP: Final = object()
_copy_context = contextvars.copy_context


class BackgroundSink(Generic[S]):
    """Hand spans to ``sink`` on a worker thread; the handshake only enqueues.

    On the handshake's thread a call costs a queue put (and, by default, a
    ``contextvars.copy_context()``, which is O(1)); flattening, formatting,
    rendering and I/O happen on the worker. The worker runs ``sink`` inside
    the copied context, so it sees the same context variables as a direct
    sink would (the current OpenTelemetry span, structlog's bound variables).

    The queue is bounded: when ``maxsize`` spans are waiting, new ones are
    dropped and counted in :attr:`dropped` (never blocking the handshake).
    An exception from ``sink`` is logged on the ``tlstiming`` logger and
    counted in :attr:`errors`. The worker is a daemon thread started here;
    :meth:`close` (also run at interpreter exit) delivers what is queued and
    joins it. The work still costs CPU (and the GIL) in this process, just not
    inside the handshake.

    Args:
        sink: the sink to run in the background.
        maxsize: most spans waiting at once.
        copy_context: run ``sink`` in a copy of the caller's context.
        name: the worker thread's name.

    Raises:
        TypeError: ``sink`` is not callable, ``maxsize`` not an int.
        ValueError: if ``maxsize`` < 1.
    """

    __slots__ = (
        "_closed",
        "_copy",
        "_counts",
        "_lock",
        "_maxsize",
        "_queue",
        "_sink",
        "_thread",
    )

    def __init__(
        self,
        sink: Callable[[S], None],
        *,
        maxsize: int = 10_000,
        copy_context: bool = True,
        name: str = "tlstiming-sink",
    ) -> None:
        self._sink = callable_arg("sink", sink)
        self._maxsize = count("maxsize", maxsize, minimum=1)
        self._copy = copy_context
        self._queue: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._counts = [0, 0]  # dropped, errors
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        atexit.register(self.close, 5.0)

    def __call__(self, span: S) -> None:
        """Queue ``span`` for the worker, or drop it if the queue is full or closed."""
        if self._closed or self._queue.qsize() >= self._maxsize:
            with self._lock:
                self._counts[0] += 1
            return
        self._queue.put((_copy_context() if self._copy else None, span))

    def _run(self) -> None:
        get, sink = self._queue.get, self._sink
        while True:
            context, item = get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                if context is None:
                    sink(item)
                else:
                    context.run(sink, item)
            except Exception:
                with self._lock:
                    self._counts[1] += 1
                _log.warning(
                    "tlstiming: background sink %r raised; span %s dropped for it",
                    sink,
                    getattr(item, "span_id", "?"),
                    exc_info=True,
                )

    @property
    def dropped(self) -> int:
        """Spans dropped because the queue was full or the sink closed."""
        return self._counts[0]

    @property
    def errors(self) -> int:
        """Spans for which the wrapped sink raised."""
        return self._counts[1]

    @property
    def pending(self) -> int:
        """Spans waiting in the queue (approximate)."""
        return self._queue.qsize()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every span queued before this call has been handed to the sink.

        After :meth:`close` that is everything queued: it waits for the worker to stop.

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as it takes.

        Returns:
            ``True`` if everything was delivered in time.

        Raises:
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        timeout = wait_seconds("timeout", timeout)
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        with self._lock:  # a marker queued after close()'s stop would never be seen
            closed = self._closed
            if not closed:
                self._queue.put((None, done))
        if closed:  # everything queued is delivered before the worker stops
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Deliver what is queued, stop the worker and join it; idempotent.

        Spans that arrive afterwards are dropped (and counted).

        Args:
            timeout: seconds to wait for the worker at most; ``None`` waits
                as long as it takes.

        Returns:
            ``True`` if the worker has stopped.

        Raises:
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        timeout = wait_seconds("timeout", timeout)
        with self._lock:
            first, self._closed = not self._closed, True
            if first:
                self._queue.put((None, _STOP))
        if first:
            atexit.unregister(self.close)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> BackgroundSink[S]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BackgroundSink {self._sink!r} pending={self.pending} dropped={self.dropped}>"
