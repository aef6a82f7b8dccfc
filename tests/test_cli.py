"""The command line, called in-process."""

from __future__ import annotations

import json

import pytest

from tlstiming.cli import demo as _demo
from tlstiming.cli import main


def test_demo_prints_every_kind_of_handshake(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.count("== ") == 6
    assert "TLS 1.2" in out and "second_round_trip" in out
    assert "hello_retry" in out and " hrr" in out
    assert " resumed" in out
    assert "alpn=http/1.1 (offered h2,http/1.1)" in out
    assert "error=ssl.SSLCertVerificationError phase=certificate" in out


def test_demo_json_is_one_span_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    spans = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["outcome"] for s in spans] == ["ok"] * 5 + ["error"]
    assert [s["tls.protocol.version"] for s in spans[:4]] == ["1.3", "1.3", "1.2", "1.3"]
    assert [s["tls.resumed"] for s in spans[:2]] == [False, True]
    assert spans[3]["tls.hello_retry"] is True
    assert spans[3]["tls.round_trips"] == 2
    assert spans[2]["tls.round_trips"] == 2
    assert spans[4]["tls.next_protocol"] == "http/1.1"
    assert spans[5]["error.type"] == "ssl.SSLCertVerificationError"


def test_probe_times_a_real_server(capsys: pytest.CaptureFixture[str]) -> None:
    with _demo.demo_pki() as pki, _demo.LoopbackServer(pki.server_context()) as server:
        status = main(
            [
                "probe",
                f"127.0.0.1:{server.port}",
                "--servername",
                "localhost",
                "--cafile",
                pki.ca_file,
                "--json",
            ]
        )
    document = json.loads(capsys.readouterr().out)
    assert status == document["exit_code"] == 0
    span = document["runs"][0]["handshake"]
    assert span["outcome"] == "ok"
    assert span["tls.sni"] == "localhost"
    assert span["tls.alpn.offered"] == ["h2", "http/1.1"]


def test_probe_reports_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    with _demo.demo_pki() as pki, _demo.LoopbackServer(pki.server_context()) as server:
        status = main(["probe", f"localhost:{server.port}", "--tls-max", "1.2"])
    assert status == 3
    out = capsys.readouterr().out
    assert "failed (tls): handshake failed: SSLCertVerificationError" in out
    assert "TLS 1.2" in out and "phase=certificate" in out
    assert "tls.certificate_untrusted" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err
