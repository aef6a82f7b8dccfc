"""The log sinks emit on a worker thread by default: the handshake only queues."""

from __future__ import annotations

import io
import json
import logging
import threading
from pathlib import Path

import pytest
from servers import PKI
from sink_spans import RealSpans, real_spans

from tlstiming.sinks import JsonLinesSink, LoggingSink


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


def test_by_default_the_worker_emits(spans: RealSpans) -> None:
    threads: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            threads.append(threading.current_thread().name)

    logger = logging.getLogger("tlstiming.test.background")
    logger.setLevel(logging.INFO)
    handler = Spy()
    logger.addHandler(handler)
    sink = LoggingSink(logger)
    try:
        assert sink.background
        sink(spans.ok)
        assert sink.flush(timeout=10)
        assert threads == ["tlstiming-LoggingSink"]
    finally:
        sink.close()
        logger.removeHandler(handler)
    assert sink.close()  # idempotent


def test_background_false_emits_on_the_callers_thread(spans: RealSpans) -> None:
    out = io.StringIO()
    sink = JsonLinesSink(out, background=False)
    assert not sink.background
    sink(spans.ok)
    assert json.loads(out.getvalue())["span.id"] == spans.ok.span_id
    assert sink.flush()
    assert sink.dropped == 0


def test_close_emits_what_is_queued_then_closes_the_file(spans: RealSpans, tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    sink = JsonLinesSink(path)
    for _ in range(20):
        sink(spans.ok)
    assert sink.close(timeout=10)
    assert len(path.read_text().splitlines()) == 20
    sink(spans.ok)  # after close: dropped, counted, never raised
    assert sink.dropped == 1
