"""The command line, called in-process."""

from __future__ import annotations

import json

import pytest

from tlstiming.cli import demo as _demo
from tlstiming.cli import main


def test_demo_names_every_planted_cause(capsys: pytest.CaptureFixture[str]) -> None:
    from tlstiming import implementation
    from tlstiming.cli.demo_servers import available

    SCENARIOS = available()
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n== ") == len(SCENARIOS) == (13 if implementation().name == "native" else 12)
    assert "NOT NAMED" not in out
    for scenario in SCENARIOS:
        assert scenario.title in out
        if scenario.expected is not None:
            assert f"] {scenario.expected}: " in out
    healthy = out.split("\n== ")[1]
    assert "[warning]" not in healthy and "[error]" not in healthy
    assert f"{len(SCENARIOS)} of {len(SCENARIOS)} servers diagnosed as planted" in out


def test_demo_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["all_named"] is True
    by_name = {s["name"]: s for s in document["scenarios"]}
    assert by_name["healthy"]["expected"] is None
    assert all(f["severity"] == "info" for f in by_name["healthy"]["probe"]["findings"])
    ids = {f["id"] for f in by_name["hello_retry"]["probe"]["findings"]}
    assert "tls.hello_retry" in ids
    handshake = by_name["tls12"]["probe"]["runs"][0]["handshake"]
    assert handshake["tls.protocol.version"] == "1.2"


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
    from tlstiming import implementation

    failed = "chain_verification" if implementation().name == "native" else "certificate"
    assert "TLS 1.2" in out and f"phase={failed}" in out
    assert "tls.certificate_untrusted" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err
