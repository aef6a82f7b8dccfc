"""Security: the verification path fails closed, whatever a verifier does.

Each case runs on both hot paths (the C accelerator and pure Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ServeFactory
from servers import GREETING, PKI, server_context

import tlstiming
from tlstiming import PeerInfo, SpanRecorder, TimedSSLContext, Verdict
from tlstiming._recording import decide as _decide
from tlstiming._recording import finish as _finish
from tlstiming._recording import keys as _keys
from tlstiming._recording import verify_workers as _verify_workers

pytestmark = pytest.mark.usefixtures("implementation")


def _bad_verdict(**fields: Any) -> Verdict:
    """A Verdict changed after its checks: what a buggy verifier can still hand back."""
    verdict = Verdict()
    for name, value in fields.items():
        object.__setattr__(verdict, name, value)
    return verdict


MALFORMED: dict[str, Callable[[], object]] = {
    "False": lambda: False,
    "zero": lambda: 0,
    "string": lambda: "reject",
    "dict": lambda: {"ok": False},
    "true": lambda: True,
    "details-not-mapping": lambda: _bad_verdict(details=[("a", 1)]),
    "details-bytes-key": lambda: _bad_verdict(details={b"k": 1}),
    "details-object-value": lambda: _bad_verdict(details={"k": object()}),
    "ok-not-bool": lambda: _bad_verdict(ok="yes"),
    "reason-not-str": lambda: _bad_verdict(ok=False, reason=5),
    "verdict-built-wrong": lambda: Verdict(details={1: 2}),  # type: ignore[dict-item]
}


def _client(pki: PKI, recorder: SpanRecorder) -> TimedSSLContext:
    context = tlstiming.create_default_context(cadata=pki.ca_pem)
    context.add_sink(recorder)
    return context


def _read(read: Callable[[], bytes]) -> bytes | Exception:
    """What a read gives: data, or the error it raised."""
    try:
        return read()
    except (OSError, ssl.SSLError) as exc:  # VerifierRejected is one too
        return exc


@pytest.mark.parametrize("answer", sorted(MALFORMED))
def test_a_malformed_answer_rejects_on_the_client(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, answer: str
) -> None:
    context = _client(pki, recorder)
    context.add_verifier(lambda peer: MALFORMED[answer](), name="odd")  # type: ignore[arg-type,return-value]
    server = serve(server_context(pki.leaf))
    raw = socket.create_connection(server.address)
    with context.wrap_socket(
        raw, server_hostname="localhost", do_handshake_on_connect=False
    ) as tls:
        with pytest.raises(tlstiming.VerifierRejected, match="odd: "):
            tls.do_handshake()
        assert _read(lambda: tls.recv(len(GREETING))) != GREETING
    (span,) = recorder.spans
    (run,) = span.verifications
    assert run.outcome == "error"
    assert span.outcome == "error"
    assert span.error is not None and span.error.phase == "verify:odd"


@pytest.mark.parametrize("answer", ["False", "details-bytes-key"])
def test_a_malformed_answer_follows_on_error_accept(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, answer: str
) -> None:
    context = _client(pki, recorder)
    context.add_verifier(lambda peer: MALFORMED[answer](), name="odd", on_error="accept")  # type: ignore[arg-type,return-value]
    server = serve(server_context(pki.leaf))
    with socket.create_connection(server.address) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(len(GREETING)) == GREETING
    (span,) = recorder.spans
    assert span.outcome == "ok"
    assert span.verifications[0].outcome == "error"
    assert "malformed verdict" in (span.verifications[0].reason or "")


def test_a_malformed_answer_rejects_on_asyncio(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    context.add_verifier(lambda peer: False, name="odd")  # type: ignore[arg-type,return-value]
    server = serve(server_context(pki.leaf))

    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(
            *server.address, ssl=context, server_hostname="localhost"
        )
        try:
            return await reader.read(len(GREETING))
        finally:
            writer.close()

    with pytest.raises(tlstiming.VerifierRejected):
        asyncio.run(main())
    (span,) = recorder.spans
    assert span.verifications[0].outcome == "error"


def test_a_malformed_answer_rejects_on_the_server(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    server_ctx = server_context(pki.leaf, factory=TimedSSLContext)
    assert isinstance(server_ctx, TimedSSLContext)
    server_ctx.add_sink(recorder)
    server_ctx.add_verifier(lambda peer: False, name="odd")  # type: ignore[arg-type,return-value]
    server = serve(server_ctx)
    client = ssl.create_default_context(cadata=pki.ca_pem)
    with socket.create_connection(server.address) as raw:
        with client.wrap_socket(raw, server_hostname="localhost") as tls:
            assert _read(lambda: tls.recv(len(GREETING))) != GREETING
    result = server.next_result()
    assert isinstance(result.error, tlstiming.VerifierRejected)
    assert result.received == b""
    (span,) = recorder.spans
    assert span.side == "server"
    assert span.verifications[0].outcome == "error"


def test_a_failure_of_tlstiming_itself_while_verifying_rejects(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: Any, events: Any) -> Any:
        raise RuntimeError("facts could not be read")

    monkeypatch.setattr(_decide, "_peer_info", broken)
    context = _client(pki, recorder)
    context.add_verifier(lambda peer: None, name="fine", on_error="accept")
    server = serve(server_context(pki.leaf))
    with socket.create_connection(server.address) as raw:
        with pytest.raises(tlstiming.VerifierRejected, match="verification could not run"):
            context.wrap_socket(raw, server_hostname="localhost")
    (span,) = recorder.spans
    assert span.outcome == "error"


def test_a_recording_failure_after_a_rejection_still_rejects(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("span could not be built")

    monkeypatch.setattr(_finish, "record", broken)
    context = _client(pki, recorder)
    context.add_verifier(lambda peer: Verdict(ok=False, reason="no"), name="deny")
    server = serve(server_context(pki.leaf))
    with socket.create_connection(server.address) as raw:
        with pytest.raises(tlstiming.VerifierRejected, match="deny: no"):
            context.wrap_socket(raw, server_hostname="localhost")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": b"pin"}, TypeError),
        ({"name": ""}, ValueError),
        ({"name": "a\nb"}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": float("inf")}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"timeout": True}, TypeError),
        ({"timeout": "1"}, TypeError),
        ({"on_error": "ignore"}, ValueError),
    ],
)
def test_add_verifier_refuses_bad_names_and_options(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    context = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(error):
        context.add_verifier(lambda peer: None, **kwargs)
    assert context.verifiers == ()


def test_add_verifier_refuses_a_non_str_name_attribute() -> None:
    class Pins:
        name = 7

        def __call__(self, peer: PeerInfo) -> None:
            return None

    context = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(TypeError, match="name must be a str"):
        context.add_verifier(Pins())


# -- handshakes that a read or a write drives --------------------------------------


def _deny(peer: PeerInfo) -> Verdict:
    return Verdict(ok=False, reason="pin mismatch")


@pytest.mark.parametrize("first", ["sendall", "recv"])
def test_verifiers_run_before_a_read_or_write_driven_handshake_passes_data(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, first: str
) -> None:
    context = _client(pki, recorder)
    context.add_verifier(_deny, name="pins")
    server = serve(server_context(pki.leaf))
    raw = socket.create_connection(server.address)
    with context.wrap_socket(
        raw, server_hostname="localhost", do_handshake_on_connect=False
    ) as tls:
        drive = (lambda: tls.sendall(b"secret")) if first == "sendall" else tls.recv
        with pytest.raises(tlstiming.VerifierRejected, match="pins: pin mismatch"):
            drive()
        for again in (lambda: tls.sendall(b"secret"), lambda: tls.recv(10), tls.do_handshake):
            with pytest.raises(tlstiming.VerifierRejected):
                again()
    assert server.next_result().received == b""
    (span,) = recorder.spans
    assert [v.outcome for v in span.verifications] == ["rejected"]


def test_a_verifier_added_after_the_connection_still_runs_before_data(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    server = serve(server_context(pki.leaf))
    raw = socket.create_connection(server.address)
    with context.wrap_socket(
        raw, server_hostname="localhost", do_handshake_on_connect=False
    ) as tls:
        context.add_verifier(_deny, name="late")  # this connection is not guarded
        # The verifiers run inside OpenSSL's write, which the rejection cuts short:
        # the socket's own error surfaces with the rejection as its context.
        with pytest.raises((tlstiming.VerifierRejected, OSError)) as caught:
            tls.sendall(b"secret")
        rejection = caught.value
        if not isinstance(rejection, tlstiming.VerifierRejected):
            rejection = rejection.__context__  # type: ignore[assignment]
        assert isinstance(rejection, tlstiming.VerifierRejected)
        with pytest.raises(tlstiming.VerifierRejected, match="late"):
            tls.sendall(b"secret")
    assert server.next_result().received == b""
    (span,) = recorder.spans
    assert [v.outcome for v in span.verifications] == ["rejected"]


def _pump(client: ssl.SSLObject, server: ssl.SSLObject, bios: list[ssl.MemoryBIO]) -> None:
    c_in, c_out, s_in, s_out = bios
    s_in.write(c_out.read())
    with contextlib.suppress(ssl.SSLWantReadError):
        server.do_handshake()
    c_in.write(s_out.read())


def test_verifiers_run_on_a_memory_bio_driven_by_write(pki: PKI, recorder: SpanRecorder) -> None:
    context = _client(pki, recorder)
    context.add_verifier(_deny, name="pins")
    server_ctx = server_context(pki.leaf)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = context.wrap_bio(bios[0], bios[1], server_hostname="localhost")
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    for _ in range(10):
        try:
            client.write(b"secret")
        except ssl.SSLWantReadError:
            _pump(client, server, bios)
            continue
        except tlstiming.VerifierRejected:
            break
        pytest.fail("the write went through")
    else:
        pytest.fail("the handshake never finished")
    bios[2].write(bios[1].read())  # whatever the client left for the wire
    assert _read(lambda: server.read(100)) != b"secret"
    with pytest.raises(tlstiming.VerifierRejected):
        client.write(b"secret")
    (span,) = recorder.spans
    assert [v.outcome for v in span.verifications] == ["rejected"]


# -- timed verifiers: each timeout bounds its own verifier --------------------------


def test_hung_verifiers_never_starve_another_context(
    serve: ServeFactory,
    pki: PKI,
    recorder: SpanRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    def hangs(peer: PeerInfo) -> None:
        release.wait(60)

    def quick(peer: PeerInfo) -> None:
        return None

    hung = _client(pki, recorder)
    hung.add_verifier(hangs, timeout=0.05, on_error="accept")
    healthy = _client(pki, recorder)
    healthy.add_verifier(quick, timeout=30)
    server = serve(server_context(pki.leaf))
    overruns = _verify_workers.MAX_WORKERS + 2
    try:
        with caplog.at_level(logging.WARNING, logger="tlstiming"):
            for _ in range(overruns):
                with socket.create_connection(server.address) as raw:
                    hung.wrap_socket(raw, server_hostname="localhost").close()
            with socket.create_connection(server.address) as raw:
                healthy.wrap_socket(raw, server_hostname="localhost").close()
        workers = [t for t in threading.enumerate() if t.name.startswith("tlstiming-verify-hangs")]
        assert len(workers) <= _verify_workers.MAX_WORKERS
    finally:
        release.set()
    outcomes = [span.verifications[0].outcome for span in recorder.spans]
    assert outcomes == ["timeout"] * overruns + ["accepted"]
    reasons = [span.verifications[0].reason for span in recorder.spans[:overruns]]
    assert "still running earlier calls" in str(reasons[-1])
    warnings = [r for r in caplog.records if "keeps overrunning" in r.getMessage()]
    assert len(warnings) == 1


def test_an_overrun_releases_its_worker_when_it_returns() -> None:
    workers = _verify_workers.VerifierWorkers("slow")
    release = threading.Event()
    with pytest.raises(_verify_workers.VerifierOverrun):
        workers.run(release.wait, 60.0, timeout=0.01)
    assert workers.overrunning == 1
    release.set()
    assert workers.run(lambda x: x * 2, 21, timeout=30) == 42
    for _ in range(500):  # the overrun's worker reports in as soon as it is back
        if workers.overrunning == 0:
            break
        time.sleep(0.01)
    assert workers.overrunning == 0


# -- bounded memory while a TLS 1.3 client-auth verdict is pending --------------------


def test_a_client_that_writes_before_reading_records_in_constant_memory(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    pki.client.configure_cert(context)
    server = serve(
        server_context(pki.leaf, maximum_version=ssl.TLSVersion.TLSv1_3, client_ca=pki.ca)
    )
    counts = []
    for writes in (0, 2000):
        with socket.create_connection(server.address) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                for _ in range(writes):
                    tls.sendall(b"x")
                counts.append(len(tls.__dict__[_keys.EVENTS]))
                assert tls.recv(len(GREETING)) == GREETING
    assert counts[1] <= _finish.AfterHandshake.LIMIT
    quiet, busy = recorder.spans
    assert busy.outcome == quiet.outcome == "ok"
    assert len(busy.messages) == len(quiet.messages)
    assert len(busy.records) <= len(quiet.records) + _finish.AfterHandshake.LIMIT
