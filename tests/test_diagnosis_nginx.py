"""Findings against nginx, a production TLS server, in real misconfigurations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from nginx import NGINX, NginxServer

from tlstiming.cli import main
from tlstiming.testing import LocalPKI

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def pki() -> Iterator[LocalPKI]:
    with LocalPKI.temporary() as pki:
        yield pki


def probe(
    port: int, pki: LocalPKI, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["probe", f"https://localhost:{port}/", "--cafile", pki.ca_file, "--json", *extra])
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == code
    return code, document


def ids(document: dict) -> list[str]:  # type: ignore[type-arg]
    return [f["id"] for f in document["findings"]]


def warnings(document: dict) -> list[str]:  # type: ignore[type-arg]
    return [f["id"] for f in document["findings"] if f["severity"] != "info"]


def test_a_healthy_nginx_has_no_warning(pki: LocalPKI, capsys: pytest.CaptureFixture[str]) -> None:
    issued = pki.issue()
    with NginxServer(issued.cert_file, issued.key_file) as server:
        code, document = probe(server.port, pki, capsys)
    assert code == 0, document["findings"]
    assert warnings(document) == []
    run = document["runs"][0]
    assert run["request"]["http.response.status_code"] == 200
    assert run["handshake"]["tls.next_protocol"] == "h2"


def test_nginx_without_its_intermediate(pki: LocalPKI, capsys: pytest.CaptureFixture[str]) -> None:
    issued = pki.issue(chain=False)
    with NginxServer(issued.cert_file, issued.key_file) as server:
        code, document = probe(server.port, pki, capsys)
    assert code == 3
    assert "tls.chain_incomplete" in ids(document)
    assert "tls.certificate_untrusted" not in ids(document)


def test_nginx_tls12_only(pki: LocalPKI, capsys: pytest.CaptureFixture[str]) -> None:
    issued = pki.issue()
    with NginxServer(issued.cert_file, issued.key_file, protocols="TLSv1.2") as server:
        _, document = probe(server.port, pki, capsys)
    assert "tls.tls12_round_trip" in ids(document)


def test_nginx_without_http2(pki: LocalPKI, capsys: pytest.CaptureFixture[str]) -> None:
    issued = pki.issue()
    with NginxServer(issued.cert_file, issued.key_file, http2=False) as server:
        code, document = probe(server.port, pki, capsys)
    assert code == 1
    assert warnings(document) == ["tls.alpn_h2_not_selected"]


def test_nginx_with_one_group_sends_a_hello_retry(
    pki: LocalPKI, capsys: pytest.CaptureFixture[str]
) -> None:
    issued = pki.issue()
    with NginxServer(
        issued.cert_file, issued.key_file, extra="ssl_ecdh_curve secp384r1;"
    ) as server:
        _, document = probe(server.port, pki, capsys)
    (finding,) = [f for f in document["findings"] if f["id"] == "tls.hello_retry"]
    assert finding["evidence"]["hello_retry_group"] == "secp384r1"


def test_nginx_requiring_a_client_certificate_answers_400(
    pki: LocalPKI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    issued = pki.issue()
    extra = f"ssl_verify_client on; ssl_client_certificate {pki.ca_file};"
    with NginxServer(issued.cert_file, issued.key_file, extra=extra) as server:
        code, document = probe(server.port, pki, capsys)
        assert "tls.client_certificate_required" in ids(document)
        assert code == 1  # the connection worked; the request was refused
        cert = tmp_path / "client.pem"
        cert.write_bytes(Path(pki.client_cert.cert_file).read_bytes())
        code, document = probe(
            server.port,
            pki,
            capsys,
            "--cert",
            pki.client_cert.cert_file,
            "--key",
            pki.client_cert.key_file,
        )
    assert "tls.client_certificate_required" not in ids(document)
    assert document["runs"][0]["request"]["http.response.status_code"] == 200


def test_nginx_sending_the_root(
    pki: LocalPKI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    issued = pki.issue()
    chain = tmp_path / "chain.pem"
    chain.write_bytes(Path(issued.cert_file).read_bytes() + Path(pki.ca_file).read_bytes())
    with NginxServer(str(chain), issued.key_file) as server:
        _, document = probe(server.port, pki, capsys)
    assert "tls.chain_sends_root" in ids(document)


def test_nginx_with_an_expired_certificate(
    pki: LocalPKI, capsys: pytest.CaptureFixture[str]
) -> None:
    issued = pki.issue(expired=True)
    with NginxServer(issued.cert_file, issued.key_file) as server:
        code, document = probe(server.port, pki, capsys)
    assert code == 3
    assert "tls.certificate_expired" in ids(document)
