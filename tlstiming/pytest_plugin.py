"""pytest plugin: span fixtures, the ``handshake_budget`` marker and a timing report.

Inert unless used: nothing is subscribed, printed or written unless a test
asks for a fixture, carries the marker, or the session is given
``--tls-timing-report`` / ``--tls-timing-json``. See ``docs/pytest.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:  # imported when first used: loading the plugin stays cheap
    from tlstiming.testing import Budget, LocalPKI, LocalTLSServer, SpanCapture, SpanList

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_call",
    "tls_server",
    "tls_spans",
]

MARKER: Final = "handshake_budget"
FINDINGS_MARKER: Final = "tls_findings"
_FINDINGS_HELP: Final = (
    f"{FINDINGS_MARKER}(severity='warning', ids=(), host=None, side=None): fail the test if "
    "the TLS spans it produced have a finding at or above severity, or one of ids (tlstiming)"
)
_SELECT: Final[tuple[str, ...]] = ("host", "side")
_REPORT_KEY: Final = "tlstiming_report"
_MARKER_HELP: Final = (
    f"{MARKER}(total_ms=None, phases=None, p50_ms=None, p95_ms=None, p99_ms=None, "
    "max_round_trips=None, alpn=None, resumed=None, min_tls=None, no_ocsp_stall=False, "
    "outcome=None, host=None, side='client'): fail the test unless every TLS handshake "
    "span it produced is within budget (tlstiming)"
)

ServerFactory = Callable[..., "LocalTLSServer"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tlstiming", "TLS handshake timings (tlstiming)")
    group.addoption(
        "--tls-timing-report",
        action="store_true",
        help="print count/p50/p95/max of the session's TLS spans per host and port "
        "(requests: per URL), with each phase's",
    )
    group.addoption(
        "--tls-timing-json",
        metavar="PATH",
        help="write the same summary as JSON to PATH (for CI artifacts)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    config.addinivalue_line("markers", _FINDINGS_HELP)
    if config.getoption("--tls-timing-report") or config.getoption("--tls-timing-json"):
        config.pluginmanager.register(_Report(config), "tlstiming-report")


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def tls_spans() -> Iterator[SpanCapture]:
    """Every span (handshakes, requests...) delivered while the test runs."""
    from tlstiming.testing import SpanCapture  # noqa: PLC0415

    with SpanCapture() as capture:
        yield capture


@pytest.fixture(scope="session")
def tls_pki() -> Iterator[LocalPKI]:
    """One throwaway PKI per session (per xdist worker) for :func:`tls_server`."""
    from tlstiming.testing import LocalPKI  # noqa: PLC0415

    with LocalPKI.temporary() as pki:
        yield pki


@pytest.fixture
def tls_server(tls_pki: LocalPKI) -> Iterator[ServerFactory]:
    """Start :class:`~tlstiming.testing.LocalTLSServer` s; each is closed at teardown."""
    from tlstiming.testing import LocalTLSServer  # noqa: PLC0415

    servers: list[LocalTLSServer] = []

    def start(**knobs: Any) -> LocalTLSServer:
        knobs.setdefault("pki", tls_pki)
        server = LocalTLSServer(**knobs).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(servers):
            server.close()


# -- the marker ----------------------------------------------------------------------


def _budgets(item: pytest.Item) -> list[tuple[Budget, dict[str, Any]]]:
    from tlstiming.testing import Budget  # noqa: PLC0415

    out = []
    for mark in item.iter_markers(MARKER):
        if mark.args:
            raise TypeError(f"@pytest.mark.{MARKER} takes keyword arguments only")
        limits = dict(mark.kwargs)
        select: dict[str, Any] = {k: limits.pop(k) for k in _SELECT if k in limits}
        select.setdefault("side", "client")
        out.append((Budget(**limits), select))
    return out


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Capture the spans of a marked test's call phase; check its budgets and findings after it."""
    budgets = _budgets(item) if item.get_closest_marker(MARKER) else []
    forbidden = list(item.iter_markers(FINDINGS_MARKER))
    if not budgets and not forbidden:
        return (yield)
    from tlstiming.testing import SpanCapture  # noqa: PLC0415

    with SpanCapture() as capture:
        result = yield
    for mark in forbidden:
        message = _findings_failure(capture, mark)
        if message:
            pytest.fail(message, pytrace=False)
    for budget, select in budgets:
        spans = capture.handshakes.filter(**select)
        if not spans:
            pytest.fail(
                f"{budget}: no TLS handshake spans matching {select} were produced; "
                "connections must use a tlstiming.TimedSSLContext",
                pytrace=False,
            )
        message = _failure(spans, budget)
        if message:
            pytest.fail(message, pytrace=False)
    return result


def _findings_failure(capture: SpanCapture, mark: pytest.Mark) -> str | None:
    from tlstiming.testing import FindingsError  # noqa: PLC0415

    if mark.args:
        raise TypeError(f"@pytest.mark.{FINDINGS_MARKER} takes keyword arguments only")
    options = dict(mark.kwargs)
    severity = options.pop("severity", "warning")
    ids = options.pop("ids", ())
    select = {k: options.pop(k) for k in ("host", "side") if options.get(k) is not None}
    if options:
        raise TypeError(f"@pytest.mark.{FINDINGS_MARKER}: unknown arguments {sorted(options)}")
    try:
        capture.filter(**select).assert_no_findings(severity, ids=ids)
    except FindingsError as exc:
        return str(exc)
    return None


def _failure(spans: SpanList, budget: Budget) -> str | None:
    from tlstiming.testing import BudgetError  # noqa: PLC0415

    try:
        spans.assert_all(budget)
    except BudgetError as exc:
        return str(exc)
    return None


# -- the report ----------------------------------------------------------------------


class _Report:
    """Collects every span's durations for the session; prints and/or writes a summary."""

    def __init__(self, config: pytest.Config) -> None:
        from tlstiming._recording import delivery as _delivery  # noqa: PLC0415
        from tlstiming.testing._report import Tally  # noqa: PLC0415

        self.config = config
        self.tally = Tally()
        self.workers = 0
        _delivery.subscribe(self)

    def __call__(self, span: Any) -> None:
        self.tally.add(span)

    def summary(self) -> dict[str, Any]:
        groups = self.tally.summary()
        return {"tlstiming_report": 2, "workers": self.workers, "groups": groups}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: fold in a worker's spans."""
        rows = getattr(node, "workeroutput", {}).get(_REPORT_KEY)
        if rows is not None:
            self.workers += 1
            self.tally.merge(rows)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: hand the data to the controller
            workeroutput[_REPORT_KEY] = self.tally.dump()
            return
        path = self.config.getoption("--tls-timing-json")
        if path:
            with open(os.fspath(path), "w", encoding="utf-8") as f:
                json.dump(self.summary(), f, indent=2)
                f.write("\n")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.config.getoption("--tls-timing-report"):
            return
        if hasattr(self.config, "workerinput"):
            return
        terminalreporter.write_sep("=", "tlstiming: TLS timings")
        groups = self.summary()["groups"]
        if not groups:
            terminalreporter.write_line("no spans were recorded")
            return
        for line in self.tally.lines(groups):
            terminalreporter.write_line(line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from tlstiming._recording import delivery as _delivery  # noqa: PLC0415

        _delivery.unsubscribe(self)
