"""The OTel sink's histograms resolve milliseconds: names, buckets, units, bounded attributes."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from servers import PKI, LoopbackServer, connect, server_context

import tlstiming
from tlstiming._analysis.timeline import RawEvent
from tlstiming._wire.names import ENTER, EXIT
from tlstiming.sinks._otel_metrics import (
    BUCKETS,
    HANDSHAKE_DURATION,
    PHASE_DURATION,
    REQUEST_DURATION,
    Histograms,
)
from tlstiming.sinks.otel import OTelSink
from tlstiming.spans.build import build_span

_SH13 = b"\x02\x00\x00\x30\x03\x03" + bytes(32) + b"\x00\x2b\x00\x02\x03\x04"


def _handshake(total_ns: int, *, side: str = "client") -> tlstiming.HandshakeSpan:
    """A TLS 1.3 span lasting exactly ``total_ns``, its messages evenly spaced."""
    step = total_ns // 6
    kinds = [("write", 1, b""), ("read", 2, _SH13), ("read", 8, b""), ("read", 11, b"")]
    kinds += [("read", 15, b""), ("read", 20, b""), ("write", 20, b"")]
    events: list[RawEvent] = [(0, 0, "", ENTER, 0, b"")]
    for i, (direction, msg_type, data) in enumerate(kinds):
        t = min(i * step, total_ns)
        events.append((t, t, direction, 22, msg_type, data or bytes([msg_type, 0, 0, 0])))
    events.append((total_ns, total_ns, "", EXIT, 0, b""))
    return build_span(
        events,
        server_side=side == "server",
        end_ns=total_ns,
        server_hostname="api.test" if side == "client" else None,
        peer=("192.0.2.1", 8443),
        exc=None,
    )


def _points(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
        if isinstance(point, HistogramDataPoint)
    ]


@pytest.fixture
def provider_and_reader() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def test_2ms_and_100ms_land_in_different_buckets(
    provider_and_reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, reader = provider_and_reader
    sink = OTelSink(meter_provider=provider, metrics=True, traces=False, background=False)
    fast, slow = _handshake(2_000_000), _handshake(100_000_000)
    sink(fast)
    sink(slow)
    (both,) = _points(reader, HANDSHAKE_DURATION)
    assert tuple(both.explicit_bounds) == BUCKETS
    assert both.count == 2
    assert both.sum == pytest.approx(0.102)
    hit = [i for i, count in enumerate(both.bucket_counts) if count]
    assert hit == [bisect.bisect_left(BUCKETS, 0.002), bisect.bisect_left(BUCKETS, 0.1)]
    phases = _points(reader, PHASE_DURATION)
    assert phases and all(tuple(p.explicit_bounds) == BUCKETS for p in phases)


def test_buckets_span_sub_millisecond_to_ten_seconds() -> None:
    assert BUCKETS[0] < 0.001 and BUCKETS[-1] == 10.0
    assert list(BUCKETS) == sorted(set(BUCKETS))


def test_client_attributes_carry_server_port_server_side_nothing_client_chosen(
    provider_and_reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, reader = provider_and_reader
    sink = OTelSink(meter_provider=provider, metrics=True, traces=False, background=False)
    sink(_handshake(2_000_000))
    sink(_handshake(2_000_000, side="server"))
    attributes = [dict(p.attributes or {}) for p in _points(reader, HANDSHAKE_DURATION)]
    client = next(a for a in attributes if a["tls.side"] == "client")
    server = next(a for a in attributes if a["tls.side"] == "server")
    assert client["server.address"] == "api.test" and client["server.port"] == 8443
    assert set(server) <= {"tls.side", "tls.protocol.version", "error.type"}


def test_request_duration(provider_and_reader: tuple[MeterProvider, InMemoryMetricReader]) -> None:
    provider, reader = provider_and_reader
    histograms = Histograms(provider.get_meter("test"))
    histograms.record_request(
        {
            "duration_ns": 30_000_000,
            "http.request.method": "GET",
            "server.address": "api.test",
            "server.port": 443,
            "url.full": "https://api.test/secret?token=1",
            "http.response.status_code": 200,
        }
    )
    (point,) = _points(reader, REQUEST_DURATION)
    assert point.sum == pytest.approx(0.03)
    assert tuple(point.explicit_bounds) == BUCKETS
    assert dict(point.attributes or {}) == {
        "http.request.method": "GET",
        "server.address": "api.test",
        "server.port": 443,
        "http.response.status_code": 200,
    }


def test_older_api_without_advice_still_records() -> None:
    created: list[dict[str, Any]] = []

    class OldMeter:
        def create_histogram(self, name: str, unit: str = "", description: str = "") -> Any:
            created.append({"name": name, "unit": unit})
            return self

        def record(self, value: float, attributes: dict[str, Any]) -> None:
            pass

    histograms = Histograms(OldMeter())
    histograms.record_handshake({"duration_ns": 1, "tls.side": "server"}, None)
    assert [c["unit"] for c in created] == ["s", "s", "s"]


def test_a_real_handshake(
    pki: PKI, provider_and_reader: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = provider_and_reader
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(OTelSink(meter_provider=provider, metrics=True, traces=False, background=False))
    with LoopbackServer(server_context(pki.leaf)) as server:
        connect(client, server.address).close()
    (point,) = _points(reader, HANDSHAKE_DURATION)
    assert point.count == 1 and tuple(point.explicit_bounds) == BUCKETS
    attributes = dict(point.attributes or {})
    assert attributes["server.port"] == server.address[1]
    assert sum(point.bucket_counts[len(BUCKETS) - 1 :]) == 0  # well under ten seconds


def test_request_spans_through_the_sink(
    provider_and_reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    from sink_spans import FakeRequestSpan

    provider, reader = provider_and_reader
    sink = OTelSink(meter_provider=provider, metrics=True, traces=False, background=False)
    sink(FakeRequestSpan(None))
    sink(FakeRequestSpan(None, outcome="error"))
    points = {
        dict(p.attributes or {}).get("error.type"): p for p in _points(reader, REQUEST_DURATION)
    }
    assert set(points) == {None, "httpx.ReadTimeout"}
    ok = dict(points[None].attributes or {})
    assert ok == {
        "http.request.method": "GET",
        "server.address": "api.example.test",
        "server.port": 8443,
        "http.response.status_code": 200,
    }
    assert points[None].sum == pytest.approx(0.009)
    assert _points(reader, HANDSHAKE_DURATION) == []  # no connection opened: no handshake


def test_a_request_that_opened_a_connection_records_its_handshake(
    provider_and_reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    from sink_spans import FakeRequestSpan

    provider, reader = provider_and_reader
    sink = OTelSink(meter_provider=provider, metrics=True, traces=False, background=False)
    sink(FakeRequestSpan(_handshake(2_000_000)))
    sink(FakeRequestSpan(_handshake(2_000_000), reused=True))  # its handshake is not its own
    (point,) = _points(reader, HANDSHAKE_DURATION)
    assert point.count == 1 and point.sum == pytest.approx(0.002)
