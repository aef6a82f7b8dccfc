"""OCSPStapler against a real loopback responder, and stapling end to end to a real client.

The stapler's fetching, checking, planning and lifecycle run on every
implementation; the handshakes that carry its staple need native hooks
(``tlstiming.implementation()``). Time is the stapler's injected clock: the
real UTC time shifted by an offset the test moves (or frozen), so a response
"expires" or "is due" without anybody waiting for it. Nothing here sleeps to
assert: waits are on the sink's condition, each with a generous guard.
"""

from __future__ import annotations

import datetime
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ServeFactory
from cryptography import x509
from http_servers import BODY
from http_servers import _app as asgi_app
from ocsp_responder import GUARD, OCSPResponder
from servers import GREETING, connect, read_exactly, server_context
from verifier_pki import (
    Authority,
    Chain,
    delegated_responder,
    issue,
    make_chain,
    now,
    ocsp_response,
)

import tlstiming
from tlstiming import SpanRecorder, TimedSSLContext
from tlstiming.stapling import OCSPStapler, StapleFetch, StaplerStatus
from tlstiming.testing import LeafCert
from tlstiming.verifiers import Fetcher, OCSPVerifier
from tlstiming.verifiers._fetch import Fetched, FetchError
from tlstiming.verifiers._staple_plan import RefreshPlan

native = pytest.mark.skipif(
    tlstiming.implementation().name != "native",
    reason="stapling in a handshake needs native hooks (tlstiming.implementation())",
)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
FAST_RETRY = (0.05, 0.2)


class Clock:
    """The stapler's clock: real UTC now plus ``offset``, or ``frozen`` when set."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta(0)
        self.frozen: datetime.datetime | None = None
        self.broken = False

    def __call__(self) -> datetime.datetime:
        if self.broken:
            raise RuntimeError("the clock broke")
        return self.frozen or datetime.datetime.now(datetime.timezone.utc) + self.offset


class Records:
    """A sink keeping every record; :meth:`wait_for` waits on a condition, with a guard."""

    def __init__(self) -> None:
        self.items: list[StapleFetch] = []
        self._cond = threading.Condition()

    def __call__(self, record: StapleFetch) -> None:
        with self._cond:
            self.items.append(record)
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[StapleFetch]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, GUARD), self.items
            return list(self.items[:count])


@dataclass
class Site:
    """A chain whose leaf names ``responder``, which answers for the intermediate."""

    responder: OCSPResponder
    chain: Chain
    clock: Clock
    records: Records
    staplers: list[OCSPStapler]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain.leaf.cert

    @property
    def issuer(self) -> x509.Certificate:
        return self.chain.intermediate.cert

    def stapler(self, **options: Any) -> OCSPStapler:
        """A stapler on this site's clock and sink (closed at teardown); options override."""
        options = {"clock": self.clock, "sink": self.records, "jitter": 0.0, **options}
        stapler = OCSPStapler(self.leaf, self.issuer, **options)
        self.staplers.append(stapler)
        return stapler

    def server(self, stapler: OCSPStapler, version: str = "1.3") -> TimedSSLContext:
        leaf = LeafCert(self.chain.leaf.cert, self.chain.leaf.key, (self.issuer,))
        tls12 = ssl.TLSVersion.TLSv1_2 if version == "1.2" else None
        context = server_context(leaf, factory=TimedSSLContext, maximum_version=tls12)
        assert isinstance(context, TimedSSLContext)
        context.set_ocsp_staple(stapler)
        return context

    def client(self) -> tuple[TimedSSLContext, SpanRecorder]:
        context = tlstiming.create_default_context(cadata=self.chain.root.pem.decode("ascii"))
        context.ocsp_stapling = True
        recorder = SpanRecorder()
        context.add_sink(recorder)
        return context, recorder


@pytest.fixture(scope="module")
def root() -> Authority:
    return issue("Stapling Test Root", None, ca=True)


@pytest.fixture(scope="module")
def intermediate(root: Authority) -> Authority:
    return issue("Stapling Test Intermediate", root, ca=True)


@pytest.fixture
def site(root: Authority, intermediate: Authority) -> Iterator[Site]:
    with OCSPResponder(intermediate) as responder:
        chain = make_chain(ocsp_url=responder.url("/ocsp"), root=root, intermediate=intermediate)
        made = Site(responder, chain, Clock(), Records(), [])
        try:
            yield made
        finally:
            for stapler in made.staplers:
                stapler.close()


def _handshake(site: Site, serve: ServeFactory, server: TimedSSLContext) -> tlstiming.HandshakeSpan:
    client, recorder = site.client()
    with connect(client, serve(server).address) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING
    (span,) = recorder
    return span


# -- fetch, check, staple ---------------------------------------------------------------


def test_nothing_is_stapled_before_the_first_fetch(site: Site) -> None:
    stapler = site.stapler()
    assert stapler("localhost") is None
    assert stapler.status == StaplerStatus(
        running=False,
        stapling=False,
        cert_status=None,
        this_update=None,
        next_update=None,
        next_refresh=None,
        failures=0,
        last_fetch=None,
    )
    assert site.responder.requests == []


def test_refresh_now_fetches_checks_and_staples(site: Site) -> None:
    stapler = site.stapler()
    record = stapler.refresh_now()
    assert (record.outcome, record.failure, record.cert_status) == ("ok", None, "good")
    assert site.responder.requests == [("POST", "/ocsp")]
    der = stapler("localhost")
    assert der is not None and len(der) == record.response_bytes
    assert stapler(None) is der  # the same cached bytes, whatever the name
    assert record.this_update is not None and record.next_update is not None
    assert record.this_update <= record.at < record.next_update
    assert record.start_ns <= record.end_ns
    status = stapler.status
    assert status.stapling and status.cert_status == "good" and status.failures == 0
    assert (status.this_update, status.next_update) == (record.this_update, record.next_update)
    assert status.last_fetch is record


def test_a_delegated_responder_is_accepted(site: Site, intermediate: Authority) -> None:
    site.responder.signer = delegated_responder(intermediate)
    stapler = site.stapler()
    assert stapler.refresh_now().outcome == "ok"
    assert stapler(None) is not None


@pytest.mark.parametrize(
    ("fault", "failure"),
    [
        ("garbage", "malformed"),
        ("wrong_key", "bad_signature"),
        ("unauthorized", "unsuccessful"),
        ("expired", "expired"),
        ("unknown", "unknown_status"),
        ("undelegated", "bad_signer"),
    ],
)
def test_a_response_that_does_not_check_out_is_never_stapled(
    site: Site, root: Authority, fault: str, failure: str
) -> None:
    if fault == "unknown":
        site.responder.default_status = "unknown"
    elif fault == "undelegated":  # an OCSP signer the root issued, not the leaf's issuer
        site.responder.signer = delegated_responder(root)
    else:
        site.responder.mode = fault  # type: ignore[assignment]
    stapler = site.stapler()
    record = stapler.refresh_now()
    assert (record.outcome, record.failure) == ("failed", failure)
    assert record.reason
    assert stapler(None) is None
    status = stapler.status
    assert (status.stapling, status.failures, status.cert_status) == (False, 1, None)
    if fault == "unknown":
        assert record.cert_status == "unknown"  # checked, and still not stapled


def test_revoked_is_stapled_and_replaces_good(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    stapler = site.stapler()
    stapler.refresh_now()
    good = stapler(None)
    site.responder.default_status = "revoked"
    with caplog.at_level(logging.WARNING, logger="tlstiming"):
        record = stapler.refresh_now()
    assert (record.outcome, record.cert_status) == ("ok", "revoked")
    revoked = stapler(None)
    assert revoked is not None and revoked != good
    assert stapler.status.cert_status == "revoked"
    assert any("revoked" in r.getMessage() for r in caplog.records)
    site.responder.default_status = "unknown"  # unknown never displaces a valid answer
    assert stapler.refresh_now().failure == "unknown_status"
    assert stapler(None) is revoked


def test_an_older_response_does_not_replace_a_newer_one(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    stapler = site.stapler()
    stapler.refresh_now()
    newer = stapler(None)
    monkeypatch.setattr("verifier_pki.now", lambda: now() - HOUR)  # a lagging cache's copy
    record = stapler.refresh_now()
    assert (record.outcome, record.failure) == ("failed", "stale")
    assert stapler(None) is newer


def test_a_response_without_next_update_is_stapled_for_the_ttl(site: Site) -> None:
    answer = ocsp_response(site.leaf, site.chain.intermediate, next_update=None)

    class Canned(Fetcher):
        def post(self, url: str, body: bytes, **options: Any) -> Fetched:
            return Fetched(200, answer, "application/ocsp-response")

    site.clock.frozen = now()
    stapler = site.stapler(fetcher=Canned(), ttl_without_next_update=600.0)
    record = stapler.refresh_now()
    assert (record.outcome, record.next_update) == ("ok", None)
    assert stapler.status.next_update == record.at + datetime.timedelta(seconds=600)
    site.clock.frozen = record.at + datetime.timedelta(seconds=600)
    assert stapler(None) is None


# -- refresh and expiry -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("refresh_ahead", "lead"), [(0.5, DAY / 2), (0.25, DAY / 4), (2 * HOUR, 2 * HOUR)]
)
def test_the_refresh_is_planned_before_next_update(
    site: Site, refresh_ahead: float | datetime.timedelta, lead: datetime.timedelta
) -> None:
    """The responder's answers are valid for one day."""
    site.clock.frozen = now()
    stapler = site.stapler(refresh_ahead=refresh_ahead)
    record = stapler.refresh_now()
    assert record.this_update is not None and record.next_update is not None
    assert record.next_update - record.this_update == DAY
    assert stapler.status.next_refresh == record.next_update - lead
    assert record.at < record.next_update - lead < record.next_update


def test_the_thread_refreshes_once_the_refresh_is_due(site: Site) -> None:
    """Past the midpoint of the responder's one-day answers, each fetch is due again soon."""
    site.clock.offset = 13 * HOUR
    site.stapler(retry=FAST_RETRY).start()
    first, second, third = site.records.wait_for(3)
    assert [r.outcome for r in (first, second, third)] == ["ok"] * 3
    assert first.end_ns <= second.start_ns and second.end_ns <= third.start_ns
    assert first.next_update is not None
    assert first.at < second.at < third.at < first.next_update  # refreshed before it expired
    assert len(site.responder.requests) >= 3


def test_the_thread_sleeps_until_the_planned_refresh(site: Site) -> None:
    stapler = site.stapler(retry=FAST_RETRY).start()
    (first,) = site.records.wait_for(1)
    status = stapler.status
    assert status.running and status.stapling
    assert first.next_update is not None and status.next_refresh is not None
    assert first.at + HOUR < status.next_refresh < first.next_update


@pytest.mark.parametrize(
    ("fault", "failure"),
    [
        ("http_error", "http_status"),
        ("garbage", "malformed"),
        ("stall", "timeout"),
        ("down", "network"),
    ],
)
def test_a_failing_responder_leaves_the_last_good_staple(
    site: Site, fault: str, failure: str
) -> None:
    site.clock.frozen = now()
    stapler = site.stapler(timeout=0.5 if fault == "stall" else GUARD, retry=(1.0, 4.0))
    stapler.refresh_now()
    good = stapler(None)
    if fault == "down":
        site.responder.close()
    else:
        site.responder.mode = fault  # type: ignore[assignment]
    record = stapler.refresh_now()
    assert (record.outcome, record.failure) == ("failed", failure)
    assert stapler(None) is good
    status = stapler.status
    assert (status.stapling, status.cert_status, status.failures) == (True, "good", 1)
    assert status.last_fetch is record
    assert status.next_refresh == record.at + datetime.timedelta(seconds=1)  # retry soon


def test_backoff_doubles_up_to_its_bound(site: Site) -> None:
    site.clock.frozen = now()
    site.responder.mode = "http_error"
    stapler = site.stapler(retry=(1.0, 4.0))
    waits = []
    for _ in range(5):
        record = stapler.refresh_now()
        next_refresh = stapler.status.next_refresh
        assert next_refresh is not None
        waits.append((next_refresh - record.at).total_seconds())
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    site.responder.mode = "answer"
    assert stapler.refresh_now().outcome == "ok"
    assert stapler.status.failures == 0


def test_nothing_is_stapled_past_next_update(site: Site) -> None:
    stapler = site.stapler()
    record = stapler.refresh_now()
    assert record.next_update is not None and stapler(None) is not None
    site.responder.mode = "http_error"
    site.clock.offset = record.next_update - now()  # nextUpdate: the response just expired
    assert stapler(None) is None
    assert not stapler.status.stapling
    assert stapler.refresh_now().failure == "http_status"
    assert stapler(None) is None
    site.responder.mode = "answer"  # its answer is as old: expired too, by this clock
    assert stapler.refresh_now().failure == "expired"
    assert stapler(None) is None


def test_an_expired_staple_is_dropped_and_reported(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    stapler = site.stapler()
    record = stapler.refresh_now()
    assert record.next_update is not None
    site.responder.mode = "http_error"
    site.clock.offset = record.next_update - now() + HOUR
    with caplog.at_level(logging.WARNING, logger="tlstiming"):
        stapler.refresh_now()
        stapler.refresh_now()
    assert stapler.status.cert_status is None  # let go of, not just withheld
    expired = [r for r in caplog.records if "stopped stapling" in r.getMessage()]
    assert len(expired) == 1


# -- the records and the sink -----------------------------------------------------------


def test_the_sink_gets_one_record_per_fetch(root: Authority, intermediate: Authority) -> None:
    with OCSPResponder(intermediate) as responder:
        secret_url = responder.url("/ocsp?token=secret").replace("//", "//user:secret@", 1)
        chain = make_chain(ocsp_url=secret_url, root=root, intermediate=intermediate)
        records = Records()
        stapler = OCSPStapler(chain.leaf.cert, intermediate.cert, sink=records)
        try:
            returned = [stapler.refresh_now()]
            responder.mode = "http_error"
            returned.append(stapler.refresh_now())
            responder.mode = "answer"
            returned.append(stapler.refresh_now())
        finally:
            stapler.close()
    assert len(records.items) == len(returned) == len(responder.requests) == 3
    assert all(got is made for got, made in zip(records.items, returned, strict=True))
    assert [r.outcome for r in returned] == ["ok", "failed", "ok"]
    assert stapler.status.last_fetch is returned[-1]
    for record in records.items:
        assert record.responder == responder.url("/ocsp")
        exported = json.dumps(record.to_dict())
        assert "secret" not in exported and "secret" not in repr(record)
    assert "secret" not in repr(stapler) and "secret" not in repr(stapler.status)


def test_a_failing_sink_is_logged_never_raised(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    def sink(record: StapleFetch) -> None:
        raise RuntimeError("sink bug")

    stapler = site.stapler(sink=sink)
    with caplog.at_level(logging.ERROR, logger="tlstiming"):
        record = stapler.refresh_now()
    assert record.outcome == "ok" and stapler(None) is not None
    (logged,) = [r for r in caplog.records if "sink" in r.getMessage()]
    assert logged.name == "tlstiming" and logged.exc_info is not None


def test_what_the_responder_says_is_escaped(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    class Forging(Fetcher):
        def post(self, url: str, body: bytes, **options: Any) -> Fetched:
            raise FetchError("network", "refused\n2099-01-01 INFO all good\x1b[2J\u202e")

    stapler = site.stapler(fetcher=Forging())
    with caplog.at_level(logging.WARNING, logger="tlstiming"):
        record = stapler.refresh_now()
    assert record.reason is not None and "\n" in record.reason  # raw in the value
    shown = [repr(record), *(r.getMessage() for r in caplog.records)]
    assert len(shown) > 1
    for text in shown:
        assert not {"\n", "\x1b", "\u202e"} & set(text), text


# -- lifecycle --------------------------------------------------------------------------


def test_close_stops_the_thread_and_the_stapling(site: Site) -> None:
    stapler = site.stapler()
    with stapler:
        site.records.wait_for(1)
        assert stapler.status.running and stapler(None) is not None
        assert stapler.start() is stapler  # idempotent
    status = stapler.status
    assert (status.running, status.stapling) == (False, False)
    assert stapler(None) is None
    stapler.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        stapler.start()
    with pytest.raises(ValueError, match="closed"):
        stapler.refresh_now()


def test_close_aborts_a_stalled_fetch(site: Site) -> None:
    """The fetch's own deadline is an hour: only close() can end it."""
    site.responder.mode = "stall"
    stapler = site.stapler(timeout=3600.0).start()
    assert site.responder.stalled.wait(GUARD)
    stapler.close()
    assert not stapler.status.running
    assert not site.responder.release.is_set()  # the abort ended it, not the responder
    (record,) = site.records.wait_for(1)
    assert (record.outcome, record.failure) == ("failed", "closed")


def test_a_shared_fetcher_stays_open(site: Site) -> None:
    fetcher = Fetcher()
    try:
        with site.stapler(fetcher=fetcher) as stapler:
            assert stapler.refresh_now().outcome == "ok"
        assert site.stapler(fetcher=fetcher).refresh_now().outcome == "ok"
    finally:
        fetcher.close()


def test_a_broken_clock_costs_the_staple_not_an_exception(site: Site) -> None:
    stapler = site.stapler()
    stapler.refresh_now()
    site.clock.broken = True
    assert stapler(None) is None


def test_from_certfile_reads_the_chain_a_server_loads(site: Site, tmp_path: Path) -> None:
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(
        site.chain.leaf.key_pem() + site.chain.leaf.pem + site.chain.intermediate.pem
    )
    with OCSPStapler.from_certfile(chain_file, sink=site.records) as stapler:
        assert stapler.refresh_now().outcome == "ok"
    alone = tmp_path / "leaf.pem"
    alone.write_bytes(site.chain.leaf.pem)
    with pytest.raises(ValueError, match="pass issuer="):
        OCSPStapler.from_certfile(alone)
    with OCSPStapler.from_certfile(str(alone), issuer=site.issuer) as stapler:
        assert stapler.refresh_now().outcome == "ok"


# -- misuse -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "10"}, TypeError, "timeout"),
        ({"retry": (5.0, 1.0)}, ValueError, "exceeds"),
        ({"retry": (0, 1.0)}, ValueError, r"retry\[0\]"),
        ({"retry": 2.0}, TypeError, "retry"),
        ({"refresh_ahead": 0}, ValueError, "refresh_ahead"),
        ({"refresh_ahead": 1.0}, ValueError, "fraction below 1"),
        ({"refresh_ahead": 3600}, ValueError, r"timedelta\(seconds=3600\)"),
        ({"refresh_ahead": datetime.timedelta(0)}, ValueError, "positive timedelta"),
        ({"jitter": 1.0}, ValueError, "jitter"),
        ({"jitter": -0.1}, ValueError, "jitter"),
        ({"max_response_bytes": 0}, ValueError, "max_response_bytes"),
        ({"max_response_bytes": 2 << 20}, ValueError, "at most"),
        ({"clock_skew": -1}, ValueError, "clock_skew"),
        ({"ttl_without_next_update": 0}, ValueError, "ttl_without_next_update"),
        ({"sink": 42}, TypeError, "sink"),
        ({"clock": "now"}, TypeError, "clock"),
        ({"fetcher": object()}, TypeError, "Fetcher"),
    ],
)
def test_bad_options_fail_at_the_call(
    site: Site, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        OCSPStapler(site.leaf, site.issuer, **options)


def test_bad_certificates_fail_at_the_call(
    site: Site, root: Authority, intermediate: Authority
) -> None:
    with pytest.raises(TypeError, match="leaf must be"):
        OCSPStapler(site.chain.leaf.der, site.issuer)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="issuer must be"):
        OCSPStapler(site.leaf, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="did not issue"):
        OCSPStapler(site.leaf, root.cert)
    bare = make_chain(root=root, intermediate=intermediate).leaf.cert
    with pytest.raises(ValueError, match="CN=localhost names no OCSP responder"):
        OCSPStapler(bare, intermediate.cert)
    https = make_chain(
        ocsp_url="https://user:secret@ocsp.invalid/?key=secret",
        root=root,
        intermediate=intermediate,
    )
    with pytest.raises(ValueError, match="not an http:// URL") as refused:
        OCSPStapler(https.leaf.cert, intermediate.cert)
    assert "secret" not in str(refused.value)


# -- the plan (pure: made-up times) -----------------------------------------------------

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("lead", "now", "stalled", "draw", "jitter", "expected", "expected_stalled"),
    [
        (0.5, T0 + HOUR, 3, 0.0, 0.1, T0 + 12 * HOUR, 0),  # halfway through the day
        (0.5, T0 + HOUR, 0, 0.5, 0.1, T0 + HOUR + 11 * HOUR * 0.95, 0),  # jitter: earlier
        (2 * HOUR, T0, 0, 0.0, 0.0, T0 + 22 * HOUR, 0),  # a fixed lead
        (0.5, T0 + 13 * HOUR, 0, 0.0, 0.0, T0 + 13 * HOUR + datetime.timedelta(seconds=2), 1),
        (0.5, T0 + 13 * HOUR, 2, 0.0, 0.0, T0 + 13 * HOUR + datetime.timedelta(seconds=8), 3),
        (0.5, T0 + 13 * HOUR, 9, 0.0, 0.0, T0 + 13 * HOUR + datetime.timedelta(seconds=60), 10),
    ],
)
def test_plan_after_a_response(
    lead: float | datetime.timedelta,
    now: datetime.datetime,
    stalled: int,
    draw: float,
    jitter: float,
    expected: datetime.datetime,
    expected_stalled: int,
) -> None:
    plan = RefreshPlan.of(lead, (2.0, 60.0), jitter)
    assert plan.after_response(now, T0, T0 + DAY, stalled, draw) == (expected, expected_stalled)


@pytest.mark.parametrize(
    ("stalled", "draw", "jitter", "wait"),
    [
        (0, 0.0, 0.0, 2.0),
        (1, 0.0, 0.0, 4.0),
        (4, 0.0, 0.0, 32.0),
        (5, 0.0, 0.0, 60.0),
        (500, 0.0, 0.0, 60.0),
        (0, 0.99, 0.5, 2.0 * (1 - 0.5 * 0.99)),
    ],
)
def test_plan_after_a_failure(stalled: int, draw: float, jitter: float, wait: float) -> None:
    plan = RefreshPlan.of(0.5, (2.0, 60.0), jitter)
    when, count = plan.after_failure(T0, stalled, draw)
    assert (when - T0, count) == (datetime.timedelta(seconds=wait), stalled + 1)


# -- end to end: a real server, a real client -------------------------------------------


@native
@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_the_staple_reaches_the_client(site: Site, serve: ServeFactory, version: str) -> None:
    stapler = site.stapler().start()
    site.records.wait_for(1)
    client, recorder = site.client()
    client.add_verifier(OCSPVerifier(timeout=GUARD))
    with connect(client, serve(site.server(stapler, version)).address) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING
    (span,) = recorder
    assert (span.facts.ocsp_requested, span.facts.ocsp_stapled) == (True, True)
    assert span.facts.ocsp_response == stapler(None)
    assert span.facts.protocol_version == version
    (check,) = span.verifications
    assert check.outcome == "accepted"
    assert dict(check.details)["source"] == "staple"
    assert len(site.responder.requests) == 1  # the stapler's fetch only: the client never asked


@native
def test_the_client_gets_no_staple_once_it_expired(site: Site, serve: ServeFactory) -> None:
    stapler = site.stapler()
    record = stapler.refresh_now()
    server = site.server(stapler)
    assert _handshake(site, serve, server).facts.ocsp_stapled
    assert record.next_update is not None
    site.clock.offset = record.next_update - now()
    span = _handshake(site, serve, server)
    assert (span.outcome, span.facts.ocsp_requested, span.facts.ocsp_stapled) == ("ok", True, False)


@native
def test_an_invalid_response_never_reaches_the_client(site: Site, serve: ServeFactory) -> None:
    site.responder.mode = "wrong_key"
    stapler = site.stapler()
    assert stapler.refresh_now().outcome == "failed"
    span = _handshake(site, serve, site.server(stapler))
    assert (span.outcome, span.facts.ocsp_stapled) == ("ok", False)


@native
def test_a_failing_responder_keeps_the_client_stapled(site: Site, serve: ServeFactory) -> None:
    stapler = site.stapler()
    stapler.refresh_now()
    good = stapler(None)
    site.responder.close()
    assert stapler.refresh_now().failure == "network"
    span = _handshake(site, serve, site.server(stapler))
    assert span.facts.ocsp_stapled and span.facts.ocsp_response == good


@native
def test_uvicorn_as_docs_stapling_shows(site: Site, tmp_path: Path) -> None:
    import uvicorn

    from tlstiming.servers import uvicorn_config

    certfile, keyfile = tmp_path / "chain.pem", tmp_path / "key.pem"
    certfile.write_bytes(site.chain.leaf.pem + site.chain.intermediate.pem)
    keyfile.write_bytes(site.chain.leaf.key_pem())
    config = uvicorn_config(
        asgi_app,
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
        log_level="warning",
        lifespan="off",
    )
    config.load()
    with OCSPStapler.from_certfile(certfile) as stapler:
        stapler.refresh_now()
        assert isinstance(config.ssl, TimedSSLContext)  # the context uvicorn will serve with
        config.ssl.set_ocsp_staple(stapler)
        server = uvicorn.Server(config)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
            thread.start()
            try:
                client, recorder = site.client()
                client.set_alpn_protocols(["http/1.1"])
                with connect(client, listener.getsockname()) as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    assert read_exactly(tls, 4096).endswith(BODY)
            finally:
                server.should_exit = True
                thread.join(GUARD)
    (span,) = recorder
    assert span.facts.ocsp_stapled and span.facts.ocsp_response is not None


# -- one call for an ASGI server ---------------------------------------------------------------


def _pem_pair(site: Site, directory: Path, *, chain: bool = True) -> tuple[str, str]:
    certfile, keyfile = directory / "chain.pem", directory / "key.pem"
    certfile.write_bytes(site.chain.leaf.pem + (site.chain.intermediate.pem if chain else b""))
    keyfile.write_bytes(site.chain.leaf.key_pem())
    return str(certfile), str(keyfile)


@native
def test_hypercorn_config_staples_in_the_process_that_serves(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_servers import _free_port, _hypercorn, _wait_listening

    from tlstiming.servers import hypercorn_config

    real_start = OCSPStapler.start

    def start(stapler: OCSPStapler) -> OCSPStapler:
        site.staplers.append(stapler)  # closed at teardown (in a server, it lives with it)
        return real_start(stapler)

    monkeypatch.setattr(OCSPStapler, "start", start)
    certfile, keyfile = _pem_pair(site, tmp_path)
    port = _free_port()
    config = hypercorn_config(
        certfile=certfile, keyfile=keyfile, bind=[f"127.0.0.1:{port}"], ocsp_stapling=True
    )
    client, recorder = site.client()
    client.set_alpn_protocols(["http/1.1"])
    with _hypercorn(config):
        _wait_listening(port)
        stapled = None
        deadline = time.monotonic() + GUARD
        while stapled is None and time.monotonic() < deadline:
            # the stapler fetches in the background: handshake until its first staple
            with connect(client, ("127.0.0.1", port)) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                read_exactly(tls, 1)
            span = recorder.spans[-1]
            if span.facts.ocsp_stapled:
                stapled = span
            else:
                time.sleep(0.02)
    assert stapled is not None, "no staple within the guard"
    assert len(site.staplers) == 1  # one per context hypercorn built
    assert ("POST", "/ocsp") in site.responder.requests
    assert stapled.facts.ocsp_response is not None


def test_server_configs_refuse_what_cannot_be_stapled(site: Site, tmp_path: Path) -> None:
    from tlstiming.servers import hypercorn_config, uvicorn_config

    certfile, keyfile = _pem_pair(site, tmp_path, chain=False)  # the leaf alone: no issuer
    with pytest.raises(TypeError, match="ocsp_stapling must be a bool"):
        hypercorn_config(certfile=certfile, keyfile=keyfile, ocsp_stapling="yes")  # type: ignore[arg-type]
    if tlstiming.implementation().name != "native":
        with pytest.raises(NotImplementedError, match="native hooks"):
            uvicorn_config(asgi_app, ssl_certfile=certfile, ssl_keyfile=keyfile, ocsp_stapling=True)
        return
    for call in (
        lambda: hypercorn_config(certfile=certfile, keyfile=keyfile, ocsp_stapling=True),
        lambda: uvicorn_config(
            asgi_app, ssl_certfile=certfile, ssl_keyfile=keyfile, ocsp_stapling=True
        ),
    ):
        with pytest.raises(ValueError, match="issuer"):
            call()
