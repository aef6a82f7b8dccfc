"""A ``timeout=`` holds while the stream blocks (issue #10, item 7).

A stream whose ``write`` blocks on an event, as a full pipe or a stuck
network file system does. ``close(timeout=...)`` and ``flush(timeout=...)``
must come back (reporting ``False``) while the write is still blocked; they
are run on a helper thread so that a regression fails here instead of
hanging the suite. Bounds are generous relations, never milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from synthetic_spans import handshake

from tlstiming import HandshakeSpan
from tlstiming.sinks import BackgroundSink, JsonLinesSink

T = TypeVar("T")
BOUND = 5.0  # seconds: far above the 0.2 s timeouts, far below a hang
GUARD = 60.0  # a write blocked longer than this gives up (no thread outlives the suite)


class BlockingStream:
    """A text stream whose writes block until :attr:`release` is set."""

    closed = False

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(GUARD)
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def stream() -> Iterator[BlockingStream]:
    blocking = BlockingStream()
    try:
        yield blocking
    finally:
        blocking.release.set()


def within(seconds: float, call: Callable[[], T]) -> T:
    """Run ``call`` on a helper thread; fail unless it returns within ``seconds``."""
    results: list[T] = []
    helper = threading.Thread(target=lambda: results.append(call()), daemon=True)
    helper.start()
    helper.join(seconds)
    assert not helper.is_alive(), f"still blocked after {seconds} s"
    return results[0]


def blocked_writer(stream: BlockingStream, background: bool) -> JsonLinesSink:
    """A sink whose first write is blocked in ``stream`` (on its worker, or on a thread)."""
    sink = JsonLinesSink(stream, background=background)  # type: ignore[arg-type]
    if background:
        sink(handshake())
    else:
        threading.Thread(target=sink, args=(handshake(),), daemon=True).start()
    assert stream.entered.wait(GUARD)
    return sink


@pytest.mark.parametrize("background", [True, False], ids=["worker", "caller"])
def test_close_returns_while_a_write_is_blocked(stream: BlockingStream, background: bool) -> None:
    sink = blocked_writer(stream, background)
    assert within(BOUND, lambda: sink.close(timeout=0.2)) is False
    assert not stream.release.is_set()  # it returned while the write was still blocked
    stream.release.set()
    assert within(BOUND * 2, lambda: sink.close(timeout=BOUND))  # finishes once unblocked
    assert len(stream.lines) == 1


@pytest.mark.parametrize("background", [True, False], ids=["worker", "caller"])
def test_flush_returns_while_a_write_is_blocked(stream: BlockingStream, background: bool) -> None:
    sink = blocked_writer(stream, background)
    assert within(BOUND, lambda: sink.flush(timeout=0.2)) is False
    stream.release.set()
    assert within(BOUND * 2, lambda: sink.flush(timeout=BOUND))
    assert within(BOUND * 2, lambda: sink.close(timeout=BOUND))


def test_flush_after_a_timed_out_close_ends_with_the_worker(stream: BlockingStream) -> None:
    span = handshake()

    def write(received: HandshakeSpan) -> None:
        stream.write(received.span_id)

    sink = BackgroundSink(write)
    sink(span)
    assert stream.entered.wait(GUARD)
    assert within(BOUND, lambda: sink.close(timeout=0.2)) is False
    waiting = threading.Thread(target=sink.flush, daemon=True)  # no timeout: until delivered
    waiting.start()
    stream.release.set()
    waiting.join(BOUND)
    assert not waiting.is_alive()  # it did not wait for a worker that had already stopped
    assert stream.lines == [span.span_id]
