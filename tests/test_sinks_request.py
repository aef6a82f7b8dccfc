"""Issue 3's real RequestSpan (built from a record, no HTTP) through every sink.

The span is built by hand from :class:`RequestRecord` with made-up times and a
real handshake span, so this checks the sinks against the real ``to_dict()``
keys; the httpx transport's own tests cover how records are filled.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from servers import PKI
from sink_spans import RealSpans, assert_no_secrets, real_spans
from structlog.testing import capture_logs

request_module = pytest.importorskip("tlstiming.spans.request")
pytest.importorskip("tlstiming.spans.request_export")

from tlstiming.sinks import JsonLinesSink, LoggingSink, StructlogSink, flatten  # noqa: E402


@dataclass(frozen=True)
class URL:
    scheme: str = "https"
    host: str = "api.example.test"
    port: int | None = 8443
    raw_path: bytes = b"/v1/items?token=s3cr3t"


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


@pytest.fixture(scope="module")
def request_span(spans: RealSpans) -> object:
    t0 = 1_000_000_000
    record = request_module.RequestRecord(0xAB, t0, "GET", URL())
    record.marks = [
        ("dns", t0 + 100_000),
        ("connect", t0 + 1_000_000),
        ("tls", t0 + 2_000_000),
        ("send_request", t0 + 6_000_000),
    ]
    record.sent_ns = t0 + 6_500_000
    record.head_ns = t0 + 8_000_000
    record.end_ns = t0 + 9_000_000
    record.end_unix_ns = 1_700_000_000_009_000_000
    record.status_code = 200
    record.http_version = b"HTTP/1.1"
    record.connection = request_module.ConnectionInfo(
        opened_by=f"{0xAB:016x}",
        handshake=spans.ok,
        resolved=("127.0.0.1",),
        attempts=(
            request_module.ConnectAttempt(
                address="127.0.0.1", port=8443, start_ns=t0 + 1_000_000, end_ns=t0 + 2_000_000
            ),
        ),
    )
    return request_module.RequestSpan(record)


@pytest.fixture
def otel() -> Iterator[tuple[object, object]]:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_flat_fields(request_span: object, spans: RealSpans) -> None:
    flat = flatten(request_span)  # type: ignore[arg-type]
    assert flat["tlstiming.kind"] == "http.request"
    assert flat["http.request.method"] == "GET"
    assert flat["url.full"] == "https://api.example.test:8443/v1/items"
    assert flat["http.request.duration_ms"] == 9.0
    assert flat["http.phase.dns_ms"] == 0.9
    assert flat["http.phase.tls_ms"] == 4.0
    assert flat["tls.handshake.span_id"] == spans.ok.span_id
    assert flat["tls.cipher"] == spans.ok.facts.cipher
    assert flat["server.address"] == "api.example.test"
    assert flat["tlstiming.connection.resolved"] == "127.0.0.1"
    assert all(isinstance(v, str | int | float | bool) for v in flat.values())
    assert_no_secrets([flat])


def test_log_sinks(request_span: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tlstiming.spans")
    LoggingSink(background=False)(request_span)  # type: ignore[arg-type]
    assert caplog.records[0].getMessage() == (
        "http.request GET api.example.test:8443 9.0 ms status=200"
    )
    with capture_logs() as logs:
        StructlogSink(background=False)(request_span)  # type: ignore[arg-type]
    assert logs[0]["event"] == "http.request"
    out = io.StringIO()
    JsonLinesSink(out, background=False)(request_span)  # type: ignore[arg-type]
    assert json.loads(out.getvalue())["tlstiming.handshake"]["tlstiming.kind"] == "tls.handshake"
    assert_no_secrets([caplog.text, logs, out.getvalue()])


def test_otel_structure(request_span: object, otel: tuple[object, object]) -> None:
    from tlstiming.sinks.otel import OTelSink

    provider, exporter = otel
    OTelSink(tracer_provider=provider, background=False)(request_span)  # type: ignore[arg-type]
    names = sorted(s.name for s in exporter.get_finished_spans())  # type: ignore[attr-defined]
    assert names == [
        "DNS lookup api.example.test",
        "GET",
        "HTTP connection_setup api.example.test:8443",
        "HTTP wait_for_connection api.example.test:8443",
        "TLS client handshake localhost",
        "socket connect 127.0.0.1:8443",
    ]
