"""The OpenTelemetry sink, read back with the SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from servers import PKI, LoopbackServer, connect, server_context
from sink_spans import FakeRequestSpan, RealSpans, assert_no_secrets, real_spans

import tlstiming
from tlstiming.sinks import BackgroundSink
from tlstiming.sinks.otel import OTelSink


@dataclass
class OTel:
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    reader: InMemoryMetricReader
    meter_provider: MeterProvider

    def sink(self, **kwargs: bool) -> OTelSink:
        return OTelSink(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            **kwargs,
            background=False,
        )

    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


@pytest.fixture
def otel() -> Iterator[OTel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield OTel(exporter, tracer_provider, reader, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def test_real_handshakes_become_spans(pki: PKI, otel: OTel) -> None:
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(otel.sink())
    with LoopbackServer(server_context(pki.leaf)) as server:
        connect(client, server.address).close()
        with pytest.raises(Exception, match="certificate verify failed"):
            connect(client, server.address, "wrong.example.test")
    ok, failed = otel.spans()
    assert ok.name == "TLS client handshake localhost"
    assert ok.kind is SpanKind.INTERNAL
    assert ok.status.status_code is StatusCode.UNSET
    assert ok.attributes is not None
    assert ok.attributes["server.address"] == "localhost"
    assert ok.attributes["server.port"] == server.port
    assert ok.attributes["network.peer.address"] == "127.0.0.1"
    assert ok.attributes["tls.protocol.version"] == "1.3"
    assert ok.attributes["tls.established"] is True
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is not None
    assert "certificate verify failed" in failed.status.description
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "ssl.SSLCertVerificationError"
    assert failed.attributes["tls.established"] is False
    assert_no_secrets([dict(s.attributes or {}) for s in (ok, failed)])


def test_times_and_events_are_the_handshakes_own(spans: RealSpans, otel: OTel) -> None:
    otel.sink()(spans.ok)
    (exported,) = otel.spans()
    span = spans.ok
    assert exported.start_time == span.start_unix_ns
    assert exported.end_time == span.start_unix_ns + span.duration_ns
    assert [e.name for e in exported.events] == [m.type for m in span.messages]
    stamps = [e.timestamp for e in exported.events]
    assert stamps == [span.start_unix_ns + m.t_ns - span.start_ns for m in span.messages]
    assert stamps == sorted(stamps)
    first = exported.events[0]
    assert first.attributes == {
        "tls.message.direction": "sent",
        "tls.message.content_type": "handshake",
        "tls.message.size": span.messages[0].size,
    }
    assert exported.attributes is not None
    assert exported.attributes["tlstiming.span_id"] == span.span_id
    for phase in span.phases:
        assert exported.attributes[f"tls.phase.{phase.name}_ms"] == round(
            phase.duration_ns / 1e6, 3
        )


def test_server_side_name(spans: RealSpans, otel: OTel) -> None:
    otel.sink()(spans.server)
    (exported,) = otel.spans()
    assert exported.name == "TLS server handshake"
    assert exported.kind is SpanKind.INTERNAL


def test_current_span_is_the_parent(spans: RealSpans, otel: OTel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET") as parent:
        otel.sink()(spans.ok)
    handshake, request = otel.spans()
    assert handshake.parent is not None
    assert handshake.parent.span_id == parent.get_span_context().span_id
    assert request.name == "GET"


def test_background_sink_keeps_the_parent(spans: RealSpans, otel: OTel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with BackgroundSink(otel.sink()) as background:
        with tracer.start_as_current_span("GET") as parent:
            background(spans.ok)
        assert background.flush(60)
    handshake, request = sorted(otel.spans(), key=lambda s: s.name != "GET")[::-1]
    assert handshake.name.startswith("TLS client handshake")
    assert handshake.parent is not None
    assert handshake.parent.span_id == parent.get_span_context().span_id
    assert request.name == "GET"


def _histogram(metric: Metric) -> list[HistogramDataPoint]:
    points = list(metric.data.data_points)
    assert all(isinstance(p, HistogramDataPoint) for p in points)
    return [p for p in points if isinstance(p, HistogramDataPoint)]


def test_histograms(spans: RealSpans, otel: OTel) -> None:
    sink = otel.sink(metrics=True, traces=False)
    sink(spans.ok)
    sink(spans.failed)
    assert otel.spans() == ()
    data = otel.reader.get_metrics_data()
    assert data is not None
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    total = metrics["tlstiming.handshake.duration"]
    assert total.unit == "s"
    points = _histogram(total)
    assert sum(p.count for p in points) == 2
    by_error = {dict(p.attributes or {}).get("error.type"): p for p in points}
    assert by_error[None].sum == pytest.approx(spans.ok.duration_ns / 1e9)
    assert by_error["ssl.SSLCertVerificationError"].count == 1
    phases = _histogram(metrics["tlstiming.handshake.phase.duration"])
    attrs = [dict(p.attributes or {}) for p in phases]
    ok_phases = {
        a["tls.handshake.phase"]: p
        for a, p in zip(attrs, phases, strict=True)
        if "error.type" not in a
    }
    assert set(ok_phases) == {p.name for p in spans.ok.phases}
    assert sum(p.sum for p in ok_phases.values()) == pytest.approx(spans.ok.duration_ns / 1e9)


# -- request spans: FakeRequestSpan stands in for issue 3's RequestSpan ---------------


def test_request_span_links_to_its_connection_setup(spans: RealSpans, otel: OTel) -> None:
    request = FakeRequestSpan(spans.ok)
    otel.sink()(request)
    names = sorted(s.name for s in otel.spans())
    assert names == sorted(
        [
            "GET",
            "HTTP wait_for_connection api.example.test:8443",
            "HTTP connection_setup api.example.test:8443",
            "DNS lookup api.example.test",
            "socket connect 127.0.0.1:8443",
            "TLS client handshake localhost",
        ]
    )
    get = next(s for s in otel.spans() if s.name == "GET")
    setup = next(s for s in otel.spans() if s.name.startswith("HTTP connection_setup"))
    wait = next(s for s in otel.spans() if s.name.startswith("HTTP wait_for_connection"))
    assert get.kind is SpanKind.CLIENT
    assert setup.parent is None  # a root span, as in .NET
    assert [link.context.span_id for link in get.links] == [setup.context.span_id]
    assert wait.parent is not None and wait.parent.span_id == get.context.span_id
    children = [s for s in otel.spans() if s.parent and s.parent.span_id == setup.context.span_id]
    assert sorted(s.name.split(" ")[0] for s in children) == ["DNS", "TLS", "socket"]
    tls = next(s for s in children if s.name.startswith("TLS"))
    assert tls.events  # the full handshake span, messages included
    start = request.to_dict()["start_time_unix_nano"]
    assert get.start_time == start
    assert get.end_time == start + request.duration_ns
    assert setup.start_time == start + 100_000
    assert setup.end_time == start + 6_000_000
    assert get.attributes is not None
    assert get.attributes["http.response.status_code"] == 200
    assert get.attributes["url.full"] == "https://api.example.test:8443/v1/items"
    assert "tls.cipher" not in get.attributes  # the handshake's facts stay on its span
    assert_no_secrets(
        [dict(s.attributes or {}) for s in otel.spans()] + [s.name for s in otel.spans()]
    )


def test_nested_connection_setup(spans: RealSpans, otel: OTel) -> None:
    otel.sink(nest_connection_setup=True)(FakeRequestSpan(spans.ok))
    get = next(s for s in otel.spans() if s.name == "GET")
    setup = next(s for s in otel.spans() if s.name.startswith("HTTP connection_setup"))
    assert not get.links
    assert setup.parent is not None and setup.parent.span_id == get.context.span_id


def test_reused_connection_has_no_setup(spans: RealSpans, otel: OTel) -> None:
    otel.sink()(FakeRequestSpan(spans.ok, reused=True))
    assert [s.name for s in otel.spans()] == ["GET"]


def test_failed_request_and_failed_handshake(spans: RealSpans, otel: OTel) -> None:
    otel.sink()(FakeRequestSpan(spans.failed, outcome="error"))
    get = next(s for s in otel.spans() if s.name == "GET")
    setup = next(s for s in otel.spans() if s.name.startswith("HTTP connection_setup"))
    tls = next(s for s in otel.spans() if s.name.startswith("TLS"))
    assert get.status.status_code is StatusCode.ERROR
    assert setup.status.status_code is StatusCode.ERROR
    assert setup.attributes is not None
    assert setup.attributes["error.type"] == "ssl.SSLCertVerificationError"
    assert tls.status.status_code is StatusCode.ERROR


def test_unknown_kinds_become_one_internal_span(otel: OTel) -> None:
    class Other(FakeRequestSpan):
        kind = "x.verify"  # type: ignore[misc]

        def to_dict(self) -> dict[str, object]:
            return {**super().to_dict(), "tlstiming.kind": "x.verify", "tlstiming.phases": []}

    otel.sink()(Other(None))
    (exported,) = otel.spans()
    assert exported.name == "x.verify"
    assert exported.kind is SpanKind.INTERNAL


def test_import_without_opentelemetry_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "try:\n    import tlstiming.sinks.otel\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'tlstiming[otel]'" in out.stdout


def test_tlstiming_sinks_does_not_import_opentelemetry_or_structlog() -> None:
    code = (
        "import sys, tlstiming.sinks; "
        "print(sorted(m for m in ('structlog', 'opentelemetry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
