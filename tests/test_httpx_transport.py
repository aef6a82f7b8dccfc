"""tlstiming.httpx against a real HTTPS server on loopback: sync, HTTP/1.1, failures, verify=."""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from http_servers import BODY, HTTP1Server
from servers import PKI, server_context

import tlstiming
import tlstiming.httpx as th
from tlstiming.spans.request import PHASE_NAMES, RequestSpan

ROOT = Path(__file__).resolve().parent.parent


def assert_tiles(span: RequestSpan) -> None:
    """Contiguous phases from start to end, summing to the duration, names known."""
    phases = span.phases
    assert phases[0].start_ns == span.start_ns
    assert phases[-1].end_ns == span.end_ns
    for before, after in itertools.pairwise(phases):
        assert before.end_ns == after.start_ns
    assert sum(p.duration_ns for p in phases) == span.duration_ns
    names = [p.name for p in phases]
    assert len(set(names)) == len(names)
    assert names == [n for n in PHASE_NAMES if n in names], names  # documented order
    data = span.to_dict()
    assert json.loads(json.dumps(data)) == data


def names(span: RequestSpan) -> list[str]:
    return [p.name for p in span.phases]


@pytest.fixture(scope="module")
def server(pki: PKI) -> Iterator[HTTP1Server]:
    with HTTP1Server(server_context(pki.leaf)) as s:
        yield s


@pytest.fixture
def ctx(pki: PKI, recorder: tlstiming.SpanRecorder) -> tlstiming.TimedSSLContext:
    context = tlstiming.create_default_context(cadata=pki.ca_pem)
    context.add_sink(recorder)
    return context


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def spans() -> list[RequestSpan]:
    return []


@pytest.fixture
def client(ctx: tlstiming.TimedSSLContext, spans: list[RequestSpan]) -> Iterator[httpx.Client]:
    with th.Client(verify=ctx, sinks=[spans.append]) as c:
        yield c


def test_fresh_then_reused(
    client: httpx.Client,
    server: HTTP1Server,
    spans: list[RequestSpan],
    recorder: tlstiming.SpanRecorder,
) -> None:
    url = f"https://localhost:{server.port}/path?token=secret"
    first = client.get(url)
    second = client.get(url)
    assert first.content == second.content == BODY
    a, b = th.request_span_of(first), th.request_span_of(second)
    assert a is not None
    assert b is not None
    assert spans == [a, b]
    for span in (a, b):
        assert_tiles(span)
        assert span.outcome == "ok"
        assert span.status_code == 200
        assert span.http_version == "1.1"
        assert span.method == "GET"
        assert span.url == f"https://localhost:{server.port}/path"
        assert "secret" not in json.dumps(span.to_dict()) + repr(span)
    assert names(a) == [
        "pool_wait",
        "dns",
        "connect",
        "tls",
        "send_request",
        "wait_first_byte",
        "receive_body",
    ]
    assert names(b) == ["pool_wait", "send_request", "wait_first_byte", "receive_body"]
    # The handshake span is the very object TimedSSLContext delivered: linked, not copied.
    assert a.handshake is not None
    assert recorder.spans == (a.handshake,)
    assert a.handshake.outcome == "ok"
    assert a.handshake.facts.alpn_offered == ("http/1.1",)  # what httpcore really offered
    assert not a.reused
    assert a.idle_ns is None
    assert b.reused
    assert b.handshake is None
    assert b.idle_ns is not None
    assert b.idle_ns >= 0
    assert b.connection is a.connection
    assert b.connection is not None
    assert b.connection.opened_by == a.span_id
    assert b.connection.handshake_id == a.handshake.span_id
    assert b.start_ns > a.end_ns
    conn = a.connection
    assert conn is not None
    assert conn.peer in (("127.0.0.1", server.port), ("::1", server.port))
    assert conn.attempts[-1].error_type is None
    assert set(conn.resolved) >= {conn.attempts[-1].address}
    data = b.to_dict()
    assert data["tlstiming.handshake"] is None
    assert data["tlstiming.connection.handshake_id"] == a.handshake.span_id
    assert a.to_dict()["tlstiming.handshake"]["span.id"] == a.handshake.span_id


def test_span_of_dispatch_and_stream_mode(client: httpx.Client, server: HTTP1Server) -> None:
    with client.stream("GET", f"https://localhost:{server.port}/") as response:
        assert th.request_span_of(response) is None  # not ended: the body is still unread
        assert response.read() == BODY
    span = th.request_span_of(response)
    assert span is not None
    assert span.phase("receive_body") is not None
    if hasattr(tlstiming, "RequestSpan"):  # once the lead wires span_of
        assert cast(object, tlstiming.span_of(response)) is span


def test_callers_trace_extension_still_sees_every_event(
    client: httpx.Client, server: HTTP1Server
) -> None:
    events: list[str] = []
    client.get(
        f"https://localhost:{server.port}/",
        extensions={"trace": lambda name, info: events.append(name)},
    )
    assert "connection.connect_tcp.started" in events
    assert "connection.start_tls.complete" in events
    assert "http11.response_closed.complete" in events


def plain_error(url: str, pki: PKI, **kwargs: Any) -> BaseException:
    with (
        httpx.Client(verify=ssl.create_default_context(cadata=pki.ca_pem), **kwargs) as c,
        pytest.raises(httpx.HTTPError) as info,
    ):
        c.get(url)
    return info.value


@pytest.mark.parametrize(
    ("path", "failed_phase", "error"),
    [
        ("https://nothing.invalid/", "dns", httpx.ConnectError),
        ("https://127.0.0.1:{closed}/", "connect", httpx.ConnectError),
        ("https://localhost:{port}/stall", "wait_first_byte", httpx.ReadTimeout),
        ("https://localhost:{port}/close", "wait_first_byte", httpx.RemoteProtocolError),
        ("https://localhost:{port}/cut", "receive_body", httpx.RemoteProtocolError),
    ],
    ids=["dns", "refused", "read-timeout", "closed-before-response", "closed-mid-body"],
)
def test_failures_yield_one_span_with_the_phase(
    path: str,
    failed_phase: str,
    error: type[Exception],
    server: HTTP1Server,
    ctx: tlstiming.TimedSSLContext,
    pki: PKI,
    unused_port: int,
) -> None:
    url = path.format(port=server.port, closed=unused_port)
    spans: list[RequestSpan] = []
    with (
        th.Client(verify=ctx, sinks=[spans.append], timeout=0.5) as c,
        pytest.raises(error) as info,
    ):
        c.get(url)
    expected = plain_error(url, pki, timeout=0.5)
    assert type(info.value) is type(expected)
    assert str(info.value) == str(expected)
    assert len(spans) == 1
    span = spans[0]
    assert th.request_span_of(info.value.request) is span  # type: ignore[attr-defined]
    assert_tiles(span)
    assert span.error is not None
    assert span.error.phase == failed_phase
    assert span.error.type == f"httpx.{type(info.value).__name__}"
    assert span.error.message == str(info.value)


def test_tls_failure_links_the_failed_handshake(
    server: HTTP1Server, pki: PKI, recorder: tlstiming.SpanRecorder
) -> None:
    wrong = tlstiming.create_default_context(cadata=pki.other_ca.cert_pem.bytes().decode())
    wrong.add_sink(recorder)
    spans: list[RequestSpan] = []
    with th.Client(verify=wrong, sinks=[spans.append]) as c, pytest.raises(httpx.ConnectError):
        c.get(f"https://localhost:{server.port}/")
    (span,) = spans
    assert span.error is not None
    assert span.error.phase == "tls"
    assert span.handshake is recorder.spans[0]
    assert span.handshake.error is not None
    assert span.handshake.error.type == "ssl.SSLCertVerificationError"


def test_connect_retry_is_one_phase(ctx: tlstiming.TimedSSLContext, unused_port: int) -> None:
    spans: list[RequestSpan] = []
    transport = th.TimedTransport(verify=ctx, retries=1, sinks=[spans.append])
    with httpx.Client(transport=transport) as c, pytest.raises(httpx.ConnectError):
        c.get(f"https://127.0.0.1:{unused_port}/")
    (span,) = spans
    assert names(span) == ["pool_wait", "retry", "dns", "connect"]
    assert span.connection is not None
    assert len(span.connection.attempts) == 2  # every address tried, both attempts


def test_verify_policies(
    pki: PKI, server: HTTP1Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with th.Client() as c:  # verify=True, trust_env: SSL_CERT_FILE, as httpx does
        span = th.request_span_of(c.get(f"https://localhost:{server.port}/"))
    assert span is not None
    assert span.handshake is not None
    monkeypatch.delenv("SSL_CERT_FILE")
    assert isinstance(th.timed_ssl_context(False), tlstiming.TimedSSLContext)
    assert th.timed_ssl_context(False).verify_mode == ssl.CERT_NONE
    with pytest.warns(DeprecationWarning, match="verify=<str>"):
        assert isinstance(th.timed_ssl_context(str(ca)), tlstiming.TimedSSLContext)


def test_plain_context_is_used_as_is_and_logged_about_once(
    pki: PKI, server: HTTP1Server, caplog: pytest.LogCaptureFixture
) -> None:
    plain = ssl.create_default_context(cadata=pki.ca_pem)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as plain httpx: no warning for verify=<SSLContext>
        with caplog.at_level(logging.WARNING, logger="tlstiming"):
            transport = th.TimedTransport(verify=plain)
            th.TimedTransport(verify=plain)
    assert [r.message.split(";")[0] for r in caplog.records] == [
        "tlstiming: a plain ssl.SSLContext was given"
    ]  # once per context
    assert transport.ssl_context is plain
    with httpx.Client(transport=transport) as c:
        span = th.request_span_of(c.get(f"https://localhost:{server.port}/"))
    assert span is not None
    assert span.handshake is None
    assert "tls" in names(span)  # still timed from the outside


def test_sinks_errors_never_reach_the_request(
    client: httpx.Client, server: HTTP1Server, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(span: RequestSpan) -> None:
        raise RuntimeError("sink broke")

    transport = th.TimedTransport(verify=client._transport.ssl_context, sinks=[broken])  # type: ignore[attr-defined]
    with httpx.Client(transport=transport) as c:
        assert c.get(f"https://localhost:{server.port}/").status_code == 200
    assert "sink broke" in caplog.text


def test_import_tlstiming_does_not_import_httpx_support() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tlstiming; print('tlstiming.httpx' in sys.modules, 'httpcore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _table_keys(heading: str) -> list[str]:
    text = (ROOT / "docs" / "schema.md").read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


def test_schema_doc_lists_exactly_the_request_keys(
    client: httpx.Client, server: HTTP1Server
) -> None:
    span = th.request_span_of(client.get(f"https://localhost:{server.port}/"))
    assert span is not None
    data = span.to_dict()
    assert _table_keys("Request span keys") == list(data)
    assert _table_keys("Connect attempt objects") == list(data["tlstiming.connection.attempts"][0])


def test_every_request_phase_is_documented() -> None:
    text = (ROOT / "docs" / "httpx.md").read_text()
    for name in PHASE_NAMES:
        assert f"| `{name}` |" in text, name


def test_a_context_built_from_verify_links_its_failed_handshake(
    server: HTTP1Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify=True builds the context (certifi): the test CA is not in it."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    spans: list[RequestSpan] = []
    with th.Client(sinks=[spans.append]) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            client.get(f"https://localhost:{server.port}/")
    (span,) = spans
    assert span.error is not None
    assert span.error.phase == "tls"
    assert span.handshake is not None
    assert span.handshake.outcome == "error"
    assert span.handshake.error is not None
    assert span.handshake.error.type == "ssl.SSLCertVerificationError"
    assert span.handshake.error.message in str(caught.value)
