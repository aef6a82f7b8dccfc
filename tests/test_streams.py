"""span_of for asyncio streams and anyio TLS streams over a TimedSSLContext."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import tlstiming
from tlstiming.testing import LocalTLSServer


@pytest.fixture(scope="module")
def server() -> Iterator[LocalTLSServer]:
    with LocalTLSServer(respond="echo") as s:
        yield s


@pytest.fixture
def ctx(server: LocalTLSServer) -> tlstiming.TimedSSLContext:
    return tlstiming.create_default_context(cadata=server.pki.ca_pem)


def test_asyncio_writer(server: LocalTLSServer, ctx: tlstiming.TimedSSLContext) -> None:
    async def main() -> tuple[object, object]:
        reader, writer = await asyncio.open_connection("localhost", server.address[1], ssl=ctx)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        span = tlstiming.span_of(writer)
        writer.close()
        await writer.wait_closed()
        return span, writer.get_extra_info("ssl_object")

    span, ssl_object = asyncio.run(main())
    assert isinstance(span, tlstiming.HandshakeSpan) and span.outcome == "ok"
    assert span is tlstiming.span_of(ssl_object)
    assert span.server_hostname == "localhost"


def test_asyncio_plain_context_and_plain_tcp(server: LocalTLSServer) -> None:
    async def main() -> list[tlstiming.HandshakeSpan | tlstiming.RequestSpan | None]:
        plain = ssl.create_default_context(cadata=server.pki.ca_pem)
        _, tls = await asyncio.open_connection("localhost", server.address[1], ssl=plain)
        _, tcp = await asyncio.open_connection("localhost", server.address[1])
        spans = [tlstiming.span_of(tls), tlstiming.span_of(tcp)]
        for writer in (tls, tcp):
            writer.close()
            await writer.wait_closed()  # closed here, not by a later garbage collection
        return spans

    assert asyncio.run(main()) == [None, None]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_stream(backend: str, server: LocalTLSServer, ctx: tlstiming.TimedSSLContext) -> None:
    async def main() -> list[tlstiming.HandshakeSpan | tlstiming.RequestSpan | None]:
        stream = await anyio.connect_tcp("localhost", server.address[1], tls=True, ssl_context=ctx)
        await stream.send(b"ping")
        wrapped = BufferedByteReceiveStream(stream)  # a wrapper answers extra() too
        assert await wrapped.receive_exactly(4) == b"ping"
        spans = [tlstiming.span_of(stream), tlstiming.span_of(wrapped)]
        await anyio.aclose_forcefully(stream)
        return spans

    span, through_wrapper = anyio.run(main, backend=backend)
    assert isinstance(span, tlstiming.HandshakeSpan) and span.outcome == "ok"
    assert through_wrapper is span


def test_anyio_wraps_a_timed_context_in_a_worker_thread(
    server: LocalTLSServer, ctx: tlstiming.TimedSSLContext
) -> None:
    """What docs/aiohttp.md documents: anyio hops to a thread for any SSLContext
    subclass. The span is still right: the handshake itself runs in the loop."""
    threads: list[int] = []

    class Watched(tlstiming.TimedSSLContext):
        def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
            threads.append(threading.get_ident())
            return super().wrap_bio(*args, **kwargs)

    watched = Watched(ssl.PROTOCOL_TLS_CLIENT)
    watched.load_verify_locations(cadata=server.pki.ca_pem)

    async def main() -> tuple[int, object]:
        stream = await anyio.connect_tcp(
            "localhost", server.address[1], tls=True, ssl_context=watched
        )
        span = tlstiming.span_of(stream)
        await anyio.aclose_forcefully(stream)
        return threading.get_ident(), span

    loop_thread, span = anyio.run(main)
    assert threads and threads[0] != loop_thread
    assert isinstance(span, tlstiming.HandshakeSpan) and span.outcome == "ok"


def test_anyio_plain_tcp_has_no_span(server: LocalTLSServer) -> None:
    async def main() -> object:
        async with await anyio.connect_tcp("localhost", server.address[1]) as stream:
            return tlstiming.span_of(stream)

    assert anyio.run(main) is None
    assert tlstiming.span_of(object()) is None
