"""A bounded, thread-safe in-memory sink for tests and debugging."""

from __future__ import annotations

import collections
from collections.abc import Iterator

from tlstiming.spans import HandshakeSpan

__all__ = ["SpanRecorder"]


class SpanRecorder:
    """Keep the last ``maxlen`` spans it receives. A sink: pass it to ``add_sink``.

    Args:
        maxlen: how many spans to keep; older ones are dropped first.
    """

    __slots__ = ("_spans",)

    def __init__(self, maxlen: int = 1000) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._spans: collections.deque[HandshakeSpan] = collections.deque(maxlen=maxlen)

    def __call__(self, span: HandshakeSpan) -> None:
        self._spans.append(span)  # deque.append is atomic: no lock on the hot path

    @property
    def maxlen(self) -> int:
        """The most spans kept at once."""
        return self._spans.maxlen or 0

    @property
    def spans(self) -> tuple[HandshakeSpan, ...]:
        """The kept spans, oldest first."""
        return tuple(self._spans.copy())  # one C call: atomic against appends

    def clear(self) -> None:
        """Forget every kept span."""
        self._spans.clear()

    def __len__(self) -> int:
        return len(self._spans)

    def __iter__(self) -> Iterator[HandshakeSpan]:
        return iter(self.spans)

    def __repr__(self) -> str:
        return f"<SpanRecorder {len(self)}/{self.maxlen} spans>"
