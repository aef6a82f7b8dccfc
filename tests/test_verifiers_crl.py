"""CRLVerifier against a loopback CRL distribution point."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ocsp_responder import GUARD, CRLServer, refused_url
from verifier_pki import (
    DAY,
    REVOKED_AT,
    Authority,
    Chain,
    client_context,
    crl,
    issue,
    make_chain,
    now,
    peer,
)

from tlstiming._recording.verify import Verdict
from tlstiming.verifiers import CRLVerifier
from tlstiming.verifiers.crl import distribution_points

PATH = "/intermediate.crl"


@pytest.fixture(scope="module")
def root() -> Authority:
    return issue("CRL Test Root", None, ca=True)


@pytest.fixture(scope="module")
def intermediate(root: Authority) -> Authority:
    return issue("CRL Test Intermediate", root, ca=True)


@pytest.fixture(scope="module")
def context(root: Authority) -> ssl.SSLContext:
    return client_context(root)


@pytest.fixture
def server() -> Iterator[CRLServer]:
    with CRLServer() as server:
        yield server


@pytest.fixture
def chain(root: Authority, intermediate: Authority, server: CRLServer) -> Chain:
    chain = make_chain(crl_url=server.url(PATH), root=root, intermediate=intermediate)
    server.crls[PATH] = crl(intermediate)
    return chain


@pytest.fixture
def verifier() -> Iterator[Callable[..., CRLVerifier]]:
    made: list[CRLVerifier] = []

    def make(**options: Any) -> CRLVerifier:
        made.append(CRLVerifier(**options))
        return made[-1]

    yield make
    for verifier in made:
        verifier.close()


def outcome(verdict: Verdict | None) -> str:
    assert verdict is not None
    if not verdict.ok:
        return "rejected"
    return "soft_failed" if verdict.soft_failed else "accepted"


def test_good_then_cached(
    verifier: Callable[..., CRLVerifier],
    server: CRLServer,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    check = verifier()
    first = check(peer(chain.sent, context))
    assert outcome(first) == "accepted"
    assert first is not None
    assert first.details["source"] == "network"
    assert first.details["status"] == "good"
    assert first.details["distribution_point"] == server.url(PATH)
    assert first.details["crl_bytes"] == len(server.crls[PATH])
    second = check(peer(chain.sent, context))
    assert outcome(second) == "accepted"
    assert second is not None
    assert second.details["cache_hit"] is True
    assert server.requests == [("GET", PATH)]


def test_revoked_rejects(
    verifier: Callable[..., CRLVerifier],
    server: CRLServer,
    intermediate: Authority,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    other = make_chain(root=chain.root, intermediate=intermediate)
    server.crls[PATH] = crl(intermediate, [other.leaf.cert, chain.leaf.cert])
    verdict = verifier()(peer(chain.sent, context))
    assert outcome(verdict) == "rejected"
    assert verdict is not None
    assert verdict.details["revocation_time"] == REVOKED_AT.isoformat()
    assert verdict.details["revocation_reason"] == "keyCompromise"
    assert "revoked" in str(verdict.reason)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("unreachable", "network"),
        ("missing", "http_status"),
        ("garbage", "malformed"),
        ("wrong_signer", "bad_signature"),
        ("other_issuer", "wrong_issuer"),
        ("expired", "expired"),
        ("too_large", "too_large"),
    ],
)
def test_faults_soft_fail_or_reject_with_hard_fail(
    verifier: Callable[..., CRLVerifier],
    server: CRLServer,
    root: Authority,
    intermediate: Authority,
    context: ssl.SSLContext,
    fault: str,
    error: str,
) -> None:
    url = refused_url() if fault == "unreachable" else server.url(PATH)
    chain = make_chain(crl_url=url, root=root, intermediate=intermediate)
    impostor = Authority(cert=intermediate.cert, key=issue("x", None, ca=True).key)
    server.crls[PATH] = {
        "missing": b"",
        "garbage": b"not a CRL",
        "wrong_signer": crl(intermediate, signer=impostor),
        "other_issuer": crl(root),
        "expired": crl(intermediate, next_update=now() - DAY),
    }.get(fault, crl(intermediate))
    if fault == "missing":
        del server.crls[PATH]
    options = {"max_bytes": 100} if fault == "too_large" else {}
    soft = verifier(**options)(peer(chain.sent, context))
    assert outcome(soft) == "soft_failed"
    assert soft is not None
    assert soft.details["error"] == error, soft
    hard = verifier(hard_fail=True, **options)(peer(chain.sent, context))
    assert outcome(hard) == "rejected"


def test_no_distribution_point(
    verifier: Callable[..., CRLVerifier],
    root: Authority,
    intermediate: Authority,
    context: ssl.SSLContext,
) -> None:
    chain = make_chain(root=root, intermediate=intermediate)
    verdict = verifier()(peer(chain.sent, context))
    assert outcome(verdict) == "soft_failed"
    assert verdict is not None
    assert verdict.details["error"] == "no_distribution_point"


def test_only_http_distribution_points(root: Authority, intermediate: Authority) -> None:
    ldap = make_chain(crl_url="ldap://ldap.example/cn=crl", root=root, intermediate=intermediate)
    assert distribution_points(ldap.leaf.cert) == ()
    http = make_chain(crl_url="http://crl.example/a.crl", root=root, intermediate=intermediate)
    assert distribution_points(http.leaf.cert) == ("http://crl.example/a.crl",)


def test_on_the_event_loop_a_miss_does_not_block(
    verifier: Callable[..., CRLVerifier],
    server: CRLServer,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    check = verifier()
    pending = check(peer(chain.sent, context, may_block=False))
    assert outcome(pending) == "soft_failed"
    assert pending is not None
    assert pending.details["status"] == "pending"
    assert check.wait_idle(GUARD)
    cached = check(peer(chain.sent, context, may_block=False))
    assert outcome(cached) == "accepted"
    assert cached is not None
    assert cached.details["source"] == "cache"
