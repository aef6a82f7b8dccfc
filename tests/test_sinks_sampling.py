"""Sampling, rate limiting and the background sink: deterministic, no sleeps."""

from __future__ import annotations

import contextvars
import random
import threading
from typing import Any

import pytest
from servers import PKI, LoopbackServer, connect, server_context
from sink_spans import FakeRequestSpan, RealSpans, real_spans

import tlstiming
from tlstiming.sinks import BackgroundSink, Sampled, StructlogSink
from tlstiming.sinks._flatten import SpanLike


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_deterministic_with_a_seed(spans: RealSpans) -> None:
    kept: list[SpanLike] = []
    sampled = Sampled(kept.append, rate=0.25, rng=random.Random(7))
    for _ in range(1000):
        sampled(spans.ok)
    again: list[SpanLike] = []
    replay = Sampled(again.append, rate=0.25, rng=random.Random(7))
    for _ in range(1000):
        replay(spans.ok)
    assert len(kept) == len(again) == sampled.kept
    assert 200 < sampled.kept < 300
    assert sampled.kept + sampled.sampled_out == 1000


def test_errors_and_slow_spans_are_always_kept(spans: RealSpans) -> None:
    kept: list[SpanLike] = []
    sampled = Sampled(kept.append, rate=0.0, keep_slow_ms=0.0, rng=random.Random(1))
    sampled(spans.failed)
    sampled(spans.ok)  # slow: every span takes >= 0 ms
    assert kept == [spans.failed, spans.ok]
    none: list[SpanLike] = []
    strict = Sampled(none.append, rate=0.0, keep_errors=False, keep_slow_ms=60_000)
    strict(spans.failed)
    strict(spans.ok)
    assert none == []
    assert strict.sampled_out == 2


def test_token_bucket(spans: RealSpans) -> None:
    clock = Clock()
    kept: list[SpanLike] = []
    sampled = Sampled(kept.append, max_per_second=2, burst=2, clock=clock)
    for _ in range(5):
        sampled(spans.failed)  # errors too: an outage must not flood the pipeline
    assert (sampled.kept, sampled.rate_limited) == (2, 3)
    clock.now += 0.5  # one token back
    sampled(spans.ok)
    sampled(spans.ok)
    assert (sampled.kept, sampled.rate_limited) == (3, 4)
    clock.now += 100  # refills to the burst, not beyond
    for _ in range(3):
        sampled(spans.ok)
    assert sampled.kept == 5


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rate"):
        Sampled(print, rate=1.5)
    with pytest.raises(ValueError, match="max_per_second"):
        Sampled(print, max_per_second=0)
    with pytest.raises(ValueError, match="burst"):
        Sampled(print, max_per_second=1, burst=0.5)
    with pytest.raises(ValueError, match="maxsize"):
        BackgroundSink(print, maxsize=0)


def test_background_delivers_in_order_on_another_thread(spans: RealSpans) -> None:
    seen: list[tuple[str, str]] = []

    def sink(span: SpanLike) -> None:
        seen.append((span.span_id, threading.current_thread().name))

    with BackgroundSink(sink, name="bg-test") as background:
        for span in (spans.ok, spans.failed, spans.resumed):
            background(span)
        assert background.flush(timeout=60)
        assert [s for s, _ in seen] == [
            spans.ok.span_id,
            spans.failed.span_id,
            spans.resumed.span_id,
        ]
        assert {t for _, t in seen} == {"bg-test"}
    assert background.pending == 0


def test_background_drops_when_full_and_after_close(spans: RealSpans) -> None:
    gate = threading.Event()
    started = threading.Event()
    seen: list[SpanLike] = []

    def slow(span: SpanLike) -> None:
        started.set()
        gate.wait(60)
        seen.append(span)

    background = BackgroundSink(slow, maxsize=2)
    background(spans.ok)
    assert started.wait(60)  # the worker holds the first span
    background(spans.ok)
    background(spans.ok)
    background(spans.ok)  # queue full: dropped, never blocks
    assert background.dropped == 1
    gate.set()
    assert background.close(timeout=60)
    assert len(seen) == 3  # what was queued is delivered before the worker stops
    background(spans.ok)
    assert background.dropped == 2
    assert background.flush() is True


def test_background_runs_the_sink_in_the_callers_context(spans: RealSpans) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    def sink(span: SpanLike) -> None:
        seen.append(var.get())

    with BackgroundSink(sink) as background:
        token = var.set("from the handshake")
        background(spans.ok)
        var.reset(token)
        background(spans.ok)
        background.flush(60)
    assert seen == ["from the handshake", "unset"]
    with BackgroundSink(sink, copy_context=False) as plain:
        token = var.set("ignored")
        plain(spans.ok)
        var.reset(token)
    assert seen[-1] == "unset"


def test_background_reports_a_raising_sink(
    spans: RealSpans, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(span: SpanLike) -> None:
        raise RuntimeError("sink bug")

    with BackgroundSink(broken) as background:
        background(spans.ok)
        background.flush(60)
    assert background.errors == 1
    assert "sink bug" in caplog.text
    assert spans.ok.span_id in caplog.text


def test_the_recommended_stack_on_real_handshakes(pki: PKI) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        background: BackgroundSink[Any] = BackgroundSink(StructlogSink(background=False))
        client = tlstiming.create_default_context(cadata=pki.ca_pem)
        client.add_sink(Sampled(background, rate=0.0, rng=random.Random(0)))
        with LoopbackServer(server_context(pki.leaf)) as server:
            connect(client, server.address).close()  # sampled out
            with pytest.raises(Exception, match="certificate verify failed"):
                connect(client, server.address, "wrong.example.test")  # kept: an error
        background.close(60)
    assert [(e["event"], e["outcome"]) for e in logs] == [("tls.handshake", "error")]


def test_request_spans_go_through_the_wrappers(spans: RealSpans) -> None:
    seen: list[SpanLike] = []
    with BackgroundSink(seen.append) as background:
        Sampled(background, rate=0.0)(FakeRequestSpan(spans.ok, outcome="error"))
        background.flush(60)
    assert [s.kind for s in seen] == ["http.request"]
