"""One queue and one worker thread, whatever the order sinks are wrapped in."""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest
from synthetic_spans import handshake

from tlstiming.sinks import BackgroundSink, Sampled, StructlogSink
from tlstiming.sinks._common import Emitter

Flushable = BackgroundSink[Any] | Emitter


class Log:
    """A structlog-like logger that notes the thread of each event."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def info(self, event: str, **fields: Any) -> None:
        self.threads.append(threading.current_thread().name)


def _queues() -> int:
    return sum(isinstance(o, queue.SimpleQueue) for o in gc.get_objects())


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("tlstiming-")}


# Each builds (what the context is given, the outermost thing to flush and close).
Build = Callable[[Log], tuple[Callable[[Any], None], Flushable]]


def _own(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    sink = StructlogSink(log)
    return sink, sink


def _wrapped(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    outer: BackgroundSink[Any] = BackgroundSink(StructlogSink(log))
    return outer, outer


def _sampled(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    sink = StructlogSink(log)
    return Sampled(sink), sink


def _sampled_wrapped(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    outer: BackgroundSink[Any] = BackgroundSink(StructlogSink(log))
    return Sampled(outer), outer


def _wrapped_sampled(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    outer: BackgroundSink[Any] = BackgroundSink(Sampled(StructlogSink(log)))
    return outer, outer


def _twice(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    outer: BackgroundSink[Any] = BackgroundSink(BackgroundSink(StructlogSink(log)))
    return outer, outer


def _wrapped_direct(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    outer: BackgroundSink[Any] = BackgroundSink(StructlogSink(log, background=False))
    return outer, outer


def _layers(log: Log) -> tuple[Callable[[Any], None], Flushable]:
    outer: BackgroundSink[Any] = BackgroundSink(Sampled(BackgroundSink(StructlogSink(log))))
    return Sampled(outer), outer


ORDERS: dict[str, Build] = {
    "StructlogSink()": _own,
    "BackgroundSink(StructlogSink())": _wrapped,
    "Sampled(StructlogSink())": _sampled,
    "Sampled(BackgroundSink(StructlogSink()))": _sampled_wrapped,
    "BackgroundSink(Sampled(StructlogSink()))": _wrapped_sampled,
    "BackgroundSink(BackgroundSink(StructlogSink()))": _twice,
    "BackgroundSink(StructlogSink(background=False))": _wrapped_direct,
    "Sampled(BackgroundSink(Sampled(BackgroundSink(StructlogSink()))))": _layers,
}


@pytest.fixture
def counted() -> Callable[[], tuple[int, int]]:
    """(new queues, new worker threads) since the test began."""
    gc.collect()
    queues, workers = _queues(), _workers()
    return lambda: (_queues() - queues, len(_workers() - workers))


@pytest.mark.parametrize("build", ORDERS.values(), ids=ORDERS.keys())
def test_one_queue_and_one_thread(build: Build, counted: Callable[[], tuple[int, int]]) -> None:
    log = Log()
    sink, outermost = build(log)
    assert counted() == (0, 0)  # nothing starts before the first span
    for _ in range(3):
        sink(handshake())
    assert outermost.flush(timeout=60)
    assert counted() == (1, 1)
    assert len(log.threads) == 3
    assert all(name.startswith("tlstiming-") for name in log.threads)
    assert len(set(log.threads)) == 1
    assert outermost.close(timeout=60)
    assert counted()[1] == 0  # the worker has stopped


def test_a_direct_sink_starts_nothing(counted: Callable[[], tuple[int, int]]) -> None:
    log = Log()
    sink = StructlogSink(log, background=False)
    sink(handshake())
    assert log.threads == [threading.current_thread().name]
    assert counted() == (0, 0)
    assert not sink.background
    assert sink.flush() and sink.close()


def test_the_worker_is_the_sinks_own_and_named_after_it() -> None:
    log = Log()
    sink = StructlogSink(log)
    assert sink.background
    sink(handshake())
    assert sink.flush(timeout=60)
    assert log.threads == ["tlstiming-StructlogSink"]
    assert sink.close(timeout=60)


def test_inline_calls_still_count_errors_and_drops_after_close() -> None:
    def broken(span: Any) -> None:
        raise RuntimeError("boom")

    inner: BackgroundSink[Any] = BackgroundSink(broken)
    outer: BackgroundSink[Any] = BackgroundSink(inner)
    outer(handshake())
    assert outer.flush(timeout=60)
    assert (inner.errors, outer.errors) == (1, 0)  # the inner one ran it, inline
    assert not inner.started
    inner.close()
    outer(handshake())
    assert outer.close(timeout=60)
    assert inner.dropped == 1


def test_close_before_the_first_span() -> None:
    sink: BackgroundSink[Any] = BackgroundSink(lambda span: None)
    assert sink.close(timeout=0) and sink.flush(timeout=0)
    sink(handshake())
    assert (sink.dropped, sink.started, sink.pending) == (1, False, 0)
