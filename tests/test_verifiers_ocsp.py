"""OCSPVerifier against real loopback responders: ours (every fault mode) and ``openssl ocsp``."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from ocsp_responder import GUARD, OPENSSL, OCSPResponder, OpenSSLResponder, refused_url
from verifier_pki import (
    DAY,
    REVOKED_AT,
    Authority,
    Chain,
    client_context,
    delegated_responder,
    issue,
    make_chain,
    now,
    ocsp_response,
    peer,
)

from tlstiming._recording.verify import Verdict
from tlstiming.verifiers import OCSPVerifier
from tlstiming.verifiers._ocsp_check import check_response
from tlstiming.verifiers._revocation import Unavailable

SKEW = datetime.timedelta(minutes=5)


@pytest.fixture(scope="module")
def root() -> Authority:
    return issue("OCSP Test Root", None, ca=True)


@pytest.fixture(scope="module")
def intermediate(root: Authority) -> Authority:
    return issue("OCSP Test Intermediate", root, ca=True)


@pytest.fixture(scope="module")
def context(root: Authority) -> ssl.SSLContext:
    return client_context(root)


@pytest.fixture
def responder(intermediate: Authority) -> Iterator[OCSPResponder]:
    with OCSPResponder(intermediate) as responder:
        yield responder


@pytest.fixture
def chain(root: Authority, intermediate: Authority, responder: OCSPResponder) -> Chain:
    """A leaf whose AIA names ``responder`` (with a query string that must not be recorded)."""
    url = responder.url("/ocsp?token=s3cret")
    return make_chain(ocsp_url=url, root=root, intermediate=intermediate)


@pytest.fixture
def verifier() -> Iterator[Callable[..., OCSPVerifier]]:
    made: list[OCSPVerifier] = []

    def make(**options: Any) -> OCSPVerifier:
        made.append(OCSPVerifier(**options))
        return made[-1]

    yield make
    for verifier in made:
        verifier.close()


def accepted(verdict: Verdict | None) -> Verdict:
    assert verdict is not None
    assert verdict.ok, verdict
    assert not verdict.soft_failed, verdict
    return verdict


def soft_failed(verdict: Verdict | None, error: str) -> Verdict:
    assert verdict is not None
    assert verdict.ok, verdict
    assert verdict.soft_failed, verdict
    assert verdict.details["error"] == error, verdict
    assert verdict.reason
    return verdict


def rejected(verdict: Verdict | None) -> Verdict:
    assert verdict is not None
    assert not verdict.ok, verdict
    assert verdict.reason
    return verdict


# -- good, revoked, unknown ----------------------------------------------------------


def test_good_from_the_network_then_from_the_cache(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    check = verifier()
    first = accepted(check(peer(chain.sent, context)))
    assert first.details["source"] == "network"
    assert first.details["status"] == "good"
    assert first.details["cache_hit"] is False
    assert first.details["responder"] == responder.url("/ocsp")  # no query string
    assert isinstance(first.details["latency_ms"], float)
    second = accepted(check(peer(chain.sent, context)))
    assert second.details["source"] == "cache"
    assert second.details["cache_hit"] is True
    assert "latency_ms" not in second.details
    assert len(responder.requests) == 1
    assert responder.requests[0] == ("POST", "/ocsp?token=s3cret")
    assert "s3cret" not in repr(first) + repr(second)


def test_revoked_always_rejects(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.statuses[chain.leaf.cert.serial_number] = "revoked"
    check = verifier()
    verdict = rejected(check(peer(chain.sent, context)))
    assert verdict.details["status"] == "revoked"
    assert verdict.details["revocation_time"] == REVOKED_AT.isoformat()
    assert verdict.details["revocation_reason"] == "keyCompromise"
    assert verdict.reason == f"certificate revoked at {REVOKED_AT.isoformat()} (keyCompromise)"
    again = rejected(check(peer(chain.sent, context)))
    assert again.details["source"] == "cache"
    assert len(responder.requests) == 1


def test_unknown_soft_fails_or_rejects_with_hard_fail(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.default_status = "unknown"
    verdict = soft_failed(verifier()(peer(chain.sent, context)), "unknown")
    assert verdict.details["status"] == "unknown"
    rejected(verifier(hard_fail=True)(peer(chain.sent, context)))


# -- faults: the status cannot be established ----------------------------------------


def test_a_stalled_responder_soft_fails_at_the_deadline(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.mode = "stall"
    verdict = soft_failed(verifier(timeout=0.2)(peer(chain.sent, context)), "timeout")
    # The responder has our request and is still blocked: the verifier did not wait for it.
    assert responder.stalled.is_set()
    assert not responder.handler_exited.is_set()
    assert verdict.details["source"] == "network"
    assert verdict.details["status"] is None
    assert "0.2 s" in str(verdict.reason)


def test_a_stalled_responder_rejects_with_hard_fail(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.mode = "stall"
    verdict = rejected(verifier(timeout=0.2, hard_fail=True)(peer(chain.sent, context)))
    assert verdict.details["error"] == "timeout"
    assert not responder.handler_exited.is_set()


def test_a_trickling_responder_is_cut_off(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.mode = "trickle"
    soft_failed(verifier(timeout=0.2)(peer(chain.sent, context)), "timeout")
    assert not responder.handler_exited.is_set()
    assert responder.handler_exited.wait(GUARD)
    assert responder.trickle_outcome == "peer closed"


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("garbage", "malformed"),
        ("wrong_key", "bad_signature"),
        ("expired", "expired"),
        ("http_error", "http_status"),
        ("unauthorized", "unsuccessful"),
    ],
)
def test_bad_answers_soft_fail(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
    mode: Any,
    error: str,
) -> None:
    responder.mode = mode
    soft_failed(verifier()(peer(chain.sent, context)), error)
    rejected(verifier(hard_fail=True)(peer(chain.sent, context)))


def test_unreachable_responder(
    verifier: Callable[..., OCSPVerifier],
    root: Authority,
    intermediate: Authority,
    context: ssl.SSLContext,
) -> None:
    chain = make_chain(ocsp_url=refused_url(), root=root, intermediate=intermediate)
    soft_failed(verifier()(peer(chain.sent, context)), "network")


def test_a_failure_is_remembered_for_failure_ttl(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.mode = "http_error"
    clock = FakeClock()
    check = verifier(failure_ttl=10, clock=clock)
    soft_failed(check(peer(chain.sent, context)), "http_status")
    again = soft_failed(check(peer(chain.sent, context)), "http_status")
    assert again.details["cache_hit"] is True
    assert len(responder.requests) == 1
    responder.mode = "answer"
    clock.advance(seconds=11)
    accepted(check(peer(chain.sent, context)))
    assert len(responder.requests) == 2


# -- responders and signers ----------------------------------------------------------


def test_delegated_responder(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    intermediate: Authority,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.signer = delegated_responder(intermediate)
    accepted(verifier()(peer(chain.sent, context)))


@pytest.mark.parametrize("which", ["no_ocsp_signing_eku", "issued_by_another_ca"])
def test_delegated_responder_must_be_authorised(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    root: Authority,
    intermediate: Authority,
    chain: Chain,
    context: ssl.SSLContext,
    which: str,
) -> None:
    if which == "no_ocsp_signing_eku":
        responder.signer = delegated_responder(intermediate, ocsp_signing=False)
    else:
        responder.signer = delegated_responder(issue("Another CA", root, ca=True))
    soft_failed(verifier()(peer(chain.sent, context)), "bad_signer")


def test_sha256_certificate_ids(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    accepted(verifier(hash_algorithm="sha256")(peer(chain.sent, context)))


def test_hash_algorithm_is_checked() -> None:
    with pytest.raises(ValueError, match="md5"):
        OCSPVerifier(hash_algorithm="md5")  # type: ignore[arg-type]


@pytest.mark.openssl
@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_openssl_ocsp_responder(
    verifier: Callable[..., OCSPVerifier],
    root: Authority,
    intermediate: Authority,
    context: ssl.SSLContext,
    tmp_path: Path,
    status: str,
) -> None:
    """The foreign implementation: ``openssl ocsp`` answers (responder id by name)."""
    if OPENSSL is None:
        pytest.skip("the openssl command-line tool is not installed (CI installs it)")
    serial = x509.random_serial_number()
    entries: dict[int, Any] = {} if status == "unknown" else {serial: status}
    with OpenSSLResponder(tmp_path, intermediate, entries) as server:
        url = server.url("/")
        chain = make_chain(ocsp_url=url, root=root, intermediate=intermediate, serial=serial)
        verdict = verifier()(peer(chain.sent, context))
    assert verdict is not None
    assert verdict.details["status"] == status, (verdict, server.outputs)
    assert verdict.ok == (status != "revoked")
    assert verdict.soft_failed == (status == "unknown")


# -- staples -----------------------------------------------------------------------------


def test_a_good_staple_needs_no_responder(
    verifier: Callable[..., OCSPVerifier],
    root: Authority,
    intermediate: Authority,
    context: ssl.SSLContext,
) -> None:
    chain = make_chain(root=root, intermediate=intermediate)  # no AIA at all
    staple = ocsp_response(chain.leaf.cert, intermediate, hash_algorithm=hashes.SHA256())
    check = verifier()
    verdict = accepted(check(peer(chain.sent, context, staple=staple)))
    assert verdict.details["source"] == "staple"
    # The staple's answer is cached for connections that come without one.
    assert accepted(check(peer(chain.sent, context))).details["source"] == "cache"


def test_a_revoked_staple_rejects(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    intermediate: Authority,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    staple = ocsp_response(chain.leaf.cert, intermediate, status="revoked")
    verdict = rejected(verifier()(peer(chain.sent, context, staple=staple)))
    assert verdict.details["source"] == "staple"
    assert responder.requests == []


def test_a_bad_staple_falls_back_to_the_responder(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    intermediate: Authority,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    expired = ocsp_response(
        chain.leaf.cert, intermediate, this_update=now() - 3 * DAY, next_update=now() - 2 * DAY
    )
    verdict = accepted(verifier()(peer(chain.sent, context, staple=expired)))
    assert verdict.details["source"] == "network"
    assert str(verdict.details["staple_error"]).startswith("the response expired")


def test_staples_can_be_ignored(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    intermediate: Authority,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    staple = ocsp_response(chain.leaf.cert, intermediate, status="revoked")
    verdict = accepted(verifier(use_staple=False)(peer(chain.sent, context, staple=staple)))
    assert verdict.details["source"] == "network"


# -- the issuer, the responder URL -----------------------------------------------------


def test_missing_issuer_soft_fails(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    """The leaf alone, and the context trusts only the root: the issuer is nowhere."""
    verdict = soft_failed(verifier()(peer(chain.sent[:1], context)), "no_issuer")
    assert "issuer" in str(verdict.reason)
    assert responder.requests == []


def test_the_issuer_may_come_from_the_trust_store(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    root: Authority,
    intermediate: Authority,
    chain: Chain,
) -> None:
    trusting_both = client_context(root, intermediate)
    accepted(verifier()(peer(chain.sent[:1], trusting_both)))
    accepted(verifier(trust=[intermediate.der])(peer(chain.sent[:1], client_context())))


def test_no_responder_url_soft_fails(
    verifier: Callable[..., OCSPVerifier],
    root: Authority,
    intermediate: Authority,
    context: ssl.SSLContext,
) -> None:
    chain = make_chain(root=root, intermediate=intermediate)
    soft_failed(verifier()(peer(chain.sent, context)), "no_responder")


def test_no_certificate_and_resumed_sessions(
    verifier: Callable[..., OCSPVerifier], chain: Chain, context: ssl.SSLContext
) -> None:
    check = verifier()
    soft_failed(check(peer((), context)), "no_certificate")
    resumed = accepted(check(peer(chain.sent[:1], context, resumed=True)))
    assert resumed.details["source"] == "resumed"


# -- the event loop, background refresh, expiry ------------------------------------------


def test_on_the_event_loop_a_miss_does_not_block(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    responder.mode = "stall"
    check = verifier(timeout=0.2)
    verdict = check(peer(chain.sent, context, may_block=False))
    assert verdict is not None
    assert verdict.ok
    assert verdict.soft_failed
    assert verdict.details["status"] == "pending"
    assert verdict.details["source"] == "background"
    # The background fetch is the one the responder holds; nobody waited for it.
    assert responder.stalled.wait(GUARD)
    assert check.wait_idle(GUARD)  # it gives up at its own deadline
    assert not responder.handler_exited.is_set()
    # The timeout is remembered as a failure, retried after failure_ttl.
    again = soft_failed(check(peer(chain.sent, context, may_block=False)), "timeout")
    assert again.details["cache_hit"] is True


def test_on_the_event_loop_the_answer_arrives_for_the_next_handshake(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    check = verifier()
    pending = check(peer(chain.sent, context, may_block=False))
    assert pending is not None
    assert pending.details["status"] == "pending"
    assert check.wait_idle(GUARD)
    verdict = accepted(check(peer(chain.sent, context, may_block=False)))
    assert verdict.details["source"] == "cache"


def test_hard_fail_blocks_even_on_the_event_loop(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    verdict = accepted(verifier(hard_fail=True)(peer(chain.sent, context, may_block=False)))
    assert verdict.details["source"] == "network"


def test_refresh_ahead_keeps_hot_entries_fresh(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    """Answers are valid one day; refreshing 25 hours ahead refreshes on every hit."""
    check = verifier(refresh_ahead=25 * 3600)
    accepted(check(peer(chain.sent, context)))
    responder.statuses[chain.leaf.cert.serial_number] = "revoked"
    hit = accepted(check(peer(chain.sent, context)))  # served from the cache, no wait
    assert hit.details["source"] == "cache"
    assert check.wait_idle(GUARD)
    assert len(responder.requests) == 2
    refreshed = rejected(check(peer(chain.sent, context)))
    assert refreshed.details["source"] == "cache"


def test_cached_answers_expire_at_next_update(
    verifier: Callable[..., OCSPVerifier],
    responder: OCSPResponder,
    chain: Chain,
    context: ssl.SSLContext,
) -> None:
    clock = FakeClock()
    check = verifier(clock=clock)
    accepted(check(peer(chain.sent, context)))
    clock.advance(seconds=DAY.total_seconds() - 120)
    assert accepted(check(peer(chain.sent, context))).details["source"] == "cache"
    clock.advance(seconds=180)
    # nextUpdate passed: the cache entry is gone and the (real) responder is asked again.
    assert accepted(check(peer(chain.sent, context))).details["source"] == "network"
    assert len(responder.requests) == 2


def test_close_stops_background_fetches(
    responder: OCSPResponder, chain: Chain, context: ssl.SSLContext
) -> None:
    responder.mode = "stall"
    check = OCSPVerifier(timeout=GUARD)
    check(peer(chain.sent, context, may_block=False))
    assert responder.stalled.wait(GUARD)
    check.close()
    assert check.wait_idle(0)
    assert not responder.handler_exited.is_set()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("tlstiming-")]
    assert not [n for n in alive if n.startswith(("tlstiming-fetch", "tlstiming-revocation"))]
    # A closed verifier still answers, without the network.
    soft_failed(check(peer(make_other(chain), context)), "closed")


# -- the response checks alone ----------------------------------------------------------


def test_a_response_for_another_certificate(root: Authority, intermediate: Authority) -> None:
    mine, other = (make_chain(root=root, intermediate=intermediate) for _ in range(2))
    response = ocsp_response(other.leaf.cert, intermediate)
    with pytest.raises(Unavailable) as caught:
        check_response(response, mine.leaf.cert, intermediate.cert, now(), SKEW)
    assert caught.value.kind == "no_match"


def test_a_response_from_the_future(root: Authority, intermediate: Authority) -> None:
    chain = make_chain(root=root, intermediate=intermediate)
    response = ocsp_response(chain.leaf.cert, intermediate, this_update=now() + DAY)
    with pytest.raises(Unavailable) as caught:
        check_response(response, chain.leaf.cert, intermediate.cert, now(), SKEW)
    assert caught.value.kind == "not_yet_valid"
    answer = check_response(response, chain.leaf.cert, intermediate.cert, now() + DAY, SKEW)
    assert answer.status == "good"


class FakeClock:
    """A settable UTC clock for cache expiry."""

    def __init__(self) -> None:
        self.now = now()
        self._lock = threading.Lock()

    def __call__(self) -> datetime.datetime:
        with self._lock:
            return self.now

    def advance(self, *, seconds: float) -> None:
        with self._lock:
            self.now += datetime.timedelta(seconds=seconds)


def make_other(chain: Chain) -> tuple[bytes, ...]:
    """Another leaf from the same intermediate and responder."""
    url = chain.leaf.cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    ocsp_url = str(url.value[0].access_location.value)
    other = make_chain(ocsp_url=ocsp_url, root=chain.root, intermediate=chain.intermediate)
    return other.sent
