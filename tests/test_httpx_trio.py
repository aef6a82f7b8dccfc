"""Async clients under trio: httpcore's own trio backend, same results and errors as plain httpx."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from http_servers import BODY, HTTP1Server
from servers import PKI, server_context
from test_httpx_transport import assert_tiles, names

import tlstiming
import tlstiming.httpx as th
from tlstiming.spans.request import RequestSpan

trio = pytest.importorskip("trio", reason="the trio tests need trio")


@pytest.fixture(scope="module")
def h1(pki: PKI) -> Iterator[HTTP1Server]:
    with HTTP1Server(server_context(pki.leaf)) as s:
        yield s


def test_trio_request_spans(h1: HTTP1Server, pki: PKI) -> None:
    spans: list[RequestSpan] = []
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)

    async def main() -> None:
        async with th.AsyncClient(verify=ctx, sinks=[spans.append]) as client:
            for _ in range(2):
                response = await client.get(f"https://localhost:{h1.port}/")
                assert response.content == BODY

    trio.run(main)
    first, second = spans
    assert not first.reused
    assert second.reused
    assert first.handshake is not None
    assert first.handshake.outcome == "ok"
    assert "dns" in names(first)
    assert "tls" in names(first)
    for span in spans:
        assert_tiles(span)


def _refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _error(client_class: type[httpx.AsyncClient], url: str) -> BaseException:
    async def main() -> None:
        async with client_class() as client:
            await client.get(url)

    with pytest.raises(httpx.HTTPError) as caught:
        trio.run(main)
    return caught.value


def test_trio_errors_are_httpxs_own() -> None:
    url = f"https://127.0.0.1:{_refused_port()}/"
    plain = _error(httpx.AsyncClient, url)
    timed = _error(th.AsyncClient, url)
    assert type(timed) is type(plain)
    assert str(timed) == str(plain)
