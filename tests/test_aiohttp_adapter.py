"""tlstiming.aiohttp against real HTTPS servers on loopback: phases, reuse, failures, span_of."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from http_servers import HTTP1Server
from servers import PKI, server_context
from test_httpx_transport import assert_tiles, names

import tlstiming
import tlstiming.aiohttp as ta
from tlstiming.spans.request import RequestSpan


@pytest.fixture(scope="module")
def server(pki: PKI) -> Iterator[HTTP1Server]:
    with HTTP1Server(server_context(pki.leaf)) as s:
        yield s


@pytest.fixture
def ctx(client_ctx: tlstiming.TimedSSLContext) -> tlstiming.TimedSSLContext:
    return client_ctx


def url(port: int, path: str = "/", host: str = "localhost") -> str:
    return f"https://{host}:{port}{path}"


async def get_all(session: aiohttp.ClientSession, *urls: str) -> list[aiohttp.ClientResponse]:
    responses = []
    for u in urls:
        async with session.get(u) as response:
            await response.read()
        responses.append(response)
    return responses


def test_fresh_then_reused(server: HTTP1Server, ctx: tlstiming.TimedSSLContext) -> None:
    spans: list[RequestSpan] = []

    async def main() -> list[aiohttp.ClientResponse]:
        async with ta.ClientSession(ssl=ctx, sinks=[spans.append]) as session:
            return await get_all(session, url(server.port), url(server.port))

    first, second = asyncio.run(main())
    assert [tlstiming.span_of(first), tlstiming.span_of(second)] == spans
    fresh, reused = spans
    for span in spans:
        assert_tiles(span)
        assert span.outcome == "ok" and span.status_code == 200 and span.http_version == "1.1"
        assert span.url == f"https://localhost:{server.port}/"
    assert names(fresh) == [
        *("pool_wait", "dns", "connect", "tls", "send_request"),
        *("wait_first_byte", "receive_body"),
    ]
    assert names(reused) == ["pool_wait", "send_request", "wait_first_byte", "receive_body"]
    assert not fresh.reused and reused.reused and reused.idle_ns is not None
    info = fresh.connection
    assert info is not None and info is reused.connection
    assert info.opened_by == fresh.span_id
    assert info.handshake is not None and info.handshake.outcome == "ok"
    assert fresh.handshake is info.handshake
    tls = fresh.phase("tls")
    assert tls is not None and tls.start_ns == info.handshake.start_ns
    assert "127.0.0.1" in info.resolved
    assert info.peer == ("127.0.0.1", server.port)


def test_ip_host_has_no_dns_phase(server: HTTP1Server, ctx: tlstiming.TimedSSLContext) -> None:
    spans: list[RequestSpan] = []

    async def main() -> None:
        async with ta.ClientSession(ssl=ctx, sinks=[spans.append]) as session:
            await get_all(session, url(server.port, host="127.0.0.1"))

    asyncio.run(main())
    assert names(spans[0])[:4] == ["pool_wait", "connect", "tls", "send_request"]
    assert_tiles(spans[0])


def test_concurrent_requests_wait_for_the_one_connection(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    spans: list[RequestSpan] = []

    async def main() -> None:
        options = {"limit": 1}
        async with ta.ClientSession(
            ssl=ctx, sinks=[spans.append], connector_options=options
        ) as session:
            await asyncio.gather(*(get_all(session, url(server.port)) for _ in range(4)))

    asyncio.run(main())
    assert len(spans) == 4
    assert sum(not s.reused for s in spans) == 1
    assert len({id(s.connection) for s in spans}) == 1
    for span in spans:
        assert_tiles(span)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failed(target: str, ssl_arg: object, **session: Any) -> tuple[BaseException, RequestSpan]:
    spans: list[RequestSpan] = []

    async def main() -> None:
        async with ta.ClientSession(ssl=ssl_arg, sinks=[spans.append], **session) as s:
            await get_all(s, target)

    with pytest.raises((aiohttp.ClientError, TimeoutError)) as info:
        asyncio.run(main())
    (span,) = spans
    assert tlstiming.span_of(info.value) is span
    assert span.outcome == "error"
    assert_tiles(span)
    return info.value, span


def test_refused(unused_port: int, ctx: tlstiming.TimedSSLContext) -> None:
    exc, span = failed(url(unused_port), ctx)
    assert isinstance(exc, aiohttp.ClientConnectorError)  # aiohttp's own exception
    assert span.error is not None and span.error.phase == "connect"
    assert span.error.type == "aiohttp.client_exceptions.ClientConnectorError"
    assert span.handshake is None


def test_dns_failure(ctx: tlstiming.TimedSSLContext) -> None:
    exc, span = failed("https://nothing.invalid/", ctx)
    assert isinstance(exc, aiohttp.ClientConnectorDNSError)
    assert span.error is not None and span.error.phase == "dns"


def test_tls_failure_keeps_the_handshake(
    pki: PKI, server: HTTP1Server, recorder: tlstiming.SpanRecorder
) -> None:
    distrustful = tlstiming.create_default_context(cadata=pki.other_ca.cert_pem.bytes().decode())
    distrustful.add_sink(recorder)
    exc, span = failed(url(server.port), distrustful)
    assert isinstance(exc, aiohttp.ClientConnectorCertificateError)
    assert span.error is not None and span.error.phase == "tls"
    assert span.handshake is not None and span.handshake.outcome != "ok"
    assert span.handshake in list(recorder)


# Plain aiohttp leaves the timed-out TLS transport unclosed too (checked with a
# plain ssl.SSLContext): collected here, so that it is this test's warning.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_timeout(server: HTTP1Server, ctx: tlstiming.TimedSSLContext) -> None:
    timeout = aiohttp.ClientTimeout(total=0.3)
    exc, span = failed(url(server.port, "/stall"), ctx, timeout=timeout)
    assert isinstance(exc, asyncio.TimeoutError)
    assert span.error is not None and span.error.phase == "wait_first_byte"
    assert span.handshake is not None and span.handshake.outcome == "ok"
    del exc, span  # the exception's frames hold the transport: let it go here, not later
    gc.collect()


def test_retry_on_a_fresh_connection_is_one_retry_phase(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    """The server closes a pooled connection unanswered: aiohttp retries on a new one."""
    spans: list[RequestSpan] = []

    async def main() -> None:
        async with ta.ClientSession(ssl=ctx, sinks=[spans.append]) as session:
            await get_all(session, url(server.port))
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await get_all(session, url(server.port, "/close"))

    asyncio.run(main())
    span = spans[1]
    assert_tiles(span)
    assert names(span)[:2] == ["pool_wait", "retry"]
    assert "tls" in names(span) and not span.reused
    assert span.error is not None and span.error.phase == "wait_first_byte"
    assert span.handshake is not None and span.handshake is not spans[0].handshake


def test_plain_http(ctx: tlstiming.TimedSSLContext) -> None:
    spans: list[RequestSpan] = []

    async def main() -> None:
        async with ta.ClientSession(ssl=ctx, sinks=[spans.append]) as session:
            await get_all(session, f"http://localhost:{plain.port}/")

    with HTTP1Server(None) as plain:
        asyncio.run(main())
    (span,) = spans
    assert_tiles(span)
    assert "tls" not in names(span) and span.handshake is None and span.status_code == 200


def test_concurrent_fresh_connections_keep_their_own_handshakes(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    spans: list[RequestSpan] = []

    async def main() -> None:
        async with ta.ClientSession(ssl=ctx, sinks=[spans.append]) as session:
            await asyncio.gather(*(get_all(session, url(server.port)) for _ in range(4)))

    asyncio.run(main())
    opened = [s for s in spans if not s.reused]
    handshakes = {id(s.handshake) for s in opened}
    assert len(handshakes) == len(opened) and None not in {s.handshake for s in opened}
    for span in opened:
        assert span.connection is not None and span.connection.opened_by == span.span_id


def test_plain_context_times_requests_only(
    server: HTTP1Server, plain_ctx: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    spans: list[RequestSpan] = []

    async def main() -> None:
        async with ta.ClientSession(ssl=plain_ctx, sinks=[spans.append]) as session:
            await get_all(session, url(server.port))

    asyncio.run(main())
    assert spans[0].handshake is None and spans[0].outcome == "ok"
    assert "plain ssl.SSLContext" in caplog.text
    assert "tls" not in names(spans[0])


def test_span_of_after_release_without_reading(
    server: HTTP1Server, ctx: tlstiming.TimedSSLContext
) -> None:
    """The request ends when aiohttp releases the connection, read or not."""

    async def main() -> object:
        async with ta.ClientSession(ssl=ctx) as session:
            async with session.get(url(server.port)) as response:
                pass
            return tlstiming.span_of(response)

    span = asyncio.run(main())
    assert isinstance(span, RequestSpan) and span.status_code == 200


def test_defaults_and_misuse(ctx: tlstiming.TimedSSLContext) -> None:
    default = ta.timed_ssl_context(True)
    assert isinstance(default, tlstiming.TimedSSLContext)
    assert default.verify_mode == ssl.CERT_REQUIRED
    insecure = ta.timed_ssl_context(False)
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    assert ta.timed_ssl_context(ctx) is ctx

    async def main() -> None:
        ta.ClientSession(connector=aiohttp.TCPConnector())

    with pytest.raises(ValueError, match="connector_options"):
        asyncio.run(main())
    with pytest.raises(TypeError):
        ta.trace_config(sinks=[object()])  # type: ignore[list-item]
