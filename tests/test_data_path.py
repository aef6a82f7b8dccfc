"""After the handshake OpenSSL stops calling back for the connection: the data path is free.

Every test installs a counting wrapper as the context's C-level message
callback (what OpenSSL really calls, through CPython's wrapper) and counts
the calls while 1 MiB crosses the established connection: zero means the
connection left the callback behind. The connection keeps its own context
(``sock._sslobj.context`` too), so everything that consults it behaves as
with plain ``ssl``.
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
from tlstiming._recording import native as _native

# Every case runs with the C accelerator and with the pure-Python hot path.
pytestmark = pytest.mark.usefixtures("implementation")

_C_MSG_CALLBACK: Any = ssl._SSLContext._msg_callback  # type: ignore[attr-defined]
CHUNK = 16 * 1024
ROUNDS = 64  # 1 MiB each way


class Counting:
    """Wraps the context's C-level callback and counts OpenSSL's calls into Python."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.inner = _C_MSG_CALLBACK.__get__(ctx)
        assert self.inner is not None
        self.calls = 0
        _C_MSG_CALLBACK.__set__(ctx, self)

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.inner(*args)


def echo_round_trips(tls: ssl.SSLSocket) -> None:
    """Send 1 MiB in chunks through an echo server; every byte comes back in order."""
    sent, received = hashlib.sha256(), hashlib.sha256()
    for i in range(ROUNDS):
        chunk = bytes([i % 251]) * (CHUNK - i)
        sent.update(chunk)
        tls.sendall(chunk)
        received.update(read_exactly(tls, len(chunk)))
    assert received.digest() == sent.digest()


def _client(pki: PKI, **options: Any) -> tuple[TimedSSLContext, SpanRecorder, Counting]:
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    for name, value in options.items():
        setattr(ctx, name, value)
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    return ctx, recorder, Counting(ctx)


@pytest.mark.parametrize(
    ("version", "no_renegotiation"),
    [
        (ssl.TLSVersion.TLSv1_3, False),
        (ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_2, False),
    ],
    ids=["tls13", "tls12-no-renegotiation", "tls12-renegotiation-allowed"],
)
def test_no_callbacks_after_the_handshake(
    version: ssl.TLSVersion, no_renegotiation: bool, serve: ServeFactory, pki: PKI
) -> None:
    ctx, recorder, counting = _client(pki)
    if no_renegotiation:
        ctx.options |= ssl.OP_NO_RENEGOTIATION
    server = serve(server_context(pki.leaf, maximum_version=version), mode="echo")
    with connect(ctx, server.address) as tls:
        handshake_calls = counting.calls
        if not _native.SWITCH.on:  # native: OpenSSL calls C directly, not this callback
            assert handshake_calls > 10  # the handshake was recorded through it
        echo_round_trips(tls)
        assert counting.calls == handshake_calls  # not one call on the data path
        assert tls.context is ctx
        assert tls._sslobj.context is ctx  # type: ignore[attr-defined]
        assert tls.session is not None
        assert tls.getpeercert()  # the context's verify mode still decides
    assert len(recorder) == 1
    assert recorder.spans[0].outcome == "ok"
    assert _C_MSG_CALLBACK.__get__(ctx) is counting  # the context's callback is back


def test_the_next_connection_is_recorded_again(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder, _ = _client(pki)
    server = serve(server_context(pki.leaf), mode="echo")
    for _ in range(3):
        with connect(ctx, server.address) as tls:
            echo_round_trips(tls)
    assert len(recorder) == 3
    assert all(span.outcome == "ok" and span.messages for span in recorder.spans)


def test_user_msg_callback_sees_every_record(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder, _ = _client(pki)
    calls: list[tuple[Any, ...]] = []
    ctx._msg_callback = lambda *args: calls.append(args)
    server = serve(server_context(pki.leaf), mode="echo")
    with connect(ctx, server.address) as tls:
        before = len(calls)
        echo_round_trips(tls)
        assert len(calls) >= before + 2 * ROUNDS  # it still sees every record
    assert len(recorder) == 1


def test_post_handshake_auth_is_unaffected(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder, counting = _client(pki, post_handshake_auth=True)
    pki.client.configure_cert(ctx)
    server = serve(server_context(pki.leaf), mode="echo")
    with connect(ctx, server.address) as tls:
        handshake_calls = counting.calls
        echo_round_trips(tls)
        assert counting.calls == handshake_calls
        assert tls._sslobj.context is ctx  # type: ignore[attr-defined]
    assert len(recorder) == 1


def test_tls13_client_certificate_stays_recorded_until_the_verdict(
    serve: ServeFactory, pki: PKI
) -> None:
    ctx, recorder, counting = _client(pki)
    pki.client.configure_cert(ctx)
    server = serve(server_context(pki.leaf, client_ca=pki.ca))
    with connect(ctx, server.address) as tls:
        assert len(recorder) == 0  # the server's verdict is still to come
        at_handshake = counting.calls
        assert read_exactly(tls, len(GREETING)) == GREETING
        assert counting.calls > at_handshake  # the tickets and the data were seen
        assert len(recorder) == 1
        settled = counting.calls
        tls.sendall(b"bye")
        assert counting.calls == settled
    assert len(recorder) == 1


def test_asyncio_object_leaves_the_callback(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder, counting = _client(pki)
    server = serve(server_context(pki.leaf), mode="echo")

    async def main() -> None:
        reader, writer = await asyncio.open_connection(
            *server.address, ssl=ctx, server_hostname="localhost"
        )
        obj = writer.get_extra_info("ssl_object")
        assert obj.context is ctx
        handshake_calls = counting.calls
        payload = bytes(range(256)) * 4096  # 1 MiB
        writer.write(payload)
        echoed = await reader.readexactly(len(payload))
        assert echoed == payload
        assert counting.calls == handshake_calls
        assert obj.context is ctx
        writer.close()
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.wait_closed()

    asyncio.run(main())
    assert len(recorder) == 1


def test_server_connections_leave_the_callback(serve: ServeFactory, pki: PKI) -> None:
    server_ctx = server_context(pki.leaf, factory=TimedSSLContext)
    assert isinstance(server_ctx, TimedSSLContext)
    counting = Counting(server_ctx)
    observed: list[tuple[bool, int]] = []

    def on_handshake(tls: ssl.SSLSocket) -> None:
        observed.append((tls.context is server_ctx, counting.calls))

    server = serve(server_ctx, mode="echo", on_handshake=on_handshake)
    ctx, _, _ = _client(pki)
    with connect(ctx, server.address) as tls:
        echo_round_trips(tls)  # the server handled its handshake before echoing
    assert server.next_result().error is None
    ((same_context, at_handshake),) = observed
    assert same_context
    assert counting.calls == at_handshake


def test_reassigning_the_context_afterwards(serve: ServeFactory, pki: PKI) -> None:
    ctx, _, _ = _client(pki)
    other = tlstiming.create_default_context(cadata=pki.ca_pem)
    server = serve(server_context(pki.leaf), mode="echo")
    with connect(ctx, server.address) as tls:
        tls.context = other
        assert tls.context is other
        assert tls._sslobj.context is other  # type: ignore[attr-defined]
        echo_round_trips(tls)


def test_implicit_handshake_stays_attached(serve: ServeFactory, pki: PKI) -> None:
    ctx, recorder, counting = _client(pki)
    server = serve(server_context(pki.leaf), mode="echo")
    raw = socket.create_connection(server.address, timeout=GUARD)
    with ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False) as tls:
        echo_round_trips(tls)  # the first write drives the handshake
        assert tls.context is ctx
        settled = counting.calls
        echo_round_trips(tls)
        assert counting.calls > settled  # documented: there is no call to hook
    assert len(recorder) == 1
    assert recorder.spans[0].outcome == "ok"


def test_the_python_3_10_way_also_leaves_the_callback(
    monkeypatch: pytest.MonkeyPatch, serve: ServeFactory, pki: PKI
) -> None:
    """Without ``operator.call`` (3.10) the steps run through partials: same result."""
    from tlstiming._recording import detach as _detach

    monkeypatch.setattr(_detach, "_OPERATOR_CALL", None)
    ctx, recorder, counting = _client(pki)
    server = serve(server_context(pki.leaf), mode="echo")
    with connect(ctx, server.address) as tls:
        handshake_calls = counting.calls
        echo_round_trips(tls)
        assert counting.calls == handshake_calls
        assert tls._sslobj.context is ctx  # type: ignore[attr-defined]
    assert _C_MSG_CALLBACK.__get__(ctx) is counting
    assert len(recorder) == 1


# -- a connection born while another one detaches ----------------------------------
#
# CPython creates a connection's OpenSSL object (SSL_new) without holding the GIL,
# and SSL_new copies the context's message callback at that instant. Another
# thread's detach clears the context's callback for a few C calls: a connection
# born then would never call back. These tests create that instant on purpose.


def _births_without_callback(ctx: ssl.SSLContext) -> None:
    """Make every connection of ``ctx`` be born (SSL_new) while its callback is cleared."""
    for name in ("_wrap_socket", "_wrap_bio"):
        create = getattr(ctx, name)

        def born(*args: Any, _create: Any = create, **kwargs: Any) -> Any:
            callback = _C_MSG_CALLBACK.__get__(ctx)
            _C_MSG_CALLBACK.__set__(ctx, None)  # what another thread's detach does, briefly
            try:
                return _create(*args, **kwargs)
            finally:
                _C_MSG_CALLBACK.__set__(ctx, callback)

        setattr(ctx, name, born)


def _born_in_a_detach(pki: PKI) -> tuple[TimedSSLContext, SpanRecorder]:
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    _births_without_callback(ctx)
    return ctx, recorder


@pytest.mark.parametrize("drive", ["do_handshake", "implicit"])
def test_connection_born_during_a_detach_is_recorded(
    drive: str, serve: ServeFactory, pki: PKI
) -> None:
    server = serve(server_context(pki.leaf))
    ctx, recorder = _born_in_a_detach(pki)
    raw = socket.create_connection(server.address, timeout=GUARD)
    tls = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
    with tls:
        if drive == "do_handshake":
            tls.do_handshake()
        assert read_exactly(tls, len(GREETING)) == GREETING
    (span,) = recorder.spans
    assert span.outcome == "ok"
    assert [m.type for m in span.messages][:2] == ["client_hello", "server_hello"]
    assert span.facts.sni == "localhost"


def test_memory_bio_connection_born_during_a_detach_is_recorded(
    serve: ServeFactory, pki: PKI
) -> None:
    server = serve(server_context(pki.leaf))
    ctx, recorder = _born_in_a_detach(pki)

    async def main() -> None:
        reader, writer = await asyncio.open_connection(
            *server.address, ssl=ctx, server_hostname="localhost"
        )
        assert await reader.readexactly(len(GREETING)) == GREETING
        writer.close()
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.wait_closed()

    asyncio.run(main())
    (span,) = recorder.spans
    assert [m.type for m in span.messages][:2] == ["client_hello", "server_hello"]
