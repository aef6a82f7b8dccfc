"""Native hooks on OpenSSL itself (``implementation() == "native"``) against the callback path.

Handshakes run in memory (two ``SSLObject`` s pumped through BIOs, both sides
recorded) once on each path; the spans must be identical in shape: the same
events in the same order (direction, kind, message type, bytes), the same
phases, the same error. Then the fallbacks (every validation failure,
simulated), misuse (in a subprocess, so a crash fails one test), the arena's
cap, and concurrent handshakes.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from servers import PKI, connect, server_context

import tlstiming
from tlstiming import HandshakeSpan, SpanRecorder, TimedSSLContext
from tlstiming._recording import conn as _conn
from tlstiming._recording import native as _native
from tlstiming._wire.names import CHAIN_END, CHAIN_START

TLS12 = ssl.TLSVersion.TLSv1_2
speedups: Any = None
if _conn.ACCELERATED:
    from tlstiming._recording import _speedups as speedups

pytestmark = pytest.mark.skipif(
    speedups is None or not speedups.NATIVE_POSSIBLE or _native.probe(speedups) is not None,
    reason="native hooks are not possible here",
)


@pytest.fixture
def native_switch(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A function turning native recording on or off; the process's choice restored after."""
    assert _native.probe(speedups) is None
    monkeypatch.setattr(_native.SWITCH, "on", _native.SWITCH.on)  # restored at teardown

    def switch(on: bool) -> None:
        _native.SWITCH.on = on

    return switch


# -- in-memory handshakes ------------------------------------------------------


def _pump(client: ssl.SSLObject, server: ssl.SSLObject, pipes: Any) -> dict[str, Any]:
    """Drive both handshakes to their end; the exception each side got (or None)."""
    outcome: dict[str, Any] = {}
    c_in, c_out, s_in, s_out = pipes
    for _ in range(20):
        for name, conn in (("client", client), ("server", server)):
            if name in outcome:
                continue
            try:
                conn.do_handshake()
                outcome[name] = None
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError as exc:
                outcome[name] = exc
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        if len(outcome) == 2:
            break
    return outcome


def _pair(
    client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, session: Any = None
) -> tuple[ssl.SSLObject, ssl.SSLObject, dict[str, Any]]:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost", session=session)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    outcome = _pump(client, server, (c_in, c_out, s_in, s_out))
    return client, server, outcome


def _shape(span: HandshakeSpan) -> tuple[Any, ...]:
    """Everything but the clocks: events (direction, kind, type, bytes), phases, error.

    OpenSSL's chain verification is left out: only native hooks can see it
    (``test_chain_verification_*`` check it).
    """
    chain = (CHAIN_START, CHAIN_END)
    events = tuple(
        (e[2], e[3], e[4], e[1] == -1, _data(e)) for e in span._events if e[3] not in chain
    )
    return (
        span.side,
        events,
        tuple(p.name for p in span.phases if p.name != "chain_verification"),
        tuple((m.direction, m.type) for m in span.messages),
        type(span.error).__name__ if span.error else None,
    )


def _data(event: Any) -> Any:
    """The bytes of a certificate, the size of anything else but a signature (it varies)."""
    if event[3] == 22 and event[4] == 11:
        return bytes(event[5])
    return None if event[3] == 22 and event[4] in (12, 15) else len(event[5])


def _scenario(pki: PKI, name: str) -> list[HandshakeSpan]:
    recorder = SpanRecorder()
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.add_sink(recorder)
    kwargs: dict[str, Any] = {"factory": TimedSSLContext}
    if name == "tls12":
        kwargs["maximum_version"] = TLS12
    if name == "hrr":
        kwargs["ecdh_curve"] = "secp384r1"
    cert = pki.untrusted if name == "untrusted" else pki.leaf
    server_ctx = server_context(cert, **kwargs)
    server_ctx.add_sink(recorder)  # type: ignore[attr-defined]
    client, _, _ = _pair(client_ctx, server_ctx)
    if name == "resumed":
        _pair(client_ctx, server_ctx, session=client.session)  # no ticket yet in 1.3: read one
    return list(recorder)


SCENARIOS = ["tls13", "tls12", "hrr", "untrusted"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_spans_identical_in_shape(pki: PKI, native_switch: Any, scenario: str) -> None:
    native_switch(False)
    callback = [_shape(s) for s in _scenario(pki, scenario)]
    before = speedups.native_fallbacks()
    native_switch(True)
    native = [_shape(s) for s in _scenario(pki, scenario)]
    assert speedups.native_fallbacks() == before  # every connection was recorded natively
    assert len(native) == 2
    assert sorted(native, key=repr) == sorted(callback, key=repr)


def test_resumed_tls12_identical(pki: PKI, native_switch: Any) -> None:
    def run() -> list[tuple[Any, ...]]:
        recorder = SpanRecorder()
        client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
        client_ctx.maximum_version = TLS12
        client_ctx.add_sink(recorder)
        server_ctx = server_context(pki.leaf, factory=TimedSSLContext)
        client, _, _ = _pair(client_ctx, server_ctx)
        again, _, _ = _pair(client_ctx, server_ctx, session=client.session)
        assert again.session_reused
        return [_shape(s) for s in recorder]

    native_switch(False)
    callback = run()
    native_switch(True)
    assert run() == callback


def test_msg_callback_reads_none_and_a_users_callback_sees_everything(
    pki: PKI, native_switch: Any
) -> None:
    native_switch(True)
    recorder = SpanRecorder()
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.add_sink(recorder)
    assert client_ctx._msg_callback is None
    seen: list[tuple[Any, ...]] = []
    client_ctx._msg_callback = lambda *args: seen.append(args[1:])
    _pair(client_ctx, server_context(pki.leaf))
    assert len(recorder) == 1 and recorder[0].error is None
    assert any(s[3] == 22 for s in seen)  # the handshake messages reached the user's callback
    client_ctx._msg_callback = None
    assert client_ctx._msg_callback is None


def _sni_switch_to(pki: PKI, other: ssl.SSLContext, recorder: SpanRecorder) -> None:
    """A server handshake whose sni_callback moves the connection to ``other``."""
    server_ctx = server_context(pki.leaf, factory=TimedSSLContext)
    server_ctx.add_sink(recorder)  # type: ignore[attr-defined]

    def switch(conn: Any, name: str | None, ctx: ssl.SSLContext) -> None:
        conn.context = other

    server_ctx.sni_callback = switch
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    _, _, outcome = _pair(client_ctx, server_ctx)
    assert outcome == {"client": None, "server": None}


def test_sni_switch_to_a_plain_context_keeps_recording(pki: PKI, native_switch: Any) -> None:
    native_switch(True)
    recorder = SpanRecorder()
    _sni_switch_to(pki, server_context(pki.leaf), recorder)  # a plain ssl.SSLContext
    (span,) = recorder
    kinds = [(m.direction, m.type) for m in span.messages]
    assert ("received", "finished") in kinds  # the messages after the switch were recorded
    assert "sni_callback" in [p.name for p in span.phases]


def test_sni_switch_to_a_context_with_a_users_callback_feeds_theirs(
    pki: PKI, native_switch: Any
) -> None:
    native_switch(True)
    seen: list[int] = []
    other = server_context(pki.leaf)

    def theirs(
        conn: Any, direction: str, version: int, kind: int, msg_type: int, data: bytes
    ) -> None:
        seen.append(kind)

    other._msg_callback = theirs  # type: ignore[attr-defined]
    _sni_switch_to(pki, other, SpanRecorder())
    assert 22 in seen  # the rest of the handshake reached the user's callback


def test_tls13_verdict_after_the_handshake_is_caught(pki: PKI, native_switch: Any) -> None:
    native_switch(True)
    recorder = SpanRecorder()
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.add_sink(recorder)
    server_ctx = server_context(pki.leaf, client_ca=pki.ca)
    with connect_pair_socket(client_ctx, server_ctx) as (client, _server_errors):
        with pytest.raises(ssl.SSLError):
            client.recv(1)
    (span,) = recorder
    assert span.error is not None or span.to_dict().get("post_handshake_error")


class connect_pair_socket:
    """A client socket handshaking with a server thread that fails the client's certificate."""

    def __init__(self, client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext) -> None:
        import socket

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.server_ctx = server_ctx
        self.client_ctx = client_ctx
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve)

    def _serve(self) -> None:
        raw, _ = self.listener.accept()
        try:
            with self.server_ctx.wrap_socket(raw, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            self.error.append(exc)

    def __enter__(self) -> tuple[ssl.SSLSocket, list[BaseException]]:
        self.thread.start()
        self.sock = connect(self.client_ctx, self.listener.getsockname())
        return self.sock, self.error

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.thread.join(10)
        self.listener.close()


# -- the arena's cap --------------------------------------------------------------


def test_a_24kb_certificate_flight_fits(pki: PKI, native_switch: Any) -> None:
    """A real 24 KB certificate flight goes through the default arena whole."""
    native_switch(True)
    names = ["localhost", *(f"service-{i:04d}.a-long-name.example.test" for i in range(620))]
    big = pki.ca.create_child_ca().issue_cert(*names)
    recorder = SpanRecorder()
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.add_sink(recorder)
    _, _, outcome = _pair(client_ctx, server_context(big))
    assert outcome == {"client": None, "server": None}
    (span,) = recorder
    assert speedups.native_limits(256, 65536) == (256, 65536)  # the defaults
    assert span._events.truncated == 0  # type: ignore[attr-defined]
    assert span.facts.certificate_bytes >= 24 * 1024
    assert span.facts.certificates_der[0] == big.cert.public_bytes(Encoding.DER)


def test_truncation_is_recorded_at_the_cap(pki: PKI, native_switch: Any) -> None:
    native_switch(True)
    previous = speedups.native_limits(8, 1000)
    try:
        recorder = SpanRecorder()
        client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
        client_ctx.add_sink(recorder)
        _, _, outcome = _pair(client_ctx, server_context(pki.leaf))
    finally:
        speedups.native_limits(*previous)
    assert outcome["client"] is None  # the connection is unaffected
    (span,) = recorder
    assert span._events.truncated > 0  # type: ignore[attr-defined]


# -- fallbacks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("simulate", "reason"),
    [
        ({"path": "/nonexistent/_ssl.so"}, "not a loaded shared object"),
        ({"symbol": "SSL_no_such_function"}, "SSL_no_such_function not found"),
        ({"version": 0x10101000}, "is not 3.x"),
        ({"options": 0}, "SSL_CTX_get_options differs"),
        ({"sslobj": object()}, "unexpected _ssl object types"),
    ],
)
def test_every_validation_failure_falls_back(simulate: dict[str, Any], reason: str) -> None:
    assert reason in str(_native.probe(speedups, simulate=simulate))


@pytest.mark.parametrize(
    ("env", "name", "reason"),
    [
        ({}, "native", ""),
        ({"TLSTIMING_NO_NATIVE": "1"}, "callback", "NO_NATIVE"),
        ({"TLSTIMING_PURE_PYTHON": "1"}, "python", "PURE_PYTHON"),
        ({"TLSTIMING_NO_NATIVE": "1", "TLSTIMING_PURE_PYTHON": "1"}, "python", "PURE_PYTHON"),
    ],
)
def test_implementation_and_how_to_force_each(env: dict[str, str], name: str, reason: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TLSTIMING_")}
    code = "import tlstiming; i = tlstiming.implementation(); print(i.name); print(i.reason)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == name
    assert reason in (out[1] if len(out) > 1 else "")


def test_misuse_never_crashes() -> None:
    code = """
import ssl
from tlstiming._recording import _speedups as s
from tlstiming._recording import native
for args in [(), (1,), ("x", 1, 2, 3, 4)]:
    try: s.native_init(*args)
    except TypeError: pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
print(s.native_init("/nonexistent", 0, ctx, 0, object()))
print(s.native_init(ssl._ssl.__file__, ssl.OPENSSL_VERSION_NUMBER, object(), 0, object()))
for bad in [None, 1, object(), ctx]:
    s.native_rearm(bad)
    s.native_harvest(bad, bad)
try: s.native_limits(0, 0)
except ValueError: pass
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLSTIMING_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


# -- concurrency ------------------------------------------------------------------


def _both_recorded(pki: PKI) -> tuple[SpanRecorder, ssl.SSLContext, ssl.SSLContext]:
    """A client and a server context, both delivering to one recorder."""
    recorder = SpanRecorder(maxlen=1000)
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.add_sink(recorder)
    server_ctx = server_context(pki.leaf, factory=TimedSSLContext)
    server_ctx.add_sink(recorder)  # type: ignore[attr-defined]
    return recorder, client_ctx, server_ctx


def test_200_concurrent_handshakes_without_cross_talk(pki: PKI, native_switch: Any) -> None:
    native_switch(True)
    recorder, client_ctx, server_ctx = _both_recorded(pki)
    failures: list[BaseException] = []

    def one() -> None:
        try:
            _, _, outcome = _pair(client_ctx, server_ctx)
            assert outcome == {"client": None, "server": None}
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
    assert len(recorder) == 400
    shapes = {_shape(s)[0:1] + _shape(s)[2:] for s in recorder}
    assert len(shapes) == 2  # one client shape, one server shape: no event crossed over


def test_memory_flat_and_arenas_freed_with_abandoned_connections(
    pki: PKI, native_switch: Any
) -> None:
    import gc
    import tracemalloc

    native_switch(True)
    recorder = SpanRecorder(maxlen=10)
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.add_sink(recorder)
    server_ctx = server_context(pki.leaf)

    def rounds(n: int) -> None:
        for _ in range(n):
            _pair(client_ctx, server_ctx)
            half = client_ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="x")
            with pytest.raises(ssl.SSLWantReadError):
                half.do_handshake()  # armed, then dropped mid-handshake: freed with its SSL
            del half

    rounds(50)
    gc.collect()
    tracemalloc.start()
    try:
        rounds(50)
        gc.collect()
        early = tracemalloc.get_traced_memory()[0]
        rounds(200)
        gc.collect()
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert late - early < 100 * 1024


def test_200_concurrent_asyncio_handshakes_without_cross_talk(pki: PKI, native_switch: Any) -> None:
    import asyncio

    native_switch(True)
    recorder, client_ctx, server_ctx = _both_recorded(pki)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"k")
        await writer.drain()
        writer.close()

    async def one(port: int) -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        data = await reader.read(1)
        writer.close()
        return data

    async def main() -> list[bytes]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx, backlog=256)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await asyncio.gather(*(one(port) for _ in range(200)))

    assert asyncio.run(main()) == [b"k"] * 200
    spans = list(recorder)
    assert len([s for s in spans if s.side == "client"]) == 200
    assert all(s.outcome == "ok" and s.messages for s in spans if s.side == "client")
    shapes = {tuple((m.direction, m.type) for m in s.messages) for s in spans if s.outcome == "ok"}
    assert len(shapes) == 2  # one client shape, one server shape: no event crossed over


# -- OpenSSL's chain verification, timed -----------------------------------------------------


def _chain_phase_is_exact(span: HandshakeSpan) -> None:
    checked = span.facts.chain_verification
    assert checked is not None
    names = [p.name for p in span.phases]
    assert names.count("chain_verification") == 1
    phase = span.phases[names.index("chain_verification")]
    assert phase.start_ns == checked.start_ns
    if phase is span.phases[-1]:  # it failed: the alert and the unwinding are its too
        assert phase.end_ns == span.end_ns >= checked.end_ns
    else:  # the next phase starts where it ended
        assert phase.end_ns == checked.end_ns
    assert span.start_ns <= checked.start_ns <= checked.end_ns <= span.end_ns


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_chain_verification_is_a_phase_on_both_sides(
    pki: PKI, native_switch: Any, version: str
) -> None:
    native_switch(True)
    recorder = SpanRecorder()
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    pki.client.configure_cert(client_ctx)
    client_ctx.add_sink(recorder)
    server_ctx = server_context(
        pki.chained,
        factory=TimedSSLContext,
        client_ca=pki.ca,
        maximum_version=TLS12 if version == "1.2" else None,
    )
    server_ctx.add_sink(recorder)  # type: ignore[attr-defined]
    _, _, outcome = _pair(client_ctx, server_ctx)
    assert outcome == {"client": None, "server": None}
    spans = {s.side: s for s in recorder}
    client, server = spans["client"], spans["server"]
    for span in (client, server):
        _chain_phase_is_exact(span)
        checked = span.facts.chain_verification
        assert checked is not None and checked.ok and checked.error == 0
    # the client built leaf, intermediate, root; the server the client's leaf and the root
    built = [s.facts.chain_verification.chain_length for s in (client, server)]  # type: ignore[union-attr]
    assert built == [3, 2]
    names = [p.name for p in client.phases]
    after = "certificate_verify" if version == "1.3" else "server_key_exchange"
    assert names.index("certificate") + 1 == names.index("chain_verification")
    assert names.index("chain_verification") + 1 == names.index(after)
    server_names = [p.name for p in server.phases]
    assert server_names.index("client_certificate") < server_names.index("chain_verification")


def test_chain_verification_failure_names_its_phase_and_depth(pki: PKI, native_switch: Any) -> None:
    native_switch(True)
    recorder = SpanRecorder()
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.add_sink(recorder)
    server_ctx = server_context(pki.chained, send_intermediates=False)
    _, _, outcome = _pair(client_ctx, server_ctx)
    assert isinstance(outcome["client"], ssl.SSLCertVerificationError)
    (span,) = recorder
    _chain_phase_is_exact(span)
    checked = span.facts.chain_verification
    assert checked is not None
    assert (checked.ok, checked.error, checked.depth) == (False, 20, 0)
    assert checked.message == "unable to get local issuer certificate"
    assert span.error is not None and span.error.phase == "chain_verification"
    assert span.phases[-1].name == "chain_verification"  # nothing followed it


def test_chain_verification_answer_is_openssls_own(pki: PKI, native_switch: Any) -> None:
    """The wrapper returns X509_verify_cert's verdict: CERT_NONE still connects, and says so."""
    native_switch(True)
    recorder = SpanRecorder()
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.add_sink(recorder)
    _, _, outcome = _pair(client_ctx, server_context(pki.untrusted))
    assert outcome == {"client": None, "server": None}
    (span,) = recorder
    assert span.outcome == "ok"
    checked = span.facts.chain_verification
    assert checked is not None and not checked.ok and checked.error in (18, 20)


def test_arena_fuzzed_caps_never_touch_the_connection(pki: PKI, native_switch: Any) -> None:
    """Random arena caps (events, bytes), random handshakes: the connection never notices.

    Whatever the cap cuts, the span is whole (contiguous phases from its start
    to its end, facts and messages readable) and counts what it lost; a span
    that lost nothing is the same as one recorded with the default caps.
    """
    import itertools
    import random

    native_switch(True)
    rng = random.Random(1305)
    recorder = SpanRecorder(maxlen=10)
    client_ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    pki.client.configure_cert(client_ctx)
    client_ctx.add_sink(recorder)
    scenarios: dict[str, dict[str, Any]] = {
        "1.3": {},
        "1.3 client auth": {"client_ca": pki.ca},
        "1.2 client auth": {"client_ca": pki.ca, "maximum_version": TLS12},
    }
    servers = {
        name: server_context(pki.chained, factory=TimedSSLContext, **kwargs)
        for name, kwargs in scenarios.items()
    }
    for server in servers.values():
        server.add_sink(recorder)  # type: ignore[attr-defined]
    reference = {}
    for name, server in servers.items():
        recorder.clear()
        _pair(client_ctx, server)
        reference[name] = {s.side: _shape(s) for s in recorder}
    compared = 0
    previous = speedups.native_limits(256, 65536)
    try:
        for _ in range(150):
            events = rng.choice([1, 2, 3, rng.randint(1, 40), rng.randint(1, 300), 256])
            data = rng.choice([0, 1, 100, rng.randint(0, 4000), rng.randint(0, 70_000), 65536])
            speedups.native_limits(events, data)
            name = rng.choice(sorted(servers))
            recorder.clear()
            _, _, outcome = _pair(client_ctx, servers[name])
            assert outcome == {"client": None, "server": None}, (events, data)
            spans = sorted(recorder, key=lambda s: s.side)
            assert [s.side for s in spans] == ["client", "server"]
            for span in spans:
                # (a span that waited for a TLS 1.3 client-auth verdict holds a plain tuple)
                lost = getattr(span._events, "truncated", None)
                assert lost is None or lost >= 0
                if lost == 0:
                    assert _shape(span) == reference[name][span.side], (events, data)
                    compared += 1
            for span in spans:
                phases = span.phases
                assert phases[0].start_ns == span.start_ns
                assert phases[-1].end_ns == span.end_ns
                assert all(a.end_ns == b.start_ns for a, b in itertools.pairwise(phases))
                assert span.facts is not None and span.messages is not None
    finally:
        speedups.native_limits(*previous)
    assert compared >= 10  # the caps let some handshakes through whole
