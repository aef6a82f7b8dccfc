"""The built-in verifiers through real loopback handshakes (``TimedSSLContext.add_verifier``)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocsp_responder import GUARD, CRLServer, OCSPResponder
from servers import GREETING, LoopbackServer, connect, read_exactly
from verifier_pki import Authority, Chain, crl, issue, make_chain, server_context

import tlstiming
from tlstiming.verifiers import ChainAnalysis, CRLVerifier, OCSPVerifier, SPKIPins, spki_pin

pytestmark = pytest.mark.skipif(
    not hasattr(tlstiming.TimedSSLContext, "add_verifier"),
    reason="TimedSSLContext.add_verifier() has not landed yet",
)


@pytest.fixture(scope="module")
def root() -> Authority:
    return issue("E2E Test Root", None, ca=True)


@pytest.fixture(scope="module")
def intermediate(root: Authority) -> Authority:
    return issue("E2E Test Intermediate", root, ca=True)


@pytest.fixture
def responder(intermediate: Authority) -> Iterator[OCSPResponder]:
    with OCSPResponder(intermediate) as responder:
        yield responder


@pytest.fixture
def chain(root: Authority, intermediate: Authority, responder: OCSPResponder) -> Chain:
    return make_chain(ocsp_url=responder.url("/"), root=root, intermediate=intermediate)


@pytest.fixture
def recorder() -> tlstiming.SpanRecorder:
    return tlstiming.SpanRecorder()


def client(*trusted: Authority, recorder: tlstiming.SpanRecorder) -> tlstiming.TimedSSLContext:
    cadata = "".join(a.pem.decode("ascii") for a in trusted)
    context = tlstiming.create_default_context(cadata=cadata)
    context.add_sink(recorder)
    return context


def serve(chain: Chain, tmp_path: Path, **options: bool) -> LoopbackServer:
    return LoopbackServer(server_context(chain, tmp_path, **options))


def only_verification(recorder: tlstiming.SpanRecorder) -> tlstiming.Verification:
    (span,) = recorder.spans
    (check,) = span.verifications
    assert f"verify:{check.name}" in [phase.name for phase in span.phases]
    return check


def test_a_pin_mismatch_refuses_the_connection(
    root: Authority, chain: Chain, tmp_path: Path, recorder: tlstiming.SpanRecorder
) -> None:
    context = client(root, recorder=recorder)
    context.add_verifier(SPKIPins([spki_pin(make_chain().leaf.cert)]), name="pins")
    with serve(chain, tmp_path) as server, pytest.raises(tlstiming.VerifierRejected) as caught:
        connect(context, server.address)
    assert isinstance(caught.value, ssl.SSLCertVerificationError)
    assert caught.value.verifier == "pins"
    assert f'pin-sha256="{spki_pin(chain.leaf.cert)}"' in str(caught.value)
    check = only_verification(recorder)
    assert check.outcome == "rejected"


def test_a_pin_match_delivers_the_connection(
    root: Authority, chain: Chain, tmp_path: Path, recorder: tlstiming.SpanRecorder
) -> None:
    context = client(root, recorder=recorder)
    pins = SPKIPins([spki_pin(chain.intermediate.cert)])
    context.add_verifier(pins, name=pins.name)
    with serve(chain, tmp_path) as server, connect(context, server.address) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING
    check = only_verification(recorder)
    assert check.outcome == "accepted"
    assert dict(check.details)["position"] == 1


def test_ocsp_good_through_a_handshake(
    root: Authority,
    chain: Chain,
    responder: OCSPResponder,
    tmp_path: Path,
    recorder: tlstiming.SpanRecorder,
) -> None:
    context = client(root, recorder=recorder)
    with OCSPVerifier() as ocsp:
        context.add_verifier(ocsp, name=ocsp.name)
        with serve(chain, tmp_path) as server:
            for _ in range(2):
                with connect(context, server.address) as tls:
                    assert read_exactly(tls, len(GREETING)) == GREETING
    sources = [dict(span.verifications[0].details)["source"] for span in recorder.spans]
    assert sources == ["network", "cache"]
    assert all(span.verifications[0].outcome == "accepted" for span in recorder.spans)
    assert len(responder.requests) == 1


def test_a_stalled_responder_does_not_hold_the_handshake(
    root: Authority,
    chain: Chain,
    responder: OCSPResponder,
    tmp_path: Path,
    recorder: tlstiming.SpanRecorder,
) -> None:
    """The seed failure: soft-fail at the deadline, the caller gets a working connection."""
    responder.mode = "stall"
    context = client(root, recorder=recorder)
    with OCSPVerifier(timeout=0.2) as ocsp:
        context.add_verifier(ocsp, name="ocsp")
        with serve(chain, tmp_path) as server, connect(context, server.address) as tls:
            assert responder.stalled.is_set()
            assert not responder.handler_exited.is_set()  # we did not wait for it
            assert read_exactly(tls, len(GREETING)) == GREETING
    check = only_verification(recorder)
    assert check.outcome == "soft_failed"
    assert dict(check.details)["error"] == "timeout"


def test_hard_fail_refuses_when_the_responder_stalls(
    root: Authority,
    chain: Chain,
    responder: OCSPResponder,
    tmp_path: Path,
    recorder: tlstiming.SpanRecorder,
) -> None:
    responder.mode = "stall"
    context = client(root, recorder=recorder)
    with OCSPVerifier(timeout=0.2, hard_fail=True) as ocsp:
        context.add_verifier(ocsp, name="ocsp")
        with serve(chain, tmp_path) as server, pytest.raises(tlstiming.VerifierRejected) as caught:
            connect(context, server.address)
    assert "no complete answer within 0.2 s" in str(caught.value)
    assert not responder.handler_exited.is_set()


def test_revoked_through_a_handshake(
    root: Authority,
    chain: Chain,
    responder: OCSPResponder,
    tmp_path: Path,
    recorder: tlstiming.SpanRecorder,
) -> None:
    responder.statuses[chain.leaf.cert.serial_number] = "revoked"
    context = client(root, recorder=recorder)
    with OCSPVerifier() as ocsp:
        context.add_verifier(ocsp, name="ocsp")
        with serve(chain, tmp_path) as server, pytest.raises(tlstiming.VerifierRejected) as caught:
            connect(context, server.address)
    assert "certificate revoked at" in str(caught.value)


def test_crl_revoked_through_a_handshake(
    root: Authority,
    intermediate: Authority,
    tmp_path: Path,
    recorder: tlstiming.SpanRecorder,
) -> None:
    with CRLServer() as crls:
        chain = make_chain(crl_url=crls.url("/i.crl"), root=root, intermediate=intermediate)
        crls.crls["/i.crl"] = crl(intermediate, [chain.leaf.cert])
        context = client(root, recorder=recorder)
        with CRLVerifier() as check:
            context.add_verifier(check, name=check.name)
            with serve(chain, tmp_path) as server, pytest.raises(tlstiming.VerifierRejected):
                connect(context, server.address)
    assert only_verification(recorder).outcome == "rejected"


def test_missing_intermediate_is_reported(
    root: Authority,
    intermediate: Authority,
    chain: Chain,
    tmp_path: Path,
    recorder: tlstiming.SpanRecorder,
) -> None:
    """The client holds the intermediate, so OpenSSL verifies; the analysis tells."""
    context = client(root, intermediate, recorder=recorder)
    analysis = ChainAnalysis()
    context.add_verifier(analysis, name=analysis.name)
    with serve(chain, tmp_path, send_intermediate=False) as server:
        with connect(context, server.address) as tls:
            assert read_exactly(tls, len(GREETING)) == GREETING
    check = only_verification(recorder)
    assert check.outcome == "soft_failed"
    assert dict(check.details)["findings"] == "missing_intermediate"


def test_asyncio_never_waits_for_the_responder(
    root: Authority,
    chain: Chain,
    responder: OCSPResponder,
    tmp_path: Path,
    recorder: tlstiming.SpanRecorder,
) -> None:
    """On the event loop a miss soft-fails as pending; the next handshake hits the cache."""
    responder.mode = "stall"
    context = client(root, recorder=recorder)

    async def handshake(port: int) -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        try:
            return await reader.readexactly(len(GREETING))
        finally:
            writer.close()
            await writer.wait_closed()

    with OCSPVerifier(timeout=GUARD, failure_ttl=0) as ocsp, serve(chain, tmp_path) as server:
        context.add_verifier(ocsp, name="ocsp")
        assert asyncio.run(handshake(server.port)) == GREETING
        assert not responder.handler_exited.is_set()  # the handshake did not wait for it
        assert responder.stalled.wait(GUARD)  # the background fetch is stuck there
        responder.mode = "answer"
        responder.release.set()  # the stalled fetch fails; failures are not cached here
        assert ocsp.wait_idle(GUARD)
        assert asyncio.run(handshake(server.port)) == GREETING  # pending again, answered
        assert ocsp.wait_idle(GUARD)
        assert asyncio.run(handshake(server.port)) == GREETING
    statuses = [dict(s.verifications[0].details)["status"] for s in recorder.spans]
    assert statuses == ["pending", "pending", "good"]
    assert [s.verifications[0].outcome for s in recorder.spans] == [
        "soft_failed",
        "soft_failed",
        "accepted",
    ]
