"""Records and per-message CPU on the timeline of real handshakes."""

from __future__ import annotations

import ssl

import pytest
from conftest import ServeFactory
from servers import PKI, connect, server_context

from tlstiming import SpanRecorder, TimedSSLContext


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_records_precede_their_messages(
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
    version: ssl.TLSVersion,
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=version))
    connect(client_ctx, server.address).close()
    (span,) = recorder.spans
    received = [r for r in span.records if r.direction == "received"]
    handshake = [m for m in span.messages if m.direction == "received"]
    assert received[0].content_type == "handshake"
    assert not received[0].encrypted  # the ServerHello travels in the clear
    for message in handshake:
        # a message is seen only after the header of the record carrying it
        assert any(r.t_ns <= message.t_ns for r in received)
    times = [r.t_ns for r in span.records]
    assert times == sorted(times)
    assert all(r.length > 0 for r in span.records)
    if version is ssl.TLSVersion.TLSv1_3:
        assert any(r.encrypted and r.content_type == "handshake" for r in received)
    else:
        assert not any(r.encrypted for r in span.records)
    cpu = [m.cpu_ns for m in span.messages if m.content_type != "change_cipher_spec"]
    assert all(c is not None for c in cpu)
    assert cpu == sorted(cpu)  # type: ignore[type-var]
    assert span.cpu_ns is not None
    assert max(c for c in cpu if c is not None) <= span.cpu_ns
