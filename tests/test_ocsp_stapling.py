"""OCSP stapling (native hooks): a stdlib client asks for staples, a Python server serves them.

CPython's ``ssl`` can do neither. Checked against the foreign implementation
on each side (``openssl s_server -status_file`` stapling to our client,
``openssl s_client -status`` reading our server's staple) and end to end
between two TimedSSLContexts, on TLS 1.3 (the staple rides in the leaf's
Certificate entry) and TLS 1.2 (its own CertificateStatus message).
"""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import OpenSSLFactory, ServeFactory
from servers import GREETING, GUARD, OPENSSL, connect, read_exactly, server_context

import tlstiming
from tlstiming import SpanRecorder, TimedSSLContext
from tlstiming.testing import CA, LeafCert
from tlstiming.verifiers import OCSPVerifier

NATIVE = tlstiming.implementation().name == "native"
needs_native = pytest.mark.skipif(
    not NATIVE, reason="OCSP stapling needs native hooks (the fallback is checked below)"
)

TLS12 = ssl.TLSVersion.TLSv1_2
VERSIONS = ["1.3", "1.2"]


@pytest.fixture(scope="module")
def stapled() -> tuple[CA, LeafCert, bytes]:
    """A CA, a leaf whose responder is unreachable (port 9 on loopback), a good response for it."""
    ca = CA()
    leaf = ca.issue_cert("localhost", ocsp_url="http://127.0.0.1:9/")
    return ca, leaf, ca.ocsp_response(leaf)


def _client(ca: CA, *, ask: bool) -> tuple[TimedSSLContext, SpanRecorder]:
    context = tlstiming.create_default_context()
    ca.configure_trust(context)
    context.ocsp_stapling = ask
    recorder = SpanRecorder()
    context.add_sink(recorder)
    return context, recorder


def _server(leaf: LeafCert, version: str) -> TimedSSLContext:
    context = server_context(
        leaf, factory=TimedSSLContext, maximum_version=TLS12 if version == "1.2" else None
    )
    assert isinstance(context, TimedSSLContext)
    return context


def _handshake(client: ssl.SSLContext, address: tuple[str, int]) -> None:
    with connect(client, address) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING


# -- the client ------------------------------------------------------------------------------


@needs_native
def test_off_by_default_and_the_client_hello_is_unchanged(
    stapled: tuple[CA, LeafCert, bytes], serve: ServeFactory
) -> None:
    ca, leaf, der = stapled
    server = _server(leaf, "1.3")
    server.set_ocsp_staple(der)
    client, recorder = _client(ca, ask=False)
    assert client.ocsp_stapling is False
    assert ssl.create_default_context().options == client.options  # nothing else moved
    _handshake(client, serve(server).address)
    (span,) = recorder
    assert (span.facts.ocsp_requested, span.facts.ocsp_stapled) == (False, False)


@needs_native
@pytest.mark.parametrize("version", VERSIONS)
def test_client_reads_a_foreign_servers_staple(
    stapled: tuple[CA, LeafCert, bytes],
    openssl_serve: OpenSSLFactory,
    tmp_path: Path,
    version: str,
) -> None:
    ca, leaf, der = stapled
    status = tmp_path / "status.der"
    status.write_bytes(der)
    args = ["-status_file", str(status)] + (["-tls1_2"] if version == "1.2" else [])
    server = openssl_serve(leaf, args)
    client, recorder = _client(ca, ask=True)
    client.add_verifier(OCSPVerifier(timeout=2.0))
    with connect(client, server.address):
        pass
    (span,) = recorder
    facts = span.facts
    assert (facts.ocsp_requested, facts.ocsp_stapled) == (True, True)
    assert facts.ocsp_response == der
    assert facts.protocol_version == version
    names = [p.name for p in span.phases]
    if version == "1.2":
        assert names.index("chain_verification") < names.index("certificate_status")
    (check,) = span.verifications
    assert check.outcome == "accepted"
    assert dict(check.details)["source"] == "staple"  # the responder (port 9) was never asked


@needs_native
def test_setting_it_off_stops_asking(stapled: tuple[CA, LeafCert, bytes]) -> None:
    ca, _, _ = stapled
    client, _ = _client(ca, ask=True)
    assert client.ocsp_stapling is True
    client.ocsp_stapling = False
    assert client.ocsp_stapling is False


@needs_native
@pytest.mark.parametrize("value", [1, "yes", None])
def test_ocsp_stapling_takes_a_bool_only(value: Any) -> None:
    context = tlstiming.create_default_context()
    with pytest.raises(TypeError, match="ocsp_stapling must be a bool"):
        context.ocsp_stapling = value


# -- the server ------------------------------------------------------------------------------


@needs_native
@pytest.mark.parametrize("version", VERSIONS)
def test_server_staples_to_a_foreign_client(
    stapled: tuple[CA, LeafCert, bytes], serve: ServeFactory, tmp_path: Path, version: str
) -> None:
    if OPENSSL is None:
        pytest.skip("the openssl command-line tool is not installed (CI installs it)")
    ca, leaf, der = stapled
    server = _server(leaf, version)
    server.set_ocsp_staple(der)
    recorder = SpanRecorder()
    server.add_sink(recorder)
    address = serve(server).address
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    done = subprocess.run(
        [
            *(OPENSSL, "s_client", "-connect", f"127.0.0.1:{address[1]}"),
            *("-servername", "localhost", "-status", "-CAfile", str(ca_file)),
            "-verify_return_error",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert "OCSP Response Status: successful" in done.stdout, done.stdout + done.stderr
    assert "Cert Status: good" in done.stdout
    (span,) = recorder
    assert (span.side, span.facts.ocsp_requested, span.facts.ocsp_stapled) == ("server", True, True)
    assert span.facts.ocsp_response == der


@needs_native
@pytest.mark.parametrize("version", VERSIONS)
def test_server_asks_its_source_with_the_requested_name(
    stapled: tuple[CA, LeafCert, bytes], serve: ServeFactory, version: str
) -> None:
    ca, leaf, der = stapled
    asked: list[str | None] = []

    def source(server_name: str | None) -> bytes | None:
        asked.append(server_name)
        return der if server_name == "localhost" else None

    server = _server(leaf, version)
    server.set_ocsp_staple(source)
    address = serve(server).address
    client, recorder = _client(ca, ask=True)
    _handshake(client, address)
    client.check_hostname = False
    with connect(client, address, server_hostname=None) as tls:  # no SNI: no staple
        assert read_exactly(tls, len(GREETING)) == GREETING
    unasked, _ = _client(ca, ask=False)
    _handshake(unasked, address)  # no status_request: the source is not asked
    assert asked == ["localhost", None]
    assert [s.facts.ocsp_stapled for s in recorder] == [True, False]
    assert recorder.spans[0].facts.ocsp_response == der


@needs_native
def test_a_failing_source_costs_the_staple_not_the_handshake(
    stapled: tuple[CA, LeafCert, bytes], serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ca, leaf, _ = stapled
    answers: list[Any] = [RuntimeError("responder down"), "not bytes", b"", b"x" * (2 << 20)]

    def source(server_name: str | None) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    server = _server(leaf, "1.3")
    server.set_ocsp_staple(source)
    address = serve(server).address
    client, recorder = _client(ca, ask=True)
    with caplog.at_level(logging.WARNING, logger="tlstiming"):
        for _ in range(4):
            _handshake(client, address)
    assert answers == []
    assert [s.outcome for s in recorder] == ["ok"] * 4
    assert not any(s.facts.ocsp_stapled for s in recorder)
    failures = [r for r in caplog.records if "OCSP staple source" in r.getMessage()]
    assert len(failures) == 3  # raised, not bytes, too big; an empty answer is "no staple"


@needs_native
def test_set_ocsp_staple_none_stops(
    stapled: tuple[CA, LeafCert, bytes], serve: ServeFactory
) -> None:
    ca, leaf, der = stapled
    server = _server(leaf, "1.3")
    server.set_ocsp_staple(der)
    server.set_ocsp_staple(None)
    client, recorder = _client(ca, ask=True)
    _handshake(client, serve(server).address)
    (span,) = recorder
    assert (span.facts.ocsp_requested, span.facts.ocsp_stapled) == (True, False)


@needs_native
@pytest.mark.parametrize(
    ("staple", "error", "message"),
    [
        (b"\x30\x03\x0a\x01\x00 not OCSP", ValueError, "not a DER OCSP response"),
        (b"", ValueError, "1 to"),
        (42, TypeError, "DER bytes or a callable"),
        ("der", TypeError, "DER bytes or a callable"),
    ],
)
def test_set_ocsp_staple_refuses_what_it_cannot_staple(
    stapled: tuple[CA, LeafCert, bytes], staple: Any, error: type[Exception], message: str
) -> None:
    _, leaf, der = stapled
    server = _server(leaf, "1.3")
    server.set_ocsp_staple(der)
    with pytest.raises(error, match=message):
        server.set_ocsp_staple(staple)
    assert server._tlstiming_staple == der  # nothing changed


# -- diagnosis -------------------------------------------------------------------------------


@needs_native
def test_a_server_that_does_not_staple_is_named(
    stapled: tuple[CA, LeafCert, bytes], serve: ServeFactory
) -> None:
    ca, _, _ = stapled
    plain = ca.issue_cert("localhost", ocsp_url="http://127.0.0.1:9/")
    must = ca.issue_cert("localhost", ocsp_url="http://127.0.0.1:9/", must_staple=True)
    client, recorder = _client(ca, ask=True)
    for leaf in (plain, must):
        _handshake(client, serve(_server(leaf, "1.3")).address)
    first, second = (tlstiming.diagnose(s) for s in recorder)
    assert "tls.ocsp_not_stapled" in [f.id for f in first]
    assert "tls.ocsp_must_staple_missing" in [f.id for f in second]
    stapler = _server(plain, "1.3")
    stapler.set_ocsp_staple(ca.ocsp_response(plain))
    recorder.clear()
    _handshake(client, serve(stapler).address)
    (span,) = recorder
    assert not {"tls.ocsp_not_stapled", "tls.ocsp_must_staple_missing"} & {
        f.id for f in tlstiming.diagnose(span)
    }


def test_where_native_hooks_are_off_stapling_says_why() -> None:
    """On the callback path: asking fails at the call, with the reason; off stays off."""
    code = """
import tlstiming
c = tlstiming.create_default_context()
assert c.ocsp_stapling is False
c.ocsp_stapling = False
for call in (lambda: setattr(c, "ocsp_stapling", True), lambda: c.set_ocsp_staple(b"x")):
    try:
        call()
    except NotImplementedError as exc:
        print(exc)
c.set_ocsp_staple(None)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLSTIMING_")}
    env["TLSTIMING_NO_NATIVE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line == (
            "OCSP stapling needs tlstiming's native hooks, which are off here: "
            "TLSTIMING_NO_NATIVE is set"
        )
