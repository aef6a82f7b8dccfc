"""tlstiming.instrument(): every ssl.SSLContext the process builds becomes a TimedSSLContext."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from conftest import ServeFactory
from servers import PKI, server_context

import tlstiming


@pytest.fixture
def instrumented() -> Iterator[list[tlstiming.HandshakeSpan]]:
    spans: list[tlstiming.HandshakeSpan] = []
    tlstiming.subscribe(spans.append)
    tlstiming.instrument()
    try:
        yield spans
    finally:
        tlstiming.uninstrument()
        tlstiming.unsubscribe(spans.append)


def test_off_by_default_and_reversible() -> None:
    assert not tlstiming.instrumented()
    assert type(ssl.create_default_context()) is ssl.SSLContext
    tlstiming.instrument()
    tlstiming.instrument()  # idempotent
    try:
        assert tlstiming.instrumented()
        context = ssl.create_default_context()
        assert type(context) is tlstiming.TimedSSLContext
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        context.options |= ssl.OP_NO_TICKET  # ssl.py's own setters do not recurse
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        assert type(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is tlstiming.TimedSSLContext
    finally:
        tlstiming.uninstrument()
    tlstiming.uninstrument()
    assert not tlstiming.instrumented()
    assert type(ssl.create_default_context()) is ssl.SSLContext
    assert vars(ssl.SSLContext)["__new__"] is not None


def test_subclasses_are_built_as_themselves() -> None:
    class Mine(ssl.SSLContext):
        pass

    tlstiming.instrument()
    try:
        assert type(Mine(ssl.PROTOCOL_TLS_CLIENT)) is Mine
        plain = tlstiming.TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
        assert type(plain) is tlstiming.TimedSSLContext
    finally:
        tlstiming.uninstrument()


def test_thread_safe() -> None:
    def flip() -> None:
        for _ in range(200):
            tlstiming.instrument()
            tlstiming.uninstrument()

    threads = [threading.Thread(target=flip) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not tlstiming.instrumented()
    assert type(ssl.create_default_context()) is ssl.SSLContext


def test_urllib3_unmodified(
    instrumented: list[tlstiming.HandshakeSpan], serve: ServeFactory, pki: PKI
) -> None:
    import urllib3

    server = serve(server_context(pki.leaf))
    with pki.ca.cert_pem.tempfile() as ca_file:
        pool = urllib3.PoolManager(ca_certs=ca_file)
        conn = pool.connection_from_url(f"https://localhost:{server.port}/")._get_conn()
        try:
            conn.connect()
        finally:
            conn.close()
            pool.clear()
    client = [s for s in instrumented if s.side == "client"]
    assert client and client[0].outcome == "ok"
    assert client[0].server_hostname == "localhost"


def test_asyncio_unmodified(
    instrumented: list[tlstiming.HandshakeSpan], serve: ServeFactory, pki: PKI
) -> None:
    server = serve(server_context(pki.leaf))

    async def main() -> None:
        context = ssl.create_default_context(cadata=pki.ca_pem)
        _, writer = await asyncio.open_connection("localhost", server.port, ssl=context)
        span = tlstiming.span_of(writer.get_extra_info("ssl_object"))
        assert isinstance(span, tlstiming.HandshakeSpan)
        writer.transport.abort()
        await asyncio.sleep(0)

    asyncio.run(main())
    assert any(s.side == "client" and s.outcome == "ok" for s in instrumented)


def test_aiohttp_default_contexts_when_instrumented_before_import() -> None:
    """aiohttp builds its default contexts when imported: instrument() must come first."""
    code = (
        "import tlstiming; tlstiming.instrument()\n"
        "import aiohttp.connector as c\n"
        "print(type(c._SSL_CONTEXT_VERIFIED).__name__, type(c._SSL_CONTEXT_UNVERIFIED).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["TimedSSLContext", "TimedSSLContext"]
