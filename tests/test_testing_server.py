"""``tlstiming.testing.LocalTLSServer``: every knob against real clients on loopback.

Facts and errors only, never milliseconds (except one lower bound that the
server's own wait guarantees).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import httpx
import pytest
from servers import delays_entered

import tlstiming
from tlstiming.testing import LocalPKI, LocalTLSServer, SpanCapture, assert_budget

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture(scope="module")
def pki() -> Iterator[LocalPKI]:
    with LocalPKI.temporary() as pki:
        yield pki


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with SpanCapture() as capture:
        yield capture


def handshake(
    server: LocalTLSServer,
    context: ssl.SSLContext | None = None,
    *,
    session: ssl.SSLSession | None = None,
    request: bool = True,
) -> tuple[str | None, str | None, ssl.SSLSession | None]:
    """Connect, optionally make one HTTP request; return (version, alpn, session)."""
    context = context or server.client_context()
    with socket.create_connection(server.address, timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname=server.hostname, session=session) as tls:
            if request:
                tls.sendall(REQUEST)
                assert tls.recv(1024).startswith(b"HTTP/1.1 200 OK")
            return tls.version(), tls.selected_alpn_protocol(), tls.session


def only(spans: SpanCapture) -> tlstiming.HandshakeSpan:
    (span,) = spans.handshakes
    assert isinstance(span, tlstiming.HandshakeSpan)
    return span


def test_defaults_tls13_full_chain_and_an_http_answer(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki) as server:
        assert handshake(server)[:2] == ("TLSv1.3", None)
        assert server.url == f"https://localhost:{server.port}/"
        assert (server.accepted, server.handshakes, server.errors) == (1, 1, ())
    span = only(spans)
    assert span.facts.certificate_count == 2  # leaf and intermediate
    assert span.facts.certificates[1].subject.endswith("tlstiming test intermediate CA")
    assert_budget(span, min_tls="1.3", max_round_trips=1, resumed=False, outcome="ok")


@pytest.mark.parametrize(
    ("knobs", "version"),
    [({"tls_max": "1.2"}, "TLSv1.2"), ({"tls_min": ssl.TLSVersion.TLSv1_3}, "TLSv1.3")],
)
def test_version_caps(
    pki: LocalPKI, spans: SpanCapture, knobs: dict[str, object], version: str
) -> None:
    with LocalTLSServer(pki=pki, **knobs) as server:  # type: ignore[arg-type]
        assert handshake(server)[0] == version


def test_tls_min_refuses_an_older_client(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki, tls_min="1.3") as server:
        client = server.client_context()
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|protocol version"):
            handshake(server, client)
    assert only(spans).error is not None


def test_tls12_takes_two_round_trips(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki, tls_max="1.2") as server:
        handshake(server)
    assert_budget(only(spans), max_round_trips=2)
    assert only(spans).phase("second_round_trip") is not None


@pytest.mark.parametrize(
    ("server_alpn", "offered", "selected"),
    [
        (["h2", "http/1.1"], ["h2", "http/1.1"], "h2"),
        (["http/1.1"], ["h2", "http/1.1"], "http/1.1"),
        (["h2"], ["http/1.1"], None),  # not strict: the stdlib server selects nothing
        (["h2"], None, None),
    ],
)
def test_alpn(
    pki: LocalPKI,
    spans: SpanCapture,
    server_alpn: list[str],
    offered: list[str] | None,
    selected: str | None,
) -> None:
    with LocalTLSServer(pki=pki, alpn=server_alpn) as server:
        assert handshake(server, server.client_context(alpn=offered))[1] == selected
    assert only(spans).facts.alpn_selected == selected


def test_strict_alpn_mismatch_is_a_fatal_alert(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki, alpn=["h2"], alpn_strict=True) as server:
        with pytest.raises(ssl.SSLError, match=r"NO_APPLICATION_PROTOCOL|no application protocol"):
            handshake(server, server.client_context(alpn=["http/1.1"]))
        assert handshake(server, server.client_context(alpn=["h2", "http/1.1"]))[1] == "h2"
        assert handshake(server, server.client_context())[1] is None  # no ALPN offered: fine
        assert (server.accepted, server.handshakes) == (3, 2)
    failed = spans.handshakes.filter(outcome="error")[0]
    assert failed.error is not None
    assert (failed.error.alert, failed.error.alert_source) == ("no_application_protocol", "peer")
    assert failed.error.phase == "server_hello"


@pytest.mark.parametrize("tls_max", ["1.2", "1.3"])
def test_required_client_certificate(pki: LocalPKI, spans: SpanCapture, tls_max: str) -> None:
    with LocalTLSServer(pki=pki, client_cert="required", tls_max=tls_max) as server:
        handshake(server, server.client_context(client_cert=True))
        with pytest.raises(ssl.SSLError, match=r"CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|alert"):
            handshake(server)  # TLS 1.3: the rejection arrives with the first read
    assert server.handshakes == 1
    assert len(server.errors) == 1  # recorded by the time close() joined the threads
    good, bad = spans.handshakes
    assert good.facts.client_certificate_sent
    assert bad.outcome == "error"
    assert not bad.facts.client_certificate_sent


def test_optional_client_certificate(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki, client_cert="optional") as server:
        handshake(server)
        handshake(server, server.client_context(client_cert=True))
    assert [s.facts.client_certificate_sent for s in spans.handshakes] == [False, True]


@pytest.mark.parametrize(
    ("knobs", "message", "sent"),
    [
        ({"send_intermediate": False}, "unable to get local issuer certificate", 1),
        ({"certificate": "expired"}, "certificate has expired", 2),
        ({"certificate": "wrong_host"}, "Hostname mismatch", 2),
        ({"certificate": "untrusted"}, "unable to get local issuer certificate", 1),
    ],
)
def test_broken_certificates(
    pki: LocalPKI, spans: SpanCapture, knobs: dict[str, object], message: str, sent: int
) -> None:
    with LocalTLSServer(pki=pki, **knobs) as server:  # type: ignore[arg-type]
        with pytest.raises(ssl.SSLCertVerificationError, match=message):
            handshake(server)
        plain = ssl.create_default_context(cafile=server.ca_file)  # the same for plain ssl
        with pytest.raises(ssl.SSLCertVerificationError, match=message):
            handshake(server, plain)
    span = only(spans)
    assert span.error is not None
    timed = span.facts.chain_verification is not None  # native hooks time OpenSSL's own check
    assert span.error.phase == ("chain_verification" if timed else "certificate")
    assert span.facts.certificate_count == sent


def test_delay_holds_back_the_server_flight(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki, delay=0.05) as server:
        handshake(server)
    phase = only(spans).phase("server_hello")
    assert phase is not None
    assert phase.duration_ns >= 50_000_000  # a lower bound: the server waited that long


@pytest.mark.parametrize("knobs", [{"hello_retry": True}, {"group": "secp384r1"}])
def test_hello_retry(pki: LocalPKI, spans: SpanCapture, knobs: dict[str, object]) -> None:
    with LocalTLSServer(pki=pki, **knobs) as server:  # type: ignore[arg-type]
        handshake(server)
    span = only(spans)
    assert span.facts.hello_retry
    assert span.facts.group == "secp384r1"
    assert span.round_trips == 2
    assert span.phase("hello_retry") is not None


def test_resumption(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki) as server:
        context = server.client_context()
        session = handshake(server, context)[2]
        handshake(server, context, session=session)
    first, second = spans.handshakes
    assert_budget(first, resumed=False)
    assert_budget(second, resumed=True)


def test_http_keep_alive_with_httpx(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki) as server:
        with httpx.Client(verify=server.client_context()) as client:
            assert client.get(server.url).text == "ok\n"
            assert client.post(server.url, content=b"x" * 100_000).status_code == 200
            assert client.get(server.url, headers={"Connection": "close"}).status_code == 200
            assert client.get(server.url).status_code == 200
        assert (server.accepted, server.handshakes) == (2, 2)
    assert len(spans.handshakes) == 2


def test_echo(pki: LocalPKI, spans: SpanCapture) -> None:
    with LocalTLSServer(pki=pki, respond="echo") as server:
        context = server.client_context()
        with socket.create_connection(server.address) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"ping")
                assert tls.recv(4) == b"ping"


def test_ipv6(pki: LocalPKI, spans: SpanCapture) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = LocalTLSServer(pki=pki, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    with server:
        context = server.client_context()
        with socket.create_connection(server.address) as raw:
            with context.wrap_socket(raw, server_hostname="localhost"):
                pass
    assert only(spans).peer == ("::1", server.port)


def test_own_pki_and_plain_trust_helpers(spans: SpanCapture) -> None:
    with LocalTLSServer(client_cert="required") as server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        server.configure_trust(context)
        server.configure_client_cert(context)
        assert handshake(server, context)[0] == "TLSv1.3"
        assert "BEGIN CERTIFICATE" in server.ca_pem
        assert repr(server).startswith("<LocalTLSServer https://localhost:")


def test_close_cuts_idle_connections_and_a_pending_delay(pki: LocalPKI) -> None:
    server = LocalTLSServer(pki=pki, delay=60)
    delayed = delays_entered(server)
    outcomes: list[object] = []

    def client() -> None:
        try:  # the server sits in its 60 s delay, until close() cuts it short
            outcomes.append(handshake(server, request=False)[0])
        except OSError as exc:  # the connection was cut
            outcomes.append(exc)

    with server, socket.create_connection(server.address):  # an idle connection
        thread = threading.Thread(target=client)
        thread.start()
        assert delayed.acquire(timeout=30)  # close() only once the client is in the delay
        server.close()
        server.close()  # idempotent
        thread.join(30)
    assert len(outcomes) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("tlstiming-server")]


def test_knob_validation(pki: LocalPKI) -> None:
    with pytest.raises(ValueError, match="alpn_strict"):
        LocalTLSServer(pki=pki, alpn_strict=True)
    with pytest.raises(ValueError, match="TLS version"):
        LocalTLSServer(pki=pki, tls_max="1.1")
    with pytest.raises(ValueError, match="delay"):
        LocalTLSServer(pki=pki, delay=-1)
    with pytest.raises(ValueError, match="client_cert"):
        LocalTLSServer(pki=pki, client_cert="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="respond"):
        LocalTLSServer(pki=pki, respond="h2")  # type: ignore[arg-type]


def test_misbehaviours_without_tls(pki: LocalPKI) -> None:
    with LocalTLSServer(pki=pki, respond="not_tls") as server:
        with socket.create_connection(server.address, timeout=30) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x00")
            assert raw.recv(1024).startswith(b"HTTP/1.1 400 Bad Request")
    with LocalTLSServer(pki=pki, respond="reset") as server:
        with socket.create_connection(server.address, timeout=30) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x00")
            with pytest.raises(ConnectionResetError):
                raw.recv(1024)
        assert server.next_result().error is None


def test_on_handshake_errors_are_recorded(pki: LocalPKI) -> None:
    def fail(tls: ssl.SSLSocket) -> None:
        raise AssertionError(f"saw {tls.version()}")

    with LocalTLSServer(pki=pki, on_handshake=fail) as server:
        with socket.create_connection(server.address, timeout=30) as raw:
            with server.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.recv(1) == b""  # the server winds down, no answer
        result = server.next_result()
    assert isinstance(result.error, AssertionError)
    assert server.errors == ("AssertionError: saw TLSv1.3",)


def test_a_context_of_your_own_refuses_certificate_knobs(pki: LocalPKI) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match="context of your own"):
        LocalTLSServer(context=context, tls_max="1.2")
    with pytest.raises(ValueError, match="context of your own"):
        LocalTLSServer(context=context, certificate="expired")
