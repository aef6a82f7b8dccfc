"""JSON lines: one ``to_dict()`` object per line, appended to a file or a text stream."""

from __future__ import annotations

import json
import os
import threading
from types import TracebackType
from typing import TextIO

from tlstiming.sinks._common import Emitter
from tlstiming.sinks._flatten import SpanLike, redact

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
    delivery catches and reports it, the connection is unaffected.

    Args:
        target: a path, or a text stream with ``write()`` (and ``flush()``).
        flush: flush after every line.
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
        else:
            self._stream = target
        self._flush = flush
        self._lock = threading.Lock()
        self._start_worker(background)

    def emit(self, span: SpanLike) -> None:
        """Append ``span`` as one line."""
        line = json.dumps(redact(span.to_dict()), separators=(",", ":")) + "\n"
        with self._lock:
            self._stream.write(line)
            if self._flush:
                self._stream.flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Write what is queued and flush the stream.

        Returns:
            ``True`` if everything queued was written within ``timeout`` seconds.
        """
        done = super().flush(timeout)
        with self._lock:
            if not self._stream.closed:
                self._stream.flush()
        return done

    def close(self, timeout: float | None = None) -> bool:
        """Write what is queued, then close the file if the sink opened it; idempotent.

        Returns:
            ``True`` if the worker has stopped.
        """
        stopped = super().close(timeout)
        with self._lock:
            if not self._stream.closed:
                if self._owned:
                    self._stream.close()
                else:
                    self._stream.flush()
        return stopped

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
