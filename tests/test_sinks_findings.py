"""Findings wherever spans go: the sinks carry their ids, and the log level follows the worst."""

from __future__ import annotations

import io
import json
import logging

import pytest
from conftest import ServeFactory
from servers import PKI, connect, server_context
from structlog.testing import capture_logs

import tlstiming
from tlstiming import HandshakeSpan
from tlstiming.sinks import JsonLinesSink, LoggingSink, StructlogSink, _flatten


def _span(serve: ServeFactory, pki: PKI, **server: object) -> HandshakeSpan:
    recorder = tlstiming.SpanRecorder()
    context = tlstiming.create_default_context(cadata=pki.ca_pem)
    context.add_sink(recorder)
    with connect(context, serve(server_context(pki.leaf, **server)).address) as tls:  # type: ignore[arg-type]
        tls.recv(1)
    (span,) = recorder.spans
    return span


@pytest.fixture
def retried(serve: ServeFactory, pki: PKI) -> HandshakeSpan:
    return _span(serve, pki, ecdh_curve="secp384r1")  # a HelloRetryRequest: a warning


@pytest.fixture
def healthy(serve: ServeFactory, pki: PKI) -> HandshakeSpan:
    return _span(serve, pki)


def test_logging_level_follows_the_worst_finding(
    retried: HandshakeSpan, healthy: HandshakeSpan, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tlstiming.spans")
    sink = LoggingSink(background=False)
    sink(healthy)
    sink(retried)
    quiet, loud = caplog.records
    assert quiet.levelno == logging.INFO
    assert not hasattr(quiet, "tls.findings")
    assert loud.levelno == logging.WARNING
    assert getattr(loud, "tls.findings") == "tls.hello_retry"


def test_structlog_method_follows_the_worst_finding(
    retried: HandshakeSpan, healthy: HandshakeSpan
) -> None:
    sink = StructlogSink(background=False)
    with capture_logs() as logs:
        sink(healthy)
        sink(retried)
    assert [e["log_level"] for e in logs] == ["info", "warning"]
    assert logs[1]["tls.findings"] == "tls.hello_retry"
    assert "tls.findings" not in logs[0]


def test_json_lines_carry_the_findings(retried: HandshakeSpan) -> None:
    stream = io.StringIO()
    with JsonLinesSink(stream, background=False) as sink:
        sink(retried)
    (line,) = stream.getvalue().splitlines()
    (finding,) = json.loads(line)["tls.findings"]
    assert finding["id"] == "tls.hello_retry"
    assert finding["severity"] == "warning"
    assert finding["evidence"]["hello_retry_group"] == "secp384r1"


def test_a_failing_diagnosis_never_costs_the_span(
    retried: HandshakeSpan, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(span: object) -> None:
        raise RuntimeError("a rule engine bug")

    monkeypatch.setattr(_flatten, "diagnose", broken)
    caplog.set_level(logging.INFO)
    LoggingSink(background=False)(retried)
    logged = [r for r in caplog.records if r.name == "tlstiming.spans"]
    assert len(logged) == 1
    assert not hasattr(logged[0], "tls.findings")
    assert any("could not diagnose" in r.getMessage() for r in caplog.records)


def test_otel_span_attributes_carry_the_findings(retried: HandshakeSpan) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tlstiming.sinks.otel import OTelSink

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    OTelSink(tracer_provider=provider, background=False)(retried)
    (exported,) = exporter.get_finished_spans()
    assert exported.attributes is not None
    assert tuple(exported.attributes["tls.findings"]) == ("tls.hello_retry",)  # type: ignore[arg-type]
