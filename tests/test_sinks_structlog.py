"""The structlog sink and processor, read back with structlog's own capture and renderers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from servers import PKI, LoopbackServer, connect, server_context
from sink_spans import FakeRequestSpan, RealSpans, assert_no_secrets, real_spans
from structlog.testing import capture_logs

import tlstiming
from tlstiming.sinks import AddTLSFacts, StructlogSink, bind_tls, flatten


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _pipeline(renderer: Any, *processors: Any) -> tuple[Any, io.StringIO]:
    out = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[*processors, structlog.processors.add_log_level, renderer],
    )
    return logger, out


def test_one_event_per_real_handshake(pki: PKI) -> None:
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(StructlogSink(background=False))
    with capture_logs() as logs, LoopbackServer(server_context(pki.leaf)) as server:
        connect(client, server.address).close()
        with pytest.raises(Exception, match="certificate verify failed"):
            connect(client, server.address, "wrong.example.test")
    ok, failed = logs
    assert ok["event"] == "tls.handshake"
    assert ok["log_level"] == "info"
    assert ok["outcome"] == "ok"
    assert ok["tls.protocol.version"] == "1.3"
    assert isinstance(ok["tls.handshake.duration_ms"], float)
    assert failed["log_level"] == "warning"
    assert failed["error.type"] == "ssl.SSLCertVerificationError"
    assert failed["tls.failed_phase"]
    assert_no_secrets([ok, failed])


def test_event_keys_are_the_flat_keys(spans: RealSpans) -> None:
    with capture_logs() as logs:
        StructlogSink(background=False)(spans.ok)
    event = dict(logs[0])
    assert event.pop("event") == "tls.handshake"
    assert event.pop("log_level") == "info"
    assert event == flatten(spans.ok)


def test_levels_and_slow_threshold(spans: RealSpans) -> None:
    with capture_logs() as logs:
        StructlogSink(level="debug", error_level="error", background=False)(spans.failed)
        StructlogSink(level="debug", slow_ms=0, background=False)(spans.ok)
        StructlogSink(level="debug", slow_ms=60_000, background=False)(spans.ok)
    assert [e["log_level"] for e in logs] == ["error", "warning", "debug"]
    with pytest.raises(ValueError, match="unknown level"):
        StructlogSink(level="loud", background=False)
    with pytest.raises(ValueError, match="slow_ms"):
        StructlogSink(slow_ms=-1, background=False)


def test_injected_logger_keeps_its_bindings(spans: RealSpans) -> None:
    with capture_logs() as logs:
        StructlogSink(structlog.get_logger("custom").bind(service="billing"), background=False)(
            spans.ok
        )
    assert logs[0]["service"] == "billing"


def test_json_renderer(spans: RealSpans) -> None:
    logger, out = _pipeline(structlog.processors.JSONRenderer())
    sink = StructlogSink(logger, background=False)
    sink(spans.ok)
    sink(spans.failed)
    sink(FakeRequestSpan(spans.ok))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["tls.handshake", "tls.handshake", "http.request"]
    assert lines[0]["tls.cipher"] == spans.ok.facts.cipher
    assert lines[1]["level"] == "warning"
    assert lines[2]["http.response.status_code"] == 200
    assert lines[2]["url.full"] == "https://api.example.test:8443/v1/items"
    assert_no_secrets([out.getvalue()])


def test_console_renderer(spans: RealSpans) -> None:
    logger, out = _pipeline(structlog.dev.ConsoleRenderer(colors=False))
    StructlogSink(logger, background=False)(spans.ok)
    text = out.getvalue()
    assert "tls.handshake" in text
    assert f"tls.cipher={spans.ok.facts.cipher}" in text
    assert "tls.handshake.duration_ms=" in text
    assert text.count("\n") == 1


def test_processor_expands_tls_span(spans: RealSpans) -> None:
    logger, out = _pipeline(structlog.processors.JSONRenderer(), AddTLSFacts())
    logger.info("fetched", tls_span=spans.ok)
    logger.info("no connection", tls_span=None)
    logger.info("mine wins", tls_span=spans.ok, **{"server.address": "kept"})
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["tls.protocol.version"] == "1.3"
    assert first["tls.handshake.span_id"] == spans.ok.span_id
    assert "tls_span" not in first
    assert "tls_span" not in second
    assert "tls.cipher" not in second
    assert third["server.address"] == "kept"


def test_processor_with_chosen_keys(spans: RealSpans) -> None:
    with capture_logs(processors=[AddTLSFacts(["tls.cipher"], key="conn")]) as logs:
        structlog.get_logger().info("x", conn=spans.ok)
    assert logs == [{"event": "x", "log_level": "info", "tls.cipher": spans.ok.facts.cipher}]


def test_bind_tls_through_contextvars(spans: RealSpans) -> None:
    logger, out = _pipeline(
        structlog.processors.JSONRenderer(), structlog.contextvars.merge_contextvars
    )
    with bind_tls(spans.resumed):
        logger.info("inside")
    logger.info("outside")
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["tls.resumed"] is True
    assert inside["tls.handshake.span_id"] == spans.resumed.span_id
    assert "tls.resumed" not in outside


def test_request_span_event(spans: RealSpans) -> None:
    with capture_logs() as logs:
        StructlogSink(background=False)(FakeRequestSpan(spans.ok, outcome="error"))
    event = logs[0]
    assert event["event"] == "http.request"
    assert event["log_level"] == "warning"
    assert event["error.type"] == "httpx.ReadTimeout"
    assert event["tls.handshake.span_id"] == spans.ok.span_id
    assert_no_secrets([event])


def test_a_raising_logger_does_not_break_the_connection(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def info(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("log pipeline down")

    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(StructlogSink(Broken(), background=False))
    with LoopbackServer(server_context(pki.leaf)) as server:
        tls = connect(client, server.address)
        assert tls.recv(5) == b"hello"
        tls.close()
    assert "raised" in caplog.text
