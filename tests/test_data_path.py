"""After the handshake a connection leaves the message callback behind (when it safely can).

CPython's message-callback wrapper returns without calling into Python when
the context the connection currently belongs to has no ``_msg_callback``.
TimedSSLContext moves an established connection to such a context
(``sock._sslobj.context``) while ``sock.context`` keeps answering with the
caller's context. These tests prove that structurally, and that data still
flows both ways unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
from typing import Any

import pytest
from conftest import ServeFactory
from servers import GREETING, GUARD, PKI, connect, read_exactly, server_context

import tlstiming
from tlstiming import SpanRecorder, TimedSSLContext

_C_MSG_CALLBACK: Any = ssl._SSLContext._msg_callback  # type: ignore[attr-defined]
CHUNK = 16 * 1024
ROUNDS = 64  # 1 MiB each way


def inner_context(conn: ssl.SSLSocket | ssl.SSLObject) -> ssl.SSLContext:
    """The context OpenSSL's connection really uses now."""
    sslobj: Any = conn._sslobj  # type: ignore[union-attr]
    context: ssl.SSLContext = sslobj.context
    return context


def is_detached(conn: ssl.SSLSocket | ssl.SSLObject, ctx: TimedSSLContext) -> bool:
    """The connection runs on a context without a message callback, not on ``ctx``."""
    inner = inner_context(conn)
    if inner is ctx:
        return False
    assert _C_MSG_CALLBACK.__get__(inner) is None
    return True


def echo_round_trips(tls: ssl.SSLSocket) -> None:
    """Send 1 MiB in chunks through an echo server; every byte comes back in order."""
    sent, received = hashlib.sha256(), hashlib.sha256()
    for i in range(ROUNDS):
        chunk = bytes([i % 251]) * (CHUNK - i)
        sent.update(chunk)
        tls.sendall(chunk)
        received.update(read_exactly(tls, len(chunk)))
    assert received.digest() == sent.digest()


def _client(pki: PKI, **options: Any) -> tuple[TimedSSLContext, SpanRecorder]:
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    for name, value in options.items():
        setattr(ctx, name, value)
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    return ctx, recorder


@pytest.mark.parametrize(
    ("version", "no_renegotiation", "detached"),
    [
        (ssl.TLSVersion.TLSv1_3, False, True),
        (ssl.TLSVersion.TLSv1_2, True, True),
        (ssl.TLSVersion.TLSv1_2, False, False),
    ],
    ids=["tls13", "tls12-no-renegotiation", "tls12-renegotiation-allowed"],
)
def test_detaches_when_safe(
    version: ssl.TLSVersion,
    no_renegotiation: bool,
    detached: bool,
    serve: ServeFactory,
    pki: PKI,
) -> None:
    ctx, recorder = _client(pki)
    if no_renegotiation:
        ctx.options |= ssl.OP_NO_RENEGOTIATION
    server = serve(server_context(pki.leaf, maximum_version=version), mode="echo")
    with connect(ctx, server.address) as tls:
        assert tls.context is ctx
        assert is_detached(tls, ctx) is detached
        echo_round_trips(tls)
        assert tls.context is ctx
        assert tls.session is not None
        assert is_detached(tls, ctx) is detached
    assert len(recorder) == 1
    assert recorder.spans[0].outcome == "ok"


def test_user_msg_callback_never_detaches(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder = _client(pki)
    calls: list[tuple[Any, ...]] = []
    ctx._msg_callback = lambda *args: calls.append(args)
    server = serve(server_context(pki.leaf), mode="echo")
    with connect(ctx, server.address) as tls:
        assert not is_detached(tls, ctx)
        before = len(calls)
        echo_round_trips(tls)
        assert not is_detached(tls, ctx)
        assert len(calls) >= before + 2 * ROUNDS  # it still sees every record
    assert len(recorder) == 1


def test_post_handshake_auth_keeps_tls13_attached(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder = _client(pki, post_handshake_auth=True)
    server = serve(server_context(pki.leaf), mode="echo")
    with connect(ctx, server.address) as tls:
        assert not is_detached(tls, ctx)
        echo_round_trips(tls)
    assert len(recorder) == 1


def test_tls13_client_certificate_detaches_after_the_verdict(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder = _client(pki)
    pki.client.configure_cert(ctx)
    server = serve(server_context(pki.leaf, client_ca=pki.ca))
    with connect(ctx, server.address) as tls:
        assert not is_detached(tls, ctx)  # the server's verdict is still to come
        assert len(recorder) == 0
        assert read_exactly(tls, len(GREETING)) == GREETING
        assert is_detached(tls, ctx)
        assert len(recorder) == 1
        tls.sendall(b"bye")
    assert len(recorder) == 1


def test_asyncio_object_detaches(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder = _client(pki)
    server = serve(server_context(pki.leaf), mode="echo")

    async def main() -> None:
        reader, writer = await asyncio.open_connection(
            *server.address, ssl=ctx, server_hostname="localhost"
        )
        obj = writer.get_extra_info("ssl_object")
        assert obj.context is ctx
        assert is_detached(obj, ctx)
        payload = bytes(range(256)) * 4096  # 1 MiB
        writer.write(payload)
        echoed = await reader.readexactly(len(payload))
        assert echoed == payload
        assert obj.context is ctx
        writer.close()
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.wait_closed()

    asyncio.run(main())
    assert len(recorder) == 1


def test_server_connections_detach(serve: ServeFactory, pki: PKI) -> None:
    server_ctx = server_context(pki.leaf, factory=TimedSSLContext)
    assert isinstance(server_ctx, TimedSSLContext)
    observed: list[tuple[bool, bool]] = []

    def on_handshake(tls: ssl.SSLSocket) -> None:
        observed.append((tls.context is server_ctx, is_detached(tls, server_ctx)))

    server = serve(server_ctx, mode="echo", on_handshake=on_handshake)
    ctx, _ = _client(pki)
    with connect(ctx, server.address) as tls:
        echo_round_trips(tls)  # the server handled its handshake before echoing
    assert observed == [(True, True)]
    assert server.next_result().error is None


def test_reassigning_context_after_detach(serve: ServeFactory, pki: PKI) -> None:
    ctx, _ = _client(pki)
    other = tlstiming.create_default_context(cadata=pki.ca_pem)
    server = serve(server_context(pki.leaf), mode="echo")
    with connect(ctx, server.address) as tls:
        assert is_detached(tls, ctx)
        tls.context = other
        assert tls.context is other
        assert inner_context(tls) is other
        echo_round_trips(tls)


def test_implicit_handshake_stays_attached(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder = _client(pki)
    server = serve(server_context(pki.leaf), mode="echo")
    raw = socket.create_connection(server.address, timeout=GUARD)
    with ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False) as tls:
        echo_round_trips(tls)  # the first write drives the handshake
        assert tls.context is ctx
        assert not is_detached(tls, ctx)  # documented: there is no call to hook
    assert len(recorder) == 1
    assert recorder.spans[0].outcome == "ok"
