"""A bounded, thread-safe in-memory sink for tests and debugging."""

from __future__ import annotations

import collections

from tlstiming._recording.validate import count
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["SpanRecorder"]


class SpanRecorder(collections.deque[HandshakeSpan]):
    """Keep the last ``maxlen`` spans it receives. A sink: pass it to ``add_sink``.

    Calling it appends the span (a deque's append: atomic, and no Python
    frame on the handshake path). It is a :class:`collections.deque` of spans,
    oldest first.

    Args:
        maxlen: how many spans to keep; older ones are dropped first.

    Raises:
        TypeError: ``maxlen`` is not an int (``None`` included: there is no
            unbounded recorder).
        ValueError: ``maxlen`` < 1.
    """

    __slots__ = ()

    def __init__(self, maxlen: int = 1000) -> None:
        super().__init__((), count("maxlen", maxlen, minimum=1))

    __call__ = collections.deque.append

    @property
    def spans(self) -> tuple[HandshakeSpan, ...]:
        """A snapshot of the kept spans, oldest first."""
        while True:
            try:
                return tuple(self)
            except RuntimeError:  # another thread appended mid-copy: take it again
                continue

    def __repr__(self) -> str:
        return f"<SpanRecorder {len(self)}/{self.maxlen} spans>"
