"""Verifiers run after the handshake, before the caller gets the connection."""

from __future__ import annotations

import asyncio
import ssl
import threading

import pytest
from conftest import ServeFactory
from servers import PKI, assert_tiles, connect, qualified_name, server_context

import tlstiming
from tlstiming import PeerInfo, SpanRecorder, TimedSSLContext, Verdict, VerificationFailed

# Every case runs with the C accelerator and with the pure-Python hot path.
pytestmark = pytest.mark.usefixtures("implementation")


def test_verifier_sees_the_peer_and_becomes_a_phase(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    seen: list[PeerInfo] = []

    def check(peer: PeerInfo) -> Verdict:
        seen.append(peer)
        return Verdict(details={"leaf_bytes": len(peer.chain_der[0])})

    client_ctx.add_verifier(check, name="inspect")
    server = serve(server_context(pki.chained, alpn=["http/1.1"]))
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    with connect(client_ctx, server.address) as tls:
        tls.recv(2)
    (peer,) = seen
    assert peer.side == "client"
    assert peer.server_hostname == peer.sni == "localhost"
    assert peer.alpn == "http/1.1"
    assert peer.protocol_version == "1.3"
    assert peer.resumed is False
    assert peer.may_block is True
    assert len(peer.chain) == 2
    assert peer.chain[0].subject != peer.chain[1].subject
    assert peer.context is client_ctx
    (span,) = recorder.spans
    assert span.outcome == "ok"
    assert [p.name for p in span.phases][-2:] == ["finished", "verify:inspect"]
    (check_run,) = span.verifications
    assert check_run.outcome == "accepted"
    assert check_run.details == (("leaf_bytes", len(peer.chain_der[0])),)
    assert span.phases[-1].start_ns == check_run.start_ns
    assert span.end_ns == check_run.end_ns
    assert_tiles(span)
    exported = span.to_dict()
    assert exported["tlstiming.verifications"][0]["outcome"] == "accepted"


def test_rejection_reaches_the_caller_as_a_verification_error(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    later: list[str] = []

    def deny(peer: PeerInfo) -> None:
        raise VerificationFailed("not on the list")

    client_ctx.add_verifier(lambda peer: None, name="first")
    client_ctx.add_verifier(deny, name="pin")
    client_ctx.add_verifier(lambda peer: later.append("ran"), name="never")
    server = serve(server_context(pki.leaf))
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        connect(client_ctx, server.address)
    exc = caught.value
    assert isinstance(exc, tlstiming.VerifierRejected)
    assert str(exc) == "certificate verify failed: pin: not on the list"
    assert exc.verify_message == "not on the list"
    assert later == []
    (span,) = recorder.spans
    assert span.outcome == "error"
    assert span.error is not None
    assert span.error.type == qualified_name(exc) == "tlstiming.VerifierRejected"
    assert span.error.message == str(exc)
    assert span.error.phase == "verify:pin"
    assert [v.outcome for v in span.verifications] == ["accepted", "rejected"]
    assert_tiles(span)


def test_no_application_data_after_a_rejection(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext
) -> None:
    client_ctx.add_verifier(lambda peer: Verdict(ok=False, reason="no"), name="deny")
    server = serve(server_context(pki.leaf), mode="echo")
    raw = __import__("socket").create_connection(server.address)
    tls = client_ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
    with tls:
        with pytest.raises(tlstiming.VerifierRejected):
            tls.do_handshake()
        # the socket was shut down: a broken pipe, a reset or an SSL error, as it happens
        with pytest.raises((BrokenPipeError, ConnectionResetError, ssl.SSLError)):
            tls.sendall(b"secret")


@pytest.mark.parametrize("on_error", ["reject", "accept"])
def test_a_crashing_verifier_follows_its_policy(
    serve: ServeFactory,
    pki: PKI,
    client_ctx: TimedSSLContext,
    recorder: SpanRecorder,
    on_error: str,
) -> None:
    def broken(peer: PeerInfo) -> None:
        raise KeyError("oops")

    client_ctx.add_verifier(broken, on_error=on_error)  # type: ignore[arg-type]
    server = serve(server_context(pki.leaf))
    if on_error == "reject":
        with pytest.raises(tlstiming.VerifierRejected, match="broken: KeyError"):
            connect(client_ctx, server.address)
    else:
        connect(client_ctx, server.address).close()
    (span,) = recorder.spans
    (run,) = span.verifications
    assert run.outcome == "error"
    assert run.reason == "KeyError: 'oops'"
    assert span.outcome == ("error" if on_error == "reject" else "ok")


def test_a_verifier_past_its_timeout_never_holds_the_caller(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    release = threading.Event()

    def hangs(peer: PeerInfo) -> None:
        release.wait(30)

    client_ctx.add_verifier(hangs, timeout=0.05)
    server = serve(server_context(pki.leaf))
    try:
        with pytest.raises(tlstiming.VerifierRejected, match="did not finish"):
            connect(client_ctx, server.address)
        assert not release.is_set()  # the caller returned while the verifier still ran
    finally:
        release.set()
    (span,) = recorder.spans
    assert span.verifications[0].outcome == "timeout"


def test_verifiers_run_on_the_asyncio_path(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext, recorder: SpanRecorder
) -> None:
    seen: list[PeerInfo] = []
    client_ctx.add_verifier(seen.append, name="spy")
    client_ctx.add_verifier(lambda peer: Verdict(ok=False, reason="nope"), name="deny")
    server = serve(server_context(pki.leaf))

    async def main() -> None:
        await asyncio.open_connection(*server.address, ssl=client_ctx, server_hostname="localhost")

    with pytest.raises(tlstiming.VerifierRejected):
        asyncio.run(main())
    assert seen[0].may_block is False
    (span,) = recorder.spans
    assert span.error is not None
    assert span.error.phase == "verify:deny"


def test_resumed_handshake_gives_the_leaf_from_the_session(
    serve: ServeFactory, pki: PKI, client_ctx: TimedSSLContext
) -> None:
    seen: list[PeerInfo] = []
    client_ctx.add_verifier(seen.append, name="spy")
    server = serve(server_context(pki.leaf))
    with connect(client_ctx, server.address) as first:
        first.recv(2)
        session = first.session
    with connect(client_ctx, server.address, session=session) as second:
        assert second.session_reused
    assert [p.resumed for p in seen] == [False, True]
    assert seen[1].chain_der == seen[0].chain_der[:1]


def test_add_verifier_rejects_misuse(client_ctx: TimedSSLContext) -> None:
    with pytest.raises(TypeError):
        client_ctx.add_verifier("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        client_ctx.add_verifier(lambda peer: None, timeout=0)
    with pytest.raises(ValueError, match="on_error"):
        client_ctx.add_verifier(lambda peer: None, on_error="maybe")  # type: ignore[arg-type]

    def check(peer: PeerInfo) -> None:
        return None

    client_ctx.add_verifier(check)
    assert [v.name for v in client_ctx.verifiers] == ["check"]
    client_ctx.remove_verifier(check)
    assert client_ctx.verifiers == ()
    with pytest.raises(ValueError, match="not registered"):
        client_ctx.remove_verifier(check)


# -- trust-store cost -------------------------------------------------------------


def test_trust_loads_are_counted_per_context_and_seen_by_spans(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = tlstiming.create_default_context(cadata=pki.ca_pem)
    context.add_sink(recorder)
    stats = context.trust_stats
    assert stats.trust_loads == 1
    assert stats.trust_load_ns > 0
    assert stats.build_ns > 0
    server = serve(server_context(pki.leaf))
    connect(context, server.address).close()
    context.load_verify_locations(cadata=pki.ca_pem)  # what urllib3 does per connection
    connect(context, server.address).close()
    connect(context, server.address).close()
    first, second, third = (span.context_stats for span in recorder.spans)
    assert first is not None and second is not None and third is not None
    assert first.context_id == second.context_id == stats.context_id
    assert [s.handshake_index for s in (first, second, third)] == [1, 2, 3]
    assert [s.trust_loads_since_previous for s in (first, second, third)] == [1, 1, 0]
    assert third.trust_loads == 2
    assert third.trust_load_ns > first.trust_load_ns
    exported = recorder.spans[1].to_dict()
    assert exported["tlstiming.context.trust_loads_since_previous"] == 1


def test_a_context_per_connection_shows_as_first_handshakes(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    server = serve(server_context(pki.leaf))
    for _ in range(3):
        context = tlstiming.create_default_context(cadata=pki.ca_pem)
        context.add_sink(recorder)
        connect(context, server.address).close()
    stats = [span.context_stats for span in recorder.spans]
    assert all(s is not None and s.handshake_index == 1 for s in stats)
    assert len({s.context_id for s in stats if s is not None}) == 3


def test_failed_loads_are_counted_and_raise_as_in_ssl(pki: PKI) -> None:
    context = tlstiming.TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(FileNotFoundError):
        context.load_verify_locations("/nonexistent/ca.pem")
    with pytest.raises(TypeError):
        context.load_verify_locations()
    context.set_default_verify_paths()
    assert context.trust_stats.trust_loads == 3
