"""ChainAnalysis on real chains: what was sent, against a path built by cryptography."""

from __future__ import annotations

import datetime
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocsp_responder import OPENSSL
from verifier_pki import (
    DAY,
    Authority,
    Chain,
    client_context,
    issue,
    make_chain,
    new_key,
    now,
    peer,
)

from tlstiming._recording.verify import Verdict
from tlstiming.verifiers import FINDINGS, ChainAnalysis


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(scope="module")
def context(chain: Chain) -> ssl.SSLContext:
    return client_context(chain.root)


def findings(verdict: Verdict | None) -> set[str]:
    assert verdict is not None
    text = str(verdict.details["findings"])
    return set(text.split(",")) if text else set()


def test_a_clean_chain(chain: Chain, context: ssl.SSLContext) -> None:
    verdict = ChainAnalysis()(peer(chain.sent, context))
    assert verdict is not None
    assert verdict.ok
    assert not verdict.soft_failed
    assert verdict.reason is None
    assert findings(verdict) == set()
    assert verdict.details["path_length"] == 3
    assert verdict.details["chain_length"] == 2
    assert verdict.details["trust_source"] == "context"
    expected = 4 + 1 + 3 + sum(5 + len(der) for der in chain.sent)
    assert verdict.details["flight_bytes"] == expected


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (("leaf", "intermediate", "root"), {"root_sent"}),
        (("leaf", "root", "intermediate"), {"root_sent", "wrong_order"}),
        (("leaf", "intermediate", "intermediate"), {"duplicate"}),
        (("leaf", "intermediate", "stranger"), {"unused_certificate"}),
    ],
)
def test_what_was_sent(
    chain: Chain, context: ssl.SSLContext, sent: tuple[str, ...], expected: set[str]
) -> None:
    certs = {
        "leaf": chain.leaf.der,
        "intermediate": chain.intermediate.der,
        "root": chain.root.der,
        "stranger": make_chain().intermediate.der,
    }
    verdict = ChainAnalysis()(peer([certs[name] for name in sent], context))
    assert findings(verdict) == expected
    assert verdict is not None
    assert verdict.ok
    assert verdict.soft_failed
    for name in expected:
        assert f"{name}: " in str(verdict.reason)
        assert isinstance(verdict.details[name], str)


def test_missing_intermediate(chain: Chain) -> None:
    """The leaf alone verifies only for a client that already holds the intermediate."""
    holds_it = client_context(chain.root, chain.intermediate)
    verdict = ChainAnalysis()(peer(chain.sent[:1], holds_it))
    assert findings(verdict) == {"missing_intermediate"}
    assert verdict is not None
    assert verdict.details["path_length"] == 2  # the trusted intermediate is the anchor
    lacks_it = ChainAnalysis()(peer(chain.sent[:1], client_context(chain.root)))
    assert findings(lacks_it) == {"no_path"}
    assert lacks_it is not None
    assert lacks_it.details["path_length"] is None


def test_reject_on_makes_a_finding_fatal(chain: Chain) -> None:
    analysis = ChainAnalysis(reject_on={"missing_intermediate"})
    verdict = analysis(peer(chain.sent[:1], client_context(chain.root, chain.intermediate)))
    assert verdict is not None
    assert not verdict.ok
    assert str(verdict.reason).startswith("missing_intermediate: ")
    ok = analysis(peer(chain.sent, client_context(chain.root)))
    assert ok is not None
    assert ok.ok


def test_unknown_findings_are_refused() -> None:
    with pytest.raises(ValueError, match="missing_intermediates"):
        ChainAnalysis(reject_on={"missing_intermediates"})  # type: ignore[arg-type]
    assert "large_flight" in FINDINGS


def test_expiring(chain: Chain, context: ssl.SSLContext) -> None:
    soon = make_chain(root=chain.root, intermediate=chain.intermediate, not_after=now() + 5 * DAY)
    verdict = ChainAnalysis()(peer(soon.sent, context))
    assert findings(verdict) == {"expiring"}
    assert verdict is not None
    assert verdict.details["expires_in_days"] == pytest.approx(5, abs=0.1)
    assert str(verdict.details["expiring"]).startswith("position 0 expires")
    relaxed = ChainAnalysis(expiring_within_days=2)(peer(soon.sent, context))
    assert findings(relaxed) == set()


def test_weak_key(chain: Chain, context: ssl.SSLContext) -> None:
    weak = make_chain(root=chain.root, intermediate=chain.intermediate, key=new_key("rsa-1024"))
    verdict = ChainAnalysis()(peer(weak.sent, context))
    assert "weak_key" in findings(verdict)
    assert verdict is not None
    assert verdict.details["weak_key"] == "position 0: RSA 1024 bits"


@pytest.mark.openssl
def test_weak_signature(chain: Chain, context: ssl.SSLContext, tmp_path: Path) -> None:
    """cryptography refuses to sign with SHA-1; the openssl tool still does."""
    if OPENSSL is None:
        pytest.skip("the openssl command-line tool is not installed (CI installs it)")
    leaf = _sha1_leaf(chain.intermediate, tmp_path)
    verdict = ChainAnalysis()(peer((leaf, chain.intermediate.der), context))
    assert "weak_signature" in findings(verdict)
    assert verdict is not None
    assert verdict.details["weak_signature"] == "position 0: ECDSA with SHA-1"


def test_large_flight(chain: Chain, context: ssl.SSLContext) -> None:
    verdict = ChainAnalysis(max_flight_bytes=500)(peer(chain.sent, context, protocol_version="1.2"))
    assert findings(verdict) == {"large_flight"}
    assert verdict is not None
    assert verdict.details["flight_bytes"] == 4 + 3 + sum(3 + len(der) for der in chain.sent)


def test_explicit_trust_and_the_certifi_fallback(chain: Chain) -> None:
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # lists no CA: default paths assumed
    fallback = ChainAnalysis()(peer(chain.sent, bare))
    assert fallback is not None
    assert fallback.details["trust_source"] == "certifi"
    assert findings(fallback) == {"no_path"}  # our test root is not in certifi
    explicit = ChainAnalysis(trust=[chain.root.pem])(peer(chain.sent, bare))
    assert explicit is not None
    assert explicit.details["trust_source"] == "explicit"
    assert findings(explicit) == set()


def test_client_certificates_on_the_server_side(chain: Chain, context: ssl.SSLContext) -> None:
    client = issue(
        "client",
        chain.intermediate,
        ca=False,
        hostnames=("client.example",),
        eku=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )
    sent = (client.der, chain.intermediate.der)
    verdict = ChainAnalysis()(peer(sent, context, side="server"))
    assert findings(verdict) == set()
    assert verdict is not None
    assert verdict.details["path_length"] == 3


def test_resumed_sessions_and_empty_chains(chain: Chain, context: ssl.SSLContext) -> None:
    resumed = ChainAnalysis()(peer(chain.sent[:1], context, resumed=True))
    assert resumed is not None
    assert resumed.ok
    assert not resumed.soft_failed
    empty = ChainAnalysis()(peer((), context))
    assert empty is not None
    assert empty.soft_failed


def test_the_clock_decides_validity(chain: Chain, context: ssl.SSLContext) -> None:
    later = now() + 400 * DAY
    verdict = ChainAnalysis(clock=lambda: later)(peer(chain.sent, context))
    assert findings(verdict) == {"expiring", "no_path"}


def _sha1_leaf(issuer: Authority, tmp_path: Path) -> bytes:
    key = new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "leaf.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(issuer.pem)
    (tmp_path / "ca.key").write_bytes(issuer.key_pem())
    (tmp_path / "ext.cnf").write_text(
        "[v3]\nsubjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    assert OPENSSL is not None
    subprocess.run(
        [
            *(OPENSSL, "x509", "-req", "-sha1", "-days", "30", "-set_serial", "4242"),
            *("-in", str(tmp_path / "leaf.csr"), "-out", str(tmp_path / "leaf.pem")),
            *("-CA", str(tmp_path / "ca.pem"), "-CAkey", str(tmp_path / "ca.key")),
            *("-extfile", str(tmp_path / "ext.cnf"), "-extensions", "v3"),
        ],
        capture_output=True,
        check=True,
    )
    leaf = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
    assert leaf.not_valid_after_utc - now() > datetime.timedelta(days=29)
    return leaf.public_bytes(serialization.Encoding.DER)
