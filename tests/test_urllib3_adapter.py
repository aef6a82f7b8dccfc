"""tlstiming.urllib3 against real servers on loopback: spans, reuse, retries, failures, proxies."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from http_servers import BODY, ConnectProxy, HTTP1Server
from servers import PKI, server_context
from test_httpx_transport import assert_tiles, names
from test_requests_adapter import REUSED, SETUP, normalized, rspan

import tlstiming
import tlstiming.urllib3 as tu
from tlstiming.spans.request import RequestSpan


@pytest.fixture(scope="module")
def server(pki: PKI) -> Iterator[HTTP1Server]:
    with HTTP1Server(server_context(pki.leaf)) as s:
        yield s


@pytest.fixture
def ctx(pki: PKI) -> tlstiming.TimedSSLContext:
    return tlstiming.create_default_context(cadata=pki.ca_pem)


def test_fresh_then_reused(server: HTTP1Server, ctx: tlstiming.TimedSSLContext) -> None:
    spans: list[RequestSpan] = []
    url = f"https://localhost:{server.port}/p?q=secret"
    with tu.PoolManager(ssl_context=ctx, sinks=(spans.append,)) as pm:
        first, second = pm.request("GET", url), pm.request("GET", url)
    assert first.data == second.data == BODY
    a, b = rspan(first), rspan(second)
    assert spans == [a, b]
    for span in (a, b):
        assert_tiles(span)
        assert (span.status_code, span.http_version, span.url) == (
            200,
            "1.1",
            f"https://localhost:{server.port}/p",
        )
    assert names(a) == SETUP
    assert names(b) == REUSED
    assert a.handshake is not None
    assert a.handshake.outcome == "ok"
    assert b.reused
    assert b.connection is a.connection


def test_stream_mode_ends_at_release(server: HTTP1Server, ctx: tlstiming.TimedSSLContext) -> None:
    with tu.PoolManager(ssl_context=ctx) as pm:
        response = pm.request("GET", f"https://localhost:{server.port}/", preload_content=False)
        assert tlstiming.span_of(response) is None
        assert response.read() == BODY
        response.release_conn()
    assert rspan(response).phase("receive_body") is not None


def test_default_context_is_a_timed_twin_of_urllib3s(server: HTTP1Server, pki: PKI) -> None:
    timed = tu.timed_urllib3_context()
    plain = urllib3.util.create_urllib3_context()
    for name in ("minimum_version", "maximum_version", "options", "verify_flags"):
        assert getattr(timed, name) == getattr(plain, name), name
    assert (timed.verify_mode, timed.check_hostname) == (plain.verify_mode, plain.check_hostname)
    assert timed.hostname_checks_common_name == plain.hostname_checks_common_name
    assert timed.post_handshake_auth == plain.post_handshake_auth
    assert [c["name"] for c in timed.get_ciphers()] == [c["name"] for c in plain.get_ciphers()]


def test_ca_certs_load_per_connection_on_one_pool_context(
    server: HTTP1Server, pki: PKI, tmp_path: Any
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(pki.ca_pem)
    url = f"https://localhost:{server.port}/"
    with tu.PoolManager(ca_certs=str(ca), maxsize=2) as pm:
        held = pm.request("GET", url, preload_content=False)
        other = pm.request("GET", url)
        assert held.read() == other.data == BODY
        held.release_conn()
    second = rspan(other)
    assert second.handshake is not None
    stats = second.handshake.context_stats
    assert stats is not None
    assert (stats.handshake_index, stats.trust_loads_since_previous) == (2, 1)
    assert "tls.trust_store_per_connection" in {f.id for f in tlstiming.diagnose(second)}


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("path", "phase", "error"),
    [
        ("https://nothing.invalid/", "dns", urllib3.exceptions.NameResolutionError),
        ("https://127.0.0.1:{closed}/", "connect", urllib3.exceptions.NewConnectionError),
        ("https://localhost:{port}/", "tls", urllib3.exceptions.SSLError),
        ("https://localhost:{port}/stall", "wait_first_byte", urllib3.exceptions.ReadTimeoutError),
    ],
    ids=["dns", "refused", "untrusted", "read-timeout"],
)
def test_failures_keep_urllib3s_exceptions(
    path: str,
    phase: str,
    error: type[Exception],
    server: HTTP1Server,
    unused_port: int,
    pki: PKI,
    tmp_path: Any,
) -> None:
    url = path.format(port=server.port, closed=unused_port)
    options: dict[str, Any] = {"retries": False, "timeout": 0.5}
    trust: dict[str, Any] = {}
    if phase == "wait_first_byte":
        (tmp_path / "ca.pem").write_text(pki.ca_pem)
        trust["ca_certs"] = str(tmp_path / "ca.pem")
    spans: list[RequestSpan] = []
    with tu.PoolManager(sinks=(spans.append,), **trust) as pm, pytest.raises(error) as info:
        pm.request("GET", url, **options)
    with urllib3.PoolManager(**trust) as plain, pytest.raises(error) as expected:
        plain.request("GET", url, **options)
    assert normalized(info.value) == normalized(expected.value)
    span = rspan(info.value)
    assert spans == [span]
    assert_tiles(span)
    assert span.error is not None
    assert span.error.phase == phase
    if phase == "tls":
        assert span.handshake is not None
        assert span.handshake.outcome == "error"


def test_retries_are_one_span_with_every_attempt(unused_port: int) -> None:
    url = f"http://127.0.0.1:{unused_port}/"
    with tu.PoolManager() as pm, pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        pm.request("GET", url, retries=urllib3.Retry(2, backoff_factor=0))
    span = rspan(info.value)
    assert_tiles(span)
    assert span.phase("retry") is not None
    assert span.connection is not None
    assert len(span.connection.attempts) == 3
    assert span.error is not None
    assert span.error.type == "urllib3.exceptions.MaxRetryError"


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
def test_proxy_tunnel(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext, pki: PKI, proxy_tls: bool
) -> None:
    with ConnectProxy(server_context(pki.leaf) if proxy_tls else None) as proxy:
        scheme = "https" if proxy_tls else "http"
        proxy_ctx = tlstiming.create_default_context(cadata=pki.ca_pem) if proxy_tls else None
        url = f"https://localhost:{server.port}/"
        with tu.proxy_from_url(
            f"{scheme}://localhost:{proxy.port}", ssl_context=ctx, proxy_ssl_context=proxy_ctx
        ) as pm:
            first, second = pm.request("GET", url), pm.request("GET", url)
        assert proxy.tunnels == [f"localhost:{server.port}"]
    a, b = rspan(first), rspan(second)
    assert_tiles(a)
    setup = ["proxy_tls", "proxy_connect"] if proxy_tls else ["proxy_connect"]
    assert names(a) == [*SETUP[:3], *setup, *SETUP[3:]]
    assert names(b) == REUSED
    assert a.handshake is not None
    assert a.handshake.outcome == "ok"  # through the tunnel (TLS in TLS with an HTTPS proxy)
    if proxy_tls:
        assert a.proxy_handshake is not None
        assert a.proxy_handshake is not a.handshake
    else:
        assert a.proxy_handshake is None


def test_plain_http_and_a_plain_context(server: HTTP1Server, pki: PKI) -> None:
    plain = ssl.create_default_context(cadata=pki.ca_pem)
    with HTTP1Server(None) as http, tu.PoolManager(ssl_context=plain) as pm:
        insecure = pm.request("GET", f"http://127.0.0.1:{http.port}/")
        secure = pm.request("GET", f"https://localhost:{server.port}/")
    assert names(rspan(insecure)) == ["pool_wait", "dns", "connect", *REUSED[1:]]
    assert rspan(secure).phase("tls") is not None
    assert rspan(secure).handshake is None  # a plain context is used as is


def test_global_sinks_receive_request_spans(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    seen: list[object] = []
    tlstiming.subscribe(seen.append)
    try:
        with tu.PoolManager(ssl_context=ctx) as pm:
            response = pm.request("GET", f"https://localhost:{server.port}/")
    finally:
        tlstiming.unsubscribe(seen.append)
    span = rspan(response)
    assert span in seen
    assert span.handshake in seen  # the handshake span reaches them too
