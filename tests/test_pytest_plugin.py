"""The pytest plugin and the assertion API of ``tlstiming.testing``.

Budgets are tested with synthetic spans of exact, made-up timings
(``synthetic_spans``); real loopback handshakes only for facts and structure.
The plugin runs inside ``pytester`` sessions, in-process except for xdist.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Final

import pytest
from synthetic_spans import MS, FakeRequestSpan, handshake

import tlstiming
from tlstiming._recording import delivery as _delivery
from tlstiming.testing import (
    Budget,
    BudgetError,
    LocalTLSServer,
    SpanCapture,
    SpanList,
    assert_budget,
    percentile,
)

pytest_plugins = ("pytester",)

HERE = Path(__file__).resolve().parent


def _entry_point_registered() -> bool:
    return any(
        ep.value == "tlstiming.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


REGISTERED = _entry_point_registered()
# Until the pytest11 entry point exists, load the plugin by hand (twice would be an error).
PLUGIN = () if REGISTERED else ("-p", "tlstiming.pytest_plugin")


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory with the synthetic-span helpers importable."""
    pytester.makepyfile(synthetic_spans=(HERE / "synthetic_spans.py").read_text())
    pytester.syspathinsert()
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, "-W", "error", "-p", "no:cacheprovider", *args)


def mentions(result: pytest.RunResult) -> list[str]:
    """Output lines naming tlstiming, but for the header's list of installed plugins."""
    lines = result.outlines + result.errlines
    return [line for line in lines if "tlstiming" in line and not line.startswith("plugins:")]


# -- the assertion API, no pytest plugin involved ----------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10
    assert percentile(values, 95) == 19
    assert percentile(values, 100) == 20
    assert percentile([7.0], 99) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        percentile([1.0], 0)


def test_assert_budget_passes_within_limits() -> None:
    span = handshake(certificate_ms=3)  # 8 ms in all
    assert_budget(span, total_ms=8, phases={"certificate": 3}, p95_ms=8)
    assert_budget(span, Budget(total_ms=100, outcome="ok"))


def test_failure_names_span_phase_budget_measured_and_waterfall() -> None:
    span = handshake(certificate_ms=3)
    with pytest.raises(BudgetError) as info:
        assert_budget(span, total_ms=5, phases={"certificate": 2.5, "finished": 10})
    message = str(info.value)
    assert message.startswith(
        "Budget(total_ms=5, phases={'certificate': 2.5, 'finished': 10}) not met by 1 of 1 span(s)"
    )
    assert f"span 1/1 {span!r}:" in message
    assert "total: 8.000 ms > budget 5.000 ms" in message
    assert "phase certificate: 3.000 ms > budget 2.500 ms" in message
    assert "finished:" not in message
    assert re.search(r"certificate +3\.000 +3\.000 +\|", message), message  # the waterfall


def test_phase_patterns_sum_matching_phases() -> None:
    span = handshake(server_hello_ms=4, hello_retry=True)
    assert_budget(span, phases={"server_hello": 4, "hello_*": 1})
    with pytest.raises(BudgetError, match=r"phase \*hello\*: 6\.000 ms > budget 5\.000 ms"):
        assert_budget(span, phases={"*hello*": 5})  # client_hello + server_hello + hello_retry


def test_percentiles_across_spans_name_the_span_at_that_rank() -> None:
    spans = SpanList([handshake() for _ in range(19)] + [handshake(server_hello_ms=45)])
    spans.assert_all(p95_ms=6, p50_ms=6)  # 20 spans: p95 is the 19th, 6 ms
    with pytest.raises(BudgetError) as info:
        spans[10:].assert_all(p95_ms=6)  # 10 spans: p95 is the slowest, 50 ms
    message = str(info.value)
    assert "p95 over 10 spans: 50.000 ms > budget 6.000 ms" in message
    assert "not met by 1 of 10 span(s)" in message
    assert "span 10/10" in message
    assert spans.percentile_ms(50) == 6.0
    assert spans.percentile_ms(100, phase="server_hello") == 45.0


def test_round_trips_and_outcome_budgets() -> None:
    retry = handshake(hello_retry=True)
    assert_budget(handshake(), max_round_trips=1)
    with pytest.raises(BudgetError, match="round trips: 2 > budget 1"):
        assert_budget(retry, max_round_trips=1)
    failed = handshake(error=ssl.SSLError(1, "boom"))
    assert_budget(failed, outcome="error")
    with pytest.raises(BudgetError, match=r"outcome: error \(ssl\.SSLError in phase finished\)"):
        assert_budget(failed, outcome="ok")


def test_no_ocsp_stall_passes_without_ocsp_phases() -> None:
    """No verifier adds ``ocsp*`` phases yet: nothing to stall on."""
    assert_budget(handshake(certificate_ms=500), no_ocsp_stall=True)


@pytest.mark.skipif(
    not hasattr(tlstiming.TimedSSLContext, "add_verifier"), reason="verifiers not available yet"
)
def test_no_ocsp_stall_fails_on_a_slow_ocsp_verifier() -> None:
    """A verifier named ``ocsp...`` is a ``verify:ocsp...`` phase; 5 ms of waiting is a stall."""
    release = threading.Event()

    def ocsp_lookup(peer: object) -> None:
        release.wait(0.005)  # nobody sets it: a lower bound of 5 ms, never a flake

    with LocalTLSServer() as server, SpanCapture() as capture:
        context = server.client_context()
        context.add_verifier(ocsp_lookup, name="ocsp")
        with socket.create_connection(server.address) as raw:
            with context.wrap_socket(raw, server_hostname="localhost"):
                pass
    with pytest.raises(BudgetError, match=r"ocsp stall: [0-9.]+ ms in OCSP phases > budget 1\.000"):
        capture.handshakes.assert_all(no_ocsp_stall=True)
    capture.handshakes.assert_all(phases={"verify:ocsp": 1000})


def test_budget_validation() -> None:
    with pytest.raises(ValueError, match="negative"):
        Budget(total_ms=-1)
    with pytest.raises(ValueError, match="min_tls"):
        Budget(min_tls="1.4")
    with pytest.raises(TypeError):
        Budget(total=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not both"):
        assert_budget(handshake(), Budget(total_ms=1), total_ms=2)
    with pytest.raises(BudgetError, match="no spans to check"):
        SpanList().assert_all(total_ms=1)
    budget = Budget(phases={"certificate": 1})
    with pytest.raises(TypeError):
        budget.phases["certificate"] = 2  # type: ignore[index]


def test_fact_budgets_need_handshake_spans() -> None:
    spans = SpanList([handshake(), FakeRequestSpan(duration_ns=20 * MS)])
    spans.assert_all(total_ms=20)
    with pytest.raises(TypeError, match=r"spans\.handshakes"):
        spans.assert_all(alpn="h2")
    spans.handshakes.assert_all(max_round_trips=1)


def test_filters_select_by_kind_host_outcome_phase_side() -> None:
    ok, retry = handshake(host="a.test"), handshake(host="b.test", hello_retry=True)
    failed = handshake(host="a.test", error=TimeoutError("slow"))
    request = FakeRequestSpan(duration_ns=MS, server_address="a.test")
    spans = SpanList([ok, retry, failed, request])
    assert list(spans.handshakes) == [ok, retry, failed]
    assert list(spans.requests) == [request]
    assert list(spans.filter(host="a.test")) == [ok, failed, request]
    assert list(spans.filter(outcome="error")) == [failed]
    assert list(spans.filter(phase="hello_retry")) == [retry]
    assert list(spans.filter(side="client")) == [ok, retry, failed]
    assert list(spans.filter(kind="tls.handshake", where=lambda s: s.duration_ns > 6 * MS)) == [
        retry
    ]
    assert spans.filter(host="nowhere.test") == SpanList()
    assert spans.durations_ms() == [6.0, 7.0, 6.0, 1.0]


def test_capture_receives_from_every_context_and_unsubscribes() -> None:
    with LocalTLSServer() as server, SpanCapture() as capture:
        assert capture in _delivery.global_sinks
        context = tlstiming.create_default_context(cafile=server.ca_file)
        with socket.create_connection(server.address) as raw:
            with context.wrap_socket(raw, server_hostname="localhost"):
                pass
    assert capture not in _delivery.global_sinks
    (span,) = capture.handshakes
    assert span.server_hostname == "localhost"
    assert capture[0] is span
    assert "1 spans, stopped" in repr(capture)
    capture.clear()
    assert not capture


# -- the plugin ------------------------------------------------------------------------


def test_inert_when_unused(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import socket
        from tlstiming._recording import delivery as _delivery
        from tlstiming.testing import LocalTLSServer

        def test_handshake_without_plugin_features():
            with LocalTLSServer() as server:
                context = server.client_context()
                with socket.create_connection(server.address) as raw:
                    with context.wrap_socket(raw, server_hostname="localhost"):
                        assert _delivery.global_sinks == ()
        """
    )
    result = run(inner)
    result.assert_outcomes(passed=1)
    assert mentions(result) == []
    assert _delivery.global_sinks == ()


def test_options_and_marker_are_registered(inner: pytest.Pytester) -> None:
    run(inner, "--help").stdout.fnmatch_lines(["*--tls-timing-report*", "*--tls-timing-json=PATH*"])
    run(inner, "--markers").stdout.fnmatch_lines(["@pytest.mark.handshake_budget(total_ms=*"])


def test_tls_spans_fixture_collects_every_kind(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import socket, ssl
        import pytest
        from synthetic_spans import FakeRequestSpan, deliver
        from tlstiming._recording import delivery as _delivery

        def connect(server, hostname="localhost"):
            context = server.client_context()
            with socket.create_connection(server.address) as raw:
                with context.wrap_socket(raw, server_hostname=hostname):
                    pass

        def test_collects(tls_spans, tls_server):
            assert _delivery.global_sinks == (tls_spans,)
            connect(tls_server())
            connect(tls_server(tls_max="1.2"))
            wrong = tls_server(certificate="wrong_host")
            with pytest.raises(ssl.SSLCertVerificationError):
                connect(wrong)
            deliver(FakeRequestSpan(duration_ns=5))
            assert len(tls_spans) == 4
            assert len(tls_spans.handshakes) == 3
            assert len(tls_spans.requests) == 1
            assert len(tls_spans.filter(host="localhost", outcome="ok")) == 2
            (tls12,) = tls_spans.filter(phase="second_round_trip")
            assert tls12.facts.protocol_version == "1.2"
            (failed,) = tls_spans.filter(outcome="error")
            timed = failed.facts.chain_verification is not None
            assert failed.error.phase == ("chain_verification" if timed else "certificate")
            tls_spans.handshakes.filter(outcome="ok").assert_all(min_tls="1.2", max_round_trips=2)

        def test_a_fresh_capture_each_test(tls_spans):
            assert len(tls_spans) == 0
        """
    )
    run(inner).assert_outcomes(passed=2)
    assert _delivery.global_sinks == ()


MARKED = """
import pytest
from synthetic_spans import deliver, handshake

@pytest.mark.handshake_budget(total_ms=10, phases={"certificate": 5})
def test_within():
    deliver(handshake(certificate_ms=4))

@pytest.mark.handshake_budget(total_ms=10, phases={"certificate": 2})
def test_phase_over():
    deliver(handshake(certificate_ms=3))

@pytest.mark.handshake_budget(p95_ms=10)
def test_p95_over():
    for _ in range(9):
        deliver(handshake())
    deliver(handshake(server_hello_ms=20))

@pytest.mark.handshake_budget(p95_ms=10)
def test_p95_within():
    for _ in range(19):
        deliver(handshake())
    deliver(handshake(server_hello_ms=20))

@pytest.mark.handshake_budget(total_ms=10, host="fast.test")
def test_host_selects():
    deliver(handshake(host="fast.test"))
    deliver(handshake(host="slow.test", certificate_ms=50))

@pytest.mark.handshake_budget(total_ms=10)
def test_no_spans():
    pass

@pytest.mark.handshake_budget(total_ms=10)
def test_own_failure_wins():
    deliver(handshake(certificate_ms=50))
    assert False, "the test's own assertion"

@pytest.mark.handshake_budget(max_round_trips=1)
class TestClassLevel:
    @pytest.mark.handshake_budget(total_ms=100)
    def test_both_markers_apply(self):
        deliver(handshake(hello_retry=True))
"""


def test_marker_checks_budgets_after_the_test(inner: pytest.Pytester) -> None:
    inner.makepyfile(MARKED)
    result = run(inner, "-rf")
    result.assert_outcomes(passed=3, failed=5)
    out = result.stdout.str()
    assert "phase certificate: 3.000 ms > budget 2.000 ms" in out
    assert "p95 over 10 spans: 25.000 ms > budget 10.000 ms" in out
    assert "no TLS handshake spans matching {'side': 'client'} were produced" in out
    assert "the test's own assertion" in out
    assert "round trips: 2 > budget 1" in out
    assert "slow.test" not in out
    assert "During handling" not in out
    # Once in the failure report (the summary line repeats it in full when CI is set).
    report = out.split("short test summary info", 1)[0]
    assert report.count("Budget(total_ms=10, phases={'certificate': 2}) not met by 1 of 1") == 1
    result.stdout.fnmatch_lines(
        [
            "FAILED *test_phase_over*",
            "FAILED *test_p95_over*",
            "FAILED *test_no_spans*",
            "FAILED *test_own_failure_wins*",
            "FAILED *test_both_markers_apply*",
        ]
    )
    assert _delivery.global_sinks == ()


def test_marker_checks_facts_of_real_handshakes(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import socket
        import pytest

        def connect(server, alpn=None):
            context = server.client_context(alpn=alpn)
            with socket.create_connection(server.address) as raw:
                with context.wrap_socket(raw, server_hostname="localhost"):
                    pass

        @pytest.mark.handshake_budget(alpn="h2", min_tls="1.3", max_round_trips=1)
        def test_h2_tls13(tls_server):
            connect(tls_server(alpn=["h2", "http/1.1"]), alpn=["h2", "http/1.1"])

        @pytest.mark.handshake_budget(alpn="h2", min_tls="1.3")
        def test_http11_over_tls12(tls_server):
            connect(tls_server(alpn=["http/1.1"], tls_max="1.2"), alpn=["h2", "http/1.1"])
        """
    )
    result = run(inner)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*alpn: 'http/1.1' selected (offered h2,http/1.1), expected 'h2'",
            "*tls: 1.2 < minimum 1.3",
            "*TLS 1.2 localhost:* ms [client_hello *",
        ]
    )


def test_marker_misuse_is_reported(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.handshake_budget(totl_ms=10)
        def test_typo():
            pass

        @pytest.mark.handshake_budget(10)
        def test_positional():
            pass
        """
    )
    result = run(inner)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*unexpected keyword argument 'totl_ms'*", "*keyword arguments*"])


REPORTED = """
from synthetic_spans import MS, FakeRequestSpan, deliver, handshake

def test_one():
    for ms in (1, 2, 3, 4):
        deliver(handshake(host="a.test", server_hello_ms=ms))

def test_two():
    deliver(handshake(host="b.test", error=TimeoutError("slow")))
    deliver(handshake(host="a.test", port=8443))
    deliver(FakeRequestSpan(duration_ns=12 * MS, server_address="a.test"))
"""


def _phases(*server_hello_ms: float) -> dict[str, dict[str, Any]]:
    """The synthetic handshake's phases: 1 ms each, server_hello as given."""
    ms = sorted(server_hello_ms)
    one = {"count": len(ms), "p50_ms": 1.0, "p95_ms": 1.0, "max_ms": 1.0}
    hello = {"count": len(ms), "p50_ms": ms[(len(ms) - 1) // 2], "p95_ms": ms[-1], "max_ms": ms[-1]}
    names = ("client_hello", "server_flight", "certificate", "certificate_verify", "finished")
    return {"server_hello": hello, **dict.fromkeys(names, one)}


_CLIENT: Final = {"kind": "tls.handshake", "side": "client", "url": None}
EXPECTED_GROUPS: list[dict[str, Any]] = [
    {
        "kind": "http.request",
        "side": None,
        "host": "a.test",
        "port": None,
        "url": None,
        "count": 1,
        "errors": 0,
        "p50_ms": 12.0,
        "p95_ms": 12.0,
        "max_ms": 12.0,
        "phases": {},
    },
    {
        **_CLIENT,
        "host": "a.test",
        "port": 443,
        "count": 4,
        "errors": 0,
        "p50_ms": 7.0,
        "p95_ms": 9.0,
        "max_ms": 9.0,
        "phases": _phases(1, 2, 3, 4),
    },
    {
        **_CLIENT,
        "host": "a.test",
        "port": 8443,
        "count": 1,
        "errors": 0,
        "p50_ms": 6.0,
        "p95_ms": 6.0,
        "max_ms": 6.0,
        "phases": _phases(1),
    },
    {
        **_CLIENT,
        "host": "b.test",
        "port": 443,
        "count": 1,
        "errors": 1,
        "p50_ms": 6.0,
        "p95_ms": 6.0,
        "max_ms": 6.0,
        "phases": _phases(1),
    },
]


def test_terminal_report_and_json(inner: pytest.Pytester, tmp_path: Path) -> None:
    inner.makepyfile(REPORTED)
    path = tmp_path / "report.json"
    result = run(inner, "--tls-timing-report", f"--tls-timing-json={path}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= tlstiming: TLS timings =*",
            "kind*side*endpoint*count*errors*p50 ms*p95 ms*max ms",
            "http.request*-*a.test*1*0*12.000*12.000*12.000",
            "tls.handshake*client*a.test:443*4*0*7.000*9.000*9.000",
            "*client_hello*4*1.000*1.000*1.000",
            "*server_hello*4*2.000*4.000*4.000",
            "tls.handshake*client*a.test:8443*1*0*6.000*6.000*6.000",
            "tls.handshake*client*b.test:443*1*1*6.000*6.000*6.000",
        ]
    )
    assert json.loads(path.read_text()) == {
        "tlstiming_report": 2,
        "workers": 0,
        "groups": EXPECTED_GROUPS,
    }
    assert _delivery.global_sinks == ()


def test_json_alone_prints_nothing(inner: pytest.Pytester, tmp_path: Path) -> None:
    inner.makepyfile("def test_nothing():\n    pass\n")
    path = tmp_path / "report.json"
    result = run(inner, f"--tls-timing-json={path}")
    assert mentions(result) == []
    assert json.loads(path.read_text())["groups"] == []
    run(inner, "--tls-timing-report").stdout.fnmatch_lines(["no spans were recorded"])


@pytest.mark.skipif(
    importlib.util.find_spec("xdist") is None, reason="needs pytest-xdist (test extra)"
)
def test_xdist_workers_report_to_the_controller(inner: pytest.Pytester, tmp_path: Path) -> None:
    """Each worker hands its durations to the controller, which reports once for all."""
    inner.makepyfile(test_reported=REPORTED, test_marked=MARKED)
    path = tmp_path / "report.json"
    result = inner.runpytest_subprocess(
        *PLUGIN,
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "--tls-timing-report",
        f"--tls-timing-json={path}",
    )
    result.assert_outcomes(passed=5, failed=5)
    assert "phase certificate: 3.000 ms > budget 2.000 ms" in result.stdout.str()
    result.stdout.fnmatch_lines(["tls.handshake*client*b.test:443*1*1*6.000*6.000*6.000"])
    report = json.loads(path.read_text())
    assert report["workers"] == 2
    by_host = {(g["kind"], g["host"], g["port"]): g for g in report["groups"]}
    for group in EXPECTED_GROUPS:
        if group["host"] != "a.test" or group["kind"] != "tls.handshake":
            assert by_host[(group["kind"], group["host"], group["port"])] == group
    # the marked tests' spans, failing tests' included: 1 + 1 + 10 + 20 + 1 + 1
    assert by_host[("tls.handshake", "api.test", 443)]["count"] == 34
    assert by_host[("tls.handshake", "a.test", 443)]["count"] == 4
    assert by_host[("tls.handshake", "a.test", 8443)]["count"] == 1
    assert result.stdout.str().count("tlstiming: TLS timings") == 1


def recipe(name: str) -> str:
    """The code of ``<!-- recipe: name -->`` in docs/pytest.md."""
    text = (HERE.parent / "docs" / "pytest.md").read_text()
    match = re.search(rf"^<!-- recipe: {name} -->\n```\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert match, name
    return match.group(1)


@pytest.mark.parametrize(("budget", "outcome"), [("0", "failed"), ("600_000", "passed")])
def test_recipe_staging_p95(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, budget: str, outcome: str
) -> None:
    """Deterministic both ways: nothing takes 0 ms, everything takes less than 10 minutes."""
    code = recipe("staging-p95")
    assert "p95_ms=150" in code
    inner.makepyfile(test_staging=code.replace("p95_ms=150", f"p95_ms={budget}"))
    with LocalTLSServer() as server:
        monkeypatch.setenv("STAGING_HOST", server.hostname)
        monkeypatch.setenv("STAGING_PORT", str(server.port))
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)
        result = run(inner)
        assert server.accepted == 20  # handshakes may still be finishing server-side
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*p95 over 20 spans: * ms > budget 0.000 ms"])


@pytest.mark.parametrize("name", ["h2", "reuse-handshakes", "reuse-requests"])
def test_recipes_run(inner: pytest.Pytester, name: str) -> None:
    if name == "reuse-requests" and importlib.util.find_spec("tlstiming.httpx") is None:
        pytest.skip("needs tlstiming.httpx (request spans)")
    inner.makepyfile(test_recipe=recipe(name))
    run(inner).assert_outcomes(passed=1)


def test_recipe_h2_fails_for_a_client_without_h2(inner: pytest.Pytester) -> None:
    code = recipe("h2").replace('["h2", "http/1.1"]', '["http/1.1"]')
    inner.makepyfile(test_recipe=code)
    result = run(inner)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SSLError*no application protocol*"])


@pytest.mark.skipif(not REGISTERED, reason="the pytest11 entry point is not registered yet")
def test_entry_point_loads_the_plugin(pytester: pytest.Pytester) -> None:
    (ep,) = [
        ep
        for ep in importlib.metadata.entry_points(group="pytest11")
        if ep.value == "tlstiming.pytest_plugin"
    ]
    assert ep.name == "tlstiming"
    pytester.makepyfile("def test_fixture(tls_spans):\n    assert len(tls_spans) == 0\n")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:tlstiming").assert_outcomes(errors=1)


def test_docs_list_the_public_testing_api() -> None:
    import tlstiming.testing

    text = (HERE.parent / "docs" / "pytest.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z_]+)` \|", text, re.MULTILINE))
    assert set(tlstiming.testing.__all__) <= documented


# -- findings ------------------------------------------------------------------------


FINDINGS = """
import socket
import pytest

def connect(server, alpn=None):
    context = server.client_context(alpn=alpn)
    with socket.create_connection(server.address) as raw:
        with context.wrap_socket(raw, server_hostname="localhost"):
            pass

@pytest.mark.tls_findings()
def test_healthy(tls_server):
    connect(tls_server())

@pytest.mark.tls_findings()
def test_hello_retry(tls_server):
    connect(tls_server(hello_retry=True))

@pytest.mark.tls_findings(severity=None, ids=["tls.alpn_h2_not_selected"])
def test_forbidden_info(tls_server):
    connect(tls_server(alpn=["http/1.1"]), alpn=["http/1.1", "h2"])

@pytest.mark.tls_findings(severity="error")
def test_warnings_allowed(tls_server):
    connect(tls_server(tls_max="1.2"))

@pytest.mark.handshake_budget(max_round_trips=1)
def test_budget_names_the_cause(tls_server):
    connect(tls_server(hello_retry=True))
"""


def test_findings_marker_and_budget_messages(inner: pytest.Pytester) -> None:
    inner.makepyfile(FINDINGS)
    result = run(inner)
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_hello_retry*",
            "*1 finding(s) over 1 span(s):",
            "*[[]warning] tls.hello_retry: HelloRetryRequest: the server wanted a key share*",
            "*evidence: key_share_groups_offered=*",
            "*docs/diagnosis.md#tlshello_retry*",
        ]
    )
    result.stdout.fnmatch_lines(["*[[]info] tls.alpn_h2_not_selected*"])
    result.stdout.fnmatch_lines(
        ["*round trips: 2 > budget 1*", "*findings (docs/diagnosis.md):*", "*tls.hello_retry*"]
    )


def test_assert_no_findings_refuses_bad_arguments() -> None:
    spans = SpanList([])
    spans.assert_no_findings()  # nothing to find in no spans
    with pytest.raises(ValueError, match="severity"):
        spans.assert_no_findings("fatal")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="one string"):
        spans.assert_no_findings(ids="tls.hello_retry")
    with pytest.raises(ValueError, match="unknown finding ids"):
        spans.assert_no_findings(ids=["tls.hello_rety"])
