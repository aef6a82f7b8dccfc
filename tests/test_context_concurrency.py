"""Many handshakes at once through one shared TimedSSLContext, and bounded memory.

Cross-talk proof: every connection uses its own SNI name, and the server's
SNI callback answers names starting with ``chained-`` with a different
certificate (an intermediate-issued one). A span that recorded another
connection's messages would show the wrong name, the wrong certificate
count or the wrong leaf fingerprint; on the server, the wrong peer port.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import itertools
import socket
import ssl
import threading
import tracemalloc
from collections import Counter
from dataclasses import dataclass

import pytest
from conftest import ServeFactory
from servers import GREETING, GUARD, PKI, LoopbackServer, connect, read_exactly, server_context

import tlstiming
from tlstiming import HandshakeSpan, SpanRecorder, TimedSSLContext

# Every case runs with the C accelerator and with the pure-Python hot path.
pytestmark = pytest.mark.usefixtures("implementation")

THREADS = 8
PER_THREAD = 40
TASKS = 200


@dataclass(frozen=True)
class Seen:
    """What one client connection saw, to check its span against."""

    host: str
    local: tuple[str, int]
    peer: tuple[str, int] | None
    leaf_sha256: str
    span: HandshakeSpan | None


@dataclass
class Setup:
    client: TimedSSLContext
    client_spans: SpanRecorder
    server: LoopbackServer
    server_spans: SpanRecorder


def _contexts(pki: PKI) -> tuple[TimedSSLContext, SpanRecorder, TimedSSLContext, SpanRecorder]:
    """A client context and a server context switching certificates by SNI, each recorded."""
    server_spans = SpanRecorder(maxlen=10_000)
    server_ctx = server_context(pki.wildcard, factory=TimedSSLContext)
    chained_ctx = server_context(pki.wildcard_chained, factory=TimedSSLContext)
    assert isinstance(server_ctx, TimedSSLContext)

    def choose(conn: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        if name is not None and name.startswith("chained-"):
            conn.context = chained_ctx

    server_ctx.sni_callback = choose
    server_ctx.add_sink(server_spans)
    client_spans = SpanRecorder(maxlen=10_000)
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(client_spans)
    return client, client_spans, server_ctx, server_spans


def _setup(serve: ServeFactory, pki: PKI) -> Setup:
    client, client_spans, server_ctx, server_spans = _contexts(pki)
    return Setup(client, client_spans, serve(server_ctx), server_spans)


def _blocking_one(client: TimedSSLContext, address: tuple[str, int], host: str) -> Seen:
    """One blocking connection: what it saw."""
    with connect(client, address, host) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return Seen(
            host=host,
            local=tls.getsockname(),
            peer=tls.getpeername(),
            leaf_sha256=hashlib.sha256(der).hexdigest(),
            span=tlstiming.span_of(tls),
        )


async def _asyncio_one(client: TimedSSLContext, address: tuple[str, int], host: str) -> Seen:
    """One asyncio connection: what it saw."""
    reader, writer = await asyncio.open_connection(*address, ssl=client, server_hostname=host)
    obj = writer.get_extra_info("ssl_object")
    assert await reader.readexactly(len(GREETING)) == GREETING
    der = obj.getpeercert(binary_form=True)
    seen = Seen(
        host=host,
        local=writer.get_extra_info("sockname"),
        peer=None,  # the BIO path has no socket address to record
        leaf_sha256=hashlib.sha256(der).hexdigest(),
        span=tlstiming.span_of(obj),
    )
    writer.close()
    with contextlib.suppress(ssl.SSLError, OSError):
        await writer.wait_closed()
    return seen


def _host(prefix: str, n: int) -> str:
    kind = "chained" if n % 3 == 0 else "plain"
    return f"{kind}-{prefix}-{n}.example.test"


def _check(setup: Setup, seen: list[Seen], expected: int) -> None:
    assert len(seen) == expected
    assert len({s.host for s in seen}) == expected
    client_spans = setup.client_spans.spans
    assert len(client_spans) == expected  # none lost
    assert len({s.span_id for s in client_spans}) == expected  # none duplicated
    assert {id(s.span) for s in seen} == {id(s) for s in client_spans}
    for s in seen:
        span = s.span
        assert span is not None
        assert span.outcome == "ok", span.error
        assert span.server_hostname == s.host
        assert span.facts.sni == s.host
        assert span.peer == s.peer or s.peer is None
        chained = s.host.startswith("chained-")
        assert span.facts.certificate_count == (2 if chained else 1)
        assert span.facts.certificates[0].sha256 == s.leaf_sha256
        assert span.phases[0].start_ns == span.start_ns
        assert span.phases[-1].end_ns == span.end_ns
    server_spans = setup.server_spans.spans
    assert len(server_spans) == expected
    assert len({s.span_id for s in server_spans}) == expected
    # Loopback reuses a closed connection's ephemeral port (TIME_WAIT reuse),
    # so a port alone does not name a connection: compare the (port, name)
    # pairs each side saw, as multisets.
    client_pairs = Counter((s.local[1], s.host) for s in seen)
    server_pairs: Counter[tuple[int, str | None]] = Counter()
    for span in server_spans:
        assert span.side == "server"
        assert span.outcome == "ok", span.error
        assert span.peer is not None
        assert "sni_callback" in [p.name for p in span.phases]
        server_pairs[(span.peer[1], span.facts.sni)] += 1
    assert server_pairs == client_pairs


def test_threads_share_one_context(serve: ServeFactory, pki: PKI) -> None:
    setup = _setup(serve, pki)
    seen: list[Seen] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(t: int) -> None:
        try:
            barrier.wait(GUARD)
            for i in range(PER_THREAD):
                seen.append(_blocking_one(setup.client, setup.server.address, _host(f"t{t}", i)))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    _check(setup, seen, THREADS * PER_THREAD)


def test_asyncio_tasks_share_one_context(serve: ServeFactory, pki: PKI) -> None:
    setup = _setup(serve, pki)

    async def main() -> list[Seen]:
        address = setup.server.address
        return list(
            await asyncio.gather(
                *(_asyncio_one(setup.client, address, _host("task", n)) for n in range(TASKS))
            )
        )

    _check(setup, asyncio.run(main()), TASKS)


# -- memory ----------------------------------------------------------------------------


def _pump(client: ssl.SSLSocket, server: ssl.SSLSocket) -> list[BaseException]:
    """Drive both ends of a non-blocking handshake in this thread until both finish."""
    pending = [client, server]
    errors: list[BaseException] = []
    while pending:
        for end in list(pending):
            try:
                end.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except (ssl.SSLError, OSError) as exc:
                errors.append(exc)
            pending.remove(end)
    return errors


def _handshakes(count: int, client: ssl.SSLContext, server: ssl.SSLContext) -> Counter[str]:
    """``count`` handshakes over socket pairs; every tenth one fails verification."""
    outcomes: Counter[str] = Counter()
    for n in range(count):
        host = "wrong.example.test" if n % 10 == 0 else "localhost"
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)
            c = client.wrap_socket(a, server_hostname=host, do_handshake_on_connect=False)
            s = server.wrap_socket(b, server_side=True, do_handshake_on_connect=False)
            with c, s:
                outcomes["error" if _pump(c, s) else "ok"] += 1
    return outcomes


def _retained() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_bounded_recorder_memory_does_not_grow(pki: PKI) -> None:
    client_spans, server_spans = SpanRecorder(maxlen=100), SpanRecorder(maxlen=100)
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(client_spans)
    server = server_context(pki.leaf, factory=TimedSSLContext)
    assert isinstance(server, TimedSSLContext)
    server.add_sink(server_spans)
    every = itertools.count()

    def export_some(span: HandshakeSpan) -> None:
        if next(every) % 10 == 0:  # a mix of materialized and untouched spans is kept
            span.to_dict()

    client.add_sink(export_some)
    tracemalloc.start()
    try:
        warm = _handshakes(2_000, client, server)
        after_2k = _retained()
        rest = _handshakes(8_000, client, server)
        after_10k = _retained()
    finally:
        tracemalloc.stop()
    assert warm + rest == Counter(ok=9_000, error=1_000)
    assert len(client_spans) == 100
    assert len(server_spans) == 100
    assert [s.outcome for s in client_spans.spans].count("error") == 10
    # A leak of even 32 bytes per handshake would show as 256 KB over 8,000 more.
    assert after_10k - after_2k < 8_000 * 32, (after_2k, after_10k)


@pytest.mark.parametrize("reads", [False, True], ids=["unread", "materialized"])
def test_spans_do_not_keep_connections_alive(pki: PKI, reads: bool) -> None:
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    spans = SpanRecorder(maxlen=100)
    client.add_sink(spans)
    server = server_context(pki.leaf)
    _handshakes(20, client, server)
    if reads:
        for span in spans.spans:
            span.to_dict()
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, ssl.SSLSocket) and o.context is client]
    assert alive == []


# -- a thousand at once -----------------------------------------------------------------------

THOUSAND_THREADS = 20
THOUSAND_PER_THREAD = 25
THOUSAND_TASKS = 500


def test_a_thousand_concurrent_handshakes_across_threads_and_tasks(pki: PKI) -> None:
    """500 asyncio tasks and 20 threads x 25 blocking connections, at once, one client context.

    The server is an asyncio server on the same loop as the tasks (its spans
    come from the memory-BIO path), switching certificates by SNI name; every
    client span must carry its own name and leaf, and the server's spans the
    same (port, name) pairs as the clients saw.
    """
    client, client_spans, server_ctx, server_spans = _contexts(pki)
    seen: list[Seen] = []
    errors: list[BaseException] = []

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(GREETING)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.drain()
            await reader.read()  # until the client closes
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()

    def blocking(port: int, t: int, start: threading.Barrier) -> None:
        try:
            start.wait(GUARD)
            for i in range(THOUSAND_PER_THREAD):
                seen.append(_blocking_one(client, ("127.0.0.1", port), _host(f"k{t}", i)))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    async def main() -> None:
        server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=server_ctx, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        start = threading.Barrier(THOUSAND_THREADS + 1)
        threads = [
            threading.Thread(target=blocking, args=(port, t, start))
            for t in range(THOUSAND_THREADS)
        ]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(start.wait, GUARD)
        try:
            seen.extend(
                await asyncio.gather(
                    *(
                        _asyncio_one(client, ("127.0.0.1", port), _host("a", n))
                        for n in range(THOUSAND_TASKS)
                    )
                )
            )
        finally:
            for thread in threads:
                await asyncio.to_thread(thread.join, GUARD * 4)
            server.close()
            await server.wait_closed()
        assert not any(thread.is_alive() for thread in threads)

    asyncio.run(main())
    assert errors == []
    expected = THOUSAND_THREADS * THOUSAND_PER_THREAD + THOUSAND_TASKS
    assert len(seen) == expected == 1000
    assert len({s.host for s in seen}) == expected
    spans = client_spans.spans
    assert len(spans) == expected
    assert {id(s.span) for s in seen} == {id(s) for s in spans}
    for s in seen:
        span = s.span
        assert span is not None and span.outcome == "ok", span
        assert span.facts.sni == s.host == span.server_hostname
        assert span.facts.certificate_count == (2 if s.host.startswith("chained-") else 1)
        assert span.facts.certificates[0].sha256 == s.leaf_sha256
    served = server_spans.spans
    assert len(served) == expected
    assert all(span.outcome == "ok" and span.peer is not None for span in served)
    assert Counter((span.peer[1], span.facts.sni) for span in served if span.peer) == Counter(
        (s.local[1], s.host) for s in seen
    )
