"""Async clients, HTTP/2 (hypercorn) and CONNECT proxies, against real loopback servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from http_servers import BODY, ConnectProxy, H2Server, HTTP1Server
from servers import PKI, server_context
from test_httpx_transport import assert_tiles, names

import tlstiming
import tlstiming.httpx as th
from tlstiming.spans.request import RequestSpan

pytest.importorskip("h2", reason="HTTP/2 tests need the http2 extra")
pytest.importorskip("hypercorn", reason="HTTP/2 tests need hypercorn")


@pytest.fixture(scope="module")
def h1(pki: PKI) -> Iterator[HTTP1Server]:
    with HTTP1Server(server_context(pki.leaf)) as s:
        yield s


@pytest.fixture(scope="module")
def h2(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[H2Server]:
    directory: Path = tmp_path_factory.mktemp("hypercorn")
    pki.leaf.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    pki.leaf.private_key_pem.write_to_path(str(directory / "key.pem"))
    with H2Server(directory / "cert.pem", directory / "key.pem") as s:
        yield s


@pytest.fixture
def ctx(pki: PKI) -> tlstiming.TimedSSLContext:
    return tlstiming.create_default_context(cadata=pki.ca_pem)


def test_async_http1_fresh_then_reused(h1: HTTP1Server, ctx: tlstiming.TimedSSLContext) -> None:
    spans: list[RequestSpan] = []
    events: list[str] = []

    async def trace(name: str, info: object) -> None:
        events.append(name)

    async def main() -> None:
        async with th.AsyncClient(verify=ctx, sinks=[spans.append]) as client:
            for _ in range(2):
                response = await client.get(
                    f"https://localhost:{h1.port}/", extensions={"trace": trace}
                )
                assert response.content == BODY

    asyncio.run(main())
    first, second = spans
    for span in spans:
        assert_tiles(span)
    assert names(first)[:5] == ["pool_wait", "dns", "connect", "tls", "send_request"]
    assert first.handshake is not None
    assert first.handshake.outcome == "ok"
    assert second.reused
    assert second.connection is first.connection
    assert "connection.start_tls.complete" in events  # the caller's async trace still runs


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_http2_multiplexed_on_one_connection(
    h2: H2Server, ctx: tlstiming.TimedSSLContext, mode: str
) -> None:
    spans: list[RequestSpan] = []
    url = f"https://localhost:{h2.port}/"
    if mode == "sync":
        with th.Client(verify=ctx, http2=True, sinks=[spans.append]) as client:
            for _ in range(2):
                assert client.get(url).content == BODY
    else:

        async def main() -> None:
            async with th.AsyncClient(verify=ctx, http2=True, sinks=[spans.append]) as client:
                await client.get(url)
                responses = await asyncio.gather(*(client.get(url) for _ in range(4)))
                assert all(r.http_version == "HTTP/2" for r in responses)

        asyncio.run(main())
    opener = spans[0]
    assert opener.http_version == "2"
    assert opener.alpn == "h2"
    assert opener.handshake is not None
    assert opener.handshake.facts.alpn_offered == ("http/1.1", "h2")  # as on the wire
    assert not opener.reused
    for span in spans:
        assert_tiles(span)
        assert span.http_version == "2"
        assert span.connection is opener.connection
    assert all(s.reused for s in spans[1:])


def test_http2_prior_knowledge_and_h1_fallback(
    h1: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    spans: list[RequestSpan] = []
    with th.Client(verify=ctx, http2=True, sinks=[spans.append]) as client:
        client.get(f"https://localhost:{h1.port}/")  # offers h2, the server picks nothing: 1.1
    (span,) = spans
    assert span.http_version == "1.1"
    assert span.handshake is not None
    assert span.handshake.facts.alpn_offered == ("http/1.1", "h2")


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connect_tunnel(
    h1: HTTP1Server, ctx: tlstiming.TimedSSLContext, pki: PKI, proxy_tls: bool, mode: str
) -> None:
    spans: list[RequestSpan] = []
    with ConnectProxy(server_context(pki.leaf) if proxy_tls else None) as proxy:
        if proxy_tls:
            proxy_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
            proxy_arg: object = httpx.Proxy(
                f"https://localhost:{proxy.port}", ssl_context=proxy_ctx
            )
        else:
            proxy_arg = f"http://127.0.0.1:{proxy.port}"
        url = f"https://localhost:{h1.port}/?q=1"
        if mode == "sync":
            with th.Client(verify=ctx, proxy=proxy_arg, sinks=[spans.append]) as client:
                client.get(url)
                client.get(url)
        else:

            async def main() -> None:
                async with th.AsyncClient(
                    verify=ctx, proxy=proxy_arg, sinks=[spans.append]
                ) as client:
                    await client.get(url)
                    await client.get(url)

            asyncio.run(main())
        assert proxy.tunnels == [f"localhost:{h1.port}"]  # one tunnel, reused
    first, second = spans
    assert_tiles(first)
    expected = ["pool_wait", "dns", "connect"]
    expected += ["proxy_tls", "proxy_connect"] if proxy_tls else ["proxy_connect"]
    expected += ["tls", "send_request", "wait_first_byte", "receive_body"]
    assert names(first) == expected
    assert first.connection is not None
    assert first.connection.proxied
    assert first.connection.peer == ("127.0.0.1", proxy.port)
    assert first.handshake is not None
    assert first.handshake.server_hostname == "localhost"
    if proxy_tls:
        assert first.proxy_handshake is not None
        assert first.proxy_handshake is not first.handshake
    else:
        assert first.proxy_handshake is None
    assert second.reused
    assert names(second) == ["pool_wait", "send_request", "wait_first_byte", "receive_body"]


def test_async_failures_keep_httpx_exceptions(ctx: tlstiming.TimedSSLContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def attempt(client: httpx.AsyncClient, url: str) -> BaseException:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get(url)
        return info.value

    async def main() -> list[tuple[str, str]]:
        out = []
        async with th.AsyncClient(verify=ctx) as timed, httpx.AsyncClient(verify=ctx) as plain:
            for url in (f"https://127.0.0.1:{port}/", "https://nothing.invalid/"):
                a, b = await attempt(timed, url), await attempt(plain, url)
                assert str(a) == str(b)
                span = th.request_span_of(a.request)  # type: ignore[attr-defined]
                assert span is not None
                assert span.error is not None
                out.append((span.error.phase, span.error.message))
        return out

    (refused, _), (unresolved, _) = asyncio.run(main())
    assert (refused, unresolved) == ("connect", "dns")
