"""A TLS 1.3 client-auth span waits for the server's verdict; a read timeout is no verdict."""

from __future__ import annotations

import pytest
from conftest import ServeFactory
from servers import PKI, connect, server_context

import tlstiming
from tlstiming import SpanRecorder

pytestmark = pytest.mark.usefixtures("implementation")


def test_a_read_timeout_before_the_verdict_is_not_a_failure(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    import ssl

    server = serve(
        server_context(pki.leaf, maximum_version=ssl.TLSVersion.TLSv1_3, client_ca=pki.ca),
        mode="echo",  # silent until the client writes
    )
    context = tlstiming.create_default_context(cadata=pki.ca_pem)
    pki.client.configure_cert(context)
    context.add_sink(recorder)
    with connect(context, server.address) as tls:
        tls.settimeout(0.05)
        with pytest.raises(TimeoutError):
            tls.recv(1)
        assert len(recorder.spans) == 0  # still waiting for the verdict
        tls.settimeout(10)
        tls.sendall(b"x")
        assert tls.recv(1) == b"x"
    spans: list[tlstiming.HandshakeSpan] = list(recorder.spans)
    assert len(spans) == 1
    assert spans[0].outcome == "ok"
    assert spans[0].error is None
