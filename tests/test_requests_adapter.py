"""tlstiming.requests against real servers on loopback: spans, reuse, failures, verify=, proxies."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from http_servers import BODY, ConnectProxy, HTTP1Server
from servers import PKI, server_context
from test_httpx_transport import assert_tiles, names

import tlstiming
import tlstiming.requests as tr
from tlstiming.spans.request import RequestSpan

SETUP = ["pool_wait", "dns", "connect", "tls", "send_request", "wait_first_byte", "receive_body"]
REUSED = ["pool_wait", "send_request", "wait_first_byte", "receive_body"]


def rspan(obj: object) -> RequestSpan:
    span = tlstiming.span_of(obj)
    assert isinstance(span, RequestSpan), span
    return span


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
def ca_file(pki: PKI, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text(pki.ca_pem)
    return str(path)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fresh_then_reused(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext, recorder: tlstiming.SpanRecorder
) -> None:
    spans: list[RequestSpan] = []
    url = f"https://localhost:{server.port}/path?token=secret"
    with tr.Session(ssl_context=ctx, sinks=[spans.append]) as session:
        first, second = session.get(url), session.get(url)
    assert first.content == second.content == BODY
    a, b = rspan(first), rspan(second)
    assert spans == [a, b]
    assert tlstiming.span_of(first.raw) is a  # the urllib3 response
    assert tlstiming.span_of(first.request) is a  # the PreparedRequest
    for span in (a, b):
        assert_tiles(span)
        assert (span.status_code, span.http_version, span.outcome) == (200, "1.1", "ok")
        assert span.url == f"https://localhost:{server.port}/path"
    assert names(a) == SETUP
    assert names(b) == REUSED
    assert a.handshake is not None
    assert recorder.spans == (a.handshake,)  # linked: the very span the context delivered
    assert not a.reused
    assert b.reused
    assert b.idle_ns is not None
    assert b.idle_ns >= 0
    assert b.handshake is None
    assert b.connection is a.connection
    assert a.connection is not None
    assert a.connection.peer in (("127.0.0.1", server.port), ("::1", server.port))
    assert a.connection.attempts[-1].address in a.connection.resolved


def test_plain_http(pki: PKI) -> None:
    with HTTP1Server(None) as plain, tr.Session() as session:
        response = session.get(f"http://127.0.0.1:{plain.port}/")
    span = tlstiming.span_of(response)
    assert isinstance(span, RequestSpan)
    assert_tiles(span)
    assert names(span) == ["pool_wait", "dns", "connect", "send_request", *REUSED[2:]]


def test_stream_mode_ends_when_the_body_is_read(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    with tr.Session(ssl_context=ctx) as session:
        response = session.get(f"https://localhost:{server.port}/", stream=True)
        assert tlstiming.span_of(response) is None  # the body is still unread
        assert response.content == BODY
    span = tlstiming.span_of(response)
    assert isinstance(span, RequestSpan)
    assert span.phase("receive_body") is not None


def two_connections(session: requests.Session, url: str, **kwargs: Any) -> list[RequestSpan]:
    """Two requests on two connections of one pool: the first holds its connection."""
    held = session.get(url, stream=True, **kwargs)
    other = session.get(url, **kwargs)
    assert held.content == other.content == BODY
    spans = [tlstiming.span_of(held), tlstiming.span_of(other)]
    assert all(isinstance(s, RequestSpan) for s in spans)
    return spans  # type: ignore[return-value]


def test_verify_path_loads_per_connection_and_is_found(server: HTTP1Server, ca_file: str) -> None:
    with tr.Session() as session:
        first, second = two_connections(
            session, f"https://localhost:{server.port}/", verify=ca_file
        )
    assert not first.reused
    assert not second.reused
    assert first.handshake is not None
    assert second.handshake is not None
    one, two = first.handshake.context_stats, second.handshake.context_stats
    assert one is not None
    assert two is not None
    assert one.context_id == two.context_id  # one context per pool, as its TLS settings
    assert (one.handshake_index, two.handshake_index) == (1, 2)
    assert two.trust_loads_since_previous == 1  # requests' CA path, loaded again
    assert "tls.trust_store_per_connection" in {f.id for f in tlstiming.diagnose(second)}
    assert "tls.trust_store_per_connection" not in {f.id for f in tlstiming.diagnose(first)}


def test_one_ssl_context_loads_nothing_per_connection(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    with tr.Session(ssl_context=ctx) as session:
        _, second = two_connections(session, f"https://localhost:{server.port}/")
    assert second.handshake is not None
    stats = second.handshake.context_stats
    assert stats is not None
    assert stats.handshake_index == 2
    assert stats.trust_loads_since_previous == 0
    assert "tls.trust_store_per_connection" not in {f.id for f in tlstiming.diagnose(second)}


def normalized(exc: BaseException) -> tuple[type[BaseException], str]:
    return type(exc), re.sub(r"0x[0-9a-f]+", "0x", str(exc))


@pytest.mark.parametrize(
    ("path", "phase", "error", "kwargs"),
    [
        ("https://nothing.invalid/", "dns", requests.ConnectionError, {}),
        ("https://127.0.0.1:{closed}/", "connect", requests.ConnectionError, {}),
        ("https://localhost:{port}/", "tls", requests.exceptions.SSLError, {}),
        ("https://localhost:{port}/stall", "wait_first_byte", requests.ReadTimeout, "ca"),
    ],
    ids=["dns", "refused", "untrusted", "read-timeout"],
)
def test_failures_keep_requests_exceptions(
    path: str,
    phase: str,
    error: type[Exception],
    kwargs: Any,
    server: HTTP1Server,
    ca_file: str,
    unused_port: int,
) -> None:
    url = path.format(port=server.port, closed=unused_port)
    options: dict[str, Any] = {"timeout": 0.5, **({"verify": ca_file} if kwargs == "ca" else {})}
    spans: list[RequestSpan] = []
    with tr.Session(sinks=[spans.append]) as session, pytest.raises(error) as info:
        session.get(url, **options)
    with requests.Session() as plain, pytest.raises(error) as expected:
        plain.get(url, **options)
    assert normalized(info.value) == normalized(expected.value)
    span = tlstiming.span_of(info.value)
    assert spans == [span]
    assert isinstance(span, RequestSpan)
    failure: Any = info.value
    assert tlstiming.span_of(failure.request) is span
    assert_tiles(span)
    assert span.error is not None
    assert span.error.phase == phase
    assert span.error.type == f"{error.__module__}.{error.__qualname__}"
    if phase == "tls":
        assert span.handshake is not None
        assert span.handshake.outcome == "error"


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
def test_proxy_connect_tunnel(server: HTTP1Server, ca_file: str, pki: PKI, proxy_tls: bool) -> None:
    with ConnectProxy(server_context(pki.leaf) if proxy_tls else None) as proxy:
        scheme = "https" if proxy_tls else "http"
        proxies = {"https": f"{scheme}://localhost:{proxy.port}"}
        url = f"https://localhost:{server.port}/"
        with tr.Session() as session:  # verify= applies to the proxy's TLS too
            first = session.get(url, proxies=proxies, verify=ca_file)
            second = session.get(url, proxies=proxies, verify=ca_file)
        assert proxy.tunnels == [f"localhost:{server.port}"]  # one tunnel, reused
    a, b = rspan(first), rspan(second)
    assert_tiles(a)
    setup = ["proxy_tls", "proxy_connect"] if proxy_tls else ["proxy_connect"]
    assert names(a) == [*SETUP[:3], *setup, *SETUP[3:]]
    assert names(b) == REUSED
    assert a.handshake is not None
    assert a.handshake.outcome == "ok"
    assert a.connection is not None
    assert a.connection.proxied
    assert a.connection.peer is not None
    assert a.connection.peer[1] == proxy.port
    if proxy_tls:  # TLS-in-TLS; the proxy's own context is urllib3's, untimed
        assert a.phase("proxy_tls") is not None


def test_mount_keeps_the_adapters_settings(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    session = requests.Session()
    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=2, pool_maxsize=3))
    spans: list[RequestSpan] = []
    assert tr.mount(session, sinks=[spans.append], ssl_context=ctx) is session
    adapter = session.get_adapter(f"https://localhost:{server.port}/")
    assert isinstance(adapter, tr.TimedHTTPAdapter)
    assert adapter.max_retries.total == 2
    assert adapter._pool_maxsize == 3
    with session:
        assert session.get(f"https://localhost:{server.port}/").content == BODY
    assert len(spans) == 1


def test_a_plain_context_is_used_as_is(
    server: HTTP1Server, pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    plain = ssl.create_default_context(cadata=pki.ca_pem)
    with tr.Session(ssl_context=plain) as session:
        response = session.get(f"https://localhost:{server.port}/")
    span = tlstiming.span_of(response)
    assert isinstance(span, RequestSpan)
    assert span.phase("tls") is not None
    assert span.handshake is None
    assert "plain ssl.SSLContext" in caplog.text


def test_a_failing_sink_never_reaches_the_request(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(span: RequestSpan) -> None:
        raise RuntimeError("sink")

    with tr.Session(ssl_context=ctx, sinks=[broken]) as session:
        assert session.get(f"https://localhost:{server.port}/").content == BODY
    assert "sink" in caplog.text
    caplog.clear()  # the logged traceback holds the connection's frames (and its socket) open


def test_a_pickled_session_still_works(server: HTTP1Server, ca_file: str) -> None:
    import pickle

    with tr.Session() as session:
        copy = pickle.loads(pickle.dumps(session))
    with copy:
        response = copy.get(f"https://localhost:{server.port}/", verify=ca_file)
    assert rspan(response).status_code == 200
