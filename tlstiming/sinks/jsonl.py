"""JSON lines: one ``to_dict()`` object per line, appended to a file or a text stream."""

from __future__ import annotations

import json
import os
import threading
from types import TracebackType
from typing import TextIO

from tlstiming.sinks._common import Deadline, Emitter
from tlstiming.sinks._flatten import FINDINGS_KEY, SpanLike, findings_of, redact

__all__ = ["JsonLinesSink"]


class JsonLinesSink(Emitter):
    """Append every span's ``to_dict()`` as one line of JSON.

    Thread-safe: the JSON is built outside a lock and written (and flushed)
    under it, so lines from concurrent handshakes never interleave within
    this process. A path is opened once, in append mode, UTF-8; close the
    sink (or use it as a context manager) to close the file. A stream you
    pass stays yours: the sink never closes it.

    **Flush policy**: with ``flush=True`` (the default) every line is flushed
    to the operating system as it is written, so ``tail -f`` sees it at once
    and a crash loses at most the line being written. ``flush=False`` leaves
    it to the stream's buffer (faster; lines reach the file in chunks and on
    :meth:`close`). Several processes appending to one file can interleave
    lines longer than the OS's atomic append size: give each its own file.

    A write that fails (closed stream, full disk) raises; the handshake's
    delivery catches and reports it, the connection is unaffected. A write
    that blocks (a full pipe) holds up only the worker: :meth:`flush` and
    :meth:`close` give up at their ``timeout`` and return ``False``.

    Args:
        target: a path, or a text stream with ``write()`` (and ``flush()``).
        flush: flush after every line.
        background: wrap the sink in one :class:`BackgroundSink` (the
            default: a worker writes); ``False`` writes on the calling thread.

    Raises:
        TypeError: ``target`` is neither a path nor a stream with ``write()``.
    """

    __slots__ = ("_flush", "_lock", "_owned", "_stream")

    def __init__(
        self,
        target: str | os.PathLike[str] | TextIO,
        *,
        flush: bool = True,
        background: bool = True,
    ) -> None:
        self._owned = isinstance(target, str | os.PathLike)
        if isinstance(target, str | os.PathLike):
            self._stream: TextIO = open(target, "a", encoding="utf-8")  # noqa: SIM115
        elif callable(getattr(target, "write", None)):
            self._stream = target
        else:
            kind = type(target).__name__
            raise TypeError(f"target must be a path or a text stream with write(), not {kind}")
        self._flush = flush
        self._lock = threading.Lock()
        self._wrap(background)

    def emit(self, span: SpanLike) -> None:
        """Append ``span`` as one line."""
        data = redact(span.to_dict())
        findings = findings_of(span)
        if findings:
            data[FINDINGS_KEY] = [f.to_dict() for f in findings]
        line = json.dumps(data, separators=(",", ":")) + "\n"
        with self._lock:
            self._stream.write(line)
            if self._flush:
                self._stream.flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Write what is queued and flush the stream.

        Args:
            timeout: seconds to wait at most, for the queue and for a write
                in progress (``None``: no limit).

        Returns:
            ``True`` if everything queued was written and flushed within
            ``timeout`` seconds; ``False`` if a write is still blocked.

        Raises:
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        deadline = Deadline(timeout)
        done = super().flush(deadline.remaining())
        return self._finish(deadline, close=False) and done

    def close(self, timeout: float | None = None) -> bool:
        """Write what is queued, then close the file if the sink opened it; idempotent.

        Args:
            timeout: seconds to wait at most, for the queue and for a write
                in progress (``None``: no limit).

        Returns:
            ``True`` if the worker has stopped and the stream is flushed (or
            closed); ``False`` if spans are still queued or a write is still
            blocked at the deadline: the file is then left open, and calling
            ``close()`` again finishes.

        Raises:
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        deadline = Deadline(timeout)
        stopped = super().close(deadline.remaining())
        return self._finish(deadline, close=self._owned and stopped) and stopped

    def _finish(self, deadline: Deadline, *, close: bool) -> bool:
        """Flush (or close) the stream, unless a write holds it past ``deadline``."""
        if not self._lock.acquire(timeout=deadline.lock_timeout()):
            return False
        try:
            if not getattr(self._stream, "closed", False):
                if close:
                    self._stream.close()
                else:
                    self._stream.flush()
        finally:
            self._lock.release()
        return True

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<JsonLinesSink {getattr(self._stream, 'name', self._stream)!r}>"
