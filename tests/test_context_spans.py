"""Spans from real loopback handshakes, through sync sockets and asyncio streams.

Every case checks the same invariants: exactly one span per handshake reaches
the sink, its phases tile the handshake, an error span describes exactly the
exception the caller got, and ``to_dict()`` is JSON-ready. No case looks at a
duration's value: only structure, order and relations.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from conftest import OpenSSLFactory, ServeFactory
from servers import (
    GREETING,
    GUARD,
    PKI,
    assert_error_matches,
    assert_exportable,
    assert_order,
    assert_tiles,
    connect,
    qualified_name,
    read_exactly,
    server_context,
)

import tlstiming
from tlstiming import HandshakeSpan, SpanRecorder, TimedSSLContext

# Every case runs with the C accelerator and with the pure-Python hot path.
pytestmark = pytest.mark.usefixtures("implementation")

Transport = Literal["sync", "asyncio"]
TRANSPORTS: list[Transport] = ["sync", "asyncio"]
TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
REV_LINE = b"ping tlstiming\n"  # openssl s_server -rev answers it reversed
SHORT_TIMEOUT = 0.2  # a deadline for a server that never answers; never asserted on


@dataclass
class Outcome:
    """What the caller saw, and what the sink received."""

    spans: tuple[HandshakeSpan, ...]
    conn: ssl.SSLSocket | ssl.SSLObject | None = None
    exc: BaseException | None = None
    handshake_ok: bool = False
    data: bytes = b""
    session: ssl.SSLSession | None = None
    session_reused: bool | None = False
    alpn: str | None = None
    version: str | None = None
    peer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def span(self) -> HandshakeSpan:
        assert len(self.spans) == 1, self.spans
        return self.spans[0]


def _sync(
    ctx: ssl.SSLContext,
    address: tuple[str, int],
    host: str,
    send: bytes | None,
    expect: int,
    timeout: float | None,
    session: ssl.SSLSession | None,
) -> Outcome:
    out = Outcome(spans=())
    try:
        tls = connect(ctx, address, host, timeout=timeout, session=session)
    except Exception as exc:
        out.exc = exc
        return out
    with tls:
        out.conn, out.handshake_ok = tls, True
        out.version, out.alpn = tls.version(), tls.selected_alpn_protocol()
        out.session_reused = tls.session_reused
        out.extra["sockname"] = tls.getsockname()
        with contextlib.suppress(OSError):  # a server that failed may be gone already
            out.peer = tls.getpeername()
        try:
            if send:
                tls.sendall(send)
            out.data = read_exactly(tls, expect)
        except Exception as exc:
            out.exc = exc
        out.session = tls.session
    return out


async def _asyncio(
    ctx: ssl.SSLContext,
    address: tuple[str, int],
    host: str,
    send: bytes | None,
    expect: int,
    timeout: float | None,
) -> Outcome:
    out = Outcome(spans=())
    try:
        reader, writer = await asyncio.open_connection(
            *address, ssl=ctx, server_hostname=host, ssl_handshake_timeout=timeout
        )
    except Exception as exc:
        out.exc = exc
        return out
    out.conn, out.handshake_ok = writer.get_extra_info("ssl_object"), True
    assert out.conn is not None
    out.version, out.alpn = out.conn.version(), out.conn.selected_alpn_protocol()
    out.peer = writer.get_extra_info("peername")
    out.extra["sockname"] = writer.get_extra_info("sockname")
    try:
        if send:
            writer.write(send)
        out.data = await reader.readexactly(expect)
    except Exception as exc:
        out.exc = exc
    writer.close()
    with contextlib.suppress(ssl.SSLError, OSError):
        await writer.wait_closed()  # re-raises a read error; already recorded
    return out


def handshake(
    transport: Transport,
    ctx: TimedSSLContext,
    recorder: SpanRecorder,
    address: tuple[str, int],
    host: str = "localhost",
    *,
    send: bytes | None = None,
    expect: int = len(GREETING),
    timeout: float | None = GUARD,
    session: ssl.SSLSession | None = None,
) -> Outcome:
    """Connect, handshake, optionally write, read ``expect`` bytes, close."""
    before = len(recorder)
    if transport == "sync":
        out = _sync(ctx, address, host, send, expect, timeout, session)
    else:
        assert session is None
        out = asyncio.run(_asyncio(ctx, address, host, send, expect, timeout))
    out.spans = recorder.spans[before:]
    assert len(out.spans) == 1, out.spans  # exactly one span per handshake
    span = out.spans[0]
    if out.conn is not None:
        assert tlstiming.span_of(out.conn) is span
    assert span.side == "client"
    assert span.server_hostname == host
    assert_tiles(span)
    assert_exportable(span)
    if out.exc is not None:
        assert_error_matches(span, out.exc)
    else:
        assert span.outcome == "ok"
        assert span.error is None
    return out


def _ctx(pki: PKI, recorder: SpanRecorder) -> TimedSSLContext:
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    ctx.add_sink(recorder)
    return ctx


# -- successful handshakes ---------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls13(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf))
    out = handshake(transport, client_ctx, recorder, server.address)
    span = out.span
    assert out.data == GREETING
    assert out.version == "TLSv1.3"
    assert span.facts.protocol_version == "1.3"
    assert span.facts.sni == "localhost"
    assert span.facts.certificate_count == 1
    assert not span.facts.hello_retry
    assert not span.facts.resumed
    assert span.round_trips == 1
    assert_order(span, "server_hello", "server_flight", "certificate", "certificate_verify")
    assert_order(span, "certificate_verify", "finished")
    assert span.phases[-1].name == "finished"
    types = [(m.direction, m.type) for m in span.messages]
    assert types.index(("sent", "client_hello")) < types.index(("received", "server_hello"))
    assert types.index(("received", "certificate")) < types.index(("sent", "finished"))
    if transport == "sync":
        assert span.peer == out.peer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls12(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=TLS12))
    out = handshake(transport, client_ctx, recorder, server.address)
    span = out.span
    assert out.version == "TLSv1.2"
    assert span.facts.protocol_version == "1.2"
    assert span.round_trips == 2
    assert_order(span, "server_hello", "certificate", "server_key_exchange")
    assert_order(span, "client_key_exchange", "second_round_trip", "finished")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hello_retry(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf, ecdh_curve="secp384r1"))
    span = handshake(transport, client_ctx, recorder, server.address).span
    assert span.facts.hello_retry
    assert span.facts.hello_retry_group == "secp384r1"
    assert span.facts.group == "secp384r1"
    assert span.facts.key_share_groups_offered[0] == "x25519"
    assert span.round_trips == 2
    assert_order(span, "server_hello", "hello_retry", "server_flight", "certificate")
    hellos = [m for m in span.messages if m.type == "client_hello"]
    assert len(hellos) == 2


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_resumption(
    version: ssl.TLSVersion,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=version))
    first = handshake("sync", client_ctx, recorder, server.address)  # reads: tickets arrive
    assert first.session is not None
    second = handshake("sync", client_ctx, recorder, server.address, session=first.session)
    assert second.session_reused
    assert not first.span.facts.resumed
    assert second.span.facts.resumed
    assert second.span.facts.resumption_offered
    assert "certificate" not in [p.name for p in second.span.phases]
    assert second.span.facts.certificate_count == 0
    assert second.span.round_trips == 1
    assert first.span.span_id != second.span.span_id


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_export_holds_no_ticket(
    version: ssl.TLSVersion,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    tickets: list[bytes] = []

    def on_message(
        conn: Any, direction: str, v: Any, content_type: Any, kind: Any, data: bytes
    ) -> None:
        if direction == "write" and content_type == 22 and kind == 4:  # NewSessionTicket
            tickets.append(_ticket(bytes(data), tls13=version == TLS13))

    server_ctx = server_context(pki.leaf, maximum_version=version)
    server_ctx._msg_callback = on_message  # type: ignore[attr-defined]
    server = serve(server_ctx)
    first = handshake("sync", client_ctx, recorder, server.address)
    second = handshake("sync", client_ctx, recorder, server.address, session=first.session)
    assert second.session_reused
    assert tickets
    assert all(len(t) >= 16 for t in tickets)
    for span in (first.span, second.span):
        dumped = json.dumps(span.to_dict())
        for ticket in tickets:
            assert ticket.hex() not in dumped
            assert ticket.hex().upper() not in dumped
            assert repr(ticket)[2:-1] not in dumped
        assert span.facts.ocsp_response is None


def _ticket(message: bytes, *, tls13: bool) -> bytes:
    """The opaque ticket of a NewSessionTicket message (handshake header included)."""
    body = message[4:]
    if not tls13:  # lifetime(4) ticket<0..2^16-1>
        (size,) = struct.unpack("!H", body[4:6])
        return body[6 : 6 + size]
    nonce_size = body[8]  # lifetime(4) age_add(4) nonce<0..255> ticket<1..2^16-1>
    start = 9 + nonce_size
    (size,) = struct.unpack("!H", body[start : start + 2])
    return body[start + 2 : start + 2 + size]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_alpn_agreed(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf, alpn=["http/1.1"]))
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    out = handshake(transport, client_ctx, recorder, server.address)
    assert out.alpn == "http/1.1"
    assert out.span.facts.alpn_offered == ("h2", "http/1.1")
    assert out.span.facts.alpn_selected == "http/1.1"
    assert out.span.to_dict()["tls.next_protocol"] == "http/1.1"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_alpn_no_overlap_with_cpython_server_is_not_an_error(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    # CPython's server-side ALPN callback answers "no overlap" with NOACK.
    server = serve(server_context(pki.leaf, alpn=["h2"]))
    client_ctx.set_alpn_protocols(["http/1.1"])
    out = handshake(transport, client_ctx, recorder, server.address)
    assert out.alpn is None
    assert out.span.facts.alpn_offered == ("http/1.1",)
    assert out.span.facts.alpn_selected is None


@pytest.mark.openssl
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_alpn_mismatch_fatal_with_openssl_server(
    transport: Transport,
    openssl_serve: OpenSSLFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = openssl_serve(pki.leaf, ["-alpn", "h2"])
    client_ctx.set_alpn_protocols(["http/1.1"])
    out = handshake(transport, client_ctx, recorder, server.address, send=REV_LINE)
    assert not out.handshake_ok
    assert isinstance(out.exc, ssl.SSLError)
    assert "no application protocol" in str(out.exc)
    error = out.span.error
    assert error is not None
    assert error.alert == "no_application_protocol"
    assert error.alert_source == "peer"
    assert error.phase == "server_hello"
    assert out.span.facts.alpn_selected is None


# -- client certificates --------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_client_certificate_sent(
    version: ssl.TLSVersion,
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=version, client_ca=pki.ca))
    pki.client.configure_cert(client_ctx)
    out = handshake(transport, client_ctx, recorder, server.address)
    assert out.data == GREETING
    facts = out.span.facts
    assert facts.client_certificate_requested
    assert facts.client_certificate_sent
    assert facts.client_certificates_der  # OpenSSL may auto-chain the trusted root too
    assert server.next_result().client_cert
    if version == TLS13:
        assert_order(out.span, "certificate_verify", "client_certificate", "finished")
    else:
        assert_order(out.span, "certificate", "client_key_exchange", "finished")


def test_tls13_client_certificate_span_covers_only_the_handshake(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=TLS13, client_ca=pki.ca))
    pki.client.configure_cert(client_ctx)
    out = handshake("sync", client_ctx, recorder, server.address)
    assert out.span.outcome == "ok"
    assert max(m.t_ns for m in out.span.messages) <= out.span.end_ns
    assert out.span.round_trips == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls13_certificate_required_arrives_after_handshake(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    plain_ctx: ssl.SSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=TLS13, client_ca=pki.ca))
    out = handshake(transport, client_ctx, recorder, server.address)
    assert out.handshake_ok  # the client's handshake succeeds...
    assert isinstance(out.exc, ssl.SSLError)  # ...and the first read fails
    assert out.exc.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    span = out.span
    assert span.outcome == "error"
    assert span.error is not None
    assert span.error.phase == "post_handshake"
    assert span.error.alert == "certificate_required"
    assert span.error.alert_source == "peer"
    assert span.facts.client_certificate_requested
    assert not span.facts.client_certificate_sent
    assert span.phases[-1].name == "finished"  # the handshake itself completed
    assert server.next_result().error is not None
    # The caller's exception is exactly what plain ssl raises.
    plain = _sync(plain_ctx, server.address, "localhost", None, len(GREETING), GUARD, None)
    assert plain.handshake_ok
    assert plain.exc is not None
    assert (type(plain.exc), str(plain.exc)) == (type(out.exc), str(out.exc))
    assert len(recorder) == 1


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("case", "verify_code", "alert"),
    [
        ("missing_intermediate", 20, "unknown_ca"),
        ("expired", 10, "certificate_expired"),
        ("wrong_host", 62, "bad_certificate"),
        ("untrusted", 20, "unknown_ca"),
    ],
)
def test_verification_failure(
    case: str,
    verify_code: int,
    alert: str,
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    cert = {"missing_intermediate": pki.chained, "expired": pki.expired}.get(case, pki.leaf)
    if case == "untrusted":
        cert = pki.untrusted
    context = server_context(cert, send_intermediates=case != "missing_intermediate")
    host = "wrong.example.test" if case == "wrong_host" else "localhost"
    server = serve(context)
    out = handshake(transport, client_ctx, recorder, server.address, host)
    assert isinstance(out.exc, ssl.SSLCertVerificationError)
    assert out.exc.verify_code == verify_code
    error = out.span.error
    assert error is not None
    assert error.verify_code == verify_code
    assert error.reason == "CERTIFICATE_VERIFY_FAILED"
    checked = out.span.facts.chain_verification  # native hooks time OpenSSL's verification
    assert error.phase == ("certificate" if checked is None else "chain_verification")
    if checked is not None:
        assert (checked.ok, checked.error) == (False, verify_code)
    assert error.alert == alert
    assert error.alert_source == "local"
    assert out.span.facts.certificate_count == 1
    assert_order(out.span, "server_hello", "server_flight", "certificate")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_full_chain(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.chained))
    span = handshake(transport, client_ctx, recorder, server.address).span
    assert span.facts.certificate_count == 2
    leaf, intermediate = span.facts.certificates
    assert leaf.issuer == intermediate.subject


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_not_tls_peer(
    transport: Transport, serve: ServeFactory, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server = serve(mode="not_tls")
    out = handshake(transport, client_ctx, recorder, server.address)
    assert isinstance(out.exc, ssl.SSLError)
    assert out.exc.reason == "WRONG_VERSION_NUMBER"
    assert out.span.error is not None
    assert out.span.error.phase == "server_hello"
    assert out.span.facts.protocol_version is None


def test_never_answers_sync(
    serve: ServeFactory, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server = serve(mode="silent")
    out = handshake("sync", client_ctx, recorder, server.address, timeout=SHORT_TIMEOUT)
    assert isinstance(out.exc, TimeoutError)
    assert out.span.error is not None
    assert out.span.error.type == "TimeoutError"
    assert out.span.error.phase == "server_hello"
    assert [p.name for p in out.span.phases] == ["client_hello", "server_hello"]
    assert [m.type for m in out.span.messages] == ["client_hello"]


def test_reset_sync(
    serve: ServeFactory, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server = serve(mode="reset")
    out = handshake("sync", client_ctx, recorder, server.address)
    assert isinstance(out.exc, ConnectionResetError)
    assert out.span.error is not None
    assert out.span.error.type == "ConnectionResetError"
    assert out.span.error.phase == "server_hello"


def _abandoned(
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
    address: tuple[str, int],
    timeout: float | None,
) -> HandshakeSpan:
    """asyncio gives up on a handshake outside do_handshake(): one "abandoned" span."""
    out = asyncio.run(_asyncio(client_ctx, address, "localhost", None, 0, timeout))
    assert out.exc is not None  # the caller's own exception, raised by asyncio
    gc.collect()  # asyncio's transport and protocol hold the SSLObject in a cycle
    (span,) = recorder.spans
    assert span.outcome == "error"
    assert span.error is not None
    assert span.error.type == "tlstiming.HandshakeAbandoned"
    assert span.error.type == qualified_name(tlstiming.HandshakeAbandoned("x"))
    assert_tiles(span)
    assert_exportable(span)
    return span


def test_never_answers_asyncio(
    serve: ServeFactory, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server = serve(mode="silent")
    span = _abandoned(client_ctx, recorder, server.address, SHORT_TIMEOUT)
    assert span.error is not None
    assert span.error.phase == "server_hello"
    assert [m.type for m in span.messages] == ["client_hello"]


def test_reset_asyncio(
    serve: ServeFactory, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server = serve(mode="reset")
    span = _abandoned(client_ctx, recorder, server.address, GUARD)
    assert span.error is not None
    assert span.error.phase == "server_hello"


# -- a foreign implementation: openssl s_server --------------------------------------------


@pytest.mark.openssl
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("args", "version", "hrr"),
    [
        ([], "1.3", False),
        (["-tls1_2"], "1.2", False),
        (["-groups", "secp384r1"], "1.3", True),
    ],
    ids=["tls13", "tls12", "hrr"],
)
def test_openssl_server(
    args: list[str],
    version: str,
    hrr: bool,
    transport: Transport,
    openssl_serve: OpenSSLFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = openssl_serve(pki.chained, args)
    out = handshake(
        transport, client_ctx, recorder, server.address, send=REV_LINE, expect=len(REV_LINE)
    )
    assert out.data == REV_LINE[-2::-1] + b"\n"
    span = out.span
    assert span.facts.protocol_version == version
    assert span.facts.hello_retry is hrr
    assert span.facts.certificate_count == 2
    assert span.round_trips == (1 if version == "1.3" and not hrr else 2)
    assert_order(span, "server_hello", "certificate", "finished")


@pytest.mark.openssl
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_openssl_server_certificate_required(
    transport: Transport,
    openssl_serve: OpenSSLFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = openssl_serve(pki.leaf, ["-Verify", "1", "-verify_return_error"], client_ca=pki.ca)
    out = handshake(
        transport, client_ctx, recorder, server.address, send=REV_LINE, expect=len(REV_LINE)
    )
    assert out.handshake_ok
    assert isinstance(out.exc, ssl.SSLError)
    error = out.span.error
    assert error is not None
    assert error.phase == "post_handshake"
    assert error.alert == "certificate_required"


# -- the server side -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ("server_hello", "server_flight", "finished")),
        ({"maximum_version": TLS12}, ("server_hello", "client_key_exchange", "finished")),
        ({"ecdh_curve": "secp384r1"}, ("server_hello", "hello_retry", "server_flight")),
        ({"client_ca": True}, ("server_flight", "client_certificate", "finished")),
    ],
    ids=["tls13", "tls12", "hrr", "mtls"],
)
def test_server_spans(
    options: dict[str, Any],
    expected: tuple[str, ...],
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    if options.get("client_ca"):
        options = {**options, "client_ca": pki.ca}
        pki.client.configure_cert(client_ctx)
    server_recorder = SpanRecorder()
    server_ctx = server_context(pki.leaf, factory=TimedSSLContext, **options)
    assert isinstance(server_ctx, TimedSSLContext)
    server_ctx.add_sink(server_recorder)
    server = serve(server_ctx)
    out = handshake(transport, client_ctx, recorder, server.address)
    assert out.data == GREETING  # written after the server's handshake: its span exists
    assert len(server_recorder) == 1
    span = server_recorder.spans[0]
    assert span.side == "server"
    assert span.outcome == "ok"
    assert span.server_hostname is None
    assert span.facts.sni == "localhost"
    assert_tiles(span)
    assert_exportable(span)
    assert_order(span, *expected)
    assert "sni_callback" not in [p.name for p in span.phases]
    assert span.facts.protocol_version == out.span.facts.protocol_version
    assert span.facts.cipher == out.span.facts.cipher
    assert span.facts.hello_retry == out.span.facts.hello_retry
    assert span.round_trips >= 1
    assert span.peer == out.extra["sockname"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_sni_callback_phase(
    transport: Transport,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    seen: list[str | None] = []

    def on_sni(conn: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        assert isinstance(conn, ssl.SSLSocket)
        seen.append(name)

    server_recorder = SpanRecorder()
    server_ctx = server_context(pki.wildcard, factory=TimedSSLContext)
    assert isinstance(server_ctx, TimedSSLContext)
    server_ctx.sni_callback = on_sni
    assert server_ctx.sni_callback is on_sni
    server_ctx.add_sink(server_recorder)
    server = serve(server_ctx)
    handshake(transport, client_ctx, recorder, server.address, "sni.example.test")
    assert seen == ["sni.example.test"]
    (span,) = server_recorder.spans
    assert_tiles(span)
    assert_order(span, "client_hello", "sni_callback", "server_hello", "server_flight")
    assert span.facts.sni == "sni.example.test"


def test_server_failure_span(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server_recorder = SpanRecorder()
    server_ctx = server_context(pki.leaf, factory=TimedSSLContext, client_ca=pki.ca)
    assert isinstance(server_ctx, TimedSSLContext)
    server_ctx.add_sink(server_recorder)
    server = serve(server_ctx)
    handshake("sync", client_ctx, recorder, server.address)  # no client certificate
    result = server.next_result()
    assert result.error is not None
    (span,) = server_recorder.spans
    assert span.side == "server"
    assert_error_matches(span, result.error)
    assert span.error is not None
    assert span.error.alert == "certificate_required"
    assert span.error.alert_source == "local"
    assert_tiles(span)
    assert_exportable(span)


# -- sinks see what span_of sees ---------------------------------------------------------------


def test_global_subscribe_and_sink_order(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    calls: list[str] = []
    client_ctx.add_sink(lambda span: calls.append("second"))
    global_sink: Callable[[HandshakeSpan], None] = lambda span: calls.append("global")  # noqa: E731
    tlstiming.subscribe(global_sink)
    try:
        server = serve(server_context(pki.leaf))
        handshake("sync", client_ctx, recorder, server.address)
    finally:
        tlstiming.unsubscribe(global_sink)
    assert calls == ["second", "global"]


def test_failing_sink_never_reaches_the_connection(
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(span: HandshakeSpan) -> None:
        raise RuntimeError("sink failure")

    client_ctx.add_sink(broken)
    server = serve(server_context(pki.leaf))
    out = handshake("sync", client_ctx, recorder, server.address)
    assert out.data == GREETING
    assert any("sink" in r.getMessage() for r in caplog.records)


# -- handshakes driven step by step -------------------------------------------------------------


def test_non_blocking_handshake_spans_every_call(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    hold = threading.Event()
    server = serve(server_context(pki.leaf), hold=hold)
    raw = socket.create_connection(server.address, timeout=GUARD)
    tls = client_ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
    with tls:
        assert tlstiming.span_of(tls) is None
        tls.setblocking(False)
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()  # the server holds: no ServerHello can have arrived
        assert tlstiming.span_of(tls) is None
        assert len(recorder) == 0
        hold.set()
        calls = 1
        while True:
            select.select([tls], [], [], GUARD)
            calls += 1
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                continue
        tls.setblocking(True)
        assert read_exactly(tls, len(GREETING)) == GREETING
        span = tlstiming.span_of(tls)
    assert calls >= 2
    assert recorder.spans == (span,)
    assert span is not None
    assert span.outcome == "ok"
    assert_tiles(span)
    assert_order(span, "server_hello", "server_flight", "certificate", "finished")


def test_tls13_client_certificate_span_delivered_on_close_without_read(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=TLS13, client_ca=pki.ca))
    pki.client.configure_cert(client_ctx)
    with connect(client_ctx, server.address) as tls:
        assert len(recorder) == 0  # waiting for the server's verdict
    assert len(recorder) == 1
    span = recorder.spans[0]
    assert tlstiming.span_of(tls) is span
    assert span.outcome == "ok"
    assert span.facts.client_certificate_sent
    assert_tiles(span)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 support in this Python")
def test_ipv6_peer(serve: ServeFactory, pki: PKI, recorder: SpanRecorder) -> None:
    try:
        server = serve(server_context(pki.leaf), host="::1")
    except OSError as exc:
        pytest.skip(f"::1 is not available here: {exc}")
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    ctx.add_sink(recorder)
    out = handshake("sync", ctx, recorder, server.address)
    assert out.span.peer == ("::1", server.port)
    assert out.span.to_dict()["network.peer.address"] == "::1"


# -- a handshake no do_handshake() call announced ---------------------------------------------


def _implicit(ctx: TimedSSLContext, address: tuple[str, int], host: str) -> Outcome:
    """do_handshake_on_connect=False and no do_handshake(): the first write handshakes."""
    out = Outcome(spans=())
    raw = socket.create_connection(address, timeout=GUARD)
    with ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False) as tls:
        out.conn = tls
        try:
            tls.sendall(b"first write")
            out.data = read_exactly(tls, len(GREETING))
        except Exception as exc:
            out.exc = exc
    return out


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_implicit_handshake(
    version: ssl.TLSVersion,
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=version))
    out = _implicit(client_ctx, server.address, "localhost")
    assert out.exc is None
    assert out.data == GREETING
    (span,) = recorder.spans
    assert out.conn is not None
    assert tlstiming.span_of(out.conn) is span
    assert span.outcome == "ok"
    assert_tiles(span)
    assert_order(span, "server_hello", "certificate", "finished")


def test_implicit_handshake_failure_names_its_alert(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    """A handshake driven by read/write raises where no hook sees it (docs/internals.md)."""
    server = serve(server_context(pki.leaf))
    out = _implicit(client_ctx, server.address, "wrong.example.test")
    assert isinstance(out.exc, ssl.SSLCertVerificationError)
    (span,) = recorder.spans
    assert span.error is not None
    assert span.error.alert == "bad_certificate"
    assert span.error.alert_source == "local"
    assert span.error.phase == "certificate"
    assert isinstance(out.exc, ssl.SSLError)  # the recorded type is a base of the real one
    assert span.error.type == "ssl.SSLError"
    assert "fatal alert bad_certificate sent" in span.error.message
