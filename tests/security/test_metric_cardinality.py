"""No client can create OpenTelemetry metric series at will (issue #10, item 4).

A metric series is kept for every distinct set of attribute values. On the
server side the SNI name and the ALPN offer are the client's free choice, so
they are never metric attributes: 200 handshakes with 200 random SNI names
make one series per outcome and version, on both hot paths.
"""

from __future__ import annotations

import contextlib
import random
import ssl
import string
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from servers import PKI, LoopbackServer, connect, server_context

import tlstiming
from tlstiming.sinks.otel import OTelSink

HANDSHAKES = 200


@pytest.fixture
def metrics() -> Iterator[tuple[OTelSink, InMemoryMetricReader]]:
    """A metrics-only sink that exports on the handshake's thread, and its reader."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield OTelSink(meter_provider=provider, traces=False, metrics=True, background=False), reader
    provider.shutdown()


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


def _random_name(rng: random.Random) -> str:
    label = "".join(rng.choices(string.ascii_lowercase + string.digits, k=16))
    return f"{label}.attacker.example"


def _client(pki: PKI, index: int) -> ssl.SSLContext:
    """Any client: verifying nothing, half of them capped at TLS 1.2, some with a wrong CA."""
    if index % 10 == 9:  # rejects the server's certificate: a failed handshake
        context = ssl.create_default_context(cadata=pki.other_ca.cert_pem.bytes().decode())
        context.check_hostname = False
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if index % 2:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([f"x-{index}", "h2"])
    return context


@pytest.mark.usefixtures("implementation")
def test_random_sni_names_make_no_server_series(
    pki: PKI, metrics: tuple[OTelSink, InMemoryMetricReader]
) -> None:
    sink, reader = metrics
    recorder = tlstiming.SpanRecorder(maxlen=HANDSHAKES)
    server_ctx: Any = server_context(pki.leaf, factory=tlstiming.TimedSSLContext)
    server_ctx.add_sink(recorder)
    server_ctx.add_sink(sink)
    rng = random.Random(10)
    names = [_random_name(rng) for _ in range(HANDSHAKES)]
    with LoopbackServer(server_ctx) as server:
        for index, name in enumerate(names):
            with contextlib.suppress(ssl.SSLError):
                connect(_client(pki, index), server.address, name).close()
            server.next_result()
    spans = recorder.spans
    assert len(spans) == HANDSHAKES
    assert {s.facts.sni for s in spans} == set(names)  # the spans keep every name
    combinations = {(s.facts.protocol_version, s.error.type if s.error else None) for s in spans}
    assert len(combinations) == 3  # 1.3 ok, 1.2 ok, and failures

    totals = _points(reader, "tlstiming.handshake.duration")
    assert sum(p.count for p in totals) == HANDSHAKES
    assert len(totals) == len(combinations)
    shown = {tuple(sorted(dict(p.attributes or {}).items())) for p in totals}
    assert {
        (("error.type", error),) * (error is not None)
        + (("tls.protocol.version", version), ("tls.side", "server"))
        for version, error in combinations
    } == shown

    phases = _points(reader, "tlstiming.handshake.phase.duration")
    phase_names = {p.name for s in spans for p in s.phases}
    assert len(phases) <= len(combinations) * len(phase_names)
    for point in phases:
        assert set(dict(point.attributes or {})) <= {
            "tls.side",
            "tls.protocol.version",
            "error.type",
            "tls.handshake.phase",
        }


class _FakeSpan:
    """What the sink reads of a handshake span: its dict."""

    kind = "tls.handshake"
    span_id = "0" * 16
    outcome = "ok"
    duration_ns = 1_000_000

    def __init__(self, **data: Any) -> None:
        self._data = {
            "tlstiming.kind": "tls.handshake",
            "duration_ns": 1_000_000,
            "tlstiming.phases": [],
            **data,
        }

    def to_dict(self) -> dict[str, Any]:
        return self._data


def test_a_peer_chosen_version_is_recorded_as_other(
    metrics: tuple[OTelSink, InMemoryMetricReader],
) -> None:
    """A hostile server's ServerHello can claim any of 65536 versions: one series."""
    sink, reader = metrics
    for code in range(0x7F00, 0x7F40):
        sink(_FakeSpan(**{"tls.side": "client", "tls.protocol.version": f"unknown(0x{code:04X})"}))
    sink(_FakeSpan(**{"tls.side": "client", "tls.protocol.version": "1.3"}))
    versions = {
        dict(p.attributes or {})["tls.protocol.version"]
        for p in _points(reader, "tlstiming.handshake.duration")
    }
    assert versions == {"other", "1.3"}


def test_the_client_side_keeps_the_name_it_asked_for(
    metrics: tuple[OTelSink, InMemoryMetricReader],
) -> None:
    """A client's ``server.address`` is its own choice (``server_hostname``), not the peer's."""
    sink, reader = metrics
    sink(_FakeSpan(**{"tls.side": "client", "server.address": "api.example", "tls.sni": "x"}))
    sink(_FakeSpan(**{"tls.side": "server", "server.address": "chosen.by.client"}))
    attributes = [dict(p.attributes or {}) for p in _points(reader, "tlstiming.handshake.duration")]
    assert sorted(attributes, key=str) == [
        {"server.address": "api.example", "tls.side": "client"},
        {"tls.side": "server"},
    ]
