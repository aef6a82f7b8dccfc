"""The request rules: real request spans (RequestRecord, the value every client adapter fills)
with made-up timestamps for the rule arithmetic, and real probes for what loopback can show."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import pytest
from conftest import ServeFactory
from servers import PKI, server_context

from tlstiming.cli import main
from tlstiming.cli import probe as _probe
from tlstiming.diagnosis import THRESHOLDS, diagnose
from tlstiming.spans.request import ConnectAttempt, ConnectionInfo, RequestRecord, RequestSpan

MS = 1_000_000


@dataclass(frozen=True)
class _URL:
    scheme: str = "https"
    host: str = "api.test"
    port: int | None = 443
    raw_path: bytes = b"/"


def request(
    *,
    pool: float = 0,
    dns: float = 1,
    connect: float = 1,
    tls: float = 2,
    first_byte: float = 5,
    failed_attempts: int = 0,
) -> RequestSpan:
    """A request span whose phases last the given milliseconds."""
    record = RequestRecord(1, 0, "GET", _URL())
    t = pool * MS
    marks = [("dns", int(t))]
    t += dns * MS
    marks.append(("connect", int(t)))
    attempts = []
    for n in range(failed_attempts):
        attempts.append(
            ConnectAttempt(
                address=f"2001:db8::{n + 1}",
                port=443,
                start_ns=int(t),
                end_ns=int(t + connect * MS / (failed_attempts + 1)),
                error_type="ConnectionRefusedError",
                error_message="refused",
            )
        )
    attempts.append(
        ConnectAttempt(address="192.0.2.1", port=443, start_ns=int(t), end_ns=int(t + connect * MS))
    )
    t += connect * MS
    marks.append(("tls", int(t)))
    t += tls * MS
    marks.append(("send_request", int(t)))
    record.marks = marks
    record.sent_ns = int(t + 0.1 * MS)
    record.head_ns = int(t + 0.1 * MS + first_byte * MS)
    record.end_ns = record.head_ns + MS
    record.end_unix_ns = time.time_ns()
    record.status_code = 200
    record.connection = ConnectionInfo(
        opened_by="1", resolved=("192.0.2.1",), attempts=tuple(attempts)
    )
    return RequestSpan(record)


def _ids(span: RequestSpan) -> list[str]:
    return [f.id for f in diagnose(span)]


@pytest.mark.parametrize(
    ("rule", "threshold", "phase"),
    [
        ("http.dns_slow", "dns_slow_ms", "dns"),
        ("http.connect_slow", "connect_slow_ms", "connect"),
        ("http.pool_wait", "pool_wait_ms", "pool"),
        ("http.first_byte_slow", "first_byte_slow_ms", "first_byte"),
    ],
)
def test_each_threshold_is_exact(rule: str, threshold: str, phase: str) -> None:
    limit = THRESHOLDS[threshold]
    below = request(**{phase: limit * 0.99})  # type: ignore[arg-type]
    above = request(**{phase: limit * 1.01})  # type: ignore[arg-type]
    assert rule not in _ids(below)
    (finding,) = [f for f in diagnose(above) if f.id == rule]
    assert finding.severity == "warning"
    assert any(isinstance(v, float) and v >= limit for _, v in finding.evidence)


def test_connect_retry_names_the_failed_addresses() -> None:
    assert "http.connect_retry" not in _ids(request())
    (finding,) = [f for f in diagnose(request(failed_attempts=2)) if f.id == "http.connect_retry"]
    assert finding.get("failed") == (
        "[2001:db8::1]:443 ConnectionRefusedError",
        "[2001:db8::2]:443 ConnectionRefusedError",
    )
    assert finding.get("connected_to") == "192.0.2.1:443"


def test_a_healthy_request_has_no_finding() -> None:
    assert diagnose(request()) == ()


# -- real probes ---------------------------------------------------------------------------


def test_a_slow_application_is_first_byte_slow_not_tls(
    serve: ServeFactory, pki: PKI, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from servers import LoopbackServer

    delay = THRESHOLDS["first_byte_slow_ms"] / 1000 * 1.2
    server = serve(server_context(pki.leaf), on_handshake=lambda tls: time.sleep(delay))
    assert isinstance(server, LoopbackServer)
    ca = tmp_path / "ca.pem"  # type: ignore[operator]
    ca.write_bytes(pki.ca.cert_pem.bytes())
    code = main(["probe", f"https://localhost:{server.address[1]}/", "--cafile", str(ca)])
    out = capsys.readouterr().out
    assert "http.first_byte_slow" in out
    assert "tls.server_slow_first_flight" not in out
    assert code == 1


def test_an_address_that_refuses_before_one_that_works_is_a_connect_retry(
    serve: ServeFactory,
    pki: PKI,
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """DNS is stubbed (two A records); the refusal and the connect are real loopback sockets."""
    server = serve(server_context(pki.leaf))
    monkeypatch.setattr(
        _probe,
        "_resolve",
        lambda options, deadline: [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1")],
    )
    ca = tmp_path / "ca.pem"  # type: ignore[operator]
    ca.write_bytes(pki.ca.cert_pem.bytes())
    main(["probe", f"localhost:{server.address[1]}", "--cafile", str(ca), "--json"])
    import json

    document = json.loads(capsys.readouterr().out)
    ids = [f["id"] for f in document["findings"]]
    assert "http.connect_retry" in ids
    attempts = document["runs"][0]["request"]["tlstiming.connection.attempts"]
    assert [a["address"] for a in attempts] == ["127.0.0.2", "127.0.0.1"]
    assert attempts[0]["error.type"] is not None
