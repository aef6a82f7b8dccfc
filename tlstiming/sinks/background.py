"""Move a sink's work off the handshake: a bounded queue and one worker thread.

:class:`BackgroundSink` is the only way off the handshake's thread: the log
sinks' ``background=True`` is their ``emit`` wrapped in one. However sinks
are wrapped (``Sampled(BackgroundSink(StructlogSink()))``,
``BackgroundSink(Sampled(...))``...), one worker serves the chain: its queue
and thread start with the first span, and a BackgroundSink called on a sink
worker runs its sink right there instead of queueing again, so an inner one
never starts its own.
"""

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


_workers: Final[set[int]] = set()  # the thread ids of running sink workers
_get_ident = threading.get_ident


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
    counted in :attr:`errors`. The queue and its worker, a daemon thread,
    start with the first span; :meth:`close` (also run at interpreter exit)
    delivers what is queued and joins it. The work still costs CPU (and the
    GIL) in this process, just not inside the handshake.

    Called on a sink worker (this one's or another's: wrapped in another
    BackgroundSink, or a sink whose ``background=True`` is one), it runs
    ``sink`` at once, inline: one worker serves a chain of wrappers, whatever
    their order. Flush and close the outermost one.

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
        "_name",
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
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Any, Any]] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts = [0, 0]  # dropped, errors
        self._closed = False

    def __call__(self, span: S) -> None:
        """Queue ``span`` for the worker (inline on a sink worker); drop it if full or closed."""
        if _get_ident() in _workers and not self._closed:  # on a sink worker: run it here
            self._deliver(span)
            return
        q = self._queue if self._queue is not None else self._start()
        if q is None or self._closed or q.qsize() >= self._maxsize:
            with self._lock:
                self._counts[0] += 1
            return
        q.put((_copy_context() if self._copy else None, span))

    def _start(self) -> queue.SimpleQueue[tuple[Any, Any]] | None:
        """Make the queue and start the worker, once; ``None`` once closed."""
        with self._lock:
            if self._queue is None and not self._closed:
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
                atexit.register(self.close, 5.0)
            return self._queue

    def _run(self) -> None:
        assert self._queue is not None
        get, deliver = self._queue.get, self._deliver
        me = _get_ident()
        _workers.add(me)
        try:
            while True:
                context, item = get()
                if item is _STOP:
                    return
                if isinstance(item, threading.Event):
                    item.set()
                elif context is None:
                    deliver(item)
                else:
                    context.run(deliver, item)
        finally:
            _workers.discard(me)

    def _deliver(self, span: S) -> None:
        """Run the sink on ``span``; report and count an exception."""
        try:
            self._sink(span)
        except Exception:
            with self._lock:
                self._counts[1] += 1
            _log.warning(
                "tlstiming: background sink %r raised; span %s dropped for it",
                self._sink,
                getattr(span, "span_id", "?"),
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
        return 0 if self._queue is None else self._queue.qsize()

    @property
    def started(self) -> bool:
        """Whether the queue and its worker exist (they start with the first queued span)."""
        return self._thread is not None

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
        thread, q = self._thread, self._queue
        if thread is None or q is None or not thread.is_alive():
            return True
        done = threading.Event()
        with self._lock:  # a marker queued after close()'s stop would never be seen
            closed = self._closed
            if not closed:
                q.put((None, done))
        if closed:  # everything queued is delivered before the worker stops
            thread.join(timeout)
            return not thread.is_alive()
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
            thread, q = self._thread, self._queue
            if first and q is not None:
                q.put((None, _STOP))
        if thread is None:
            return True
        if first:
            atexit.unregister(self.close)
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> BackgroundSink[S]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BackgroundSink {self._sink!r} pending={self.pending} dropped={self.dropped}>"
