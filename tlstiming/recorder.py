"""A bounded, thread-safe in-memory sink for tests and debugging."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator

from tlstiming.spans import HandshakeSpan

__all__ = ["SpanRecorder"]


class SpanRecorder:
    """Keep the last ``maxlen`` spans it receives. A sink: pass it to ``add_sink``.

    Args:
        maxlen: how many spans to keep; older ones are dropped first.
    """

    __slots__ = ("_lock", "_spans", "dropped")

    def __init__(self, maxlen: int = 1000) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._spans: collections.deque[HandshakeSpan] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0
        """How many spans were pushed out by newer ones."""

    def __call__(self, span: HandshakeSpan) -> None:
        with self._lock:
            if len(self._spans) == self._spans.maxlen:
                self.dropped += 1
            self._spans.append(span)

    @property
    def maxlen(self) -> int:
        """The most spans kept at once."""
        return self._spans.maxlen or 0

    @property
    def spans(self) -> tuple[HandshakeSpan, ...]:
        """The kept spans, oldest first."""
        with self._lock:
            return tuple(self._spans)

    def clear(self) -> None:
        """Forget every kept span."""
        with self._lock:
            self._spans.clear()

    def __len__(self) -> int:
        return len(self._spans)

    def __iter__(self) -> Iterator[HandshakeSpan]:
        return iter(self.spans)

    def __repr__(self) -> str:
        return f"<SpanRecorder {len(self)}/{self.maxlen} spans>"
