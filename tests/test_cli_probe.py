"""``tlstiming probe``, in-process, against real loopback servers; its argument handling, fuzzed."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest
from conftest import ServeFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import PKI, server_context

from tlstiming.cli import main, probe_options
from tlstiming.cli import options as opts

pytestmark = pytest.mark.usefixtures("implementation")


@pytest.fixture
def ca_file(pki: PKI, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(pki.ca.cert_pem.bytes())
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _port(server: object) -> str:
    return str(server.address[1])  # type: ignore[attr-defined]


# -- bad input: one line on stderr, exit 2, never a traceback ---------------------------

BAD = [
    ["probe", "localhost:abc"],
    ["probe", "localhost:99999"],
    ["probe", "localhost:0"],
    ["probe", "http://localhost/"],
    ["probe", "ftp://localhost/"],
    ["probe", "https://"],
    ["probe", ""],
    ["probe", "[::1"],
    ["probe", "localhost", "--timeout", "-1"],
    ["probe", "localhost", "--timeout", "nan"],
    ["probe", "localhost", "--timeout", "1e400"],
    ["probe", "localhost", "--timeout", "inf"],
    ["probe", "localhost", "--cafile", "/missing/ca.pem"],
    ["probe", "localhost", "--cafile", "/"],
    ["probe", "localhost", "--alpn", ","],
    ["probe", "localhost", "--servername", "a" * 300],
    ["probe", "bad_host!name"],
    ["probe", "localhost", "--count", "0"],
    ["probe", "localhost", "--count", "x"],
    ["probe", "localhost", "--slo", "total=abc"],
    ["probe", "localhost", "--slo", "total"],
    ["probe", "localhost", "--resolve", "nonsense"],
    ["probe", "localhost", "--tls-min", "1.4"],
    ["probe", "localhost", "--tls-min", "1.3", "--tls-max", "1.2"],
    ["probe", "localhost", "--key", "/etc/hostname"],
    ["probe"],
    ["nosuchcommand"],
    [],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a)[:40] or "empty")
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("tlstiming: error:")]
    if argv and argv[0] == "probe" and len(argv) > 1:
        assert len(lines) == 1, err
        assert out == ""


def test_a_file_that_is_no_ca_bundle_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, _out, err = run(["probe", "localhost:1", "--cafile", str(junk)], capsys)
    assert code == 2
    assert "--cafile" in err and "Traceback" not in err


def test_json_usage_error_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(["probe", "localhost:abc", "--json"], capsys)
    assert code == 2
    document = json.loads(out)
    assert document["exit_code"] == 2
    assert document["error"]["kind"] == "usage"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=st.lists(st.text(max_size=30), max_size=6))
def test_fuzzed_arguments_parse_or_fail_cleanly(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever is typed: the probe runs, or exit 2 with one line on stderr; never a traceback.

    The probe itself is replaced (arguments only here: no network).
    """
    import tlstiming.cli

    ran: list[object] = []

    def fake_probe(args: object, out: object) -> int:
        ran.append(probe_options(args))  # type: ignore[arg-type]
        return 0

    monkeypatch.setattr(tlstiming.cli, "_probe", fake_probe)
    code = main(["probe", *argv])
    _, err = capsys.readouterr()
    assert code in (0, 2)
    assert "Traceback" not in err
    if code == 2:
        assert len(err.splitlines()) == 1
        assert err.startswith("tlstiming: error:")
    else:
        assert ran
        assert err == ""


@given(st.text(max_size=80))
def test_fuzzed_targets_parse_or_fail_cleanly(text: str) -> None:
    try:
        target = opts.parse_target(text)
    except opts.UsageError:
        return
    assert 1 <= target.port <= 65535
    assert target.scheme in ("tls", "https")
    assert "?" not in target.shown


# -- against real servers ------------------------------------------------------------------


def test_a_healthy_server_exits_0(
    serve: ServeFactory, pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf))
    code, out, _err = run(["probe", f"localhost:{_port(server)}", "--cafile", ca_file], capsys)
    assert code == 0, out
    assert "[warning]" not in out
    assert "[error]" not in out
    assert "server_hello" in out  # the waterfall


def test_findings_at_warning_exit_1_with_their_ids(
    serve: ServeFactory, pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf, ecdh_curve="secp384r1"))
    code, out, _err = run(["probe", f"localhost:{_port(server)}", "--cafile", ca_file], capsys)
    assert code == 1
    assert "[warning] tls.hello_retry" in out
    assert "docs/diagnosis.md#tlshello_retry" in out


def test_an_https_url_reaches_the_first_byte(
    serve: ServeFactory, pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf, alpn=["http/1.1"]))
    _code, out, _err = run(
        ["probe", f"https://localhost:{_port(server)}/x?secret=1", "--cafile", ca_file, "--json"],
        capsys,
    )
    document = json.loads(out)
    request = document["runs"][0]["request"]
    phases = (
        [p["name"] for p in request["tlstiming.phases"]] if "tlstiming.phases" in request else []
    )
    assert "secret" not in out
    assert document["runs"][0]["failure"] is None
    assert not phases or phases.index("tls") < phases.index("wait_first_byte")


def test_not_tls_exits_3_and_names_it(
    serve: ServeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(mode="not_tls")
    code, out, _err = run(["probe", f"localhost:{_port(server)}"], capsys)
    assert code == 3
    assert "tls.not_tls_peer" in out
    assert "plain HTTP" in out


def test_refused_is_a_connect_failure_not_a_handshake_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code, out, _err = run(["probe", f"127.0.0.1:{port}", "--json"], capsys)
    assert code == 3
    document = json.loads(out)
    assert document["runs"][0]["failure"] == "connect"
    assert "handshake" not in document["runs"][0]["message"]


def test_an_ipv6_literal_is_probed(
    pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    from servers import LoopbackServer

    try:
        server = LoopbackServer(server_context(pki.leaf), host="::1")
    except OSError:
        pytest.skip("no ::1 here")
    with server:
        code, out, err = run(["probe", f"[::1]:{server.address[1]}", "--cafile", ca_file], capsys)
    assert code == 0, out + err


def test_client_certificate_required_then_given(
    serve: ServeFactory, pki: PKI, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(
        server_context(pki.leaf, maximum_version=ssl.TLSVersion.TLSv1_3, client_ca=pki.ca)
    )
    target = f"localhost:{_port(server)}"
    code, out, _ = run(["probe", target, "--cafile", ca_file], capsys)
    assert code == 3
    assert "tls.client_certificate_required" in out
    cert = tmp_path / "client.pem"
    cert.write_bytes(pki.client.private_key_and_cert_chain_pem.bytes())
    code, out, _err = run(["probe", target, "--cafile", ca_file, "--cert", str(cert)], capsys)
    assert code == 0, out


def test_count_resumes_and_prints_percentiles(
    serve: ServeFactory, pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf))
    code, out, _err = run(
        ["probe", f"localhost:{_port(server)}", "--cafile", ca_file, "--count", "3", "--json"],
        capsys,
    )
    document = json.loads(out)
    resumed = [run["handshake"]["tls.resumed"] for run in document["runs"]]
    assert resumed == [False, True, True]
    assert {"p50", "p90", "p99", "max"} <= set(document["percentiles_ms"]["total"])
    assert code == 0


def test_a_missed_slo_exits_4(
    serve: ServeFactory, pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf))
    code, out, _err = run(
        ["probe", f"localhost:{_port(server)}", "--cafile", ca_file, "--slo", "total=0"], capsys
    )
    assert code == 4
    assert "SLO missed" in out


def test_resolve_pins_the_address(
    serve: ServeFactory, pki: PKI, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(server_context(pki.leaf))
    port = _port(server)
    argv = ["probe", f"nowhere.invalid:{port}", "--servername", "localhost", "--cafile", ca_file]
    code, out, _err = run(
        [*argv, "--resolve", f"nowhere.invalid:{port}:127.0.0.1", "--json"], capsys
    )
    assert code == 0, out
    assert json.loads(out)["runs"][0]["failure"] is None
